//! `flowgate::batch`: the `flowgate_batch_*` series of `Batcher` and
//! `KeyedBatcher` (feature `metrics`), their flush spans and their events.

use std::time::Duration;

use flowgate::batch::{Batcher, KeyedBatcher};
use tokio::sync::mpsc;
use tokio::time::sleep;
use tracing::{Instrument, Level};

use crate::common::Traced;

const TARGET: &str = "flowgate::batch";

fn ok_after(
    ms: u64,
) -> impl FnMut(Vec<u32>) -> futures_util::future::BoxFuture<'static, Result<(), String>> {
    move |_| {
        Box::pin(async move {
            sleep(Duration::from_millis(ms)).await;
            Ok(())
        })
    }
}

#[cfg(feature = "metrics")]
mod series {
    use std::pin::pin;

    use super::*;
    use crate::common::Recorded;

    const TRIGGERS: [&str; 5] = ["size", "bytes", "delay", "flush", "close"];
    const OUTCOMES: [&str; 5] = ["ok", "error", "panic", "mismatch", "closed"];

    fn n(name: &str) -> [(&str, &str); 1] {
        [("name", name)]
    }

    /// Every counter and gauge of batcher `name`, as `(series, value)`, in a
    /// fixed order, to compare whole states at once.
    fn state(rec: &Recorded, name: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (metric, value) in [
            (
                "submitted",
                rec.counter("flowgate_batch_items_submitted_total", &n(name)) as f64,
            ),
            (
                "pending",
                rec.gauge("flowgate_batch_items_pending", &n(name)),
            ),
            (
                "flushing",
                rec.gauge("flowgate_batch_items_flushing", &n(name)),
            ),
            (
                "waiting",
                rec.gauge("flowgate_batch_submitters_waiting", &n(name)),
            ),
        ] {
            out.push((metric.to_owned(), value));
        }
        for outcome in OUTCOMES {
            let labels = [("name", name), ("outcome", outcome)];
            let value = rec.counter("flowgate_batch_items_flushed_total", &labels);
            out.push((format!("items_{outcome}"), value as f64));
        }
        for outcome in &OUTCOMES[..4] {
            let labels = [("name", name), ("outcome", *outcome)];
            let value = rec.counter("flowgate_batch_flushes_completed_total", &labels);
            out.push((format!("completed_{outcome}"), value as f64));
        }
        for trigger in TRIGGERS {
            let labels = [("name", name), ("trigger", trigger)];
            let value = rec.counter("flowgate_batch_flushes_total", &labels);
            out.push((format!("trigger_{trigger}"), value as f64));
        }
        for reason in ["closed", "full"] {
            let labels = [("name", name), ("reason", reason)];
            let value = rec.counter("flowgate_batch_rejected_total", &labels);
            out.push((format!("rejected_{reason}"), value as f64));
        }
        out
    }

    /// `state` with every value zero except `nonzero`.
    fn expect(nonzero: &[(&str, f64)]) -> Vec<(String, f64)> {
        let mut names: Vec<String> = ["submitted", "pending", "flushing", "waiting"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        names.extend(OUTCOMES.iter().map(|o| format!("items_{o}")));
        names.extend(OUTCOMES[..4].iter().map(|o| format!("completed_{o}")));
        names.extend(TRIGGERS.iter().map(|t| format!("trigger_{t}")));
        names.extend(["rejected_closed".to_owned(), "rejected_full".to_owned()]);
        for (name, _) in nonzero {
            assert!(names.iter().any(|n| n == name), "unknown series {name}");
        }
        names
            .into_iter()
            .map(|name| {
                let value = nonzero
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0.0, |(_, v)| *v);
                (name, value)
            })
            .collect()
    }

