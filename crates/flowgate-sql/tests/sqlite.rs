//! The SQLite sink against a real SQLite database (compiled in: no server).

mod common;

use std::sync::Arc;

use common::{batcher_into, kind_by, temp_dir, write_values_is_write_each};
use flowgate::batch::{Batcher, FlushError};
use flowgate_sql::{
    ColumnType, RowOutcome, SinkError, SqliteSink, Table, TableError, Value, Written,
};

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
    let dir = temp_dir("sqlite");
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

    let batcher = batcher_into(&sink, Batcher::builder().max_items(3));
    let mut acks = Vec::new();
    for e in [event("x", 1), event("y", 666), event("z", 2)] {
        acks.push(batcher.submit(e).await.unwrap());
    }
    for ack in acks {
        match ack.await {
            Err(FlushError::Failed(err)) => assert!(err.to_string().contains("refused"), "{err}"),
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
    let dir = temp_dir("sqlite");
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
    let batcher = batcher_into(
        &sink,
        Batcher::builder()
            .max_items(8)
            .max_delay(std::time::Duration::from_millis(5))
            .flush_concurrency(4),
    );
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
    let dir = temp_dir("sqlite");
    let path = dir.join("events.db");
    rusqlite_connection(&path)
        .execute_batch("CREATE TABLE events (other INTEGER PRIMARY KEY)")
        .unwrap();
    let err = SqliteSink::open(&path, table(), encode).await.unwrap_err();
    assert!(matches!(err, SinkError::Schema(_)), "{err}");
    assert!(err.is_fatal());
    assert_eq!(
        err.to_string(),
        format!(
            "table \"events\" (SQLite database {:?}) does not fit the mapping: \
             column \"id\" is missing; column \"seq\" is missing; column \"body\" is missing; \
             the key (id) is not a primary key or unique constraint of the table, so rows cannot be deduplicated",
            path.display().to_string()
        )
    );
}

#[tokio::test]
async fn an_existing_table_that_does_not_fit_names_every_mismatch() {
    let dir = temp_dir("sqlite");
    let path = dir.join("orders.db");
    rusqlite_connection(&path)
        .execute_batch(
            "CREATE TABLE orders (
                 id TEXT,
                 amount TEXT,
                 doc JSON,
                 paid REAL,
                 at TIMESTAMP,
                 total INTEGER GENERATED ALWAYS AS (1) VIRTUAL,
                 note TEXT NOT NULL,
                 memo TEXT NOT NULL DEFAULT ''
             )",
        )
        .unwrap();
    let table = Table::builder("orders")
        .text("id")
        .integer("seq")
        .real("amount")
        .json("doc")
        .boolean("paid")
        .timestamp("at")
        .integer("total")
        .key("id")
        .build()
        .unwrap();
    let err = SqliteSink::open(&path, table, |_: &()| Vec::new())
        .await
        .unwrap_err();
    let SinkError::Schema(schema) = &err else {
        panic!("expected a schema error, got {err}")
    };
    assert_eq!(schema.table(), "orders");
    assert_eq!(schema.mismatches().len(), 7, "{err}");
    let text = err.to_string();
    for part in [
        &format!(
            "table \"orders\" (SQLite database {:?}) does not fit the mapping: ",
            path.display().to_string()
        ),
        "column \"seq\" is missing",
        "column \"amount\" is TEXT (TEXT affinity), the mapping writes REAL",
        "column \"doc\" is JSON (NUMERIC affinity), the mapping writes JSON as TEXT (that affinity would turn the text 007 into the number 7)",
        "column \"paid\" is REAL (REAL affinity), the mapping writes BOOLEAN (the integers 0 and 1)",
        "column \"total\" is generated, so it cannot be written",
        "the key (id) is not a primary key or unique constraint of the table, so rows cannot be deduplicated",
        "column \"note\" is NOT NULL without a default and not mapped",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(
        !text.contains("\"at\""),
        "TIMESTAMP (NUMERIC) keeps RFC 3339 text: {text}"
    );
    assert!(
        !text.contains("memo"),
        "a NOT NULL column with a default may be left out"
    );
    assert!(err.is_fatal());
}

#[tokio::test]
async fn an_existing_table_that_fits_is_used() {
    let dir = temp_dir("sqlite");
    let path = dir.join("fits.db");
    rusqlite_connection(&path)
        .execute_batch(
            "CREATE TABLE Readings (
                 rowid_alias INTEGER PRIMARY KEY,
                 ID varchar(40) NOT NULL,
                 Seq BIGINT,
                 at DATETIME,
                 flag BOOLEAN,
                 doc TEXT,
                 raw,
                 extra TEXT NOT NULL DEFAULT 'x',
                 hidden_sum INTEGER GENERATED ALWAYS AS (seq + 1) STORED,
                 UNIQUE (id)
             )",
        )
        .unwrap();
    let table = Table::builder("readings")
        .text("id")
        .integer("seq")
        .timestamp("at")
        .boolean("flag")
        .json("doc")
        .blob("raw")
        .key("id")
        .build()
        .unwrap();
    let sink = SqliteSink::open(&path, table, |i: &i64| {
        vec![
            Value::from(format!("r{i}")),
            Value::Integer(*i),
            Value::Timestamp(*i * 1_000_000),
            Value::Boolean(i % 2 == 0),
            Value::json(format!("{{\"i\": {i}}}")).unwrap(),
            Value::Blob(vec![*i as u8]),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        sink.write(vec![1, 2, 1]).await.unwrap(),
        vec![Written::Inserted, Written::Inserted, Written::Duplicate]
    );
    let (alias, at, extra, sum): (i64, String, String, i64) = rusqlite_connection(&path)
        .query_row(
            "SELECT rowid_alias, at, extra, hidden_sum FROM readings WHERE id = 'r2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (alias, at.as_str(), extra.as_str(), sum),
        (2, "1970-01-01T00:00:02.000000Z", "x", 3)
    );
}

#[tokio::test]
async fn every_column_type_is_stored_as_documented() {
    let dir = temp_dir("sqlite");
    let path = dir.join("types.db");
    let table = Table::builder("typed")
        .boolean("live")
        .timestamp("at")
        .text("name")
        .integer("n")
        .real("x")
        .blob("raw")
        .json("doc")
        .not_null("name")
        .key("live")
        .key("at")
        .build()
        .unwrap();
    let sink = SqliteSink::open(&path, table, |row: &Vec<Value>| row.clone())
        .await
        .unwrap();
    let at = Value::parse(ColumnType::Timestamp, b"2026-12-01T22:01:15.123456Z").unwrap();
    let row = |live: bool, at: &Value, name: Value| {
        vec![
            Value::Boolean(live),
            at.clone(),
            name,
            Value::Integer(-7),
            Value::Real(2.5),
            Value::Blob(vec![0, 255]),
            Value::json(r#"{"a": [1, 2]}"#).unwrap(),
        ]
    };
    let outcomes = sink
        .write_each(vec![
            row(true, &at, "a".into()),
            row(false, &at, "b".into()),
            row(true, &at, "c".into()), // the same (live, at) key as the first
            row(true, &Value::Timestamp(0), Value::Null), // NOT NULL
            {
                let mut all_null = row(false, &Value::Timestamp(1), "e".into());
                all_null[3..].fill(Value::Null);
                all_null
            },
        ])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], RowOutcome::Inserted));
    assert!(matches!(outcomes[1], RowOutcome::Inserted));
    assert!(matches!(outcomes[2], RowOutcome::Duplicate));
    let reason = outcomes[3].rejection().unwrap();
    assert!(reason.is_content());
    assert_eq!(
        reason.to_string(),
        "row does not fit the table: row 3: column \"name\" is NOT NULL, got null"
    );
    assert!(matches!(outcomes[4], RowOutcome::Inserted));

    let conn = rusqlite_connection(&path);
    let stored: (i64, String, String, i64, f64, Vec<u8>, String, String, String) = conn
        .query_row(
            "SELECT live, at, name, n, x, raw, doc, typeof(live), typeof(at) FROM typed WHERE name = 'a'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        stored,
        (
            1,
            "2026-12-01T22:01:15.123456Z".to_owned(),
            "a".to_owned(),
            -7,
            2.5,
            vec![0, 255],
            r#"{"a": [1, 2]}"#.to_owned(),
            "integer".to_owned(),
            "text".to_owned()
        )
    );
    let nulls: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM typed WHERE name = 'e' AND n IS NULL AND x IS NULL AND raw IS NULL AND doc IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, 1);
    let declared: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'typed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        declared,
        "CREATE TABLE typed (live BOOLEAN NOT NULL, at TEXT NOT NULL, name TEXT NOT NULL, n INTEGER, \
         x REAL, raw BLOB, doc TEXT, PRIMARY KEY (live, at))"
    );
}

