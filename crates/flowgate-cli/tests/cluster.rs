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

/// One sharded stream on the cluster, one group, one table.
struct Sharded {
    cluster: String,
    postgres: String,
    stream: String,
    table: String,
    shards: u32,
    keys: Vec<String>,
    /// The node of each shard.
    urls: Vec<String>,
}

impl Sharded {
    /// `None` (skipped) without the cluster or PostgreSQL.
    async fn new(test: &str, shards: u32) -> Option<Self> {
        let postgres = shared_postgres()?;
        Self::with_postgres(test, shards, &postgres).await
    }

    /// Writing to `postgres`; `None` (skipped) without the cluster.
    async fn with_postgres(test: &str, shards: u32, postgres: &str) -> Option<Self> {
        let cluster = need("FLOWGATE_TEST_REDIS_CLUSTER_URL")?;
        let postgres = postgres.to_owned();
        let name = unique(test);
        let keys = shards::keys(&name, shards);
        let urls = shards::locate(&cluster, &keys).await.unwrap();
        Some(Sharded {
            cluster,
            postgres,
            stream: name.clone(),
            table: name,
            shards,
            keys,
            urls,
        })
    }

    /// `flowgate publish --shards`: `n` messages spread over the shards.
    fn publish(&self, n: u64) {
        let (shards, n) = (self.shards.to_string(), n.to_string());
        run_flowgate(
            "publish",
            [
                "publish",
                "--redis",
                &self.cluster,
                "--stream",
                &self.stream,
                "--shards",
                &shards,
                "--messages",
                &n,
            ],
            RUN_TIMEOUT,
        )
        .assert_code(0);
    }

    fn spawn(&self, consumer: &str, extra: &[&str]) -> Flowgate {
        let shards = self.shards.to_string();
        let mut args = vec![
            "ingest",
            "--no-progress",
            "--redis",
            &self.cluster,
            "--stream",
            &self.stream,
            "--shards",
            &shards,
            "--group",
            "writers",
            "--consumer",
            consumer,
            "--postgres",
            &self.postgres,
            "--table",
            &self.table,
        ];
        args.extend_from_slice(extra);
        flowgate(consumer, args)
    }

    /// Entries delivered to the group and not acked, over every shard.
    async fn pending(&self) -> u64 {
        let mut total = 0;
        for (url, key) in self.urls.iter().zip(&self.keys) {
            total += pending(url, key, "writers").await;
        }
        total
    }

    async fn rows(&self) -> (u64, u64) {
        rows(&self.postgres, &self.table).await
    }

    /// Done when `n` distinct rows are stored, nothing is pending and
    /// shard 2 has `dead` dead letters.
    async fn check(&self, n: u64, dead: u64) -> Check {
        let (rows, distinct) = self.rows().await;
        let pending = self.pending().await;
        let letters = xlen(&self.urls[2], &shards::dead_letter(&self.keys[2])).await;
        if rows != distinct {
            Check::Fail(format!("a key stored twice: {rows} rows, {distinct} keys"))
        } else if rows == n && pending == 0 && letters == dead {
            Check::Done
        } else {
            Check::Wait(format!(
                "{rows} rows, {pending} pending, {letters} dead letters"
            ))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_share_a_sharded_stream_on_a_cluster_and_store_each_message_once() {
    let Some(t) = Sharded::new("cluster", 4).await else {
        return;
    };
    let n = 8_000u64;
    let mut nodes = t.urls.clone();
    nodes.sort();
    nodes.dedup();
    assert!(
        nodes.len() >= 2,
        "the shards spread over the cluster: {:?}",
        t.urls
    );
    // Entry ids repeat across shards (each stream numbers its own): two
    // messages with the same id 1-1 in shards 0 and 1 are two rows.
    for (url, key) in t.urls.iter().zip(&t.keys).take(2) {
        let _: String = redis::cmd("XADD")
            .arg(key)
            .arg("1-1")
            .arg("seq")
            .arg("1")
            .arg("body")
            .arg("same id, another shard")
            .query_async(&mut redis_conn(url).await)
            .await
            .expect("XADD 1-1");
    }
    t.publish(n);
    for (i, (url, key)) in t.urls.iter().zip(&t.keys).enumerate() {
        let extra = u64::from(i < 2);
        assert_eq!(xlen(url, key).await, n / 4 + extra, "{key} on {url}");
    }
    let n = n + 2;
    // One message that does not fit the mapping, in shard 2.
    xadd(
        &t.urls[2],
        &t.keys[2],
        &[(b"seq", b"not a number"), (b"body", b"x")],
    )
    .await;

    let (mut a, mut b) = (t.spawn("a", &[]), t.spawn("b", &[]));
    wait_until(
        "every message stored once and acked",
        RUN_TIMEOUT,
        &mut [&mut a, &mut b],
        async || t.check(n, 1).await,
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
    let letters = dead_letters(&t.urls[2], &shards::dead_letter(&t.keys[2])).await;
    assert_eq!(letters.len(), 1);
    let reason = letters[0].get("flowgate-reason").unwrap_or_default();
    assert!(reason.contains("seq"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_holding_messages_on_every_shard_is_taken_over() {
    let Some(t) = Sharded::new("cluster_kill", 3).await else {
        return;
    };
    let n = 20_000u64;
    t.publish(n);
    let args = ["--claim-idle-ms", "500"];
    let mut victim = t.spawn("victim", &args);
    kill_while_holding(&mut victim, async || {
        t.rows().await.0 > 0 && t.pending().await > 0
    })
    .await;
    let mut heir = t.spawn("heir", &args);
    wait_until(
        "every message stored once and acked",
        RUN_TIMEOUT,
        &mut [&mut heir],
        async || t.check(n, 0).await,
    )
    .await;
    let done = heir.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.dead_lettered, 0, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_back_pressure_on_every_shard_and_nothing_is_lost() {
    let Some(mut pg) = PrivatePostgres::start() else {
        return;
    };
    let Some(t) = Sharded::with_postgres("cluster_outage", 3, &pg.url()).await else {
        return;
    };
    t.publish(3_000);
    let mut ingest = t.spawn("c1", &[]);
    wait_until(
        "some rows written",
        RUN_TIMEOUT,
        &mut [&mut ingest],
        async || {
            let (rows, _) = t.rows().await;
            if rows > 0 {
                Check::Done
            } else {
                Check::Wait(format!("{rows} rows"))
            }
        },
    )
    .await;
    pg.stop();
    // Messages arrive on every shard while the sink is down; the consumer
    // keeps renewing its leases, so nothing is delivered twice.
    t.publish(3_000);
    // Read while the sink is down (their writes fail and are retried),
    // whatever the timing: the first 3,000 may all be written already.
    wait_until(
        "messages read while the sink is down",
        RUN_TIMEOUT,
        &mut [&mut ingest],
        async || match t.pending().await {
            0 => Check::Wait("nothing pending".to_owned()),
            _ => Check::Done,
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    pg.start_again();
    wait_until(
        "every message stored once and acked",
        RUN_TIMEOUT,
        &mut [&mut ingest],
        async || t.check(6_000, 0).await,
    )
    .await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert!(report.retries > 0, "the outage was retried: {done}");
    assert_eq!(report.dead_lettered, 0, "{done}");
    assert_eq!(report.received, 6_000, "nothing delivered twice: {done}");
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
