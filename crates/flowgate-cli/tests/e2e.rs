//! End to end, through the `flowgate` binary as a user runs it: Redis stream
//! -> `flowgate ingest` -> PostgreSQL with ack after write, on the shared
//! servers of `dev/test.sh` (`FLOWGATE_TEST_REDIS_URL`,
//! `FLOWGATE_TEST_POSTGRES_URL`; without them these tests skip, except under
//! `CI=true`, where they fail); and the embedded default, which needs no
//! server. Faults are in `outages.rs`, `consumers.rs`, `poison.rs`,
//! `errors.rs`; the schema in `schema.rs`; flags in `flags.rs`.
//!
//! Runs are stopped with SIGTERM once the servers show everything written and
//! acked (not by an idle timeout that a slow machine could trip), except the
//! test of `--exit-when-idle-ms` itself.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_to_postgres_loses_nothing_and_acks_everything() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "all");
    let total = 20_000;
    t.publish(0, total).await;
    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_done(total, 0, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    // One live consumer is never handed a message twice, even with a short
    // claim idle time on a slow machine.
    assert_eq!(
        (
            report.received,
            report.written,
            report.duplicates,
            report.acked
        ),
        (total, total, 0, total),
        "{report:#?}"
    );
    t.assert_final(total, 0).await;
    t.assert_every_entry_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_when_idle_stops_the_run_and_its_wait_is_not_counted_in_elapsed() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "idle");
    // Few messages: read at once, so no back-pressure pause can pass for idle.
    let total = 200;
    t.publish(0, total).await;
    let idle = Duration::from_secs(5);
    let mut ingest = t.spawn(
        "c1",
        &["--exit-when-idle-ms", &idle.as_millis().to_string()],
    );
    let done = ingest.wait(RUN_TIMEOUT).await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!((report.received, report.written), (total, total));
    // The process lived at least elapsed + the idle wait; half of the wait is
    // slack for the last batch's write and ack after the last arrival.
    assert!(
        done.took.as_secs_f64() - report.elapsed >= idle.as_secs_f64() / 2.0,
        "elapsed {} s excludes the final {} s idle wait (the run took {:.1} s)\n{done}",
        report.elapsed,
        idle.as_secs(),
        done.took.as_secs_f64()
    );
    t.assert_final(total, 0).await;
}

#[test]
fn the_embedded_default_needs_no_server() {
    let dir = TempDir::new("embedded");
    let sqlite = dir.path().join("ingest.sqlite");
    let sqlite = sqlite.to_str().unwrap();
    let first = run_flowgate(
        "embedded",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "5000",
            "--redeliver-every",
            "10",
            "--sqlite",
            sqlite,
        ],
        RUN_TIMEOUT,
    );
    first.assert_code(0);
    let report = first.report();
    report.assert_clean();
    assert_eq!(
        (
            report.received,
            report.written,
            report.duplicates,
            report.acked
        ),
        (5500, 5000, 500, 5500),
        "the redeliveries are duplicates\n{first}"
    );
    assert_eq!(report.dead_lettered, 0);
    // A second run over the same file stores nothing new: idempotent.
    let again = run_flowgate(
        "embedded-again",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "5000",
            "--redeliver-every",
            "0",
            "--sqlite",
            sqlite,
        ],
        RUN_TIMEOUT,
    );
    again.assert_code(0);
    let report = again.report();
    assert_eq!(
        (report.written, report.duplicates, report.acked),
        (0, 5000, 5000),
        "{again}"
    );
}

#[test]
fn order_key_writes_every_message_on_lanes() {
    // Per-key order itself is tested in src/lanes.rs under paused time;
    // here the whole run with it: every message accounted for, the
    // redeliveries duplicates, as without it.
    let dir = TempDir::new("order-key");
    let sqlite = dir.path().join("ingest.sqlite");
    let run = run_flowgate(
        "order-key",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "5000",
            "--redeliver-every",
            "10",
            "--order-key",
            "seq",
            "--flush-concurrency",
            "4",
            "--batch-size",
            "100",
            "--sqlite",
            sqlite.to_str().unwrap(),
        ],
        RUN_TIMEOUT,
    );
    run.assert_code(0);
    let report = run.report();
    report.assert_clean();
    assert_eq!(
        (
            report.received,
            report.written,
            report.duplicates,
            report.acked
        ),
        (5500, 5000, 500, 5500),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_drains_writes_and_acks_what_was_read_and_leaves_the_rest() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "sigint");
    let total = 60_000;
    t.publish(0, total).await;
    let mut ingest = t.spawn("c1", &[]);
    t.wait_rows(1, &mut [&mut ingest]).await;
    ingest.signal("INT");
    let done = ingest.wait(EXIT_TIMEOUT).await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    let (stored, distinct) = rows(&t.postgres, &t.table).await;
    assert_eq!(stored, distinct);
    assert!(
        stored < total,
        "stopped mid-stream: {stored} of {total}\n{done}"
    );
    assert_eq!(
        report.written, stored,
        "what was read was written before exiting\n{done}"
    );
    assert_eq!(pending(&t.redis, &t.stream, &t.group).await, 0, "and acked");
    // A restart takes the rest, nothing twice.
    let mut rest = t.spawn("c1", &[]);
    t.wait_done(total, 0, &mut [&mut rest]).await;
    let done = rest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.duplicates, 0, "{report:#?}");
    assert_eq!(report.written, total - stored, "{report:#?}");
    t.assert_final(total, 0).await;
}
