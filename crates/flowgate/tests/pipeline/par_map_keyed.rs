//! `par_map_keyed`, `par_map_keyed_unordered` and the `spawned` mode.
//!
//! The invariants — per-key input order, `per_key` and `limit` never
//! exceeded, at most `limit + buffer` items held — are checked by a
//! property test over random keys, durations and limits under paused time;
//! the rest are exact scenarios.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::pipeline::{ParMapKeyed, ParMapKeyedUnordered, spawned};
use flowgate::prelude::*;
use futures_util::stream::{self, StreamExt};
use futures_util::{FutureExt, future};
use proptest::prelude::*;
use tokio::time::{Instant, sleep};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn auto_traits() {
    type Fut = future::Ready<u8>;
    type Iter = stream::Iter<std::vec::IntoIter<u8>>;
    assert_send_sync::<ParMapKeyed<Iter, u8, fn(&u8) -> u8, fn(u8) -> Fut, Fut>>();
    assert_send_sync::<ParMapKeyedUnordered<Iter, u8, fn(&u8) -> u8, fn(u8) -> Fut, Fut>>();
}

/// What a run observed, for the invariants.
#[derive(Default)]
struct Trace {
    /// Calls running now, per key and in all.
    running: HashMap<u8, usize>,
    total: usize,
    /// The peaks of those.
    peak_per_key: usize,
    peak_total: usize,
    /// Items in the order their calls started.
    started: Vec<usize>,
}

/// One run: item `i` is `(key, ms)`; its call sleeps `ms` and returns `i`.
/// Returns the outputs, the trace and the peak of items held (pulled and
/// not yielded).
async fn run(
    items: &[(u8, u64)],
    limit: usize,
    per_key: usize,
    buffer: usize,
    ordered: bool,
) -> (Vec<usize>, Trace, usize) {
    let trace = Arc::new(Mutex::new(Trace::default()));
    let pulled = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let pulled = pulled.clone();
        stream::iter(items.iter().copied().enumerate()).inspect(move |_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        })
    };
    let f = {
        let trace = trace.clone();
        move |(i, (key, ms)): (usize, (u8, u64))| {
            let trace = trace.clone();
            async move {
                {
                    let mut t = trace.lock().unwrap();
                    t.started.push(i);
                    let now = t.running.entry(key).or_default();
                    *now += 1;
                    let now = *now;
                    t.total += 1;
                    t.peak_per_key = t.peak_per_key.max(now);
                    t.peak_total = t.peak_total.max(t.total);
                }
                sleep(Duration::from_millis(ms)).await;
                let mut t = trace.lock().unwrap();
                *t.running.get_mut(&key).unwrap() -= 1;
                t.total -= 1;
                i
            }
        }
    };
    let key = |(_, (key, _)): &(usize, (u8, u64))| *key;
    let mut out = Vec::new();
    let mut peak_held = 0;
    if ordered {
        let mut stage = std::pin::pin!(
            upstream
                .par_map_keyed(limit, per_key, key, f)
                .buffer(buffer)
        );
        while let Some(i) = stage.next().await {
            // `i` was pulled and is yielded now: count it as held.
            peak_held = peak_held.max(pulled.load(Ordering::SeqCst) - out.len());
            out.push(i);
        }
    } else {
        let mut stage = std::pin::pin!(
            upstream
                .par_map_keyed_unordered(limit, per_key, key, f)
                .buffer(buffer)
        );
        while let Some(i) = stage.next().await {
            peak_held = peak_held.max(pulled.load(Ordering::SeqCst) - out.len());
            out.push(i);
        }
    }
    let trace = Arc::try_unwrap(trace).ok().unwrap().into_inner().unwrap();
    (out, trace, peak_held)
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// The indices of `order` that belong to `key`, in the order given.
fn of_key(items: &[(u8, u64)], order: &[usize], key: u8) -> Vec<usize> {
    order
        .iter()
        .copied()
        .filter(|&i| items[i].0 == key)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn per_key_order_and_limits_always_hold(
        items in prop::collection::vec((0u8..6, 0u64..20), 0..120),
        limit in 1usize..8,
        per_key in 1usize..4,
        buffer in 0usize..10,
        ordered in any::<bool>(),
    ) {
        let (out, trace, peak_held) =
            paused_runtime().block_on(run(&items, limit, per_key, buffer, ordered));
        // Every item exactly once.
        let mut sorted = out.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..items.len()).collect::<Vec<_>>());
        if ordered {
            prop_assert_eq!(&out, &(0..items.len()).collect::<Vec<_>>());
        }
        for key in 0..6u8 {
            let expected: Vec<usize> = (0..items.len()).filter(|&i| items[i].0 == key).collect();
            // Per key: started in input order, yielded in input order.
            prop_assert_eq!(of_key(&items, &trace.started, key), expected.clone());
            prop_assert_eq!(of_key(&items, &out, key), expected);
        }
        prop_assert!(trace.peak_per_key <= per_key, "per_key {} exceeded: {}", per_key, trace.peak_per_key);
        prop_assert!(trace.peak_total <= limit, "limit {} exceeded: {}", limit, trace.peak_total);
        prop_assert!(peak_held <= limit + buffer, "held {} > {} + {}", peak_held, limit, buffer);
    }
}

