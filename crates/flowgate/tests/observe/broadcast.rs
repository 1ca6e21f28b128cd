//! `flowgate::broadcast`: the series of a named stream, and its failure
//! events.

use flowgate::broadcast::{BoundedPublisher, Publisher, TryPublishError};
use tracing::Level;

use crate::common::Traced;

#[cfg(feature = "metrics")]
mod metrics {
    use flowgate::broadcast::{BoundedPublisher, Publisher, TryRecvError};
    use tokio_test::{assert_pending, assert_ready, task};

    use crate::common::Recorded;

    const PUBLISHED: &str = "flowgate_broadcast_events_published_total";
    const SUBSCRIBERS: &str = "flowgate_broadcast_subscribers";
    const LEFT: &str = "flowgate_broadcast_subscribers_left_total";
    const BUFFERED: &str = "flowgate_broadcast_events_buffered";
    const WAITING: &str = "flowgate_broadcast_publishers_waiting";
    const REJECTED: &str = "flowgate_broadcast_publish_rejected_total";

    #[test]
    fn every_series_is_registered_at_zero_when_the_stream_is_created() {
        let rec = Recorded::new();
        let _publisher = rec.scope(|| Publisher::<u32>::with_name("events"));
        assert_eq!(
            rec.names(),
            [
                "flowgate_broadcast_events_buffered{name=events}",
                "flowgate_broadcast_events_published_total{name=events}",
                "flowgate_broadcast_publish_rejected_total{name=events,reason=closed}",
                "flowgate_broadcast_publish_rejected_total{name=events,reason=full}",
                "flowgate_broadcast_publishers_waiting{name=events}",
                "flowgate_broadcast_subscribers_left_total{name=events,reason=dropped}",
                "flowgate_broadcast_subscribers_left_total{name=events,reason=finished}",
                "flowgate_broadcast_subscribers{name=events}",
            ]
        );
        let n = &[("name", "events")];
        assert_eq!(rec.counter(PUBLISHED, n), 0);
        assert_eq!(rec.gauge(SUBSCRIBERS, n), 0.0);
        assert_eq!(rec.gauge(BUFFERED, n), 0.0);
    }