#[tokio::test]
async fn write_each_stores_the_good_rows_and_rejects_the_bad_ones() {
    let dir = temp_dir("sqlite");
    let path = dir.join("each.db");
    let sink = SqliteSink::open(&path, table(), |e: &Event| {
        if e.seq == -1 {
            vec![Value::Null, Value::from(e.seq), Value::Null] // a null key
        } else {
            encode(e)
        }
    })
    .await
    .unwrap();
    add_refusing_triggers(&path);
    let batch: Vec<Event> = (0..1000)
        .map(|i| match i {
            100 => event("bad-a", 666),
            400 => event("bad-b", 1666),
            900 => event("bad-c", 2666),
            500 => event("rollback", 777),
            600 => event("null-key", -1),
            // Ends in 1: neither refused nor rolled back.
            _ => event(&format!("e{i}"), i * 10 + 1),
        })
        .collect();
    let outcomes = sink.write_each(batch).await.unwrap();
    assert_eq!(outcomes.len(), 1000);
    for (i, outcome) in outcomes.iter().enumerate() {
        match i {
            100 | 400 | 900 => {
                let reason = outcome.rejection().expect("rejected");
                assert!(reason.is_content(), "{reason}");
                assert!(
                    reason.to_string().contains("seq 666 is refused"),
                    "{reason}"
                );
                assert!(
                    reason.to_string().contains("each.db"),
                    "names the file: {reason}"
                );
            }
            500 => {
                let reason = outcome.rejection().expect("rejected");
                assert!(
                    reason.to_string().contains("seq 777 rolls back everything"),
                    "{reason}"
                );
            }
            600 => assert!(matches!(
                outcome.rejection(),
                Some(SinkError::Table(TableError::NullKey { row: 600, .. }))
            )),
            _ => assert!(
                matches!(outcome, RowOutcome::Inserted),
                "row {i}: {outcome:?}"
            ),
        }
    }
    assert_eq!(sink.count().await.unwrap(), 995);

    // Again: the good rows are duplicates now, the bad ones still refused.
    let again = sink
        .write_each(vec![event("e1", 1), event("bad-a", 666), event("new", 2)])
        .await
        .unwrap();
    assert!(matches!(again[0], RowOutcome::Duplicate));
    assert!(again[1].rejection().is_some());
    assert!(matches!(again[2], RowOutcome::Inserted));
    assert_eq!(sink.count().await.unwrap(), 996);
    // write refuses the same batch as a whole, as content.
    let err = sink
        .write(vec![event("x", 1), event("y", 666)])
        .await
        .unwrap_err();
    assert!(err.is_content(), "{err}");
    assert_eq!(sink.count().await.unwrap(), 996);
}

