//! The Redis Streams source against a real redis-server. `dev/test.sh` starts
//! one and sets `FLOWGATE_TEST_REDIS_URL`; without it these tests skip, except
//! under `CI=true`, where they fail.
//!
//! Redis measures idle time on its own clock, so the claim tests use short
//! real durations and assert outcomes, never timings.

use std::collections::HashSet;
use std::time::Duration;

use flowgate_redis::{BuildError, Delivery, RedisStreamSource, SourceBuilder, SourceError};
use futures_util::{Stream, StreamExt};
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
    let mut most_ready = 0;
    for _ in 0..300 {
        let delivery = next(&mut source).await;
        // The size hint counts the rest of the read batch: read, not yet
        // handed out.
        let (ready, _) = source.size_hint();
        assert!(seen.len() + 1 + ready <= source.stats().read as usize);
        most_ready = most_ready.max(ready);
        assert_eq!(delivery.deliveries(), 1);
        assert!(delivery.field("body").unwrap().starts_with(b"message "));
        seen.push(delivery.id().to_owned());
        acks.push(tokio::spawn(delivery.ack()));
    }
    assert_eq!(seen, ids, "in stream order");
    assert!(
        most_ready > 0,
        "a read batch of 64 is handed out one by one"
    );
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
    let mut want = ids.clone();
    want.sort();
    assert_eq!(claimed, want);
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
        entry.get::<String>("flowgate-reason").as_deref(),
        Some(
            "delivered 3 times, more than max_deliveries 2: its consumers died or hung while processing it"
        )
    );
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
    async fn refused(builder: SourceBuilder) -> BuildError {
        match builder.connect().await {
            Err(SourceError::Build(err)) => err,
            other => panic!("expected a build error, got {other:?}"),
        }
    }
    let url = "redis://127.0.0.1:1/";
    let valid = || RedisStreamSource::builder(url, "s", "g", "c");
    assert!(matches!(
        refused(RedisStreamSource::builder("http://nope", "s", "g", "c")).await,
        BuildError::InvalidUrl(_)
    ));
    assert!(matches!(
        refused(RedisStreamSource::builder(url, "", "g", "c")).await,
        BuildError::EmptyName("stream")
    ));
    assert!(matches!(
        refused(valid().batch_size(0)).await,
        BuildError::ZeroBatchSize
    ));
    assert!(matches!(
        refused(valid().batch_size(10).max_in_flight(5)).await,
        BuildError::InFlightBelowBatchSize { .. }
    ));
    assert!(matches!(
        refused(valid().max_deliveries(0)).await,
        BuildError::ZeroMaxDeliveries
    ));
    assert!(matches!(
        refused(valid().claim_idle(Duration::ZERO)).await,
        BuildError::ZeroClaimIdle
    ));
    assert!(matches!(
        refused(valid().lease_renewal(Duration::ZERO)).await,
        BuildError::ZeroLeaseRenewal
    ));
    match refused(
        valid()
            .claim_idle(Duration::from_secs(1))
            .lease_renewal(Duration::from_secs(1)),
    )
    .await
    {
        err @ BuildError::LeaseRenewalNotBelowClaimIdle { .. } => {
            assert_eq!(
                err.to_string(),
                "lease_renewal (1s) must be shorter than claim_idle (1s)"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        refused(valid().connect_timeout(Duration::ZERO)).await,
        BuildError::ZeroConnectTimeout
    ));
    // Valid settings, nothing listening: a (transient) connect error.
    let err = valid().connect().await.unwrap_err();
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    assert!(err.is_transient());
}

// ===== dead letters, leases, claims, errors =====

/// The entries of the dead-letter stream, with raw field names and values.
type RawEntry = (String, Vec<(Vec<u8>, Vec<u8>)>);

async fn dead_letters(conn: &mut MultiplexedConnection, stream: &str) -> Vec<RawEntry> {
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(format!("{stream}:dead"))
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(id, items)| {
            let pairs = items
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            (id, pairs)
        })
        .collect()
}

