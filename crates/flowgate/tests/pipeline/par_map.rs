use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::pipeline::{ParMap, ParMapUnordered};
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, Stream};
use futures_util::{FutureExt, StreamExt};
use tokio::time::{Instant, sleep};
use tokio_test::{assert_pending, assert_ready_eq, task};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn auto_traits() {
    type Fut = std::future::Ready<u8>;
    type Iter = stream::Iter<std::vec::IntoIter<u8>>;
    assert_send_sync::<ParMap<Iter, fn(u8) -> Fut, Fut>>();
    assert_send_sync::<ParMapUnordered<Iter, fn(u8) -> Fut, Fut>>();
}

/// Runs `items` through `par_map(limit)` where item `i` sleeps `i` ms, and
/// records the peak number of calls in flight.
async fn run_tracked(limit: usize, items: Vec<u64>, ordered: bool) -> (Vec<u64>, usize) {
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let f = {
        let (current, peak) = (current.clone(), peak.clone());
        move |ms: u64| {
            let (current, peak) = (current.clone(), peak.clone());
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                sleep(Duration::from_millis(ms)).await;
                current.fetch_sub(1, Ordering::SeqCst);
                ms
            }
        }
    };
    let out = if ordered {
        stream::iter(items).par_map(limit, f).collect().await
    } else {
        stream::iter(items)
            .par_map_unordered(limit, f)
            .collect()
            .await
    };
    (out, peak.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn par_map_keeps_order_and_limit() {
    let items: Vec<u64> = (0..50).map(|i| (i * 37) % 11 + 1).collect();
    let (out, peak) = run_tracked(4, items.clone(), true).await;
    assert_eq!(out, items);
    assert_eq!(peak, 4);
}

#[tokio::test(start_paused = true)]
async fn par_map_unordered_yields_in_completion_order_within_limit() {
    let (out, peak) = run_tracked(3, vec![30, 10, 20], false).await;
    assert_eq!(out, vec![10, 20, 30]);
    assert_eq!(peak, 3);

    let items: Vec<u64> = (0..50).map(|i| (i * 37) % 11 + 1).collect();
    let (mut out, peak) = run_tracked(4, items.clone(), false).await;
    assert_eq!(peak, 4);
    out.sort_unstable();
    let mut sorted = items;
    sorted.sort_unstable();
    assert_eq!(out, sorted);
}

#[tokio::test(start_paused = true)]
async fn seed_example_timing() {
    // 10 items, 5 workers of 100 ms: two waves, 200 ms.
    let start = Instant::now();
    let out: Vec<u64> = stream::iter(0..10u64)
        .par_map(5, |i| async move {
            sleep(Duration::from_millis(100)).await;
            i * 10
        })
        .collect()
        .await;
    assert_eq!(out, (0..10).map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn never_closes_early_when_upstream_ends_first() {
    // Upstream ends immediately; every slow call must still be yielded.
    let mut s = task::spawn(stream::iter(0..3u64).par_map_unordered(8, |i| async move {
        sleep(Duration::from_millis(10 * (3 - i))).await;
        i
    }));
    assert_pending!(s.poll_next());
    assert!(!s.is_terminated());
    tokio::time::advance(Duration::from_millis(10)).await;
    assert_ready_eq!(s.poll_next(), Some(2));
    tokio::time::advance(Duration::from_millis(10)).await;
    assert_ready_eq!(s.poll_next(), Some(1));
    tokio::time::advance(Duration::from_millis(10)).await;
    assert_ready_eq!(s.poll_next(), Some(0));
    assert_ready_eq!(s.poll_next(), None);
    assert!(s.is_terminated());
}

#[tokio::test(start_paused = true)]
async fn ordered_head_of_line_waits_for_the_oldest() {
    let mut s = task::spawn(stream::iter([20u64, 10]).par_map(2, |ms| async move {
        sleep(Duration::from_millis(ms)).await;
        ms
    }));
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_millis(10)).await;
    // 10 is done but 20 is first.
    assert_pending!(s.poll_next());
    tokio::time::advance(Duration::from_millis(10)).await;
    assert!(s.is_woken());
    assert_ready_eq!(s.poll_next(), Some(20));
    assert_ready_eq!(s.poll_next(), Some(10));
    assert_ready_eq!(s.poll_next(), None);
}

#[tokio::test]
async fn panic_propagates_after_earlier_outputs() {
    for ordered in [true, false] {
        let f = |x: u32| async move {
            assert!(x != 3, "boom at {x}");
            x
        };
        let mut seen = Vec::new();
        let result = AssertUnwindSafe(async {
            if ordered {
                let mut s = stream::iter(0..10u32).par_map(1, f);
                while let Some(x) = s.next().await {
                    seen.push(x);
                }
            } else {
                let mut s = stream::iter(0..10u32).par_map_unordered(1, f);
                while let Some(x) = s.next().await {
                    seen.push(x);
                }
            }
        })
        .catch_unwind()
        .await;
        let payload = result.expect_err("the panic must reach the consumer");
        let message = payload.downcast_ref::<String>().expect("formatted message");
        assert_eq!(message, "boom at 3");
        assert_eq!(seen, vec![0, 1, 2]);
    }
}

#[tokio::test]
async fn size_hint_counts_in_flight() {
    let mut s = Box::pin(stream::iter(0..10u32).par_map(4, |x| async move {
        tokio::task::yield_now().await;
        x
    }));
    assert_eq!(s.size_hint(), (10, Some(10)));
    assert!(futures_util::poll!(s.next()).is_pending());
    // Four calls started, six items left upstream.
    assert_eq!(s.size_hint(), (10, Some(10)));
    let rest: Vec<u32> = s.collect().await;
    assert_eq!(rest.len(), 10);
}

#[test]
#[should_panic(expected = "par_map: limit must be at least 1")]
fn zero_limit_panics() {
    let _ = stream::iter([1]).par_map(0, std::future::ready);
}

#[test]
#[should_panic(expected = "par_map_unordered: limit must be at least 1")]
fn zero_limit_panics_unordered() {
    let _ = stream::iter([1]).par_map_unordered(0, std::future::ready);
}

#[tokio::test(start_paused = true)]
async fn limits_of_one_and_max() {
    for limit in [1, usize::MAX] {
        let out: Vec<u32> = stream::iter(0..100)
            .par_map(limit, std::future::ready)
            .collect()
            .await;
        assert_eq!(out, (0..100).collect::<Vec<_>>());
        let mut out: Vec<u32> = stream::iter(0..100)
            .par_map_unordered(limit, std::future::ready)
            .collect()
            .await;
        out.sort_unstable();
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn debug_does_not_need_debug_items() {
    struct NoDebug;
    let s = stream::iter([NoDebug]).par_map(2, std::future::ready);
    assert_eq!(format!("{s:?}"), "ParMap { limit: 2, in_flight: 0, .. }");
}
