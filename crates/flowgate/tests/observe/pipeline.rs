//! `flowgate::pipeline` stages: their series (feature `metrics`) and their
//! tracing events.

use std::time::Duration;

use flowgate::prelude::*;
use futures_util::stream::{self, StreamExt};
use tokio::time::advance;
use tokio_test::task;
use tokio_test::{assert_pending, assert_ready_eq};

use crate::common::Traced;

/// A stream yielding `items`, then pending forever (it never ends).
fn then_pending<T>(items: Vec<T>) -> impl futures_util::Stream<Item = T> {
    stream::iter(items).chain(stream::pending())
}

#[cfg(feature = "metrics")]
mod series {
    use super::*;

    use flowgate::limit::{InFlightLimit, Rate, RateLimiter};
    use flowgate::pipeline::Keep;

    use crate::common::Recorded;

    const IN: &str = "flowgate_pipeline_items_in_total";
    const OUT: &str = "flowgate_pipeline_items_out_total";
    const IN_FLIGHT: &str = "flowgate_pipeline_in_flight";
    const HELD: &str = "flowgate_pipeline_held";
    const DROPPED: &str = "flowgate_pipeline_items_dropped_total";

    fn named(n: &str) -> [(&'static str, &str); 1] {
        [("name", n)]
    }

    async fn sleep_ms(ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    // ===== par_map =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_counts_in_out_in_flight_and_finished_outputs_held() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([30u64, 10, 20])
                .par_map(2, sleep_ms)
                .name("enrich")
        });
        let l = named("enrich");
        let mut s = task::spawn(stage);