/// Waits (10 s at most) until the dead-letter stream has `n` entries.
async fn wait_for_dead_letters(
    conn: &mut MultiplexedConnection,
    stream: &str,
    n: usize,
) -> Vec<RawEntry> {
    for _ in 0..500 {
        let entries = dead_letters(conn, stream).await;
        if entries.len() >= n {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} dead letters after 10 s")
}

fn field(entry: &RawEntry, name: &str) -> Option<String> {
    entry
        .1
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// `(id, consumer, idle ms, deliveries)` of every pending entry.
async fn pending_details(
    conn: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> Vec<(String, String, u64, u64)> {
    redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .query_async(conn)
        .await
        .unwrap()
}

/// Polls `check` every 20 ms, for 20 s at most.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 20 s: {what}")
}

async fn xadd_raw(conn: &mut MultiplexedConnection, stream: &str, items: &[&[u8]]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    for item in items {
        cmd.arg(*item);
    }
    cmd.query_async(conn).await.unwrap()
}

#[tokio::test]
async fn unreadable_and_deleted_entries_are_dead_lettered_while_the_rest_flows() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("unreadable");
    let good1 = xadd_raw(&mut conn, &stream, &[b"seq", b"1", b"body", b"a"]).await;
    let bad = xadd_raw(
        &mut conn,
        &stream,
        &[b"\xff\xfe", b"x", b"seq", b"5", b"body", b"b"],
    )
    .await;
    let good2 = xadd_raw(&mut conn, &stream, &[b"seq", b"2", b"body", b"c"]).await;
    let good3 = xadd_raw(&mut conn, &stream, &[b"seq", b"3", b"body", b"d"]).await;

    // First run: the unreadable entry is dead-lettered at once, the others
    // are delivered (and "crash" unacked).
    {
        let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
            .connect()
            .await
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(next(&mut source).await.id().to_owned());
        }
        assert_eq!(ids, [good1.clone(), good2.clone(), good3.clone()]);
        assert_eq!(source.stats().unreadable, 1);
        assert_eq!(source.stats().read, 3);
    }
    let dead = wait_for_dead_letters(&mut conn, &stream, 1).await;
    assert_eq!(dead.len(), 1);
    let entry = &dead[0];
    assert_eq!(field(entry, "flowgate-original-id"), Some(bad.clone()));
    assert_eq!(field(entry, "flowgate-deliveries").as_deref(), Some("1"));
    let reason = field(entry, "flowgate-reason").unwrap();
    assert!(reason.contains("not UTF-8"), "{reason}");
    assert!(
        entry.1.contains(&(b"\xff\xfe".to_vec(), b"x".to_vec())),
        "the original fields, as raw bytes: {:?}",
        entry.1
    );
    assert_eq!(field(entry, "seq").as_deref(), Some("5"));
    assert_eq!(field(entry, "body").as_deref(), Some("b"));

    // good2 is deleted while pending; the restarted consumer recovers the
    // others and records the deleted one.
    let _: i64 = conn.xdel(&stream, &[&good2]).await.unwrap();
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .connect()
        .await
        .unwrap();
    let a = next(&mut source).await;
    let b = next(&mut source).await;
    assert_eq!([a.id(), b.id()], [good1.as_str(), good3.as_str()]);
    assert_eq!(a.deliveries(), 2);
    a.ack().await.unwrap();
    b.ack().await.unwrap();
    let dead = wait_for_dead_letters(&mut conn, &stream, 2).await;
    let deleted = &dead[1];
    assert_eq!(field(deleted, "flowgate-original-id"), Some(good2));
    let reason = field(deleted, "flowgate-reason").unwrap();
    assert!(reason.contains("deleted from the stream"), "{reason}");
    assert_eq!(source.stats().deleted, 1);
    assert_eq!(source.stats().recovered, 2);
    assert_eq!(pending(&mut conn, &stream, "g").await, 0, "nothing stalls");
}

