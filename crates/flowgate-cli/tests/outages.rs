//! Server outages mid-run are back-pressure, never poison: `flowgate ingest`
//! from a Redis stream into PostgreSQL through a PostgreSQL outage of 8 s, a
//! PostgreSQL restart, a redis-server restart and crash (append-only), and a
//! second Ctrl-C while the sink is down. Each ends with the servers' final
//! state asserted: every message in the table exactly once, nothing pending,
//! no dead letters.
//!
//! The server being stopped is a private instance of the test's own
//! (`support::PrivatePostgres` / `PrivateRedis`), so tests running beside it
//! are not disturbed. Mid-run events are triggered by observed progress (rows
//! in the table); more messages are published while (or after) a server is
//! down, so that whatever the timing there is work to do across the outage.
//! The run is stopped with SIGTERM once the servers show everything written
//! and acked: no outcome depends on an idle timeout or on speed.

mod support;

use std::time::Duration;

use support::*;

/// Messages published before the outage, and during (or after) it.
const BEFORE: u64 = 20_000;
const DURING: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8s_postgres_outage_with_claim_idle_500ms_dead_letters_nothing_and_writes_everything_once()
 {
    let Some(redis) = shared_redis() else { return };
    let Some(mut pg) = PrivatePostgres::start() else {
        return;
    };
    let t = Target::new(&redis, &pg.url(), "pg_outage");
    t.publish(0, BEFORE).await;
    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500", "--max-deliveries", "5"]);
    t.wait_rows(1000, &mut [&mut ingest]).await;

    pg.stop();
    // Read while the sink is down (or waiting to be), whatever the timing.
    t.publish(BEFORE, DURING).await;
    // The outage itself is a duration of the scenario, not a margin: 8 s is
    // 16 claim-idle periods.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        ingest.try_status().is_none(),
        "ingest waits through the outage\n{}",
        ingest.describe()
    );
    pg.start_again();

    let total = BEFORE + DURING;
    t.wait_done(total, 0, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.dead_lettered, 0, "an outage is not poison\n{done}");
    assert!(report.received >= total, "{report:#?}");
    assert!(
        report.written <= total && report.written + report.duplicates >= total,
        "{report:#?}"
    );
    assert!(
        report.retries > 0,
        "the writes that failed during the outage were retried\n{done}"
    );
    assert!(
        !done.stderr.trim().is_empty(),
        "the outage and the retries are logged on stderr\n{done}"
    );
    t.assert_final(total, 0).await;
    t.assert_every_entry_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_loses_nothing_and_leaves_nothing_pending() {
    let Some(redis) = shared_redis() else { return };
    let Some(mut pg) = PrivatePostgres::start() else {
        return;
    };
    let t = Target::new(&redis, &pg.url(), "pg_restart");
    t.publish(0, BEFORE).await;
    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_rows(1000, &mut [&mut ingest]).await;
    pg.restart();
    t.publish(BEFORE, DURING).await;

    let total = BEFORE + DURING;
    t.wait_done(total, 0, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.dead_lettered, 0, "{done}");
    t.assert_final(total, 0).await;
    t.assert_every_entry_stored().await;
}

/// Restarts (SIGTERM, or SIGKILL when `crash`) the private redis-server
/// mid-run, with appendonly and appendfsync always.
async fn redis_outage(crash: bool) {
    let Some(postgres) = shared_postgres() else {
        return;
    };
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let t = Target::new(&redis.url(), &postgres, "redis_restart");
    t.publish(0, BEFORE).await;
    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_rows(1000, &mut [&mut ingest]).await;
    if crash {
        redis.crash();
    } else {
        redis.stop();
    }
    redis.start_again();
    t.publish(BEFORE, DURING).await;

    let total = BEFORE + DURING;
    t.wait_done(total, 0, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    // Duplicates are fine here (acks lost with the connection: delivered
    // again, skipped by the sink); every received message is in one line.
    report.assert_adds_up();
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(report.dead_lettered, 0, "{done}");
    assert!(report.received >= total, "{report:#?}");
    t.assert_final(total, 0).await;
    t.assert_every_entry_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_server_restart_mid_run_loses_nothing_and_leaves_nothing_pending() {
    redis_outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_server_crash_mid_run_loses_nothing_and_leaves_nothing_pending() {
    redis_outage(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_while_the_sink_is_down_exits_130_and_leaves_the_rest_pending() {
    let Some(redis) = shared_redis() else { return };
    let Some(mut pg) = PrivatePostgres::start() else {
        return;
    };
    let t = Target::new(&redis, &pg.url(), "ctrl_c_twice");
    t.publish(0, BEFORE).await;
    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_rows(1000, &mut [&mut ingest]).await;
    pg.stop();
    t.publish(BEFORE, DURING).await;
    // Something read that cannot be written: the first Ctrl-C's drain can
    // never finish while PostgreSQL is down.
    wait_until(
        "messages read while the sink is down",
        RUN_TIMEOUT,
        &mut [&mut ingest],
        async || {
            let n = pending(&t.redis, &t.stream, &t.group).await;
            if n > 0 {
                Check::Done
            } else {
                Check::Wait(format!("pending {n}"))
            }
        },
    )
    .await;
    ingest.signal("INT");
    // Signals sent close together may merge into one: keep interrupting
    // until it exits (it cannot exit otherwise: its drain cannot finish).
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    while ingest.try_status().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "a second Ctrl-C stops at once\n{}",
            ingest.describe()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        ingest.signal("INT");
    }
    let interrupted = ingest.wait(EXIT_TIMEOUT).await;
    interrupted.assert_code(130);
    pg.start_again();
    let left = pending(&t.redis, &t.stream, &t.group).await;
    assert!(left > 0, "what was not acked stays pending\n{interrupted}");
    assert_eq!(xlen(&t.redis, &t.dead).await, 0, "nothing dead-lettered");

    // A restart takes it all, each message once.
    let total = BEFORE + DURING;
    let mut again = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_done(total, 0, &mut [&mut again]).await;
    let done = again.stop().await;
    done.assert_code(0);
    done.report().assert_clean();
    t.assert_final(total, 0).await;
    t.assert_every_entry_stored().await;
}
