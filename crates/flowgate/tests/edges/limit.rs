//! Edges of `flowgate::limit`: `Rate`, `RateLimiter`, `InFlightLimit`,
//! `KeyedRateLimiter`, `FairLimit`, `FairRate`, and the `rate_limit` /
//! `limit_in_flight` stages.

use std::time::Duration;

use flowgate::limit::{
    BuildError, FairLimit, FairRate, InFlightLimit, KeyedRateLimiter, Rate, RateError, RateLimiter,
};
use flowgate::prelude::*;
use futures_util::{StreamExt, stream};
use tokio::time::{Instant, advance};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

// ===== Rate::new =====

#[test]
fn rate_new_zero_one_max() {
    let sec = Duration::from_secs(1);
    assert_eq!(Rate::new(0, sec, 1), Err(RateError::ZeroCount));
    assert_eq!(Rate::new(1, Duration::ZERO, 1), Err(RateError::ZeroPeriod));
    assert_eq!(Rate::new(1, sec, 0), Err(RateError::ZeroBurst));
    assert_eq!(Rate::new(1, sec, 1).unwrap().interval(), sec);
    assert_eq!(
        Rate::new(1, Duration::from_nanos(1), 1).unwrap().interval(),
        Duration::from_nanos(1)
    );
    assert_eq!(
        Rate::new(u32::MAX, Duration::from_nanos(1), 1),
        Err(RateError::IntervalTooShort)
    );
    assert_eq!(
        Rate::new(1, Duration::MAX, 1),
        Err(RateError::IntervalTooLong)
    );
    // u32::MAX burst at 1 ns per cell fits.
    let wide = Rate::new(1, Duration::from_nanos(1), u32::MAX).unwrap();
    assert_eq!(wide.burst(), u32::MAX);
    assert_eq!(Rate::new(1, 500 * YEAR, 2), Err(RateError::BurstTooLong));
    // u32::MAX per u32::MAX seconds: one per second.
    let slow = Rate::new(u32::MAX, Duration::from_secs(u64::from(u32::MAX)), u32::MAX);
    assert_eq!(slow.unwrap().interval(), Duration::from_secs(1));
}

#[test]
#[should_panic(expected = "Rate::per_second: count must be at least 1")]
fn per_second_zero() {
    let _ = Rate::per_second(0);
}

#[test]
#[should_panic(expected = "Rate::per_second: period / count must be at least 1 ns")]
fn per_second_max() {
    let _ = Rate::per_second(u32::MAX);
}

#[test]
fn per_second_one_and_largest() {
    assert_eq!(Rate::per_second(1).interval(), Duration::from_secs(1));
    assert_eq!(
        Rate::per_second(1_000_000_000).interval(),
        Duration::from_nanos(1)
    );
}

#[test]
#[should_panic(expected = "Rate::per_minute: count must be at least 1")]
fn per_minute_zero() {
    let _ = Rate::per_minute(0);
}

#[test]
fn per_minute_one_and_max() {
    assert_eq!(Rate::per_minute(1).interval(), Duration::from_secs(60));
    assert_eq!(
        Rate::per_minute(u32::MAX).interval(),
        Duration::from_nanos(13)
    );
}

#[test]
#[should_panic(expected = "Rate::per_period: period must be greater than zero")]
fn per_period_zero_period() {
    let _ = Rate::per_period(1, Duration::ZERO);
}

#[test]
#[should_panic(expected = "Rate::per_period: count must be at least 1")]
fn per_period_zero_count() {
    let _ = Rate::per_period(0, Duration::from_secs(1));
}

#[test]
#[should_panic(expected = "Rate::per_period: period / count must be at most 2^64 ns")]
fn per_period_max_period() {
    let _ = Rate::per_period(1, Duration::MAX);
}

#[test]
#[should_panic(expected = "Rate::with_burst: burst must be at least 1")]
fn with_burst_zero() {
    let _ = Rate::per_second(1).with_burst(0);
}

