//! `flowgate::limit` limiters: their series (feature `metrics`) and their
//! tracing events.

use flowgate::limit::{BuildError, FairLimit, FairRate, KeyedRateLimiter, Rate};

use crate::common::Traced;

#[cfg(feature = "metrics")]
mod series {
    use std::time::Duration;

    use flowgate::limit::{
        FairLimit, FairRate, InFlightLimit, KeyedRateLimiter, Rate, RateLimiter,
    };
    use tokio::time::advance;
    use tokio_test::task;
    use tokio_test::{assert_pending, assert_ready};

    use crate::common::Recorded;

    const GRANTED: &str = "flowgate_limit_granted_total";
    const WAITING: &str = "flowgate_limit_waiting";
    const REJECTED: &str = "flowgate_limit_rejected_total";
    const WAIT: &str = "flowgate_limit_wait_seconds";
    const IN_FLIGHT: &str = "flowgate_limit_in_flight";
    const KEYS: &str = "flowgate_limit_keys";

    fn named(n: &str) -> [(&'static str, &str); 1] {
        [("name", n)]
    }

    fn reason<'a>(n: &'a str, r: &'a str) -> [(&'static str, &'a str); 2] {
        [("name", n), ("reason", r)]
    }

    // ===== RateLimiter =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn rate_limiter_counts_grants_rejections_waiters_and_waits() {
        let rec = Recorded::new();
        let limiter = rec.scope(|| RateLimiter::with_name(Rate::per_second(10), "api"));
        let l = named("api");
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_limit_granted_total{name=api}",
                "flowgate_limit_rejected_total{name=api,reason=not_ready}",
                "flowgate_limit_wait_seconds{name=api}",
                "flowgate_limit_waiting{name=api}",
            ]
        );

        limiter.acquire().await; // at once
        assert!(limiter.try_acquire().is_err());
        assert_eq!(rec.counter(GRANTED, &l), 1);
        assert_eq!(rec.counter(REJECTED, &reason("api", "not_ready")), 1);

        let mut waiter = task::spawn(limiter.acquire());
        assert_pending!(waiter.poll());
        assert_eq!(rec.gauge(WAITING, &l), 1.0);
        advance(Duration::from_millis(100)).await;
        assert_ready!(waiter.poll());
        assert_eq!(rec.gauge(WAITING, &l), 0.0);
        assert_eq!(rec.counter(GRANTED, &l), 2);
        assert_eq!(rec.histogram(WAIT, &l), vec![0.0, 0.1]);

        // Clones share the series.
        let clone = limiter.clone();
        advance(Duration::from_millis(100)).await;
        assert!(clone.try_acquire().is_ok());
        assert_eq!(rec.counter(GRANTED, &l), 3);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn rate_limiter_cancelled_acquire_leaves_the_waiting_gauge() {
        let rec = Recorded::new();
        let limiter = rec.scope(|| RateLimiter::with_name(Rate::per_second(10), "api"));
        assert!(limiter.try_acquire().is_ok());
        let mut waiter = task::spawn(limiter.acquire());
        assert_pending!(waiter.poll());
        let mut other = task::spawn(limiter.acquire());
        assert_pending!(other.poll());
        assert_eq!(rec.gauge(WAITING, &named("api")), 2.0);
        drop(waiter);
        assert_eq!(rec.gauge(WAITING, &named("api")), 1.0);
        drop(other);
        assert_eq!(rec.gauge(WAITING, &named("api")), 0.0);
        assert_eq!(rec.counter(GRANTED, &named("api")), 1);
        assert!(rec.histogram(WAIT, &named("api")).is_empty());
    }

    // ===== InFlightLimit =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn in_flight_limit_counts_grants_in_flight_waiters_and_rejections() {
        let rec = Recorded::new();
        let limit = rec.scope(|| InFlightLimit::with_name(1, "db"));
        let l = named("db");
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_limit_granted_total{name=db}",
                "flowgate_limit_in_flight{name=db}",
                "flowgate_limit_rejected_total{name=db,reason=no_capacity}",
                "flowgate_limit_waiting{name=db}",
            ]
        );

        let permit = limit.try_acquire().unwrap();
        assert_eq!(rec.counter(GRANTED, &l), 1);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert!(limit.try_acquire().is_none());
        assert_eq!(rec.counter(REJECTED, &reason("db", "no_capacity")), 1);

        let mut waiter = task::spawn(limit.acquire());
        assert_pending!(waiter.poll());
        assert_eq!(rec.gauge(WAITING, &l), 1.0);
        drop(permit);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        let second = assert_ready!(waiter.poll());
        assert_eq!(rec.gauge(WAITING, &l), 0.0);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.counter(GRANTED, &l), 2);
        drop(second);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);

        assert_eq!(limit.run(async { 7 }).await, 7);
        assert_eq!(rec.counter(GRANTED, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn in_flight_limit_cancelled_acquire_leaves_the_waiting_gauge() {
        let rec = Recorded::new();
        let limit = rec.scope(|| InFlightLimit::with_name(1, "db"));
        let _permit = limit.try_acquire().unwrap();
        let mut waiter = task::spawn(limit.acquire());
        assert_pending!(waiter.poll());
        assert_eq!(rec.gauge(WAITING, &named("db")), 1.0);
        drop(waiter);
        assert_eq!(rec.gauge(WAITING, &named("db")), 0.0);
        assert_eq!(rec.gauge(IN_FLIGHT, &named("db")), 1.0);
        assert_eq!(rec.counter(GRANTED, &named("db")), 1);
    }

    // ===== KeyedRateLimiter =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn keyed_rate_limiter_counts_grants_rejections_waits_and_keys() {
        let rec = Recorded::new();
        let limiter = rec.scope(|| {
            KeyedRateLimiter::<&str>::builder(Rate::per_second(10))
                .name("users")
                .build()
                .unwrap()
        });
        let l = named("users");
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_limit_granted_total{name=users}",
                "flowgate_limit_keys{name=users}",
                "flowgate_limit_rejected_total{name=users,reason=not_ready}",
                "flowgate_limit_wait_seconds{name=users}",
                "flowgate_limit_waiting{name=users}",
            ]
        );

        assert!(limiter.try_acquire(&"a").is_ok());
        assert!(limiter.try_acquire(&"a").is_err());
        limiter.acquire(&"b").await;
        assert_eq!(rec.counter(GRANTED, &l), 2);
        assert_eq!(rec.counter(REJECTED, &reason("users", "not_ready")), 1);
        assert_eq!(rec.gauge(KEYS, &l), 2.0);

        let mut waiter = task::spawn(limiter.acquire(&"a"));
        assert_pending!(waiter.poll());
        let mut behind = task::spawn(limiter.acquire(&"a"));
        assert_pending!(behind.poll());
        assert_eq!(rec.gauge(WAITING, &l), 2.0);
        advance(Duration::from_millis(100)).await;
        assert_ready!(waiter.poll());
        assert_eq!(rec.gauge(WAITING, &l), 1.0);
        // The second waiter is cancelled: it leaves the gauge.
        drop(behind);
        assert_eq!(rec.gauge(WAITING, &l), 0.0);
        assert_eq!(rec.counter(GRANTED, &l), 3);
        assert_eq!(rec.histogram(WAIT, &l), vec![0.0, 0.1]);

        // Idle keys are swept out.
        advance(Duration::from_secs(1)).await;
        limiter.retain_recent();
        assert!(limiter.is_empty());
        assert_eq!(rec.gauge(KEYS, &l), 0.0);
    }

    // ===== FairLimit =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn fair_limit_counts_grants_in_flight_waiters_and_rejections() {
        let rec = Recorded::new();
        let limit = rec.scope(|| {
            FairLimit::builder(1)
                .weight("a", 2)
                .name("pool")
                .build()
                .unwrap()
        });
        let l = named("pool");
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_limit_granted_total{name=pool}",
                "flowgate_limit_in_flight{name=pool}",
                "flowgate_limit_rejected_total{name=pool,reason=no_capacity}",
                "flowgate_limit_waiting{name=pool}",
            ]
        );

        let permit = limit.try_acquire(&"a").unwrap();
        assert!(limit.try_acquire(&"b").is_none());
        assert_eq!(rec.counter(GRANTED, &l), 1);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.counter(REJECTED, &reason("pool", "no_capacity")), 1);

        let mut b = task::spawn(limit.acquire(&"b"));
        assert_pending!(b.poll());
        let mut c = task::spawn(limit.acquire(&"c"));
        assert_pending!(c.poll());
        assert_eq!(rec.gauge(WAITING, &l), 2.0);

        // A release hands the permit to the first waiter at once.
        drop(permit);
        assert_eq!(rec.counter(GRANTED, &l), 2);
        assert_eq!(rec.gauge(WAITING, &l), 1.0);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        let b_permit = assert_ready!(b.poll());

        // A cancelled waiter leaves the gauge.
        drop(c);
        assert_eq!(rec.gauge(WAITING, &l), 0.0);
        drop(b_permit);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.counter(GRANTED, &l), 2);
    }

    // ===== FairRate =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn fair_rate_counts_grants_rejections_waiters_and_waits() {
        let rec = Recorded::new();
        let rate = rec.scope(|| {
            FairRate::<&str>::builder(Rate::per_second(10))
                .name("vendor")
                .build()
                .unwrap()
        });
        let l = named("vendor");
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_limit_granted_total{name=vendor}",
                "flowgate_limit_rejected_total{name=vendor,reason=not_ready}",
                "flowgate_limit_wait_seconds{name=vendor}",
                "flowgate_limit_waiting{name=vendor}",
            ]
        );

        rate.acquire(&"a").await; // at once
        assert!(rate.try_acquire(&"a").is_err());
        assert_eq!(rec.counter(GRANTED, &l), 1);
        assert_eq!(rec.counter(REJECTED, &reason("vendor", "not_ready")), 1);

        let mut a = task::spawn(rate.acquire(&"a"));
        assert_pending!(a.poll());
        let mut b = task::spawn(rate.acquire(&"b"));
        assert_pending!(b.poll());
        assert_eq!(rec.gauge(WAITING, &l), 2.0);
        advance(Duration::from_millis(100)).await;
        assert_ready!(a.poll());
        assert_eq!(rec.gauge(WAITING, &l), 1.0);
        drop(b);
        assert_eq!(rec.gauge(WAITING, &l), 0.0);
        assert_eq!(rec.counter(GRANTED, &l), 2);
        assert_eq!(rec.histogram(WAIT, &l), vec![0.0, 0.1]);
        // A refused try does not count as a grant, a passing one does.
        advance(Duration::from_millis(100)).await;
        assert!(rate.try_acquire(&"b").is_ok());
        assert_eq!(rec.counter(GRANTED, &l), 3);
    }

    // ===== unnamed =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn unnamed_limiters_register_nothing() {
        let rec = Recorded::new();
        let (rate, in_flight, keyed, fair, fair_rate) = rec.scope(|| {
            (
                RateLimiter::new(Rate::per_second(10)),
                InFlightLimit::new(1),
                KeyedRateLimiter::<u8>::new(Rate::per_second(10)),
                FairLimit::<u8>::new(1),
                FairRate::<u8>::new(Rate::per_second(10)),
            )
        });
        rate.acquire().await;
        assert!(rate.try_acquire().is_err());
        rate.acquire().await;
        let p = in_flight.acquire().await;
        assert!(in_flight.try_acquire().is_none());
        drop(p);
        keyed.acquire(&1).await;
        keyed.acquire(&1).await;
        assert!(keyed.try_acquire(&1).is_err());
        let p = fair.acquire(&1).await;
        assert!(fair.try_acquire(&2).is_none());
        drop(p);
        fair_rate.acquire(&1).await;
        fair_rate.acquire(&2).await;
        assert!(fair_rate.try_acquire(&1).is_err());
        assert!(rec.is_empty(), "registered: {:?}", rec.names());
    }
}

