//! Behaviour of `flowgate::coalesce::OpQueue`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use flowgate::coalesce::{
    BuildError, Consumer, Dequeue, DequeueMany, Enqueue, EnqueueError, OpQueue, OpQueueBuilder,
    TryDequeueError, TryEnqueueError,
};
use futures_util::StreamExt;
use futures_util::stream::FusedStream;
use proptest::prelude::*;
use tokio_test::{assert_pending, assert_ready, task};

const MS: Duration = Duration::from_millis(1);

/// The seed's diagram: 923 queued alone, 424 with a set of three, 99 alone.
#[tokio::test]
async fn width_and_depth_of_the_seed_diagram() {
    let (queue, consumer) = OpQueue::<u64, &str>::new(3, 3);
    queue.try_enqueue(923, "a").unwrap();
    queue.try_enqueue(424, "b").unwrap();
    queue.try_enqueue(424, "c").unwrap();
    queue.try_enqueue(424, "d").unwrap();
    queue.try_enqueue(99, "e").unwrap();

    // Width: 424 holds three items already.
    let err = queue.try_enqueue(424, "f").unwrap_err();
    assert!(err.is_width_full() && err.is_full() && !err.is_depth_full());
    assert_eq!(
        err.to_string(),
        "queue is full (width): too many items for this key"
    );
    assert_eq!(err.into_inner(), (424, "f"));
    // Depth: three distinct keys are queued.
    let err = queue.try_enqueue(7, "g").unwrap_err();
    assert!(err.is_depth_full() && err.is_full() && !err.is_width_full());
    assert_eq!(err.key(), &7);
    assert_eq!(
        err.to_string(),
        "queue is full (depth): too many distinct keys"
    );
    // A queued key with room still joins.
    queue.try_enqueue(923, "h").unwrap();

    assert_eq!(queue.len(), 3);
    assert_eq!(queue.item_count(), 6);
    assert_eq!(
        (
            queue.count_for(&923),
            queue.count_for(&424),
            queue.count_for(&99)
        ),
        (2, 3, 1)
    );
    assert_eq!(queue.count_for(&7), 0);
    assert_eq!((queue.depth(), queue.width(), queue.window()), (3, 3, None));

    assert_eq!(consumer.dequeue().await, Some((923, vec!["a", "h"])));
    // Dequeuing made depth room for a new key.
    queue.try_enqueue(7, "g").unwrap();
    assert_eq!(consumer.dequeue().await, Some((424, vec!["b", "c", "d"])));
    // 424 is new again: it goes to the back.
    queue.try_enqueue(424, "f").unwrap();
    assert_eq!(consumer.dequeue().await, Some((99, vec!["e"])));
    assert_eq!(consumer.dequeue().await, Some((7, vec!["g"])));
    assert_eq!(consumer.dequeue().await, Some((424, vec!["f"])));
    assert!(consumer.is_empty());
    assert_eq!(consumer.item_count(), 0);
}

#[tokio::test]
async fn keys_come_out_oldest_first_and_joining_does_not_move_them() {
    let (queue, consumer) = OpQueue::<char, u32>::new(100, 100);
    for (i, key) in "abcabcdd".chars().enumerate() {
        queue.try_enqueue(key, i as u32).unwrap();
    }
    queue.close();
    let out: Vec<(char, Vec<u32>)> = consumer.collect().await;
    assert_eq!(
        out,
        [
            ('a', vec![0, 3]),
            ('b', vec![1, 4]),
            ('c', vec![2, 5]),
            ('d', vec![6, 7])
        ]
    );
}

#[tokio::test]
async fn dequeue_waits_while_empty() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    queue.try_enqueue(1, 1).unwrap();
    assert!(dequeue.is_woken());
    assert_eq!(assert_ready!(dequeue.poll()), Some((1, vec![1])));
}

#[tokio::test]
async fn joining_a_queued_key_wakes_no_one() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    let mut first = task::spawn(consumer.dequeue());
    let mut second = task::spawn(consumer.dequeue());
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    queue.try_enqueue(2, 1).unwrap();
    assert!(first.is_woken());
    assert!(!second.is_woken());
    // Joins 2, which the first waiter will take: no one else to wake.
    queue.try_enqueue(2, 2).unwrap();
    assert!(!second.is_woken());
    assert_eq!(assert_ready!(first.poll()), Some((2, vec![1, 2])));
    assert_pending!(second.poll());
}

