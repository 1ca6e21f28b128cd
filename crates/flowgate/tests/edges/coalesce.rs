//! Edges of `flowgate::coalesce`.

use std::time::Duration;

use flowgate::coalesce::{BuildError, OpQueue, TryDequeueError, TryEnqueueError};

/// Long enough that anything timed would have fired: about 100 years.
const LONG: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 100);

#[test]
#[should_panic(expected = "OpQueue::new: depth must be at least 1")]
fn new_depth_zero_panics() {
    let _ = OpQueue::<u8, u8>::new(0, 1);
}

#[test]
#[should_panic(expected = "OpQueue::new: width must be at least 1")]
fn new_width_zero_panics() {
    let _ = OpQueue::<u8, u8>::new(1, 0);
}

#[test]
fn new_one_by_one_holds_one_item() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(1, 1);
    queue.try_enqueue(1, 1).unwrap();
    assert_eq!(
        queue.try_enqueue(1, 2),
        Err(TryEnqueueError::WidthFull(1, 2))
    );
    assert_eq!(
        queue.try_enqueue(2, 3),
        Err(TryEnqueueError::DepthFull(2, 3))
    );
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Empty));
}

#[test]
fn new_max_bounds_allocate_nothing_up_front() {
    let (queue, consumer) = OpQueue::<u32, u32>::new(usize::MAX, usize::MAX);
    assert_eq!((queue.depth(), queue.width()), (usize::MAX, usize::MAX));
    for i in 0..10_000 {
        queue.try_enqueue(i % 100, i).unwrap();
    }
    assert_eq!((queue.len(), queue.item_count()), (100, 10_000));
    assert_eq!(consumer.try_dequeue().unwrap().1.len(), 100);
}

#[test]
fn builder_depth_and_width_zero_are_build_errors() {
    let err = OpQueue::<u8, u8>::builder().depth(0).build().unwrap_err();
    assert!(matches!(err, BuildError::ZeroDepth));
    let err = OpQueue::<u8, u8>::builder().width(0).build().unwrap_err();
    assert!(matches!(err, BuildError::ZeroWidth));
}

#[test]
fn builder_depth_and_width_one_and_max_build() {
    let (queue, _consumer) = OpQueue::<u8, u8>::builder()
        .depth(1)
        .width(1)
        .build()
        .unwrap();
    assert_eq!((queue.depth(), queue.width()), (1, 1));
    let (queue, _consumer) = OpQueue::<u8, u8>::builder()
        .depth(usize::MAX)
        .width(usize::MAX)
        .merge(|sum, n| *sum += n)
        .build()
        .unwrap();
    assert_eq!(queue.depth(), usize::MAX);
}

#[test]
fn builder_window_zero_is_a_build_error() {
    let err = OpQueue::<u8, u8>::builder()
        .window(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ZeroWindow));
}

#[test]
fn builder_window_outside_a_runtime_is_a_build_error() {
    let err = OpQueue::<u8, u8>::builder()
        .window(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime));
}

#[tokio::test(start_paused = true)]
async fn builder_window_one_nanosecond_releases_at_once_in_practice() {
    let (queue, consumer) = OpQueue::<u8, u8>::builder()
        .window(Duration::from_nanos(1))
        .build()
        .unwrap();
    queue.try_enqueue(1, 1).unwrap();
    assert_eq!(consumer.dequeue().await, Some((1, vec![1])));
}

#[tokio::test(start_paused = true)]
async fn builder_window_max_never_ends_by_time() {
    let (queue, consumer) = OpQueue::<u8, u8>::builder()
        .window(Duration::MAX)
        .width(2)
        .build()
        .unwrap();
    assert_eq!(queue.window(), Some(Duration::MAX));
    queue.try_enqueue(1, 1).unwrap();
    tokio::time::advance(LONG).await;
    assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Empty));
    let waited = tokio::time::timeout(LONG, consumer.dequeue()).await;
    assert!(waited.is_err(), "a MAX window never releases by time");
    // Reaching `width` releases the batch.
    queue.try_enqueue(1, 2).unwrap();
    assert_eq!(consumer.dequeue().await, Some((1, vec![1, 2])));
    // Closing releases an open one.
    queue.try_enqueue(2, 3).unwrap();
    queue.close();
    assert_eq!(consumer.dequeue().await, Some((2, vec![3])));
    assert_eq!(consumer.dequeue().await, None);
}

#[tokio::test]
async fn dequeue_many_limits_zero_one_and_max() {
    let (queue, consumer) = OpQueue::<u8, ()>::new(10, 10);
    for key in 0..5 {
        queue.try_enqueue(key, ()).unwrap();
    }
    let mut buffer = Vec::new();
    assert_eq!(consumer.dequeue_many(&mut buffer, 0).await, 0);
    assert_eq!(consumer.dequeue_many(&mut buffer, 1).await, 1);
    assert_eq!(consumer.dequeue_many(&mut buffer, usize::MAX).await, 4);
    assert_eq!(buffer.len(), 5);
}

#[tokio::test]
async fn enqueue_waits_at_a_bound_of_one() {
    let (queue, consumer) = OpQueue::<u8, u8>::new(1, 1);
    queue.enqueue(1, 1).await.unwrap();
    let second = queue.enqueue(1, 2);
    tokio::pin!(second);
    assert!(futures_util::poll!(second.as_mut()).is_pending());
    assert_eq!(consumer.dequeue().await, Some((1, vec![1])));
    second.await.unwrap();
    assert_eq!(consumer.count_for(&1), 1);
}
