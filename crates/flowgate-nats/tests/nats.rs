//! The source against a real nats-server (one per test, see `support`).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use flowgate_nats::{BuildError, Delivery, NatsSource, SourceError, delivery::headers};
use futures_util::{Stream, StreamExt};
use support::{PrivateNats, eventually, pending, publish};

/// The next delivery, failing the test on an `Err` item, the end of the
/// stream, or nothing within a minute.
async fn next(source: &mut NatsSource) -> Delivery {
    match tokio::time::timeout(Duration::from_secs(60), source.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(err))) => panic!("source error: {err}"),
        Ok(None) => panic!("the source ended"),
        Err(_) => panic!("no delivery within a minute"),
    }
}

/// Whether the source yields nothing for `wait` (it stays pending).
async fn quiet(source: &mut NatsSource, wait: Duration) -> bool {
    tokio::time::timeout(wait, source.next()).await.is_err()
}

#[tokio::test]
async fn reads_every_message_and_acks_only_what_is_acked() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 100).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "writers")
        .batch_size(32)
        .connect()
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut tokens = Vec::new();
    let mut most_ready = 0;
    for i in 0..100 {
        let delivery = next(&mut source).await;
        // The size hint counts the rest of the fetched batch (of at most 32).
        let (ready, _) = source.size_hint();
        assert!(ready < 32 && i + 1 + ready <= 100);
        most_ready = most_ready.max(ready);
        assert_eq!(delivery.deliveries(), 1);
        assert_eq!(
            delivery.payload().as_ref(),
            (delivery.stream_sequence() - 1).to_string().as_bytes()
        );
        assert!(delivery.subject().starts_with("events."));
        seen.insert(delivery.stream_sequence());
        if i < 50 {
            delivery.ack().await.unwrap();
        } else {
            let (_message, token) = delivery.into_parts();
            tokens.push(token);
        }
    }
    assert_eq!(seen, (1..=100).collect());
    assert!(most_ready > 0, "a fetched batch is handed out one by one");
    assert_eq!(source.stats().held, 50);
    assert_eq!(pending(&js, "EVENTS", "writers").await, (0, 50));
    source.acker().ack_all(tokens).await.unwrap();
    assert_eq!(source.acker().acked(), 100);
    let stats = source.stats();
    assert_eq!((stats.read, stats.acked, stats.held), (100, 100, 0));
    eventually("the server counts every ack", || async {
        pending(&js, "EVENTS", "writers").await == (0, 0)
    })
    .await;
}

#[tokio::test]
async fn creates_the_stream_from_subjects_and_refuses_a_missing_one_without() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let err = NatsSource::builder(nats.url(), "MISSING", "c")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::NoStream { ref stream, .. } if stream == "MISSING"));
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", nats.port)),
        "{err}"
    );

    let mut source = NatsSource::builder(nats.url(), "ORDERS", "c")
        .subjects(["orders.>"])
        .connect()
        .await
        .unwrap();
    let js = nats.jetstream().await;
    js.publish("orders.1", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let delivery = next(&mut source).await;
    assert_eq!(delivery.subject(), "orders.1");
    delivery.ack().await.unwrap();
    // The dead-letter stream was made for the default subject.
    let dead = js.stream_by_subject("flowgate.dead.ORDERS").await.unwrap();
    assert_eq!(dead, "ORDERS-dead");
    assert_eq!(source.dead_letter_subject(), "flowgate.dead.ORDERS");
}

#[tokio::test]
async fn a_dropped_delivery_is_delivered_again_and_counted() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 1).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .connect()
        .await
        .unwrap();
    let first = next(&mut source).await;
    assert_eq!(first.deliveries(), 1);
    drop(first);
    let again = next(&mut source).await;
    assert_eq!((again.stream_sequence(), again.deliveries()), (1, 2));
    assert_eq!(source.stats().released, 1);
    again.ack().await.unwrap();
}