#[test]
#[should_panic(expected = "Rate::with_burst: period / count * burst must be at most 2^64 ns")]
fn with_burst_too_long() {
    let _ = Rate::per_minute(1).with_burst(u32::MAX);
}

#[test]
fn with_burst_one_and_max() {
    assert_eq!(Rate::per_second(1).with_burst(1).burst(), 1);
    assert_eq!(
        Rate::per_second(1_000_000_000).with_burst(u32::MAX).burst(),
        u32::MAX
    );
}

// ===== RateLimiter =====

#[tokio::test(start_paused = true)]
async fn limiter_of_one_per_centuries_never_overflows() {
    // A slot 500 years away is beyond what an Instant may hold on some
    // platforms: it means "never", not a panic.
    let limiter = RateLimiter::new(Rate::per_period(1, 500 * YEAR));
    assert!(limiter.try_acquire().is_ok());
    let not_ready = limiter.try_acquire().unwrap_err();
    assert!(not_ready.wait_time() >= 29 * YEAR);
    let waiting = tokio::time::timeout(Duration::from_secs(3600), limiter.acquire()).await;
    assert!(waiting.is_err(), "the next cell is centuries away");
}

#[tokio::test(start_paused = true)]
async fn limiter_with_max_burst_lets_a_burst_through() {
    let limiter = RateLimiter::new(Rate::per_second(1_000_000_000).with_burst(u32::MAX));
    for _ in 0..10_000 {
        assert!(limiter.try_acquire().is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn limiter_of_one_per_second() {
    let limiter = RateLimiter::new(Rate::per_second(1));
    let start = Instant::now();
    limiter.acquire().await;
    limiter.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_stage_one_and_max() {
    let out: Vec<u32> = stream::iter(0..3)
        .rate_limit(Rate::per_second(1_000_000_000).with_burst(u32::MAX))
        .collect()
        .await;
    assert_eq!(out, [0, 1, 2]);
    let start = Instant::now();
    let out: Vec<u32> = stream::iter(0..2)
        .rate_limit(Rate::per_second(1))
        .collect()
        .await;
    assert_eq!(out, [0, 1]);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

// ===== InFlightLimit =====

#[test]
#[should_panic(expected = "InFlightLimit::new: max must be at least 1")]
fn in_flight_zero() {
    let _ = InFlightLimit::new(0);
}

#[test]
#[should_panic(expected = "InFlightLimit::new: max must be at most InFlightLimit::MAX")]
fn in_flight_usize_max() {
    let _ = InFlightLimit::new(usize::MAX);
}

#[tokio::test]
async fn in_flight_one_and_max() {
    let one = InFlightLimit::new(1);
    let permit = one.acquire().await;
    assert!(one.try_acquire().is_none());
    drop(permit);
    assert_eq!(one.in_flight(), 0);

    let max = InFlightLimit::new(InFlightLimit::MAX);
    let held: Vec<_> = (0..100).map(|_| max.try_acquire().unwrap()).collect();
    assert_eq!(max.in_flight(), 100);
    assert_eq!(max.available(), InFlightLimit::MAX - 100);
    drop(held);
    assert_eq!(max.max(), InFlightLimit::MAX);
}

#[tokio::test(start_paused = true)]
async fn limit_in_flight_stage_one() {
    let limit = InFlightLimit::new(1);
    let mut items = Box::pin(stream::iter(0..2).limit_in_flight(&limit));
    let (first, permit) = items.next().await.unwrap();
    assert_eq!(first, 0);
    let blocked = tokio::time::timeout(Duration::from_secs(1), items.next()).await;
    assert!(blocked.is_err(), "no room until the permit is dropped");
    drop(permit);
    advance(Duration::from_millis(1)).await;
    assert_eq!(items.next().await.map(|(x, _)| x), Some(1));
}

// ===== KeyedRateLimiter =====

#[test]
fn keyed_builder_shards_zero_one_max() {
    let builder = || KeyedRateLimiter::<u64>::builder(Rate::per_second(1));
    assert_eq!(
        builder().shards(0).build().unwrap_err(),
        BuildError::ZeroShards
    );
    assert!(builder().shards(1).build().is_ok());
    assert!(
        builder()
            .shards(KeyedRateLimiter::<u64>::MAX_SHARDS)
            .build()
            .is_ok()
    );
    let err = builder().shards(usize::MAX).build().unwrap_err();
    assert_eq!(err, BuildError::TooManyShards(usize::MAX));
    assert!(err.to_string().starts_with("shards must be at most 4096"));
    // An odd count works as well as a power of two.
    assert!(builder().shards(3).build().is_ok());
}

#[tokio::test(start_paused = true)]
async fn keyed_sweep_threshold_zero_one_max() {
    let builder = || KeyedRateLimiter::<u64>::builder(Rate::per_second(10)).shards(1);
    assert_eq!(
        builder().sweep_threshold(0).build().unwrap_err(),
        BuildError::ZeroSweepThreshold
    );
    // 1: the shard sweeps whenever it has doubled; idle keys go as new
    // ones come.
    let eager = builder().sweep_threshold(1).build().unwrap();
    // usize::MAX: never by itself.
    let never = builder().sweep_threshold(usize::MAX).build().unwrap();
    for round in 0..10u64 {
        for key in round * 100..(round + 1) * 100 {
            eager.try_acquire(&key).unwrap();
            never.try_acquire(&key).unwrap();
        }
        advance(Duration::from_millis(100)).await;
    }
    assert!(eager.len() <= 200, "{}", eager.len());
    assert_eq!(never.len(), 1000);
    never.retain_recent();
    assert_eq!(never.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn keyed_limiter_of_one_per_centuries_never_overflows() {
    let limiter = KeyedRateLimiter::new(Rate::per_period(1, 500 * YEAR));
    assert!(limiter.try_acquire(&"k").is_ok());
    let not_ready = limiter.try_acquire(&"k").unwrap_err();
    assert!(not_ready.wait_time() >= 29 * YEAR);
    let waiting = tokio::time::timeout(Duration::from_secs(3600), limiter.acquire(&"k")).await;
    assert!(waiting.is_err(), "the next cell is centuries away");
    // A try_acquire behind a (cancelled) waiter, and the estimate after a
    // queue, saturate too.
    let mut waiter = tokio_test::task::spawn(limiter.acquire(&"k"));
    assert!(waiter.poll().is_pending());
    assert!(limiter.try_acquire(&"k").unwrap_err().wait_time() >= 29 * YEAR);
    drop(waiter);
    // Idle keys of such a rate stay (their TAT is centuries ahead).
    limiter.retain_recent();
    assert_eq!(limiter.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn keyed_limiter_with_max_burst_lets_a_burst_through() {
    let limiter = KeyedRateLimiter::new(Rate::per_second(1_000_000_000).with_burst(u32::MAX));
    for _ in 0..10_000 {
        assert!(limiter.try_acquire(&0u8).is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn keyed_limiter_of_one_per_second_and_one_key() {
    let limiter = KeyedRateLimiter::builder(Rate::per_second(1))
        .shards(1)
        .build()
        .unwrap();
    let start = Instant::now();
    limiter.acquire(&()).await;
    limiter.acquire(&()).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(limiter.len(), 1);
    assert!(!limiter.is_empty());
}

// ===== FairLimit =====

#[test]
#[should_panic(expected = "FairLimit::new: capacity must be at least 1")]
fn fair_limit_zero() {
    let _ = FairLimit::<u8>::new(0);
}

#[test]
fn fair_limit_one_and_max() {
    let one = FairLimit::new(1);
    let permit = one.try_acquire(&"a").unwrap();
    assert!(one.try_acquire(&"b").is_none());
    drop(permit);
    assert_eq!(one.available(), 1);

    let max = FairLimit::new(usize::MAX);
    let held: Vec<_> = (0..100).map(|t| max.try_acquire(&t).unwrap()).collect();
    assert_eq!(max.in_use(), 100);
    assert_eq!(max.available(), usize::MAX - 100);
    drop(held);
    assert_eq!((max.capacity(), max.tenants()), (usize::MAX, 0));
}

#[test]
fn fair_limit_builder_zero_capacity_and_weight() {
    assert_eq!(
        FairLimit::<u8>::builder(0).build().unwrap_err(),
        BuildError::ZeroCapacity
    );
    assert_eq!(
        FairLimit::builder(1).weight(0u8, 0).build().unwrap_err(),
        BuildError::ZeroWeight
    );
    let limit = FairLimit::builder(1).weight(0u8, u32::MAX).build().unwrap();
    assert_eq!(limit.weight(&0), u32::MAX);
}

#[test]
#[should_panic(expected = "FairLimit::set_weight: weight must be at least 1")]
fn fair_limit_weight_zero() {
    FairLimit::new(1).set_weight("a", 0);
}

#[tokio::test(start_paused = true)]
async fn fair_limit_extreme_weights_still_share() {
    // u32::MAX against 1: the heavy one gets every freed permit while it
    // holds fewer than u32::MAX times the light one's — but a light tenant
    // holding nothing still comes first.
    let limit = FairLimit::new(2);
    limit.set_weight("heavy", u32::MAX);
    let a = limit.try_acquire(&"heavy").unwrap();
    let b = limit.try_acquire(&"heavy").unwrap();
    let mut light = tokio_test::task::spawn(limit.acquire(&"light"));
    let mut heavy = tokio_test::task::spawn(limit.acquire(&"heavy"));
    assert!(light.poll().is_pending());
    assert!(heavy.poll().is_pending());
    drop(a);
    assert!(light.poll().is_ready(), "0 / 1 is below 1 / u32::MAX");
    drop(b);
    assert!(heavy.poll().is_ready());
}

// ===== FairRate =====

#[test]
#[should_panic(expected = "FairRate::set_weight: weight must be at least 1")]
fn fair_rate_weight_zero() {
    FairRate::new(Rate::per_second(1)).set_weight("a", 0);
}

#[test]
fn fair_rate_builder_zero_and_max_weight() {
    assert_eq!(
        FairRate::builder(Rate::per_second(1))
            .weight(0u8, 0)
            .build()
            .unwrap_err(),
        BuildError::ZeroWeight
    );
    let fair = FairRate::builder(Rate::per_second(1))
        .weight(0u8, u32::MAX)
        .build()
        .unwrap();
    assert_eq!((fair.weight(&0), fair.weight(&1)), (u32::MAX, 1));
}

#[tokio::test(start_paused = true)]
async fn fair_rate_of_one_per_centuries_never_overflows() {
    let fair = FairRate::new(Rate::per_period(1, 500 * YEAR));
    assert!(fair.try_acquire(&"a").is_ok());
    assert!(fair.try_acquire(&"a").unwrap_err().wait_time() >= 29 * YEAR);
    let waiting = tokio::time::timeout(Duration::from_secs(3600), fair.acquire(&"b")).await;
    assert!(waiting.is_err(), "the next cell is centuries away");
    assert_eq!((fair.waiting(), fair.tenants()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn fair_rate_with_max_burst_and_max_weight() {
    let fair = FairRate::builder(Rate::per_second(1_000_000_000).with_burst(u32::MAX))
        .weight(1u8, u32::MAX)
        .build()
        .unwrap();
    for _ in 0..10_000 {
        assert!(fair.try_acquire(&0).is_ok());
        fair.acquire(&1).await;
    }
}
