//! `flowgate::resilience`: the breaker, retry, adaptive limit, guard, pause
//! switch and dead-letter stream, named, under a recorder of their own; and
//! their failure events.

use std::time::Duration;

use flowgate::resilience::{Backoff, CircuitBreaker, Guard, Retry};
use tracing::Level;

use crate::common::Traced;

fn breaker(name: Option<&str>) -> CircuitBreaker {
    let builder = CircuitBreaker::builder()
        .without_failure_ratio()
        .consecutive_failures(2)
        .cooldown(Duration::from_secs(5));
    match name {
        Some(name) => builder.name(name),
        None => builder,
    }
    .build()
    .unwrap()
}

#[cfg(feature = "metrics")]
mod metrics {
    use std::time::Duration;

    use flowgate::prelude::*;
    use flowgate::resilience::{
        AdaptiveLimit, Backoff, BreakerState, Guard, Outcome, PauseHandle, Retry, dead_letters,
    };
    use futures_util::{StreamExt, stream};
    use tokio_test::{assert_pending, assert_ready, task};

    use super::breaker;
    use crate::common::Recorded;

    const N: &[(&str, &str)] = &[("name", "b")];

    fn with<'a>(name: &'a str, k: &'a str, v: &'a str) -> [(&'a str, &'a str); 2] {
        [("name", name), (k, v)]
    }

    /// Every breaker series, as (state, closed, half_open, open transitions,
    /// permitted, rejected open, rejected half-open, successes, failures).
    fn breaker_series(rec: &Recorded) -> (f64, [u64; 3], u64, [u64; 2], [u64; 2]) {
        let t = |s| rec.counter("flowgate_breaker_transitions_total", &with("b", "state", s));
        let r = |s| {
            rec.counter(
                "flowgate_breaker_calls_rejected_total",
                &with("b", "reason", s),
            )
        };
        let o = |s| rec.counter("flowgate_breaker_outcomes_total", &with("b", "outcome", s));
        (
            rec.gauge("flowgate_breaker_state", N),
            [t("closed"), t("half_open"), t("open")],
            rec.counter("flowgate_breaker_calls_permitted_total", N),
            [r("open"), r("half_open")],
            [o("success"), o("failure")],
        )
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn breaker_trips_probes_and_closes() {
        let rec = Recorded::new();
        let breaker = rec.scope(|| breaker(Some("b")));
        // Every series exists at zero from the start.
        assert_eq!(breaker_series(&rec), (0.0, [0, 0, 0], 0, [0, 0], [0, 0]));

        let _ = breaker.run(async { Err::<(), _>("down") }).await;
        assert_eq!(breaker_series(&rec), (0.0, [0, 0, 0], 1, [0, 0], [0, 1]));
        let _ = breaker.run(async { Err::<(), _>("down") }).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker_series(&rec), (2.0, [0, 0, 1], 2, [0, 0], [0, 2]));

        // Open: rejected without running.
        assert!(breaker.run(async { Ok::<_, &str>(()) }).await.is_err());
        assert!(breaker.try_acquire().is_err());
        assert_eq!(breaker_series(&rec), (2.0, [0, 0, 1], 2, [2, 0], [0, 2]));

        // Cooldown over: half-open, seen by the next look.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker_series(&rec), (1.0, [0, 1, 1], 2, [2, 0], [0, 2]));

        // One probe admitted, the next rejected while it runs.
        let probe = breaker.try_acquire().unwrap();
        assert!(breaker.try_acquire().is_err());
        assert_eq!(breaker_series(&rec), (1.0, [0, 1, 1], 3, [2, 1], [0, 2]));

        // A failed probe opens it again.
        probe.failure();
        assert_eq!(breaker_series(&rec), (2.0, [0, 1, 2], 3, [2, 1], [0, 3]));

        // Next cooldown, a probe dropped (cancelled) reports nothing and
        // frees its slot; the next probe succeeds and closes the breaker.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(breaker.try_acquire().unwrap());
        assert_eq!(breaker_series(&rec), (1.0, [0, 2, 2], 4, [2, 1], [0, 3]));
        breaker.try_acquire().unwrap().success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker_series(&rec), (0.0, [1, 2, 2], 5, [2, 1], [1, 3]));
    }

    /// Each series of a retry: calls, attempts, retries, gave up by reason
    /// (not retryable, attempts, budget).
    fn retry_series(rec: &Recorded, name: &str) -> (u64, u64, u64, [u64; 3]) {
        let n = [("name", name)];
        let g = |r| rec.counter("flowgate_retry_gave_up_total", &with(name, "reason", r));
        (
            rec.counter("flowgate_retry_calls_total", &n),
            rec.counter("flowgate_retry_attempts_total", &n),
            rec.counter("flowgate_retry_retries_total", &n),
            [
                g("not_retryable"),
                g("attempts_exhausted"),
                g("budget_exhausted"),
            ],
        )
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn retry_succeeds_on_the_third_attempt() {
        let rec = Recorded::new();
        let retry = rec.scope(|| {
            Retry::new(Backoff::exponential(Duration::from_millis(10)))
                .max_attempts(5)
                .name("r")
        });
        assert_eq!(retry_series(&rec, "r"), (0, 0, 0, [0, 0, 0]));
        let mut calls = 0;
        let out = retry
            .run(|| {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err("busy") } else { Ok(n) } }
            })
            .await;
        assert_eq!(out.unwrap(), 3);
        assert_eq!(retry_series(&rec, "r"), (1, 3, 2, [0, 0, 0]));
        assert_eq!(
            rec.histogram("flowgate_retry_backoff_seconds", &[("name", "r")]),
            [0.01, 0.02]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn retry_gives_up_for_each_reason() {
        let rec = Recorded::new();
        let retry = rec.scope(|| {
            Retry::new(Backoff::constant(Duration::from_secs(1)))
                .max_attempts(3)
                .when(|e: &&str| *e != "bad request")
                .name("r")
        });
        let err = retry
            .run(|| async { Err::<(), _>("down") })
            .await
            .unwrap_err();
        assert_eq!(err.attempts(), 3);
        assert_eq!(retry_series(&rec, "r"), (1, 3, 2, [0, 1, 0]));

        let err = retry
            .run(|| async { Err::<(), _>("bad request") })
            .await
            .unwrap_err();
        assert_eq!(err.attempts(), 1);
        assert_eq!(retry_series(&rec, "r"), (2, 4, 2, [1, 1, 0]));

        // A clone shares the series; a budget of 1.5 s allows one retry.
        let budget = retry
            .clone()
            .max_attempts(10)
            .budget(Duration::from_millis(1500));
        let err = budget
            .run(|| async { Err::<(), _>("down") })
            .await
            .unwrap_err();
        assert_eq!(err.attempts(), 2);
        assert_eq!(retry_series(&rec, "r"), (3, 6, 3, [1, 1, 1]));
        assert_eq!(
            rec.histogram("flowgate_retry_backoff_seconds", &[("name", "r")]),
            [1.0, 1.0, 1.0]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn retry_counts_in_a_par_map_retry_stage_and_stops_counting_when_cancelled() {
        let rec = Recorded::new();
        let pause = rec.scope(|| PauseHandle::new().name("p"));
        let retry = rec.scope(|| {
            Retry::new(Backoff::constant(Duration::from_millis(100)))
                .max_attempts(2)
                .pause_while_backing_off(&pause)
                .name("stage")
        });
        let out: Vec<_> = stream::iter([1u32, 2, 3])
            .par_map_retry(3, retry.clone(), |x: &u32| {
                let x = *x;
                async move { if x == 2 { Err("down") } else { Ok(x) } }
            })
            .collect()
            .await;
        assert_eq!(out.iter().filter(|r| r.is_err()).count(), 1);
        // Three items; item 2 tried twice and dead-lettered.
        assert_eq!(retry_series(&rec, "stage"), (3, 4, 1, [0, 1, 0]));
        assert_eq!(
            rec.counter("flowgate_pause_holds_total", &[("name", "p")]),
            1
        );
        assert_eq!(rec.gauge("flowgate_pause_holds", &[("name", "p")]), 0.0);

        // A call cancelled while backing off: its pause hold is released,
        // and the attempt it never made is not counted.
        let mut call = task::spawn(retry.run(|| async { Err::<(), _>("down") }));
        assert_pending!(call.poll());
        assert_eq!(rec.gauge("flowgate_pause_holds", &[("name", "p")]), 1.0);
        drop(call);
        assert_eq!(rec.gauge("flowgate_pause_holds", &[("name", "p")]), 0.0);
        assert_eq!(retry_series(&rec, "stage"), (4, 5, 2, [0, 1, 0]));
    }

    /// The adaptive limit's gauges and counters: limit, in flight, waiting,
    /// increases, decreases, overloads.
    fn adaptive_series(rec: &Recorded) -> (f64, f64, f64, u64, u64, u64) {
        let n = [("name", "a")];
        (
            rec.gauge("flowgate_adaptive_limit", &n),
            rec.gauge("flowgate_adaptive_in_flight", &n),
            rec.gauge("flowgate_adaptive_waiting", &n),
            rec.counter("flowgate_adaptive_increases_total", &n),
            rec.counter("flowgate_adaptive_decreases_total", &n),
            rec.counter("flowgate_adaptive_overloads_total", &n),
        )
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn adaptive_limit_moves_up_and_down() {
        let rec = Recorded::new();
        let limit = rec.scope(|| AdaptiveLimit::builder(1..=10).name("a").build().unwrap());
        assert_eq!(adaptive_series(&rec), (1.0, 0.0, 0.0, 0, 0, 0));
        let ten_ms = Duration::from_millis(10);

        // The first window: a 10 ms sample sets the baseline.
        let permit = limit.acquire().await;
        assert_eq!(adaptive_series(&rec), (1.0, 1.0, 0.0, 0, 0, 0));
        tokio::time::sleep(ten_ms).await;
        permit.record(Outcome::Success);
        assert_eq!(adaptive_series(&rec), (1.0, 0.0, 0.0, 0, 0, 0));

        // At the limit, at the baseline RTT: one more.
        let permit = limit.acquire().await;
        tokio::time::sleep(ten_ms).await;
        permit.record(Outcome::Success);
        assert_eq!(limit.limit(), 2);
        assert_eq!(adaptive_series(&rec), (2.0, 0.0, 0.0, 1, 0, 0));

        // Back-pressure: back down.
        let permit = limit.acquire().await;
        tokio::time::sleep(ten_ms).await;
        permit.record(Outcome::Overload);
        assert_eq!(limit.limit(), 1);
        assert_eq!(adaptive_series(&rec), (1.0, 0.0, 0.0, 1, 1, 1));

        // A permit dropped without an outcome: no sample, in flight back to 0.
        drop(limit.acquire().await);
        assert_eq!(adaptive_series(&rec), (1.0, 0.0, 0.0, 1, 1, 1));
        assert_eq!(
            rec.histogram("flowgate_adaptive_rtt_seconds", &[("name", "a")]),
            [0.01, 0.01, 0.01]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn adaptive_waiters_are_counted_until_served_or_cancelled() {
        let rec = Recorded::new();
        let limit = rec.scope(|| AdaptiveLimit::builder(1..=4).name("a").build().unwrap());
        let held = limit.acquire().await;
        let mut served = task::spawn(limit.acquire());
        let mut cancelled = task::spawn(limit.acquire());
        assert_pending!(served.poll());
        assert_pending!(cancelled.poll());
        assert_eq!(adaptive_series(&rec), (1.0, 1.0, 2.0, 0, 0, 0));
        drop(cancelled);
        assert_eq!(adaptive_series(&rec), (1.0, 1.0, 1.0, 0, 0, 0));
        drop(held);
        assert!(served.is_woken());
        let permit = assert_ready!(served.poll());
        assert_eq!(adaptive_series(&rec), (1.0, 1.0, 0.0, 0, 0, 0));
        drop(permit);
        assert_eq!(adaptive_series(&rec), (1.0, 0.0, 0.0, 0, 0, 0));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn guard_counts_calls_and_failed_attempts() {
        let rec = Recorded::new();
        let breaker = rec.scope(|| breaker(Some("b")));
        let guard = rec.scope(|| {
            Guard::new()
                .timeout(Duration::from_millis(100))
                .breaker(&breaker)
                .retry(Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(3))
                .name("g")
        });
        let calls = |o| rec.counter("flowgate_guard_calls_total", &with("g", "outcome", o));
        let failures = |r| {
            rec.counter(
                "flowgate_guard_attempt_failures_total",
                &with("g", "reason", r),
            )
        };
        let all = || {
            (
                [calls("ok"), calls("error")],
                [failures("timeout"), failures("rejected"), failures("error")],
            )
        };
        assert_eq!(all(), ([0, 0], [0, 0, 0]));
        assert_eq!(guard.run(|| async { Ok::<_, ()>(1) }).await, Ok(1));
        assert_eq!(all(), ([1, 0], [0, 0, 0]));

        // A timeout, an error (the breaker opens), then a rejection.
        let mut n = 0;
        let err = guard
            .run(|| {
                n += 1;
                let attempt = n;
                async move {
                    if attempt == 1 {
                        std::future::pending::<()>().await;
                    }
                    Err::<(), _>(())
                }
            })
            .await
            .unwrap_err();
        assert!(err.is_rejected());
        assert_eq!(all(), ([1, 1], [1, 1, 1]));
        assert_eq!(
            rec.counter(
                "flowgate_breaker_calls_rejected_total",
                &with("b", "reason", "open")
            ),
            1
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn pause_switch_counts_pauses_and_holds() {
        let rec = Recorded::new();
        let pause = rec.scope(|| PauseHandle::new().name("p"));
        let n = [("name", "p")];
        let all = || {
            (
                rec.gauge("flowgate_pause_manual", &n),
                rec.gauge("flowgate_pause_holds", &n),
                rec.counter("flowgate_pause_pauses_total", &n),
                rec.counter("flowgate_pause_resumes_total", &n),
                rec.counter("flowgate_pause_holds_total", &n),
            )
        };
        assert_eq!(all(), (0.0, 0.0, 0, 0, 0));
        pause.pause();
        pause.pause(); // already paused: not counted again
        assert_eq!(all(), (1.0, 0.0, 1, 0, 0));
        let other = pause.clone();
        let guard = other.hold();
        assert_eq!(all(), (1.0, 1.0, 1, 0, 1));
        other.resume();
        other.resume();
        assert_eq!(all(), (0.0, 1.0, 1, 1, 1));
        drop(guard);
        assert_eq!(all(), (0.0, 0.0, 1, 1, 1));
        // The last handle dropped lifts a manual pause.
        pause.pause();
        drop((pause, other));
        assert_eq!(all(), (0.0, 0.0, 2, 2, 1));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn dead_letters_received_and_discarded() {
        let rec = Recorded::new();
        let n = [("name", "d")];
        let (tx, dead) = dead_letters::<&str>(8);
        let mut dead = rec.scope(|| dead.name("d"));
        let ok: Vec<u32> = stream::iter([Ok(1), Err("a"), Err("b"), Err("c")])
            .route_errors(tx)
            .collect()
            .await;
        assert_eq!(ok, [1]);
        assert_eq!(dead.next().await, Some("a"));
        assert_eq!(rec.counter("flowgate_dead_letter_received_total", &n), 1);
        assert_eq!(rec.counter("flowgate_dead_letter_discarded_total", &n), 0);
        drop(dead);
        assert_eq!(rec.counter("flowgate_dead_letter_received_total", &n), 1);
        assert_eq!(rec.counter("flowgate_dead_letter_discarded_total", &n), 2);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn unnamed_primitives_register_nothing() {
        let rec = Recorded::new();
        let (breaker, retry, limit, pause, guard, (tx, dead)) = rec.scope(|| {
            let breaker = breaker(None);
            (
                breaker.clone(),
                Retry::new(Backoff::constant(Duration::from_millis(1))),
                AdaptiveLimit::new(1..=4),
                PauseHandle::new(),
                Guard::new().breaker(&breaker),
                dead_letters::<&str>(4),
            )
        });
        let _ = breaker.run(async { Err::<(), _>("x") }).await;
        let _ = retry.run(|| async { Err::<(), _>("x") }).await;
        let _ = limit.run(async { Err::<(), _>("x") }).await;
        let _ = guard.run(|| async { Err::<(), _>("x") }).await;
        pause.pause();
        drop(pause.hold());
        let ok: Vec<u32> = stream::iter([Err::<u32, _>("x")])
            .route_errors(tx)
            .collect()
            .await;
        assert!(ok.is_empty());
        drop(dead);
        assert!(rec.is_empty(), "{:?}", rec.names());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn series_have_the_documented_names() {
        let rec = Recorded::new();
        rec.scope(|| {
            let _ = breaker(Some("x"));
            let _ = Retry::<()>::new(Backoff::constant(Duration::ZERO)).name("x");
            let _ = AdaptiveLimit::builder(1..=2).name("x").build().unwrap();
            let _ = Guard::<()>::new().name("x");
            let _ = PauseHandle::new().name("x");
            let _ = dead_letters::<()>(1).1.name("x");
        });
        let names = rec.names();
        for prefix in [
            "flowgate_breaker_",
            "flowgate_retry_",
            "flowgate_adaptive_",
            "flowgate_guard_",
            "flowgate_pause_",
            "flowgate_dead_letter_",
        ] {
            assert!(
                names.iter().any(|n| n.starts_with(prefix)),
                "{prefix}: {names:?}"
            );
        }
        assert_eq!(names.len(), 9 + 7 + 7 + 5 + 5 + 2, "{names:?}");
        assert!(names.iter().all(|n| n.contains("name=x")));
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn breaker_opening_warns_and_closing_informs() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let breaker = breaker(Some("payments"));
    for _ in 0..2 {
        let _ = breaker.run(async { Err::<(), _>("down") }).await;
    }
    let warns = traced.events_at_least(Level::WARN, "flowgate::resilience::breaker");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].level, Level::WARN);
    assert_eq!(warns[0].message, "circuit breaker opened");
    assert_eq!(warns[0].field("name"), Some("payments"));
    assert_eq!(warns[0].field("consecutive_failures"), Some("2"));
    assert_eq!(warns[0].field("window_failures"), Some("2"));

    // Rejections log nothing at warn; closing is one info event.
    for _ in 0..3 {
        assert!(breaker.try_acquire().is_err());
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    breaker.try_acquire().unwrap().success();
    let events = traced.events_at_least(Level::INFO, "flowgate::resilience::breaker");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].level, Level::INFO);
    assert_eq!(events[1].message, "circuit breaker closed");
    assert_eq!(events[1].field("name"), Some("payments"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retry_warns_once_when_it_gives_up_and_debugs_each_retry() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let retry = Retry::new(Backoff::constant(Duration::from_millis(10)))
        .max_attempts(4)
        .name("fetch");
    let _ = retry.run(|| async { Err::<(), _>("down") }).await;
    let events = traced.events_at_least(Level::TRACE, "flowgate::resilience::retry");
    let levels: Vec<Level> = events.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [Level::DEBUG, Level::DEBUG, Level::DEBUG, Level::WARN]
    );
    let warn = &events[3];
    assert_eq!(warn.field("name"), Some("fetch"));
    assert_eq!(warn.field("reason"), Some("attempts_exhausted"));
    assert_eq!(warn.field("attempts"), Some("4"));
    assert_eq!(events[0].field("attempt"), Some("1"));

    // A success logs nothing at warn.
    let _ = retry.run(|| async { Ok::<_, &str>(()) }).await;
    assert_eq!(traced.events_at_least(Level::WARN, "flowgate").len(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn guard_warns_once_per_failed_call_with_both_names() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let guard = Guard::new()
        .timeout(Duration::from_millis(10))
        .retry(
            Retry::new(Backoff::constant(Duration::from_millis(1)))
                .max_attempts(3)
                .name("r"),
        )
        .name("g");
    let _ = guard.run(std::future::pending::<Result<(), ()>>).await;
    let warns = traced.events_at_least(Level::WARN, "flowgate");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].target, "flowgate::resilience::guard");
    assert_eq!(warns[0].field("name"), Some("g"));
    assert_eq!(warns[0].field("retry"), Some("r"));
    assert_eq!(warns[0].field("failure"), Some("timeout"));
    assert_eq!(warns[0].field("attempts"), Some("3"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_queued_dead_letters_warns() {
    use flowgate::prelude::*;
    use futures_util::{StreamExt, stream};

    let traced = Traced::new();
    let _g = traced.set_default();
    let (tx, dead) = flowgate::resilience::dead_letters::<&str>(4);
    let dead = dead.name("dlq");
    let _: Vec<u32> = stream::iter([Err::<u32, _>("a"), Err("b")])
        .route_errors(tx)
        .collect()
        .await;
    drop(dead);
    let warns = traced.events_at_least(Level::WARN, "flowgate::resilience::dead_letter");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].field("name"), Some("dlq"));
    assert_eq!(warns[0].field("discarded"), Some("2"));
}