#[tokio::test]
async fn a_deleted_entry_found_by_a_takeover_is_recorded() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("deleted-claim");
    let ids = publish(&mut conn, &stream, 3).await;
    {
        let mut dead = RedisStreamSource::builder(&url, &stream, "g", "dead")
            .connect()
            .await
            .unwrap();
        for _ in 0..3 {
            drop(next(&mut dead).await);
        }
    }
    let _: i64 = conn.xdel(&stream, &[&ids[1]]).await.unwrap();
    let mut heir = RedisStreamSource::builder(&url, &stream, "g", "heir")
        .claim_idle(Duration::from_millis(300))
        .claim_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut got = vec![next(&mut heir).await, next(&mut heir).await];
    got.sort_by(|a, b| a.id().cmp(b.id()));
    assert_eq!(
        [got[0].id(), got[1].id()],
        [ids[0].as_str(), ids[2].as_str()]
    );
    for d in got {
        d.ack().await.unwrap();
    }
    let dead = wait_for_dead_letters(&mut conn, &stream, 1).await;
    assert_eq!(
        field(&dead[0], "flowgate-original-id"),
        Some(ids[1].clone())
    );
    assert!(
        field(&dead[0], "flowgate-reason")
            .unwrap()
            .contains("deleted")
    );
    eventually("the deletion is counted", || heir.stats().deleted == 1).await;
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn a_live_consumer_keeps_its_leases_and_loses_them_when_it_is_gone() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("lease");
    let ids = publish(&mut conn, &stream, 10).await;
    let claim_idle = Duration::from_secs(2);
    let mut holder = RedisStreamSource::builder(&url, &stream, "g", "holder")
        .claim_idle(claim_idle)
        .connect()
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(next(&mut holder).await);
    }
    let mut rival = RedisStreamSource::builder(&url, &stream, "g", "rival")
        .claim_idle(claim_idle)
        .claim_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    // Four times claim_idle, the rival claiming all the while: nothing.
    let got = tokio::time::timeout(claim_idle * 4, rival.next()).await;
    assert!(got.is_err(), "the rival received {got:?}");
    let pending = pending_details(&mut conn, &stream, "g").await;
    assert_eq!(pending.len(), 10);
    for (_, consumer, _, deliveries) in &pending {
        assert_eq!(consumer, "holder");
        assert_eq!(*deliveries, 1, "renewals count no delivery");
    }
    assert!(holder.stats().lease_renewals >= 1);
    assert_eq!(holder.stats().held, 10);
    assert_eq!(rival.stats().claimed, 0);

    // The holder goes away (no more renewals): the rival takes over.
    drop(held);
    drop(holder);
    let mut taken = Vec::new();
    for _ in 0..10 {
        let delivery = tokio::time::timeout(Duration::from_secs(30), rival.next())
            .await
            .expect("taken over within 30 s")
            .unwrap()
            .unwrap();
        assert_eq!(delivery.deliveries(), 2);
        taken.push(delivery.id().to_owned());
        delivery.ack().await.unwrap();
    }
    let taken: HashSet<String> = taken.into_iter().collect();
    assert_eq!(taken, ids.into_iter().collect());
    assert_eq!(rival.stats().claimed, 10);
}