// ===== tracing =====

#[test]
fn refused_configurations_warn_with_the_name() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let keyed = KeyedRateLimiter::<u8>::builder(Rate::per_second(1))
        .shards(0)
        .name("users")
        .build();
    assert_eq!(keyed.unwrap_err(), BuildError::ZeroShards);
    let fair = FairLimit::<u8>::builder(0).name("pool").build();
    assert_eq!(fair.unwrap_err(), BuildError::ZeroCapacity);
    let fair_rate = FairRate::builder(Rate::per_second(1))
        .weight(1u8, 0)
        .name("vendor")
        .build();
    assert_eq!(fair_rate.unwrap_err(), BuildError::ZeroWeight);

    let warns = traced.events_at_least(tracing::Level::WARN, "flowgate::limit");
    let seen: Vec<_> = warns
        .iter()
        .map(|e| {
            (
                e.level,
                e.target.as_str(),
                e.field("name"),
                e.field("error"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                tracing::Level::WARN,
                "flowgate::limit::keyed",
                Some("users"),
                Some("shards must be at least 1")
            ),
            (
                tracing::Level::WARN,
                "flowgate::limit::fair::limit",
                Some("pool"),
                Some("capacity must be at least 1")
            ),
            (
                tracing::Level::WARN,
                "flowgate::limit::fair::rate",
                Some("vendor"),
                Some("weight must be at least 1")
            ),
        ]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn limiters_log_nothing_per_call_at_info_or_above() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let keyed = KeyedRateLimiter::<u8>::builder(Rate::per_second(100))
        .name("k")
        .build()
        .unwrap();
    let fair = FairLimit::<u8>::builder(1).name("f").build().unwrap();
    for i in 0..20u8 {
        keyed.acquire(&(i % 2)).await;
        let _ = keyed.try_acquire(&(i % 2));
        let p = fair.acquire(&i).await;
        assert!(fair.try_acquire(&i).is_none());
        drop(p);
    }
    assert!(
        traced
            .events_at_least(tracing::Level::INFO, "flowgate")
            .is_empty()
    );
}
