//! The Redis Streams source against a real redis-server. `dev/test.sh` starts
//! one and sets `FLOWGATE_TEST_REDIS_URL`; without it these tests skip, except
//! under `CI=true`, where they fail.
//!
//! Redis measures idle time on its own clock, so the claim tests use short
//! real durations and assert outcomes, never timings.

use std::collections::HashSet;
use std::time::Duration;

use flowgate_redis::{BuildError, Delivery, RedisStreamSource, SourceError};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

fn redis_url() -> Option<String> {
    match std::env::var("FLOWGATE_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "FLOWGATE_TEST_REDIS_URL is not set; under CI=true this test must not skip (run dev/test.sh)"
            )
        }
        Err(_) => {
            eprintln!("skipped: FLOWGATE_TEST_REDIS_URL is not set (dev/test.sh sets it)");
            None
        }
    }
}

/// A stream name of its own per test.
fn stream(name: &str) -> String {
    format!("test:{name}:{}", std::process::id())
}

async fn connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn publish(conn: &mut MultiplexedConnection, stream: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id: String = conn
            .xadd(
                stream,
                "*",
                &[("n", i.to_string()), ("body", format!("message {i}"))],
            )
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn pending(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> usize {
    let reply: redis::streams::StreamPendingReply = conn.xpending(stream, group).await.unwrap();
    reply.count()
}

async fn next(source: &mut RedisStreamSource) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the stream goes on")
        .expect("no error")
}

#[tokio::test]
async fn every_message_is_delivered_and_acked_in_batches() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("deliver");
    let ids = publish(&mut conn, &stream, 300).await;
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .batch_size(64)
        .connect()
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut acks = Vec::new();
    for _ in 0..300 {
        let delivery = next(&mut source).await;
        assert_eq!(delivery.deliveries(), 1);
        assert!(delivery.field("body").unwrap().starts_with(b"message "));
        seen.push(delivery.id().to_owned());
        acks.push(tokio::spawn(delivery.ack()));
    }
    assert_eq!(seen, ids, "in stream order");
    for ack in acks {
        ack.await.unwrap().unwrap();
    }
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
    assert_eq!(source.acker().acked(), 300);
    assert_eq!(source.stats().read, 300);
}

#[tokio::test]
async fn a_restarted_consumer_gets_its_unacked_messages_again() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("restart");
    let ids = publish(&mut conn, &stream, 10).await;
    {
        let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
            .connect()
            .await
            .unwrap();
        for i in 0..10 {
            let delivery = next(&mut source).await;
            if i % 2 == 0 {
                delivery.ack().await.unwrap();
            } // odd ones are dropped: "crashed" before their write
        }
    }
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .connect()
        .await
        .unwrap();
    let mut again = Vec::new();
    for _ in 0..5 {
        let delivery = next(&mut source).await;
        assert_eq!(delivery.deliveries(), 2);
        again.push(delivery.id().to_owned());
        delivery.ack().await.unwrap();
    }
    let odd: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(again, odd);
    assert_eq!(source.stats().recovered, 5);
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn a_dead_consumers_messages_are_claimed_after_the_idle_time() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("claim");
    let ids = publish(&mut conn, &stream, 20).await;
    {
        let mut dead = RedisStreamSource::builder(&url, &stream, "g", "dead")
            .connect()
            .await
            .unwrap();
        for _ in 0..20 {
            drop(next(&mut dead).await); // read, never acked: then the process "dies"
        }
    }
    let mut heir = RedisStreamSource::builder(&url, &stream, "g", "heir")
        .claim_idle(Duration::from_millis(300))
        .claim_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut claimed = Vec::new();
    for _ in 0..20 {
        let delivery = next(&mut heir).await;
        assert_eq!(delivery.deliveries(), 2);
        claimed.push(delivery.id().to_owned());
        delivery.ack().await.unwrap();
    }
    claimed.sort();
    assert_eq!(claimed, ids);
    assert_eq!(heir.stats().claimed, 20);
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_stream() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("poison");
    let ids = publish(&mut conn, &stream, 1).await;
    // Delivered twice without an ack (two "crashes").
    for round in 1..=2 {
        let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
            .max_deliveries(2)
            .connect()
            .await
            .unwrap();
        assert_eq!(next(&mut source).await.deliveries(), round);
    }
    // The third delivery would exceed max_deliveries: dead-lettered instead.
    let source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .max_deliveries(2)
        .connect()
        .await
        .unwrap();
    let dead = format!("{stream}:dead");
    let mut entries = redis::streams::StreamRangeReply::default();
    for _ in 0..100 {
        entries = conn.xrange_all(&dead).await.unwrap();
        if !entries.ids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(entries.ids.len(), 1);
    let entry = &entries.ids[0];
    assert_eq!(
        entry.get::<String>("flowgate-original-id"),
        Some(ids[0].clone())
    );
    assert_eq!(entry.get::<u64>("flowgate-deliveries"), Some(3));
    assert_eq!(entry.get::<String>("body"), Some("message 0".to_owned()));
    assert_eq!(
        pending(&mut conn, &stream, "g").await,
        0,
        "acked when moved"
    );
    assert_eq!(source.stats().dead_lettered, 1);
}

