//! Edges of `flowgate::limit`: `Rate`, `RateLimiter`, `InFlightLimit`, and
//! the `rate_limit` / `limit_in_flight` stages.

use std::time::Duration;

use flowgate::limit::{InFlightLimit, Rate, RateError, RateLimiter};
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
