//! `Duration::MAX` (and any duration too long for an `Instant`) means
//! "never" everywhere a duration is a timer: no overflow panic at the first
//! poll, no timer that fires at once, no worker that dies. Under paused
//! tokio time, a year of silence passes without the timer firing.

use std::time::Duration;

use flowgate::dataloader::DataLoader;
use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore, Processed};
use flowgate::pipeline::Keep;
use flowgate::prelude::*;
use flowgate::resilience::{BreakerState, CircuitBreaker, Rejected};
use futures_util::stream::{self, StreamExt as _};
use tokio::time::advance;

const YEAR: Duration = Duration::from_secs(60 * 60 * 24 * 365);

/// A stream of `items` followed by silence that never ends.
fn then_silence(items: Vec<u32>) -> impl futures_core::Stream<Item = u32> + Unpin {
    stream::iter(items).chain(stream::pending())
}

#[tokio::test(start_paused = true)]
async fn a_max_timeout_never_fires() {
    let mut timed = std::pin::pin!(then_silence(vec![1, 2]).item_timeout(Duration::MAX));
    assert_eq!(timed.next().await.map(|r| r.ok()), Some(Some(1)));
    assert_eq!(timed.next().await.map(|r| r.ok()), Some(Some(2)));
    let next = tokio::time::timeout(YEAR, timed.next()).await;
    assert!(next.is_err(), "no Elapsed after a year");
}

#[tokio::test(start_paused = true)]
async fn a_max_idle_timeout_never_ends_the_stream() {
    let mut idle = std::pin::pin!(then_silence(vec![1]).idle_timeout(Duration::MAX));
    assert_eq!(idle.next().await.map(|r| r.ok()), Some(Some(1)));
    assert!(tokio::time::timeout(YEAR, idle.next()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_max_heartbeat_never_ticks() {
    let mut beats = std::pin::pin!(then_silence(vec![7]).heartbeat(Duration::MAX));
    assert!(beats.next().await.is_some(), "the item passes");
    assert!(
        tokio::time::timeout(YEAR, beats.next()).await.is_err(),
        "no tick after a year"
    );
}

#[tokio::test(start_paused = true)]
async fn a_max_debounce_holds_the_item_and_yields_it_at_the_end() {
    let mut quiet = std::pin::pin!(stream::iter([1, 2, 3]).debounce(Duration::MAX));
    // The quiet period never ends; the stream's end releases the last item.
    assert_eq!(quiet.next().await, Some(3));
    assert_eq!(quiet.next().await, None);
    let mut silent = std::pin::pin!(then_silence(vec![1]).debounce(Duration::MAX));
    assert!(tokio::time::timeout(YEAR, silent.next()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_max_throttle_window_never_closes() {
    let first: Vec<u32> = stream::iter(1..=5)
        .throttle_keep(Duration::MAX, Keep::First)
        .collect()
        .await;
    assert_eq!(first, [1], "the window opened by 1 never closes");
    let at_end: Vec<u32> = stream::iter(1..=3)
        .throttle_keep(Duration::MAX, Keep::Last)
        .collect()
        .await;
    assert_eq!(at_end, [3], "the stream's end yields the latest item");
    let mut last =
        std::pin::pin!(then_silence(vec![1, 2]).throttle_keep(Duration::MAX, Keep::Last));
    assert!(
        tokio::time::timeout(YEAR, last.next()).await.is_err(),
        "the window never closes, so nothing is yielded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_max_dedup_window_never_forgets() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let received = stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut seen = std::pin::pin!(received.dedup_within(Duration::MAX, |k: &u32| *k));
    tx.send(1).unwrap();
    assert_eq!(seen.next().await, Some(1));
    advance(YEAR).await;
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(seen.next().await, Some(2), "1 is still within the window");
}

#[tokio::test(start_paused = true)]
async fn a_max_idempotency_ttl_keeps_keys_for_ever() {
    let once = Idempotency::new(MemoryIdempotencyStore::new(10, Duration::MAX));
    let run = || async { Ok::<_, std::io::Error>(7) };
    assert_eq!(once.run(1_u64, run).await.unwrap(), Processed::Done(7));
    advance(YEAR).await;
    assert_eq!(once.run(1_u64, run).await.unwrap(), Processed::Skipped);
}

#[tokio::test(start_paused = true)]
async fn a_max_dataloader_cache_ttl_caches_for_ever() {
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&fetches);
    let loader: DataLoader<u64, u64, String> = DataLoader::builder()
        .cache(100, Duration::MAX)
        .build(move |keys: Vec<u64>| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                Ok::<_, String>(
                    keys.into_iter()
                        .map(|k| (k, k * 10))
                        .collect::<std::collections::HashMap<_, _>>(),
                )
            }
        })
        .unwrap();
    assert_eq!(loader.load(4).await.unwrap(), 40);
    advance(YEAR).await;
    assert_eq!(loader.load(4).await.unwrap(), 40, "the worker is alive");
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second load came from the cache"
    );
}

#[tokio::test(start_paused = true)]
async fn a_max_breaker_cooldown_stays_open() {
    let breaker = CircuitBreaker::builder()
        .without_failure_ratio()
        .consecutive_failures(1)
        .cooldown(Duration::MAX)
        .build()
        .unwrap();
    breaker.try_acquire().expect("closed").failure();
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(YEAR).await;
    assert!(
        matches!(breaker.try_acquire(), Err(Rejected::Open { .. })),
        "a cooldown of Duration::MAX does not end (it was treated as zero)"
    );
    assert_eq!(breaker.state(), BreakerState::Open);
}
