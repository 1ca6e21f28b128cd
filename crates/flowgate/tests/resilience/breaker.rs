use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::resilience::breaker::BuildError;
use flowgate::resilience::{
    BreakerError, BreakerPermit, BreakerState, CircuitBreaker, CircuitBreakerBuilder, Rejected,
    StateChange, Window,
};
use tokio::time::{Instant, advance};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const COOLDOWN: Duration = Duration::from_secs(10);

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<CircuitBreaker>();
    assert_send_sync::<BreakerPermit>();
    assert_send_sync::<BreakerError<std::io::Error>>();
    assert_send_sync::<Rejected>();
    let breaker = CircuitBreaker::builder().build().unwrap();
    assert_send(&breaker.run(async { Ok::<(), std::io::Error>(()) }));
}

type Changes = Arc<Mutex<Vec<(BreakerState, BreakerState)>>>;

/// Records every state change.
fn recorded(builder: CircuitBreakerBuilder) -> (CircuitBreaker, Changes) {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let log = changes.clone();
    let breaker = builder
        .on_state_change(move |change: StateChange| {
            log.lock().unwrap().push((change.from, change.to))
        })
        .build()
        .unwrap();
    (breaker, changes)
}

fn fail(breaker: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        breaker.try_acquire().expect("admitted").failure();
    }
}

fn succeed(breaker: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        breaker.try_acquire().expect("admitted").success();
    }
}

fn ratio_breaker() -> CircuitBreakerBuilder {
    CircuitBreaker::builder()
        .failure_ratio(0.5)
        .window(Window::last_calls(10))
        .min_calls(6)
        .cooldown(COOLDOWN)
}

use BreakerState::{Closed, HalfOpen, Open};

#[tokio::test(start_paused = true)]
async fn closed_to_open_on_failure_ratio_after_min_calls() {
    let (breaker, changes) = recorded(ratio_breaker());
    // 5 failures out of 5: below min_calls, stays closed.
    fail(&breaker, 5);
    assert_eq!(breaker.state(), Closed);
    // The 6th failure: 6 calls, ratio 1.0.
    fail(&breaker, 1);
    assert_eq!(breaker.state(), Open);
    assert_eq!(*changes.lock().unwrap(), [(Closed, Open)]);
    assert_eq!(breaker.stats().trips, 1);
}

#[tokio::test(start_paused = true)]
async fn ratio_below_threshold_stays_closed_and_window_slides() {
    let breaker = ratio_breaker().build().unwrap();
    // 4 failures in 10 calls: 0.4 < 0.5.
    succeed(&breaker, 6);
    fail(&breaker, 4);
    assert_eq!(breaker.state(), Closed);
    let stats = breaker.stats();
    assert_eq!((stats.window_calls, stats.window_failures), (10, 4));
    // A success pushes out the oldest (a success): still 4 of 10.
    succeed(&breaker, 1);
    assert_eq!(breaker.stats().window_failures, 4);
    // One more failure pushes out a success: 5 of 10 = 0.5, opens.
    fail(&breaker, 1);
    assert_eq!(breaker.state(), Open);
}

#[tokio::test(start_paused = true)]
async fn closed_to_open_on_consecutive_failures() {
    let (breaker, changes) = recorded(
        CircuitBreaker::builder()
            .without_failure_ratio()
            .consecutive_failures(3)
            .cooldown(COOLDOWN),
    );
    fail(&breaker, 2);
    succeed(&breaker, 1); // resets the run
    fail(&breaker, 2);
    assert_eq!(breaker.state(), Closed);
    fail(&breaker, 1);
    assert_eq!(breaker.state(), Open);
    assert_eq!(*changes.lock().unwrap(), [(Closed, Open)]);
}

#[tokio::test(start_paused = true)]
async fn either_rule_trips() {
    let breaker = ratio_breaker().consecutive_failures(2).build().unwrap();
    succeed(&breaker, 1);
    fail(&breaker, 2); // 2 of 3 calls, below min_calls; but 2 in a row
    assert_eq!(breaker.state(), Open);
}

