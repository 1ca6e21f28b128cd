//! The PostgreSQL sink against a real server. `dev/test.sh` starts one and
//! sets `FLOWGATE_TEST_POSTGRES_URL`; without it these tests skip, except
//! under `CI=true`, where they fail.

use std::sync::atomic::{AtomicUsize, Ordering};

use flowgate::batch::{AckError, Batcher};
use flowgate_sql::{PostgresSink, SinkError, Table, Value, Written};

fn postgres_url() -> Option<String> {
    match std::env::var("FLOWGATE_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "FLOWGATE_TEST_POSTGRES_URL is not set; under CI=true this test must not skip (run dev/test.sh)"
            )
        }
        Err(_) => {
            eprintln!("skipped: FLOWGATE_TEST_POSTGRES_URL is not set (dev/test.sh sets it)");
            None
        }
    }
}

/// A table name of its own per test, so that tests can run at once.
fn table(name: &str) -> Table {
    Table::builder(format!("{name}_{}", std::process::id()))
        .text("id")
        .integer("seq")
        .blob("body")
        .real("score")
        .key("id")
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
struct Event {
    id: String,
    seq: i64,
}

fn encode(e: &Event) -> Vec<Value> {
    vec![
        Value::from(e.id.as_str()),
        Value::from(e.seq),
        Value::from(format!("body {}", e.id).into_bytes()),
        if e.seq % 2 == 0 {
            Value::Real(e.seq as f64 / 2.0)
        } else {
            Value::Null
        },
    ]
}

fn event(id: &str, seq: i64) -> Event {
    Event {
        id: id.to_owned(),
        seq,
    }
}

#[tokio::test]
async fn a_batch_is_one_statement_and_duplicates_are_reported() {
    let Some(url) = postgres_url() else { return };
    let sink = PostgresSink::connect(&url, table("pg_dups"), encode)
        .await
        .unwrap();
    let written = sink
        .write(vec![event("a", 1), event("b", 2), event("a", 3)])
        .await
        .unwrap();
    assert_eq!(
        written,
        vec![Written::Inserted, Written::Inserted, Written::Duplicate]
    );
    let again = sink
        .write(vec![event("b", 2), event("c", 4)])
        .await
        .unwrap();
    assert_eq!(again, vec![Written::Duplicate, Written::Inserted]);
    assert_eq!(sink.count().await.unwrap(), 3);
    assert_eq!(sink.write(Vec::new()).await.unwrap(), Vec::new());
}

#[tokio::test]
async fn a_failing_batch_stores_nothing_and_fails_its_acks_only() {
    let Some(url) = postgres_url() else { return };
    let table = table("pg_fail");
    let sink = PostgresSink::connect(&url, table.clone(), encode)
        .await
        .unwrap();
    // A check constraint refuses the marker value: the statement fails as a
    // whole, after other rows of the batch were already inserted by it.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "ALTER TABLE {} ADD CONSTRAINT no_666 CHECK (seq <> 666)",
            table.name()
        ))
        .await
        .unwrap();

    let writer = sink.clone();
    let batcher = Batcher::builder()
        .max_items(3)
        .build(move |rows: Vec<Event>| {
            let sink = writer.clone();
            async move { sink.write(rows).await }
        })
        .unwrap();
    let mut bad = Vec::new();
    for e in [event("x", 1), event("y", 666), event("z", 2)] {
        bad.push(batcher.submit(e).await.unwrap());
    }
    for ack in bad {
        match ack.await {
            Err(AckError::Flush(err)) => {
                assert!(matches!(&*err, SinkError::Postgres(_)), "{err}");
                assert!(!err.is_transient(), "a check violation is permanent");
            }
            other => panic!("expected the batch to fail, got {other:?}"),
        }
    }
    let good = batcher.submit(event("w", 3)).await.unwrap();
    batcher.close().await;
    assert_eq!(good.await.unwrap(), Written::Inserted);
    assert_eq!(
        sink.count().await.unwrap(),
        1,
        "only the later batch is stored"
    );
}

#[tokio::test]
async fn concurrent_pipelined_batches_store_each_row_once() {
    let Some(url) = postgres_url() else { return };
    let sink = PostgresSink::connect(&url, table("pg_conc"), encode)
        .await
        .unwrap();
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
    let inserted = std::sync::Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let batcher = batcher.clone();
        let inserted = std::sync::Arc::clone(&inserted);
        tasks.push(tokio::spawn(async move {
            for i in 0..400 {
                let ack = batcher.submit(event(&format!("id{i}"), t)).await.unwrap();
                if ack.await.unwrap() == Written::Inserted {
                    inserted.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    batcher.close().await;
    assert_eq!(sink.count().await.unwrap(), 400);
    assert_eq!(inserted.load(Ordering::SeqCst), 400);
}

#[tokio::test]
async fn the_sink_reconnects_after_the_connection_is_killed() {
    let Some(url) = postgres_url() else { return };
    let table = table("pg_reconnect");
    // Named, so that only this sink's connection is killed, not those of
    // tests running at the same time.
    let sep = if url.contains('?') { '&' } else { '?' };
    let named = format!("{url}{sep}application_name=flowgate_reconnect_test");
    let sink = PostgresSink::connect(&named, table.clone(), encode)
        .await
        .unwrap();
    sink.write(vec![event("a", 1)]).await.unwrap();

    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'flowgate_reconnect_test'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "the sink's one connection");
    let mut failures = 0;
    loop {
        match sink.write(vec![event("b", 2)]).await {
            Ok(written) => {
                assert!(written == [Written::Inserted]);
                break;
            }
            Err(err) => {
                assert!(
                    err.is_transient(),
                    "a killed connection is transient: {err}"
                );
                failures += 1;
                assert!(failures < 3, "the sink did not reconnect");
            }
        }
    }
    assert_eq!(sink.count().await.unwrap(), 2);
}

#[tokio::test]
async fn an_invalid_url_is_an_error_before_connecting() {
    let err = PostgresSink::connect("postgres://[::1", table("pg_bad"), encode)
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Postgres(_)), "{err}");
}
