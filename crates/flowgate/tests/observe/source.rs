//! `flowgate::source`: a named cursor source driven by hand (its driver and
//! stream polled by the test), the watermarks; and their failure events.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use flowgate::source::{
    CheckpointStore, CursorSource, OnFetchError, Page, SharedWatermark, StoreError,
};
use futures_core::future::BoxFuture;
use tokio_test::{assert_pending, assert_ready, task};
use tracing::Level;

use crate::common::Traced;

/// Pages of two items, `page * 2 + 1` and `page * 2 + 2`; three pages (the
/// last has no next cursor). Each fetch takes 10 ms.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
async fn three_pages(page: u64) -> Result<Page<u64, u64>, Infallible> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(Page::new(
        vec![page * 2 + 1, page * 2 + 2],
        (page < 2).then_some(page + 1),
    ))
}

/// Pages of three items, ready at once, never ending.
async fn endless(page: u64) -> Result<Page<u64, u64>, Infallible> {
    Ok(Page::new(vec![page; 3], Some(page + 1)))
}

/// A store whose load or commit fails when told to.
#[derive(Clone, Default)]
struct Flaky {
    fail_load: Arc<AtomicBool>,
    fail_commit: Arc<AtomicBool>,
}

impl CheckpointStore<u64> for Flaky {
    fn load(&self) -> BoxFuture<'_, Result<Option<u64>, StoreError>> {
        let fail = self.fail_load.load(Ordering::SeqCst);
        Box::pin(async move {
            if fail {
                Err(StoreError::new("disk unreadable"))
            } else {
                Ok(None)
            }
        })
    }

    fn commit(&self, _cursor: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let fail = self.fail_commit.load(Ordering::SeqCst);
        Box::pin(async move {
            if fail {
                Err(StoreError::new("disk full"))
            } else {
                Ok(())
            }
        })
    }
}

/// A fetch failing on its first call only.
fn fails_once() -> impl FnMut(u64) -> BoxFuture<'static, Result<Page<u64, u64>, &'static str>> {
    let calls = Arc::new(AtomicU32::new(0));
    move |page| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first {
                Err("connection reset")
            } else {
                Ok(Page::new(vec![page], None))
            }
        })
    }
}

#[cfg(feature = "metrics")]
mod metrics {
    use std::time::Duration;

    use flowgate::source::{
        CursorSource, MemoryCheckpointStore, OnFetchError, PartitionedWatermark, SharedWatermark,
        Watermark,
    };
    use futures_util::StreamExt;
    use tokio_test::{assert_pending, assert_ready, task};

    use super::{Flaky, endless, fails_once, three_pages};
    use crate::common::Recorded;

    const S: &[(&str, &str)] = &[("name", "s")];

    /// (pages fetched, items fetched, emitted, acked, unacked, dropped)
    fn counts(rec: &Recorded) -> [u64; 6] {
        [
            "flowgate_source_pages_fetched_total",
            "flowgate_source_items_fetched_total",
            "flowgate_source_items_emitted_total",
            "flowgate_source_items_acked_total",
            "flowgate_source_items_unacked_total",
            "flowgate_source_items_dropped_total",
        ]
        .map(|c| rec.counter(c, S))
    }

    /// (items in flight, pages in flight, paused)
    fn gauges(rec: &Recorded) -> (f64, f64, f64) {
        (
            rec.gauge("flowgate_source_items_in_flight", S),
            rec.gauge("flowgate_source_pages_in_flight", S),
            rec.gauge("flowgate_source_paused", S),
        )
    }