#[tokio::test]
async fn cancelled_dequeue_loses_nothing() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    drop(dequeue);
    queue.try_enqueue(1, 1).unwrap();
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
}

#[tokio::test]
async fn a_woken_then_cancelled_dequeue_passes_the_wakeup_on() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    let mut first = task::spawn(consumer.dequeue());
    let mut second = task::spawn(consumer.dequeue());
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    queue.try_enqueue(1, 1).unwrap();
    assert!(first.is_woken());
    assert!(!second.is_woken());
    drop(first); // cancelled after being chosen
    assert!(
        second.is_woken(),
        "the wake-up was lost with the cancelled call"
    );
    assert_eq!(assert_ready!(second.poll()), Some((1, vec![1])));
}

#[tokio::test]
async fn a_consumer_that_leaves_work_behind_wakes_the_next() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    let mut first = task::spawn(consumer.dequeue());
    let mut second = task::spawn(consumer.dequeue());
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    queue.try_enqueue(1, 1).unwrap(); // wakes first
    queue.try_enqueue(2, 2).unwrap(); // wakes second
    assert!(first.is_woken() && second.is_woken());
    assert_eq!(assert_ready!(first.poll()), Some((1, vec![1])));
    assert_eq!(assert_ready!(second.poll()), Some((2, vec![2])));
}

#[tokio::test]
async fn enqueue_wait_waits_for_depth_room() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(1, 4);
    queue.try_enqueue(1, 1).unwrap();
    let mut enqueue = task::spawn(queue.enqueue(2, 2));
    assert_pending!(enqueue.poll());
    assert_eq!(consumer.dequeue().await, Some((1, vec![1])));
    assert!(enqueue.is_woken());
    assert_ready!(enqueue.poll()).unwrap();
    assert_eq!(consumer.dequeue().await, Some((2, vec![2])));
}

#[tokio::test]
async fn enqueue_wait_waits_for_width_room() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 1);
    queue.try_enqueue(1, 1).unwrap();
    let mut enqueue = task::spawn(queue.enqueue(1, 2));
    assert_pending!(enqueue.poll());
    // Room made for another key does not help, but re-checking is harmless.
    queue.try_enqueue(2, 0).unwrap();
    assert_pending!(enqueue.poll());
    assert_eq!(consumer.dequeue().await, Some((1, vec![1])));
    assert!(enqueue.is_woken());
    assert_ready!(enqueue.poll()).unwrap();
    assert_eq!(consumer.dequeue().await, Some((2, vec![0])));
    assert_eq!(consumer.dequeue().await, Some((1, vec![2])));
}

#[tokio::test]
async fn enqueue_wait_fails_when_closed_while_waiting() {
    let (queue, _consumer) = OpQueue::<u8, String>::new(1, 1);
    queue.try_enqueue(1, "a".into()).unwrap();
    let mut enqueue = task::spawn(queue.enqueue(2, "b".into()));
    assert_pending!(enqueue.poll());
    queue.close();
    assert!(enqueue.is_woken());
    let err: EnqueueError<u8, String> = assert_ready!(enqueue.poll()).unwrap_err();
    assert_eq!(err.to_string(), "queue is closed");
    assert_eq!(err.into_inner(), (2, "b".to_owned()));
}

#[tokio::test]
async fn cancelled_enqueue_wait_unparks() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(1, 1);
    queue.try_enqueue(1, 1).unwrap();
    let mut enqueue = task::spawn(queue.enqueue(2, 2));
    assert_pending!(enqueue.poll());
    drop(enqueue);
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
    assert!(consumer.is_empty(), "a cancelled enqueue must not enqueue");
}