#[tokio::test(start_paused = true)]
async fn sixteen_keys_one_at_a_time_run_in_parallel() {
    // 160 items round-robin over 16 keys, 1 ms each, per_key 1: sixteen
    // keys at once, ten rounds.
    let items: Vec<(u8, u64)> = (0..160).map(|i| ((i % 16) as u8, 1)).collect();
    let start = Instant::now();
    let (out, trace, _) = run(&items, 16, 1, 16, true).await;
    assert_eq!(start.elapsed(), Duration::from_millis(10));
    assert_eq!(out, (0..160).collect::<Vec<_>>());
    assert_eq!((trace.peak_per_key, trace.peak_total), (1, 16));
}

#[tokio::test(start_paused = true)]
async fn one_key_is_serial_whatever_the_limit() {
    let items = vec![(7u8, 5); 10];
    let start = Instant::now();
    let (out, trace, _) = run(&items, 8, 1, 8, false).await;
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    assert_eq!(trace.peak_total, 1);
}

#[tokio::test(start_paused = true)]
async fn per_key_two_runs_two_of_a_key_and_keeps_their_output_order() {
    // One key; the first item is slow: the second finishes first but is
    // yielded after it, even unordered.
    let items = [(1u8, 30), (1, 10), (1, 10)];
    let start = Instant::now();
    let (out, trace, _) = run(&items, 4, 2, 4, false).await;
    assert_eq!(out, [0, 1, 2]);
    assert_eq!(trace.peak_per_key, 2);
    // 0: 0–30; 1: 0–10; 2: 10–20 — all out at 30
    assert_eq!(start.elapsed(), Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn unordered_does_not_hold_a_fast_key_behind_a_slow_one() {
    let items = [(0u8, 100), (1, 10), (1, 10), (1, 10)];
    let start = Instant::now();
    let stage = stream::iter(items).par_map_keyed_unordered(
        4,
        1,
        |(key, _)| *key,
        |(key, ms)| async move {
            sleep(Duration::from_millis(ms)).await;
            (key, Instant::now() - start)
        },
    );
    let out: Vec<(u8, Duration)> = stage.collect().await;
    let ms = |n| Duration::from_millis(n);
    assert_eq!(out, [(1, ms(10)), (1, ms(20)), (1, ms(30)), (0, ms(100))]);
}

#[tokio::test(start_paused = true)]
async fn a_hot_key_fills_the_buffer_then_upstream_waits() {
    // All of key 0, per_key 1, limit 4, buffer 3: one runs, six wait, and
    // nothing more is pulled until one is yielded.
    let pulled = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let pulled = pulled.clone();
        stream::iter(0..100u32).inspect(move |_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        })
    };
    let mut stage = std::pin::pin!(
        upstream
            .par_map_keyed(
                4,
                1,
                |_| 0u8,
                |i| async move {
                    sleep(Duration::from_millis(10)).await;
                    i
                }
            )
            .buffer(3)
    );
    assert_eq!(stage.next().now_or_never(), None);
    assert_eq!(pulled.load(Ordering::SeqCst), 7);
    assert_eq!(stage.held(), 7);
    assert_eq!(stage.next().await, Some(0));
    assert_eq!((pulled.load(Ordering::SeqCst), stage.held()), (7, 6));
    assert_eq!(stage.next().await, Some(1));
    // one more pulled when 0 was out, none past the bound
    assert_eq!((pulled.load(Ordering::SeqCst), stage.held()), (8, 6));
    assert_eq!(stage.count().await, 98);
}