    /// (commits ok, commits failed, load errors, fetch errors)
    fn store_counts(rec: &Recorded) -> [u64; 4] {
        [
            rec.counter(
                "flowgate_source_commits_total",
                &[("name", "s"), ("outcome", "ok")],
            ),
            rec.counter(
                "flowgate_source_commits_total",
                &[("name", "s"), ("outcome", "error")],
            ),
            rec.counter("flowgate_source_load_errors_total", S),
            rec.counter("flowgate_source_fetch_errors_total", S),
        ]
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn three_pages_acked_out_of_order() {
        let rec = Recorded::new();
        let store = MemoryCheckpointStore::new();
        let (source, driver) = rec.scope(|| {
            CursorSource::builder(0u64)
                .name("s")
                .checkpoint(store.clone())
                .max_pages_in_flight(3)
                .build_pair(three_pages)
                .unwrap()
        });
        let mut driver = task::spawn(driver);
        let mut source = task::spawn(source);
        assert_eq!(counts(&rec), [0; 6]);
        assert_eq!(gauges(&rec), (0.0, 0.0, 0.0));

        // Page 0 being fetched counts as in flight.
        assert_pending!(driver.poll());
        assert_eq!(gauges(&rec), (0.0, 1.0, 0.0));
        for pages in [2.0, 3.0, 3.0] {
            tokio::time::advance(Duration::from_millis(10)).await;
            assert_pending!(driver.poll());
            assert_eq!(gauges(&rec).1, pages);
        }
        assert_eq!(counts(&rec), [3, 6, 0, 0, 0, 0]);
        assert_eq!(
            rec.histogram("flowgate_source_fetch_seconds", S),
            [0.01, 0.01, 0.01]
        );

        let mut acks = Vec::new();
        for _ in 0..6 {
            let (item, ack) = assert_ready!(source.poll_next()).unwrap().unwrap();
            acks.push((item, ack));
        }
        assert_eq!(counts(&rec), [3, 6, 6, 0, 0, 0]);
        assert_eq!(gauges(&rec), (6.0, 3.0, 0.0));
        let mut ack = |item: u64| {
            let at = acks.iter().position(|(i, _)| *i == item).unwrap();
            acks.remove(at).1.ack();
        };

        // Page 1 first: nothing can be committed before page 0.
        ack(4);
        ack(3);
        ack(1);
        assert_pending!(driver.poll());
        assert_eq!(gauges(&rec), (3.0, 3.0, 0.0));
        assert_eq!(store_counts(&rec), [0, 0, 0, 0]);

        // Page 0 done: pages 0 and 1 are committed at once, cursor 2.
        ack(2);
        assert!(driver.is_woken());
        assert_pending!(driver.poll());
        assert_eq!(store.get(), Some(2));
        assert_eq!(store_counts(&rec), [1, 0, 0, 0]);
        assert_eq!(gauges(&rec), (2.0, 1.0, 0.0));
        assert_eq!(rec.histogram("flowgate_source_commit_seconds", S), [0.0]);

        // The last page has no cursor to commit; the driver finishes.
        ack(6);
        ack(5);
        assert_ready!(driver.poll());
        assert_eq!(counts(&rec), [3, 6, 6, 6, 0, 0]);
        assert_eq!(gauges(&rec), (0.0, 0.0, 0.0));
        assert_eq!(store_counts(&rec), [1, 0, 0, 0]);
        assert_eq!(assert_ready!(source.poll_next()).map(|_| ()), None);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_failed_fetch_pauses_the_source_until_resumed() {
        let rec = Recorded::new();
        let (source, driver) = rec.scope(|| {
            CursorSource::builder(0u64)
                .name("s")
                .on_fetch_error(OnFetchError::Pause)
                .build_pair(fails_once())
                .unwrap()
        });
        let control = source.control();
        let mut driver = task::spawn(driver);
        let mut source = task::spawn(source);
        assert_pending!(driver.poll());
        assert_eq!(store_counts(&rec), [0, 0, 0, 1]);
        assert_eq!(gauges(&rec), (0.0, 0.0, 1.0));
        assert!(assert_ready!(source.poll_next()).unwrap().is_err());

        control.resume();
        assert_eq!(gauges(&rec).2, 0.0);
        // The one page, with no next cursor: the driver waits for its ack.
        assert_pending!(driver.poll());
        let (_, ack) = assert_ready!(source.poll_next()).unwrap().unwrap();
        assert_eq!(gauges(&rec), (1.0, 1.0, 0.0));
        ack.ack();
        assert_ready!(driver.poll());
        assert_eq!(counts(&rec), [1, 1, 1, 1, 0, 0]);
        assert_eq!(gauges(&rec), (0.0, 0.0, 0.0));
        assert_eq!(store_counts(&rec), [0, 0, 0, 1]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn dropped_acks_stop_now_and_the_end_bring_the_gauges_back() {
        let rec = Recorded::new();
        let (source, driver) = rec.scope(|| {
            CursorSource::builder(0u64)
                .name("s")
                .max_pages_in_flight(1)
                .build_pair(endless)
                .unwrap()
        });
        let control = source.control();
        let mut driver = task::spawn(driver);
        let mut source = task::spawn(source);
        assert_pending!(driver.poll());
        control.pause();
        assert_eq!(gauges(&rec), (0.0, 1.0, 1.0));

        // An item yielded, its ack dropped: out of flight, counted unacked.
        let (_, ack) = assert_ready!(source.poll_next()).unwrap().unwrap();
        assert_eq!(gauges(&rec), (1.0, 1.0, 1.0));
        drop(ack);
        assert_eq!(gauges(&rec), (0.0, 1.0, 1.0));
        assert_eq!(counts(&rec), [1, 3, 1, 0, 1, 0]);

        // The two items not yielded are dropped by stop_now.
        control.stop_now();
        assert_eq!(counts(&rec), [1, 3, 1, 0, 1, 2]);
        assert_ready!(driver.poll());
        assert_eq!(gauges(&rec), (0.0, 0.0, 0.0));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn dropping_the_driver_mid_fetch_zeroes_its_gauges() {
        let rec = Recorded::new();
        let (source, driver) = rec.scope(|| {
            CursorSource::builder(0u64)
                .name("s")
                .build_pair(three_pages)
                .unwrap()
        });
        let mut driver = task::spawn(driver);
        assert_pending!(driver.poll());
        source.control().pause();
        assert_eq!(gauges(&rec), (0.0, 1.0, 1.0));
        drop(driver);
        assert_eq!(gauges(&rec), (0.0, 0.0, 0.0));
        assert_eq!(counts(&rec), [0; 6]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn checkpoint_load_and_commit_errors() {
        let rec = Recorded::new();
        let store = Flaky::default();
        store
            .fail_commit
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut source = rec.scope(|| {
            CursorSource::builder(0u64)
                .name("s")
                .checkpoint(store.clone())
                .build(endless)
                .unwrap()
        });
        let (_, ack) = source.next().await.unwrap().unwrap();
        ack.ack();
        // The page is not done until its three items are.
        for _ in 0..2 {
            source.next().await.unwrap().unwrap().1.ack();
        }
        let err = loop {
            match source.next().await.unwrap() {
                Ok((_, ack)) => ack.ack(),
                Err(err) => break err,
            }
        };
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(store_counts(&rec), [0, 1, 0, 0]);
        assert_eq!(
            rec.histogram("flowgate_source_commit_seconds", &[("name", "s")]),
            [0.0]
        );

        let rec = Recorded::new();
        store
            .fail_load
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut source = rec.scope(|| {
            CursorSource::builder(0u64)
                .name("s")
                .checkpoint(store)
                .build(endless)
                .unwrap()
        });
        assert!(source.next().await.unwrap().is_err());
        assert!(source.next().await.is_none());
        assert_eq!(store_counts(&rec), [0, 0, 1, 0]);
        assert_eq!(counts(&rec), [0; 6]);
    }

    #[test]
    fn watermark_gauges_follow_the_commit_point() {
        let rec = Recorded::new();
        let w = [("name", "w")];
        let mut watermark = rec.scope(|| Watermark::new().name("w"));
        let gauges = || {
            (
                rec.gauge("flowgate_source_watermark_commit_point", &w),
                rec.gauge("flowgate_source_watermark_pending", &w),
            )
        };
        assert_eq!(gauges(), (0.0, 0.0));
        for offset in [3, 5, 8] {
            watermark.track(offset).unwrap();
        }
        assert_eq!(gauges(), (0.0, 3.0));
        watermark.ack(5).unwrap();
        assert_eq!(gauges(), (0.0, 3.0));
        watermark.ack(3).unwrap();
        assert_eq!(gauges(), (6.0, 1.0));
        assert!(watermark.ack(3).is_err()); // refused: nothing moves
        assert!(watermark.track(4).is_err());
        assert_eq!(gauges(), (6.0, 1.0));
        watermark.ack(8).unwrap();
        assert_eq!(gauges(), (9.0, 0.0));
    }

    #[test]
    fn shared_watermark_gauges_follow_acks_from_other_threads() {
        let rec = Recorded::new();
        let w = [("name", "shared")];
        let watermark = rec.scope(|| SharedWatermark::new().name("shared"));
        let (a, b) = (
            watermark.try_track(10).unwrap(),
            watermark.try_track(11).unwrap(),
        );
        let c = watermark.try_track(12).unwrap();
        assert_eq!(rec.gauge("flowgate_source_watermark_pending", &w), 3.0);
        std::thread::spawn(move || b.ack()).join().unwrap();
        assert_eq!(rec.gauge("flowgate_source_watermark_commit_point", &w), 0.0);
        a.ack();
        assert_eq!(
            rec.gauge("flowgate_source_watermark_commit_point", &w),
            12.0
        );
        assert_eq!(rec.gauge("flowgate_source_watermark_pending", &w), 1.0);
        drop(c); // abandoned: pending for good
        assert_eq!(rec.gauge("flowgate_source_watermark_pending", &w), 1.0);
    }

    #[test]
    fn partitioned_watermark_sums_its_partitions() {
        let rec = Recorded::new();
        let w = [("name", "p")];
        let mut watermark = rec.scope(|| PartitionedWatermark::new().name("p"));
        let gauges = || {
            (
                rec.gauge("flowgate_source_watermark_pending", &w),
                rec.gauge("flowgate_source_watermark_partitions", &w),
            )
        };
        assert_eq!(gauges(), (0.0, 0.0));
        watermark.track(0u32, 5).unwrap();
        watermark.track(0, 6).unwrap();
        watermark.track(1, 9).unwrap();
        assert!(watermark.track(1, 9).is_err());
        assert_eq!(gauges(), (3.0, 2.0));
        watermark.ack(&0, 6).unwrap(); // behind 5: still pending
        assert_eq!(gauges(), (3.0, 2.0));
        watermark.ack(&0, 5).unwrap();
        assert_eq!(gauges(), (1.0, 2.0));
        watermark.remove(&1);
        assert_eq!(gauges(), (0.0, 1.0));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn unnamed_sources_and_watermarks_register_nothing() {
        let rec = Recorded::new();
        let (mut source, mut watermark, shared, mut partitioned) = rec.scope(|| {
            (
                CursorSource::builder(0u64)
                    .checkpoint(MemoryCheckpointStore::new())
                    .build(three_pages)
                    .unwrap(),
                Watermark::new(),
                SharedWatermark::new(),
                PartitionedWatermark::new(),
            )
        });
        let control = source.control();
        while let Some(next) = source.next().await {
            next.unwrap().1.ack();
        }
        control.finished().await;
        watermark.track(1).unwrap();
        watermark.ack(1).unwrap();
        shared.try_track(1).unwrap().ack();
        partitioned.track(0u8, 1).unwrap();
        partitioned.ack(&0, 1).unwrap();
        assert!(rec.is_empty(), "{:?}", rec.names());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn series_have_the_documented_names() {
        let rec = Recorded::new();
        rec.scope(|| {
            let _ = CursorSource::builder(0u64)
                .name("x")
                .build(three_pages)
                .unwrap();
            let _ = Watermark::new().name("x");
            let _ = PartitionedWatermark::<u8>::new().name("x");
        });
        let names = rec.names();
        // 14 source series (commits has two outcomes: 15), 2 + 2 watermark
        // ones, the pending gauge shared by name and series.
        assert_eq!(names.len(), 15 + 2 + 1, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("flowgate_source_")));
        assert!(names.iter().all(|n| n.contains("name=x")));
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_fetch_warns_once_with_the_name() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let (source, driver) = CursorSource::builder(0u64)
        .name("orders")
        .on_fetch_error(OnFetchError::Pause)
        .build_pair(fails_once())
        .unwrap();
    let mut driver = task::spawn(driver);
    let mut source = task::spawn(source);
    assert_pending!(driver.poll());
    assert!(assert_ready!(source.poll_next()).unwrap().is_err());
    let warns = traced.events_at_least(Level::WARN, "flowgate::source");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].level, Level::WARN);
    assert_eq!(warns[0].field("name"), Some("orders"));
    assert!(
        warns[0].message.contains("fetch failed"),
        "{}",
        warns[0].message
    );
    assert!(warns[0].message.contains("pauses"), "{}", warns[0].message);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_dropped_ack_and_a_failed_commit_warn_once_each() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let store = Flaky::default();
    store.fail_commit.store(true, Ordering::SeqCst);
    let (source, driver) = CursorSource::builder(0u64)
        .name("orders")
        .checkpoint(store)
        .max_pages_in_flight(2)
        .build_pair(endless)
        .unwrap();
    let mut driver = task::spawn(driver);
    let mut source = task::spawn(source);
    assert_pending!(driver.poll());
    // Page 0 acked (its commit fails), then an item of page 1 dropped.
    for _ in 0..3 {
        assert_ready!(source.poll_next()).unwrap().unwrap().1.ack();
    }
    assert_pending!(driver.poll());
    drop(assert_ready!(source.poll_next()).unwrap().unwrap().1);
    let _ = driver.poll();
    let warns = traced.events_at_least(Level::WARN, "flowgate::source");
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert!(warns.iter().all(|w| w.field("name") == Some("orders")));
    assert_eq!(warns[0].field("error"), Some("store failed: disk full"));
    assert!(
        warns[1].message.contains("dropped without ack"),
        "{}",
        warns[1].message
    );
}

#[test]
fn an_abandoned_offset_warns_once() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let watermark = SharedWatermark::new().name("stream:orders");
    let tokens: Vec<_> = (0..3).map(|o| watermark.try_track(o).unwrap()).collect();
    drop(tokens);
    let warns = traced.events_at_least(Level::WARN, "flowgate::source::watermark");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].field("name"), Some("stream:orders"));
    assert_eq!(warns[0].field("offset"), Some("0"));
}