        // t=0: two calls started, the third item waits upstream.
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 2);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);

        // t=10: the second call finished first; its output waits for the
        // first, in its slot, so nothing more is pulled.
        advance(Duration::from_millis(10)).await;
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 2);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.gauge(HELD, &l), 1.0);
        assert_eq!(rec.counter(OUT, &l), 0);

        // t=30: the first finished: both out, in order; the third starts.
        advance(Duration::from_millis(20)).await;
        assert_ready_eq!(s.poll_next(), Some(30));
        assert_eq!(rec.counter(OUT, &l), 1);
        assert_ready_eq!(s.poll_next(), Some(10));
        assert_eq!(rec.counter(OUT, &l), 2);
        assert_eq!(rec.counter(IN, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
        // The third call is polled (its timer starts) at the next poll.
        assert_pending!(s.poll_next());

        advance(Duration::from_millis(20)).await;
        assert_ready_eq!(s.poll_next(), Some(20));
        assert_ready_eq!(s.poll_next(), None);
        assert_eq!(rec.counter(IN, &l), 3);
        assert_eq!(rec.counter(OUT, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_pipeline_held{name=enrich}",
                "flowgate_pipeline_in_flight{name=enrich}",
                "flowgate_pipeline_items_in_total{name=enrich}",
                "flowgate_pipeline_items_out_total{name=enrich}",
            ]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_dropped_with_calls_in_flight_and_outputs_held_gives_its_levels_back() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([30u64, 10, 20, 40])
                .par_map(3, sleep_ms)
                .name("enrich")
        });
        let l = named("enrich");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        advance(Duration::from_millis(10)).await;
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 1.0);

        drop(s);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
        assert_eq!(rec.counter(IN, &l), 3);
        assert_eq!(rec.counter(OUT, &l), 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_unordered_counts_and_holds_nothing() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([30u64, 10, 20])
                .par_map_unordered(2, sleep_ms)
                .name("fetch")
        });
        let l = named("fetch");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);

        advance(Duration::from_millis(10)).await;
        assert_ready_eq!(s.poll_next(), Some(10));
        assert_eq!(rec.counter(OUT, &l), 1);
        // The poll that yielded also started the third call.
        assert_eq!(rec.counter(IN, &l), 2);
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);

        let rest: Vec<u64> = s.collect().await;
        assert_eq!(rest, vec![30, 20]);
        assert_eq!(rec.counter(OUT, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_pipeline_in_flight{name=fetch}",
                "flowgate_pipeline_items_in_total{name=fetch}",
                "flowgate_pipeline_items_out_total{name=fetch}",
            ]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_unordered_dropped_with_calls_in_flight_gives_them_back() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([30u64, 10])
                .par_map_unordered(4, sleep_ms)
                .name("fetch")
        });
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &named("fetch")), 2.0);
        drop(s);
        assert_eq!(rec.gauge(IN_FLIGHT, &named("fetch")), 0.0);
    }

    // ===== par_map_keyed =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_keyed_counts_items_waiting_for_their_key_as_held() {
        let rec = Recorded::new();
        // Key = the item's parity; one call per key at a time.
        let stage = rec.scope(|| {
            stream::iter([10u64, 30, 20, 40])
                .par_map_keyed(4, 1, |x| (*x / 10) % 2, sleep_ms)
                .name("accounts")
        });
        let l = named("accounts");
        let mut s = task::spawn(stage);

        // Keys: 10 → 1, 30 → 1, 20 → 0, 40 → 0. 10 and 20 run, 30 and 40
        // wait for their key.
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 4);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 2.0);

        // t=10: 10 out; 30 starts at the next poll.
        advance(Duration::from_millis(10)).await;
        assert_ready_eq!(s.poll_next(), Some(10));
        assert_eq!(rec.counter(OUT, &l), 1);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.gauge(HELD, &l), 2.0);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 1.0);

        // t=20: 20 finished, but 30 comes first in input order: held, and
        // 40 starts.
        advance(Duration::from_millis(10)).await;
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 1.0);

        let rest: Vec<u64> = s.collect().await;
        assert_eq!(rest, vec![30, 20, 40]);
        assert_eq!(rec.counter(OUT, &l), 4);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_keyed_unordered_dropped_gives_its_levels_back() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([1u32, 1, 1])
                .par_map_keyed_unordered(2, 1, |x| *x, |_| std::future::pending::<()>())
                .name("hot")
        });
        let l = named("hot");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.gauge(HELD, &l), 2.0);
        drop(s);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
    }

    // ===== rate_limit and limit_in_flight =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn rate_limit_stage_holds_the_waiting_item_and_records_on_the_limiter() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            let limiter = RateLimiter::with_name(Rate::per_second(10), "api");
            stream::iter([1u32, 2]).rate_limit(limiter).name("calls")
        });
        let l = named("calls");
        let api = named("api");
        let mut s = task::spawn(stage);
        assert_ready_eq!(s.poll_next(), Some(1));
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 2);
        assert_eq!(rec.counter(OUT, &l), 1);
        assert_eq!(rec.gauge(HELD, &l), 1.0);
        assert_eq!(rec.gauge("flowgate_limit_waiting", &api), 1.0);

        advance(Duration::from_millis(100)).await;
        assert_ready_eq!(s.poll_next(), Some(2));
        assert_eq!(rec.counter(OUT, &l), 2);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
        assert_eq!(rec.gauge("flowgate_limit_waiting", &api), 0.0);
        assert_eq!(rec.counter("flowgate_limit_granted_total", &api), 2);
        assert_eq!(
            rec.histogram("flowgate_limit_wait_seconds", &api),
            vec![0.0, 0.1]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn rate_limit_stage_dropped_while_waiting_gives_its_levels_back() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            let limiter = RateLimiter::with_name(Rate::per_second(10), "api");
            stream::iter([1u32, 2]).rate_limit(limiter).name("calls")
        });
        let mut s = task::spawn(stage);
        assert_ready_eq!(s.poll_next(), Some(1));
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge("flowgate_limit_waiting", &named("api")), 1.0);
        drop(s);
        assert_eq!(rec.gauge(HELD, &named("calls")), 0.0);
        assert_eq!(rec.gauge("flowgate_limit_waiting", &named("api")), 0.0);
        assert_eq!(
            rec.histogram("flowgate_limit_wait_seconds", &named("api")),
            vec![0.0]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn limit_in_flight_stage_holds_the_waiting_item_and_records_on_the_limit() {
        let rec = Recorded::new();
        let (limit, stage) = rec.scope(|| {
            let limit = InFlightLimit::with_name(1, "db");
            let stage = stream::iter([1u32, 2])
                .limit_in_flight(&limit)
                .name("writes");
            (limit, stage)
        });
        let (l, db) = (named("writes"), named("db"));
        let mut s = task::spawn(stage);
        let (first, permit) = match s.poll_next() {
            std::task::Poll::Ready(Some(pair)) => pair,
            other => panic!("expected an item, got {other:?}"),
        };
        assert_eq!(first, 1);
        assert_eq!(rec.gauge("flowgate_limit_in_flight", &db), 1.0);
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 2);
        assert_eq!(rec.counter(OUT, &l), 1);
        assert_eq!(rec.gauge(HELD, &l), 1.0);
        assert_eq!(rec.gauge("flowgate_limit_waiting", &db), 1.0);

        drop(permit);
        assert_eq!(rec.gauge("flowgate_limit_in_flight", &db), 0.0);
        assert!(s.is_woken());
        let second = match s.poll_next() {
            std::task::Poll::Ready(Some((item, permit))) => (item, permit),
            other => panic!("expected an item, got {other:?}"),
        };
        assert_eq!(second.0, 2);
        assert_eq!(rec.counter(OUT, &l), 2);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
        assert_eq!(rec.gauge("flowgate_limit_waiting", &db), 0.0);
        assert_eq!(rec.gauge("flowgate_limit_in_flight", &db), 1.0);
        assert_eq!(rec.counter("flowgate_limit_granted_total", &db), 2);
        drop(second);
        assert_eq!(rec.gauge("flowgate_limit_in_flight", &db), 0.0);
        assert_eq!(limit.in_flight(), 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn limit_in_flight_stage_dropped_while_waiting_gives_its_levels_back() {
        let rec = Recorded::new();
        let (limit, stage) = rec.scope(|| {
            let limit = InFlightLimit::with_name(1, "db");
            let stage = stream::iter([1u32]).limit_in_flight(&limit).name("writes");
            (limit, stage)
        });
        let _held = limit.try_acquire().unwrap();
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(HELD, &named("writes")), 1.0);
        assert_eq!(rec.gauge("flowgate_limit_waiting", &named("db")), 1.0);
        drop(s);
        assert_eq!(rec.gauge(HELD, &named("writes")), 0.0);
        assert_eq!(rec.gauge("flowgate_limit_waiting", &named("db")), 0.0);
    }

    // ===== batch =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn batch_counts_batches_by_trigger_with_sizes_and_open_time() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            then_pending(vec![1u32, 2, 3])
                .batch(2, Duration::from_millis(50))
                .name("rows")
        });
        let l = named("rows");
        let flush = stage.flush_handle();
        let mut s = task::spawn(stage);

        // Size: 1 and 2.
        assert_ready_eq!(s.poll_next(), Some(vec![1, 2]));
        // 3 opens a batch and waits.
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 3);
        assert_eq!(rec.counter(OUT, &l), 2);
        assert_eq!(rec.gauge(HELD, &l), 1.0);

        // Delay: 50 ms after 3 came.
        advance(Duration::from_millis(50)).await;
        assert_ready_eq!(s.poll_next(), Some(vec![3]));
        assert_eq!(rec.gauge(HELD, &l), 0.0);
        assert_eq!(rec.counter(OUT, &l), 3);
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "rows"), ("trigger", "size")]
            ),
            1
        );
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "rows"), ("trigger", "delay")]
            ),
            1
        );
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "rows"), ("trigger", "flush")]
            ),
            0
        );
        assert_eq!(
            rec.histogram("flowgate_pipeline_batch_size", &l),
            vec![2.0, 1.0]
        );
        assert_eq!(
            rec.histogram("flowgate_pipeline_batch_open_seconds", &l),
            vec![0.0, 0.05]
        );
        // A flush with nothing open yields nothing.
        flush.flush();
        assert_pending!(s.poll_next());
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "rows"), ("trigger", "flush")]
            ),
            0
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn batch_counts_flushes_and_the_last_batch_at_the_end() {
        let rec = Recorded::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let stage = rec.scope(|| {
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
                .batch(10, Duration::from_secs(1))
                .name("rows")
        });
        let trig = |t| [("name", "rows"), ("trigger", t)];
        let flush = stage.flush_handle();
        let mut s = task::spawn(stage);
        tx.send(1).unwrap();
        assert_pending!(s.poll_next());
        advance(Duration::from_millis(20)).await;
        flush.flush();
        assert_ready_eq!(s.poll_next(), Some(vec![1]));
        tx.send(2).unwrap();
        tx.send(3).unwrap();
        drop(tx);
        assert_ready_eq!(s.poll_next(), Some(vec![2, 3]));
        assert_ready_eq!(s.poll_next(), None);
        assert_eq!(
            rec.counter("flowgate_pipeline_batches_total", &trig("flush")),
            1
        );
        assert_eq!(
            rec.counter("flowgate_pipeline_batches_total", &trig("end")),
            1
        );
        assert_eq!(
            rec.counter("flowgate_pipeline_batches_total", &trig("size")),
            0
        );
        assert_eq!(
            rec.counter("flowgate_pipeline_batches_total", &trig("delay")),
            0
        );
        assert_eq!(
            rec.histogram("flowgate_pipeline_batch_open_seconds", &named("rows")),
            vec![0.02, 0.0]
        );
        assert_eq!(rec.counter(IN, &named("rows")), 3);
        assert_eq!(rec.counter(OUT, &named("rows")), 3);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn batch_dedup_counts_duplicates_as_dropped() {
        let rec = Recorded::new();
        let batches: Vec<Vec<u32>> = rec
            .scope(|| {
                stream::iter([1u32, 1, 2, 1, 3])
                    .batch_dedup_by_key(10, Duration::from_secs(1), |x| *x)
                    .name("keys")
            })
            .collect()
            .await;
        assert_eq!(batches, vec![vec![1, 2, 3]]);
        let l = named("keys");
        assert_eq!(rec.counter(IN, &l), 5);
        assert_eq!(rec.counter(OUT, &l), 3);
        assert_eq!(
            rec.counter(DROPPED, &[("name", "keys"), ("reason", "duplicate")]),
            2
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn batch_dropped_with_an_open_batch_gives_its_level_back() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            then_pending(vec![1u32, 2])
                .batch(10, Duration::from_secs(1))
                .name("rows")
        });
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(HELD, &named("rows")), 2.0);
        drop(s);
        assert_eq!(rec.gauge(HELD, &named("rows")), 0.0);
    }

    // ===== lossy stages =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn dedup_counts_duplicates_as_dropped() {
        let rec = Recorded::new();
        let out: Vec<u32> = rec
            .scope(|| {
                stream::iter([1u32, 1, 2, 1])
                    .dedup_last(8, |x| *x)
                    .name("events")
            })
            .collect()
            .await;
        assert_eq!(out, vec![1, 2]);
        let l = named("events");
        assert_eq!(rec.counter(IN, &l), 4);
        assert_eq!(rec.counter(OUT, &l), 2);
        assert_eq!(
            rec.counter(DROPPED, &[("name", "events"), ("reason", "duplicate")]),
            2
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn throttle_first_counts_throttled_drops() {
        let rec = Recorded::new();
        let out: Vec<u32> = rec
            .scope(|| {
                stream::iter([1u32, 2, 3])
                    .throttle_keep(Duration::from_secs(1), Keep::First)
                    .name("clicks")
            })
            .collect()
            .await;
        assert_eq!(out, vec![1]);
        assert_eq!(rec.counter(IN, &named("clicks")), 3);
        assert_eq!(rec.counter(OUT, &named("clicks")), 1);
        assert_eq!(
            rec.counter(DROPPED, &[("name", "clicks"), ("reason", "throttled")]),
            2
        );
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_pipeline_items_dropped_total{name=clicks,reason=throttled}",
                "flowgate_pipeline_items_in_total{name=clicks}",
                "flowgate_pipeline_items_out_total{name=clicks}",
            ]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn throttle_last_counts_superseded_drops() {
        let rec = Recorded::new();
        let out: Vec<u32> = rec
            .scope(|| {
                stream::iter([1u32, 2, 3])
                    .throttle_keep(Duration::from_secs(1), Keep::Last)
                    .name("pos")
            })
            .collect()
            .await;
        assert_eq!(out, vec![3]);
        assert_eq!(rec.counter(IN, &named("pos")), 3);
        assert_eq!(rec.counter(OUT, &named("pos")), 1);
        assert_eq!(
            rec.counter(DROPPED, &[("name", "pos"), ("reason", "superseded")]),
            2
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn debounce_counts_superseded_drops() {
        let rec = Recorded::new();
        let out: Vec<u32> = rec
            .scope(|| {
                stream::iter([1u32, 2, 3])
                    .debounce(Duration::from_millis(10))
                    .name("search")
            })
            .collect()
            .await;
        assert_eq!(out, vec![3]);
        assert_eq!(rec.counter(IN, &named("search")), 3);
        assert_eq!(rec.counter(OUT, &named("search")), 1);
        assert_eq!(
            rec.counter(DROPPED, &[("name", "search"), ("reason", "superseded")]),
            2
        );
    }

    // ===== timeouts =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn item_timeout_counts_items_and_timeouts() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            then_pending(vec![1u32])
                .item_timeout(Duration::from_secs(1))
                .name("ticks")
        });
        let mut s = task::spawn(stage);
        assert_ready_eq!(s.poll_next(), Some(Ok(1)));
        assert_pending!(s.poll_next());
        advance(Duration::from_secs(1)).await;
        assert!(matches!(
            s.poll_next(),
            std::task::Poll::Ready(Some(Err(_)))
        ));
        advance(Duration::from_secs(1)).await;
        assert!(matches!(
            s.poll_next(),
            std::task::Poll::Ready(Some(Err(_)))
        ));
        let l = named("ticks");
        assert_eq!(rec.counter(IN, &l), 1);
        assert_eq!(rec.counter(OUT, &l), 1);
        assert_eq!(rec.counter("flowgate_pipeline_timeouts_total", &l), 2);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn idle_timeout_counts_its_one_timeout() {
        let rec = Recorded::new();
        let out: Vec<_> = rec
            .scope(|| {
                then_pending(vec![1u32, 2])
                    .idle_timeout(Duration::from_secs(1))
                    .name("feed")
            })
            .collect()
            .await;
        assert_eq!(out.len(), 3);
        let l = named("feed");
        assert_eq!(rec.counter(IN, &l), 2);
        assert_eq!(rec.counter(OUT, &l), 2);
        assert_eq!(rec.counter("flowgate_pipeline_timeouts_total", &l), 1);
    }

    // ===== write_batches, par_map_retry, par_map_adaptive =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn write_batches_counts_its_batches_and_writes_in_flight() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter((0..5u32).map(|i| (i, i)))
                .write_batches(2, Duration::from_secs(1), 2, |rows: Vec<u32>| async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    rows.len()
                })
                .name("orders")
        });
        let l = named("orders");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.counter(IN, &l), 4);
        assert_eq!(rec.counter(OUT, &l), 4);
        drop(s);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);

        let rec = Recorded::new();
        let acks: Vec<(usize, Vec<u32>)> = rec
            .scope(|| {
                stream::iter((0..5u32).map(|i| (i, i)))
                    .write_batches(2, Duration::from_secs(1), 2, |rows: Vec<u32>| async move {
                        rows.len()
                    })
                    .name("orders")
            })
            .collect()
            .await;
        assert_eq!(acks.len(), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.counter(IN, &l), 5);
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "orders"), ("trigger", "size")]
            ),
            2
        );
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "orders"), ("trigger", "end")]
            ),
            1
        );
        assert_eq!(
            rec.histogram("flowgate_pipeline_batch_size", &l),
            vec![2.0, 2.0, 1.0]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn write_chunks_counts_items_batches_and_writes_in_flight() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([vec![0u32, 1, 2], vec![3], vec![4, 5, 6, 7]])
                .write_chunks(2, Duration::from_secs(1), 2, |rows: Vec<u32>| async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    rows.len()
                })
                .name("orders")
        });
        let l = named("orders");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        // Two writes of two rows each started; the first chunk's third row
        // waits as the next batch's first, and nothing more was read.
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.counter(IN, &l), 4);
        assert_eq!(rec.counter(OUT, &l), 4);
        assert_eq!(rec.gauge("flowgate_pipeline_held", &l), 0.0);
        drop(s);

        let rec = Recorded::new();
        let written: Vec<usize> = rec
            .scope(|| {
                stream::iter([vec![0u32, 1, 2], vec![3], vec![4]])
                    .write_chunks(2, Duration::from_secs(1), 2, |rows: Vec<u32>| async move {
                        rows.len()
                    })
                    .name("orders")
            })
            .collect()
            .await;
        assert_eq!(written, vec![2, 2, 1]);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.counter(IN, &l), 5);
        assert_eq!(rec.counter(OUT, &l), 5);
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "orders"), ("trigger", "size")]
            ),
            2
        );
        assert_eq!(
            rec.counter(
                "flowgate_pipeline_batches_total",
                &[("name", "orders"), ("trigger", "end")]
            ),
            1
        );
        assert_eq!(
            rec.histogram("flowgate_pipeline_batch_size", &l),
            vec![2.0, 2.0, 1.0]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_retry_counts_attempts_running_and_items_backing_off() {
        use flowgate::resilience::{Backoff, Retry};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};

        let rec = Recorded::new();
        let calls = Arc::new(AtomicU32::new(0));
        let retry = Retry::new(Backoff::constant(Duration::from_millis(100))).max_attempts(2);
        let stage = rec.scope(|| {
            let calls = calls.clone();
            stream::iter([1u32, 2])
                .par_map_retry(2, retry, move |x: &u32| {
                    let (x, calls) = (*x, calls.clone());
                    // 2 fails on its first call; each call takes 10 ms.
                    async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if x == 2 && calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            Err("flaky")
                        } else {
                            Ok(x)
                        }
                    }
                })
                .name("deliver")
        });
        let l = named("deliver");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 2);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);

        advance(Duration::from_millis(10)).await;
        // One of the two finished: 1 ok, or 2 failed and backing off.
        let first = s.poll_next();
        let mut out = Vec::new();
        if let std::task::Poll::Ready(Some(r)) = first {
            out.push(r.unwrap());
        }
        while let std::task::Poll::Ready(Some(r)) = s.poll_next() {
            out.push(r.unwrap());
        }
        assert_eq!(out, vec![1]);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.gauge(HELD, &l), 1.0);
        assert_eq!(rec.counter(OUT, &l), 1);

        // The back-off ends, the second attempt runs, then succeeds.
        advance(Duration::from_millis(100)).await;
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
        advance(Duration::from_millis(10)).await;
        assert_ready_eq!(s.poll_next().map(|r| r.map(Result::unwrap)), Some(2));
        assert_ready_eq!(s.poll_next().map(|r| r.map(Result::unwrap)), None);
        assert_eq!(rec.counter(OUT, &l), 2);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_retry_dropped_while_backing_off_gives_its_levels_back() {
        use flowgate::resilience::{Backoff, Retry};

        let rec = Recorded::new();
        let retry = Retry::new(Backoff::constant(Duration::from_secs(1))).max_attempts(3);
        let stage = rec.scope(|| {
            stream::iter([1u32, 2])
                .par_map_retry(2, retry, |x: &u32| {
                    let x = *x;
                    async move {
                        if x == 1 {
                            Err::<u32, &str>("down")
                        } else {
                            std::future::pending().await
                        }
                    }
                })
                .name("deliver")
        });
        let l = named("deliver");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 1.0);
        assert_eq!(rec.gauge(HELD, &l), 1.0);
        drop(s);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_adaptive_counts_calls_and_their_durations() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([30u64, 10, 20])
                .par_map_adaptive(2..=2, |ms| async move { Ok::<_, ()>(sleep_ms(ms).await) })
                .name("calls")
        });
        let l = named("calls");
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.counter(IN, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 1.0);

        advance(Duration::from_millis(10)).await;
        assert_ready_eq!(s.poll_next(), Some(Ok(10)));
        assert_eq!(rec.counter(OUT, &l), 1);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 2.0);
        assert_eq!(rec.gauge(HELD, &l), 0.0);

        let rest: Vec<_> = s.collect().await;
        assert_eq!(rest, vec![Ok(30), Ok(20)]);
        assert_eq!(rec.counter(OUT, &l), 3);
        assert_eq!(rec.gauge(IN_FLIGHT, &l), 0.0);
        assert_eq!(
            rec.histogram("flowgate_pipeline_call_duration_seconds", &l),
            vec![0.01, 0.03, 0.02]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn par_map_adaptive_dropped_gives_its_levels_back() {
        let rec = Recorded::new();
        let stage = rec.scope(|| {
            stream::iter([1u32, 2, 3])
                .par_map_adaptive(2..=2, |_| std::future::pending::<Result<(), ()>>())
                .name("calls")
        });
        let mut s = task::spawn(stage);
        assert_pending!(s.poll_next());
        assert_eq!(rec.gauge(IN_FLIGHT, &named("calls")), 2.0);
        assert_eq!(rec.gauge(HELD, &named("calls")), 1.0);
        drop(s);
        assert_eq!(rec.gauge(IN_FLIGHT, &named("calls")), 0.0);
        assert_eq!(rec.gauge(HELD, &named("calls")), 0.0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn debug_shows_the_name_only_when_named() {
        let unnamed = stream::iter([1u32]).par_map(2, std::future::ready);
        assert_eq!(
            format!("{unnamed:?}"),
            "ParMap { limit: 2, in_flight: 0, .. }"
        );
        let named = stream::iter([1u32])
            .par_map(2, std::future::ready)
            .name("x");
        assert_eq!(
            format!("{named:?}"),
            "ParMap { limit: 2, in_flight: 0, name: \"x\", .. }"
        );
    }

    // ===== unnamed =====

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn unnamed_stages_register_nothing() {
        let rec = Recorded::new();
        let (a, b, c, d, e) = rec.scope(|| {
            let limiter = RateLimiter::new(Rate::per_second(1000));
            let limit = InFlightLimit::new(2);
            let a = stream::iter([3u64, 1, 2])
                .par_map(2, sleep_ms)
                .par_map_unordered(2, sleep_ms)
                .par_map_keyed(2, 1, |x| *x, sleep_ms)
                .par_map_keyed_unordered(2, 1, |x| *x, sleep_ms)
                .rate_limit(limiter)
                .limit_in_flight(&limit)
                .map(|(x, _permit)| x)
                .collect::<Vec<_>>();
            let b = stream::iter([1u32, 1, 2])
                .dedup_last(4, |x| *x)
                .dedup_within(Duration::from_secs(1), |x| *x)
                .batch(2, Duration::from_secs(1))
                .collect::<Vec<_>>();
            let c = stream::iter([1u32, 1])
                .batch_dedup(2, Duration::from_secs(1))
                .collect::<Vec<_>>();
            let d = stream::iter([1u32, 2])
                .throttle_keep(Duration::from_secs(1), Keep::First)
                .debounce(Duration::from_millis(1))
                .item_timeout(Duration::from_secs(1))
                .collect::<Vec<_>>();
            let e = then_pending(vec![1u32])
                .idle_timeout(Duration::from_secs(1))
                .collect::<Vec<_>>();
            (a, b, c, d, e)
        });
        assert_eq!(a.await.len(), 3);
        assert_eq!(b.await, vec![vec![1, 2]]);
        assert_eq!(c.await, vec![vec![1]]);
        assert_eq!(d.await, vec![Ok(1)]);
        assert_eq!(e.await.len(), 2);
        assert!(rec.is_empty(), "registered: {:?}", rec.names());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_named_stage_registers_every_series_at_zero_when_named() {
        let rec = Recorded::new();
        let _stage = rec.scope(|| {
            stream::iter([1u32])
                .batch(2, Duration::from_secs(1))
                .name("b")
        });
        assert_eq!(
            rec.names(),
            vec![
                "flowgate_pipeline_batch_open_seconds{name=b}",
                "flowgate_pipeline_batch_size{name=b}",
                "flowgate_pipeline_batches_total{name=b,trigger=delay}",
                "flowgate_pipeline_batches_total{name=b,trigger=end}",
                "flowgate_pipeline_batches_total{name=b,trigger=flush}",
                "flowgate_pipeline_batches_total{name=b,trigger=size}",
                "flowgate_pipeline_held{name=b}",
                "flowgate_pipeline_items_in_total{name=b}",
                "flowgate_pipeline_items_out_total{name=b}",
            ]
        );
        assert_eq!(rec.counter(IN, &named("b")), 0);
    }
}

// ===== tracing =====

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn idle_timeout_warns_once_with_its_name() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let out: Vec<_> = then_pending(vec![1u32])
        .idle_timeout(Duration::from_secs(1))
        .name("feed")
        .collect()
        .await;
    assert_eq!(out.len(), 2);
    let warns = traced.events_at_least(tracing::Level::WARN, "flowgate::pipeline");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].level, tracing::Level::WARN);
    assert_eq!(warns[0].target, "flowgate::pipeline::timeout");
    assert_eq!(warns[0].field("name"), Some("feed"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn item_timeouts_are_debug_events_not_warnings() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let mut s = task::spawn(
        then_pending(vec![1u32])
            .item_timeout(Duration::from_secs(1))
            .name("ticks"),
    );
    assert_ready_eq!(s.poll_next(), Some(Ok(1)));
    for _ in 0..3 {
        assert_pending!(s.poll_next());
        advance(Duration::from_secs(1)).await;
        assert!(matches!(
            s.poll_next(),
            std::task::Poll::Ready(Some(Err(_)))
        ));
    }
    assert!(
        traced
            .events_at_least(tracing::Level::INFO, "flowgate::pipeline")
            .is_empty()
    );
    let debug: Vec<_> = traced
        .events_at_least(tracing::Level::DEBUG, "flowgate::pipeline::timeout")
        .into_iter()
        .filter(|e| e.field("name") == Some("ticks"))
        .collect();
    assert_eq!(debug.len(), 3, "{debug:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn stages_log_nothing_per_item_at_info_or_above() {
    let traced = Traced::new();
    let _g = traced.set_default();
    let out: Vec<Vec<u64>> = stream::iter(0..100u64)
        .par_map(4, |x| async move { x })
        .name("a")
        .par_map_unordered(4, |x| async move { x })
        .name("b")
        .par_map_keyed(4, 1, |x| x % 3, |x| async move { x })
        .name("c")
        .dedup_last(200, |x| *x)
        .name("d")
        .batch(10, Duration::from_secs(1))
        .name("e")
        .collect()
        .await;
    assert_eq!(out.concat().len(), 100);
    assert!(
        traced
            .events_at_least(tracing::Level::INFO, "flowgate")
            .is_empty()
    );
}