#[tokio::test]
async fn sinks_opened_at_once_on_a_new_file_all_succeed() {
    let dir = temp_dir("sqlite");
    let path = dir.join("race.db");
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (path, barrier) = (path.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let sink = SqliteSink::open(&path, table(), encode).await?;
            sink.write(vec![event(&format!("from{i}"), i)]).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), vec![Written::Inserted]);
    }
    let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
    assert_eq!(sink.count().await.unwrap(), 8);
}

#[tokio::test]
async fn errors_name_the_database_file() {
    let dir = temp_dir("sqlite");
    // A directory is not a database file.
    let err = SqliteSink::open(&dir, table(), encode).await.unwrap_err();
    assert!(matches!(err, SinkError::Sqlite { .. }), "{err}");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    assert!(err.is_fatal(), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "rusqlite's error is the source"
    );

    let path = dir.join("dropped.db");
    let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
    rusqlite_connection(&path)
        .execute_batch("DROP TABLE events")
        .unwrap();
    let err = sink.write(vec![event("a", 1)]).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("dropped.db") && text.contains("no such table: events"),
        "{text}"
    );
    assert!(err.is_fatal(), "a dropped table is fatal: {err}");
    let err = sink.write_each(vec![event("a", 1)]).await.unwrap_err();
    assert!(err.is_fatal(), "write_each returns a fatal error: {err}");
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// SQLite cannot add a CHECK to an existing table: refuse rows of `events`
/// with triggers — seq ending in 666 (ABORT: that row alone), and seq 777,
/// which rolls back the whole transaction.
fn add_refusing_triggers(path: &std::path::Path) {
    rusqlite_connection(path)
        .execute_batch(
            "CREATE TRIGGER no_666 BEFORE INSERT ON events WHEN NEW.seq % 1000 = 666
             BEGIN SELECT RAISE(ABORT, 'seq 666 is refused'); END;
             CREATE TRIGGER no_777 BEFORE INSERT ON events WHEN NEW.seq = 777
             BEGIN SELECT RAISE(ROLLBACK, 'seq 777 rolls back everything'); END;",
        )
        .unwrap();
}

