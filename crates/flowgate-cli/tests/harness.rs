//! The test harness itself (`tests/support`), on real servers: private
//! PostgreSQL and redis-server instances stop and restart on their port with
//! their data and leave no process behind, a hang fails with the output and
//! kills the process, the report of the CLI spec parses.

mod support;

use std::time::Duration;

use support::*;

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_postgres_restarts_on_its_port_with_its_data() {
    let Some(mut pg) = PrivatePostgres::start() else {
        return;
    };
    let port = pg.port();
    execute(
        &pg.url(),
        "CREATE TABLE kept (n BIGINT PRIMARY KEY); INSERT INTO kept VALUES (1), (2), (3)",
    )
    .await;
    let first = pg.pid();

    pg.stop();
    assert!(!process_exists(first), "stopped");
    let refused = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await;
    assert!(
        refused.is_err(),
        "nothing listens on {port} while it is down"
    );

    pg.start_again();
    assert_eq!(pg.port(), port, "same port");
    let n: i64 = support::pg(&pg.url())
        .await
        .query_one("SELECT COUNT(*) FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3, "same data");

    pg.restart();
    assert_eq!(rows_by(&pg.url(), "kept", "n").await, (3, 3));
    let last = pg.pid();
    drop(pg);
    assert!(!process_exists(last), "stopped on drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_postgres_with_a_password_refuses_a_wrong_one() {
    let Some(pg) = PrivatePostgres::start_with(PgOptions {
        password: Some("right-horse-battery".to_owned()),
        ..PgOptions::default()
    }) else {
        return;
    };
    let ok = tokio_postgres::connect(
        &pg.url_with_password("right-horse-battery"),
        tokio_postgres::NoTls,
    )
    .await;
    assert!(ok.is_ok(), "the right password: {:?}", ok.err());
    let wrong = tokio_postgres::connect(&pg.url_with_password("wrong"), tokio_postgres::NoTls)
        .await
        .err()
        .expect("a wrong password is refused");
    let message = format!("{wrong:?}");
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_redis_keeps_entries_groups_and_pending_across_restarts_and_crashes() {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let url = redis.url();
    let port = redis.port();
    publish(&url, "s", 0, 100).await;
    let mut conn = redis_conn(&url).await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("s")
        .arg("g")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg("s")
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(pending(&url, "s", "g").await, 10);

    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(xlen(&url, "s").await, 100, "entries survive a restart");
    assert_eq!(
        pending(&url, "s", "g").await,
        10,
        "so do the group and its PEL"
    );

    redis.crash();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "down"
    );
    redis.start_again();
    assert_eq!(
        xlen(&url, "s").await,
        100,
        "appendfsync always: a crash too"
    );
    assert_eq!(pending(&url, "s", "g").await, 10);
    assert_eq!(consumers(&url, "s", "g").await, vec!["c".to_owned()]);
}

#[test]
fn private_servers_leave_no_process_behind_even_when_the_test_panics() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let Some(redis) = PrivateRedis::start() else {
        return;
    };
    let pids = (pg.pid(), redis.pid());
    let dirs = (pg.data_dir().to_owned(), redis.dir().to_owned());
    assert!(process_exists(pids.0) && process_exists(pids.1));
    let panicked = std::thread::spawn(move || {
        let _servers = (pg, redis);
        panic!("a failing test");
    })
    .join();
    assert!(panicked.is_err());
    assert!(!process_exists(pids.0), "postgres {} left behind", pids.0);
    assert!(
        !process_exists(pids.1),
        "redis-server {} left behind",
        pids.1
    );
    assert!(!dirs.0.exists() && !dirs.1.exists(), "directories removed");
}

#[test]
fn a_hang_fails_with_the_output_and_the_process_is_killed() {
    let Some(redis) = shared_redis() else { return };
    let dir = TempDir::new("hang");
    let sqlite = dir.path().join("hang.sqlite");
    let stream = unique("hang");
    // Without --exit-when-idle-ms a Redis consumer runs until stopped.
    let mut run = flowgate(
        "hang",
        [
            "ingest",
            "--no-progress",
            "--redis",
            &redis,
            "--stream",
            &stream,
            "--group",
            "g",
            "--sqlite",
            sqlite.to_str().unwrap(),
        ],
    );
    let pid = run.pid();
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run.wait_blocking(Duration::from_secs(2))
    }))
    .expect_err("a hang fails the test");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("did not exit within"), "{message}");
    assert!(
        message.contains("--- stderr:"),
        "with the output: {message}"
    );
    assert!(!process_exists(pid), "and the process is killed");
}

const SPEC_REPORT: &str = "\
flowgate ingest: Redis stream \"s\" (group \"g\", consumer \"c\") -> PostgreSQL
  received              1,234
* written                1000   (stored)
* duplicates              200   (already stored: redeliveries skipped by the sink)
* dead-lettered            20   (to s:dead: bad content, with the reason)
* failed                   10   (not acked: left pending, delivered again later)
* unacked                   4   (written, but the XACK failed: delivered again later as a duplicate)
  acked                  1220   (written + duplicates + dead-lettered that the source confirmed)
  retries                   7   (sink writes retried after transient failures)
  elapsed               2.500 s  (excluding the final idle wait)
  throughput              488 msg/s
  ack latency        p50 1.00 ms, p99 2.00 ms, max 3.00 ms
";

#[test]
fn the_report_of_the_spec_parses_and_a_missing_line_is_named() {
    let report = Report::parse(&format!("progress...\n{SPEC_REPORT}")).unwrap();
    assert_eq!(
        report,
        Report {
            route: "Redis stream \"s\" (group \"g\", consumer \"c\") -> PostgreSQL".to_owned(),
            received: 1234,
            written: 1000,
            duplicates: 200,
            dead_lettered: 20,
            failed: 10,
            unacked: 4,
            acked: 1220,
            retries: 7,
            elapsed: 2.5,
            throughput: 488.0,
        }
    );
    report.assert_adds_up();
    let clean = std::panic::catch_unwind(|| {
        report.assert_clean();
    });
    assert!(clean.is_err(), "failed and unacked are not clean");

    let without = SPEC_REPORT.replace("* dead-lettered", "* lost");
    let err = Report::parse(&without).unwrap_err();
    assert!(err.contains("dead-lettered"), "{err}");
    assert!(Report::parse("nothing here").is_err());
}