#[tokio::test]
async fn two_consumers_in_one_group_split_the_stream() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("split");
    let ids = publish(&mut conn, &stream, 400).await;
    let mut a = RedisStreamSource::builder(&url, &stream, "g", "a")
        .batch_size(10)
        .block(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut b = RedisStreamSource::builder(&url, &stream, "g", "b")
        .batch_size(10)
        .block(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let (mut seen_a, mut seen_b) = (HashSet::new(), HashSet::new());
    while seen_a.len() + seen_b.len() < 400 {
        tokio::select! {
            Some(Ok(d)) = a.next() => { seen_a.insert(d.id().to_owned()); d.ack().await.unwrap(); }
            Some(Ok(d)) = b.next() => { seen_b.insert(d.id().to_owned()); d.ack().await.unwrap(); }
        }
    }
    assert!(seen_a.is_disjoint(&seen_b), "no message went to both");
    assert!(
        !seen_a.is_empty() && !seen_b.is_empty(),
        "both took a share"
    );
    let all: HashSet<String> = seen_a.union(&seen_b).cloned().collect();
    assert_eq!(all, ids.into_iter().collect());
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn reading_pauses_at_max_in_flight() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("bound");
    publish(&mut conn, &stream, 30).await;
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .batch_size(5)
        .max_in_flight(10)
        .connect()
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(next(&mut source).await);
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), source.next())
            .await
            .is_err(),
        "ten deliveries out: no eleventh"
    );
    // Acking (or dropping) frees room.
    for delivery in held.drain(..5) {
        delivery.ack().await.unwrap();
    }
    for _ in 0..5 {
        held.push(next(&mut source).await);
    }
    // Of the 30 messages, 15 were read; the rest were never read.
    let group_info: redis::streams::StreamInfoGroupsReply =
        conn.xinfo_groups(&stream).await.unwrap();
    assert_eq!(group_info.groups[0].pending, 10);
}

#[tokio::test]
async fn stop_ends_the_stream_and_leaves_unacked_messages_pending() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("stop");
    publish(&mut conn, &stream, 5).await;
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .block(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let first = next(&mut source).await;
    let stop = source.stop_handle();
    stop.stop();
    assert!(stop.is_stopped());
    // Whatever was read before the stop is still delivered; then the end.
    let mut rest = Vec::new();
    while let Some(delivery) = tokio::time::timeout(Duration::from_secs(5), source.next())
        .await
        .unwrap()
    {
        rest.push(delivery.unwrap());
    }
    first.ack().await.unwrap();
    source.acker().close().await;
    drop(rest); // never written: left pending for the next consumer
    assert_eq!(pending(&mut conn, &stream, "g").await, 4);
}

#[tokio::test]
async fn invalid_settings_are_refused_before_connecting() {
    let refused = |r: Result<RedisStreamSource, SourceError>| match r {
        Err(SourceError::Build(err)) => err,
        other => panic!("expected a build error, got {other:?}"),
    };
    let url = "redis://127.0.0.1:1/";
    assert!(matches!(
        refused(
            RedisStreamSource::builder("http://nope", "s", "g", "c")
                .connect()
                .await
        ),
        BuildError::InvalidUrl(_)
    ));
    assert!(matches!(
        refused(
            RedisStreamSource::builder(url, "", "g", "c")
                .connect()
                .await
        ),
        BuildError::EmptyName("stream")
    ));
    assert!(matches!(
        refused(
            RedisStreamSource::builder(url, "s", "g", "c")
                .batch_size(0)
                .connect()
                .await
        ),
        BuildError::ZeroBatchSize
    ));
    assert!(matches!(
        refused(
            RedisStreamSource::builder(url, "s", "g", "c")
                .batch_size(10)
                .max_in_flight(5)
                .connect()
                .await
        ),
        BuildError::InFlightBelowBatchSize { .. }
    ));
    assert!(matches!(
        refused(
            RedisStreamSource::builder(url, "s", "g", "c")
                .max_deliveries(0)
                .connect()
                .await
        ),
        BuildError::ZeroMaxDeliveries
    ));
    assert!(matches!(
        refused(
            RedisStreamSource::builder(url, "s", "g", "c")
                .claim_idle(Duration::ZERO)
                .connect()
                .await
        ),
        BuildError::ZeroClaimIdle
    ));
    // Valid settings, nothing listening: a (transient) Redis error.
    let err = RedisStreamSource::builder(url, "s", "g", "c")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Redis(_)), "{err}");
    assert!(err.is_transient());
}
