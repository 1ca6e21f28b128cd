//! Behaviour of `flowgate::broadcast`: delivery, ordering, subscribing,
//! forking, closing, waking, backpressure and the shared publisher.
//!
//! The memory bound has its own test binary (`broadcast_memory.rs`), as it
//! counts allocations process-wide; the loom models are in
//! `loom_broadcast.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flowgate::broadcast::{
    BoundedPublisher, Permit, PublishError, Publisher, Recv, SharedPublisher, SubscribeHandle,
    Subscriber, TryPublishError, TryRecvError,
};
use futures_util::stream::FusedStream;
use futures_util::{Stream, StreamExt};
use tokio_test::task::spawn;
use tokio_test::{assert_pending, assert_ready, assert_ready_eq};

/// `n`, or a hundredth of it under miri, which is slow.
fn scaled(n: u64) -> u64 {
    if cfg!(miri) { (n / 100).max(10) } else { n }
}

/// Events per block of the stream (see "Memory" in the module docs): the
/// block-boundary tests below are written around it.
const BLOCK: u32 = 128;

/// Drains every event that is ready now.
fn drain<T: Clone>(sub: &mut Subscriber<T>) -> Vec<T> {
    std::iter::from_fn(|| sub.try_recv().ok()).collect()
}

// ===== delivery and order =====

#[test]
fn every_subscriber_sees_every_event_in_order() {
    let mut publisher = Publisher::new();
    let mut subs: Vec<_> = (0..3).map(|_| publisher.subscribe()).collect();
    for i in 0..1000u32 {
        publisher.publish(i);
    }
    for sub in &mut subs {
        assert_eq!(drain(sub), (0..1000).collect::<Vec<_>>());
        assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_subscribers_receive_everything() {
    let events = scaled(200_000);
    let mut publisher = Publisher::new();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut sub = publisher.subscribe();
            tokio::spawn(async move {
                let mut expected = 0;
                while let Some(event) = sub.recv().await {
                    assert_eq!(event, expected, "out of order or lost");
                    expected += 1;
                }
                expected
            })
        })
        .collect();
    let producer = tokio::spawn(async move {
        for i in 0..events {
            publisher.publish(i);
            if i % 1000 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    producer.await.unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), events);
    }
}

#[test]
fn a_new_subscriber_starts_at_the_tail() {
    let mut publisher = Publisher::new();
    let mut early = publisher.subscribe();
    publisher.publish("before");
    let mut late = publisher.subscribe();
    publisher.publish("after");
    assert_eq!(drain(&mut early), ["before", "after"]);
    assert_eq!(drain(&mut late), ["after"]);
}

#[test]
fn events_published_without_subscribers_are_seen_by_no_one() {
    let mut publisher = Publisher::new();
    for i in 0..500 {
        publisher.publish(i);
    }
    let mut sub = publisher.subscribe();
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    publisher.publish(500);
    assert_eq!(drain(&mut sub), [500]);
    assert_eq!(publisher.published(), 501);
}

#[test]
fn cloning_a_subscriber_forks_it_at_its_position() {
    let mut publisher = Publisher::new();
    let mut original = publisher.subscribe();
    for i in 0..200 {
        publisher.publish(i);
    }
    assert_eq!(drain(&mut original).len(), 200);
    for i in 200..300 {
        publisher.publish(i);
    }
    for _ in 0..70 {
        original.try_recv().unwrap();
    }
    let mut fork = original.clone();
    publisher.publish(300);
    assert_eq!(drain(&mut fork), (270..=300).collect::<Vec<_>>());
    assert_eq!(drain(&mut original), (270..=300).collect::<Vec<_>>());
}

#[test]
fn len_counts_unread_events() {
    let mut publisher = Publisher::new();
    let mut sub = publisher.subscribe();
    assert!(sub.is_empty());
    for i in 0..130 {
        publisher.publish(i);
    }
    assert_eq!(sub.len(), 130);
    for _ in 0..65 {
        sub.try_recv().unwrap();
    }
    assert_eq!(sub.len(), 65);
    assert_eq!(sub.size_hint(), (65, None));
}

