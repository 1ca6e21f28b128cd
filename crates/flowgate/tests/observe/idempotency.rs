//! `flowgate::idempotency`: the series of a named `Idempotency`, and its
//! failure events.

use std::time::Duration;

use flowgate::idempotency::{Idempotency, IdempotencyStore, MemoryIdempotencyStore, StoreError};
use futures_core::future::BoxFuture;
use tracing::Level;

use crate::common::Traced;

fn memory() -> MemoryIdempotencyStore<u64> {
    MemoryIdempotencyStore::new(1000, Duration::from_secs(60))
}

/// A store whose lookups or records fail.
struct Broken {
    lookups: bool,
    records: bool,
}

impl IdempotencyStore<u64> for Broken {
    fn contains<'a>(&'a self, _: &'a u64) -> BoxFuture<'a, Result<bool, StoreError>> {
        let fail = self.lookups;
        Box::pin(async move {
            if fail {
                Err(StoreError::transient("busy"))
            } else {
                Ok(false)
            }
        })
    }

    fn record<'a>(&'a self, _: &'a u64) -> BoxFuture<'a, Result<(), StoreError>> {
        let fail = self.records;
        Box::pin(async move {
            if fail {
                Err(StoreError::new("read-only"))
            } else {
                Ok(())
            }
        })
    }
}

#[cfg(feature = "metrics")]
mod metrics {
    use flowgate::idempotency::{Idempotency, Processed};
    use tokio::sync::oneshot;
    use tokio_test::{assert_pending, assert_ready, task};

    use super::{Broken, memory};
    use crate::common::Recorded;

    const EFFECTS: &str = "flowgate_idempotency_effects_total";
    const SKIPPED: &str = "flowgate_idempotency_skipped_total";
    const STORE_ERRORS: &str = "flowgate_idempotency_store_errors_total";
    const RUNNING: &str = "flowgate_idempotency_effects_running";
    const WAITING: &str = "flowgate_idempotency_runs_waiting";

