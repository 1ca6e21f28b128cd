//! The end-to-end peers against real servers: they store every message
//! once, acknowledge all of them, and the COPY modes stay idempotent. Run
//! with `dev/test.sh -p flowgate-bench --test e2e_peers` (which starts
//! redis-server and PostgreSQL); without the servers' URLs the tests say
//! "skipped", except under `CI=true`, where they fail.

use std::time::Duration;

use flowgate_bench::e2e::{
    BoxError, PgMode, PgWriter, RedisLoop, Rows, fnv1a, generated, postgres_alone,
    redis_connection, redis_loop, rusqlite_loop,
};

fn url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} is not set: run the tests with dev/test.sh"
            );
            eprintln!("skipped: {var} is not set (run dev/test.sh)");
            None
        }
    }
}

/// A name no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    format!("peer_{what}_{}_{nanos}", std::process::id())
}

async fn publish(redis: &str, stream: &str, n: u64) -> Result<(), BoxError> {
    let mut conn = redis_connection(redis).await?;
    let mut pipe = redis::pipe();
    for i in 0..n {
        let (_, seq, body) = generated(i);
        pipe.cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("seq")
            .arg(seq)
            .arg("body")
            .arg(body)
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await?;
    Ok(())
}

async fn pending(redis: &str, stream: &str, group: &str) -> Result<i64, BoxError> {
    let mut conn = redis_connection(redis).await?;
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(&mut conn)
        .await?;
    match reply {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => Ok(*n),
            other => Err(format!("XPENDING: unexpected {other:?}").into()),
        },
        other => Err(format!("XPENDING: unexpected {other:?}").into()),
    }
}

async fn pg_client(url: &str) -> Result<tokio_postgres::Client, BoxError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Rows and the sum of their checksums (exact, as text), as stored.
async fn stored(client: &tokio_postgres::Client, table: &str) -> Result<(i64, String), BoxError> {
    let row = client
        .query_one(
            &format!("SELECT count(*), COALESCE(sum(checksum), 0)::TEXT FROM {table}"),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

fn checksum_sum(range: std::ops::Range<u64>) -> String {
    range
        .map(|i| i128::from(fnv1a(&generated(i).2)))
        .sum::<i128>()
        .to_string()
}

fn redis_loop_config(
    redis: &str,
    postgres: Option<String>,
    stream: &str,
    table: &str,
) -> RedisLoop {
    RedisLoop {
        redis: redis.to_owned(),
        postgres,
        mode: PgMode::Unnest,
        stream: stream.to_owned(),
        group: "bench".to_owned(),
        consumer: "peer".to_owned(),
        table: table.to_owned(),
        messages: 2500,
        batch: 1000,
        writers: 2,
        idle: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_loop_stores_every_message_once_and_acks_them_all() -> Result<(), BoxError> {
    let (Some(redis), Some(pg)) = (
        url("FLOWGATE_TEST_REDIS_URL"),
        url("FLOWGATE_TEST_POSTGRES_URL"),
    ) else {
        return Ok(());
    };
    let (stream, table) = (unique("stream"), unique("loop"));
    publish(&redis, &stream, 2500).await?;
    let outcome = redis_loop(redis_loop_config(&redis, Some(pg.clone()), &stream, &table)).await?;
    assert_eq!(
        (outcome.read, outcome.done, outcome.inserted),
        (2500, 2500, 2500)
    );
    assert!(outcome.elapsed > Duration::ZERO);
    let client = pg_client(&pg).await?;
    assert_eq!(
        stored(&client, &table).await?,
        (2500, checksum_sum(0..2500))
    );
    assert_eq!(pending(&redis, &stream, "bench").await?, 0);
    client.batch_execute(&format!("DROP TABLE {table}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_ceiling_acks_every_message_and_stops_at_the_count() -> Result<(), BoxError> {
    let Some(redis) = url("FLOWGATE_TEST_REDIS_URL") else {
        return Ok(());
    };
    let stream = unique("stream");
    publish(&redis, &stream, 3000).await?;
    let outcome = redis_loop(redis_loop_config(&redis, None, &stream, "")).await?;
    // 2500 of 3000 read and acked; the other 500 were never read.
    assert_eq!(
        (outcome.read, outcome.done, outcome.inserted),
        (2500, 2500, 0)
    );
    assert_eq!(pending(&redis, &stream, "bench").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_ceiling_writes_every_row_in_each_mode() -> Result<(), BoxError> {
    let Some(pg) = url("FLOWGATE_TEST_POSTGRES_URL") else {
        return Ok(());
    };
    let client = pg_client(&pg).await?;
    for mode in [PgMode::Unnest, PgMode::Copy, PgMode::CopyDirect] {
        let table = unique("alone");
        let outcome = postgres_alone(&pg, &table, mode, 2500, 1000, 2).await?;
        assert_eq!((outcome.done, outcome.inserted), (2500, 2500), "{mode:?}");
        assert_eq!(
            stored(&client, &table).await?,
            (2500, checksum_sum(0..2500)),
            "{mode:?}"
        );
        client.batch_execute(&format!("DROP TABLE {table}")).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_skips_rows_whose_key_is_stored() -> Result<(), BoxError> {
    let Some(pg) = url("FLOWGATE_TEST_POSTGRES_URL") else {
        return Ok(());
    };
    let client = pg_client(&pg).await?;
    for mode in [PgMode::Unnest, PgMode::Copy, PgMode::CopyDirect] {
        let table = unique("dup");
        let mut writer = PgWriter::connect(&pg, &table, mode).await?;
        assert_eq!(writer.write(&Rows::generated(0..10)).await?, 10, "{mode:?}");
        // 5..10 are stored: only 10..15 are new.
        assert_eq!(writer.write(&Rows::generated(5..15)).await?, 5, "{mode:?}");
        let fallbacks = if mode == PgMode::CopyDirect { 1 } else { 0 };
        assert_eq!(writer.fallbacks(), fallbacks, "{mode:?}");
        assert_eq!(
            stored(&client, &table).await?,
            (15, checksum_sum(0..15)),
            "{mode:?}"
        );
        client.batch_execute(&format!("DROP TABLE {table}")).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rusqlite_loop_stores_the_generated_messages() -> Result<(), BoxError> {
    let path = std::env::temp_dir().join(format!("{}.sqlite", unique("sqlite")));
    let outcome = rusqlite_loop(path.clone(), "flowgate_events".to_owned(), 2500, 1000).await?;
    assert_eq!(
        (outcome.read, outcome.done, outcome.inserted),
        (2500, 2500, 2500)
    );
    let conn = rusqlite::Connection::open(&path)?;
    let count: i64 = conn.query_row("SELECT count(*) FROM flowgate_events", [], |r| r.get(0))?;
    assert_eq!(count, 2500);
    let (id, seq, body, checksum): (String, i64, Vec<u8>, i64) = conn.query_row(
        "SELECT id, seq, body, checksum FROM flowgate_events WHERE id = 'msg-0000000007'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let (want_id, want_seq, want_body) = generated(7);
    assert_eq!((id, seq, checksum), (want_id, want_seq, fnv1a(&want_body)));
    assert_eq!(body, want_body);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