#[tokio::test(start_paused = true)]
async fn open_rejects_fast_with_the_rest_of_the_cooldown() {
    let breaker = ratio_breaker().build().unwrap();
    fail(&breaker, 6);
    assert_eq!(
        breaker.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: COOLDOWN
        }
    );
    advance(Duration::from_secs(4)).await;
    assert_eq!(
        breaker.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: Duration::from_secs(6)
        }
    );
    // The call is not run when rejected.
    let mut ran = false;
    let out = breaker
        .run(async {
            ran = true;
            Ok::<_, ()>(())
        })
        .await;
    assert_eq!(
        out,
        Err(BreakerError::Open {
            retry_after: Duration::from_secs(6)
        })
    );
    assert!(!ran);
    assert_eq!(breaker.stats().rejected, 3);
}

#[tokio::test(start_paused = true)]
async fn open_to_half_open_exactly_when_the_cooldown_ends() {
    let (breaker, changes) = recorded(ratio_breaker());
    fail(&breaker, 6);
    advance(COOLDOWN - ms(1)).await;
    assert_eq!(breaker.state(), Open);
    assert!(
        matches!(breaker.try_acquire(), Err(Rejected::Open { retry_after }) if retry_after == ms(1))
    );
    advance(ms(1)).await;
    assert_eq!(breaker.state(), HalfOpen);
    assert_eq!(*changes.lock().unwrap(), [(Closed, Open), (Open, HalfOpen)]);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_the_set_number_of_probes() {
    let breaker = ratio_breaker().half_open_probes(2).build().unwrap();
    fail(&breaker, 6);
    advance(COOLDOWN).await;
    let a = breaker.try_acquire().expect("probe 1");
    let b = breaker.try_acquire().expect("probe 2");
    assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::HalfOpen);
    assert_eq!(
        breaker.run(async { Ok::<_, ()>(()) }).await,
        Err(BreakerError::HalfOpen)
    );
    // One success is not enough with two probes.
    a.success();
    assert_eq!(breaker.state(), HalfOpen);
    assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::HalfOpen);
    drop(b);
}

