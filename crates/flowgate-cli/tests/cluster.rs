//! A sharded stream on the 3-node Redis Cluster of `dev/test.sh`
//! (`FLOWGATE_TEST_REDIS_CLUSTER_URL`) into the shared PostgreSQL: `flowgate
//! publish --shards` spreads the messages over the shards' nodes, two
//! `flowgate ingest --shards` consumers of one group share them, every
//! message is stored once and acked on its own node, and a bad message is
//! dead-lettered beside its shard (the atomic script needs both keys in one
//! slot). Stopped with SIGTERM once the servers show everything done.

mod support;

use flowgate_cli::shards;
use support::*;

/// Entries delivered and not acked, over every shard of `stream` in `group`.
async fn pending_all(urls: &[String], keys: &[String], group: &str) -> u64 {
    let mut total = 0;
    for (url, key) in urls.iter().zip(keys) {
        total += pending(url, key, group).await;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_share_a_sharded_stream_on_a_cluster_and_store_each_message_once() {
    let Some(cluster) = need("FLOWGATE_TEST_REDIS_CLUSTER_URL") else {
        return;
    };
    let Some(postgres) = shared_postgres() else {
        return;
    };
    let name = unique("cluster");
    let (stream, table, n) = (name.clone(), name.clone(), 8_000u64);
    let keys = shards::keys(&stream, 4);
    let urls = shards::locate(&cluster, &keys).await.unwrap();
    let mut nodes = urls.clone();
    nodes.sort();
    nodes.dedup();
    assert!(
        nodes.len() >= 2,
        "the shards spread over the cluster: {urls:?}"
    );

    run_flowgate(
        "publish",
        [
            "publish",
            "--redis",
            &cluster,
            "--stream",
            &stream,
            "--shards",
            "4",
            "--messages",
            &n.to_string(),
        ],
        RUN_TIMEOUT,
    )
    .assert_code(0);
    for (url, key) in urls.iter().zip(&keys) {
        assert_eq!(xlen(url, key).await, n / 4, "{key} on {url}");
    }
    // One message that does not fit the mapping, in shard 2.
    xadd(
        &urls[2],
        &keys[2],
        &[(b"seq", b"not a number"), (b"body", b"x")],
    )
    .await;

    let spawn = |consumer: &str| {
        flowgate(
            consumer,
            [
                "ingest",
                "--no-progress",
                "--redis",
                &cluster,
                "--stream",
                &stream,
                "--shards",
                "4",
                "--group",
                "writers",
                "--consumer",
                consumer,
                "--postgres",
                &postgres,
                "--table",
                &table,
            ],
        )
    };
    let (mut a, mut b) = (spawn("a"), spawn("b"));
    wait_until(
        "every message stored once and acked",
        RUN_TIMEOUT,
        &mut [&mut a, &mut b],
        async || {
            let (rows, distinct) = rows(&postgres, &table).await;
            let pending = pending_all(&urls, &keys, "writers").await;
            let dead = xlen(&urls[2], &shards::dead_letter(&keys[2])).await;
            if rows != distinct {
                Check::Fail(format!("a key stored twice: {rows} rows, {distinct} keys"))
            } else if rows == n && pending == 0 && dead == 1 {
                Check::Done
            } else {
                Check::Wait(format!(
                    "{rows} rows, {pending} pending, {dead} dead letters"
                ))
            }
        },
    )
    .await;
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
        n + 1,
        "each message received once\n{a}\n{b}"
    );
    assert_eq!(ra.written + rb.written, n);
    assert_eq!(ra.dead_lettered + rb.dead_lettered, 1);
    assert!(ra.route.contains("4 shards on"), "{}", ra.route);
    // The dead letter carries its reason, beside its shard.
    let letters = dead_letters(&urls[2], &shards::dead_letter(&keys[2])).await;
    assert_eq!(letters.len(), 1);
    let reason = letters[0].get("flowgate-reason").unwrap_or_default();
    assert!(reason.contains("seq"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_holding_messages_on_every_shard_is_taken_over() {
    let Some(cluster) = need("FLOWGATE_TEST_REDIS_CLUSTER_URL") else {
        return;
    };
    let Some(postgres) = shared_postgres() else {
        return;
    };
    let name = unique("cluster_kill");
    let (stream, table, n) = (name.clone(), name.clone(), 20_000u64);
    let keys = shards::keys(&stream, 3);
    let urls = shards::locate(&cluster, &keys).await.unwrap();
    run_flowgate(
        "publish",
        [
            "publish",
            "--redis",
            &cluster,
            "--stream",
            &stream,
            "--shards",
            "3",
            "--messages",
            &n.to_string(),
        ],
        RUN_TIMEOUT,
    )
    .assert_code(0);
    let spawn = |consumer: &str| {
        flowgate(
            consumer,
            [
                "ingest",
                "--no-progress",
                "--redis",
                &cluster,
                "--stream",
                &stream,
                "--shards",
                "3",
                "--group",
                "writers",
                "--consumer",
                consumer,
                "--postgres",
                &postgres,
                "--table",
                &table,
                "--claim-idle-ms",
                "500",
            ],
        )
    };
    // Killed with messages read and not acked: frozen first, so that the
    // pending count cannot drop before the kill.
    let mut victim = spawn("victim");
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "never held unacked messages\n{}",
            victim.describe()
        );
        if let Some(status) = victim.try_status() {
            panic!("exited before the kill: {status}\n{}", victim.describe());
        }
        if rows(&postgres, &table).await.0 > 0 && pending_all(&urls, &keys, "writers").await > 0 {
            victim.signal("STOP");
            if pending_all(&urls, &keys, "writers").await > 0 {
                let killed = victim.kill();
                assert_eq!(killed.code(), None, "killed by a signal\n{killed}");
                break;
            }
            victim.signal("CONT");
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut heir = spawn("heir");
    wait_until(
        "every message stored once and acked",
        RUN_TIMEOUT,
        &mut [&mut heir],
        async || {
            let (rows, distinct) = rows(&postgres, &table).await;
            let pending = pending_all(&urls, &keys, "writers").await;
            if rows != distinct {
                Check::Fail(format!("a key stored twice: {rows} rows, {distinct} keys"))
            } else if rows == n && pending == 0 {
                Check::Done
            } else {
                Check::Wait(format!("{rows} rows, {pending} pending"))
            }
        },
    )
    .await;
    let done = heir.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.dead_lettered, 0, "{done}");
}

#[test]
fn shards_apply_to_redis_only() {
    for args in [
        &["ingest", "--shards", "4"][..],
        &[
            "ingest",
            "--nats",
            "nats://127.0.0.1:1",
            "--stream",
            "S",
            "--group",
            "g",
            "--shards",
            "2",
        ][..],
        &[
            "ingest",
            "--redis",
            "redis://127.0.0.1:1/",
            "--stream",
            "S",
            "--group",
            "g",
            "--shards",
            "0",
        ][..],
        &[
            "ingest",
            "--redis",
            "redis://127.0.0.1:1/",
            "--stream",
            "S",
            "--group",
            "g",
            "--shards",
            "2",
            "--dead-letter-stream",
            "d",
        ][..],
    ] {
        run_flowgate("flags", args, RUN_TIMEOUT).assert_code(2);
    }
}