    fn hist(rec: &Recorded, metric: &str, name: &str) -> Vec<f64> {
        rec.histogram(metric, &n(name))
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_batch_flushed_by_size_moves_every_series() {
        let rec = Recorded::new();
        let (started, mut started_rx) = mpsc::unbounded_channel();
        let batcher = rec
            .scope(|| {
                Batcher::builder()
                    .name("rows")
                    .max_items(2)
                    .max_delay(Duration::from_secs(3600))
                    .build(move |items: Vec<u32>| {
                        started.send(items.len()).unwrap();
                        async {
                            sleep(Duration::from_millis(5)).await;
                            Ok::<(), String>(())
                        }
                    })
            })
            .unwrap();
        // Registered at build, every series at zero.
        assert_eq!(state(&rec, "rows"), expect(&[]));

        let first = batcher.submit(1).await.unwrap();
        assert_eq!(
            state(&rec, "rows"),
            expect(&[("submitted", 1.0), ("pending", 1.0)])
        );
        sleep(Duration::from_millis(3)).await;
        let second = batcher.submit(2).await.unwrap();
        assert_eq!(
            state(&rec, "rows"),
            expect(&[("submitted", 2.0), ("pending", 2.0)])
        );

        // The worker hands the full batch to the flush function.
        assert_eq!(started_rx.recv().await, Some(2));
        assert_eq!(
            state(&rec, "rows"),
            expect(&[("submitted", 2.0), ("flushing", 2.0), ("trigger_size", 1.0)])
        );
        assert_eq!(hist(&rec, "flowgate_batch_flush_size", "rows"), [2.0]);
        // The first item waited 3 ms for the second.
        assert_eq!(
            hist(&rec, "flowgate_batch_oldest_item_age_seconds", "rows"),
            [0.003]
        );
        assert!(hist(&rec, "flowgate_batch_flush_duration_seconds", "rows").is_empty());

        first.await.unwrap();
        second.await.unwrap();
        assert_eq!(
            state(&rec, "rows"),
            expect(&[
                ("submitted", 2.0),
                ("items_ok", 2.0),
                ("completed_ok", 1.0),
                ("trigger_size", 1.0),
            ])
        );
        assert_eq!(
            hist(&rec, "flowgate_batch_flush_duration_seconds", "rows"),
            [0.005]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_batch_flushed_by_delay() {
        let rec = Recorded::new();
        let batcher = rec
            .scope(|| {
                Batcher::builder()
                    .name("slow")
                    .max_items(100)
                    .max_delay(Duration::from_millis(10))
                    .build(ok_after(2))
            })
            .unwrap();
        let (a, b) = tokio::join!(batcher.submit_and_wait(1), batcher.submit_and_wait(2));
        a.unwrap();
        b.unwrap();
        assert_eq!(
            state(&rec, "slow"),
            expect(&[
                ("submitted", 2.0),
                ("items_ok", 2.0),
                ("completed_ok", 1.0),
                ("trigger_delay", 1.0),
            ])
        );
        assert_eq!(hist(&rec, "flowgate_batch_flush_size", "slow"), [2.0]);
        assert_eq!(
            hist(&rec, "flowgate_batch_oldest_item_age_seconds", "slow"),
            [0.010]
        );
        assert_eq!(
            hist(&rec, "flowgate_batch_flush_duration_seconds", "slow"),
            [0.002]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn bytes_flush_and_close_triggers() {
        let rec = Recorded::new();
        let batcher = rec
            .scope(|| {
                Batcher::builder()
                    .name("t")
                    .max_bytes(10, |item: &u32| *item as usize)
                    .max_delay(Duration::from_secs(3600))
                    .build(ok_after(0))
            })
            .unwrap();
        // 6 + 6 would exceed 10: the first batch goes by bytes.
        let a = batcher.submit(6).await.unwrap();
        let b = batcher.submit(6).await.unwrap();
        a.await.unwrap();
        // The second by flush(), a third by close().
        batcher.flush().await;
        b.await.unwrap();
        let c = batcher.submit(1).await.unwrap();
        batcher.close().await;
        c.await.unwrap();
        assert_eq!(
            state(&rec, "t"),
            expect(&[
                ("submitted", 3.0),
                ("items_ok", 3.0),
                ("completed_ok", 3.0),
                ("trigger_bytes", 1.0),
                ("trigger_flush", 1.0),
                ("trigger_close", 1.0),
            ])
        );
        assert_eq!(
            hist(&rec, "flowgate_batch_flush_size", "t"),
            [1.0, 1.0, 1.0]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_failing_and_a_panicking_flush_count_their_outcomes() {
        let rec = Recorded::new();
        let batcher = rec
            .scope(|| {
                Batcher::builder()
                    .name("bad")
                    .max_items(3)
                    .build(|items: Vec<u32>| async move {
                        if items.contains(&0) {
                            panic!("zero");
                        }
                        Err::<(), _>("down".to_owned())
                    })
            })
            .unwrap();
        let outcomes =
            futures_util::future::join_all((1..=3).map(|i| batcher.submit_and_wait(i))).await;
        assert!(outcomes.iter().all(Result::is_err));
        let (a, b) = tokio::join!(batcher.submit_and_wait(0), batcher.submit_and_wait(5));
        assert!(a.unwrap_err().flush_error().unwrap().is_panic());
        assert!(b.is_err());
        assert_eq!(
            state(&rec, "bad"),
            expect(&[
                ("submitted", 5.0),
                ("items_error", 3.0),
                ("items_panic", 2.0),
                ("completed_error", 1.0),
                ("completed_panic", 1.0),
                ("trigger_size", 1.0),
                ("trigger_delay", 1.0),
            ])
        );
        assert_eq!(hist(&rec, "flowgate_batch_flush_size", "bad"), [3.0, 2.0]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn rejections_by_reason() {
        let rec = Recorded::new();
        let (batcher, worker) = rec
            .scope(|| {
                Batcher::builder()
                    .name("r")
                    .max_items(1)
                    .capacity(1)
                    .build_pair(ok_after(0))
            })
            .unwrap();
        // No worker running: the one unit of room stays taken.
        let first = batcher.try_submit(1).unwrap();
        assert!(batcher.try_submit(2).unwrap_err().is_full());
        assert!(batcher.try_submit_with(3, |_| ()).unwrap_err().is_full());
        tokio::spawn(worker);
        first.await.unwrap();
        batcher.close().await;
        assert!(batcher.try_submit(4).is_err());
        assert!(batcher.submit(5).await.is_err());
        assert!(batcher.submit_and_wait(6).await.is_err());
        assert!(batcher.submit_with(7, |_| ()).await.is_err());
        assert!(batcher.reserve().await.is_err());
        assert_eq!(
            state(&rec, "r"),
            expect(&[
                ("submitted", 1.0),
                ("items_ok", 1.0),
                ("completed_ok", 1.0),
                ("trigger_size", 1.0),
                ("rejected_full", 2.0),
                ("rejected_closed", 5.0),
            ])
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_submitter_waiting_for_room_then_served() {
        let rec = Recorded::new();
        let (batcher, worker) = rec
            .scope(|| {
                Batcher::builder()
                    .name("full")
                    .max_items(2)
                    .capacity(2)
                    .build_pair(ok_after(0))
            })
            .unwrap();
        let a = batcher.try_submit(1).unwrap();
        let b = batcher.try_submit(2).unwrap();
        let mut waiting = pin!(batcher.submit_and_wait(3));
        assert!(futures_util::poll!(waiting.as_mut()).is_pending());
        assert_eq!(
            rec.gauge("flowgate_batch_submitters_waiting", &n("full")),
            1.0
        );
        assert_eq!(rec.gauge("flowgate_batch_items_pending", &n("full")), 2.0);
        // The worker starts the full batch: its room goes to the waiter.
        tokio::spawn(worker);
        a.await.unwrap();
        b.await.unwrap();
        assert_eq!(
            rec.gauge("flowgate_batch_submitters_waiting", &n("full")),
            0.0
        );
        waiting.await.unwrap();
        assert_eq!(
            state(&rec, "full"),
            expect(&[
                ("submitted", 3.0),
                ("items_ok", 3.0),
                ("completed_ok", 2.0),
                ("trigger_size", 1.0),
                ("trigger_delay", 1.0),
            ])
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_cancelled_submit_and_wait_brings_the_gauges_back() {
        let rec = Recorded::new();
        let (batcher, worker) = rec
            .scope(|| {
                Batcher::builder()
                    .name("c")
                    .max_items(2)
                    .capacity(2)
                    .build_pair(ok_after(0))
            })
            .unwrap();
        // Accepted, then cancelled: the item stays submitted.
        let mut accepted = Box::pin(batcher.submit_and_wait(1));
        assert!(futures_util::poll!(accepted.as_mut()).is_pending());
        drop(accepted);
        let _b = batcher.try_submit(2).unwrap();
        // Waiting for room, then cancelled: it leaves the queue.
        let mut waiting = Box::pin(batcher.submit_and_wait(3));
        assert!(futures_util::poll!(waiting.as_mut()).is_pending());
        assert_eq!(rec.gauge("flowgate_batch_submitters_waiting", &n("c")), 1.0);
        drop(waiting);
        assert_eq!(rec.gauge("flowgate_batch_submitters_waiting", &n("c")), 0.0);
        assert_eq!(rec.gauge("flowgate_batch_items_pending", &n("c")), 2.0);
        tokio::spawn(worker);
        batcher.close().await;
        assert_eq!(
            state(&rec, "c"),
            expect(&[
                ("submitted", 2.0),
                ("items_ok", 2.0),
                ("completed_ok", 1.0),
                ("trigger_size", 1.0),
            ])
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_dropped_worker_counts_its_items_as_closed() {
        let rec = Recorded::new();
        let (started, mut started_rx) = mpsc::unbounded_channel();
        let (batcher, worker) = rec
            .scope(|| {
                Batcher::builder()
                    .name("cut")
                    .max_items(2)
                    .build_pair(move |_: Vec<u32>| {
                        started.send(()).unwrap();
                        std::future::pending::<Result<(), String>>()
                    })
            })
            .unwrap();
        let worker = tokio::spawn(worker);
        let flushing = [
            batcher.submit(1).await.unwrap(),
            batcher.submit(2).await.unwrap(),
        ];
        started_rx.recv().await.unwrap();
        let waiting = batcher.submit(3).await.unwrap();
        assert_eq!(rec.gauge("flowgate_batch_items_flushing", &n("cut")), 2.0);
        assert_eq!(rec.gauge("flowgate_batch_items_pending", &n("cut")), 1.0);
        worker.abort();
        let _ = worker.await;
        for flushed in flushing {
            assert!(flushed.await.unwrap_err().is_closed());
        }
        assert!(waiting.await.unwrap_err().is_closed());
        assert_eq!(
            state(&rec, "cut"),
            expect(&[
                ("submitted", 3.0),
                ("items_closed", 3.0),
                ("trigger_size", 1.0)
            ])
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_unnamed_batcher_registers_nothing() {
        let rec = Recorded::new();
        let (batcher, keyed) = rec.scope(|| {
            let batcher = Batcher::builder().max_items(1).build(ok_after(1)).unwrap();
            let keyed = KeyedBatcher::builder()
                .max_items(1)
                .build(|_: u8, _: Vec<u32>| async { Err::<(), _>("no") })
                .unwrap();
            (batcher, keyed)
        });
        batcher.submit_and_wait(1).await.unwrap();
        assert!(keyed.submit_and_wait(1, 2).await.is_err());
        batcher.close().await;
        assert!(batcher.try_submit(3).is_err());
        assert!(rec.is_empty(), "{:?}", rec.names());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_series_a_named_batcher_registers() {
        let rec = Recorded::new();
        let _batcher = rec.scope(|| Batcher::builder().name("p").build(ok_after(0)).unwrap());
        let mut expected: Vec<String> = vec![
            "flowgate_batch_flush_duration_seconds{name=p}".into(),
            "flowgate_batch_flush_size{name=p}".into(),
            "flowgate_batch_items_flushing{name=p}".into(),
            "flowgate_batch_items_pending{name=p}".into(),
            "flowgate_batch_items_submitted_total{name=p}".into(),
            "flowgate_batch_oldest_item_age_seconds{name=p}".into(),
            "flowgate_batch_rejected_total{name=p,reason=closed}".into(),
            "flowgate_batch_rejected_total{name=p,reason=full}".into(),
            "flowgate_batch_submitters_waiting{name=p}".into(),
        ];
        expected.extend(
            OUTCOMES
                .iter()
                .map(|o| format!("flowgate_batch_items_flushed_total{{name=p,outcome={o}}}")),
        );
        expected.extend(
            OUTCOMES[..4]
                .iter()
                .map(|o| format!("flowgate_batch_flushes_completed_total{{name=p,outcome={o}}}")),
        );
        expected.extend(
            TRIGGERS
                .iter()
                .map(|t| format!("flowgate_batch_flushes_total{{name=p,trigger={t}}}")),
        );
        expected.sort();
        assert_eq!(rec.names(), expected);

        // A keyed batcher has the same, two triggers and the open keys more.
        let rec = Recorded::new();
        let _keyed = rec.scope(|| {
            KeyedBatcher::builder()
                .name("p")
                .build(|_: u8, _: Vec<u32>| async { Ok::<(), String>(()) })
                .unwrap()
        });
        expected.push("flowgate_batch_open_keys{name=p}".into());
        expected.push("flowgate_batch_flushes_total{name=p,trigger=open_keys}".into());
        expected.push("flowgate_batch_flushes_total{name=p,trigger=full}".into());
        expected.sort();
        assert_eq!(rec.names(), expected);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_keyed_batcher_counts_open_keys_and_early_flushes() {
        let rec = Recorded::new();
        let (batcher, worker) = rec
            .scope(|| {
                KeyedBatcher::builder()
                    .name("k")
                    .max_items(10)
                    .max_open_keys(2)
                    .capacity(10)
                    .build_pair(|_: char, _: Vec<u32>| async { Ok::<(), String>(()) })
            })
            .unwrap();
        let keyed = |trigger: &str| {
            rec.counter(
                "flowgate_batch_flushes_total",
                &[("name", "k"), ("trigger", trigger)],
            )
        };
        let mut flushed = Vec::new();
        for (key, item) in [('a', 1), ('b', 2), ('a', 3)] {
            flushed.push(batcher.try_submit(key, item).unwrap());
        }
        assert_eq!(rec.gauge("flowgate_batch_open_keys", &n("k")), 2.0);
        // A third key: the oldest open batch ('a') goes early.
        flushed.push(batcher.try_submit('c', 4).unwrap());
        assert_eq!(rec.gauge("flowgate_batch_open_keys", &n("k")), 2.0);
        tokio::spawn(worker);
        flushed.remove(0).await.unwrap();
        // Fill the capacity with the open batches of 'b' and 'c': the next
        // submitter seals the oldest ('b') to make room, and `try_submit`
        // is refused meanwhile.
        for item in 5..=12 {
            flushed.push(batcher.try_submit('c', item).unwrap());
        }
        assert!(batcher.try_submit('c', 13).unwrap_err().is_full());
        assert_eq!(rec.gauge("flowgate_batch_open_keys", &n("k")), 1.0);
        batcher.close().await;
        for flushed in flushed {
            flushed.await.unwrap();
        }
        assert_eq!(rec.gauge("flowgate_batch_open_keys", &n("k")), 0.0);
        assert_eq!(
            (keyed("open_keys"), keyed("full"), keyed("close")),
            (1, 1, 1)
        );
        assert_eq!(
            rec.counter(
                "flowgate_batch_items_flushed_total",
                &[("name", "k"), ("outcome", "ok")]
            ),
            12
        );
        assert_eq!(
            rec.counter(
                "flowgate_batch_rejected_total",
                &[("name", "k"), ("reason", "full")]
            ),
            1
        );
        assert_eq!(
            hist(&rec, "flowgate_batch_flush_size", "k"),
            [2.0, 1.0, 9.0]
        );
    }
}

// ===== tracing (with or without the feature) =====

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn one_flush_span_per_batch_with_its_fields() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let batcher = Batcher::builder()
        .name("rows")
        .max_items(2)
        .build(ok_after(1))
        .unwrap();
    let outcomes = futures_util::future::join_all((0..3).map(|i| batcher.submit_and_wait(i))).await;
    assert!(outcomes.iter().all(Result::is_ok));
    let spans = traced.spans_named(TARGET, "flush");
    assert_eq!(spans.len(), 2, "{spans:?}");
    for (span, (size, trigger)) in spans.iter().zip([("2", "size"), ("1", "delay")]) {
        assert_eq!(span.level, Level::INFO);
        assert_eq!(span.field("name"), Some("rows"));
        assert_eq!(span.field("size"), Some(size));
        assert_eq!(span.field("trigger"), Some(trigger));
        assert_eq!(span.field("outcome"), Some("ok"));
        assert!(span.closed);
    }
    // Nothing per item, and no event for a good flush.
    assert!(traced.events_at_least(Level::TRACE, TARGET).is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_flush_runs_inside_its_span_and_follows_from_the_submitters() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let batcher = Batcher::builder()
        .name("linked")
        .max_items(3)
        .build(|items: Vec<u32>| {
            tracing::info_span!("sink_call", n = items.len()).in_scope(|| ());
            async {
                tracing::info_span!("sink_write").in_scope(|| ());
                Ok::<(), String>(())
            }
        })
        .unwrap();
    let one = tracing::info_span!("request", id = 1);
    let two = tracing::info_span!("request", id = 2);
    let (a, b, c) = tokio::join!(
        batcher.submit_and_wait(1).instrument(one.clone()),
        batcher.submit_and_wait(2).instrument(two.clone()),
        batcher.submit_and_wait(3).instrument(one.clone()),
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    let flush = traced.spans_named(TARGET, "flush");
    assert_eq!(flush.len(), 1);
    let flush = &flush[0];
    let mut follows = flush.follows_from.clone();
    follows.sort_unstable();
    let mut requests = vec![one.id().unwrap().into_u64(), two.id().unwrap().into_u64()];
    requests.sort_unstable();
    // Each distinct submitter span once.
    assert_eq!(follows, requests);
    // The flush span is the root of its own trace, not a child of a request.
    assert_eq!(flush.parent, None);
    for name in ["sink_call", "sink_write"] {
        let sink = traced
            .spans()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span"));
        assert_eq!(sink.parent, Some(flush.id), "{name}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn items_submitted_outside_spans_link_nothing() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let batcher = Batcher::builder().max_items(1).build(ok_after(0)).unwrap();
    batcher.submit_and_wait(1).await.unwrap();
    let flush = traced.spans_named(TARGET, "flush");
    assert_eq!(flush.len(), 1);
    assert!(flush[0].follows_from.is_empty());
    assert_eq!(flush[0].field("name"), Some(""));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_flush_warns_once_inside_its_span() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let batcher = Batcher::builder()
        .name("db")
        .max_items(3)
        .build(|_: Vec<u32>| async { Err::<(), _>("connection refused".to_owned()) })
        .unwrap();
    let outcomes = futures_util::future::join_all((0..3).map(|i| batcher.submit_and_wait(i))).await;
    assert!(outcomes.iter().all(Result::is_err));
    let events = traced.events_at_least(Level::WARN, TARGET);
    assert_eq!(events.len(), 1, "once per flush, not per item: {events:?}");
    let event = &events[0];
    assert_eq!(event.level, Level::WARN);
    assert_eq!(event.field("name"), Some("db"));
    assert_eq!(event.field("size"), Some("3"));
    assert_eq!(
        event.field("error"),
        Some("flush function returned an error")
    );
    assert_eq!(event.field("error_type"), Some("alloc::string::String"));
    let flush = &traced.spans_named(TARGET, "flush")[0];
    assert_eq!(event.span, Some(flush.id));
    assert_eq!(flush.field("outcome"), Some("error"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panicked_flush_is_an_error_event() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let batcher = Batcher::builder()
        .name("boom")
        .max_items(2)
        .build(|_: Vec<u32>| async {
            if true {
                panic!("disk on fire");
            }
            Ok::<(), String>(())
        })
        .unwrap();
    let (a, b) = tokio::join!(batcher.submit_and_wait(1), batcher.submit_and_wait(2));
    assert!(a.is_err() && b.is_err());
    let events = traced.events_at_least(Level::WARN, TARGET);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.level, Level::ERROR);
    assert_eq!(event.field("name"), Some("boom"));
    assert_eq!(event.field("size"), Some("2"));
    assert_eq!(
        event.field("error"),
        Some("flush function panicked: disk on fire")
    );
    let flush = &traced.spans_named(TARGET, "flush")[0];
    assert_eq!(flush.field("outcome"), Some("panic"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_dropped_worker_is_an_error_event_and_cuts_its_spans_short() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let (batcher, worker) = Batcher::builder()
        .name("cut")
        .max_items(1)
        .build_pair(move |_: Vec<u32>| {
            started.send(()).unwrap();
            std::future::pending::<Result<(), String>>()
        })
        .unwrap();
    let worker = tokio::spawn(worker);
    let flushing = batcher.submit(1).await.unwrap();
    started_rx.recv().await.unwrap();
    let waiting = batcher.submit(2).await.unwrap();
    worker.abort();
    let _ = worker.await;
    assert!(flushing.await.is_err() && waiting.await.is_err());
    let events = traced.events_at_least(Level::WARN, TARGET);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::ERROR);
    assert_eq!(events[0].field("name"), Some("cut"));
    assert_eq!(events[0].field("items"), Some("2"));
    assert_eq!(events[0].field("flushing"), Some("1"));
    let flush = traced.spans_named(TARGET, "flush");
    assert_eq!(flush.len(), 1, "the waiting batch never started");
    assert_eq!(flush[0].field("outcome"), Some("closed"));
    assert!(flush[0].closed);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_keyed_batcher_has_the_same_span() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let batcher = KeyedBatcher::builder()
        .name("tables")
        .max_items(2)
        .build(|_: char, _: Vec<u32>| async { Ok::<(), String>(()) })
        .unwrap();
    let span = tracing::info_span!("consumer");
    let (a, b) = tokio::join!(
        batcher.submit_and_wait('a', 1).instrument(span.clone()),
        batcher.submit_and_wait('a', 2).instrument(span.clone()),
    );
    assert!(a.is_ok() && b.is_ok());
    let flush = traced.spans_named(TARGET, "flush");
    assert_eq!(flush.len(), 1);
    assert_eq!(flush[0].field("name"), Some("tables"));
    assert_eq!(flush[0].field("trigger"), Some("size"));
    assert_eq!(flush[0].follows_from, [span.id().unwrap().into_u64()]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panicking_callback_is_an_error_event_in_the_flush_span() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let batcher = Batcher::builder()
        .name("cb")
        .max_items(1)
        .build(ok_after(0))
        .unwrap();
    batcher
        .submit_with(1, |_| panic!("callback bug"))
        .await
        .unwrap();
    batcher.close().await;
    let events = traced.events_at_least(Level::WARN, TARGET);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::ERROR);
    assert_eq!(events[0].field("panic"), Some("callback bug"));
    let flush = &traced.spans_named(TARGET, "flush")[0];
    assert_eq!(events[0].span, Some(flush.id));
    assert_eq!(flush.field("name"), Some("cb"));
}
