//! `flowgate::coalesce`: the series of a named `OpQueue`, and its failure
//! events.

use flowgate::coalesce::OpQueue;
use tracing::Level;

use crate::common::Traced;

#[cfg(feature = "metrics")]
mod metrics {
    use std::time::Duration;

    use flowgate::coalesce::OpQueue;
    use tokio_test::{assert_pending, assert_ready, task};

    use crate::common::Recorded;

    const ENQUEUED: &str = "flowgate_coalesce_items_enqueued_total";
    const DEQUEUED: &str = "flowgate_coalesce_items_dequeued_total";
    const DROPPED: &str = "flowgate_coalesce_items_dropped_total";
    const KEYS: &str = "flowgate_coalesce_keys_queued";
    const ITEMS: &str = "flowgate_coalesce_items_queued";
    const WAITING: &str = "flowgate_coalesce_enqueuers_waiting";
    const REJECTED: &str = "flowgate_coalesce_enqueue_rejected_total";
    const RELEASED: &str = "flowgate_coalesce_batches_released_total";
    const BATCH: &str = "flowgate_coalesce_batch_size";

    #[test]
    fn every_series_is_registered_by_build() {
        let rec = Recorded::new();
        let _pair = rec.scope(|| OpQueue::<u8, u8>::builder().name("q").build().unwrap());
        assert_eq!(
            rec.names(),
            [
                "flowgate_coalesce_enqueue_rejected_total{name=q,reason=closed}",
                "flowgate_coalesce_enqueue_rejected_total{name=q,reason=depth_full}",
                "flowgate_coalesce_enqueue_rejected_total{name=q,reason=width_full}",
                "flowgate_coalesce_enqueuers_waiting{name=q}",
                "flowgate_coalesce_items_dequeued_total{name=q}",
                "flowgate_coalesce_items_dropped_total{name=q}",
                "flowgate_coalesce_items_enqueued_total{name=q,outcome=merged}",
                "flowgate_coalesce_items_enqueued_total{name=q,outcome=queued}",
                "flowgate_coalesce_items_queued{name=q}",
                "flowgate_coalesce_keys_queued{name=q}",
            ],
            "no window: no batch series"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn items_keys_waiting_and_refusals_follow_the_queue() {
        let rec = Recorded::new();
        let (queue, consumer) = rec.scope(|| {
            OpQueue::<u32, &str>::builder()
                .name("q")
                .depth(2)
                .width(2)
                .build()
                .unwrap()
        });
        let n = &[("name", "q")];
        let enqueued = |outcome| rec.counter(ENQUEUED, &[("name", "q"), ("outcome", outcome)]);
        let rejected = |reason| rec.counter(REJECTED, &[("name", "q"), ("reason", reason)]);
        let depths = || (rec.gauge(KEYS, n), rec.gauge(ITEMS, n));

        queue.try_enqueue(1, "a").unwrap();
        assert_eq!((enqueued("queued"), enqueued("merged")), (1, 0));
        assert_eq!(depths(), (1.0, 1.0));
        queue.try_enqueue(1, "b").unwrap();
        assert_eq!((enqueued("queued"), enqueued("merged")), (1, 1));
        assert_eq!(depths(), (1.0, 2.0));
        assert!(queue.try_enqueue(1, "c").unwrap_err().is_width_full());
        assert_eq!(rejected("width_full"), 1);
        queue.try_enqueue(2, "d").unwrap();
        assert_eq!(depths(), (2.0, 3.0));
        assert!(queue.try_enqueue(3, "e").unwrap_err().is_depth_full());
        assert_eq!(rejected("depth_full"), 1);
        assert_eq!((enqueued("queued"), enqueued("merged")), (2, 1));

        // An `enqueue` cancelled while it waits for room is no longer counted.
        {
            let mut waiting = task::spawn(queue.enqueue(3, "e"));
            assert_pending!(waiting.poll());
            assert_eq!(rec.gauge(WAITING, n), 1.0);
        }
        assert_eq!(rec.gauge(WAITING, n), 0.0);

        // One that waits, then gets room.
        let mut waiting = task::spawn(queue.enqueue(3, "e"));
        assert_pending!(waiting.poll());
        assert_pending!(waiting.poll());
        assert_eq!(rec.gauge(WAITING, n), 1.0, "once per call, not per poll");
        assert_eq!(consumer.try_dequeue(), Ok((1, vec!["a", "b"])));
        assert_eq!(rec.counter(DEQUEUED, n), 2);
        assert_eq!(depths(), (1.0, 1.0));
        assert!(waiting.is_woken());
        assert_ready!(waiting.poll()).unwrap();
        drop(waiting);
        assert_eq!(rec.gauge(WAITING, n), 0.0);
        assert_eq!(depths(), (2.0, 2.0));
        assert_eq!(
            (rejected("depth_full"), rejected("width_full")),
            (1, 1),
            "waiting is not refusing"
        );

        let mut taken = Vec::new();
        assert_eq!(consumer.dequeue_many(&mut taken, 10).await, 2);
        assert_eq!(rec.counter(DEQUEUED, n), 4);
        assert_eq!(depths(), (0.0, 0.0));

        queue.close();
        assert!(queue.try_enqueue(4, "f").unwrap_err().is_closed());
        assert!(queue.enqueue(4, "g").await.is_err());
        assert_eq!(rejected("closed"), 2);
        assert_eq!(consumer.dequeue().await, None);
        assert_eq!((enqueued("queued"), enqueued("merged")), (3, 1));
        assert_eq!(rec.counter(DROPPED, n), 0);
    }

    #[test]
    fn items_left_when_the_last_consumer_goes_are_counted_as_dropped() {
        let rec = Recorded::new();
        let (queue, consumer) =
            rec.scope(|| OpQueue::<u32, u32>::builder().name("d").build().unwrap());
        let n = &[("name", "d")];
        queue.try_enqueue(1, 10).unwrap();
        queue.try_enqueue(1, 11).unwrap();
        queue.try_enqueue(2, 20).unwrap();
        drop(consumer);
        assert_eq!(rec.counter(DROPPED, n), 3);
        assert_eq!((rec.gauge(KEYS, n), rec.gauge(ITEMS, n)), (0.0, 0.0));
        assert_eq!(rec.counter(DEQUEUED, n), 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn windowed_batches_are_counted_by_trigger_with_their_sizes() {
        let rec = Recorded::new();
        let (queue, consumer) = rec.scope(|| {
            OpQueue::<u32, u32>::builder()
                .name("w")
                .window(Duration::from_millis(10))
                .width(3)
                .build()
                .unwrap()
        });
        let released = |trigger| rec.counter(RELEASED, &[("name", "w"), ("trigger", trigger)]);
        let n = &[("name", "w")];
        assert_eq!(
            (released("window"), released("width"), released("close")),
            (0, 0, 0)
        );

        queue.try_enqueue(1, 1).unwrap();
        queue.try_enqueue(1, 2).unwrap();
        assert_eq!(consumer.dequeue().await, Some((1, vec![1, 2])));
        assert_eq!(released("window"), 1);

        for i in 0..3 {
            queue.try_enqueue(2, i).unwrap();
        }
        assert_eq!(released("width"), 1, "released as it filled");
        assert_eq!(consumer.try_dequeue(), Ok((2, vec![0, 1, 2])));

        queue.try_enqueue(3, 7).unwrap();
        queue.close();
        assert_eq!(released("close"), 1);
        assert_eq!(consumer.dequeue().await, Some((3, vec![7])));
        assert_eq!(
            (released("window"), released("width"), released("close")),
            (1, 1, 1)
        );
        assert_eq!(rec.histogram(BATCH, n), [2.0, 3.0, 1.0]);
        assert_eq!(rec.counter(DEQUEUED, n), 6);
    }

    #[test]
    fn unnamed_queues_register_nothing() {
        let rec = Recorded::new();
        rec.scope(|| {
            let (queue, consumer) = OpQueue::<u32, u32>::builder().depth(1).build().unwrap();
            queue.try_enqueue(1, 1).unwrap();
            queue.try_enqueue(1, 2).unwrap();
            assert!(queue.try_enqueue(2, 1).is_err());
            assert!(consumer.try_dequeue().is_ok());
            queue.try_enqueue(3, 1).unwrap();
            drop(consumer);
            assert!(queue.try_enqueue(4, 1).is_err());
        });
        assert!(rec.is_empty(), "registered: {:?}", rec.names());
    }
}

#[test]
fn dropping_the_last_consumer_with_items_queued_is_an_error_event() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let (queue, consumer) = OpQueue::<u32, u32>::builder().name("lost").build().unwrap();
    queue.try_enqueue(1, 1).unwrap();
    queue.try_enqueue(1, 2).unwrap();
    drop(consumer);
    let errors = traced.events_at_least(Level::ERROR, "flowgate::coalesce");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].target, "flowgate::coalesce");
    assert_eq!(errors[0].field("name"), Some("lost"));
    assert_eq!(errors[0].field("items"), Some("2"));
    assert_eq!(errors[0].field("keys"), Some("1"));
    // A refusal because the queue closed (the item handed back) warns.
    assert!(queue.try_enqueue(2, 1).unwrap_err().is_closed());
    let warnings = traced.events_at_least(Level::WARN, "flowgate::coalesce");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(warnings[1].level, Level::WARN);
    assert_eq!(warnings[1].field("name"), Some("lost"));
}

#[test]
fn an_empty_queue_losing_its_consumer_and_full_refusals_do_not_warn() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let (queue, consumer) = OpQueue::<u32, u32>::builder()
        .name("quiet")
        .depth(1)
        .build()
        .unwrap();
    queue.try_enqueue(1, 1).unwrap();
    assert!(queue.try_enqueue(2, 1).unwrap_err().is_depth_full());
    assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
    drop(consumer);
    assert!(
        traced
            .events_at_least(Level::WARN, "flowgate::coalesce")
            .is_empty()
    );
    let debug = traced.events_at_least(Level::DEBUG, "flowgate::coalesce");
    assert_eq!(debug.len(), 1, "{debug:?}");
    assert_eq!(debug[0].field("name"), Some("quiet"));
}