#[tokio::test]
async fn close_refuses_items_and_drains() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    queue.try_enqueue(1, 1).unwrap();
    queue.try_enqueue(2, 2).unwrap();
    consumer.close();
    assert!(queue.is_closed() && consumer.is_closed());
    assert_eq!(queue.try_enqueue(3, 3), Err(TryEnqueueError::Closed(3, 3)));
    assert_eq!(queue.try_enqueue(1, 9), Err(TryEnqueueError::Closed(1, 9)));
    assert!(queue.try_enqueue(1, 9).unwrap_err().is_closed());
    assert_eq!(consumer.dequeue().await, Some((1, vec![1])));
    assert_eq!(consumer.dequeue().await, Some((2, vec![2])));
    assert_eq!(consumer.dequeue().await, None);
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Closed));
    queue.close(); // again: harmless
}

#[tokio::test]
async fn close_wakes_a_waiting_dequeue() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    queue.close();
    assert!(dequeue.is_woken());
    assert_eq!(assert_ready!(dequeue.poll()), None);
}

#[tokio::test]
async fn dropping_every_producer_closes_the_queue() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    let other = queue.clone();
    queue.try_enqueue(1, 1).unwrap();
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_eq!(assert_ready!(dequeue.poll()), Some((1, vec![1])));
    drop(dequeue);
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    drop(queue);
    assert!(!dequeue.is_woken(), "a producer is still alive");
    drop(other);
    assert!(dequeue.is_woken());
    assert_eq!(assert_ready!(dequeue.poll()), None);
}

#[tokio::test]
async fn dropping_every_consumer_closes_and_empties_the_queue() {
    let (queue, consumer) = OpQueue::<u8, Arc<()>>::new(4, 4);
    let item = Arc::new(());
    queue.try_enqueue(1, Arc::clone(&item)).unwrap();
    let other = consumer.clone();
    drop(consumer);
    assert!(!queue.is_closed());
    drop(other);
    assert!(queue.is_closed());
    assert_eq!(Arc::strong_count(&item), 1, "queued items were not dropped");
    assert!(queue.try_enqueue(2, item).unwrap_err().is_closed());
    assert!(queue.is_empty());
}

#[tokio::test]
async fn dropping_every_consumer_fails_waiting_producers() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(1, 1);
    queue.try_enqueue(1, 1).unwrap();
    let mut enqueue = task::spawn(queue.enqueue(2, 2));
    assert_pending!(enqueue.poll());
    drop(consumer);
    assert!(enqueue.is_woken());
    assert_eq!(
        assert_ready!(enqueue.poll()).unwrap_err().into_inner(),
        (2, 2)
    );
}

#[tokio::test]
async fn consumer_is_a_fused_stream() {
    let (queue, mut consumer) = OpQueue::<u8, u8>::new(4, 4);
    queue.try_enqueue(1, 1).unwrap();
    queue.try_enqueue(1, 2).unwrap();
    assert_eq!(consumer.next().await, Some((1, vec![1, 2])));
    {
        let mut next = task::spawn(consumer.next());
        assert_pending!(next.poll());
        queue.try_enqueue(2, 3).unwrap();
        assert!(next.is_woken());
        assert_eq!(assert_ready!(next.poll()), Some((2, vec![3])));
    }
    drop(queue);
    assert!(!consumer.is_terminated());
    assert_eq!(consumer.next().await, None);
    assert!(consumer.is_terminated());
    assert_eq!(consumer.next().await, None);
}

#[tokio::test]
async fn dequeue_many_takes_up_to_the_limit() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    let mut buffer = Vec::new();
    {
        let mut many = task::spawn(consumer.dequeue_many(&mut buffer, 3));
        assert_pending!(many.poll());
        for key in 0..5 {
            queue.try_enqueue(key, key).unwrap();
        }
        assert!(many.is_woken());
        assert_eq!(assert_ready!(many.poll()), 3);
    }
    assert_eq!(consumer.dequeue_many(&mut buffer, 0).await, 0);
    assert_eq!(consumer.dequeue_many(&mut buffer, 10).await, 2);
    let keys: Vec<u8> = buffer.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, [0, 1, 2, 3, 4]);
    queue.close();
    assert_eq!(consumer.dequeue_many(&mut buffer, 10).await, 0);
    assert_eq!(buffer.len(), 5);
}

#[tokio::test]
async fn try_dequeue_reports_empty_and_closed() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(4, 4);
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Empty));
    queue.try_enqueue(1, 1).unwrap();
    queue.close();
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Closed));
    assert_eq!(
        TryDequeueError::Empty.to_string(),
        "queue has nothing ready"
    );
}