#[tokio::test]
async fn a_consumer_that_lost_its_lease_does_not_steal_it_back() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("stolen");
    let ids = publish(&mut conn, &stream, 3).await;
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "slow")
        .claim_idle(Duration::from_secs(2))
        .lease_renewal(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next(&mut source).await);
    }
    // As if "slow" had stalled past claim_idle and "fast" took one over.
    let _: Vec<String> = redis::cmd("XCLAIM")
        .arg(&stream)
        .arg("g")
        .arg("fast")
        .arg(0)
        .arg(&ids[1])
        .arg("JUSTID")
        .query_async(&mut conn)
        .await
        .unwrap();
    eventually("the renewal notices the lost lease", || {
        source.stats().leases_lost == 1
    })
    .await;
    let renewals = source.stats().lease_renewals;
    eventually("two more renewals", || {
        source.stats().lease_renewals >= renewals + 2
    })
    .await;
    let owners: Vec<(String, String)> = pending_details(&mut conn, &stream, "g")
        .await
        .into_iter()
        .map(|(id, consumer, _, _)| (id, consumer))
        .collect();
    assert_eq!(
        owners,
        [
            (ids[0].clone(), "slow".to_owned()),
            (ids[1].clone(), "fast".to_owned()),
            (ids[2].clone(), "slow".to_owned()),
        ]
    );
    assert_eq!(source.stats().leases_lost, 1, "counted once");
    // Its late ack still removes the message.
    for delivery in held {
        delivery.ack().await.unwrap();
    }
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn a_consumer_never_receives_a_message_it_holds_or_just_acked() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("claim-race");
    let n = 600;
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c")
        .block(Duration::from_millis(50))
        .batch_size(20)
        .max_in_flight(200)
        .claim_idle(Duration::from_secs(10))
        .claim_interval(Duration::from_millis(1))
        .ack_batch(8, Duration::from_millis(1))
        .connect()
        .await
        .unwrap();
    // Another client keeps ageing this consumer's pending entries (as if
    // its leases had run out), so its own claims find the messages it holds
    // and is acking, all the time.
    let ager = {
        let mut conn = connection(&url).await;
        let stream = stream.clone();
        tokio::spawn(async move {
            loop {
                let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg("g")
                    .arg("-")
                    .arg("+")
                    .arg(200)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                if !pending.is_empty() {
                    let mut cmd = redis::cmd("XCLAIM");
                    cmd.arg(&stream).arg("g").arg("c").arg(0);
                    for (id, _, _, _) in &pending {
                        cmd.arg(id);
                    }
                    cmd.arg("IDLE").arg(100_000).arg("JUSTID");
                    let _: Vec<String> = cmd.query_async(&mut conn).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut seen = HashSet::new();
    let mut acks = Vec::new();
    // The first 20 are held until a claim has found held messages for sure.
    publish(&mut conn, &stream, 20).await;
    let mut first = Vec::new();
    for _ in 0..20 {
        let delivery = next(&mut source).await;
        assert_eq!(delivery.deliveries(), 1);
        seen.insert(delivery.id().to_owned());
        first.push(delivery);
    }
    eventually("a claim finds held messages", || source.stats().skipped > 0).await;
    let pending_now = pending_details(&mut conn, &stream, "g").await;
    assert_eq!(pending_now.len(), 20);
    for (id, consumer, _, deliveries) in &pending_now {
        assert_eq!(consumer, "c");
        assert_eq!(*deliveries, 1, "{id}: claimed by its holder, yet counted");
    }
    // Then, while the first are acked, the rest comes in and is acked at
    // once or a little later, all during claims.
    for held in first {
        acks.push(tokio::spawn(held.ack()));
    }
    publish(&mut conn, &stream, n - 20).await;
    for i in 20..n {
        let delivery = next(&mut source).await;
        assert!(
            seen.insert(delivery.id().to_owned()),
            "{} received twice",
            delivery.id()
        );
        assert_eq!(delivery.deliveries(), 1, "own claims count no delivery");
        let delay = Duration::from_micros((i as u64 * 7919) % 3000);
        acks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            delivery.ack().await
        }));
    }
    for ack in acks {
        ack.await.unwrap().unwrap();
    }
    // Nothing more comes, even though the claims go on.
    let more = tokio::time::timeout(Duration::from_millis(500), source.next()).await;
    assert!(more.is_err(), "received {more:?}");
    ager.abort();
    assert_eq!(seen.len(), n);
    assert_eq!(source.stats().claimed, 0);
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn a_dropped_delivery_is_delivered_again_after_claim_idle() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("dropped");
    let ids = publish(&mut conn, &stream, 1).await;
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .claim_idle(Duration::from_millis(300))
        .claim_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    drop(next(&mut source).await); // processing failed
    let again = next(&mut source).await;
    assert_eq!(again.id(), ids[0]);
    assert_eq!(again.deliveries(), 2);
    again.ack().await.unwrap();
    assert_eq!(source.stats().claimed, 1);
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn ack_token_dead_letter_writes_the_reason_and_the_original_id_and_acks() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("rejected");
    let ids = publish(&mut conn, &stream, 3).await;
    let mut source = RedisStreamSource::builder(&url, &stream, "g", "c1")
        .connect()
        .await
        .unwrap();
    let (message, token) = next(&mut source).await.into_parts();
    assert_eq!(token.id(), ids[0]);
    token
        .dead_letter(&message, "seq is not a number")
        .await
        .unwrap();
    let dead = wait_for_dead_letters(&mut conn, &stream, 1).await;
    assert_eq!(dead.len(), 1);
    let entry = &dead[0];
    assert_eq!(field(entry, "flowgate-original-id"), Some(ids[0].clone()));
    assert_eq!(field(entry, "flowgate-deliveries").as_deref(), Some("1"));
    assert_eq!(
        field(entry, "flowgate-reason").as_deref(),
        Some("seq is not a number")
    );
    assert_eq!(field(entry, "n").as_deref(), Some("0"));
    assert_eq!(field(entry, "body").as_deref(), Some("message 0"));
    assert_eq!(source.stats().rejected, 1);

    // Delivery::dead_letter does the same in one call.
    next(&mut source)
        .await
        .dead_letter("no mapping for it")
        .await
        .unwrap();
    let dead = wait_for_dead_letters(&mut conn, &stream, 2).await;
    assert_eq!(
        field(&dead[1], "flowgate-original-id"),
        Some(ids[1].clone())
    );

    // The content of another message is refused; nothing is written.
    let third = next(&mut source).await;
    let (_, token) = third.into_parts();
    let err = token.dead_letter(&message, "wrong").await.unwrap_err();
    assert!(matches!(err, SourceError::WrongMessage { .. }), "{err}");
    assert!(!err.is_transient());
    assert_eq!(dead_letters(&mut conn, &stream).await.len(), 2);
    assert_eq!(
        pending(&mut conn, &stream, "g").await,
        1,
        "the third stays pending"
    );
    assert_eq!(source.stats().rejected, 2);
}

#[tokio::test]
async fn a_refused_connection_fails_fast_naming_the_server() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/3");
    let start = std::time::Instant::now();
    let err = RedisStreamSource::builder(&url, "s", "g", "c")
        .connect()
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("cannot connect to Redis at 127.0.0.1:{port}/3")),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    let source = std::error::Error::source(&err).expect("the cause is kept");
    assert!(
        source.to_string().to_lowercase().contains("refused"),
        "{source}"
    );
    assert!(matches!(err, SourceError::Connect { .. }));
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_destroyed_group_ends_the_stream_with_an_error_naming_it() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("destroyed");
    publish(&mut conn, &stream, 1).await;
    let mut source = RedisStreamSource::builder(&url, &stream, "doomed", "c1")
        .block(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    next(&mut source).await.ack().await.unwrap();
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&stream)
        .arg("doomed")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("an item within 10 s")
        .expect("an error item before the end")
        .unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("NOGROUP"), "{shown}");
    assert!(shown.contains(&format!("{stream:?}")), "{shown}");
    assert!(shown.contains("\"doomed\""), "{shown}");
    assert!(!err.is_transient());
    assert!(matches!(err, SourceError::Redis { .. }));
    let end = tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("the end within 10 s");
    assert!(end.is_none(), "the stream ends: {end:?}");
}

