use std::time::Duration;

use flowgate::limit::{Rate, RateError, RateLimiter};
use flowgate::pipeline::RateLimit;
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, StreamExt};
use proptest::prelude::*;
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn auto_traits() {
    assert_send_sync::<Rate>();
    assert_send_sync::<RateLimiter>();
    assert_send_sync::<RateLimit<stream::Iter<std::vec::IntoIter<u8>>>>();
    let limiter = RateLimiter::new(Rate::per_second(1));
    assert_send(&limiter.acquire());
}

/// Offsets from `start` at which each item of `n` was yielded.
async fn emission_times(n: usize, limiter: impl Into<RateLimiter>) -> Vec<Duration> {
    let start = Instant::now();
    stream::iter(0..n)
        .rate_limit(limiter)
        .map(|_| start.elapsed())
        .collect()
        .await
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn thousand_at_200_per_second_take_five_seconds() {
    let times = emission_times(1000, Rate::per_second(200)).await;
    let total = *times.last().unwrap();
    let period = Duration::from_millis(5);
    // 999 gaps of 5 ms: 5 s to within one period.
    assert!(total >= Duration::from_secs(5) - period, "{total:?}");
    assert!(total <= Duration::from_secs(5) + period, "{total:?}");
    assert_eq!(total, Duration::from_millis(4995));
    for (k, t) in times.iter().enumerate() {
        assert_eq!(*t, period * k as u32, "item {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn burst_of_fifty_passes_at_once() {
    let times = emission_times(1000, Rate::per_second(200).with_burst(50)).await;
    assert!(times[..50].iter().all(|t| t.is_zero()), "first 50 at once");
    assert_eq!(times[50], Duration::from_millis(5));
    assert_eq!(times[999], Duration::from_millis(5) * 950);
}

#[tokio::test(start_paused = true)]
async fn no_burst_after_idle() {
    // The seed's ticker keeps ticking while idle and then lets a burst
    // through; GCRA with burst 1 does not.
    let limiter = RateLimiter::new(Rate::per_second(10));
    limiter.acquire().await;
    sleep(Duration::from_secs(10)).await;
    let times = emission_times(5, limiter.clone()).await;
    assert_eq!(
        times,
        [0, 100, 200, 300, 400].map(Duration::from_millis).to_vec()
    );

    // With burst 3, idle saves up three and no more.
    let limiter = RateLimiter::new(Rate::per_second(10).with_burst(3));
    sleep(Duration::from_secs(10)).await;
    let times = emission_times(5, limiter).await;
    assert_eq!(
        times,
        [0, 0, 0, 100, 200].map(Duration::from_millis).to_vec()
    );
}

#[tokio::test(start_paused = true)]
async fn no_drift_with_inexact_interval() {
    // 3/s: an interval of 333.333333 ms, below the timer's 1 ms resolution.
    // Rounding each wait up must not accumulate.
    let rate = Rate::per_second(3);
    let times = emission_times(301, rate).await;
    let exact = rate.interval() * 300;
    let last = *times.last().unwrap();
    assert!(last >= exact && last - exact <= MS, "{last:?} vs {exact:?}");
}

#[tokio::test(start_paused = true)]
async fn sub_millisecond_interval_keeps_rate_with_burst() {
    let times = emission_times(10_000, Rate::per_second(100_000).with_burst(100)).await;
    let last = *times.last().unwrap();
    // 9,900 cells after the first burst, at 10 us each: 99 ms.
    assert!(last >= Duration::from_millis(99), "{last:?}");
    assert!(last <= Duration::from_millis(100), "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn slow_upstream_spends_no_cells() {
    // Items arrive every 200 ms into a 10/s limiter: each passes at once.
    let start = Instant::now();
    let times: Vec<Duration> = stream::iter(0..5)
        .then(|i| async move {
            sleep(Duration::from_millis(200)).await;
            i
        })
        .rate_limit(Rate::per_second(10))
        .map(|_| start.elapsed())
        .collect()
        .await;
    assert_eq!(
        times,
        [200, 400, 600, 800, 1000]
            .map(Duration::from_millis)
            .to_vec()
    );
}

#[tokio::test(start_paused = true)]
async fn shared_limiter_spans_streams() {
    let limiter = RateLimiter::new(Rate::per_second(100));
    let start = Instant::now();
    let (a, b) = tokio::join!(
        stream::iter(0..50).rate_limit(limiter.clone()).count(),
        stream::iter(0..50).rate_limit(limiter.clone()).count(),
    );
    assert_eq!(a + b, 100);
    // 100 cells at 10 ms: the last one at 990 ms, give or take a timer tick.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(990), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(1000), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn check_reports_wait_time() {
    let limiter = RateLimiter::new(Rate::per_period(4, Duration::from_secs(2)));
    assert!(limiter.try_acquire().is_ok());
    let err = limiter.try_acquire().unwrap_err();
    assert_eq!(err.wait_time(), Duration::from_millis(500));
    assert_eq!(err.ready_at(), Instant::now() + Duration::from_millis(500));
    assert_eq!(err.to_string(), "rate limit reached, ready in 500ms");
    advance(Duration::from_millis(500)).await;
    assert!(limiter.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn cancelled_acquire_takes_no_cell() {
    let limiter = RateLimiter::new(Rate::per_second(10));
    limiter.acquire().await;
    let mut waiting = task::spawn(limiter.acquire());
    assert_pending!(waiting.poll());
    drop(waiting);
    advance(Duration::from_millis(100)).await;
    // The cell freed at 100 ms is still there.
    assert!(limiter.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn stage_polled_by_hand() {
    let mut s = task::spawn(Box::pin(
        stream::iter([1, 2]).rate_limit(Rate::per_second(10)),
    ));
    assert_eq!(assert_ready!(s.poll_next()), Some(1));
    assert_pending!(s.poll_next());
    assert!(!s.is_terminated());
    advance(Duration::from_millis(99)).await;
    assert!(!s.is_woken());
    assert_pending!(s.poll_next());
    advance(Duration::from_millis(1)).await;
    assert!(s.is_woken());
    assert_eq!(assert_ready!(s.poll_next()), Some(2));
    assert_eq!(assert_ready!(s.poll_next()), None);
    assert!(s.is_terminated());
}

#[test]
fn rate_validation() {
    let sec = Duration::from_secs(1);
    assert_eq!(Rate::new(0, sec, 1), Err(RateError::ZeroCount));
    assert_eq!(Rate::new(1, Duration::ZERO, 1), Err(RateError::ZeroPeriod));
    assert_eq!(Rate::new(1, sec, 0), Err(RateError::ZeroBurst));
    assert_eq!(
        Rate::new(10, Duration::from_nanos(5), 1),
        Err(RateError::IntervalTooShort)
    );
    assert_eq!(
        Rate::new(1, Duration::from_secs(u64::MAX / 4), 10),
        Err(RateError::IntervalTooLong)
    );
    assert_eq!(
        Rate::new(1, Duration::from_secs(10_000_000_000), 10),
        Err(RateError::BurstTooLong)
    );
    let rate = Rate::new(10, sec, 5).unwrap();
    assert_eq!(
        (rate.count(), rate.period(), rate.burst(), rate.interval()),
        (10, sec, 5, Duration::from_millis(100))
    );
    assert_eq!(Rate::per_minute(60).interval(), sec);
    assert_eq!(RateError::ZeroCount.to_string(), "count must be at least 1");
}

#[test]
#[should_panic(expected = "Rate::per_second: count must be at least 1")]
fn per_second_zero_panics() {
    let _ = Rate::per_second(0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Item `k` of a stream that is always ready passes at exactly
    /// `max(0, k + 1 - burst) × interval`, up to the timer's 1 ms resolution,
    /// and never early, for any interval of at least the timer's resolution.
    #[test]
    fn emission_times_follow_gcra(
        count in 1u32..=200,
        extra_ms in 0u64..=3_000,
        extra_ns in 0u64..1_000_000,
        burst in 1u32..=20,
        n in 1usize..=80,
    ) {
        let period = Duration::from_millis(u64::from(count) + extra_ms) + Duration::from_nanos(extra_ns);
        let rate = Rate::new(count, period, burst).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let times = rt.block_on(emission_times(n, rate));
        for (k, t) in times.iter().enumerate() {
            let cells = (k as u32 + 1).saturating_sub(burst);
            let exact = rate.interval() * cells;
            prop_assert!(*t >= exact, "item {} at {:?}, before {:?}", k, t, exact);
            prop_assert!(*t - exact <= MS, "item {} at {:?}, late for {:?}", k, t, exact);
        }
    }
}
