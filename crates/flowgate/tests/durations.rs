//! `Duration::MAX` (and any duration too long for an `Instant`) means
//! "never" everywhere a duration is a timer: no overflow panic at the first
//! poll, no timer that fires at once, no worker that dies. Under paused
//! tokio time, a year of silence passes without the timer firing. (The
//! pipeline operators' maximum durations are walked in `tests/edges`.)

use std::time::Duration;

use flowgate::dataloader::DataLoader;
use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore, Processed};
use flowgate::resilience::{BreakerState, CircuitBreaker, Rejected};
use tokio::time::advance;

const YEAR: Duration = Duration::from_secs(60 * 60 * 24 * 365);

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