#[tokio::test]
async fn a_key_that_is_not_a_stream_is_refused_naming_it() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let key = stream("not-a-stream");
    let _: () = conn.set(&key, "hello").await.unwrap();
    let err = RedisStreamSource::builder(&url, &key, "g", "c1")
        .connect()
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("WRONGTYPE"), "{shown}");
    assert!(shown.contains(&format!("{key:?}")), "{shown}");
    assert!(shown.starts_with("XGROUP CREATE failed"), "{shown}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn messages_read_ahead_for_a_slow_caller_are_leased_too() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("read-ahead");
    let ids = publish(&mut conn, &stream, 10).await;
    let claim_idle = Duration::from_secs(2);
    // Batches of 5: the first fills the hand-over buffer, the second waits
    // in the reader for the caller, who does not poll for a while.
    let mut slow = RedisStreamSource::builder(&url, &stream, "g", "slow")
        .batch_size(5)
        .max_in_flight(20)
        .claim_idle(claim_idle)
        .connect()
        .await
        .unwrap();
    for _ in 0..500 {
        if pending(&mut conn, &stream, "g").await == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending(&mut conn, &stream, "g").await, 10, "all read ahead");
    let mut rival = RedisStreamSource::builder(&url, &stream, "g", "rival")
        .claim_idle(claim_idle)
        .claim_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let got = tokio::time::timeout(claim_idle * 4, rival.next()).await;
    assert!(got.is_err(), "the rival received {got:?}");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let delivery = next(&mut slow).await;
        assert_eq!(delivery.deliveries(), 1);
        seen.push(delivery.id().to_owned());
        delivery.ack().await.unwrap();
    }
    assert_eq!(seen, ids);
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

/// The name a running consumer gives its command connection (documented on
/// `SourceBuilder::hung_after`).
fn presence_name(stream: &str, group: &str, consumer: &str) -> String {
    let hex = |s: &str| -> String { s.bytes().map(|b| format!("{b:02x}")).collect() };
    format!("flowgate:{}:{}:{}", hex(stream), hex(group), hex(consumer))
}

