//! Flags that do not apply to the chosen source or sink, missing values and
//! zero values are usage errors: exit code 2, the flag named on stderr, and
//! nothing run (no report, no SQLite file, no connection: the Redis and
//! PostgreSQL URLs given point at ports nothing listens on, where a run would
//! fail with 1). No server needed.

mod support;

use support::*;

/// Runs `flowgate ingest --no-progress ARGS` (with `--sqlite <temp file>`
/// unless a sink is given) and asserts a usage error that ran nothing.
fn usage_error(args: &[&str]) -> Finished {
    let dir = TempDir::new("flags");
    let sqlite = dir.path().join("never.sqlite");
    let mut all = vec!["ingest", "--no-progress"];
    all.extend_from_slice(args);
    if !args.iter().any(|a| *a == "--sqlite" || *a == "--postgres") {
        all.extend_from_slice(&["--sqlite", sqlite.to_str().unwrap()]);
    }
    let done = run_flowgate(&args.join(" "), all, EXIT_TIMEOUT);
    done.assert_code(2);
    assert!(
        !done.stdout.contains("received"),
        "no report: nothing ran\n{done}"
    );
    assert!(!sqlite.exists(), "nothing written\n{done}");
    assert!(
        !done.stderr.trim().is_empty(),
        "the error is explained\n{done}"
    );
    done
}

fn refused_redis() -> String {
    format!("redis://127.0.0.1:{}/", free_port())
}

fn refused_postgres() -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", free_port())
}

#[test]
fn stream_without_redis_is_a_usage_error() {
    usage_error(&["--stream", "s"]).assert_stderr_has("--stream");
}

#[test]
fn group_without_redis_is_a_usage_error() {
    usage_error(&["--group", "g"]).assert_stderr_has("--group");
}

#[test]
fn consumer_without_redis_is_a_usage_error() {
    usage_error(&["--consumer", "c"]).assert_stderr_has("--consumer");
}

#[test]
fn claim_idle_ms_without_redis_is_a_usage_error() {
    usage_error(&["--claim-idle-ms", "500"]).assert_stderr_has("--claim-idle-ms");
}

#[test]
fn max_messages_without_redis_is_a_usage_error() {
    usage_error(&["--max-messages", "5"]).assert_stderr_has("--max-messages");
}

#[test]
fn exit_when_idle_ms_without_redis_is_a_usage_error() {
    usage_error(&["--exit-when-idle-ms", "500"]).assert_stderr_has("--exit-when-idle-ms");
}

#[test]
fn max_deliveries_without_redis_is_a_usage_error() {
    usage_error(&["--max-deliveries", "3"]).assert_stderr_has("--max-deliveries");
}

#[test]
fn dead_letter_stream_without_redis_is_a_usage_error() {
    usage_error(&["--dead-letter-stream", "d"]).assert_stderr_has("--dead-letter-stream");
}

#[test]
fn messages_with_redis_is_a_usage_error() {
    let redis = refused_redis();
    usage_error(&[
        "--redis",
        &redis,
        "--stream",
        "s",
        "--group",
        "g",
        "--messages",
        "5",
    ])
    .assert_stderr_has("--messages");
}

#[test]
fn redeliver_every_with_redis_is_a_usage_error() {
    let redis = refused_redis();
    usage_error(&[
        "--redis",
        &redis,
        "--stream",
        "s",
        "--group",
        "g",
        "--redeliver-every",
        "5",
    ])
    .assert_stderr_has("--redeliver-every");
}

#[test]
fn redis_without_stream_is_a_usage_error() {
    let redis = refused_redis();
    usage_error(&["--redis", &redis, "--group", "g"]).assert_stderr_has("--stream");
}

#[test]
fn redis_without_group_is_a_usage_error() {
    let redis = refused_redis();
    usage_error(&["--redis", &redis, "--stream", "s"]).assert_stderr_has("--group");
}

#[test]
fn batch_size_0_is_refused_naming_the_flag() {
    usage_error(&["--messages", "10", "--batch-size", "0"]).assert_stderr_has("--batch-size");
}

#[test]
fn max_in_flight_without_redis_is_a_usage_error() {
    usage_error(&["--messages", "10", "--max-in-flight", "100"]).assert_stderr_has("--redis");
}

#[test]
fn flush_concurrency_0_is_refused_naming_the_flag() {
    usage_error(&["--messages", "10", "--flush-concurrency", "0"])
        .assert_stderr_has("--flush-concurrency");
}

#[test]
fn max_in_flight_0_is_refused_naming_the_flag() {
    usage_error(&[
        "--redis",
        "redis://127.0.0.1:1/",
        "--stream",
        "s",
        "--group",
        "g",
        "--max-in-flight",
        "0",
    ])
    .assert_stderr_has("--max-in-flight");
}

#[test]
fn sqlite_with_postgres_is_a_usage_error() {
    let dir = TempDir::new("flags");
    let sqlite = dir.path().join("never.sqlite");
    let postgres = refused_postgres();
    usage_error(&[
        "--messages",
        "10",
        "--sqlite",
        sqlite.to_str().unwrap(),
        "--postgres",
        &postgres,
    ]);
    assert!(!sqlite.exists());
}

#[test]
fn schema_with_column_is_a_usage_error() {
    usage_error(&[
        "--messages",
        "10",
        "--schema",
        "orders.toml",
        "--column",
        "id:text=@id",
    ])
    .assert_stderr_has("--schema");
}

#[test]
fn schema_with_key_is_a_usage_error() {
    usage_error(&["--messages", "10", "--schema", "orders.toml", "--key", "id"])
        .assert_stderr_has("--schema");
}

#[test]
fn a_column_of_an_unknown_type_is_a_usage_error() {
    usage_error(&["--messages", "10", "--column", "amount:money"]).assert_stderr_has("--column");
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    usage_error(&["--messages", "10", "--log-format", "xml"]).assert_stderr_has("--log-format");
}

#[test]
fn an_empty_order_key_is_refused_naming_the_flag() {
    usage_error(&["--messages", "10", "--order-key", ""]).assert_stderr_has("--order-key");
}