#[tokio::test]
async fn merge_keeps_one_value_per_key() {
    let (queue, consumer) = OpQueue::<&str, u64>::builder()
        .width(usize::MAX)
        .merge(|sum, item| *sum += item)
        .build()
        .unwrap();
    for (key, n) in [("a", 1), ("b", 10), ("a", 2), ("a", 3)] {
        queue.try_enqueue(key, n).unwrap();
    }
    assert_eq!(queue.count_for("a"), 3, "count is items merged, not values");
    assert_eq!(consumer.dequeue().await, Some(("a", 6)));
    assert_eq!(consumer.dequeue().await, Some(("b", 10)));
}

#[tokio::test]
async fn merge_respects_width() {
    let (queue, consumer) = OpQueue::<&str, u64>::builder()
        .width(2)
        .merge(|latest, item| *latest = item)
        .build()
        .unwrap();
    queue.try_enqueue("a", 1).unwrap();
    queue.try_enqueue("a", 2).unwrap();
    assert_eq!(
        queue.try_enqueue("a", 3),
        Err(TryEnqueueError::WidthFull("a", 3))
    );
    assert_eq!(consumer.dequeue().await, Some(("a", 2)));
}

#[tokio::test]
async fn fold_into_another_type() {
    let (queue, consumer) = OpQueue::<u8, u32>::builder()
        .fold(
            |item| HashSet::from([item]),
            |set, item| {
                set.insert(item);
            },
        )
        .build()
        .unwrap();
    for item in [1, 2, 1, 3, 2] {
        queue.try_enqueue(0, item).unwrap();
    }
    let (_, set) = consumer.dequeue().await.unwrap();
    assert_eq!(set, HashSet::from([1, 2, 3]));
}

#[tokio::test]
async fn count_with_borrowed_keys() {
    let (queue, consumer) = OpQueue::<String, u8>::new(4, 4);
    queue.try_enqueue("user:1".to_owned(), 1).unwrap();
    queue.try_enqueue("user:1".to_owned(), 2).unwrap();
    assert_eq!(queue.count_for("user:1"), 2);
    assert_eq!(consumer.count_for("user:1"), 2);
    assert_eq!(consumer.len(), 1);
}

#[test]
fn build_errors() {
    assert_eq!(
        OpQueue::<u8, u8>::builder().depth(0).build().unwrap_err(),
        BuildError::ZeroDepth
    );
    assert_eq!(
        OpQueue::<u8, u8>::builder().width(0).build().unwrap_err(),
        BuildError::ZeroWidth
    );
    assert_eq!(
        OpQueue::<u8, u8>::builder()
            .window(Duration::ZERO)
            .build()
            .unwrap_err(),
        BuildError::ZeroWindow
    );
    // A window needs a timer: no runtime here.
    let err = OpQueue::<u8, u8>::builder().window(MS).build().unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    assert_eq!(err.to_string(), "a windowed queue needs a tokio runtime");
    // Without a window, no runtime is needed.
    let (queue, consumer) = OpQueue::<u8, u8>::new(1, 1);
    queue.try_enqueue(1, 1).unwrap();
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
}

// ===== windowed mode =====