#[tokio::test]
async fn nak_hands_the_message_back_after_the_delay() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 2).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .connect()
        .await
        .unwrap();
    let first = next(&mut source).await;
    assert_eq!(first.stream_sequence(), 1);
    first.nak(Duration::from_millis(300)).await.unwrap();
    let second = next(&mut source).await;
    assert_eq!(second.stream_sequence(), 2);
    second.ack().await.unwrap();
    let again = next(&mut source).await;
    assert_eq!((again.stream_sequence(), again.deliveries()), (1, 2));
    again.ack().await.unwrap();
    assert_eq!(source.stats().naked, 1);
}

#[tokio::test]
async fn dead_letter_stores_the_message_with_its_reason_and_terminates_it() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 2).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .dead_letter_subject("dead.events")
        .connect()
        .await
        .unwrap();
    let poison = next(&mut source).await;
    assert_eq!(poison.stream_sequence(), 1);
    poison
        .dead_letter("not JSON:\r\nexpected '{'")
        .await
        .unwrap();
    let good = next(&mut source).await;
    assert_eq!(good.stream_sequence(), 2);
    good.ack().await.unwrap();
    assert_eq!(source.stats().rejected, 1);
    // Terminated: not delivered again, not pending.
    assert!(quiet(&mut source, Duration::from_millis(500)).await);
    eventually("nothing pending", || async {
        pending(&js, "EVENTS", "c").await == (0, 0)
    })
    .await;

    let dead = js.get_stream("EVENTS-dead").await.unwrap();
    let letter = dead
        .get_last_raw_message_by_subject("dead.events")
        .await
        .unwrap();
    assert_eq!(letter.payload.as_ref(), b"0");
    let h = letter.headers;
    let get = |name: &str| h.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(get(headers::STREAM).as_deref(), Some("EVENTS"));
    assert_eq!(get(headers::CONSUMER).as_deref(), Some("c"));
    assert_eq!(get(headers::SUBJECT).as_deref(), Some("events.0"));
    assert_eq!(get(headers::SEQUENCE).as_deref(), Some("1"));
    assert_eq!(get(headers::DELIVERIES).as_deref(), Some("1"));
    assert_eq!(
        get(headers::REASON).as_deref(),
        Some("not JSON:  expected '{'")
    );
}

#[tokio::test]
async fn a_message_delivered_too_often_is_dead_lettered_by_the_source() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 2).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .max_deliveries(2)
        .connect()
        .await
        .unwrap();
    // Message 1 crashes its consumer twice (dropped), message 2 is fine.
    let mut drops = 0;
    let mut acked = false;
    while drops < 2 || !acked {
        let delivery = next(&mut source).await;
        match delivery.stream_sequence() {
            1 => {
                drops += 1;
                assert!(drops <= 2, "delivered a third time");
                drop(delivery);
            }
            _ => {
                delivery.ack().await.unwrap();
                acked = true;
            }
        }
    }
    eventually("the source dead-letters message 1", || async {
        source.stats().dead_lettered == 1
    })
    .await;
    assert!(quiet(&mut source, Duration::from_millis(500)).await);
    let dead = js.get_stream("EVENTS-dead").await.unwrap();
    let letter = dead
        .get_last_raw_message_by_subject("flowgate.dead.EVENTS")
        .await
        .unwrap();
    let reason = letter
        .headers
        .get(headers::REASON)
        .unwrap()
        .as_str()
        .to_owned();
    assert!(
        reason.contains("delivered 3 times, more than max_deliveries 2"),
        "{reason}"
    );
    assert_eq!(
        letter.headers.get(headers::DELIVERIES).unwrap().as_str(),
        "3"
    );
}

#[tokio::test]
async fn a_held_delivery_is_not_redelivered_past_the_ack_wait() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 1).await;
    // The ack wait is 20 in-progress intervals long: a keeper stalled for
    // four seconds on a busy machine still keeps the message.
    let build = || {
        NatsSource::builder(nats.url(), "EVENTS", "shared")
            .ack_wait(Duration::from_secs(4))
            .progress_interval(Duration::from_millis(200))
    };
    let mut holder = build().connect().await.unwrap();
    let mut other = build().connect().await.unwrap();
    let held = next(&mut holder).await;
    // Three ack waits: without the signals the server would have
    // redelivered it (to either source) twice.
    assert!(quiet(&mut other, Duration::from_secs(12)).await);
    assert!(holder.stats().progress_signals >= 3, "{:?}", holder.stats());
    assert_eq!(held.deliveries(), 1);
    held.ack().await.unwrap();
    eventually("nothing pending", || async {
        pending(&js, "EVENTS", "shared").await == (0, 0)
    })
    .await;
}

