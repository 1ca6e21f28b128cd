//! `flowgate ingest --kafka` end to end: librdkafka's mock cluster (three
//! brokers, in this test process, on loopback ports), the shared PostgreSQL
//! (or a private one to stop), and the binary as a child process. A
//! consumer SIGKILLed with messages read and not committed, restarted, then
//! joined by a second one; a PostgreSQL outage longer than the group session
//! timeout; the flags that do not apply to Kafka. Runs are stopped with
//! SIGTERM once the cluster shows everything committed and the table every
//! row, so no outcome depends on speed.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use flowgate_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use flowgate_kafka::rdkafka::mocking::MockCluster;
use flowgate_kafka::rdkafka::producer::DefaultProducerContext;
use flowgate_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::*;

const PARTITIONS: i32 = 4;

/// A mock cluster with one topic, and one table.
struct Target {
    cluster: MockCluster<'static, DefaultProducerContext>,
    brokers: String,
    postgres: String,
    topic: String,
    table: String,
}

impl Target {
    fn new(postgres: &str, test: &str) -> Self {
        let name = unique(test);
        let cluster = MockCluster::new(3).expect("mock cluster");
        cluster.create_topic(&name, PARTITIONS, 1).expect("topic");
        cluster
            .create_topic(&format!("{name}.dead"), 1, 1)
            .expect("dead-letter topic");
        Target {
            brokers: cluster.bootstrap_servers(),
            cluster,
            postgres: postgres.to_owned(),
            topic: name.clone(),
            table: name,
        }
    }

    /// Produces `n` messages with `flowgate publish --kafka` (rows are keyed
    /// by partition and offset, so every message is a row of its own).
    fn publish(&self, n: u64) {
        run_flowgate(
            "publish",
            [
                "publish",
                "--kafka",
                &self.brokers,
                "--topic",
                &self.topic,
                "--messages",
                &n.to_string(),
            ],
            RUN_TIMEOUT,
        )
        .assert_code(0);
    }