/// An outcome as a comparable word.
fn kind(outcome: &RowOutcome) -> String {
    kind_by(outcome, SinkError::to_string)
}

#[tokio::test]
async fn write_values_stores_and_reports_exactly_like_write_each() {
    let null_key = |e: &Event| {
        if e.seq < 0 {
            vec![Value::Null, Value::from(e.seq), Value::Null]
        } else {
            encode(e)
        }
    };
    let each = SqliteSink::open_in_memory(table(), null_key).await.unwrap();
    let values = SqliteSink::open_in_memory(table(), |_: &Event| -> Vec<Value> {
        panic!("write_values does not encode")
    })
    .await
    .unwrap();
    let first = vec![event("a", 1), event("b", 2)];
    let second = vec![
        event("c", 3),
        event("a", 4), // stored by the first batch
        event("d", 5),
        event("d", 6),  // repeated within the batch
        event("x", -1), // a null key: does not fit
        event("f", 7),
    ];
    write_values_is_write_each(&each, &values, vec![first, second], null_key, kind).await;
    assert_eq!(values.count().await.unwrap(), 5);
    assert_eq!(each.count().await.unwrap(), 5);
}

/// Rows go in chunks of up to 32 per statement; a chunk in which a row is a
/// duplicate (of a stored key, or of an earlier row of the batch, in the
/// same chunk or another) is written again row by row. Against a model, for
/// batch sizes around the chunk sizes and keys that repeat often.
#[tokio::test]
async fn chunked_inserts_report_each_duplicate_like_a_row_by_row_insert() {
    let each = SqliteSink::open_in_memory(table(), encode).await.unwrap();
    let strict = SqliteSink::open_in_memory(table(), encode).await.unwrap();
    let mut stored = std::collections::HashSet::new();
    let mut state = 0x2545_f491_u64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let sizes = [0, 1, 2, 3, 31, 32, 33, 63, 64, 65, 100, 1000];
    for (round, &size) in sizes.iter().chain(sizes.iter()).enumerate() {
        // Fresh keys mostly, some stored ones, some repeated in the batch.
        let batch: Vec<Event> = (0..size)
            .map(|i| match next(10) {
                0 => event(&format!("k{}", next(50)), i as i64),
                _ => event(&format!("r{round}-{i}"), i as i64),
            })
            .collect();
        let mut expected = Vec::new();
        for e in &batch {
            expected.push(if stored.insert(e.id.clone()) {
                "inserted"
            } else {
                "duplicate"
            });
        }
        let outcomes: Vec<String> = each
            .write_each(batch.clone())
            .await
            .unwrap()
            .iter()
            .map(kind)
            .collect();
        assert_eq!(outcomes, expected, "batch of {size} (round {round})");
        let written: Vec<&str> = strict
            .write(batch)
            .await
            .unwrap()
            .iter()
            .map(|w| match w {
                Written::Inserted => "inserted",
                Written::Duplicate => "duplicate",
            })
            .collect();
        assert_eq!(written, expected, "write: batch of {size} (round {round})");
    }
    assert_eq!(each.count().await.unwrap(), stored.len() as u64);
    assert_eq!(strict.count().await.unwrap(), stored.len() as u64);
}

