//! Consumers of one group, as separate `flowgate ingest` processes on the
//! shared servers: a consumer SIGKILLed five times mid-batch and restarted
//! under its name, then taken over by another; two live consumers under CPU
//! load that never receive the same message; four instances started at once
//! on a missing table.
//!
//! Runs are stopped with SIGTERM once the servers show everything written and
//! acked, so no outcome depends on an idle timeout or on speed.

mod support;

use support::*;

/// `kill -9` with messages read and not acked, guaranteed: once the process
/// has written rows, it is frozen (SIGSTOP) as soon as something is pending,
/// the group's pending count is read again while it cannot ack, and it is
/// killed only if something is still pending; otherwise it is thawed and,
/// if it has stored everything published, given more. (The pending count
/// is polled without pause: a consumer in a release build acks a burst
/// within milliseconds.)
async fn kill_mid_batch(t: &Target, ingest: &mut Flowgate, published: &mut u64) {
    let before = t.state().await.rows;
    // Bounded by time, not by rounds: on a busy machine the consumer may take
    // long to start.
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    while std::time::Instant::now() < deadline {
        let rows = t.state().await.rows;
        if rows >= *published {
            t.publish(*published, 2000).await;
            *published += 2000;
        }
        if rows > before && pending(&t.redis, &t.stream, &t.group).await > 0 {
            ingest.signal("STOP");
            if pending(&t.redis, &t.stream, &t.group).await > 0 {
                let killed = ingest.kill();
                assert_eq!(killed.code(), None, "killed by a signal\n{killed}");
                return;
            }
            ingest.signal("CONT");
        }
        if let Some(status) = ingest.try_status() {
            panic!(
                "the consumer exited before it could be killed: {status}\n{}",
                ingest.describe()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!(
        "never found the consumer with messages read and not acked\n{}",
        ingest.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_five_times_with_restarts_then_a_takeover_stores_every_message_exactly_once() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "sigkill");
    // Each kill makes the messages it held be delivered once more: more
    // deliveries than the five kills allow, so that none is dead-lettered
    // for it (what is asserted here is the kills, not max-deliveries).
    let args = ["--claim-idle-ms", "500", "--max-deliveries", "20"];
    let mut published = 0;
    for _ in 0..5 {
        t.publish(published, 8000).await;
        published += 8000;
        let mut ingest = t.spawn("c1", &args);
        kill_mid_batch(&t, &mut ingest, &mut published).await;
    }

    // Another consumer takes over c1's messages once they are idle.
    let mut heir = t.spawn("heir", &args);
    t.wait_done(published, 0, &mut [&mut heir]).await;
    let done = heir.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.dead_lettered, 0, "{done}");
    // Nothing pending at the end: what c1 held when it was killed was taken
    // over by the heir, the only consumer left.
    assert!(report.received > 0, "{report:#?}");
    t.assert_final(published, 0).await;
    t.assert_every_entry_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_consumers_under_cpu_load_never_receive_the_same_message() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "two_live");
    t.create_table().await;
    let total = 30_000;
    // Four busy loops for the test's whole duration: slow commits, batches in
    // flight past the claim idle time.
    let _load = CpuLoad::start(4);
    let args = ["--claim-idle-ms", "500"];
    let mut a = t.spawn("a", &args);
    let mut b = t.spawn("b", &args);
    // Both are reading before anything is published, so both take a share.
    wait_until(
        "both consumers in the group",
        RUN_TIMEOUT,
        &mut [&mut a, &mut b],
        async || {
            let names = consumers(&t.redis, &t.stream, &t.group).await;
            if names.iter().any(|n| n == "a") && names.iter().any(|n| n == "b") {
                Check::Done
            } else {
                Check::Wait(format!("consumers {names:?}"))
            }
        },
    )
    .await;
    t.publish(0, total).await;
    t.wait_done(total, 0, &mut [&mut a, &mut b]).await;
    a.signal("TERM");
    b.signal("TERM");
    let (a, b) = (a.wait(EXIT_TIMEOUT).await, b.wait(EXIT_TIMEOUT).await);
    a.assert_code(0);
    b.assert_code(0);
    let (ra, rb) = (a.report(), b.report());
    ra.assert_clean();
    rb.assert_clean();
    assert_eq!(
        ra.received + rb.received,
        total,
        "each message received by one consumer, once\na: {ra:#?}\nb: {rb:#?}"
    );
    assert_eq!(ra.duplicates + rb.duplicates, 0, "a: {ra:#?}\nb: {rb:#?}");
    assert_eq!(ra.written + rb.written, total);
    assert!(
        ra.received > 0 && rb.received > 0,
        "both took a share: {} and {}",
        ra.received,
        rb.received
    );
    t.assert_final(total, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_started_at_once_on_a_missing_table_all_start() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "four_at_once");
    let total = 20_000;
    t.publish(0, total).await;
    assert!(!table_exists(&t.postgres, &t.table).await);
    let args = ["--claim-idle-ms", "500"];
    let mut runs: Vec<Flowgate> = ["a", "b", "c", "d"]
        .iter()
        .map(|name| t.spawn(name, &args))
        .collect();
    {
        let mut live: Vec<&mut Flowgate> = runs.iter_mut().collect();
        t.wait_done(total, 0, &mut live).await;
    }
    for run in &mut runs {
        run.signal("TERM");
    }
    let mut written = 0;
    for run in &mut runs {
        let done = run.wait(EXIT_TIMEOUT).await;
        done.assert_code(0);
        let report = done.report();
        report.assert_clean();
        written += report.written;
    }
    assert_eq!(written, total, "each row written by one of them");
    t.assert_final(total, 0).await;
}