    fn spawn(&self, name: &str, extra: &[&str]) -> Flowgate {
        let mut args = vec![
            "ingest".to_owned(),
            "--kafka".into(),
            self.brokers.clone(),
            "--topic".into(),
            self.topic.clone(),
            "--group".into(),
            "writers".into(),
            "--postgres".into(),
            self.postgres.clone(),
            "--table".into(),
            self.table.clone(),
            "--no-progress".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        flowgate(name, args)
    }

    /// Messages not yet committed by the group, over all partitions (the
    /// end offsets less the commits).
    async fn uncommitted(&self) -> i64 {
        let (brokers, topic) = (self.brokers.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", "writers")
                .create()
                .expect("consumer");
            let mut tpl = TopicPartitionList::new();
            for p in 0..PARTITIONS {
                tpl.add_partition(&topic, p);
            }
            let committed: BTreeMap<i32, i64> = consumer
                .committed_offsets(tpl, Duration::from_secs(10))
                .expect("committed")
                .elements()
                .iter()
                .map(|e| {
                    (
                        e.partition(),
                        if let Offset::Offset(o) = e.offset() {
                            o
                        } else {
                            0
                        },
                    )
                })
                .collect();
            (0..PARTITIONS)
                .map(|p| {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, p, Duration::from_secs(10))
                        .expect("watermarks");
                    high - committed.get(&p).copied().unwrap_or(0)
                })
                .sum()
        })
        .await
        .expect("query")
    }

    async fn rows(&self) -> (u64, u64) {
        rows_by(&self.postgres, &self.table, "id").await
    }

    /// Waits until `n` distinct rows are stored and everything is committed.
    async fn wait_done(&self, n: u64, live: &mut [&mut Flowgate]) {
        wait_until(
            "every message written and committed",
            RUN_TIMEOUT,
            live,
            async || {
                let (rows, distinct) = self.rows().await;
                let uncommitted = self.uncommitted().await;
                if rows != distinct {
                    Check::Fail(format!("a key stored twice: {rows} rows, {distinct} keys"))
                } else if rows > n {
                    Check::Fail(format!("{rows} rows, more than {n}"))
                } else if rows == n && uncommitted == 0 {
                    Check::Done
                } else {
                    Check::Wait(format!("{rows} rows, {uncommitted} uncommitted"))
                }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restart_and_a_second_consumer_store_every_message_exactly_once() {
    let Some(postgres) = shared_postgres() else {
        return;
    };
    let t = Target::new(&postgres, "kafka_sigkill");
    t.publish(20_000);
    for _ in 0..2 {
        let mut ingest = t.spawn("c1", &["--session-timeout-ms", "3000"]);
        kill_while_holding(&mut ingest, async || {
            t.rows().await.0 > 0 && t.uncommitted().await > 0
        })
        .await;
    }
    // Restarted, and joined by a second member of the group.
    // A short session timeout: the killed members' partitions move soon.
    let mut a = t.spawn("a", &["--session-timeout-ms", "3000"]);
    let mut b = t.spawn("b", &["--session-timeout-ms", "3000"]);
    t.wait_done(20_000, &mut [&mut a, &mut b]).await;
    a.signal("TERM");
    b.signal("TERM");
    let (a, b) = (a.wait(EXIT_TIMEOUT).await, b.wait(EXIT_TIMEOUT).await);
    a.assert_code(0);
    b.assert_code(0);
    let (ra, rb) = (a.report(), b.report());
    ra.assert_clean();
    rb.assert_clean();
    assert_eq!(ra.dead_lettered + rb.dead_lettered, 0, "{a}\n{b}");
    assert_eq!(t.rows().await, (20_000, 20_000));
    assert_eq!(t.uncommitted().await, 0);
    drop(t.cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_back_pressure_and_nothing_is_lost() {
    let Some(mut pg) = PrivatePostgres::start() else {
        return;
    };
    let t = Target::new(&pg.url(), "kafka_outage");
    t.publish(5_000);
    // The default session timeout (10 s) against heartbeats every 3.3 s from
    // librdkafka's own thread: no scheduling margin decides the outcome.
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
    // Messages arrive while the sink is down, for longer than the session
    // timeout (10 s): the reader keeps polling while the writes are retried,
    // so the consumer keeps its partitions and reads nothing twice.
    t.publish(5_000);
    tokio::time::sleep(Duration::from_secs(12)).await;
    pg.start_again();
    t.wait_done(10_000, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert!(report.retries > 0, "the outage was retried: {done}");
    assert_eq!(report.dead_lettered, 0, "{done}");
    assert_eq!(report.received, 10_000, "nothing read twice: {done}");
}

#[test]
fn flags_that_do_not_apply_to_kafka_are_refused() {
    for (extra, flag) in [
        (&["--stream", "s"][..], "--stream"),
        (&["--consumer", "x"][..], "--consumer"),
        (&["--claim-idle-ms", "100"][..], "--claim-idle-ms"),
        (&["--dead-letter-stream", "d"][..], "--dead-letter-stream"),
        (&["--hung-after-ms", "5"][..], "--hung-after-ms"),
        (&["--max-deliveries", "5"][..], "--max-deliveries"),
        (&["--shards", "2"][..], "--shards"),
        (&["--subject", "a.b"][..], "--subject"),
        (&["--ack-wait-ms", "5"][..], "--ack-wait-ms"),
        (
            &["--progress-interval-ms", "5"][..],
            "--progress-interval-ms",
        ),
        (&["--dead-letter-subject", "d"][..], "--dead-letter-subject"),
        (&["--redis", "redis://127.0.0.1:1/"][..], "--redis"),
        (&["--nats", "nats://127.0.0.1:1"][..], "--nats"),
        (&["--messages", "5"][..], "--messages"),
    ] {
        let mut args = vec![
            "ingest",
            "--kafka",
            "127.0.0.1:1",
            "--topic",
            "t",
            "--group",
            "g",
        ];
        args.extend_from_slice(extra);
        let done = run_flowgate("flags", args, RUN_TIMEOUT);
        done.assert_code(2);
        done.assert_stderr_has(flag);
    }
    for args in [
        &["ingest", "--topic", "t"][..],
        &["ingest", "--session-timeout-ms", "5000"][..],
        &["ingest", "--dead-letter-topic", "d"][..],
        &["ingest", "--kafka", "127.0.0.1:1", "--topic", "t"][..],
        &[
            "ingest",
            "--kafka",
            "127.0.0.1:1",
            "--topic",
            "t",
            "--group",
            "g",
            "--session-timeout-ms",
            "0",
        ][..],
        &["publish", "--kafka", "127.0.0.1:1"][..],
        &[
            "publish",
            "--kafka",
            "127.0.0.1:1",
            "--topic",
            "t",
            "--stream",
            "s",
        ][..],
    ] {
        run_flowgate("flags", args, RUN_TIMEOUT).assert_code(2);
    }
}

#[test]
fn unreachable_brokers_and_a_missing_topic_fail_at_once_naming_them() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let dir = TempDir::new("unreachable");
    let db = dir.path().join("out.sqlite");
    let ingest = |brokers: &str, topic: &str| {
        run_flowgate(
            "unreachable",
            [
                "ingest",
                "--kafka",
                brokers,
                "--topic",
                topic,
                "--group",
                "g",
                "--sqlite",
                db.to_str().unwrap(),
            ],
            RUN_TIMEOUT,
        )
    };
    let done = ingest(&brokers, "t");
    done.assert_code(1);
    done.assert_error_has(&brokers);

    let cluster = MockCluster::new(1).expect("mock cluster");
    let done = ingest(&cluster.bootstrap_servers(), "no-such-topic");
    done.assert_code(1);
    done.assert_error_has("no-such-topic");
}