#[tokio::test]
async fn reading_pauses_at_max_in_flight() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 30).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .max_in_flight(10)
        .connect()
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(next(&mut source).await);
    }
    assert!(quiet(&mut source, Duration::from_millis(500)).await);
    // Only what was handed out is delivered from the server's view.
    assert_eq!(pending(&js, "EVENTS", "c").await, (20, 10));
    held.pop().unwrap().ack().await.unwrap();
    let one_more = next(&mut source).await;
    assert_eq!(one_more.stream_sequence(), 11);
    assert!(quiet(&mut source, Duration::from_millis(300)).await);
    drop(one_more);
    drop(held);
}

#[tokio::test]
async fn stop_ends_the_stream_and_unacked_messages_go_to_the_next_consumer() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 10).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .batch_size(5)
        .max_in_flight(5)
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let stop = source.stop_handle();
    let mut deliveries = Vec::new();
    for _ in 0..5 {
        deliveries.push(next(&mut source).await);
    }
    stop.stop();
    assert!(stop.is_stopped());
    // Held deliveries keep the reader waiting for room: the stream ends.
    let end = tokio::time::timeout(Duration::from_secs(60), source.next()).await;
    assert!(matches!(end, Ok(None)), "the stream did not end");
    // Two were written and are acked; three were not written: dropped
    // after the source, they are nak'd.
    for delivery in deliveries.drain(..2) {
        delivery.ack().await.unwrap();
    }
    let acker = source.acker().clone();
    acker.close().await;
    drop(source);
    drop(deliveries);

    let mut next_source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .connect()
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 8 {
        let delivery = next(&mut next_source).await;
        seen.insert(delivery.stream_sequence());
        delivery.ack().await.unwrap();
    }
    // The two acked before the stop are never seen again; the three
    // dropped come back at once.
    assert_eq!(seen, (3..=10).collect());
}

#[tokio::test]
async fn a_server_restart_is_back_pressure_and_every_message_is_acked_once() {
    let Some(mut nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 200).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "c")
        .batch_size(50)
        .ack_wait(Duration::from_secs(3))
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        let delivery = next(&mut source).await;
        seen.insert(delivery.stream_sequence());
        delivery.ack().await.unwrap();
    }
    nats.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.run().await;
    let js = nats.jetstream().await;
    // Reading resumes; a message whose ack was lost with the connection may
    // come again (at-least-once), none is lost.
    while seen.len() < 200 {
        let delivery = next(&mut source).await;
        seen.insert(delivery.stream_sequence());
        delivery.ack().await.unwrap();
    }
    assert_eq!(seen, (1..=200).collect());
    // An ack lost with the old connection shows as a message still pending:
    // the server redelivers it after the ack wait, and it is acked again.
    let mut redelivered = 0;
    for _ in 0..120 {
        if pending(&js, "EVENTS", "c").await == (0, 0) {
            break;
        }
        if let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_secs(1), source.next()).await
        {
            let delivery = delivery.unwrap();
            assert!(delivery.deliveries() >= 2);
            redelivered += 1;
            delivery.ack().await.unwrap();
        }
    }
    assert_eq!(
        pending(&js, "EVENTS", "c").await,
        (0, 0),
        "{redelivered} redelivered"
    );
    let stats = source.stats();
    assert_eq!(
        (stats.read, stats.acked),
        (200 + redelivered, 200 + redelivered)
    );
}

