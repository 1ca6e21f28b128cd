use std::time::Duration;

use flowgate::pipeline::{Branch, Either, MergeWith};
use flowgate::prelude::*;
use futures_util::stream::{self, Stream, StreamExt};
use tokio_test::{assert_pending, assert_ready_eq, task};

fn channel() -> (
    tokio::sync::mpsc::UnboundedSender<u32>,
    impl Stream<Item = u32> + Send + 'static,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    (tx, stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Branch<u8>>();
    assert_send_sync::<
        MergeWith<stream::Iter<std::vec::IntoIter<u8>>, stream::Iter<std::vec::IntoIter<u8>>>,
    >();
}

#[tokio::test]
async fn partition_routes_every_item_once_in_order() {
    let (small, big) = stream::iter(0..1000u32).partition(8, |x| *x < 300);
    let (small, big) = tokio::join!(
        tokio::spawn(small.collect::<Vec<_>>()),
        tokio::spawn(big.collect::<Vec<_>>())
    );
    assert_eq!(small.unwrap(), (0..300).collect::<Vec<_>>());
    assert_eq!(big.unwrap(), (300..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn split_results_and_merge_back() {
    let results = stream::iter(0..20u32).map(|x| if x % 3 == 0 { Err(x) } else { Ok(x) });
    let (ok, err) = results.split_results(4);
    // "error: retry, success: print": retry errors, merge back.
    let retried = err.map(|x| x + 100);
    let mut all: Vec<u32> = ok.merge_with(retried).collect().await;
    all.sort_unstable();
    let mut expected: Vec<u32> = (0..20)
        .map(|x| if x % 3 == 0 { x + 100 } else { x })
        .collect();
    expected.sort_unstable();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn full_buffer_makes_the_other_side_wait() {
    let (left, right) = stream::iter(0..10u32).branch(2, |x| {
        if x < 8 {
            Either::Right(x)
        } else {
            Either::Left(x)
        }
    });
    let mut left = task::spawn(left);
    let mut right = task::spawn(right);
    // Left pulls 0 and 1 for the right side, then waits for room.
    assert_pending!(left.poll_next());
    assert_eq!(right.size_hint().0, 2);
    assert_ready_eq!(right.poll_next(), Some(0));
    assert!(left.is_woken(), "room made: the waiting side is woken");
    assert_ready_eq!(right.poll_next(), Some(1));
    // Right pulls on by itself when its queue is empty.
    assert_ready_eq!(right.poll_next(), Some(2));
    // Drained together, both see all their items and the end.
    let (rest, left) = tokio::join!(
        right.into_inner().collect::<Vec<_>>(),
        left.into_inner().collect::<Vec<_>>()
    );
    assert_eq!(rest, (3..8).collect::<Vec<_>>());
    assert_eq!(left, vec![8, 9]);
}

#[tokio::test]
async fn dropping_one_side_lets_the_other_go_on() {
    let (left, right) = stream::iter(0..100u32).partition(1, |x| x % 2 == 0);
    drop(right);
    let left: Vec<u32> = left.collect().await;
    assert_eq!(left, (0..100).step_by(2).collect::<Vec<_>>());
}

#[tokio::test]
async fn dropping_a_side_wakes_the_one_waiting_for_it() {
    let (left, right) = stream::iter(0..10u32).partition(1, |x| *x >= 5);
    let mut left = task::spawn(left);
    assert_pending!(left.poll_next()); // 0 queued for right; full
    drop(right);
    assert!(left.is_woken());
    assert_ready_eq!(left.poll_next(), Some(5));
}

#[tokio::test(start_paused = true)]
async fn both_sides_woken_by_a_pending_upstream() {
    let (tx, rx) = channel();
    let (even, odd) = rx.partition(4, |x| x % 2 == 0);
    let even = tokio::spawn(even.collect::<Vec<_>>());
    let odd = tokio::spawn(odd.collect::<Vec<_>>());
    for i in 0..50 {
        tx.send(i).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(tx);
    assert_eq!(even.await.unwrap(), (0..50).step_by(2).collect::<Vec<_>>());
    assert_eq!(odd.await.unwrap(), (1..50).step_by(2).collect::<Vec<_>>());
}

#[tokio::test]
async fn merge_is_fair_and_ends_after_both() {
    let a = stream::iter(std::iter::repeat_n('a', 4));
    let b = stream::iter(std::iter::repeat_n('b', 2));
    let out: String = a.merge_with(b).collect().await;
    assert_eq!(out, "ababaa");
    let s = stream::iter(0..3).merge_with(stream::iter(0..4));
    assert_eq!(s.size_hint(), (7, Some(7)));
}

#[test]
#[should_panic(expected = "at least 1")]
fn zero_capacity_panics() {
    let _ = stream::iter([1]).partition(0, |_| true);
}
