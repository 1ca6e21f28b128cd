//! The SQLite checkpoint and idempotency stores against a real SQLite file,
//! and a crash/restart of a cursor source paging through a SQLite table.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::idempotency::{Idempotency, IdempotencyStore, Processed};
use flowgate::prelude::*;
use flowgate::source::{CheckpointStore, CursorSource, Page};
use flowgate_sql::{SqliteCheckpointStore, SqliteIdempotencyStore, Value, ValueTypeError};
use futures_util::StreamExt;
use rusqlite::Connection;

/// A fresh directory for one test's database files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-sql-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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

const ROWS: i64 = 300;
const PAGE: i64 = 20;

fn create_events(path: &Path) {
    let mut conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        [],
    )
    .unwrap();
    tx.execute("CREATE TABLE effects (id INTEGER NOT NULL)", [])
        .unwrap();
    for id in 1..=ROWS {
        tx.execute(
            "INSERT INTO events (id, body) VALUES (?1, ?2)",
            rusqlite::params![id, format!("event {id}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Pages through `events` by id, on the blocking pool.
fn fetcher(
    path: &Path,
) -> impl FnMut(i64) -> futures_core::future::BoxFuture<'static, Result<Page<i64, i64>, String>>
+ Send
+ 'static {
    let conn = Arc::new(Mutex::new(Connection::open(path).unwrap()));
    move |after| {
        let conn = Arc::clone(&conn);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let conn = conn.lock().unwrap();
                let mut select = conn
                    .prepare_cached("SELECT id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")
                    .map_err(|e| e.to_string())?;
                let ids = select
                    .query_map(rusqlite::params![after, PAGE], |row| row.get(0))
                    .map_err(|e| e.to_string())?
                    .collect::<Result<Vec<i64>, _>>()
                    .map_err(|e| e.to_string())?;
                Ok(Page::keyset(ids, |id| *id))
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

/// One run of the consumer: up to `stop_after` items (then a crash: the
/// pipeline is dropped mid-flight and the driver aborted), or to the end.
async fn run(
    path: &Path,
    acked: &Arc<Mutex<BTreeSet<i64>>>,
    stop_after: Option<usize>,
) -> Option<i64> {
    let checkpoint = SqliteCheckpointStore::open(path, "events").await.unwrap();
    let once = Idempotency::new(SqliteIdempotencyStore::open(path, "effects").await.unwrap());
    let effects = Arc::new(Mutex::new(Connection::open(path).unwrap()));
    effects
        .lock()
        .unwrap()
        .busy_timeout(Duration::from_secs(5))
        .unwrap();
    let (source, driver) = CursorSource::builder(0i64)
        .checkpoint(checkpoint.clone())
        .max_pages_in_flight(3)
        .build_pair(fetcher(path))
        .unwrap();
    let control = source.control();
    let driver = tokio::spawn(driver);
    let started_from = {
        let outputs = source.par_map_unordered(8, |item| {
            let (once, effects, acked) = (once.clone(), Arc::clone(&effects), Arc::clone(acked));
            async move {
                let (id, ack) = item.expect("fetch");
                tokio::time::sleep(Duration::from_micros((id as u64 * 37) % 500)).await;
                let outcome = once
                    .run(id, || async {
                        // The effect runs synchronously: a crash lands before
                        // it or after it (and its record is then on its way).
                        effects
                            .lock()
                            .unwrap()
                            .execute("INSERT INTO effects (id) VALUES (?1)", [id])
                            .unwrap();
                        Ok::<_, Infallible>(())
                    })
                    .await
                    .unwrap();
                acked.lock().unwrap().insert(id);
                ack.ack();
                outcome
            }
        });
        match stop_after {
            Some(n) => {
                let done = outputs.take(n).count().await;
                assert_eq!(done, n);
                driver.abort();
                let _ = driver.await;
            }
            None => {
                let skipped = outputs
                    .filter(|o| std::future::ready(o.is_skipped()))
                    .count()
                    .await;
                assert!(
                    skipped as i64 <= 3 * PAGE,
                    "redo is bounded by the pages in flight"
                );
                control.finished().await;
                driver.await.unwrap();
            }
        }
        control.started_from()
    };
    // Let records already handed to the blocking pool land before the
    // "restart" (a real crash could lose one: see the idempotency docs).
    // Under paused time this waits for the blocking pool to be idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    started_from
}

// Paused time: the sleeps that shuffle the acks are virtual, and tokio does
// not auto-advance time while blocking tasks (the SQLite calls) run, so the
// settling sleep after a crash ends only once every write handed to the
// blocking pool has landed.
#[tokio::test(start_paused = true)]
async fn a_crashed_consumer_resumes_from_its_sqlite_checkpoint_with_effects_once() {
    let dir = temp_dir("crash");
    let path = dir.join("app.db");
    create_events(&path);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));

    assert_eq!(run(&path, &acked, Some(130)).await, Some(0));
    let checkpoint = SqliteCheckpointStore::open(&path, "events").await.unwrap();
    let committed: i64 = CheckpointStore::<i64>::load(&checkpoint)
        .await
        .unwrap()
        .unwrap();
    {
        let acked = acked.lock().unwrap();
        assert!(committed > 0, "something was committed before the crash");
        assert!(
            (1..=committed).all(|id| acked.contains(&id)),
            "no unacked row before {committed}"
        );
    }

    assert_eq!(
        run(&path, &acked, Some(70)).await,
        Some(committed),
        "resumed from the checkpoint"
    );
    run(&path, &acked, None).await;

    assert_eq!(
        *acked.lock().unwrap(),
        (1..=ROWS).collect::<BTreeSet<_>>(),
        "none skipped"
    );
    let conn = Connection::open(&path).unwrap();
    let (effects, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM effects",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (effects, distinct),
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