/// Creates group `g` and reads every message of `stream` as `consumer` on a
/// connection named as a running consumer names it, which then renews no
/// lease: a consumer that is alive (connected) but silent. Dropping the
/// connection is its death.
async fn read_as_a_silent_consumer(
    url: &str,
    stream: &str,
    consumer: &str,
) -> MultiplexedConnection {
    let mut conn = connection(url).await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("g")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(presence_name(stream, "g", consumer))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg(consumer)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn a_connected_consumer_that_renews_nothing_keeps_its_messages_until_hung_after_or_it_is_gone()
 {
    // "slow" stands for a consumer starved of CPU: it read messages and is
    // still connected (its presence name is set), but renews no lease. A
    // second consumer with a short claim_idle keeps scanning for takeovers.
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("presence");
    let ids = publish(&mut conn, &stream, 10).await;
    let slow = read_as_a_silent_consumer(&url, &stream, "slow").await;

    let mut heir = RedisStreamSource::builder(&url, &stream, "g", "heir")
        .claim_idle(Duration::from_millis(200))
        .claim_interval(Duration::from_millis(50))
        .hung_after(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    // Well past claim_idle (every entry idle far longer than 200 ms, many
    // takeover scans): nothing is taken from a connected consumer. A loaded
    // machine only makes the heir scan less often, never take more.
    let quiet = tokio::time::timeout(Duration::from_secs(2), heir.next()).await;
    assert!(
        quiet.is_err(),
        "nothing taken over from a connected consumer"
    );
    let owners: HashSet<String> = pending_details(&mut conn, &stream, "g")
        .await
        .into_iter()
        .map(|(_, owner, _, _)| owner)
        .collect();
    assert_eq!(owners, HashSet::from(["slow".to_owned()]));

    // The slow consumer dies: its connection goes, and its messages move on.
    drop(slow);
    let mut taken = Vec::new();
    for _ in 0..ids.len() {
        let delivery = next(&mut heir).await;
        assert_eq!(delivery.deliveries(), 2);
        taken.push(delivery.id().to_owned());
        delivery.ack().await.unwrap();
    }
    taken.sort();
    assert_eq!(taken, ids);
    assert_eq!(pending(&mut conn, &stream, "g").await, 0);
}

#[tokio::test]
async fn a_connected_consumer_that_renews_nothing_for_hung_after_loses_its_messages() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream = stream("hung");
    let ids = publish(&mut conn, &stream, 5).await;
    let hung = read_as_a_silent_consumer(&url, &stream, "hung").await;
    let mut heir = RedisStreamSource::builder(&url, &stream, "g", "heir")
        .claim_idle(Duration::from_millis(200))
        .claim_interval(Duration::from_millis(50))
        .hung_after(Duration::from_millis(600))
        .connect()
        .await
        .unwrap();
    let mut taken = Vec::new();
    for _ in 0..ids.len() {
        let delivery = next(&mut heir).await;
        taken.push(delivery.id().to_owned());
        delivery.ack().await.unwrap();
    }
    taken.sort();
    assert_eq!(taken, ids, "taken over although still connected: it hung");
    drop(hung);
}

#[tokio::test]
async fn hung_after_below_claim_idle_is_refused() {
    let err = RedisStreamSource::builder("redis://127.0.0.1:1/", "s", "g", "c")
        .claim_idle(Duration::from_secs(2))
        .hung_after(Duration::from_secs(1))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::Build(BuildError::HungAfterBelowClaimIdle { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn ack_all_refuses_the_tokens_of_another_source_and_sends_nothing() {
    let Some(url) = redis_url() else { return };
    let mut conn = connection(&url).await;
    let stream_a = stream("ack-all-a");
    let stream_b = stream("ack-all-b");
    publish(&mut conn, &stream_a, 3).await;
    publish(&mut conn, &stream_b, 1).await;
    let mut a = RedisStreamSource::builder(&url, &stream_a, "g", "c1")
        .connect()
        .await
        .unwrap();
    let mut b = RedisStreamSource::builder(&url, &stream_b, "g", "c1")
        .connect()
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(next(&mut a).await.into_parts().1);
    }
    let foreign = next(&mut b).await.into_parts().1;
    let foreign_id = foreign.id().to_owned();
    tokens.insert(1, foreign);
    let err = a.acker().ack_all(tokens).await.unwrap_err();
    let flowgate::batch::FlushError::Failed(err) = err else {
        panic!("{err:?}")
    };
    match &*err {
        SourceError::ForeignToken {
            id, token_stream, ..
        } => {
            assert_eq!(id, &foreign_id);
            assert_eq!(token_stream, &stream_b);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&stream_b), "{err}");
    assert!(!err.is_transient());
    assert_eq!(pending(&mut conn, &stream_a, "g").await, 3, "nothing acked");
    assert_eq!(pending(&mut conn, &stream_b, "g").await, 1);
    assert_eq!(a.acker().acked(), 0);
    assert_eq!(a.stats().held, 0, "the tokens were dropped: leases ended");
    assert_eq!(b.stats().held, 0);
}