/// The writer does not checkpoint (it would stand still for the copies and
/// `fsync`s); the sink's checkpoint thread copies the log into the database
/// file behind it. Read with `immutable=1`, SQLite ignores the log and sees
/// the database file alone: every row ends up there.
#[tokio::test]
async fn a_file_sink_checkpoints_its_log_into_the_database_file() {
    let dir = temp_dir("sqlite");
    let path = dir.join("wal.db");
    let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
    for batch in 0..20 {
        let rows: Vec<Event> = (0..1000)
            .map(|i| event(&format!("b{batch}-{i}"), i))
            .collect();
        sink.write(rows).await.unwrap();
    }
    let in_file = || -> u64 {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let uri = format!("file:{}?immutable=1", path.display());
        match rusqlite::Connection::open_with_flags(&uri, flags) {
            Ok(conn) => conn
                .query_row("SELECT count(*) FROM events", [], |row| {
                    row.get::<_, i64>(0)
                })
                .map_or(0, |n| n as u64),
            Err(_) => 0,
        }
    };
    // The copies happen on another thread: wait for them, for as long as a
    // busy machine may need.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let rows = in_file();
        if rows == 20_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{rows} of 20000 rows in the database file: the log was not checkpointed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sink.count().await.unwrap(), 20_000);
    drop(sink);
    let reopened = SqliteSink::open(&path, table(), encode).await.unwrap();
    assert_eq!(reopened.count().await.unwrap(), 20_000);
}

/// The row batch of `events`: `Event`s appended by column.
fn row_batch(events: &[Event]) -> flowgate_sql::RowBatch {
    let mut batch = flowgate_sql::RowBatch::with_capacity(&table(), events.len());
    for e in events {
        use flowgate_sql::ValueRef;
        batch
            .append(&[
                ValueRef::Text(&e.id),
                ValueRef::Integer(e.seq),
                ValueRef::Blob(&e.body),
            ])
            .unwrap();
    }
    batch
}

