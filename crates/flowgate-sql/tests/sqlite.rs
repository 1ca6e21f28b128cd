//! The SQLite sink against a real SQLite database (compiled in: no server).

use std::sync::Arc;

use flowgate::batch::{AckError, Batcher};
use flowgate_sql::{SinkError, SqliteSink, Table, TableError, Value, Written};

#[derive(Debug, Clone)]
struct Event {
    id: String,
    seq: i64,
    body: Vec<u8>,
}

fn event(id: &str, seq: i64) -> Event {
    Event {
        id: id.to_owned(),
        seq,
        body: format!("body of {id}").into_bytes(),
    }
}

fn table() -> Table {
    Table::builder("events")
        .text("id")
        .integer("seq")
        .blob("body")
        .key("id")
        .build()
        .unwrap()
}

fn encode(e: &Event) -> Vec<Value> {
    vec![
        Value::from(e.id.as_str()),
        Value::from(e.seq),
        Value::from(e.body.as_slice()),
    ]
}

#[tokio::test]
async fn a_batch_is_stored_and_duplicates_are_reported() {
    let sink = SqliteSink::open_in_memory(table(), encode).await.unwrap();
    let written = sink
        .write(vec![event("a", 1), event("b", 2), event("a", 3)])
        .await
        .unwrap();
    assert_eq!(
        written,
        vec![Written::Inserted, Written::Inserted, Written::Duplicate],
        "a key repeated within the batch is a duplicate"
    );
    let again = sink
        .write(vec![event("b", 2), event("c", 4)])
        .await
        .unwrap();
    assert_eq!(again, vec![Written::Duplicate, Written::Inserted]);
    assert_eq!(sink.count().await.unwrap(), 3);
}

#[tokio::test]
async fn a_row_that_does_not_fit_fails_the_whole_batch() {
    let sink = SqliteSink::open_in_memory(table(), |e: &Event| {
        if e.seq < 0 {
            vec![Value::Null, Value::from(e.seq), Value::Null]
        } else {
            encode(e)
        }
    })
    .await
    .unwrap();
    let err = sink
        .write(vec![event("a", 1), event("b", -1)])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SinkError::Table(TableError::NullKey { row: 1, .. })
    ));
    assert!(!err.is_transient());
    assert_eq!(
        sink.count().await.unwrap(),
        0,
        "nothing of the batch stored"
    );
}

#[tokio::test]
async fn a_failed_transaction_stores_nothing_and_fails_every_ack() {
    let dir = tempdir();
    let path = dir.join("events.db");
    let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
    sink.write(vec![event("kept", 0)]).await.unwrap();

    // Make every later write fail inside the transaction, after some rows
    // were inserted: a trigger that aborts on a marker row.
    let conn = rusqlite_connection(&path);
    conn.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq = 666
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    drop(conn);

    let writer = sink.clone();
    let batcher = Batcher::builder()
        .max_items(3)
        .build(move |rows: Vec<Event>| {
            let sink = writer.clone();
            async move { sink.write(rows).await }
        })
        .unwrap();
    let mut acks = Vec::new();
    for e in [event("x", 1), event("y", 666), event("z", 2)] {
        acks.push(batcher.submit(e).await.unwrap());
    }
    for ack in acks {
        match ack.await {
            Err(AckError::Flush(err)) => assert!(err.to_string().contains("refused"), "{err}"),
            other => panic!("expected the batch to fail, got {other:?}"),
        }
    }
    assert_eq!(sink.count().await.unwrap(), 1, "x was rolled back");
    let ok = batcher.submit(event("w", 3)).await.unwrap();
    batcher.close().await;
    assert_eq!(
        ok.await.unwrap(),
        Written::Inserted,
        "later batches are fine"
    );
}

#[tokio::test]
async fn batches_survive_reopening_the_file() {
    let dir = tempdir();
    let path = dir.join("events.db");
    {
        let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
        sink.write((0..100).map(|i| event(&format!("e{i}"), i)).collect())
            .await
            .unwrap();
        assert_eq!(sink.path(), Some(path.as_path()));
    }
    let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
    assert_eq!(sink.count().await.unwrap(), 100);
    let mode: String = rusqlite_connection(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let written = sink
        .write((95..105).map(|i| event(&format!("e{i}"), i)).collect())
        .await
        .unwrap();
    assert_eq!(
        written.iter().filter(|w| **w == Written::Duplicate).count(),
        5
    );
    assert_eq!(sink.count().await.unwrap(), 105);
}

#[tokio::test]
async fn concurrent_batches_through_a_batcher_store_each_row_once() {
    let sink = SqliteSink::open_in_memory(table(), encode).await.unwrap();
    let writer = sink.clone();
    let batcher = Batcher::builder()
        .max_items(8)
        .max_delay(std::time::Duration::from_millis(5))
        .flush_concurrency(4)
        .build(move |rows: Vec<Event>| {
            let sink = writer.clone();
            async move { sink.write(rows).await }
        })
        .unwrap();
    let inserted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let batcher = batcher.clone();
        let inserted = Arc::clone(&inserted);
        tasks.push(tokio::spawn(async move {
            // Every task writes the same 500 ids: each is stored once.
            for i in 0..500 {
                let ack = batcher.submit(event(&format!("id{i}"), t)).await.unwrap();
                if ack.await.unwrap() == Written::Inserted {
                    inserted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    batcher.close().await;
    assert_eq!(sink.count().await.unwrap(), 500);
    assert_eq!(inserted.load(std::sync::atomic::Ordering::SeqCst), 500);
}

#[tokio::test]
async fn an_existing_table_with_other_columns_is_an_error_at_open() {
    let dir = tempdir();
    let path = dir.join("events.db");
    rusqlite_connection(&path)
        .execute_batch("CREATE TABLE events (other INTEGER PRIMARY KEY)")
        .unwrap();
    let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
    let err = sink.write(vec![event("a", 1)]).await.unwrap_err();
    assert!(matches!(err, SinkError::Sqlite(_)), "{err}");
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// A fresh directory under the target dir, removed at the next run.
fn tempdir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "flowgate-sql-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
