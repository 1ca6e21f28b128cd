//! Edges of `flowgate::resilience` and its stages (`par_map_retry`,
//! `par_map_adaptive`, `route_errors`, `pausable`).

use std::time::Duration;

use flowgate::prelude::*;
use flowgate::resilience::adaptive::BuildError as AdaptiveBuildError;
use flowgate::resilience::breaker::BuildError as BreakerBuildError;
use flowgate::resilience::{
    AdaptiveLimit, Backoff, BreakerState, CircuitBreaker, CircuitBreakerBuilder, Guard, Jitter,
    PauseHandle, Retry, StopReason, Window, dead_letters,
};
use futures_util::{StreamExt, stream};
use tokio::time::{Instant, advance};

const DAY: Duration = Duration::from_secs(24 * 3600);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

fn delays(backoff: Backoff, n: usize) -> Vec<Duration> {
    backoff.schedule_seeded(1).take(n).collect()
}

// ===== Backoff =====

#[test]
fn backoff_zero_one_max_delays() {
    let z = Duration::ZERO;
    let one = Duration::from_nanos(1);
    assert_eq!(delays(Backoff::constant(z), 3), [z, z, z]);
    assert_eq!(delays(Backoff::constant(one), 2), [one, one]);
    // Delays saturate at 2^64 ns rather than overflow.
    let top = Duration::from_nanos(u64::MAX);
    assert_eq!(delays(Backoff::constant(Duration::MAX), 2), [top, top]);
    assert_eq!(delays(Backoff::linear(z, z), 3), [z, z, z]);
    assert_eq!(
        delays(Backoff::linear(Duration::MAX, Duration::MAX), 3),
        [top, top, top]
    );
    assert_eq!(delays(Backoff::exponential(z), 3), [z, z, z]);
    assert_eq!(
        delays(Backoff::exponential(Duration::MAX), 3),
        [top, top, top]
    );
    assert_eq!(delays(Backoff::decorrelated(z), 3), [z, z, z]);
    assert_eq!(delays(Backoff::decorrelated(Duration::MAX), 2), [top, top]);
    // 100 doublings of 1 ns saturate.
    assert_eq!(delays(Backoff::exponential(one), 100)[99], top);
}

#[test]
fn backoff_caps_and_jitter_at_the_edges() {
    let z = Duration::ZERO;
    let capped = Backoff::exponential(Duration::from_secs(1)).max_delay(z);
    assert_eq!(delays(capped, 3), [z, z, z]);
    assert_eq!(capped.cap(), Some(z));
    let uncapped = Backoff::exponential(Duration::from_secs(1)).max_delay(Duration::MAX);
    assert_eq!(delays(uncapped, 2)[1], Duration::from_secs(2));
    for jitter in [Jitter::None, Jitter::Full, Jitter::Equal] {
        let top = Backoff::constant(Duration::MAX).jitter(jitter);
        assert!(
            delays(top, 5)
                .iter()
                .all(|d| d.as_nanos() <= u128::from(u64::MAX))
        );
        assert_eq!(delays(Backoff::constant(z).jitter(jitter), 2), [z, z]);
    }
}

#[test]
fn backoff_factor_one_and_max() {
    let s = Duration::from_secs(1);
    assert_eq!(delays(Backoff::exponential(s).factor(1.0), 3), [s, s, s]);
    let huge = Backoff::exponential(s).factor(f64::MAX);
    assert_eq!(delays(huge, 2)[1], Duration::from_nanos(u64::MAX));
}

#[test]
#[should_panic(expected = "Backoff::factor: factor must be finite and at least 1, got 0.5")]
fn backoff_factor_below_one() {
    let _ = Backoff::exponential(Duration::from_secs(1)).factor(0.5);
}

#[test]
#[should_panic(expected = "Backoff::factor: factor must be finite and at least 1, got 0")]
fn backoff_factor_zero() {
    let _ = Backoff::exponential(Duration::from_secs(1)).factor(0.0);
}

#[test]
#[should_panic(expected = "Backoff::factor: factor must be finite and at least 1, got NaN")]
fn backoff_factor_nan() {
    let _ = Backoff::exponential(Duration::from_secs(1)).factor(f64::NAN);
}

#[test]
#[should_panic(expected = "Backoff::factor: factor must be finite and at least 1, got inf")]
fn backoff_factor_infinite() {
    let _ = Backoff::exponential(Duration::from_secs(1)).factor(f64::INFINITY);
}

#[test]
#[should_panic(expected = "Backoff::factor: factor must be finite and at least 1, got -2")]
fn backoff_factor_negative() {
    let _ = Backoff::exponential(Duration::from_secs(1)).factor(-2.0);
}

