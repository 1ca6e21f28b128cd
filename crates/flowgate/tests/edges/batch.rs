//! Edges of `flowgate::batch`: every `BatcherBuilder` setting at zero, one
//! and its maximum. Zero is refused by `build` with the `BuildError` the
//! builder's docs name; one and the maximum behave as documented (a
//! `usize::MAX` size is "no bound" and allocates nothing up front, a
//! `Duration::MAX` delay never fires). Paused time throughout.

use std::time::Duration;

use flowgate::batch::{Batcher, BatcherBuilder, BuildError, FlushError};

/// A year, for "a long time" under paused time.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

fn ok(_: Vec<u32>) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Ok(()))
}

fn build(builder: BatcherBuilder<u32>) -> Result<Batcher<u32, (), String>, BuildError> {
    builder.build(ok)
}

/// Lets the spawned worker run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

// ===== max_items =====

#[tokio::test(start_paused = true)]
async fn max_items_zero_is_refused() {
    let err = build(Batcher::builder().max_items(0)).unwrap_err();
    assert!(matches!(err, BuildError::ZeroMaxItems), "{err:?}");
    assert_eq!(err.to_string(), "max_items must be at least 1");
}

#[tokio::test(start_paused = true)]
async fn max_items_one_flushes_every_item_alone() {
    let batcher = build(Batcher::builder().max_items(1).max_delay(YEAR)).unwrap();
    for i in 0..3 {
        batcher.submit_and_wait(i).await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 3);
}

#[tokio::test(start_paused = true)]
async fn max_items_max_allocates_nothing_up_front_and_flushes_by_delay() {
    let batcher = build(
        Batcher::builder()
            .max_items(usize::MAX)
            .max_delay(Duration::from_millis(5)),
    )
    .unwrap();
    let flushed: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..10_000 {
            v.push(batcher.submit(i).await.unwrap());
        }
        v
    };
    for flushed in flushed {
        flushed.await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 1, "one batch of 10 000, by delay");
    batcher.close().await;
}

// ===== max_delay =====

#[tokio::test(start_paused = true)]
async fn max_delay_zero_is_refused() {
    let err = build(Batcher::builder().max_delay(Duration::ZERO)).unwrap_err();
    assert!(matches!(err, BuildError::ZeroMaxDelay), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn max_delay_of_one_nanosecond_flushes_at_once() {
    let batcher = build(Batcher::builder().max_delay(Duration::from_nanos(1))).unwrap();
    let flushed = batcher.submit(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(flushed.await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn max_delay_max_never_flushes_by_time() {
    let batcher = build(Batcher::builder().max_delay(Duration::MAX)).unwrap();
    let mut flushed = Box::pin(batcher.submit(1).await.unwrap());
    for _ in 0..10 {
        tokio::time::advance(10 * YEAR).await;
        settle().await;
    }
    assert!(
        futures_util::poll!(flushed.as_mut()).is_pending(),
        "100 years later, still open"
    );
    assert_eq!(batcher.stats().batches, 0);
    // Size, flush and close still flush it.
    batcher.flush().await;
    assert_eq!(flushed.await, Ok(()));
}

// ===== max_bytes =====

#[tokio::test(start_paused = true)]
async fn max_bytes_zero_is_refused() {
    let err = build(Batcher::builder().max_bytes(0, |_| 1)).unwrap_err();
    assert!(matches!(err, BuildError::ZeroMaxBytes), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn max_bytes_one_flushes_every_weighed_item_alone() {
    let batcher = build(Batcher::builder().max_bytes(1, |_| 1).max_delay(YEAR)).unwrap();
    for i in 0..3 {
        batcher.submit_and_wait(i).await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 3);
}

#[tokio::test(start_paused = true)]
async fn max_bytes_max_with_maximal_weights_saturates() {
    // Every item weighs `usize::MAX`: each reaches the bound alone, and the
    // sum of two saturates instead of overflowing.
    let batcher = build(
        Batcher::builder()
            .max_bytes(usize::MAX, |_| usize::MAX)
            .max_delay(YEAR),
    )
    .unwrap();
    for i in 0..3 {
        batcher.submit_and_wait(i).await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 3);
}

// ===== capacity =====

#[tokio::test(start_paused = true)]
async fn capacity_zero_is_refused_as_below_max_items() {
    let err = build(Batcher::builder().max_items(1).capacity(0)).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::CapacityBelowMaxItems {
                capacity: 0,
                max_items: 1
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_one_holds_one_item() {
    let batcher = build(Batcher::builder().max_items(1).capacity(1).max_delay(YEAR)).unwrap();
    let _first = batcher.try_submit(1).unwrap();
    assert!(batcher.try_submit(2).unwrap_err().is_full());
    settle().await; // the worker takes the first item into a flush
    let _second = batcher.try_submit(2).unwrap();
}

#[tokio::test(start_paused = true)]
async fn capacity_max_and_default_capacity_at_maxima_saturate() {
    build(Batcher::builder().capacity(usize::MAX)).unwrap();
    // The default `max_items × (flush_concurrency + 1)` saturates.
    let batcher = build(
        Batcher::builder()
            .max_items(usize::MAX)
            .flush_concurrency(usize::MAX),
    )
    .unwrap();
    for i in 0..1000 {
        drop(batcher.try_submit(i).unwrap());
    }
    batcher.close().await;
    assert_eq!(batcher.stats().flushed, 1000);
}

// ===== flush_concurrency and resolve_in_order =====

#[tokio::test(start_paused = true)]
async fn flush_concurrency_zero_is_refused() {
    let err = build(Batcher::builder().flush_concurrency(0)).unwrap_err();
    assert!(matches!(err, BuildError::ZeroFlushConcurrency), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn flush_concurrency_one_and_max_flush_everything() {
    for concurrency in [1, usize::MAX] {
        for in_order in [false, true] {
            let batcher: Batcher<u64, (), String> = Batcher::builder()
                .max_items(1)
                .flush_concurrency(concurrency)
                .resolve_in_order(in_order)
                .build(|items: Vec<u64>| async move {
                    tokio::time::sleep(Duration::from_millis(10 - items[0])).await;
                    Ok(())
                })
                .unwrap();
            let started = tokio::time::Instant::now();
            let mut pending = Vec::new();
            for i in 0..10 {
                pending.push(batcher.submit(i).await.unwrap());
            }
            for flushed in pending {
                flushed.await.unwrap();
            }
            let took = started.elapsed();
            if concurrency == 1 {
                assert_eq!(took, Duration::from_millis(55), "one at a time");
            } else {
                assert_eq!(took, Duration::from_millis(10), "all at once");
            }
        }
    }
}

// ===== build and build_pair =====

#[test]
fn build_outside_a_runtime_is_refused_and_build_pair_is_not() {
    let err = build(Batcher::builder()).unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime), "{err:?}");
    let (batcher, worker) = Batcher::builder().build_pair(ok).unwrap();
    drop(worker);
    // A dropped worker closes the batcher.
    assert!(batcher.try_submit(1).unwrap_err().is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_worker_resolves_submissions_as_closed() {
    let (batcher, worker) = Batcher::builder().build_pair(ok).unwrap();
    let flushed = batcher.submit(1).await.unwrap();
    drop(worker);
    assert_eq!(flushed.await, Err(FlushError::Closed));
}