    #[test]
    fn every_series_is_registered_when_named() {
        let rec = Recorded::new();
        let _once = rec.scope(|| Idempotency::new(memory()).name("i"));
        assert_eq!(
            rec.names(),
            [
                "flowgate_idempotency_effects_running{name=i}",
                "flowgate_idempotency_effects_total{name=i,outcome=error}",
                "flowgate_idempotency_effects_total{name=i,outcome=ok}",
                "flowgate_idempotency_runs_waiting{name=i}",
                "flowgate_idempotency_skipped_total{name=i}",
                "flowgate_idempotency_store_errors_total{name=i,reason=lookup}",
                "flowgate_idempotency_store_errors_total{name=i,reason=record}",
            ]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn effects_skips_and_store_errors_are_counted() {
        let rec = Recorded::new();
        let once = rec.scope(|| Idempotency::new(memory()).name("pay"));
        let effects = |outcome| rec.counter(EFFECTS, &[("name", "pay"), ("outcome", outcome)]);
        let store_errors =
            |reason| rec.counter(STORE_ERRORS, &[("name", "pay"), ("reason", reason)]);
        let n = &[("name", "pay")];

        assert_eq!(
            once.run(1, || async { Ok::<_, ()>(1) }).await.unwrap(),
            Processed::Done(1)
        );
        assert_eq!(
            once.run(1, || async { Ok::<_, ()>(1) }).await.unwrap(),
            Processed::Skipped
        );
        assert!(once.run(2, || async { Err::<u8, _>("no") }).await.is_err());
        assert_eq!(
            (effects("ok"), effects("error"), rec.counter(SKIPPED, n)),
            (1, 1, 1)
        );
        // Clones share the series.
        let clone = once.clone();
        assert!(clone.run(2, || async { Ok::<_, ()>(2) }).await.is_ok());
        assert_eq!(effects("ok"), 2);
        assert_eq!((store_errors("lookup"), store_errors("record")), (0, 0));

        let lookups = rec.scope(|| {
            Idempotency::new(Broken {
                lookups: true,
                records: false,
            })
            .name("pay")
        });
        assert!(lookups.run(3, || async { Ok::<_, ()>(()) }).await.is_err());
        let records = rec.scope(|| {
            Idempotency::new(Broken {
                lookups: false,
                records: true,
            })
            .name("pay")
        });
        assert!(records.run(3, || async { Ok::<_, ()>(()) }).await.is_err());
        assert_eq!((store_errors("lookup"), store_errors("record")), (1, 1));
        assert_eq!(
            effects("ok"),
            3,
            "the effect whose key was not recorded ran"
        );
        assert_eq!(rec.gauge(RUNNING, n), 0.0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn running_and_waiting_come_back_down_on_completion_and_cancel() {
        let rec = Recorded::new();
        let once = rec.scope(|| Idempotency::new(memory()).name("busy"));
        let n = &[("name", "busy")];
        let (release, released) = oneshot::channel::<()>();
        let mut first = task::spawn(once.run(7, || async move {
            released.await.unwrap();
            Ok::<_, ()>("first")
        }));
        assert_pending!(first.poll());
        assert_eq!(rec.gauge(RUNNING, n), 1.0);

        // A duplicate waits for it; a cancelled duplicate stops waiting.
        let mut second = task::spawn(once.run(7, || async { Ok::<_, ()>("second") }));
        assert_pending!(second.poll());
        let mut cancelled = task::spawn(once.run(7, || async { Ok::<_, ()>("third") }));
        assert_pending!(cancelled.poll());
        assert_eq!(rec.gauge(WAITING, n), 2.0);
        drop(cancelled);
        assert_eq!(rec.gauge(WAITING, n), 1.0);

        release.send(()).unwrap();
        assert_eq!(
            assert_ready!(first.poll()).unwrap(),
            Processed::Done("first")
        );
        assert_eq!(rec.gauge(RUNNING, n), 0.0);
        assert!(second.is_woken());
        assert_eq!(assert_ready!(second.poll()).unwrap(), Processed::Skipped);
        assert_eq!(rec.gauge(WAITING, n), 0.0);

        // An effect cancelled while it runs is no longer counted as running,
        // and has no outcome.
        let mut dropped = task::spawn(once.run(8, std::future::pending::<Result<(), ()>>));
        assert_pending!(dropped.poll());
        assert_eq!(rec.gauge(RUNNING, n), 1.0);
        drop(dropped);
        assert_eq!(rec.gauge(RUNNING, n), 0.0);
        let effects = |outcome| rec.counter(EFFECTS, &[("name", "busy"), ("outcome", outcome)]);
        assert_eq!((effects("ok"), effects("error")), (1, 0));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn unnamed_guards_register_nothing() {
        let rec = Recorded::new();
        let once = rec.scope(|| Idempotency::new(memory()));
        let _ = once.run(1, || async { Ok::<_, ()>(()) }).await;
        let _ = once.run(1, || async { Ok::<_, ()>(()) }).await;
        let _ = once.run(2, || async { Err::<(), _>(()) }).await;
        let broken = rec.scope(|| {
            Idempotency::new(Broken {
                lookups: true,
                records: true,
            })
        });
        let _ = broken.run(3, || async { Ok::<_, ()>(()) }).await;
        assert!(rec.is_empty(), "registered: {:?}", rec.names());
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn failures_warn_and_an_unrecorded_key_is_an_error() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let once = Idempotency::new(memory()).name("orders");
    let _ = once.run(1, || async { Err::<(), _>("declined") }).await;
    let lookups = Idempotency::new(Broken {
        lookups: true,
        records: false,
    })
    .name("orders");
    let _ = lookups.run(2, || async { Ok::<_, ()>(()) }).await;
    let records = Idempotency::new(Broken {
        lookups: false,
        records: true,
    })
    .name("orders");
    let _ = records.run(3, || async { Ok::<_, ()>(()) }).await;

    let events = traced.events_at_least(Level::WARN, "flowgate::idempotency");
    let levels: Vec<_> = events.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [Level::WARN, Level::WARN, Level::ERROR],
        "{events:?}"
    );
    assert!(events.iter().all(|e| e.field("name") == Some("orders")));
    assert!(events.iter().all(|e| e.target == "flowgate::idempotency"));
    assert_eq!(events[1].field("error"), Some("store failed: busy"));
    assert_eq!(events[2].field("error"), Some("store failed: read-only"));

    // Success and skips are quiet.
    let _ = once.run(4, || async { Ok::<_, ()>(()) }).await;
    let _ = once.run(4, || async { Ok::<_, ()>(()) }).await;
    assert_eq!(
        traced
            .events_at_least(Level::WARN, "flowgate::idempotency")
            .len(),
        3
    );
}