// ===== Retry =====

#[test]
#[should_panic(expected = "Retry::max_attempts: attempts must be at least 1")]
fn retry_zero_attempts() {
    let _ = Retry::<()>::new(Backoff::constant(Duration::ZERO)).max_attempts(0);
}

#[tokio::test(start_paused = true)]
async fn retry_one_attempt() {
    let retry = Retry::new(Backoff::constant(Duration::from_secs(1))).max_attempts(1);
    let err = retry
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.reason(), StopReason::AttemptsExhausted);
}

#[tokio::test(start_paused = true)]
async fn retry_max_attempts_bounded_by_a_budget() {
    let retry = Retry::new(Backoff::constant(Duration::from_secs(1)))
        .max_attempts(u32::MAX)
        .budget(Duration::from_secs(10));
    assert_eq!(retry.attempts_limit(), u32::MAX);
    let err = retry
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 11);
    assert_eq!(err.reason(), StopReason::BudgetExhausted);
}

#[tokio::test(start_paused = true)]
async fn retry_zero_budget_allows_only_immediate_retries() {
    let delayed = Retry::new(Backoff::constant(Duration::from_millis(1)))
        .max_attempts(5)
        .budget(Duration::ZERO);
    let err = delayed
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(
        (err.attempts(), err.reason()),
        (1, StopReason::BudgetExhausted)
    );
    let immediate = Retry::new(Backoff::constant(Duration::ZERO))
        .max_attempts(5)
        .budget(Duration::ZERO);
    let err = immediate
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(
        (err.attempts(), err.reason()),
        (5, StopReason::AttemptsExhausted)
    );
}

#[tokio::test(start_paused = true)]
async fn retry_max_budget_is_no_budget() {
    let retry = Retry::new(Backoff::constant(DAY))
        .max_attempts(3)
        .budget(Duration::MAX);
    let start = Instant::now();
    let err = retry
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(
        (err.attempts(), err.reason()),
        (3, StopReason::AttemptsExhausted)
    );
    assert_eq!(start.elapsed(), 2 * DAY);
}

#[tokio::test(start_paused = true)]
async fn retry_with_max_delays_waits_without_overflow() {
    let retry = Retry::new(Backoff::constant(Duration::MAX)).max_attempts(2);
    let run = retry.run(|| async { Err::<(), _>("down") });
    let out = tokio::time::timeout(10 * YEAR, run).await;
    assert!(out.is_err(), "a 584-year backoff is still sleeping");
}

// ===== CircuitBreaker =====

fn b() -> CircuitBreakerBuilder {
    CircuitBreaker::builder()
}

fn err(builder: CircuitBreakerBuilder) -> BreakerBuildError {
    builder.build().unwrap_err()
}

#[test]
fn breaker_failure_ratio_edges() {
    assert_eq!(
        err(b().failure_ratio(0.0)),
        BreakerBuildError::FailureRatio(0.0)
    );
    assert_eq!(
        err(b().failure_ratio(-0.5)),
        BreakerBuildError::FailureRatio(-0.5)
    );
    assert_eq!(
        err(b().failure_ratio(1.5)),
        BreakerBuildError::FailureRatio(1.5)
    );
    assert!(matches!(
        err(b().failure_ratio(f64::NAN)),
        BreakerBuildError::FailureRatio(r) if r.is_nan()
    ));
    assert!(matches!(
        err(b().failure_ratio(f64::INFINITY)),
        BreakerBuildError::FailureRatio(_)
    ));
    assert!(b().failure_ratio(1.0).build().is_ok());
    assert!(b().failure_ratio(f64::MIN_POSITIVE).build().is_ok());
}

#[test]
fn breaker_window_edges() {
    assert_eq!(
        err(b().window(Window::last_calls(0))),
        BreakerBuildError::ZeroWindowCalls
    );
    assert!(
        b().window(Window::last_calls(1))
            .min_calls(1)
            .build()
            .is_ok()
    );
    assert_eq!(
        err(b().window(Window::last_calls(1)).min_calls(2)),
        BreakerBuildError::MinCallsAboveWindow {
            min_calls: 2,
            window: 1
        }
    );
    // A window of usize::MAX calls allocates only what it holds.
    assert!(
        b().window(Window::last_calls(usize::MAX))
            .min_calls(usize::MAX)
            .build()
            .is_ok()
    );
    assert_eq!(
        err(b().window(Window::last(Duration::ZERO))),
        BreakerBuildError::ZeroWindowSpan
    );
    assert_eq!(
        err(b().window(Window::last_bucketed(Duration::from_secs(1), 0))),
        BreakerBuildError::ZeroWindowBuckets
    );
    assert!(
        b().window(Window::last(Duration::from_nanos(1)))
            .build()
            .is_ok()
    );
    assert!(b().window(Window::last(Duration::MAX)).build().is_ok());
    assert!(
        b().window(Window::last_bucketed(Duration::MAX, u32::MAX))
            .build()
            .is_ok()
    );
    assert!(
        b().window(Window::last_bucketed(Duration::from_secs(1), 1))
            .build()
            .is_ok()
    );
}

