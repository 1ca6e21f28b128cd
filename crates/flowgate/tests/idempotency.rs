//! Behaviour tests of `flowgate::idempotency`: skip after success, retry
//! after failure, concurrent duplicates, cancellation, store failures, and
//! the bounded TTL memory store (under paused tokio time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::idempotency::{
    Idempotency, IdempotencyStore, MemoryIdempotencyStore, Processed, RunError, StoreError,
};
use futures_core::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::time::{advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

fn memory() -> MemoryIdempotencyStore<u64> {
    MemoryIdempotencyStore::new(1000, Duration::from_secs(60))
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Idempotency<u64>>();
    assert_send_sync::<MemoryIdempotencyStore<String>>();
    assert_send_sync::<RunError<String, std::io::Error>>();
    let once = Idempotency::new(memory());
    assert_send(&once.run(1, || async { Ok::<_, std::io::Error>(()) }));
    assert_send(&once.is_processed(&1));
    // Object-safe: a store chosen at run time.
    let store: Arc<dyn IdempotencyStore<u64>> = Arc::new(memory());
    let _ = Idempotency::new(store);
}

#[tokio::test]
async fn an_effect_runs_once_per_key_and_is_retried_after_failure() {
    let once = Idempotency::new(memory());
    let runs = Arc::new(AtomicUsize::new(0));
    let effect = |fail: bool| {
        let runs = Arc::clone(&runs);
        move || async move {
            runs.fetch_add(1, Ordering::Relaxed);
            if fail { Err("boom") } else { Ok(7) }
        }
    };
    assert!(matches!(
        once.run(1, effect(true)).await,
        Err(RunError::Failed("boom"))
    ));
    assert!(
        !once.is_processed(&1).await.unwrap(),
        "failure is not recorded"
    );
    assert_eq!(
        once.run(1, effect(false)).await.unwrap(),
        Processed::Done(7)
    );
    assert!(once.is_processed(&1).await.unwrap());
    assert_eq!(
        once.run(1, effect(false)).await.unwrap(),
        Processed::Skipped
    );
    assert_eq!(
        once.run(2, effect(false)).await.unwrap(),
        Processed::Done(7)
    );
    assert_eq!(
        runs.load(Ordering::Relaxed),
        3,
        "the skipped run did not call the effect"
    );
}

#[tokio::test(start_paused = true)]
async fn a_concurrent_duplicate_waits_then_skips() {
    let once = Idempotency::new(memory());
    let (release, released) = oneshot::channel::<()>();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let mut first = task::spawn(once.run(5, move || async move {
        r.fetch_add(1, Ordering::Relaxed);
        released.await.unwrap();
        Ok::<_, ()>("first")
    }));
    assert_pending!(first.poll());
    let r = Arc::clone(&runs);
    let mut second = task::spawn(once.run(5, move || async move {
        r.fetch_add(1, Ordering::Relaxed);
        Ok::<_, ()>("second")
    }));
    assert_pending!(second.poll(), "waits for the run of the same key");
    // Another key is not held up.
    assert_eq!(
        once.run(6, || async { Ok::<_, ()>("other") })
            .await
            .unwrap(),
        Processed::Done("other")
    );
    release.send(()).unwrap();
    assert_eq!(
        assert_ready!(first.poll()).unwrap(),
        Processed::Done("first")
    );
    assert!(second.is_woken());
    assert_eq!(assert_ready!(second.poll()).unwrap(), Processed::Skipped);
    assert_eq!(runs.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_concurrent_duplicate_runs_when_the_first_fails() {
    let once = Idempotency::new(memory());
    let mut first = task::spawn(once.run(5, || async {
        sleep(Duration::from_millis(10)).await;
        Err::<&str, _>("failed")
    }));
    let mut second = task::spawn(once.run(5, || async { Ok::<_, &str>("second") }));
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    advance(Duration::from_millis(10)).await;
    assert!(matches!(
        assert_ready!(first.poll()),
        Err(RunError::Failed("failed"))
    ));
    assert_eq!(
        assert_ready!(second.poll()).unwrap(),
        Processed::Done("second")
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_run_releases_its_key_unrecorded() {
    let once = Idempotency::new(memory());
    let mut first = task::spawn(once.run(5, || async {
        sleep(Duration::from_secs(1)).await;
        Ok::<_, ()>(())
    }));
    assert_pending!(first.poll());
    let mut second = task::spawn(once.run(5, || async { Ok::<_, ()>("second") }));
    assert_pending!(second.poll());
    drop(first); // cancelled mid-effect
    assert!(second.is_woken());
    assert_eq!(
        assert_ready!(second.poll()).unwrap(),
        Processed::Done("second")
    );
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

#[tokio::test]
async fn store_failures_say_whether_the_effect_ran() {
    let lookup = Idempotency::new(Broken {
        lookups: true,
        records: false,
    });
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let err = lookup
        .run(1, move || async move {
            r.fetch_add(1, Ordering::Relaxed);
            Ok::<_, ()>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Lookup(_)));
    assert!(!err.effect_ran());
    assert!(err.store_error().unwrap().is_transient());
    assert_eq!(ran.load(Ordering::Relaxed), 0);

    let record = Idempotency::new(Broken {
        lookups: false,
        records: true,
    });
    let err = record
        .run(1, || async { Ok::<_, ()>(42) })
        .await
        .unwrap_err();
    assert!(err.effect_ran());
    let RunError::Record { output, error } = err else {
        panic!("a record error");
    };
    assert_eq!(output, 42, "the output is handed back");
    assert_eq!(error.to_string(), "store failed: read-only");
}

#[tokio::test(start_paused = true)]
async fn the_memory_store_forgets_after_ttl_and_beyond_capacity() {
    let store = MemoryIdempotencyStore::new(3, Duration::from_secs(10));
    for key in 1..=3u64 {
        store.record(&key).await.unwrap();
        advance(Duration::from_secs(1)).await;
    }
    assert_eq!(store.len(), 3);
    store.record(&4).await.unwrap();
    assert!(!store.contains(&1).await.unwrap(), "the oldest key went");
    assert!(store.contains(&2).await.unwrap());
    advance(Duration::from_secs(8)).await; // key 2 is 10 s old
    assert!(!store.contains(&2).await.unwrap(), "expired");
    assert!(store.contains(&3).await.unwrap());
    assert!(store.remove(&3));
    assert!(!store.contains(&3).await.unwrap());
    // Clones share the keys.
    let clone = store.clone();
    clone.record(&9).await.unwrap();
    assert!(store.contains(&9).await.unwrap());
}
