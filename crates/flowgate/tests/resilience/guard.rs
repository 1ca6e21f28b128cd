use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::limit::{InFlightLimit, Rate, RateLimiter};
use flowgate::resilience::{
    AdaptiveLimit, Backoff, BreakerState, CircuitBreaker, Guard, GuardError, PauseHandle, Rejected,
    Retry, StopReason,
};
use tokio::time::{Instant, sleep};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, PartialEq)]
enum Error {
    Transient,
    Permanent,
}

fn breaker(consecutive: u32) -> CircuitBreaker {
    CircuitBreaker::builder()
        .without_failure_ratio()
        .consecutive_failures(consecutive)
        .cooldown(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Guard<Error>>();
    assert_send_sync::<GuardError<Error>>();
    let guard = Guard::<Error>::new().timeout(ms(1));
    assert_send(&guard.run(|| async { Ok::<_, Error>(()) }));
}

#[tokio::test(start_paused = true)]
async fn no_parts_means_one_attempt() {
    let guard = Guard::new();
    assert_eq!(guard.run(|| async { Ok::<_, Error>(1) }).await.unwrap(), 1);
    let err = guard
        .run(|| async { Err::<(), _>(Error::Transient) })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    // No retry policy: no stop reason to claim.
    assert_eq!(err.stop_reason(), None);
    assert!(err.is_transient());
    assert_eq!(err.into_inner(), Some(Error::Transient));
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_retried_and_reported_as_failures() {
    let breaker = breaker(10);
    let limit = AdaptiveLimit::new(1..=8);
    let guard = Guard::new()
        .timeout(ms(100))
        .breaker(&breaker)
        .adaptive(&limit)
        .retry(Retry::new(Backoff::constant(ms(50))).max_attempts(3));
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let out = guard
        .run(|| async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            sleep(if n < 2 { ms(500) } else { ms(10) }).await;
            Ok::<_, Error>(n)
        })
        .await;
    assert_eq!(out.unwrap(), 2);
    // Two timeouts of 100 ms, two backoffs of 50 ms, then 10 ms.
    assert_eq!(start.elapsed(), ms(310));
    let stats = breaker.stats();
    assert_eq!((stats.failures, stats.successes), (2, 1));
    assert_eq!(limit.stats().overloads, 2);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_stop_at_once_and_do_not_trip_the_breaker() {
    let breaker = breaker(2);
    let guard = Guard::new().breaker(&breaker).retry(
        Retry::new(Backoff::constant(ms(10)))
            .max_attempts(5)
            .when(|e: &Error| *e == Error::Transient),
    );
    for _ in 0..5 {
        let err = guard
            .run(|| async { Err::<(), _>(Error::Permanent) })
            .await
            .unwrap_err();
        assert_eq!(err.attempts(), 1);
        assert_eq!(err.stop_reason(), Some(StopReason::NotRetryable));
        assert!(!err.is_transient());
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.stats().successes, 5, "the service answered");
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_rejects_without_calling_and_the_retry_waits_out_the_cooldown() {
    let breaker = breaker(2);
    let limiter = RateLimiter::new(Rate::per_second(1000).with_burst(100));
    let guard = Guard::new()
        .rate_limit(limiter.clone())
        .breaker(&breaker)
        .retry(Retry::new(Backoff::constant(ms(10))).max_attempts(4));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let start = Instant::now();
    let out = guard
        .run(|| {
            let n = {
                let mut calls = log.lock().unwrap();
                calls.push(start.elapsed());
                calls.len()
            };
            async move { if n <= 2 { Err(Error::Transient) } else { Ok(n) } }
        })
        .await;
    // Two failures open the breaker (cooldown 1 s). The third attempt, at
    // 20 ms, is rejected (not called) with retry_after 990 ms; the retry
    // waits that out instead of the 10 ms backoff, and the probe succeeds.
    assert_eq!(out.unwrap(), 3);
    assert_eq!(*calls.lock().unwrap(), [ms(0), ms(10), ms(1010)]);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.stats().rejected, 1);
    // The rejected attempt took no rate-limit cell: 3 taken of a burst of 100.
    for _ in 0..97 {
        limiter.try_acquire().expect("cell free");
    }
}

#[tokio::test(start_paused = true)]
async fn rejections_are_typed_when_retries_run_out() {
    let breaker = breaker(1);
    let guard = Guard::new().breaker(&breaker).retry(
        Retry::new(Backoff::constant(ms(10)))
            .max_attempts(2)
            .budget(ms(500)),
    );
    // The failure opens the breaker; the retry 10 ms later is rejected with
    // 990 ms of cooldown left, and waiting that out would break the budget.
    let first = guard
        .run(|| async { Err::<(), _>(Error::Transient) })
        .await
        .unwrap_err();
    assert_eq!(first.attempts(), 2);
    assert_eq!(
        first.rejected(),
        Some(Rejected::Open {
            retry_after: ms(990)
        })
    );
    let err = guard
        .run(|| async { Ok::<_, Error>(()) })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.stop_reason(), Some(StopReason::BudgetExhausted));
    assert!(err.is_rejected());
    assert!(err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn in_flight_limit_bounds_concurrent_attempts() {
    let limit = InFlightLimit::new(2);
    let guard = Guard::<Error>::new().in_flight(&limit);
    let current = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (guard, current, peak) = (guard.clone(), current.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            guard
                .run(|| {
                    let (current, peak) = (current.clone(), peak.clone());
                    async move {
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        sleep(ms(10)).await;
                        current.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Error>(())
                    }
                })
                .await
        }));
    }
    let start = Instant::now();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), ms(30));
}

