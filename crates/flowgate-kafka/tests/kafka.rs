//! The Kafka source against librdkafka's mock cluster (three brokers,
//! in-process): commits up to the contiguous acknowledgement, restart,
//! rebalances between two consumers, injected broker and commit errors,
//! dead letters, ordering, the in-flight bound and bad settings.
//!
//! Nothing here waits for a duration to assert: every wait is for a state
//! (a message, a commit) under a generous deadline that only turns a hang
//! into a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flowgate_kafka::rdkafka::ClientConfig;
use flowgate_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use flowgate_kafka::rdkafka::message::{Headers, Message as _};
use flowgate_kafka::rdkafka::mocking::MockCluster;
use flowgate_kafka::rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use flowgate_kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use flowgate_kafka::rdkafka::{Offset, TopicPartitionList};
use flowgate_kafka::{Delivery, KafkaSource, Ordering, SourceBuilder, SourceError, delivery};
use futures_util::StreamExt;

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A hang guard, never a measurement.
const DEADLINE: Duration = Duration::from_secs(60);

fn cluster(topic: &str, partitions: i32) -> Cluster {
    let cluster = MockCluster::new(3).expect("mock cluster");
    cluster.create_topic(topic, partitions, 1).expect("topic");
    cluster
}

/// Produces `n` records `0..n` (value = its number; key `k<i % keys>`) round
/// robin over `partitions`.
async fn produce(
    brokers: &str,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<u32>,
    keys: u32,
) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .create()
        .expect("producer");
    let sends = range.map(|i| {
        let producer = producer.clone();
        let topic = topic.to_owned();
        async move {
            let value = i.to_string();
            let key = format!("k{}", i % keys);
            let record = FutureRecord::to(&topic)
                .payload(&value)
                .key(&key)
                .partition((i % partitions as u32) as i32);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("produced");
        }
    });
    futures_util::future::join_all(sends).await;
}

/// The group's committed offsets, as the cluster has them.
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let tpl = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

fn builder(brokers: &str, topic: &str, group: &str) -> SourceBuilder {
    KafkaSource::builder(brokers, [topic], group)
        .commit_interval(Duration::from_millis(50))
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
}

async fn next(source: &mut KafkaSource) -> Delivery {
    tokio::time::timeout(DEADLINE, source.next())
        .await
        .expect("a message within the deadline")
        .expect("the stream goes on")
        .expect("no error")
}