    #[test]
    fn published_subscribers_left_and_buffered_follow_the_stream() {
        let rec = Recorded::new();
        let mut publisher = rec.scope(|| Publisher::with_name("ev"));
        let n = &[("name", "ev")];
        let left = |reason| rec.counter(LEFT, &[("name", "ev"), ("reason", reason)]);

        let mut a = publisher.subscribe();
        let b = publisher.subscribe();
        assert_eq!(rec.gauge(SUBSCRIBERS, n), 2.0);

        for i in 0..300u32 {
            publisher.publish(i);
        }
        // Counted a block (128) at a time while nobody waits: two full blocks.
        assert_eq!(rec.counter(PUBLISHED, n), 256);
        // Two full blocks are held for `a` and `b`, who have read nothing.
        assert_eq!(rec.gauge(BUFFERED, n), 256.0);

        for i in 0..200 {
            assert_eq!(a.try_recv(), Ok(i));
        }
        // `b` still holds the first block.
        assert_eq!(rec.gauge(BUFFERED, n), 256.0);
        drop(b);
        assert_eq!(rec.gauge(SUBSCRIBERS, n), 1.0);
        assert_eq!((left("dropped"), left("finished")), (1, 0));
        // Only `a`'s block (events 128..256) is still held.
        assert_eq!(rec.gauge(BUFFERED, n), 128.0);

        let fork = a.clone();
        assert_eq!(rec.gauge(SUBSCRIBERS, n), 2.0);
        drop(fork);
        assert_eq!(rec.gauge(SUBSCRIBERS, n), 1.0);
        assert_eq!(left("dropped"), 2);

        publisher.close();
        // Closing brings the count up to date.
        assert_eq!(rec.counter(PUBLISHED, n), 300);
        for i in 200..300 {
            assert_eq!(a.try_recv(), Ok(i));
        }
        assert_eq!(a.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(rec.gauge(BUFFERED, n), 0.0);
        drop(a);
        assert_eq!((left("dropped"), left("finished")), (2, 1));
        assert_eq!(rec.gauge(SUBSCRIBERS, n), 0.0);
    }

    #[test]
    fn waking_a_waiting_subscriber_brings_the_count_up_to_date() {
        let rec = Recorded::new();
        let mut publisher = rec.scope(|| Publisher::with_name("live"));
        let n = &[("name", "live")];
        let mut sub = publisher.subscribe();
        publisher.publish(1);
        assert_eq!(
            rec.counter(PUBLISHED, n),
            0,
            "less than a block, nobody waits"
        );
        assert_eq!(sub.try_recv(), Ok(1));
        let mut recv = task::spawn(sub.recv());
        assert_pending!(recv.poll());
        publisher.publish(2);
        assert!(recv.is_woken());
        assert_eq!(rec.counter(PUBLISHED, n), 2);
        assert_eq!(assert_ready!(recv.poll()), Some(2));
    }

    #[test]
    fn a_subscriber_at_the_end_of_a_closed_stream_leaves_finished() {
        let rec = Recorded::new();
        let publisher = rec.scope(|| Publisher::<u8>::with_name("done"));
        let handle = publisher.subscribe_handle();
        drop(publisher);
        drop(handle.subscribe()); // at the end already: finished, not dropped
        let left = |reason| rec.counter(LEFT, &[("name", "done"), ("reason", reason)]);
        assert_eq!((left("finished"), left("dropped")), (1, 0));
    }

    #[test]
    fn bounded_publishers_waiting_and_refused() {
        let rec = Recorded::new();
        let mut publisher = rec.scope(|| BoundedPublisher::with_name(1, "bounded"));
        let n = &[("name", "bounded")];
        let full = &[("name", "bounded"), ("reason", "full")];
        let mut sub = publisher.subscribe();
        publisher.try_publish(1).unwrap();
        assert!(publisher.try_publish(2).is_err());
        assert_eq!(rec.counter(REJECTED, full), 1);
        // Finding no room brings the published count up to date.
        assert_eq!(rec.counter(PUBLISHED, n), 1);

        // A `reserve` cancelled while it waits is no longer counted.
        {
            let mut reserve = task::spawn(publisher.reserve());
            assert_pending!(reserve.poll());
            assert_eq!(rec.gauge(WAITING, n), 1.0);
        }
        assert_eq!(rec.gauge(WAITING, n), 0.0);

        // A `publish` that waits, then gets room.
        {
            let mut publish = task::spawn(publisher.publish(2));
            assert_pending!(publish.poll());
            assert_pending!(publish.poll());
            assert_eq!(rec.gauge(WAITING, n), 1.0, "once per call, not per poll");
            assert_eq!(sub.try_recv(), Ok(1));
            assert!(publish.is_woken());
            assert_ready!(publish.poll());
            assert_eq!(rec.gauge(WAITING, n), 0.0);
        }
        assert_eq!(rec.counter(REJECTED, full), 1, "waiting is not refusing");
        assert_eq!(
            rec.counter(PUBLISHED, n),
            1,
            "the second is in the open block"
        );
        publisher.close();
        assert_eq!(rec.counter(PUBLISHED, n), 2);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn shared_publishers_waiting_and_refused_full_and_closed() {
        let rec = Recorded::new();
        let publisher = rec
            .scope(|| BoundedPublisher::with_name(1, "shared"))
            .into_shared();
        let n = &[("name", "shared")];
        let rejected = |reason| rec.counter(REJECTED, &[("name", "shared"), ("reason", reason)]);
        let _sub = publisher.subscribe();
        publisher.try_publish(1).unwrap();
        assert!(publisher.try_publish(2).unwrap_err().is_full());
        assert_eq!((rejected("full"), rejected("closed")), (1, 0));

        let other = publisher.clone();
        let mut waiting = task::spawn(other.publish(2));
        assert_pending!(waiting.poll());
        let mut cancelled = task::spawn(other.publish(3));
        assert_pending!(cancelled.poll());
        assert_eq!(rec.gauge(WAITING, n), 2.0);
        drop(cancelled);
        assert_eq!(rec.gauge(WAITING, n), 1.0);

        // Closing hands the waiting publisher its event back.
        publisher.close();
        assert!(waiting.is_woken());
        assert_eq!(assert_ready!(waiting.poll()).unwrap_err().into_inner(), 2);
        assert_eq!(rec.gauge(WAITING, n), 0.0);
        assert_eq!(rejected("closed"), 1);
        assert!(publisher.try_publish(4).unwrap_err().is_closed());
        assert!(publisher.publish(5).await.is_err());
        assert_eq!((rejected("full"), rejected("closed")), (1, 3));
    }

    #[test]
    fn unnamed_streams_register_nothing() {
        let rec = Recorded::new();
        rec.scope(|| {
            let mut publisher = Publisher::new();
            let mut sub = publisher.subscribe();
            for i in 0..300 {
                publisher.publish(i);
            }
            assert_eq!(sub.try_recv(), Ok(0));
            drop(sub.clone());
            let mut bounded = BoundedPublisher::new(1);
            let _slow = bounded.subscribe();
            bounded.try_publish(1).unwrap();
            assert!(bounded.try_publish(2).is_err());
            let shared = bounded.into_shared();
            shared.close();
            assert!(shared.try_publish(3).is_err());
        });
        assert!(rec.is_empty(), "registered: {:?}", rec.names());
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn publishing_to_a_closed_stream_warns_with_the_name() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let publisher = Publisher::with_name("closed-stream").into_shared();
    publisher.close();
    assert!(publisher.try_publish(1).is_err());
    assert!(publisher.publish(2).await.is_err());
    let warnings = traced.events_at_least(Level::WARN, "flowgate::broadcast");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    for event in &warnings {
        assert_eq!(event.level, Level::WARN);
        assert_eq!(event.target, "flowgate::broadcast");
        assert_eq!(event.field("name"), Some("closed-stream"));
    }
}

#[test]
fn a_full_stream_logs_at_debug_only() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let mut publisher = BoundedPublisher::with_name(1, "full-stream");
    let _slow = publisher.subscribe();
    publisher.try_publish(1).unwrap();
    assert!(matches!(
        publisher.try_publish(2),
        Err(TryPublishError::Full(2))
    ));
    assert!(
        traced
            .events_at_least(Level::WARN, "flowgate::broadcast")
            .is_empty()
    );
    let debug = traced.events_at_least(Level::DEBUG, "flowgate::broadcast");
    assert_eq!(debug.len(), 1, "{debug:?}");
    assert_eq!(debug[0].field("name"), Some("full-stream"));
}
