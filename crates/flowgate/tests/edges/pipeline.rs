//! Edges of the `flowgate::pipeline` operators that take a duration or a
//! size (the stages of `par_map`, `batch` and `write_batches` are in
//! `batch.rs`; `rate_limit` and `limit_in_flight` in `limit.rs`).
//!
//! Zero is refused with the panic each operator's `# Panics` section names;
//! one is the smallest working value; `Duration::MAX` means "never" and
//! `usize::MAX` means "unbounded in practice" (nothing is allocated up front).

use std::pin::pin;
use std::time::Duration;

use flowgate::pipeline::{Beat, Either, Keep};
use flowgate::prelude::*;
use futures_util::stream::{self, StreamExt as _};
use tokio::time::{advance, timeout};

const YEAR: Duration = Duration::from_secs(60 * 60 * 24 * 365);
const ONE: Duration = Duration::from_nanos(1);

/// A stream of `items` followed by silence that never ends.
fn then_silence(items: Vec<u32>) -> impl futures_core::Stream<Item = u32> + Unpin {
    stream::iter(items).chain(stream::pending())
}

// item_timeout

#[test]
#[should_panic(expected = "item_timeout: duration must be greater than zero")]
fn item_timeout_zero_is_refused() {
    let _ = stream::iter([1]).item_timeout(Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn item_timeout_one_nanosecond_fires_on_silence_and_goes_on() {
    let mut timed = pin!(then_silence(vec![1]).item_timeout(ONE));
    assert_eq!(timed.next().await.map(|r| r.ok()), Some(Some(1)));
    assert!(matches!(timed.next().await, Some(Err(_))));
    assert!(matches!(timed.next().await, Some(Err(_))), "goes on");
}

#[tokio::test(start_paused = true)]
async fn item_timeout_max_never_fires() {
    let mut timed = pin!(then_silence(vec![1, 2]).item_timeout(Duration::MAX));
    assert_eq!(timed.next().await.map(|r| r.ok()), Some(Some(1)));
    assert_eq!(timed.next().await.map(|r| r.ok()), Some(Some(2)));
    assert!(
        timeout(YEAR, timed.next()).await.is_err(),
        "no Elapsed after a year"
    );
}

// idle_timeout

#[test]
#[should_panic(expected = "idle_timeout: duration must be greater than zero")]
fn idle_timeout_zero_is_refused() {
    let _ = stream::iter([1]).idle_timeout(Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_one_nanosecond_ends_the_stream_on_silence() {
    let mut idle = pin!(then_silence(vec![1]).idle_timeout(ONE));
    assert_eq!(idle.next().await.map(|r| r.ok()), Some(Some(1)));
    assert!(matches!(idle.next().await, Some(Err(_))));
    assert!(idle.next().await.is_none());
    assert!(idle.timed_out());
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_max_never_ends_the_stream() {
    let mut idle = pin!(then_silence(vec![1]).idle_timeout(Duration::MAX));
    assert_eq!(idle.next().await.map(|r| r.ok()), Some(Some(1)));
    assert!(timeout(YEAR, idle.next()).await.is_err());
    assert!(!idle.timed_out());
}

// heartbeat

#[test]
#[should_panic(expected = "heartbeat: interval must be greater than zero")]
fn heartbeat_zero_is_refused() {
    let _ = stream::iter([1]).heartbeat(Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_one_nanosecond_ticks_on_silence() {
    let mut beats = pin!(then_silence(vec![7]).heartbeat(ONE));
    assert_eq!(beats.next().await.and_then(Beat::into_item), Some(7));
    assert!(beats.next().await.is_some_and(|b| b.is_tick()));
    assert!(beats.next().await.is_some_and(|b| b.is_tick()));
}

#[tokio::test(start_paused = true)]
async fn heartbeat_max_never_ticks() {
    let mut beats = pin!(then_silence(vec![7]).heartbeat(Duration::MAX));
    assert!(beats.next().await.is_some(), "the item passes");
    assert!(
        timeout(YEAR, beats.next()).await.is_err(),
        "no tick after a year"
    );
}

// debounce

#[test]
#[should_panic(expected = "debounce: quiet period must be greater than zero")]
fn debounce_zero_is_refused() {
    let _ = stream::iter([1]).debounce(Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn debounce_one_nanosecond_yields_each_item_of_a_slow_stream() {
    // tokio's timers tick in milliseconds: a 1 ns quiet period ends at the
    // next tick, so the items come 10 ms apart.
    let slow = stream::iter([1, 2, 3]).then(|x| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        x
    });
    let out: Vec<u32> = slow.debounce(ONE).collect().await;
    assert_eq!(out, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn debounce_max_holds_the_item_and_yields_it_at_the_end() {
    let mut quiet = pin!(stream::iter([1, 2, 3]).debounce(Duration::MAX));
    // The quiet period never ends; the stream's end releases the last item.
    assert_eq!(quiet.next().await, Some(3));
    assert_eq!(quiet.next().await, None);
    assert_eq!(quiet.dropped(), 2);
    let mut silent = pin!(then_silence(vec![1]).debounce(Duration::MAX));
    assert!(timeout(YEAR, silent.next()).await.is_err());
}

// throttle_keep

#[test]
#[should_panic(expected = "throttle_keep: period must be greater than zero")]
fn throttle_keep_zero_is_refused() {
    let _ = stream::iter([1]).throttle_keep(Duration::ZERO, Keep::First);
}

#[tokio::test(start_paused = true)]
async fn throttle_keep_one_nanosecond_passes_a_slow_stream_whole() {
    let slow = stream::iter([1, 2, 3]).then(|x| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        x
    });
    let out: Vec<u32> = slow.throttle_keep(ONE, Keep::First).collect().await;
    assert_eq!(out, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn throttle_keep_max_window_never_closes() {
    let mut first = pin!(stream::iter(1..=5).throttle_keep(Duration::MAX, Keep::First));
    assert_eq!(first.next().await, Some(1));
    assert_eq!(
        first.next().await,
        None,
        "the window opened by 1 never closes"
    );
    assert_eq!(first.dropped(), 4);
    let at_end: Vec<u32> = stream::iter(1..=3)
        .throttle_keep(Duration::MAX, Keep::Last)
        .collect()
        .await;
    assert_eq!(at_end, [3], "the stream's end yields the latest item");
    let mut last = pin!(then_silence(vec![1, 2]).throttle_keep(Duration::MAX, Keep::Last));
    assert!(
        timeout(YEAR, last.next()).await.is_err(),
        "the window never closes, so nothing is yielded"
    );
}

// dedup_within and dedup_last

#[test]
#[should_panic(expected = "dedup_within: window must be greater than zero")]
fn dedup_within_zero_is_refused() {
    let _ = stream::iter([1]).dedup_within(Duration::ZERO, |k: &u32| *k);
}

#[tokio::test(start_paused = true)]
async fn dedup_within_one_nanosecond_forgets_after_any_time() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let received = stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut seen = pin!(received.dedup_within(ONE, |k: &u32| *k));
    tx.send(1).unwrap();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(seen.next().await, Some(1));
    assert_eq!(seen.next().await, Some(2));
    assert_eq!(
        seen.dropped(),
        1,
        "the repeat at the same instant was dropped"
    );
    advance(ONE).await;
    tx.send(1).unwrap();
    assert_eq!(seen.next().await, Some(1), "the window passed");
}

#[tokio::test(start_paused = true)]
async fn dedup_within_max_never_forgets() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let received = stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut seen = pin!(received.dedup_within(Duration::MAX, |k: &u32| *k));
    tx.send(1).unwrap();
    assert_eq!(seen.next().await, Some(1));
    advance(YEAR).await;
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(seen.next().await, Some(2), "1 is still within the window");
}

#[test]
#[should_panic(expected = "dedup_last: capacity must be at least 1")]
fn dedup_last_zero_is_refused() {
    let _ = stream::iter([1]).dedup_last(0, |k: &u32| *k);
}

#[tokio::test]
async fn dedup_last_one_drops_only_immediate_repeats() {
    let out: Vec<u32> = stream::iter([1, 1, 2, 1, 1])
        .dedup_last(1, |k: &u32| *k)
        .collect()
        .await;
    assert_eq!(out, [1, 2, 1]);
}

#[tokio::test]
async fn dedup_last_max_remembers_every_key_without_allocating_up_front() {
    let out: Vec<u32> = stream::iter([1, 2, 1, 3, 2])
        .dedup_last(usize::MAX, |k: &u32| *k)
        .collect()
        .await;
    assert_eq!(out, [1, 2, 3]);
}

// branch, partition, split_results

#[test]
#[should_panic(expected = "branch: capacity must be at least 1")]
fn branch_zero_is_refused() {
    let _ = stream::iter([1u32]).branch(0, Either::<u32, u32>::Left);
}

#[test]
#[should_panic(expected = "branch: capacity must be at least 1")]
fn partition_zero_is_refused() {
    let _ = stream::iter([1u32]).partition(0, |x: &u32| x.is_multiple_of(2));
}

#[test]
#[should_panic(expected = "branch: capacity must be at least 1")]
fn split_results_zero_is_refused() {
    let _ = stream::iter([Ok::<u32, u32>(1)]).split_results(0);
}

/// Polls both halves together, as the docs require.
async fn drain_both<L, R>(
    left: flowgate::pipeline::Branch<L>,
    right: flowgate::pipeline::Branch<R>,
) -> (Vec<L>, Vec<R>) {
    tokio::join!(left.collect::<Vec<_>>(), right.collect::<Vec<_>>())
}

#[tokio::test]
async fn branch_capacity_one_and_max_route_everything() {
    for capacity in [1, usize::MAX] {
        let (even, odd) = stream::iter(0..10u32).partition(capacity, |x| x.is_multiple_of(2));
        let (even, odd) = drain_both(even, odd).await;
        assert_eq!(even, [0, 2, 4, 6, 8], "capacity {capacity}");
        assert_eq!(odd, [1, 3, 5, 7, 9], "capacity {capacity}");
        let (ok, err) = stream::iter([Ok(1u32), Err("x"), Ok(2)]).split_results(capacity);
        assert_eq!(drain_both(ok, err).await, (vec![1, 2], vec!["x"]));
    }
}

#[tokio::test]
async fn branch_capacity_one_holds_at_most_one_item_for_an_idle_half() {
    // Only the left half is polled: the first right item is queued, and the
    // left half then waits for room instead of buffering without bound.
    let (left, right) =
        stream::iter([Either::Right(0u32), Either::Right(1), Either::Left(2)]).branch(1, |x| x);
    let mut left = pin!(left);
    assert!(
        futures_util::poll!(left.next()).is_pending(),
        "the second right item has no room"
    );
    drop(right);
    assert_eq!(left.next().await, Some(2), "a dropped half frees the other");
}

// ===== par_map_keyed, par_map_keyed_unordered =====

#[test]
#[should_panic(expected = "par_map_keyed: per_key must be at least 1")]
fn par_map_keyed_zero_per_key_is_refused() {
    let _ = stream::iter([1u32]).par_map_keyed(1, 0, |x| *x, std::future::ready);
}

#[test]
#[should_panic(expected = "par_map_keyed_unordered: limit must be at least 1")]
fn par_map_keyed_unordered_zero_limit_is_refused() {
    let _ = stream::iter([1u32]).par_map_keyed_unordered(0, 1, |x| *x, std::future::ready);
}

#[tokio::test]
async fn par_map_keyed_one_is_strictly_serial_and_in_order() {
    let out: Vec<u32> = stream::iter(0..20u32)
        .par_map_keyed(1, 1, |x| x % 3, std::future::ready)
        .buffer(0)
        .collect()
        .await;
    assert_eq!(out, (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn par_map_keyed_max_limit_per_key_and_buffer_allocate_nothing_up_front() {
    // usize::MAX everywhere: no overflow in limit + buffer, no reservation.
    let out: Vec<u32> = stream::iter(0..1000u32)
        .par_map_keyed_unordered(usize::MAX, usize::MAX, |x| x % 7, std::future::ready)
        .buffer(usize::MAX)
        .collect()
        .await;
    assert_eq!(out.len(), 1000);
    let out: Vec<u32> = stream::iter(0..1000u32)
        .par_map_keyed(usize::MAX, usize::MAX, |x| x % 7, std::future::ready)
        .buffer(usize::MAX)
        .collect()
        .await;
    assert_eq!(out, (0..1000).collect::<Vec<_>>());
}