fn value(delivery: &Delivery) -> u32 {
    std::str::from_utf8(delivery.payload())
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits (polling the cluster) until the group's commits are `want`.
async fn until_committed(brokers: &str, group: &str, topic: &str, want: &BTreeMap<i32, i64>) {
    let partitions = want.len() as i32;
    let start = std::time::Instant::now();
    loop {
        let got = {
            let (b, g, t) = (brokers.to_owned(), group.to_owned(), topic.to_owned());
            tokio::task::spawn_blocking(move || committed(&b, &g, &t, partitions))
                .await
                .unwrap()
        };
        if &got == want {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "commits stayed {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_only_up_to_the_contiguous_acknowledgement() {
    let cluster = cluster("events", 2);
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "events", 2, 0..200, 7).await;
    let mut source = builder(&brokers, "events", "g1").connect().await.unwrap();
    let mut held = None;
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let delivery = next(&mut source).await;
        assert!(
            seen.insert((delivery.partition(), delivery.offset())),
            "handed out twice"
        );
        // Partition 0's offset 10 stays out; everything else is acked.
        if delivery.partition() == 0 && delivery.offset() == 10 {
            held = Some(delivery);
        } else {
            delivery.ack().unwrap();
        }
    }
    // 100 records per partition: offsets 0..100.
    until_committed(
        &brokers,
        "g1",
        "events",
        &BTreeMap::from([(0, 10), (1, 100)]),
    )
    .await;
    held.unwrap().ack().unwrap();
    until_committed(
        &brokers,
        "g1",
        "events",
        &BTreeMap::from([(0, 100), (1, 100)]),
    )
    .await;
    assert_eq!(
        source.committed(),
        BTreeMap::from([(("events".into(), 0), 100), (("events".into(), 1), 100)])
    );
    let stats = source.stats();
    assert_eq!(
        (stats.received, stats.acked, stats.in_flight),
        (200, 200, 0)
    );
    source.acker().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_from_the_commit_and_nothing_before_it() {
    let cluster = cluster("events", 1);
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "events", 1, 0..100, 1).await;
    let mut first = builder(&brokers, "events", "g2").connect().await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..60 {
        let (message, token) = next(&mut first).await.into_parts();
        // 0..40 acked; 40..60 read and never acknowledged (a crash).
        if message.offset < 40 {
            token.ack().unwrap();
        } else {
            tokens.push(token);
        }
    }
    let acker = first.acker().clone();
    // Close first, so that the unresolved tokens cannot be handed out again.
    first.stop_handle().stop();
    acker.close().await;
    let revoked = tokens.into_iter().filter_map(|t| t.ack().err()).count();
    assert_eq!(revoked, 20, "acks after close are refused");
    drop(first);
    assert_eq!(
        committed(&brokers, "g2", "events", 1),
        BTreeMap::from([(0, 40)])
    );

    let mut second = builder(&brokers, "events", "g2").connect().await.unwrap();
    let delivery = next(&mut second).await;
    assert_eq!(delivery.offset(), 40, "reads again from the commit");
    delivery.ack().unwrap();
    for _ in 41..100 {
        next(&mut second).await.ack().unwrap();
    }
    until_committed(&brokers, "g2", "events", &BTreeMap::from([(0, 100)])).await;
    second.acker().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_takes_partitions_over_and_every_message_is_written() {
    let cluster = cluster("events", 4);
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "events", 4, 0..400, 13).await;
    // Writes: (value, by) — a message may be written twice only if its
    // first ack was refused (its partition moved before it).
    let mut first = builder(&brokers, "events", "g3")
        .max_in_flight(20)
        .connect()
        .await
        .unwrap();
    let mut written: Vec<u32> = Vec::new();
    let mut refused = 0;
    // The first consumer reads part of the topic alone.
    for _ in 0..100 {
        let d = next(&mut first).await;
        written.push(value(&d));
        d.ack().unwrap();
    }
    let mut second = builder(&brokers, "events", "g3")
        .max_in_flight(20)
        .connect()
        .await
        .unwrap();
    // Both read until everything is written; the first keeps one message out
    // across the rebalance to exercise the grace (it acks it after).
    let mut out: Option<Delivery> = None;
    let start = std::time::Instant::now();
    let mut distinct = BTreeSet::new();
    distinct.extend(written.iter().copied());
    // One message of the first is always out, acknowledged at the next
    // tick (every 200 ms, however fast messages come): one is likely out
    // when the rebalance revokes its partition, and the revocation waits
    // for it.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    // Until everything is written and the rebalance happened (the first may
    // have read everything before the second joined: the rebalance comes
    // anyway).
    while distinct.len() < 400
        || first.stats().revoked_partitions == 0
        || second.stats().assigned_partitions == 0
    {
        assert!(
            start.elapsed() < DEADLINE,
            "{} of 400 written; {:?}; {:?}",
            distinct.len(),
            first.stats(),
            second.stats()
        );
        tokio::select! {
            Some(d) = first.next() => {
                let d = d.unwrap();
                if out.is_none() {
                    out = Some(d);
                    continue;
                }
                written.push(value(&d));
                distinct.insert(value(&d));
                if d.ack().is_err() { refused += 1; }
            }
            Some(d) = second.next() => {
                let d = d.unwrap();
                written.push(value(&d));
                distinct.insert(value(&d));
                if d.ack().is_err() { refused += 1; }
            }
            _ = tick.tick() => {
                if let Some(d) = out.take() {
                    written.push(value(&d));
                    distinct.insert(value(&d));
                    if d.ack().is_err() { refused += 1; }
                }
            }
        }
    }
    let (s1, s2) = (first.stats(), second.stats());
    assert!(
        s2.assigned_partitions > 0,
        "the second consumer got partitions: {s2:?}"
    );
    assert!(s1.revoked_partitions > 0, "the first gave some up: {s1:?}");
    let duplicates = written.len() - distinct.len();
    // Read again by the new owner: a message acknowledged after its
    // partition moved, or one acknowledged before but whose commit failed.
    // (The mock cluster refuses commits while the group rebalances —
    // RebalanceInProgress —, also the one the revocation makes; a real
    // broker takes it from a member of the current generation.)
    assert!(
        duplicates as u64 <= refused || s1.commit_failures > 0,
        "{duplicates} written twice, {refused} refused acks; {s1:?}; {s2:?}"
    );
    if let Some(d) = out.take() {
        let _ = d.ack();
    }
    let acker = first.acker().clone();
    acker.close().await;
    // The second consumer gets everything once the first left.
    let end: BTreeMap<i32, i64> = (0..4).map(|p| (p, 100)).collect();
    let wait = async {
        loop {
            tokio::select! {
                Some(d) = second.next() => { let _ = d.unwrap().ack(); }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    let got = committed(&brokers, "g3", "events", 4);
                    if got == end { break; }
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("everything committed");
    second.acker().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_errors_and_a_broker_down_are_back_pressure() {
    let cluster = cluster("events", 2);
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "events", 2, 0..100, 3).await;
    let mut source = builder(&brokers, "events", "g4").connect().await.unwrap();
    let mut first = Vec::new();
    let mut seen = BTreeSet::new();
    for _ in 0..50 {
        let d = next(&mut source).await;
        seen.insert(value(&d));
        first.push(d);
    }
    // The next commits fail, then a broker goes down and comes back.
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 4],
    );
    for d in first {
        d.ack().unwrap();
    }
    let start = std::time::Instant::now();
    while source.stats().commit_failures == 0 {
        assert!(
            start.elapsed() < DEADLINE,
            "no commit failed: {:?}",
            source.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A broker goes down mid-run and comes back: the partitions it leads
    // stall (librdkafka reconnects), the others go on, nothing is lost.
    produce(&brokers, "events", 2, 100..200, 3).await;
    let mut reads = 0;
    for _ in 50..100 {
        let d = next(&mut source).await;
        seen.insert(value(&d));
        reads += 1;
        d.ack().unwrap();
    }
    cluster.broker_down(2).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.broker_up(2).unwrap();
    while seen.len() < 200 {
        let d = next(&mut source).await;
        seen.insert(value(&d));
        reads += 1;
        d.ack().unwrap();
    }
    // Read again only after a rebalance (the group coordinator went down
    // with the broker) from the last commit — never otherwise.
    let stats = source.stats();
    assert!(
        reads == 150 || stats.revoked_partitions > 0,
        "{reads} reads for 150 messages: {stats:?}"
    );
    eprintln!("{reads} reads for 150 messages: {stats:?}");
    until_committed(
        &brokers,
        "g4",
        "events",
        &BTreeMap::from([(0, 100), (1, 100)]),
    )
    .await;
    assert!(source.stats().commits > 0);
    source.acker().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letter_topic_with_its_reason() {
    let cluster = cluster("events", 1);
    cluster.create_topic("events.dead", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "events", 1, 0..10, 2).await;
    let mut source = builder(&brokers, "events", "g5").connect().await.unwrap();
    assert_eq!(source.dead_letter_topic(), "events.dead");
    for _ in 0..10 {
        let d = next(&mut source).await;
        if d.offset() == 3 {
            d.dead_letter("not a number we like").await.unwrap();
        } else {
            d.ack().unwrap();
        }
    }
    until_committed(&brokers, "g5", "events", &BTreeMap::from([(0, 10)])).await;
    assert_eq!(source.stats().dead_lettered, 1);
    source.acker().close().await;

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "dead-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&["events.dead"]).unwrap();
    let letter = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        loop {
            assert!(start.elapsed() < DEADLINE, "no dead letter");
            if let Some(m) = reader.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                let headers: BTreeMap<String, String> = m
                    .headers()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
                        )
                    })
                    .collect();
                return (
                    m.payload().unwrap().to_vec(),
                    m.key().unwrap().to_vec(),
                    headers,
                );
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(letter.0, b"3");
    assert_eq!(letter.1, b"k1");
    assert_eq!(letter.2[delivery::headers::REASON], "not a number we like");
    assert_eq!(letter.2[delivery::headers::TOPIC], "events");
    assert_eq!(letter.2[delivery::headers::PARTITION], "0");
    assert_eq!(letter.2[delivery::headers::OFFSET], "3");
    assert_eq!(letter.2[delivery::headers::GROUP], "g5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_order_holds_a_key_back_until_its_message_is_resolved() {
    let cluster = cluster("events", 1);
    let brokers = cluster.bootstrap_servers();
    // Keys k0, k1, k2, k0, k1, k2, …
    produce(&brokers, "events", 1, 0..30, 3).await;
    let mut source = builder(&brokers, "events", "g6")
        .ordering(Ordering::Key)
        .connect()
        .await
        .unwrap();
    // One message per key is out: offsets 0, 1, 2 (k0, k1, k2).
    let first = next(&mut source).await;
    let k1 = next(&mut source).await;
    let k2 = next(&mut source).await;
    let keys = [first.key(), k1.key(), k2.key()];
    assert_eq!(keys, [Some(&b"k0"[..]), Some(&b"k1"[..]), Some(&b"k2"[..])]);
    // Every key has a message out: nothing else is handed out. (An absence:
    // a slow machine can only make this pass.)
    let more = tokio::time::timeout(Duration::from_millis(300), source.next()).await;
    assert!(
        more.is_err(),
        "a fourth message while every key is busy: {more:?}"
    );
    // Resolving k1's message lets k1's next one (offset 4) go.
    k1.ack().unwrap();
    let k1_next = next(&mut source).await;
    assert_eq!((k1_next.key(), k1_next.offset()), (Some(&b"k1"[..]), 4));
    // A nak keeps the key's place: the same message comes back, before
    // k0's next one.
    first.nak(Duration::from_millis(10)).unwrap();
    let again = next(&mut source).await;
    assert_eq!((again.key(), again.offset()), (Some(&b"k0"[..]), 0));
    again.ack().unwrap();
    let k0_next = next(&mut source).await;
    assert_eq!((k0_next.key(), k0_next.offset()), (Some(&b"k0"[..]), 3));
    for d in [k0_next, k1_next, k2] {
        d.ack().unwrap();
    }
    source.acker().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_in_flight_are_held_and_a_resolution_makes_room() {
    let cluster = cluster("events", 2);
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "events", 2, 0..100, 5).await;
    let mut source = builder(&brokers, "events", "g7")
        .max_in_flight(10)
        .connect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..10 {
        out.push(next(&mut source).await);
    }
    // Paused at the bound: nothing more comes while all ten are out. (An
    // absence: a slow machine can only make this pass, never fail.)
    let more = tokio::time::timeout(Duration::from_millis(300), source.next()).await;
    assert!(
        more.is_err(),
        "an eleventh message was handed out: {more:?}"
    );
    assert!(source.stats().in_flight <= 10, "{:?}", source.stats());
    // Meanwhile the reader reads ahead — at most as many more — so that a
    // resolution finds work waiting.
    let start = std::time::Instant::now();
    while source.stats().read_ahead < 10 {
        assert!(
            start.elapsed() < DEADLINE,
            "no read-ahead: {:?}",
            source.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = source.stats();
    assert!(stats.read_ahead <= 11 && stats.in_flight == 10, "{stats:?}");
    out.pop().unwrap().ack().unwrap();
    out.push(next(&mut source).await);
    // Dropping a delivery naks it: it is handed out again.
    let dropped = out.pop().unwrap();
    let (p, o) = (dropped.partition(), dropped.offset());
    drop(dropped);
    let again = next(&mut source).await;
    assert_eq!((again.partition(), again.offset()), (p, o));
    assert_eq!(source.stats().naked, 1);
    source.acker().close().await;
}

#[tokio::test]
async fn a_missing_topic_and_unreachable_brokers_are_named() {
    let cluster = cluster("events", 1);
    let brokers = cluster.bootstrap_servers();
    let err = builder(&brokers, "nope", "g8").connect().await.unwrap_err();
    assert!(
        matches!(&err, SourceError::NoTopic { topic, .. } if topic == "nope"),
        "{err}"
    );
    assert!(err.to_string().contains(&brokers), "{err}");

    let err = builder("127.0.0.1:1", "events", "g8")
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot reach the Kafka brokers 127.0.0.1:1"
    );
    assert!(std::error::Error::source(&err).is_some());

    let err = builder(&brokers, "events", "g8")
        .set("no.such.setting", "1")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Build(_)), "{err}");
}