#[tokio::test(start_paused = true)]
async fn hooks_see_every_retry_and_the_pause_is_held() {
    let pause = PauseHandle::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner_seen = Arc::new(AtomicU32::new(0));
    let (log, inner) = (seen.clone(), inner_seen.clone());
    let guard = Guard::new()
        .timeout(ms(50))
        .retry(
            Retry::new(Backoff::constant(ms(20)))
                .max_attempts(3)
                .pause_while_backing_off(&pause)
                .on_retry(move |_: &Error, _, _| {
                    inner.fetch_add(1, Ordering::SeqCst);
                }),
        )
        .on_retry(move |err: &GuardError<Error>, attempt, delay| {
            log.lock().unwrap().push((err.is_timeout(), attempt, delay));
        });
    let observer = pause.clone();
    let calls = AtomicU32::new(0);
    let out = guard
        .run(|| {
            assert!(!observer.is_paused());
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(Error::Transient),
                    1 => {
                        sleep(ms(100)).await;
                        Ok(1)
                    }
                    _ => Ok(2),
                }
            }
        })
        .await;
    assert_eq!(out.unwrap(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        [(false, 1, ms(20)), (true, 2, ms(20))]
    );
    assert_eq!(
        inner_seen.load(Ordering::SeqCst),
        1,
        "the retry's hook: own errors only"
    );
    assert!(!pause.is_paused());
}

#[tokio::test(start_paused = true)]
async fn guard_error_display() {
    let timed_out = Guard::new()
        .timeout(ms(250))
        .run(std::future::pending::<Result<(), &str>>)
        .await
        .unwrap_err();
    assert_eq!(timed_out.to_string(), "call timed out after 250ms");
    let once = Guard::new()
        .run(|| async { Err::<(), _>("boom") })
        .await
        .unwrap_err();
    assert_eq!(once.to_string(), "boom");
    let retried = Guard::new()
        .retry(Retry::new(Backoff::constant(ms(1))).max_attempts(2))
        .run(|| async { Err::<(), _>("boom") })
        .await
        .unwrap_err();
    assert_eq!(
        retried.to_string(),
        "gave up after 2 attempts (attempts exhausted): boom"
    );
}