fn windowed(depth: usize, width: usize, window: Duration) -> (OpQueue<u8, u32>, Consumer<u8, u32>) {
    OpQueue::builder()
        .depth(depth)
        .width(width)
        .window(window)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn window_forms_one_batch_per_key() {
    let (queue, consumer) = windowed(10, 10, 10 * MS);
    queue.try_enqueue(1, 1).unwrap();
    tokio::time::advance(4 * MS).await;
    queue.try_enqueue(1, 2).unwrap();
    queue.try_enqueue(2, 3).unwrap();
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Empty));

    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    tokio::time::advance(5 * MS).await; // t = 9 ms
    assert_pending!(dequeue.poll());
    tokio::time::advance(MS).await; // t = 10 ms: key 1's window ends
    assert!(dequeue.is_woken());
    assert_eq!(assert_ready!(dequeue.poll()), Some((1, vec![1, 2])));
    drop(dequeue);

    // The window is measured from the batch's first item, not slid.
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Empty));
    queue.try_enqueue(1, 4).unwrap(); // a new batch for key 1, window until 20 ms
    tokio::time::advance(4 * MS).await; // t = 14 ms: key 2's window ends
    assert_eq!(consumer.try_dequeue(), Ok((2, vec![3])));
    tokio::time::advance(6 * MS).await;
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![4])));
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_released_before_its_window_ends() {
    let (queue, consumer) = windowed(10, 3, Duration::from_secs(60));
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    queue.try_enqueue(9, 0).unwrap(); // an older, open batch
    queue.try_enqueue(1, 1).unwrap();
    queue.try_enqueue(1, 2).unwrap();
    assert_pending!(dequeue.poll());
    queue.try_enqueue(1, 3).unwrap(); // full: released now
    assert!(dequeue.is_woken());
    assert_eq!(assert_ready!(dequeue.poll()), Some((1, vec![1, 2, 3])));
    // The key's next item starts a new batch: no WidthFull in windowed mode.
    queue.try_enqueue(1, 4).unwrap();
    assert_eq!(queue.count_for(&1), 1);
    assert_eq!(queue.len(), 2);
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Empty));
}

#[tokio::test(start_paused = true)]
async fn windowed_depth_counts_batches() {
    let (queue, consumer) = windowed(2, 2, 10 * MS);
    queue.try_enqueue(1, 1).unwrap();
    queue.try_enqueue(1, 2).unwrap(); // released: full
    queue.try_enqueue(1, 3).unwrap(); // a second batch of key 1
    assert_eq!(queue.len(), 2);
    assert_eq!(
        queue.try_enqueue(2, 4),
        Err(TryEnqueueError::DepthFull(2, 4))
    );
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1, 2])));
    queue.try_enqueue(2, 4).unwrap();
}

#[tokio::test(start_paused = true)]
async fn width_one_window_releases_at_once() {
    let (queue, consumer) = windowed(4, 1, Duration::from_secs(60));
    queue.try_enqueue(1, 1).unwrap();
    queue.try_enqueue(1, 2).unwrap();
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![2])));
}

#[tokio::test(start_paused = true)]
async fn closing_releases_open_windows() {
    let (queue, consumer) = windowed(4, 4, Duration::from_secs(60));
    queue.try_enqueue(1, 1).unwrap();
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    queue.close();
    assert!(dequeue.is_woken());
    assert_eq!(assert_ready!(dequeue.poll()), Some((1, vec![1])));
    assert_eq!(consumer.dequeue().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_parked_consumer_arms_a_timer_for_a_new_window() {
    let (queue, consumer) = windowed(4, 4, 10 * MS);
    let mut dequeue = task::spawn(consumer.dequeue());
    assert_pending!(dequeue.poll());
    queue.try_enqueue(1, 1).unwrap();
    // Woken to arm the timer of the new window.
    assert!(dequeue.is_woken());
    assert_pending!(dequeue.poll());
    tokio::time::advance(10 * MS).await;
    assert!(dequeue.is_woken());
    assert_eq!(assert_ready!(dequeue.poll()), Some((1, vec![1])));
}

/// Two consumers parked; two windows. The first consumer takes the first
/// batch; the second, parked without a timer, must be woken to watch the
/// second window.
#[tokio::test(start_paused = true)]
async fn the_next_window_is_never_unwatched() {
    let (queue, consumer) = windowed(4, 4, 10 * MS);
    let mut first = task::spawn(consumer.dequeue());
    let mut second = task::spawn(consumer.dequeue());
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    queue.try_enqueue(1, 1).unwrap(); // wakes `first` to arm a timer
    assert_pending!(first.poll());
    tokio::time::advance(5 * MS).await;
    queue.try_enqueue(2, 2).unwrap(); // a later window: no one woken
    tokio::time::advance(5 * MS).await;
    assert_eq!(assert_ready!(first.poll()), Some((1, vec![1])));
    assert!(second.is_woken(), "no one watches key 2's window");
    assert_pending!(second.poll());
    tokio::time::advance(5 * MS).await;
    assert!(second.is_woken());
    assert_eq!(assert_ready!(second.poll()), Some((2, vec![2])));
}

#[tokio::test(start_paused = true)]
async fn windowed_consumer_stream_across_time() {
    let (queue, consumer) = windowed(16, 16, 10 * MS);
    let producer = tokio::spawn(async move {
        for i in 0..30u32 {
            queue.try_enqueue((i % 3) as u8, i).unwrap();
            tokio::time::sleep(MS).await;
        }
    });
    let batches: Vec<(u8, Vec<u32>)> = consumer.collect().await;
    producer.await.unwrap();
    // Thirty items over 30 ms in three keys, 10 ms windows: 3 keys × 3 windows.
    assert_eq!(batches.len(), 9);
    let mut all: Vec<u32> = batches
        .iter()
        .flat_map(|(_, items)| items.clone())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..30).collect::<Vec<_>>());
    for (key, items) in &batches {
        assert!(items.iter().all(|i| (i % 3) as u8 == *key));
    }
}

