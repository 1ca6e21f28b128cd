//! The PostgreSQL sink against a real server. `dev/test.sh` starts one and
//! sets `FLOWGATE_TEST_POSTGRES_URL`; without it these tests skip, except
//! under `CI=true`, where they fail.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{batcher_into, kind_by, write_values_is_write_each};
use flowgate::batch::{Batcher, FlushError};
use flowgate_sql::{
    ColumnType, PostgresOptions, PostgresSink, RowOutcome, SinkError, Table, TableError, Value,
    Written,
};

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
    exec(
        &client,
        format!(
            "ALTER TABLE {} ADD CONSTRAINT no_666 CHECK (seq <> 666)",
            table.name()
        ),
    )
    .await;

    let batcher = batcher_into(&sink, Batcher::builder().max_items(3));
    let mut bad = Vec::new();
    for e in [event("x", 1), event("y", 666), event("z", 2)] {
        bad.push(batcher.submit(e).await.unwrap());
    }
    for ack in bad {
        match ack.await {
            Err(FlushError::Failed(err)) => {
                assert!(matches!(&*err, SinkError::Postgres { .. }), "{err}");
                assert!(!err.is_transient(), "a check violation is permanent");
                assert!(err.is_content(), "a check violation is about a row");
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
    let batcher = batcher_into(
        &sink,
        Batcher::builder()
            .max_items(8)
            .max_delay(std::time::Duration::from_millis(5))
            .flush_concurrency(4),
    );
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
                let text = chain(&err);
                assert!(text.contains(&host_port(&url)), "{text}");
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
    assert!(matches!(err, SinkError::InvalidUrl(_)), "{err}");
    assert!(err.is_fatal());
    let err = PostgresSink::connect(
        "postgres://bob:hunter2@127.0.0.1:notaport/db",
        table("pg_bad"),
        encode,
    )
    .await
    .unwrap_err();
    let text = chain(&err);
    assert!(
        text.starts_with(
            "invalid PostgreSQL connection string (not repeated here: it may hold a password): "
        ),
        "{text}"
    );
    assert!(
        text.contains("port"),
        "the cause says what is wrong: {text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

/// Runs `sql` (statements separated by `;`) with a plain client.
async fn exec(admin: &tokio_postgres::Client, sql: String) {
    admin.batch_execute(&sql).await.unwrap();
}

/// A plain client, for setting up what a test needs.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The error and its whole source chain, as a CLI prints it.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `host:port` of the test server.
fn host_port(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the tests connect over TCP, not {other:?}"),
    };
    format!(
        "{host}:{}",
        config.get_ports().first().copied().unwrap_or(5432)
    )
}

/// `url` with another user, password, database or port.
fn with(
    url: &str,
    user: Option<&str>,
    password: Option<&str>,
    db: Option<&str>,
    port: Option<u16>,
) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let tokio_postgres::config::Host::Tcp(host) = &config.get_hosts()[0] else {
        panic!("the tests connect over TCP")
    };
    let mut out = format!(
        "host={host} port={} user={} dbname={}",
        port.unwrap_or_else(|| config.get_ports().first().copied().unwrap_or(5432)),
        user.or(config.get_user()).unwrap_or("postgres"),
        db.or(config.get_dbname()).unwrap_or("postgres"),
    );
    if let Some(password) = password {
        out.push_str(&format!(" password={password}"));
    }
    out
}

/// The server's URL, a table name of the test's own (`prefix` and the
/// process id), no table of that name, and a plain client; `None` to skip.
async fn fresh(prefix: &str) -> Option<(String, String, tokio_postgres::Client)> {
    let url = postgres_url()?;
    let name = unique_name(prefix);
    let admin = admin(&url).await;
    exec(&admin, format!("DROP TABLE IF EXISTS {name}")).await;
    Some((url, name, admin))
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

#[tokio::test]
async fn every_column_type_is_stored_and_read_back() {
    let Some((url, name, admin)) = fresh("pg_types").await else {
        return;
    };
    let table = Table::builder(&name)
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
    let sink = PostgresSink::connect(&url, table, |row: &Vec<Value>| row.clone())
        .await
        .unwrap();
    let at = Value::parse(ColumnType::Timestamp, b"2026-12-01T22:01:15.123456Z").unwrap();
    let row = |live: bool, at: &Value, name: &str| {
        vec![
            Value::Boolean(live),
            at.clone(),
            Value::from(name),
            Value::Integer(i64::MIN),
            Value::Real(2.5),
            Value::Blob(vec![0, 255]),
            Value::parse(ColumnType::Json, br#"{"b": 1,   "a": [1, 2]}"#).unwrap(),
        ]
    };
    let mut nulls = row(false, &Value::Timestamp(Value::TIMESTAMP_MIN), "nulls");
    nulls[3..].fill(Value::Null);
    let written = sink
        .write(vec![
            row(true, &at, "a"),
            row(false, &at, "b"),
            row(true, &at, "c"), // the key of the first again
            nulls,
            row(true, &Value::Timestamp(Value::TIMESTAMP_MAX), "max"),
        ])
        .await
        .unwrap();
    assert_eq!(
        written,
        [
            Written::Inserted,
            Written::Inserted,
            Written::Duplicate,
            Written::Inserted,
            Written::Inserted
        ]
    );
    // Written again: every key comes back, decoded, as a duplicate.
    let again = sink
        .write(vec![
            row(true, &at, "a"),
            row(true, &Value::Timestamp(Value::TIMESTAMP_MAX), "max"),
        ])
        .await
        .unwrap();
    assert_eq!(again, [Written::Duplicate, Written::Duplicate]);

    let stored = admin
        .query_one(
            &format!(
                "SELECT live, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), name, n, x, raw, doc::text,
                        pg_typeof(live)::text, pg_typeof(at)::text, pg_typeof(doc)::text
                 FROM {name} WHERE name = 'a'"
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(stored.get::<_, bool>(0));
    assert_eq!(stored.get::<_, String>(1), "2026-12-01T22:01:15.123456");
    assert_eq!(stored.get::<_, i64>(3), i64::MIN);
    assert_eq!(stored.get::<_, f64>(4), 2.5);
    assert_eq!(stored.get::<_, Vec<u8>>(5), vec![0, 255]);
    assert_eq!(
        stored.get::<_, String>(6),
        r#"{"a": [1, 2], "b": 1}"#,
        "jsonb normalises"
    );
    assert_eq!(stored.get::<_, String>(7), "boolean");
    assert_eq!(stored.get::<_, String>(8), "timestamp with time zone");
    assert_eq!(stored.get::<_, String>(9), "jsonb");
    let extremes = admin
        .query_one(
            &format!(
                "SELECT to_char(min(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC'),
                        to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC'),
                        count(*) FILTER (WHERE n IS NULL AND x IS NULL AND raw IS NULL AND doc IS NULL)
                 FROM {name}"
            ),
            &[],
        )
        .await
        .unwrap();
    // RFC 3339's year 0000 is 1 BC to PostgreSQL.
    assert_eq!(
        extremes.get::<_, String>(0),
        "0001-01-01 00:00:00.000000 BC"
    );
    assert_eq!(
        extremes.get::<_, String>(1),
        "9999-12-31 23:59:59.999999 AD"
    );
    assert_eq!(extremes.get::<_, i64>(2), 1);
    exec(&admin, format!("DROP TABLE {name}")).await;
}

#[tokio::test]
async fn an_existing_table_that_does_not_fit_names_every_mismatch() {
    let Some((url, name, admin)) = fresh("pg_orders").await else {
        return;
    };
    exec(
        &admin,
        format!(
            "DROP TABLE IF EXISTS {name};
             CREATE TABLE {name} (
                 id text,
                 amount text,
                 qty integer,
                 at timestamp,
                 doc text,
                 total bigint GENERATED ALWAYS AS (1) STORED,
                 note text NOT NULL,
                 memo text NOT NULL DEFAULT '',
                 serial bigint GENERATED ALWAYS AS IDENTITY
             )"
        ),
    )
    .await;
    let table = Table::builder(&name)
        .text("id")
        .integer("seq")
        .real("amount")
        .integer("qty")
        .timestamp("at")
        .json("doc")
        .integer("total")
        .key("id")
        .build()
        .unwrap();
    let err = PostgresSink::connect(&url, table, |_: &()| Vec::new())
        .await
        .unwrap_err();
    let SinkError::Schema(schema) = &err else {
        panic!("expected a schema error, got {err}")
    };
    assert_eq!(schema.table(), format!("public.{name}"));
    let text = chain(&err);
    for part in [
        format!("table \"public.{name}\" (PostgreSQL at {}, database postgres) does not fit the mapping: ", host_port(&url)),
        "column \"seq\" is missing".to_owned(),
        "column \"amount\" is text, the mapping writes double precision".to_owned(),
        "column \"qty\" is integer, the mapping writes bigint (it cannot hold every 64-bit value: make it bigint)".to_owned(),
        "column \"at\" is timestamp without time zone, the mapping writes timestamp with time zone (without a time zone".to_owned(),
        "column \"doc\" is text, the mapping writes jsonb".to_owned(),
        "column \"total\" is generated, so it cannot be written".to_owned(),
        "the key (id) is not a primary key or unique constraint of the table, so rows cannot be deduplicated".to_owned(),
        "column \"note\" is NOT NULL without a default and not mapped".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} missing from: {text}");
    }
    assert_eq!(schema.mismatches().len(), 8, "{text}");
    assert!(!text.contains("memo") && !text.contains("serial"), "{text}");
    assert!(err.is_fatal());
    exec(&admin, format!("DROP TABLE {name}")).await;
}

#[tokio::test]
async fn an_existing_table_that_fits_is_used_as_it_is() {
    let Some((url, name, admin)) = fresh("pg_fits").await else {
        return;
    };
    // A unique constraint (not the primary key) on the key, a varchar, a
    // json (not jsonb) column, a domain, and columns the mapping leaves out.
    exec(
        &admin,
        format!(
            "DROP TABLE IF EXISTS {name};
             DROP DOMAIN IF EXISTS {name}_amount;
             CREATE DOMAIN {name}_amount AS double precision CHECK (VALUE >= 0);
             CREATE TABLE {name} (
                 serial bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 id varchar(40) NOT NULL,
                 region text NOT NULL,
                 amount {name}_amount,
                 doc json,
                 added timestamptz NOT NULL DEFAULT now(),
                 extra text,
                 UNIQUE (region, id)
             );
             CREATE UNIQUE INDEX {name}_partial ON {name} (id) WHERE region = 'eu'"
        ),
    )
    .await;
    let table = Table::builder(&name)
        .text("id")
        .text("region")
        .real("amount")
        .json("doc")
        .key("id")
        .key("region")
        .build()
        .unwrap();
    let sink = PostgresSink::connect(&url, table, |r: &(&str, f64)| {
        vec![
            Value::from(r.0),
            Value::from("eu"),
            Value::Real(r.1),
            Value::json(r#"{"b": 1,   "a": 2}"#).unwrap(),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        sink.write(vec![("a", 1.0), ("b", 2.0), ("a", 3.0)])
            .await
            .unwrap(),
        [Written::Inserted, Written::Inserted, Written::Duplicate]
    );
    let doc: String = admin
        .query_one(&format!("SELECT doc::text FROM {name} WHERE id = 'a'"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        doc, r#"{"b": 1,   "a": 2}"#,
        "json keeps the text as written"
    );
    // The domain's CHECK is content.
    let outcomes = sink
        .write_each(vec![("c", -1.0), ("d", 4.0)])
        .await
        .unwrap();
    let reason = outcomes[0]
        .rejection()
        .expect("a negative amount is refused");
    assert!(reason.is_content());
    assert!(
        reason.to_string().contains(&format!("{name}_amount")),
        "{reason}"
    );
    assert!(matches!(outcomes[1], RowOutcome::Inserted));
    assert_eq!(sink.count().await.unwrap(), 3);
    exec(
        &admin,
        format!("DROP TABLE {name}; DROP DOMAIN {name}_amount"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sinks_started_at_once_on_a_missing_table_all_succeed() {
    let Some((url, name, admin)) = fresh("pg_race").await else {
        return;
    };
    let table = Table::builder(&name)
        .text("id")
        .integer("seq")
        .key("id")
        .build()
        .unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let (url, table, barrier) = (url.clone(), table.clone(), std::sync::Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let sink = PostgresSink::connect(&url, table, |r: &(String, i64)| {
                vec![Value::from(r.0.as_str()), Value::Integer(r.1)]
            })
            .await?;
            sink.write(vec![(format!("from{i}"), i)]).await
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            Ok(written) => assert_eq!(written, [Written::Inserted]),
            Err(err) => panic!("a concurrent start failed: {}", chain(&err)),
        }
    }
    let count: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {name}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 8);
    exec(&admin, format!("DROP TABLE {name}")).await;
}

#[tokio::test]
async fn a_refused_port_names_the_server_and_is_transient() {
    let Some(url) = postgres_url() else { return };
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PostgresSink::connect(
        &with(&url, None, None, None, Some(port)),
        table("pg_refused"),
        encode,
    )
    .await
    .unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, SinkError::Connect { .. }), "{text}");
    assert!(
        text.starts_with(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port} (database postgres, user postgres)"
        )),
        "{text}"
    );
    assert!(
        text.ends_with(": error connecting to server: Connection refused (os error 111)"),
        "the chain says why, once: {text}"
    );
    assert!(
        err.is_transient(),
        "a server that is down may come back: {text}"
    );
}

#[tokio::test]
async fn a_missing_database_names_the_server_and_is_fatal() {
    let Some(url) = postgres_url() else { return };
    let err = PostgresSink::connect(
        &with(&url, None, None, Some("flowgate_no_such_db"), None),
        table("pg_nodb"),
        encode,
    )
    .await
    .unwrap_err();
    let text = chain(&err);
    assert_eq!(
        text,
        format!(
            "cannot connect to PostgreSQL at {} (database flowgate_no_such_db, user postgres): \
             FATAL 3D000: database \"flowgate_no_such_db\" does not exist",
            host_port(&url)
        )
    );
    assert_eq!(err.sqlstate(), Some("3D000"));
    assert!(err.is_fatal(), "{text}");
}

/// Makes the test server ask `role` for a password over TCP, if it is one of
/// dev/servers.sh's (its data directory is a `flowgate-test.*` temporary
/// directory, thrown away with the server); other servers are not touched.
/// Every other rule is kept: the file is checked after it is written, before
/// the server reloads it. Whether it did.
async fn require_password_for(admin: &tokio_postgres::Client, role: &str) -> bool {
    let hba: String = admin.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    if !hba.contains("/flowgate-test.") || hba.contains('\'') {
        eprintln!("not a dev/servers.sh server ({hba}): its pg_hba.conf is left alone");
        return false;
    }
    let before: String = admin
        .query_one("SELECT pg_read_file($1)", &[&hba])
        .await
        .unwrap()
        .get(0);
    if before.contains('\t') || before.contains('\\') {
        eprintln!("{hba} has tabs or backslashes, which COPY would escape: left alone");
        return false;
    }
    // The first matching line wins: prepend the rule. The lines are read
    // into a table first (COPY empties its file before its query runs).
    let rule = format!("host all {role} 127.0.0.1/32 scram-sha-256");
    let lines: Vec<&str> = before
        .strip_suffix('\n')
        .unwrap_or(&before)
        .split('\n')
        .collect();
    exec(admin, format!(
            "CREATE TEMP TABLE hba_lines AS
               SELECT n, line FROM unnest(ARRAY['{rule}'] || string_to_array(rtrim(pg_read_file('{hba}'), E'\\n'), E'\\n'))
               WITH ORDINALITY AS l(line, n);
             COPY (SELECT line FROM hba_lines ORDER BY n) TO '{hba}';
             DROP TABLE hba_lines;"
        )).await;
    let after: String = admin
        .query_one("SELECT pg_read_file($1)", &[&hba])
        .await
        .unwrap()
        .get(0);
    let expected = format!("{rule}\n{}\n", lines.join("\n"));
    if after != expected {
        // Put the old file back rather than lock every test out.
        let old = before.replace('\'', "''");
        exec(admin, format!(
                "COPY (SELECT string_agg(line, E'\\n' ORDER BY n) FROM unnest(string_to_array(rtrim('{old}', E'\\n'), E'\\n')) WITH ORDINALITY AS l(line, n)) TO '{hba}'"
            )).await;
        panic!("rewriting {hba} went wrong:\n{after}\nexpected:\n{expected}");
    }
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    true
}

#[tokio::test]
async fn a_wrong_password_names_the_server_and_the_servers_reason() {
    let Some(url) = postgres_url() else { return };
    let admin = admin(&url).await;
    let role = unique_name("flowgate_pw");
    exec(
        &admin,
        format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'right-secret'"),
    )
    .await;
    if !require_password_for(&admin, &role).await {
        eprintln!("skipped: the server trusts every connection, so no password can be wrong");
        return;
    }
    let wrong = with(
        &url,
        Some(&role),
        Some("wrong-secret"),
        Some("postgres"),
        None,
    );
    // The reload is asynchronous: wait until the rule is in force (bounded,
    // not a timing margin: it normally takes milliseconds).
    let mut tries = 0;
    let err = loop {
        match PostgresSink::connect(&wrong, table("pg_password"), encode).await {
            Err(err) => break err,
            Ok(_) => {
                tries += 1;
                assert!(tries < 600, "pg_hba.conf was not reloaded within a minute");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let text = chain(&err);
    assert_eq!(
        text,
        format!(
            "cannot connect to PostgreSQL at {} (database postgres, user {role}): \
             FATAL 28P01: password authentication failed for user \"{role}\"",
            host_port(&url)
        )
    );
    assert!(
        !format!("{err:?}").contains("wrong-secret"),
        "never the password"
    );
    assert!(err.is_fatal(), "{text}");
    // The right one works (so the failure above was the password).
    let right = with(
        &url,
        Some(&role),
        Some("right-secret"),
        Some("postgres"),
        None,
    );
    let (client, connection) = tokio_postgres::connect(&right, tokio_postgres::NoTls)
        .await
        .unwrap();
    drop(connection);
    drop(client);
}

#[tokio::test]
async fn statement_errors_carry_the_servers_message_and_are_classified() {
    let Some(url) = postgres_url() else { return };
    let table = table("pg_stmt");
    let admin = admin(&url).await;
    exec(&admin, format!("DROP TABLE IF EXISTS {}", table.name())).await;
    let sink = PostgresSink::connect(&url, table.clone(), encode)
        .await
        .unwrap();
    sink.write(vec![event("a", 1)]).await.unwrap();

    // A NOT NULL the mapping does not know: content.
    exec(
        &admin,
        format!(
            "ALTER TABLE {} ALTER COLUMN body SET NOT NULL",
            table.name()
        ),
    )
    .await;
    let err = PostgresSink::connect(&url, table.clone(), |e: &Event| {
        let mut row = encode(e);
        row[2] = Value::Null;
        row
    })
    .await
    .unwrap()
    .write(vec![event("b", 2)])
    .await
    .unwrap_err();
    let text = chain(&err);
    assert!(
        text.starts_with(&format!(
            "postgres at {} (database postgres): ERROR 23502: null value in column \"body\" of relation \"{}\" violates not-null constraint",
            host_port(&url),
            table.name()
        )),
        "{text}"
    );
    assert!(err.is_content() && !err.is_transient(), "{text}");
    assert_eq!(err.sqlstate(), Some("23502"));

    // A column dropped under the sink: fatal, with the server's words.
    exec(
        &admin,
        format!("ALTER TABLE {} DROP COLUMN seq", table.name()),
    )
    .await;
    let err = sink.write(vec![event("c", 3)]).await.unwrap_err();
    let text = chain(&err);
    assert_eq!(
        text,
        format!(
            "postgres at {} (database postgres): ERROR 42703: column \"seq\" of relation \"{}\" does not exist",
            host_port(&url),
            table.name()
        )
    );
    assert!(err.is_fatal(), "{text}");
    // write_each does not hide it either.
    let err = sink.write_each(vec![event("c", 3)]).await.unwrap_err();
    assert!(err.is_fatal(), "{}", chain(&err));

    // The table dropped: fatal (42P01), and connecting again says why.
    exec(&admin, format!("DROP TABLE {}", table.name())).await;
    let err = sink.write(vec![event("d", 4)]).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P01"), "{}", chain(&err));
    assert!(err.is_fatal());
}

#[tokio::test]
async fn write_each_stores_the_good_rows_and_rejects_the_bad_ones() {
    let Some(url) = postgres_url() else { return };
    let table = table("pg_each");
    let admin = admin(&url).await;
    exec(&admin, format!("DROP TABLE IF EXISTS {}", table.name())).await;
    let sink = PostgresSink::connect(&url, table.clone(), |e: &Event| {
        if e.seq == -1 {
            vec![Value::Null, Value::from(e.seq), Value::Null, Value::Null] // a null key
        } else {
            encode(e)
        }
    })
    .await
    .unwrap();
    // A CHECK, and a counter of the insert statements that succeed.
    let t = table.name();
    exec(
        &admin,
        format!(
            "ALTER TABLE {t} ADD CONSTRAINT {t}_no_666 CHECK (seq % 1000 <> 666);
             CREATE TABLE {t}_statements (n bigint NOT NULL);
             INSERT INTO {t}_statements VALUES (0);
             CREATE FUNCTION {t}_count() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN UPDATE {t}_statements SET n = n + 1; RETURN NULL; END $$;
             CREATE TRIGGER {t}_count AFTER INSERT ON {t}
               FOR EACH STATEMENT EXECUTE FUNCTION {t}_count();"
        ),
    )
    .await;
    let statements = || async {
        admin
            .query_one(&format!("SELECT n FROM {t}_statements"), &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };

    // All good: one statement.
    let outcomes = sink
        .write_each(
            (0..1000)
                .map(|i| event(&format!("g{i}"), i * 10 + 1))
                .collect(),
        )
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, RowOutcome::Inserted)));
    assert_eq!(
        statements().await,
        1,
        "a batch without bad rows is one statement"
    );

    let batch: Vec<Event> = (0..1000)
        .map(|i| match i {
            10 => event("bad-a", 666),
            500 => event("bad-b", 1666),
            999 => event("bad-c", 2666),
            200 => event("nul\0one", 1),
            201 => event("nul\0two", 1),
            700 => event("null-key", -1),
            701 => event("g5", 1), // stored by the first batch
            // Ends in 1: never refused.
            _ => event(&format!("e{i}"), i * 10 + 1),
        })
        .collect();
    let outcomes = sink.write_each(batch).await.unwrap();
    assert_eq!(outcomes.len(), 1000);
    let mut rejected = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        match i {
            10 | 500 | 999 => {
                let reason = chain(outcome.rejection().expect("rejected"));
                assert!(
                    reason.contains(&format!("ERROR 23514: new row for relation \"{t}\" violates check constraint \"{t}_no_666\"")),
                    "{reason}"
                );
                assert!(reason.contains(&host_port(&url)), "{reason}");
                rejected += 1;
            }
            200 | 201 => {
                let reason = chain(outcome.rejection().expect("rejected"));
                assert!(
                    reason
                        .contains("ERROR 22021: invalid byte sequence for encoding \"UTF8\": 0x00"),
                    "{reason}"
                );
                rejected += 1;
            }
            700 => assert!(matches!(
                outcome.rejection(),
                Some(SinkError::Table(TableError::NullKey { row: 700, .. }))
            )),
            701 => assert!(matches!(outcome, RowOutcome::Duplicate), "{outcome:?}"),
            _ => assert!(
                matches!(outcome, RowOutcome::Inserted),
                "row {i}: {outcome:?}"
            ),
        }
    }
    assert_eq!(rejected, 5);
    assert_eq!(sink.count().await.unwrap(), 1000 + 993);
    // Bisecting: a few statements per bad row, far fewer than one per row.
    let used = statements().await - 1;
    eprintln!("isolating 5 bad rows among 993 good ones took {used} successful statements");
    assert!((5..=5 * 2 * 10).contains(&used), "{used} statements");
    exec(
        &admin,
        format!("DROP TABLE {t}; DROP TABLE {t}_statements; DROP FUNCTION {t}_count()"),
    )
    .await;
}

/// An outcome as a comparable word (the reason of a rejection by its SQLSTATE
/// or table error).
fn kind(outcome: &RowOutcome) -> String {
    kind_by(outcome, |err| match err {
        SinkError::Table(err) => err.to_string(),
        err => format!("{:?}", err.sqlstate()),
    })
}

/// Every stored row of `table`, in key order.
async fn stored(admin: &tokio_postgres::Client, table: &str) -> Vec<(String, i64)> {
    admin
        .query(&format!("SELECT id, seq FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn write_values_stores_and_reports_exactly_like_write_each() {
    let Some(url) = postgres_url() else { return };
    let admin = admin(&url).await;
    let by_each = table("pg_values_each");
    let by_values = table("pg_values_values");
    for t in [&by_each, &by_values] {
        exec(&admin, format!("DROP TABLE IF EXISTS {}", t.name())).await;
    }
    let null_key = |e: &Event| {
        if e.seq == -1 {
            vec![Value::Null, Value::from(e.seq), Value::Null, Value::Null]
        } else {
            encode(e)
        }
    };
    let each = PostgresSink::connect(&url, by_each.clone(), null_key)
        .await
        .unwrap();
    // The encoder of this sink is never used by write_values.
    let values = PostgresSink::connect(&url, by_values.clone(), |_: &Event| -> Vec<Value> {
        panic!("write_values does not encode")
    })
    .await
    .unwrap();
    for t in [&by_each, &by_values] {
        let t = t.name();
        exec(
            &admin,
            format!("ALTER TABLE {t} ADD CONSTRAINT {t}_no_666 CHECK (seq <> 666)"),
        )
        .await;
    }
    let first = vec![event("a", 1), event("b", 2)];
    let second = vec![
        event("c", 3),
        event("a", 4), // stored by the first batch
        event("d", 5),
        event("d", 6),   // repeated within the batch
        event("x", -1),  // a null key: does not fit
        event("e", 666), // refused by the CHECK
        event("f", 7),
    ];
    write_values_is_write_each(&each, &values, vec![first, second], null_key, kind).await;
    let second_kinds: Vec<String> = each
        .write_each(vec![event("zz", 9)])
        .await
        .unwrap()
        .iter()
        .map(kind)
        .collect();
    assert_eq!(second_kinds, ["inserted"]);
    let mut expected = stored(&admin, by_each.name()).await;
    expected.retain(|(id, _)| id != "zz");
    assert_eq!(stored(&admin, by_values.name()).await, expected);
    assert_eq!(
        expected,
        [
            ("a".to_owned(), 1),
            ("b".to_owned(), 2),
            ("c".to_owned(), 3),
            ("d".to_owned(), 5),
            ("f".to_owned(), 7)
        ]
    );
    for t in [&by_each, &by_values] {
        exec(&admin, format!("DROP TABLE {}", t.name())).await;
    }
}

#[tokio::test]
async fn duplicates_are_reported_exactly_without_returning_every_key() {
    let Some(url) = postgres_url() else { return };
    let admin = admin(&url).await;
    // A key of two columns: the inserted keys come back as two arrays.
    let name = unique_name("pg_two_keys");
    exec(&admin, format!("DROP TABLE IF EXISTS {name}")).await;
    let table = Table::builder(&name)
        .text("tenant")
        .integer("n")
        .text("note")
        .key("tenant")
        .key("n")
        .build()
        .unwrap();
    let sink = PostgresSink::connect(&url, table, |_: &()| Vec::new())
        .await
        .unwrap();
    let row = |tenant: &str, n: i64, note: &str| {
        vec![Value::from(tenant), Value::from(n), Value::from(note)]
    };
    let write = |rows: Vec<Vec<Value>>| {
        let sink = sink.clone();
        async move {
            sink.write_values(rows.into())
                .await
                .unwrap()
                .iter()
                .map(kind)
                .collect::<Vec<_>>()
        }
    };
    // All new: the fast path.
    assert_eq!(
        write(vec![
            row("t1", 1, "a"),
            row("t1", 2, "b"),
            row("t2", 1, "c")
        ])
        .await,
        ["inserted", "inserted", "inserted"]
    );
    // Stored keys, a key repeated within the batch (the first is inserted),
    // and keys that share one column with a stored key.
    assert_eq!(
        write(vec![
            row("t1", 2, "again"),
            row("t2", 2, "new"),
            row("t3", 1, "first"),
            row("t3", 1, "second"),
            row("t1", 1, "again"),
            row("t1", 3, "new"),
        ])
        .await,
        [
            "duplicate",
            "inserted",
            "inserted",
            "duplicate",
            "duplicate",
            "inserted"
        ]
    );
    // Nothing new at all.
    assert_eq!(
        write(vec![row("t3", 1, "x"), row("t2", 1, "y")]).await,
        ["duplicate", "duplicate"]
    );
    let notes: Vec<(String, i64, String)> = admin
        .query(
            &format!("SELECT tenant, n, note FROM {name} ORDER BY 1, 2"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("t1", 1, "a"),
        ("t1", 2, "b"),
        ("t1", 3, "new"),
        ("t2", 1, "c"),
        ("t2", 2, "new"),
        ("t3", 1, "first"),
    ];
    assert_eq!(
        notes,
        expected
            .iter()
            .map(|(t, n, s)| (t.to_string(), *n, s.to_string()))
            .collect::<Vec<_>>()
    );
    exec(&admin, format!("DROP TABLE {name}")).await;
}

#[tokio::test]
async fn two_writes_run_at_once_on_a_two_connection_sink() {
    let Some(url) = postgres_url() else { return };
    let table = table("pg_two_conns");
    let mut admin = admin(&url).await;
    exec(&admin, format!("DROP TABLE IF EXISTS {}", table.name())).await;
    let sink = PostgresSink::connect_with(
        &url,
        table.clone(),
        encode,
        PostgresOptions::default().connections(2),
    )
    .await
    .unwrap();
    // Another transaction inserts "held" and does not commit yet: a write of
    // that key waits for it (ON CONFLICT must know whether it commits).
    let tx = admin.transaction().await.unwrap();
    tx.execute(
        &format!("INSERT INTO {} (id, seq) VALUES ('held', 0)", table.name()),
        &[],
    )
    .await
    .unwrap();
    let blocked = tokio::spawn({
        let sink = sink.clone();
        async move { sink.write_each(vec![event("held", 1), event("a", 2)]).await }
    });
    // Until the server shows that write waiting for the lock.
    let observer = self::admin(&url).await;
    let wait_sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query LIKE '%INSERT INTO {}%'",
        table.name()
    );
    loop {
        let waiting: i64 = observer.query_one(&wait_sql, &[]).await.unwrap().get(0);
        if waiting == 1 {
            break;
        }
        assert!(
            !blocked.is_finished(),
            "the write did not wait: {:?}",
            blocked.await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The second write does not need that lock: it completes on the other
    // connection while the first still waits.
    // (A generous bound: with one connection it would wait forever.)
    let free = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        sink.write_each(vec![event("b", 3), event("c", 4)]),
    )
    .await
    .expect("the second write waited for the first one's connection")
    .unwrap();
    assert!(free.iter().all(|o| matches!(o, RowOutcome::Inserted)));
    assert!(!blocked.is_finished(), "the first write still waits");
    tx.rollback().await.unwrap();
    let outcomes = blocked.await.unwrap().unwrap();
    assert!(
        outcomes.iter().all(|o| matches!(o, RowOutcome::Inserted)),
        "{outcomes:?}"
    );
    assert_eq!(sink.count().await.unwrap(), 4);
    exec(&admin, format!("DROP TABLE {}", table.name())).await;
}

#[test]
#[should_panic(expected = "PostgresOptions::connections: connections must be at least 1")]
fn zero_connections_are_refused_by_the_setter() {
    let _ = PostgresOptions::default().connections(0);
}

#[tokio::test]
#[should_panic(expected = "PostgresSink::connect_with: options.connections must be at least 1")]
async fn zero_connections_set_on_the_field_are_refused_by_connect_with() {
    let mut options = PostgresOptions::default();
    options.connections = 0;
    // Refused before the URL is even parsed: no server needed.
    let _ = PostgresSink::connect_with(
        "postgres://127.0.0.1:1/db",
        table("pg_zero"),
        encode,
        options,
    )
    .await;
}

#[tokio::test]
async fn usize_max_connections_mean_unbounded() {
    let Some(url) = postgres_url() else { return };
    let admin = admin(&url).await;
    let table = table("pg_max_conns");
    exec(&admin, format!("DROP TABLE IF EXISTS {}", table.name())).await;
    let sink = PostgresSink::connect_with(
        &url,
        table.clone(),
        encode,
        PostgresOptions::default().connections(usize::MAX),
    )
    .await
    .unwrap();
    assert_eq!(
        sink.write(vec![event("a", 1), event("b", 2)])
            .await
            .unwrap(),
        [Written::Inserted, Written::Inserted]
    );
    exec(&admin, format!("DROP TABLE {}", table.name())).await;
}

/// `write_batch` (rows by column, each array encoded from its column) gives
/// the outcomes `write_values` gives for the same rows and stores the same
/// table: duplicates of stored keys and within the batch, rows refused by
/// a CHECK (isolated by halving), nulls in a nullable column.
#[tokio::test]
async fn write_batch_stores_and_reports_exactly_like_write_values() {
    use flowgate_sql::{RowBatch, ValueRef};
    let Some(url) = postgres_url() else { return };
    let admin = admin(&url).await;
    let by_values = table("pg_batch_values");
    let by_batch = table("pg_batch_batch");
    for t in [&by_values, &by_batch] {
        exec(&admin, format!("DROP TABLE IF EXISTS {}", t.name())).await;
    }
    let values = PostgresSink::connect(&url, by_values.clone(), encode)
        .await
        .unwrap();
    let batch_sink = PostgresSink::connect(&url, by_batch.clone(), encode)
        .await
        .unwrap();
    for t in [&by_values, &by_batch] {
        let t = t.name();
        exec(
            &admin,
            format!("ALTER TABLE {t} ADD CONSTRAINT {t}_no_666 CHECK (seq <> 666)"),
        )
        .await;
    }
    let rounds: Vec<Vec<Event>> = vec![
        vec![event("a", 1), event("b", 2)],
        (0..300)
            .map(|i| match i % 7 {
                0 => event("a", i),                                // stored by the first batch
                1 => event(&format!("dup{}", i % 5), i),           // repeated within the batch
                2 if i % 3 == 0 => event(&format!("bad{i}"), 666), // refused by the CHECK
                _ => event(&format!("r{i}"), i),
            })
            .collect(),
        vec![],
    ];
    for (round, events) in rounds.iter().enumerate() {
        let rows: std::sync::Arc<[Vec<Value>]> = events.iter().map(encode).collect();
        let mut batch = RowBatch::with_capacity(&by_batch, events.len());
        for row in rows.iter() {
            let refs: Vec<ValueRef<'_>> = row.iter().map(Value::as_ref).collect();
            batch.append(&refs).unwrap();
        }
        let expected: Vec<String> = values
            .write_values(rows)
            .await
            .unwrap()
            .iter()
            .map(kind)
            .collect();
        let got: Vec<String> = batch_sink
            .write_batch(std::sync::Arc::new(batch))
            .await
            .unwrap()
            .iter()
            .map(kind)
            .collect();
        assert_eq!(got, expected, "round {round}");
        if round == 1 {
            assert!(expected.iter().any(|k| k == "duplicate"));
            assert!(expected.iter().any(|k| k.contains("23514")), "{expected:?}");
        }
    }
    let expected = stored(&admin, by_values.name()).await;
    assert!(expected.len() > 200, "{}", expected.len());
    assert_eq!(stored(&admin, by_batch.name()).await, expected);
    for t in [&by_values, &by_batch] {
        exec(&admin, format!("DROP TABLE {}", t.name())).await;
    }
}