#[test]
fn breaker_counts_edges() {
    assert_eq!(err(b().min_calls(0)), BreakerBuildError::ZeroMinCalls);
    assert!(b().min_calls(1).build().is_ok());
    assert_eq!(
        err(b().consecutive_failures(0)),
        BreakerBuildError::ZeroConsecutiveFailures
    );
    assert!(b().consecutive_failures(1).build().is_ok());
    assert!(b().consecutive_failures(u32::MAX).build().is_ok());
    assert_eq!(
        err(b().without_failure_ratio()),
        BreakerBuildError::NoTripRule
    );
    assert_eq!(err(b().half_open_probes(0)), BreakerBuildError::ZeroProbes);
    assert!(b().half_open_probes(1).build().is_ok());
    assert!(b().half_open_probes(u32::MAX).build().is_ok());
    assert_eq!(
        err(b().cooldown(Duration::ZERO)),
        BreakerBuildError::ZeroCooldown
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_one_failure_trips_and_one_probe_closes() {
    let breaker = b()
        .without_failure_ratio()
        .consecutive_failures(1)
        .cooldown(Duration::from_nanos(1))
        .half_open_probes(1)
        .build()
        .unwrap();
    let _ = breaker.run(async { Err::<(), _>("down") }).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.run(async { Ok::<_, ()>(()) }).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn breaker_max_cooldown_stays_open() {
    let breaker = b()
        .without_failure_ratio()
        .consecutive_failures(1)
        .cooldown(Duration::MAX)
        .build()
        .unwrap();
    let _ = breaker.run(async { Err::<(), _>("down") }).await;
    for _ in 0..10 {
        advance(YEAR).await;
        assert_eq!(breaker.state(), BreakerState::Open);
    }
    let rejected = breaker.try_acquire().unwrap_err();
    assert!(rejected.retry_after().unwrap() > YEAR);
}

#[tokio::test(start_paused = true)]
async fn breaker_max_time_window_counts_and_trips() {
    let breaker = b()
        .window(Window::last(Duration::MAX))
        .min_calls(2)
        .failure_ratio(1.0)
        .build()
        .unwrap();
    let _ = breaker.run(async { Err::<(), _>("down") }).await;
    advance(YEAR).await;
    assert_eq!(breaker.stats().window_calls, 1);
    let _ = breaker.run(async { Err::<(), _>("down") }).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

// ===== AdaptiveLimit =====

#[test]
#[should_panic(expected = "AdaptiveLimit::new: range must start at 1 or more")]
fn adaptive_zero_min() {
    let _ = AdaptiveLimit::new(0..=1);
}

#[test]
#[should_panic(expected = "AdaptiveLimit::new: range must not be empty, got 2..=1")]
fn adaptive_empty_range() {
    #[allow(clippy::reversed_empty_ranges)]
    let _ = AdaptiveLimit::new(2..=1);
}

#[test]
#[should_panic(expected = "AdaptiveLimit::new: range must end at most at")]
fn adaptive_usize_max() {
    let _ = AdaptiveLimit::new(1..=usize::MAX);
}

#[tokio::test]
async fn adaptive_one_and_max() {
    let one = AdaptiveLimit::new(1..=1);
    assert_eq!(one.limit(), 1);
    let permit = one.acquire().await;
    assert!(one.try_acquire().is_none());
    drop(permit);
    let max = AdaptiveLimit::builder(1..=AdaptiveLimit::MAX)
        .initial(AdaptiveLimit::MAX)
        .build()
        .unwrap();
    assert_eq!(max.limit(), AdaptiveLimit::MAX);
    assert!(max.try_acquire().is_some());
}

#[test]
fn adaptive_builder_edges() {
    let b = AdaptiveLimit::builder;
    assert_eq!(
        b(1..=4).initial(0).build().unwrap_err(),
        AdaptiveBuildError::InitialOutOfRange(0)
    );
    assert_eq!(
        b(1..=4).initial(usize::MAX).build().unwrap_err(),
        AdaptiveBuildError::InitialOutOfRange(usize::MAX)
    );
    for bad in [0.0, 1.0, -0.5, 2.0] {
        assert_eq!(
            b(1..=4).decrease_ratio(bad).build().unwrap_err(),
            AdaptiveBuildError::DecreaseRatio(bad)
        );
    }
    assert!(matches!(
        b(1..=4).decrease_ratio(f64::NAN).build().unwrap_err(),
        AdaptiveBuildError::DecreaseRatio(r) if r.is_nan()
    ));
    for bad in [0.0, -1.0, 1.5, f64::INFINITY] {
        assert_eq!(
            b(1..=4).ewma_alpha(bad).build().unwrap_err(),
            AdaptiveBuildError::EwmaAlpha(bad)
        );
    }
    assert!(matches!(
        b(1..=4).ewma_alpha(f64::NAN).build().unwrap_err(),
        AdaptiveBuildError::EwmaAlpha(a) if a.is_nan()
    ));
    assert!(b(1..=4).ewma_alpha(1.0).build().is_ok());
    for bad in [-1.0, f64::INFINITY] {
        assert_eq!(
            b(1..=4).rtt_deviation_scale(bad).build().unwrap_err(),
            AdaptiveBuildError::DeviationScale(bad)
        );
    }
    assert!(matches!(
        b(1..=4).rtt_deviation_scale(f64::NAN).build().unwrap_err(),
        AdaptiveBuildError::DeviationScale(s) if s.is_nan()
    ));
    assert!(b(1..=4).rtt_deviation_scale(0.0).build().is_ok());
    assert!(b(1..=4).rtt_deviation_scale(f64::MAX).build().is_ok());
}

// ===== Guard =====

#[test]
#[should_panic(expected = "Guard::timeout: timeout must be greater than zero")]
fn guard_zero_timeout() {
    let _ = Guard::<()>::new().timeout(Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn guard_max_timeout_never_fires() {
    let guard = Guard::new().timeout(Duration::MAX);
    let out = guard
        .run(|| async {
            tokio::time::sleep(10 * YEAR).await;
            Ok::<_, ()>(7)
        })
        .await;
    assert_eq!(out.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn guard_one_ns_timeout_times_out() {
    let guard = Guard::new().timeout(Duration::from_nanos(1));
    let err = guard
        .run(std::future::pending::<Result<(), ()>>)
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.stop_reason(), None);
}

// ===== dead letters and stages =====

#[test]
#[should_panic(expected = "dead_letters: capacity must be at least 1")]
fn dead_letters_zero() {
    let _ = dead_letters::<()>(0);
}

#[tokio::test]
async fn dead_letters_one_and_max() {
    for capacity in [1, usize::MAX] {
        let (tx, dead) = dead_letters::<String>(capacity);
        let ok: Vec<u32> = stream::iter([Ok(1), Err("x".to_owned())])
            .route_errors(tx)
            .collect()
            .await;
        assert_eq!(ok, [1]);
        assert_eq!(dead.collect::<Vec<_>>().await, ["x"]);
    }
}

#[test]
#[should_panic(expected = "par_map_retry: limit must be at least 1")]
fn par_map_retry_zero() {
    let retry = Retry::new(Backoff::constant(Duration::ZERO));
    let _ = stream::iter([1u32]).par_map_retry(0, retry, |x: &u32| {
        let x = *x;
        async move { Ok::<_, ()>(x) }
    });
}

#[tokio::test(start_paused = true)]
async fn par_map_retry_one_and_max() {
    for limit in [1, usize::MAX] {
        let retry = Retry::new(Backoff::constant(Duration::ZERO)).max_attempts(1);
        let out: Vec<_> = stream::iter([1u32, 2])
            .par_map_retry(limit, retry, |x: &u32| {
                let x = *x;
                async move { if x == 2 { Err(()) } else { Ok(x) } }
            })
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert_eq!(out.iter().filter(|r| r.is_err()).count(), 1);
    }
}

#[test]
#[should_panic(expected = "AdaptiveLimit::new: range must start at 1 or more")]
fn par_map_adaptive_zero() {
    let _ = stream::iter([1u32]).par_map_adaptive(0..=1, |x| async move { Ok::<_, ()>(x) });
}

#[tokio::test(start_paused = true)]
async fn par_map_adaptive_one() {
    let out: Vec<_> = stream::iter([1u32, 2, 3])
        .par_map_adaptive(1..=1, |x| async move { Ok::<_, ()>(x) })
        .collect()
        .await;
    assert_eq!(out.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn pausable_with_no_handle_left_is_not_paused() {
    let pause = PauseHandle::new();
    let source = stream::iter(0..2).pausable(&pause);
    pause.pause();
    drop(pause); // nobody could resume: the pause is lifted
    assert_eq!(source.collect::<Vec<_>>().await, [0, 1]);
}