// ===== concurrency =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_and_consumers() {
    const PRODUCERS: u32 = 4;
    const ITEMS: u32 = 2_000;
    let (queue, consumer) = OpQueue::<u32, (u32, u32)>::new(16, 4);

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let queue = queue.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..ITEMS {
                queue.enqueue(i % 50, (p, i)).await.unwrap();
            }
        }));
    }
    drop(queue);

    let mut consumers = Vec::new();
    // Three consumers, each taking in its own way.
    let c = consumer.clone();
    consumers.push(tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some((key, items)) = c.dequeue().await {
            assert!(items.len() <= 4);
            got.extend(items.into_iter().map(|item| (key, item)));
        }
        got
    }));
    let c = consumer.clone();
    consumers.push(tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buffer = Vec::new();
        while c.dequeue_many(&mut buffer, 8).await > 0 {
            for (key, items) in buffer.drain(..) {
                got.extend(items.into_iter().map(|item| (key, item)));
            }
        }
        got
    }));
    consumers.push(tokio::spawn(async move {
        consumer
            .flat_map(|(key, items)| {
                futures_util::stream::iter(items.into_iter().map(move |item| (key, item)))
            })
            .collect::<Vec<_>>()
            .await
    }));

    for producer in producers {
        producer.await.unwrap();
    }
    let mut got = Vec::new();
    for consumer in consumers {
        got.extend(consumer.await.unwrap());
    }
    assert_eq!(got.len(), (PRODUCERS * ITEMS) as usize);
    let unique: HashSet<_> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "an item was delivered twice");
    for (key, (_, i)) in got {
        assert_eq!(key, i % 50);
    }
}

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn unpin<T: Unpin>() {}
    type Q = OpQueue<String, Vec<u8>>;
    type C = Consumer<String, Vec<u8>>;
    send_sync::<Q>();
    send_sync::<C>();
    send_sync::<OpQueueBuilder<String, Vec<u8>>>();
    send_sync::<Enqueue<'static, String, Vec<u8>, Vec<Vec<u8>>>>();
    send_sync::<Dequeue<'static, String, Vec<u8>, Vec<Vec<u8>>>>();
    send_sync::<DequeueMany<'static, String, Vec<u8>, Vec<Vec<u8>>>>();
    send_sync::<TryEnqueueError<String, Vec<u8>>>();
    send_sync::<EnqueueError<String, Vec<u8>>>();
    send_sync::<BuildError>();
    send_sync::<TryDequeueError>();
    unpin::<C>();
    unpin::<Dequeue<'static, std::marker::PhantomPinned, u8, u8>>();
    unpin::<Enqueue<'static, std::marker::PhantomPinned, u8, u8>>();
}

// ===== models =====

/// The naive reference: a deque of keys and a map of sets.
struct Model {
    depth: usize,
    width: usize,
    order: VecDeque<u8>,
    sets: HashMap<u8, Vec<u32>>,
}

#[derive(Debug, Clone)]
enum Step {
    Enqueue(u8, u32),
    Dequeue,
    Advance(u64),
}

fn steps(keys: u8) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (0..keys, any::<u32>()).prop_map(|(k, i)| Step::Enqueue(k, i)),
            2 => Just(Step::Dequeue),
            1 => (0..8u64).prop_map(Step::Advance),
        ],
        0..120,
    )
}