// ===== subscribe handles and counts =====

#[test]
fn a_subscribe_handle_subscribes_at_the_tail_and_does_not_keep_the_stream_open() {
    let mut publisher = Publisher::new();
    let handle = publisher.subscribe_handle();
    let handle2: SubscribeHandle<u8> = handle.clone();
    publisher.publish(1);
    let mut sub = handle2.subscribe();
    assert_eq!(handle.subscriber_count(), 1);
    publisher.publish(2);
    drop(publisher);
    assert!(handle.is_closed());
    assert_eq!(drain(&mut sub), [2]);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    // Subscribing to a closed stream gives a finished subscriber.
    let mut after = handle.subscribe();
    assert!(after.is_finished());
    assert_eq!(after.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn subscriber_count_follows_subscribers_and_forks() {
    let publisher = Publisher::<u8>::new();
    assert_eq!(publisher.subscriber_count(), 0);
    let a = publisher.subscribe();
    let b = a.clone();
    let c = publisher.subscribe_handle().subscribe();
    assert_eq!(publisher.subscriber_count(), 3);
    drop((a, b));
    assert_eq!(publisher.subscriber_count(), 1);
    drop(c);
    assert_eq!(publisher.subscriber_count(), 0);
}

// ===== closing =====

#[test]
fn closing_delivers_everything_then_the_end() {
    let mut publisher = Publisher::new();
    let mut sub = publisher.subscribe();
    for i in 0..100 {
        publisher.publish(i);
    }
    publisher.close();
    assert!(!sub.is_finished());
    assert_eq!(drain(&mut sub), (0..100).collect::<Vec<_>>());
    assert!(sub.is_finished());
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(
        sub.try_recv(),
        Err(TryRecvError::Closed),
        "the end is permanent"
    );
}

#[test]
fn closing_exactly_at_a_block_boundary() {
    for events in [BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK] {
        let mut publisher = Publisher::new();
        let mut sub = publisher.subscribe();
        for i in 0..events {
            publisher.publish(i);
        }
        drop(publisher);
        assert_eq!(drain(&mut sub).len() as u32, events);
        assert!(sub.is_finished(), "{events} events");
        assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    }
}

#[test]
fn dropping_the_publisher_wakes_a_waiting_subscriber_with_the_end() {
    let mut publisher = Publisher::<u32>::new();
    let mut sub = publisher.subscribe();
    publisher.publish(1);
    {
        let mut recv = spawn(sub.recv());
        assert_ready_eq!(recv.poll(), Some(1));
    }
    let mut recv = spawn(sub.recv());
    assert_pending!(recv.poll());
    drop(publisher);
    assert!(recv.is_woken());
    assert_ready_eq!(recv.poll(), None);
}

#[tokio::test]
async fn the_stream_ends_after_close() {
    let mut publisher = Publisher::new();
    let sub = publisher.subscribe();
    publisher.publish("Hello!");
    publisher.publish("I am");
    publisher.publish("EventStream");
    publisher.close();
    let mut stream = sub;
    assert!(!stream.is_terminated());
    let mut seen = Vec::new();
    while let Some(event) = stream.next().await {
        seen.push(event);
    }
    assert_eq!(seen, ["Hello!", "I am", "EventStream"]);
    assert!(stream.is_terminated());
    assert_eq!(stream.size_hint(), (0, Some(0)));
    assert_eq!(stream.next().await, None);
}

// ===== waking and cancel safety =====

#[test]
fn recv_is_woken_by_a_publish() {
    let mut publisher = Publisher::new();
    let mut sub = publisher.subscribe();
    let mut recv = spawn(sub.recv());
    assert_pending!(recv.poll());
    assert!(!recv.is_woken());
    publisher.publish(7);
    assert!(recv.is_woken());
    assert_ready_eq!(recv.poll(), Some(7));
}

#[test]
fn every_waiting_subscriber_is_woken_at_a_block_boundary() {
    let mut publisher = Publisher::new();
    let mut subs: Vec<_> = (0..5).map(|_| publisher.subscribe()).collect();
    for i in 0..BLOCK - 1 {
        publisher.publish(i);
    }
    for sub in &mut subs {
        assert_eq!(drain(sub).len() as u32, BLOCK - 1);
    }
    let mut recvs: Vec<_> = subs.iter_mut().map(|sub| spawn(sub.recv())).collect();
    for recv in &mut recvs {
        assert_pending!(recv.poll());
    }
    publisher.publish(BLOCK - 1); // the last slot of the first block
    for recv in &mut recvs {
        assert!(recv.is_woken());
        assert_ready_eq!(recv.poll(), Some(BLOCK - 1));
    }
    drop(recvs);
    let mut recvs: Vec<_> = subs.iter_mut().map(|sub| spawn(sub.recv())).collect();
    for recv in &mut recvs {
        assert_pending!(recv.poll()); // now waiting in the second block
    }
    publisher.publish(BLOCK);
    for recv in &mut recvs {
        assert!(recv.is_woken());
        assert_ready_eq!(recv.poll(), Some(BLOCK));
    }
}

#[test]
fn a_cancelled_recv_loses_nothing() {
    let mut publisher = Publisher::new();
    let mut sub = publisher.subscribe();
    {
        let mut recv = spawn(sub.recv());
        assert_pending!(recv.poll());
    } // cancelled while waiting
    publisher.publish(1);
    publisher.publish(2);
    {
        let recv = spawn(sub.recv());
        drop(recv); // cancelled before its first poll
    }
    let mut recv = spawn(sub.recv());
    assert_ready_eq!(recv.poll(), Some(1));
    drop(recv);
    assert_eq!(sub.try_recv(), Ok(2));
}

#[tokio::test(flavor = "current_thread")]
async fn a_busy_subscriber_yields_to_other_tasks() {
    let mut publisher = Publisher::new();
    let mut sub = publisher.subscribe();
    for i in 0..20_000 {
        publisher.publish(i);
    }
    let other_ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&other_ran);
    tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    let mut read_before_other = None;
    for n in 0..20_000 {
        sub.recv().await.unwrap();
        if read_before_other.is_none() && other_ran.load(Ordering::SeqCst) {
            read_before_other = Some(n);
        }
    }
    let n = read_before_other.expect("the other task never ran: recv does not yield");
    // One unit of tokio's budget (128 per poll) per 16 events.
    assert!(n <= 128 * 16, "yielded only after {n} events");
}

// ===== many subscribers joining and leaving =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_join_fork_and_leave_while_the_publisher_runs() {
    let events = scaled(100_000);
    let mut publisher = Publisher::new();
    let handle = publisher.subscribe_handle();
    let producer = tokio::spawn(async move {
        for i in 0..events {
            publisher.publish(i);
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut clients = Vec::new();
    for client in 0..64u64 {
        let mut sub = handle.subscribe();
        clients.push(tokio::spawn(async move {
            // Each client reads a different number of events, checking that
            // they are consecutive; half of them fork midway and check the
            // fork; every fourth reads to the end.
            let to_read = if client % 4 == 0 {
                u64::MAX
            } else {
                client * 997
            };
            let Some(first) = sub.recv().await else {
                return; // joined after the end
            };
            let mut expected = first + 1;
            let mut fork = None;
            let mut read = 1;
            while read < to_read {
                if read == 500 && client % 2 == 1 {
                    fork = Some((sub.clone(), expected));
                }
                match sub.recv().await {
                    Some(event) => assert_eq!(event, expected, "client {client}"),
                    None => break,
                }
                expected += 1;
                read += 1;
            }
            if to_read == u64::MAX {
                assert_eq!(expected, events, "client {client} missed the tail");
            }
            if let Some((mut fork, mut fork_expected)) = fork {
                for _ in 0..100 {
                    match fork.recv().await {
                        Some(event) => assert_eq!(event, fork_expected),
                        None => break,
                    }
                    fork_expected += 1;
                }
            }
        }));
        tokio::task::yield_now().await;
    }
    producer.await.unwrap();
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(handle.subscriber_count(), 0, "every subscriber left");
    assert!(handle.is_closed());
}

// ===== bounded =====

#[test]
fn bounded_publish_waits_for_the_slowest_subscriber() {
    let mut publisher = BoundedPublisher::new(2);
    assert_eq!(publisher.bound(), 2);
    let mut fast = publisher.subscribe();
    let mut slow = publisher.subscribe();
    for i in 0..2 {
        assert!(publisher.try_publish(i).is_ok());
    }
    assert_eq!(drain(&mut fast), [0, 1]);
    let waiting_publish = async {
        publisher.publish(2).await;
    };
    let mut publish = spawn(waiting_publish);
    assert_pending!(publish.poll());
    assert_eq!(slow.try_recv(), Ok(0));
    assert!(publish.is_woken(), "the slowest subscriber moved");
    assert_ready!(publish.poll());
    drop(publish);
    assert_eq!(drain(&mut slow), [1, 2]);
    assert_eq!(drain(&mut fast), [2]);
}

#[test]
fn bound_of_one_is_lock_step() {
    let mut publisher = BoundedPublisher::new(1);
    let mut sub = publisher.subscribe();
    for i in 0..200 {
        assert!(publisher.try_publish(i).is_ok());
        assert!(matches!(
            publisher.try_publish(999),
            Err(TryPublishError::Full(999))
        ));
        assert_eq!(sub.try_recv(), Ok(i));
    }
}

#[test]
fn a_dropped_subscriber_stops_holding_the_bounded_publisher() {
    let mut publisher = BoundedPublisher::new(3);
    let mut active = publisher.subscribe();
    let idle = publisher.subscribe();
    for i in 0..3 {
        publisher.try_publish(i).unwrap();
    }
    assert_eq!(drain(&mut active), [0, 1, 2]);
    let mut publish = spawn(publisher.publish(3));
    assert_pending!(publish.poll());
    drop(idle);
    assert!(publish.is_woken());
    assert_ready!(publish.poll());
    drop(publish);
    assert_eq!(drain(&mut active), [3]);
}

#[test]
fn a_fork_of_a_slow_subscriber_counts_too() {
    let mut publisher = BoundedPublisher::new(4);
    let mut sub = publisher.subscribe();
    for i in 0..4 {
        publisher.try_publish(i).unwrap();
    }
    let mut fork = sub.clone();
    assert_eq!(drain(&mut sub), [0, 1, 2, 3]);
    assert!(
        publisher.try_publish(4).is_err(),
        "the fork has 4 unread events"
    );
    assert_eq!(fork.try_recv(), Ok(0));
    assert!(publisher.try_publish(4).is_ok());
}

#[test]
fn a_new_subscriber_never_makes_the_bounded_publisher_wait() {
    let mut publisher = BoundedPublisher::new(2);
    let mut a = publisher.subscribe();
    publisher.try_publish(0).unwrap();
    publisher.try_publish(1).unwrap();
    assert_eq!(drain(&mut a), [0, 1]);
    let mut late = publisher.subscribe_handle().subscribe();
    publisher.try_publish(2).unwrap();
    publisher.try_publish(3).unwrap();
    assert!(publisher.try_publish(4).is_err());
    assert_eq!(drain(&mut late), [2, 3]);
}

#[test]
fn reserve_is_cancel_safe() {
    let mut publisher = BoundedPublisher::new(1);
    let mut sub = publisher.subscribe();
    publisher.try_publish("a").unwrap();
    {
        let mut reserve = spawn(publisher.reserve());
        assert_pending!(reserve.poll());
    } // cancelled: nothing lost, nothing held
    assert_eq!(sub.try_recv(), Ok("a"));
    let mut reserve = spawn(publisher.reserve());
    let permit: Permit<'_, &str> = assert_ready!(reserve.poll());
    permit.publish("b");
    drop(reserve);
    assert_eq!(sub.try_recv(), Ok("b"));
}

#[test]
fn without_subscribers_a_bounded_publisher_never_waits() {
    let mut publisher = BoundedPublisher::new(1);
    for i in 0..1000 {
        publisher.try_publish(i).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_stream_under_load_loses_nothing_and_respects_the_bound() {
    let events = scaled(50_000);
    const BOUND: usize = 16;
    let mut publisher = BoundedPublisher::new(BOUND);
    let readers: Vec<_> = (0..3u64)
        .map(|r| {
            let mut sub = publisher.subscribe();
            tokio::spawn(async move {
                let mut expected = 0;
                loop {
                    // Whatever the interleaving, no subscriber ever has more
                    // than `BOUND` unread events.
                    assert!(sub.len() <= BOUND, "{} unread", sub.len());
                    let Some(event) = sub.recv().await else { break };
                    assert_eq!(event, expected);
                    expected += 1;
                    if expected % (100 * (r + 1)) == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                expected
            })
        })
        .collect();
    for i in 0..events {
        publisher.publish(i).await;
    }
    drop(publisher);
    for reader in readers {
        assert_eq!(reader.await.unwrap(), events);
    }
}

mod model {
    //! Random sequences of operations against a model of the semantics.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Publish,
        Recv(usize),
        Subscribe,
        Fork(usize),
        Drop(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::Publish),
            6 => (0..6usize).prop_map(Op::Recv),
            1 => Just(Op::Subscribe),
            1 => (0..6usize).prop_map(Op::Fork),
            1 => (0..6usize).prop_map(Op::Drop),
        ]
    }

    enum Either {
        Unbounded(Publisher<u64>),
        Bounded(BoundedPublisher<u64>),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

        #[test]
        fn behaves_like_the_model(
            bound in proptest::option::of(1..6usize),
            ops in proptest::collection::vec(op(), 0..if cfg!(miri) { 150 } else { 600 }),
        ) {
            let mut publisher = match bound {
                None => Either::Unbounded(Publisher::new()),
                Some(b) => Either::Bounded(BoundedPublisher::new(b)),
            };
            let subscribe = |p: &Either| match p {
                Either::Unbounded(p) => p.subscribe(),
                Either::Bounded(p) => p.subscribe(),
            };
            let mut published = 0u64;
            // Each live subscriber with the position the model expects.
            let mut subs: Vec<(Subscriber<u64>, u64)> = vec![(subscribe(&publisher), 0)];
            for op in ops {
                match op {
                    Op::Publish => match &mut publisher {
                        Either::Unbounded(p) => {
                            p.publish(published);
                            published += 1;
                        }
                        Either::Bounded(p) => {
                            let b = bound.unwrap() as u64;
                            let room = subs.iter().all(|(_, pos)| published - pos < b);
                            let result = p.try_publish(published);
                            prop_assert_eq!(result.is_ok(), room);
                            if room {
                                published += 1;
                            }
                        }
                    },
                    Op::Recv(i) if !subs.is_empty() => {
                        let i = i % subs.len();
                        let (sub, pos) = &mut subs[i];
                        prop_assert_eq!(sub.len() as u64, published - *pos);
                        if *pos < published {
                            prop_assert_eq!(sub.try_recv(), Ok(*pos));
                            *pos += 1;
                        } else {
                            prop_assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
                        }
                    }
                    Op::Subscribe => subs.push((subscribe(&publisher), published)),
                    Op::Fork(i) if !subs.is_empty() => {
                        let (sub, pos) = &subs[i % subs.len()];
                        let fork = (sub.clone(), *pos);
                        subs.push(fork);
                    }
                    Op::Drop(i) if !subs.is_empty() => {
                        let i = i % subs.len();
                        subs.swap_remove(i);
                    }
                    _ => {}
                }
            }
            let count = match &publisher {
                Either::Unbounded(p) => p.subscriber_count(),
                Either::Bounded(p) => p.subscriber_count(),
            };
            prop_assert_eq!(count, subs.len());
            drop(publisher);
            for (mut sub, pos) in subs {
                prop_assert_eq!(drain(&mut sub), (pos..published).collect::<Vec<_>>());
                prop_assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
            }
        }
    }
}

// ===== shared publisher =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_publishers_interleave_but_keep_each_producers_order() {
    let per_producer = scaled(10_000);
    let publisher: SharedPublisher<(u64, u64)> = Publisher::new().into_shared();
    let mut sub = publisher.subscribe();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                for i in 0..per_producer {
                    if i % 2 == 0 {
                        publisher.publish((p, i)).await.unwrap();
                    } else {
                        publisher.try_publish((p, i)).unwrap();
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.unwrap();
    }
    assert!(!publisher.is_closed());
    drop(publisher); // the last clone closes the stream
    let mut next = [0u64; 4];
    while let Some((p, i)) = sub.recv().await {
        assert_eq!(i, next[p as usize], "producer {p} out of order");
        next[p as usize] += 1;
    }
    assert_eq!(next, [per_producer; 4]);
}

#[test]
fn closing_a_shared_publisher_closes_every_clone() {
    let publisher = Publisher::new().into_shared();
    let other = publisher.clone();
    let mut sub = publisher.subscribe();
    publisher.try_publish(1).unwrap();
    other.close();
    assert!(publisher.is_closed());
    assert_eq!(publisher.try_publish(2), Err(TryPublishError::Closed(2)));
    let mut publish = spawn(publisher.publish(3));
    assert_ready_eq!(publish.poll(), Err(PublishError(3)));
    assert_eq!(drain(&mut sub), [1]);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn shared_bounded_publishers_wait_and_are_released_by_close() {
    let publisher = BoundedPublisher::new(1).into_shared();
    let mut sub = publisher.subscribe();
    publisher.try_publish(0).unwrap();
    assert!(publisher.try_publish(1).unwrap_err().is_full());
    let mut first = spawn(publisher.publish(1));
    let mut second = spawn(publisher.publish(2));
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    assert_eq!(sub.try_recv(), Ok(0));
    assert!(
        first.is_woken() && second.is_woken(),
        "every waiting publisher is woken"
    );
    assert_ready_eq!(first.poll(), Ok(()));
    assert_pending!(second.poll());
    publisher.close();
    assert!(second.is_woken());
    assert_ready_eq!(second.poll(), Err(PublishError(2)));
    assert_eq!(drain(&mut sub), [1]);
}

// ===== errors and auto traits =====

#[test]
fn errors_hand_back_the_event_and_read_well() {
    let err = TryPublishError::Full(String::from("x"));
    assert!(err.is_full() && !err.is_closed());
    assert_eq!(err.to_string(), "event stream is full");
    assert_eq!(format!("{err:?}"), "Full(..)");
    assert_eq!(err.into_inner(), "x");
    let err = PublishError(5);
    assert_eq!(err.to_string(), "event stream is closed");
    assert_eq!(TryPublishError::from(err), TryPublishError::Closed(5));
    assert_eq!(TryRecvError::Empty.to_string(), "no event is ready");
    assert_eq!(TryRecvError::Closed.to_string(), "event stream is closed");
}

#[test]
fn public_types_and_futures_are_send_sync_and_unpin() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    fn unpin<T: Unpin>() {}
    struct NotUnpin(std::marker::PhantomPinned);
    let _ = NotUnpin(std::marker::PhantomPinned);

    let mut publisher = Publisher::<String>::new();
    let mut sub = publisher.subscribe();
    send_sync(&publisher);
    send_sync(&sub);
    send_sync(&publisher.subscribe_handle());
    send_sync(&sub.recv());
    publisher.publish(String::new());

    let mut bounded = BoundedPublisher::<String>::new(4);
    send_sync(&bounded);
    send(&bounded.publish(String::new()));
    send(&bounded.reserve());
    let shared = bounded.into_shared();
    send_sync(&shared);
    send(&shared.publish(String::new()));

    unpin::<Subscriber<NotUnpin>>();
    unpin::<Recv<'static, NotUnpin>>();
    unpin::<Publisher<NotUnpin>>();
    unpin::<SharedPublisher<NotUnpin>>();
}