#[tokio::test]
async fn a_deleted_consumer_ends_the_stream_with_an_error() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 0).await;
    let mut source = NatsSource::builder(nats.url(), "EVENTS", "gone")
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    js.get_stream("EVENTS")
        .await
        .unwrap()
        .delete_consumer("gone")
        .await
        .unwrap();
    let item = tokio::time::timeout(Duration::from_secs(60), source.next())
        .await
        .expect("an item");
    match item {
        Some(Err(SourceError::ConsumerGone { consumer, .. })) => assert_eq!(consumer, "gone"),
        other => panic!("expected ConsumerGone, got {other:?}"),
    }
    assert!(source.next().await.is_none());
}

#[tokio::test]
async fn a_token_of_another_source_is_refused() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let js = nats.jetstream().await;
    publish(&js, "EVENTS", "events", 1).await;
    let mut a = NatsSource::builder(nats.url(), "EVENTS", "a")
        .connect()
        .await
        .unwrap();
    let b = NatsSource::builder(nats.url(), "EVENTS", "b")
        .connect()
        .await
        .unwrap();
    let (message, token) = next(&mut a).await.into_parts();
    let err = b.acker().ack_all(vec![token]).await.unwrap_err();
    assert!(err.to_string().contains("consumer \"a\""), "{err}");
    // The token was dropped: the message comes back to `a`.
    let again = next(&mut a).await;
    assert_eq!(again.stream_sequence(), message.stream_sequence);
    let (_, token) = again.into_parts();
    let err = token
        .dead_letter(&message_with_sequence(&message, 99), "x")
        .await;
    assert!(matches!(
        err,
        Err(SourceError::WrongMessage {
            token: 1,
            message: 99
        })
    ));
}

fn message_with_sequence(
    message: &flowgate_nats::Message,
    sequence: u64,
) -> flowgate_nats::Message {
    let mut other = message.clone();
    other.stream_sequence = sequence;
    other
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_naming_it() {
    let port = support::free_port();
    let started = std::time::Instant::now();
    let err = NatsSource::builder(format!("nats://user:secret@127.0.0.1:{port}"), "S", "c")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert!(std::error::Error::source(&err).is_some());
    // One attempt: refused at once, well within the timeout.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_before_connecting() {
    let url = "nats://127.0.0.1:1";
    let b = || NatsSource::builder(url, "S", "c");
    let cases: Vec<(flowgate_nats::SourceBuilder, BuildError)> = vec![
        (b().batch_size(0), BuildError::ZeroBatchSize),
        (b().max_in_flight(0), BuildError::ZeroMaxInFlight),
        (b().ack_wait(Duration::ZERO), BuildError::ZeroAckWait),
        (b().block(Duration::ZERO), BuildError::ZeroBlock),
        (
            b().progress_interval(Duration::from_secs(30)),
            BuildError::ProgressInterval {
                interval: Duration::from_secs(30),
                ack_wait: Duration::from_secs(30),
            },
        ),
        (
            b().progress_interval(Duration::ZERO),
            BuildError::ProgressInterval {
                interval: Duration::ZERO,
                ack_wait: Duration::from_secs(30),
            },
        ),
        (b().max_deliveries(0), BuildError::ZeroMaxDeliveries),
        (
            b().connect_timeout(Duration::ZERO),
            BuildError::ZeroConnectTimeout,
        ),
        (b().ack_batch(0, Duration::ZERO), BuildError::ZeroAckBatch),
        (
            NatsSource::builder(url, "a.b", "c"),
            BuildError::InvalidName {
                what: "stream",
                name: "a.b".into(),
            },
        ),
        (
            NatsSource::builder(url, "S", ""),
            BuildError::InvalidName {
                what: "consumer",
                name: String::new(),
            },
        ),
        (
            b().subjects(["a..b"]),
            BuildError::InvalidSubject {
                what: "stream",
                subject: "a..b".into(),
            },
        ),
        (
            b().dead_letter_subject("dead.*"),
            BuildError::InvalidSubject {
                what: "dead-letter",
                subject: "dead.*".into(),
            },
        ),
    ];
    for (builder, expected) in cases {
        match builder.connect().await {
            Err(SourceError::Build(err)) => assert_eq!(err, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
}
