//! Errors print their cause: what failed, naming the host:port, and the
//! server's own message, as the chain the spec shows on stderr
//! (`flowgate ingest: ...` then `caused by: ...` lines), with exit code 1:
//! a refused PostgreSQL port, a database that does not exist, a wrong
//! password (a private PostgreSQL with SCRAM for TCP connections), a refused
//! Redis port (fast), and, mid-run, a destroyed consumer group and a dropped
//! table, which stop the run (fatal, not retried, nothing dead-lettered).

mod support;

use std::time::Duration;

use support::*;

#[test]
fn a_refused_postgres_port_names_the_address_and_the_refusal() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let done = run_flowgate(
        "refused-pg",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "10",
            "--postgres",
            &format!("postgres://postgres@{address}/postgres"),
        ],
        EXIT_TIMEOUT,
    );
    done.assert_code(1);
    done.assert_error_has(&address);
    done.assert_error_has_any(&["refused", "os error 111"]);
}

#[test]
fn a_missing_database_prints_the_servers_message() {
    let Some(postgres) = shared_postgres() else {
        return;
    };
    let (base, _) = postgres.rsplit_once('/').expect("a URL with a database");
    let done = run_flowgate(
        "missing-db",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "10",
            "--postgres",
            &format!("{base}/flowgate_no_such_db"),
        ],
        EXIT_TIMEOUT,
    );
    done.assert_code(1);
    done.assert_error_has(r#"database "flowgate_no_such_db" does not exist"#);
}

#[test]
fn a_wrong_password_prints_the_servers_message_and_not_the_password() {
    let password = "right-pw-6d1e";
    let wrong = "wrong-pw-93b7";
    let Some(pg) = PrivatePostgres::start_with(PgOptions {
        password: Some(password.to_owned()),
        ..PgOptions::default()
    }) else {
        return;
    };
    // The setup is real: the right password gets in.
    let right = run_flowgate(
        "right-password",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "10",
            "--redeliver-every",
            "0",
            "--postgres",
            &pg.url_with_password(password),
        ],
        EXIT_TIMEOUT,
    );
    right.assert_code(0);
    let done = run_flowgate(
        "wrong-password",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "10",
            "--postgres",
            &pg.url_with_password(wrong),
        ],
        EXIT_TIMEOUT,
    );
    done.assert_code(1);
    done.assert_error_has("password authentication failed");
    done.assert_error_has(&pg.address());
    assert!(
        !done.stderr.contains(wrong) && !done.stdout.contains(wrong),
        "the password is never printed\n{done}"
    );
}

#[test]
fn a_refused_redis_port_fails_within_5s_naming_the_address() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let dir = TempDir::new("refused-redis");
    let sqlite = dir.path().join("x.sqlite");
    let done = run_flowgate(
        "refused-redis",
        [
            "ingest",
            "--no-progress",
            "--redis",
            &format!("redis://{address}/"),
            "--stream",
            "s",
            "--group",
            "g",
            "--sqlite",
            sqlite.to_str().unwrap(),
        ],
        EXIT_TIMEOUT,
    );
    done.assert_code(1);
    done.assert_error_has(&address);
    assert!(
        done.took < Duration::from_secs(5),
        "a refused port fails fast, not after retries\n{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xgroup_destroy_mid_run_stops_the_run_with_nogroup() {
    let Some(servers) = shared() else { return };
    let mut t = Target::new(&servers.redis, &servers.postgres, "destroyed");
    t.group = unique("doomed_group");
    t.publish(0, 20_000).await;
    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_rows(1000, &mut [&mut ingest]).await;
    // Whether it is still reading or waiting for more, its next read fails.
    xgroup_destroy(&t.redis, &t.stream, &t.group).await;
    let done = ingest.wait(EXIT_TIMEOUT).await;
    done.assert_code(1);
    done.assert_error_has_any(&["NOGROUP", &t.group]);
    assert_eq!(xlen(&t.redis, &t.dead).await, 0, "nothing dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_mid_run_stops_the_run_naming_the_table() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "dropped");
    t.publish(0, 20_000).await;
    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_rows(1000, &mut [&mut ingest]).await;
    execute(&t.postgres, &format!("DROP TABLE {}", t.table)).await;
    // Whatever the timing, there is something to write after the drop.
    t.publish(20_000, 2000).await;
    let done = ingest.wait(EXIT_TIMEOUT).await;
    done.assert_code(1);
    done.assert_error_has(&t.table);
    done.assert_error_has("does not exist");
    assert_eq!(
        xlen(&t.redis, &t.dead).await,
        0,
        "a lost table is not bad content: nothing dead-lettered\n{done}"
    );
    assert!(
        !table_exists(&t.postgres, &t.table).await,
        "not silently re-created\n{done}"
    );
}