#[tokio::test(start_paused = true)]
async fn other_keys_in_the_stage_keep_running_past_a_hot_key() {
    // Key 0 is hot and slow (per_key 1); keys 1..=3 are pulled within the
    // window and finish while key 0's items wait their turn.
    let items = [(0u8, 100), (0, 100), (1, 10), (2, 10), (3, 10), (0, 100)];
    let start = Instant::now();
    let out: Vec<(u8, Duration)> = stream::iter(items)
        .par_map_keyed_unordered(
            4,
            1,
            |(key, _)| *key,
            |(key, ms)| async move {
                sleep(Duration::from_millis(ms)).await;
                (key, Instant::now() - start)
            },
        )
        .buffer(2)
        .collect()
        .await;
    let ms = |n| Duration::from_millis(n);
    assert_eq!(
        out,
        [
            (1, ms(10)),
            (2, ms(10)),
            (3, ms(10)),
            (0, ms(100)),
            (0, ms(200)),
            (0, ms(300))
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn many_keys_pass_and_none_is_kept() {
    // A million distinct keys through a small stage: the stage holds only
    // what is in flight, and its Debug shows no key left at the end.
    let mut stage = std::pin::pin!(stream::iter(0..1_000_000u64).par_map_keyed_unordered(
        8,
        1,
        |i| *i,
        future::ready
    ));
    let mut n = 0u64;
    while let Some(i) = stage.next().await {
        assert!(stage.held() <= 16);
        n += i;
    }
    assert_eq!(n, (0..1_000_000u64).sum());
    assert!(format!("{stage:?}").contains("keys: 0"), "{stage:?}");
}

#[tokio::test(start_paused = true)]
async fn buffer_zero_holds_at_most_limit_items() {
    let items: Vec<(u8, u64)> = (0..40).map(|i| ((i % 3) as u8, (i % 5) as u64)).collect();
    let (out, _, peak_held) = run(&items, 3, 1, 0, true).await;
    assert_eq!(out, (0..40).collect::<Vec<_>>());
    assert!(peak_held <= 3);
}

#[tokio::test]
async fn a_panic_in_a_call_propagates_with_its_payload() {
    let stage = stream::iter([1u32, 2, 3]).par_map_keyed(
        2,
        1,
        |x| *x,
        |x| async move {
            assert_ne!(x, 2, "item two");
            x
        },
    );
    let panic = AssertUnwindSafe(stage.collect::<Vec<_>>())
        .catch_unwind()
        .await
        .unwrap_err();
    assert!(panic.downcast_ref::<String>().unwrap().contains("item two"));
}

#[tokio::test]
async fn empty_upstream_ends_at_once() {
    let out: Vec<u32> = stream::iter(Vec::<u32>::new())
        .par_map_keyed(2, 1, |x| *x, future::ready)
        .collect()
        .await;
    assert!(out.is_empty());
}

#[test]
#[should_panic(expected = "par_map_keyed: limit must be at least 1")]
fn zero_limit_is_refused() {
    let _ = stream::iter([1]).par_map_keyed(0, 1, |x| *x, future::ready);
}

#[test]
#[should_panic(expected = "par_map_keyed_unordered: per_key must be at least 1")]
fn zero_per_key_is_refused() {
    let _ = stream::iter([1]).par_map_keyed_unordered(1, 0, |x| *x, future::ready);
}

// ===== spawned =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_keeps_par_maps_order() {
    let out: Vec<u64> = stream::iter(0..200u64)
        .par_map(
            8,
            spawned(|i| async move {
                tokio::task::yield_now().await;
                i * 2
            }),
        )
        .collect()
        .await;
    assert_eq!(out, (0..200).map(|i| i * 2).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_calls_run_on_other_tasks() {
    // Each call sees a task id of its own, not the consumer's.
    let consumer = tokio::task::try_id();
    let ids: Vec<Option<tokio::task::Id>> = stream::iter(0..4)
        .par_map_unordered(4, spawned(|_| async { tokio::task::try_id() }))
        .collect()
        .await;
    assert!(ids.iter().all(|id| id.is_some() && *id != consumer));
}

#[tokio::test(start_paused = true)]
async fn spawned_keyed_keeps_per_key_order() {
    let items: Vec<(u8, u64)> = (0..60).map(|i| ((i % 4) as u8, (60 - i) as u64)).collect();
    let out: Vec<(u8, u64)> = stream::iter(items.clone())
        .par_map_keyed_unordered(
            8,
            1,
            |(key, _)| *key,
            spawned(|(key, ms)| async move {
                sleep(Duration::from_millis(ms)).await;
                (key, ms)
            }),
        )
        .collect()
        .await;
    for key in 0..4u8 {
        let want: Vec<_> = items.iter().filter(|(k, _)| *k == key).collect();
        let got: Vec<_> = out.iter().filter(|(k, _)| *k == key).collect();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn spawned_resumes_a_calls_panic_in_the_consumer() {
    let stage = stream::iter([1u32, 2]).par_map(
        2,
        spawned(|x: u32| async move {
            assert_ne!(x, 2, "spawned item two");
            x
        }),
    );
    let panic = AssertUnwindSafe(stage.collect::<Vec<_>>())
        .catch_unwind()
        .await
        .unwrap_err();
    assert!(
        panic
            .downcast_ref::<String>()
            .unwrap()
            .contains("spawned item two")
    );
}

/// Sets its flag when dropped: shows that a call's task was dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stage_aborts_its_spawned_calls() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut stage = Box::pin(stream::iter([0u32]).par_map(
        1,
        spawned({
            let dropped = dropped.clone();
            move |_| {
                let guard = SetOnDrop(dropped.clone());
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }
            }
        }),
    ));
    assert!(stage.next().now_or_never().is_none());
    drop(stage);
    // The abort runs when the runtime next polls the task.
    while !dropped.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
}