#[tokio::test(start_paused = true)]
async fn half_open_to_closed_when_all_probes_succeed() {
    let (breaker, changes) = recorded(ratio_breaker().half_open_probes(3));
    fail(&breaker, 6);
    advance(COOLDOWN).await;
    let probes: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    for probe in probes {
        probe.success();
    }
    assert_eq!(breaker.state(), Closed);
    assert_eq!(
        *changes.lock().unwrap(),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
    // Closing starts with an empty window: five failures do not reopen it.
    assert_eq!(breaker.stats().window_calls, 0);
    fail(&breaker, 5);
    assert_eq!(breaker.state(), Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_to_open_when_a_probe_fails_with_a_new_cooldown() {
    let (breaker, changes) = recorded(ratio_breaker().half_open_probes(2));
    fail(&breaker, 6);
    advance(COOLDOWN).await;
    let a = breaker.try_acquire().unwrap();
    let b = breaker.try_acquire().unwrap();
    a.success();
    advance(ms(300)).await;
    b.failure();
    assert_eq!(breaker.state(), Open);
    assert_eq!(
        breaker.try_acquire().unwrap_err(),
        Rejected::Open {
            retry_after: COOLDOWN
        }
    );
    assert_eq!(
        *changes.lock().unwrap(),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
    );
    assert_eq!(breaker.stats().trips, 2);
    // And around again.
    advance(COOLDOWN).await;
    assert_eq!(breaker.state(), HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_gives_its_slot_back() {
    let breaker = ratio_breaker().build().unwrap();
    fail(&breaker, 6);
    advance(COOLDOWN).await;
    let probe = breaker.try_acquire().unwrap();
    assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::HalfOpen);
    drop(probe); // the call was cancelled: no outcome
    assert_eq!(breaker.state(), HalfOpen);
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), Closed);
}

#[tokio::test(start_paused = true)]
async fn outcomes_from_an_earlier_state_count_for_nothing() {
    let breaker = ratio_breaker().build().unwrap();
    let slow = breaker.try_acquire().unwrap(); // admitted while closed
    fail(&breaker, 6);
    advance(COOLDOWN).await;
    assert_eq!(breaker.state(), HalfOpen);
    // A success from the closed era does not close the half-open breaker.
    slow.success();
    assert_eq!(breaker.state(), HalfOpen);
    assert_eq!(breaker.stats().window_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn a_late_probe_after_the_breaker_reopened_counts_for_nothing() {
    let breaker = ratio_breaker().half_open_probes(2).build().unwrap();
    fail(&breaker, 6);
    advance(COOLDOWN).await;
    let a = breaker.try_acquire().unwrap();
    let b = breaker.try_acquire().unwrap();
    a.failure();
    assert_eq!(breaker.state(), Open);
    b.success(); // from the half-open that is over
    assert_eq!(breaker.state(), Open);
    advance(COOLDOWN).await;
    // A fresh half-open: two new probes are needed.
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), HalfOpen);
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), Closed);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let breaker = CircuitBreaker::builder()
        .failure_ratio(0.5)
        .window(Window::last_bucketed(Duration::from_secs(10), 10))
        .min_calls(4)
        .cooldown(COOLDOWN)
        .build()
        .unwrap();
    fail(&breaker, 3); // at t = 0
    advance(Duration::from_secs(5)).await;
    assert_eq!(breaker.stats().window_calls, 3);
    advance(Duration::from_secs(5)).await;
    // t = 10 s: the bucket of t = 0 has left the window.
    assert_eq!(breaker.stats().window_calls, 0);
    fail(&breaker, 1);
    succeed(&breaker, 3);
    assert_eq!(breaker.state(), Closed); // 1 of 4
    advance(ms(9_999)).await;
    fail(&breaker, 2); // 3 of 6, within 10 s of the others
    assert_eq!(breaker.state(), Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_judges_the_last_span_only() {
    let breaker = CircuitBreaker::builder()
        .failure_ratio(0.5)
        .window(Window::last(Duration::from_secs(1)))
        .min_calls(10)
        .cooldown(COOLDOWN)
        .build()
        .unwrap();
    // A steady 40 % failure rate for 10 s never opens it.
    for i in 0..100u32 {
        if i % 5 < 2 {
            fail(&breaker, 1);
        } else {
            succeed(&breaker, 1);
        }
        advance(ms(100)).await;
    }
    assert_eq!(breaker.state(), Closed);
    let stats = breaker.stats();
    assert!(
        stats.window_calls <= 10 && stats.window_calls >= 9,
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_with_counts_only_real_failures() {
    let breaker = CircuitBreaker::builder()
        .without_failure_ratio()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let server_error = |status: &u16| *status >= 500;
    for _ in 0..10 {
        let out = breaker
            .run_with(server_error, async { Err::<(), u16>(404) })
            .await;
        assert_eq!(out, Err(BreakerError::Inner(404)));
    }
    assert_eq!(breaker.state(), Closed);
    assert_eq!(breaker.stats().successes, 10);
    for _ in 0..2 {
        let _ = breaker
            .run_with(server_error, async { Err::<(), u16>(503) })
            .await;
    }
    assert_eq!(breaker.state(), Open);
}

#[tokio::test(start_paused = true)]
async fn shared_by_many_tasks() {
    let breaker = CircuitBreaker::builder()
        .failure_ratio(0.5)
        .window(Window::last_calls(100))
        .min_calls(20)
        .cooldown(COOLDOWN)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let breaker = breaker.clone();
        tasks.push(tokio::spawn(async move {
            let mut rejected = 0;
            for i in 0..50u32 {
                let out = breaker
                    .run(async move {
                        tokio::time::sleep(ms(u64::from(t + 1))).await;
                        if (i + t) % 4 == 0 { Ok(()) } else { Err(()) } // 75 % failures
                    })
                    .await;
                if matches!(out, Err(e) if e.is_rejected()) {
                    rejected += 1;
                }
            }
            rejected
        }));
    }
    let mut rejected = 0;
    for task in tasks {
        rejected += task.await.unwrap();
    }
    let stats = breaker.stats();
    assert_eq!(stats.state, Open);
    assert_eq!(stats.trips, 1);
    assert_eq!(stats.rejected, rejected);
    assert_eq!(stats.admitted + stats.rejected, 400);
    assert!(stats.admitted >= 20 && stats.admitted < 60, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_long_outage_with_recovery() {
    // Every call fails until t = 30 s, then none; a call every 500 ms.
    let breaker = ratio_breaker().build().unwrap();
    let start = Instant::now();
    let mut opened_at = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        let failing = start.elapsed() < Duration::from_secs(30);
        let trips = breaker.stats().trips;
        if let Ok(permit) = breaker.try_acquire() {
            permit.record(failing);
        }
        if breaker.stats().trips > trips {
            opened_at.push(start.elapsed().as_millis());
        }
        advance(ms(500)).await;
    }
    assert_eq!(breaker.state(), Closed);
    // Opened at the 6th failure (2.5 s), then at each failed probe (12.5 s,
    // 22.5 s); closed by the probe at 32.5 s.
    assert_eq!(opened_at, [2_500, 12_500, 22_500]);
}

#[test]
fn configuration_is_validated() {
    let b = CircuitBreaker::builder;
    let err = |builder: CircuitBreakerBuilder| builder.build().unwrap_err();
    assert_eq!(err(b().failure_ratio(0.0)), BuildError::FailureRatio(0.0));
    assert_eq!(err(b().failure_ratio(1.5)), BuildError::FailureRatio(1.5));
    assert!(matches!(
        err(b().failure_ratio(f64::NAN)),
        BuildError::FailureRatio(_)
    ));
    assert_eq!(
        err(b().window(Window::last_calls(0))),
        BuildError::ZeroWindowCalls
    );
    assert_eq!(
        err(b().window(Window::last_calls(5)).min_calls(6)),
        BuildError::MinCallsAboveWindow {
            min_calls: 6,
            window: 5
        }
    );
    assert_eq!(
        err(b().window(Window::last(Duration::ZERO))),
        BuildError::ZeroWindowSpan
    );
    assert_eq!(
        err(b().window(Window::last_bucketed(Duration::from_secs(1), 0))),
        BuildError::ZeroWindowBuckets
    );
    assert_eq!(err(b().min_calls(0)), BuildError::ZeroMinCalls);
    assert_eq!(
        err(b().consecutive_failures(0)),
        BuildError::ZeroConsecutiveFailures
    );
    assert_eq!(err(b().without_failure_ratio()), BuildError::NoTripRule);
    assert_eq!(err(b().cooldown(Duration::ZERO)), BuildError::ZeroCooldown);
    assert_eq!(err(b().half_open_probes(0)), BuildError::ZeroProbes);
    assert_eq!(
        BuildError::NoTripRule.to_string(),
        "a breaker needs a failure_ratio or consecutive_failures to open"
    );
}

#[test]
fn errors_display_lowercase() {
    let open: BreakerError<std::io::Error> = BreakerError::Open {
        retry_after: ms(1500),
    };
    assert_eq!(
        open.to_string(),
        "circuit breaker is open, retry after 1.5s"
    );
    assert_eq!(open.retry_after(), Some(ms(1500)));
    assert!(open.is_rejected());
    let inner: BreakerError<&str> = BreakerError::Inner("boom");
    assert_eq!(inner.to_string(), "boom");
    assert_eq!(inner.into_inner(), Some("boom"));
    assert_eq!(
        Rejected::HalfOpen.to_string(),
        "circuit breaker is half-open and its probes are busy"
    );
}
