//! The SQLite checkpoint and idempotency stores against a real SQLite file,
//! and a crash/restart of a cursor source paging through a SQLite table.

mod common;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use common::temp_dir;
use flowgate::idempotency::{Idempotency, IdempotencyStore, Processed};
use flowgate::source::CheckpointStore;
use flowgate_sql::{SqliteCheckpointStore, SqliteIdempotencyStore, Value, ValueTypeError};

#[test]
fn stores_are_send_sync_and_object_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteCheckpointStore>();
    assert_send_sync::<SqliteIdempotencyStore>();
    fn _checkpoint(store: SqliteCheckpointStore) -> Arc<dyn CheckpointStore<String>> {
        Arc::new(store)
    }
    fn _idempotency(store: SqliteIdempotencyStore) -> Arc<dyn IdempotencyStore<i64>> {
        Arc::new(store)
    }
}

#[tokio::test]
async fn a_checkpoint_survives_reopening_and_names_are_separate() {
    let dir = temp_dir("checkpoint");
    let path = dir.join("state.db");
    let orders = SqliteCheckpointStore::open(&path, "orders").await.unwrap();
    let users = SqliteCheckpointStore::open(&path, "users").await.unwrap();
    assert_eq!(CheckpointStore::<i64>::load(&orders).await.unwrap(), None);
    orders.commit(10i64).await.unwrap();
    orders.commit(20i64).await.unwrap();
    users.commit("u-0042".to_owned()).await.unwrap();
    drop((orders, users));

    let orders = SqliteCheckpointStore::open(&path, "orders").await.unwrap();
    let users = SqliteCheckpointStore::open(&path, "users").await.unwrap();
    assert_eq!(
        CheckpointStore::<i64>::load(&orders).await.unwrap(),
        Some(20)
    );
    assert_eq!(
        CheckpointStore::<String>::load(&users).await.unwrap(),
        Some("u-0042".to_owned())
    );
    // Read back as the wrong type: a permanent store error, not a panic.
    let err = CheckpointStore::<i64>::load(&users).await.unwrap_err();
    assert!(!err.is_transient());
    let inner = err.into_inner();
    let wrong = inner.downcast_ref::<ValueTypeError>().unwrap();
    assert_eq!(wrong.to_string(), "expected a bigint value, got text");
    assert!(orders.reset().await.unwrap());
    assert_eq!(orders.get().await.unwrap(), None);
    assert_eq!(orders.path(), Some(path.as_path()));
    assert_eq!(users.name(), "users");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn keys_are_recorded_per_scope_and_can_be_purged() {
    let store = SqliteIdempotencyStore::open_in_memory("emails")
        .await
        .unwrap();
    assert!(!store.contains(&7i64).await.unwrap());
    store.record(&7i64).await.unwrap();
    store.record(&7i64).await.unwrap(); // twice is fine
    store.record(&"seven".to_owned()).await.unwrap();
    assert!(store.contains(&7i64).await.unwrap());
    assert!(store.contains(&"seven".to_owned()).await.unwrap());
    assert!(
        !store.contains(&"7".to_owned()).await.unwrap(),
        "types are kept apart"
    );
    assert_eq!(store.count().await.unwrap(), 2);
    assert!(store.record_value(Value::Null).await.is_err());
    assert_eq!(
        store
            .purge_older_than(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.count().await.unwrap(), 2);
    // The longest age (past i64::MAX seconds): nothing is that old.
    assert_eq!(store.purge_older_than(Duration::MAX).await.unwrap(), 0);
    assert_eq!(store.count().await.unwrap(), 2);
}

#[tokio::test]
async fn scopes_share_a_file_without_sharing_keys() {
    let dir = temp_dir("scopes");
    let path = dir.join("keys.db");
    let a = SqliteIdempotencyStore::open(&path, "a").await.unwrap();
    let b = SqliteIdempotencyStore::open(&path, "b").await.unwrap();
    a.record(&1i64).await.unwrap();
    assert!(!b.contains(&1i64).await.unwrap());
    drop((a, b));
    let a = SqliteIdempotencyStore::open(&path, "a").await.unwrap();
    assert!(a.contains(&1i64).await.unwrap(), "kept across reopening");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ===== crash and restart against SQLite =====

// The harness of flowgate's `resume` example: the scenario is written once.
#[path = "../examples/resume/harness.rs"]
#[allow(dead_code)]
mod harness;

const ROWS: i64 = 300;
const PAGE: i64 = 20;

const SCENARIO: harness::Scenario = harness::Scenario {
    rows: ROWS,
    page: PAGE,
    pages_in_flight: 3,
    concurrency: 8,
    work: |id| Duration::from_micros((id as u64 * 37) % 500),
    settle: Duration::from_millis(200),
};

// Paused time: the sleeps that shuffle the acks are virtual, and tokio does
// not auto-advance time while blocking tasks (the SQLite calls) run, so the
// settling sleep after a crash ends only once every write handed to the
// blocking pool has landed.
#[tokio::test(start_paused = true)]
async fn a_crashed_consumer_resumes_from_its_sqlite_checkpoint_with_effects_once() {
    let dir = temp_dir("crash");
    let path = dir.join("app.db");
    harness::create_tables(&path, &SCENARIO).unwrap();

    let first = harness::run(&path, &SCENARIO, Some(130), None)
        .await
        .unwrap();
    assert_eq!(first.started_from, Some(0));
    let checkpoint = SqliteCheckpointStore::open(&path, "events").await.unwrap();
    let committed: i64 = CheckpointStore::<i64>::load(&checkpoint)
        .await
        .unwrap()
        .unwrap();
    assert!(committed > 0, "something was committed before the crash");
    assert!(
        (1..=committed).all(|id| first.processed.contains(&id)),
        "no unacked row before {committed}"
    );

    let second = harness::run(&path, &SCENARIO, Some(70), None)
        .await
        .unwrap();
    assert_eq!(
        second.started_from,
        Some(committed),
        "resumed from the checkpoint"
    );
    let last = harness::run(&path, &SCENARIO, None, None).await.unwrap();
    assert!(
        last.skipped.len() as i64 <= 3 * PAGE,
        "redo is bounded by the pages in flight"
    );

    let acked: BTreeSet<i64> = [first.processed, second.processed, last.processed]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(acked, (1..=ROWS).collect::<BTreeSet<_>>(), "none skipped");
    assert_eq!(
        harness::effects(&path).unwrap(),
        (ROWS, ROWS),
        "each effect exactly once"
    );
    let done: i64 = CheckpointStore::<i64>::load(&checkpoint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done, ROWS);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn idempotency_with_sqlite_skips_what_was_done() {
    let once = Idempotency::new(
        SqliteIdempotencyStore::open_in_memory("jobs")
            .await
            .unwrap(),
    );
    assert_eq!(
        once.run(1i64, || async { Ok::<_, Infallible>(()) })
            .await
            .unwrap(),
        Processed::Done(())
    );
    assert!(
        once.run(1i64, || async { Ok::<_, Infallible>(()) })
            .await
            .unwrap()
            .is_skipped()
    );
}