/// `write_batch` (rows by column) gives the outcomes `write_values` gives
/// for the same rows, and stores the same table: chunks with duplicates of
/// stored keys and of earlier rows, rows refused by a trigger (one of which
/// rolls back the whole transaction), batch sizes around the chunk sizes.
#[tokio::test]
async fn write_batch_stores_and_reports_exactly_like_write_values() {
    let dir = temp_dir("sqlite");
    let open = |name: &str| {
        let path = dir.join(name);
        async move {
            let sink = SqliteSink::open(&path, table(), encode).await.unwrap();
            add_refusing_triggers(&path);
            (sink, path)
        }
    };
    let (by_values, values_path) = open("values.db").await;
    let (by_batch, batch_path) = open("batch.db").await;
    let mut state = 0x9e37_79b9_u64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for (round, size) in [0, 1, 31, 32, 33, 64, 65, 1000, 2, 100]
        .into_iter()
        .enumerate()
    {
        let events: Vec<Event> = (0..size)
            .map(|i| match next(20) {
                _ if round == 7 && i == 500 => event("rollback", 777),
                0 => event(&format!("k{}", next(40)), i as i64),
                1 => event(&format!("bad-{round}-{i}"), 666),
                _ => event(&format!("r{round}-{i}"), i as i64 * 10 + 1),
            })
            .collect();
        let values: Arc<[Vec<Value>]> = events.iter().map(encode).collect();
        let expected: Vec<String> = by_values
            .write_values(values)
            .await
            .unwrap()
            .iter()
            .map(kind)
            .collect();
        let got: Vec<String> = by_batch
            .write_batch(Arc::new(row_batch(&events)))
            .await
            .unwrap()
            .iter()
            .map(kind)
            .collect();
        // The rejections name their database files, which differ.
        let got: Vec<String> = got
            .iter()
            .map(|k| k.replace("batch.db", "values.db"))
            .collect();
        assert_eq!(got, expected, "batch of {size} (round {round})");
        if round == 7 {
            assert!(
                expected[500].contains("rolls back everything"),
                "{}",
                expected[500]
            );
            assert!(expected.iter().any(|k| k.contains("seq 666 is refused")));
        }
    }
    let dump = |path: &std::path::Path| {
        let conn = rusqlite_connection(path);
        let mut stmt = conn
            .prepare("SELECT id, seq, body FROM events ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
    };
    let stored = dump(&batch_path);
    assert!(stored.len() > 1000, "{} rows", stored.len());
    assert_eq!(stored, dump(&values_path));
}

/// A batch built for another table is refused as a whole, fatal (a mistake
/// in the program, not a row's content); an empty batch writes nothing.
#[tokio::test]
async fn write_batch_refuses_a_batch_of_another_table() {
    let sink = SqliteSink::open_in_memory(table(), encode).await.unwrap();
    let other = Table::builder("events")
        .text("id")
        .key("id")
        .build()
        .unwrap();
    let mut batch = flowgate_sql::RowBatch::new(&other);
    batch.append(&[flowgate_sql::ValueRef::Text("a")]).unwrap();
    let err = sink.write_batch(Arc::new(batch)).await.unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(
        matches!(err, SinkError::Table(TableError::OtherTable { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("events (id, seq, body)"), "{err}");
    let none = sink.write_batch(Arc::new(row_batch(&[]))).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(sink.count().await.unwrap(), 0);
}

/// Batch writes from many tasks at once go through the sink's write queue
/// (one blocking task runs them one after another): every write resolves
/// with its own rows' outcomes, every row is stored once, and the sink's
/// other calls (`count`) get their turn in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_write_batches_each_resolve_with_their_own_outcomes() {
    let dir = temp_dir("sqlite");
    let sink = SqliteSink::open(dir.join("queue.db"), table(), encode)
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let sink = sink.clone();
        tasks.spawn(async move {
            let mut inserted = 0;
            for round in 0..8 {
                // Half of each batch is shared by all tasks: exactly one
                // task inserts each shared row, the others get duplicates.
                let events: Vec<Event> = (0..50)
                    .map(|i| {
                        if i % 2 == 0 {
                            event(&format!("shared-{round}-{i}"), i)
                        } else {
                            event(&format!("own-{task}-{round}-{i}"), i)
                        }
                    })
                    .collect();
                let outcomes = sink
                    .write_batch(Arc::new(row_batch(&events)))
                    .await
                    .unwrap();
                assert_eq!(outcomes.len(), 50);
                for (i, outcome) in outcomes.iter().enumerate() {
                    match outcome {
                        RowOutcome::Inserted => inserted += 1,
                        RowOutcome::Duplicate => assert_eq!(i % 2, 0, "only shared rows repeat"),
                        other => panic!("row {i}: {other:?}"),
                    }
                }
                // Reads between the writes are not starved.
                assert!(sink.count().await.unwrap() >= 25);
            }
            inserted
        });
    }
    let mut inserted = 0;
    while let Some(n) = tasks.join_next().await {
        inserted += n.unwrap();
    }
    // 16 tasks × 8 rounds × 25 own rows, and 8 rounds × 25 shared rows once.
    assert_eq!(inserted, 16 * 8 * 25 + 8 * 25);
    assert_eq!(sink.count().await.unwrap(), inserted as u64);
}