/// What the model says `try_enqueue` returns: `Ok` or the name of the error.
fn kind<K, T>(result: Result<(), TryEnqueueError<K, T>>) -> Result<(), &'static str> {
    result.map_err(|err| match err {
        TryEnqueueError::DepthFull(..) => "depth",
        TryEnqueueError::WidthFull(..) => "width",
        TryEnqueueError::Closed(..) => "closed",
    })
}

proptest! {
    /// The queue behaves exactly like the naive deque + map.
    #[test]
    fn plain_queue_matches_the_model(
        depth in 1usize..5,
        width in 1usize..5,
        steps in steps(6),
    ) {
        let (queue, consumer) = OpQueue::<u8, u32>::new(depth, width);
        let mut model = Model { depth, width, order: VecDeque::new(), sets: HashMap::new() };
        for step in steps {
            match step {
                Step::Enqueue(key, item) => {
                    let expected = match model.sets.get_mut(&key) {
                        Some(set) if set.len() >= model.width => Err("width"),
                        Some(set) => { set.push(item); Ok(()) }
                        None if model.order.len() >= model.depth => Err("depth"),
                        None => {
                            model.order.push_back(key);
                            model.sets.insert(key, vec![item]);
                            Ok(())
                        }
                    };
                    prop_assert_eq!(kind(queue.try_enqueue(key, item)), expected);
                }
                Step::Dequeue => {
                    let expected = model.order.pop_front().map(|key| {
                        let set = model.sets.remove(&key).unwrap();
                        (key, set)
                    });
                    prop_assert_eq!(consumer.try_dequeue().ok(), expected);
                }
                Step::Advance(_) => {}
            }
            prop_assert_eq!(queue.len(), model.order.len());
            prop_assert_eq!(queue.item_count(), model.sets.values().map(Vec::len).sum::<usize>());
            for key in 0..6 {
                prop_assert_eq!(queue.count_for(&key), model.sets.get(&key).map_or(0, Vec::len));
            }
        }
    }

    /// The windowed queue releases batches exactly when, and in the order, a
    /// simple timed model says.
    #[test]
    fn windowed_queue_matches_the_model(
        depth in 1usize..5,
        width in 1usize..5,
        window in 1u64..6,
        steps in steps(4),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (queue, consumer) = windowed(depth, width, Duration::from_millis(window));
            let mut now = 0u64;
            // Open batches in creation order: (key, items, deadline).
            let mut open: Vec<(u8, Vec<u32>, u64)> = Vec::new();
            let mut ready: VecDeque<(u8, Vec<u32>)> = VecDeque::new();
            let release_expired = |open: &mut Vec<(u8, Vec<u32>, u64)>,
                                   ready: &mut VecDeque<(u8, Vec<u32>)>,
                                   now: u64| {
                while open.first().is_some_and(|(_, _, deadline)| *deadline <= now) {
                    let (key, items, _) = open.remove(0);
                    ready.push_back((key, items));
                }
            };
            for step in steps {
                match step {
                    Step::Enqueue(key, item) => {
                        release_expired(&mut open, &mut ready, now);
                        let expected = if let Some(pos) = open.iter().position(|(k, _, _)| *k == key) {
                            open[pos].1.push(item);
                            if open[pos].1.len() >= width {
                                let (key, items, _) = open.remove(pos);
                                ready.push_back((key, items));
                            }
                            Ok(())
                        } else if open.len() + ready.len() >= depth {
                            Err("depth")
                        } else if width == 1 {
                            ready.push_back((key, vec![item]));
                            Ok(())
                        } else {
                            open.push((key, vec![item], now + window));
                            Ok(())
                        };
                        prop_assert_eq!(kind(queue.try_enqueue(key, item)), expected);
                    }
                    Step::Dequeue => {
                        release_expired(&mut open, &mut ready, now);
                        prop_assert_eq!(consumer.try_dequeue().ok(), ready.pop_front());
                    }
                    Step::Advance(ms) => {
                        now += ms;
                        tokio::time::advance(Duration::from_millis(ms)).await;
                    }
                }
                prop_assert_eq!(queue.len(), open.len() + ready.len());
            }
            Ok(())
        })?;
    }
}
