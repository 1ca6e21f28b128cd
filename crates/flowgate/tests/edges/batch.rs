//! Edges of `flowgate::batch`: every `BatcherBuilder` and
//! `KeyedBatcherBuilder` setting at zero, one and its maximum. Zero is refused by `build` with the `BuildError` the
//! builder's docs name; one and the maximum behave as documented (a
//! `usize::MAX` size is "no bound" and allocates nothing up front, a
//! `Duration::MAX` delay never fires). Paused time throughout.

use std::time::Duration;

use flowgate::batch::{
    Batcher, BatcherBuilder, BuildError, FlushError, KeyedBatcher, KeyedBatcherBuilder,
};

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

// ===== KeyedBatcherBuilder =====

fn keyed_ok(_: u8, _: Vec<u32>) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Ok(()))
}

fn build_keyed(
    builder: KeyedBatcherBuilder<u8, u32>,
) -> Result<KeyedBatcher<u8, u32, (), String>, BuildError> {
    builder.build(keyed_ok)
}

#[tokio::test(start_paused = true)]
async fn keyed_zero_settings_are_refused_with_the_shared_errors() {
    let cases: [(KeyedBatcherBuilder<u8, u32>, BuildError); 5] = [
        (
            KeyedBatcher::builder().max_items(0),
            BuildError::ZeroMaxItems,
        ),
        (
            KeyedBatcher::builder().max_delay(Duration::ZERO),
            BuildError::ZeroMaxDelay,
        ),
        (
            KeyedBatcher::builder().max_bytes(0, |_| 1),
            BuildError::ZeroMaxBytes,
        ),
        (
            KeyedBatcher::builder().flush_concurrency(0),
            BuildError::ZeroFlushConcurrency,
        ),
        (
            KeyedBatcher::builder().max_items(1).capacity(0),
            BuildError::CapacityBelowMaxItems {
                capacity: 0,
                max_items: 1,
            },
        ),
    ];
    for (builder, want) in cases {
        assert_eq!(build_keyed(builder).unwrap_err(), want);
    }
}

#[tokio::test(start_paused = true)]
async fn keyed_max_open_keys_zero_is_refused() {
    let err = build_keyed(KeyedBatcher::builder().max_open_keys(0)).unwrap_err();
    assert_eq!(err, BuildError::ZeroMaxOpenKeys);
    assert_eq!(err.to_string(), "max_open_keys must be at least 1");
}

#[tokio::test(start_paused = true)]
async fn keyed_max_open_keys_one_keeps_one_key_open() {
    let batcher = build_keyed(KeyedBatcher::builder().max_open_keys(1).max_delay(YEAR)).unwrap();
    let mut pending = Vec::new();
    for key in [1, 1, 2, 3, 3, 1] {
        pending.push(batcher.submit(key, 0).await.unwrap());
        assert_eq!(batcher.stats().open_keys, 1);
    }
    batcher.close().await;
    for flushed in pending {
        flushed.await.unwrap();
    }
    let stats = batcher.stats();
    assert_eq!((stats.batches, stats.early_batches), (4, 3));
}

#[tokio::test(start_paused = true)]
async fn keyed_max_open_keys_max_sets_no_bound_of_its_own() {
    let batcher: KeyedBatcher<u32, u32, (), String> = KeyedBatcher::builder()
        .max_open_keys(usize::MAX)
        .capacity(usize::MAX)
        .max_delay(YEAR)
        .build(|_: u32, _: Vec<u32>| std::future::ready(Ok(())))
        .unwrap();
    for key in 0..5000 {
        drop(batcher.try_submit(key, 0).unwrap());
    }
    let stats = batcher.stats();
    assert_eq!((stats.open_keys, stats.early_batches), (5000, 0));
    batcher.close().await;
    assert_eq!(batcher.stats().batches, 5000);
}

#[tokio::test(start_paused = true)]
async fn keyed_max_items_one_and_max() {
    let batcher = build_keyed(KeyedBatcher::builder().max_items(1).max_delay(YEAR)).unwrap();
    for i in 0..3 {
        batcher.submit_and_wait(i % 2, u32::from(i)).await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 3);
    let batcher = build_keyed(
        KeyedBatcher::builder()
            .max_items(usize::MAX)
            .max_delay(Duration::from_millis(5)),
    )
    .unwrap();
    let mut pending = Vec::new();
    for i in 0..10_000u32 {
        pending.push(batcher.submit((i % 2) as u8, i).await.unwrap());
    }
    for flushed in pending {
        flushed.await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 2, "one batch per key, by delay");
}

#[tokio::test(start_paused = true)]
async fn keyed_max_delay_one_nanosecond_and_max() {
    let batcher = build_keyed(KeyedBatcher::builder().max_delay(Duration::from_nanos(1))).unwrap();
    let flushed = batcher.submit(1, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(flushed.await, Ok(()));

    let batcher = build_keyed(KeyedBatcher::builder().max_delay(Duration::MAX)).unwrap();
    let mut a = Box::pin(batcher.submit(1, 1).await.unwrap());
    let mut b = Box::pin(batcher.submit(2, 2).await.unwrap());
    for _ in 0..10 {
        tokio::time::advance(10 * YEAR).await;
        settle().await;
    }
    assert!(futures_util::poll!(a.as_mut()).is_pending());
    assert!(futures_util::poll!(b.as_mut()).is_pending());
    assert_eq!(batcher.stats().open_keys, 2, "100 years later, both open");
    batcher.flush().await;
    assert_eq!((a.await, b.await), (Ok(()), Ok(())));
}

#[tokio::test(start_paused = true)]
async fn keyed_max_bytes_one_and_max() {
    let batcher = build_keyed(KeyedBatcher::builder().max_bytes(1, |_| 1).max_delay(YEAR)).unwrap();
    for i in 0..3 {
        batcher.submit_and_wait(0, i).await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 3);
    let batcher = build_keyed(
        KeyedBatcher::builder()
            .max_bytes(usize::MAX, |_| usize::MAX)
            .max_delay(YEAR),
    )
    .unwrap();
    for i in 0..3 {
        batcher.submit_and_wait(0, i).await.unwrap();
    }
    assert_eq!(batcher.stats().batches, 3, "each weighs the bound: alone");
}

#[tokio::test(start_paused = true)]
async fn keyed_capacity_one_and_max() {
    let batcher = build_keyed(
        KeyedBatcher::builder()
            .max_items(1)
            .capacity(1)
            .max_delay(YEAR),
    )
    .unwrap();
    let _first = batcher.try_submit(1, 1).unwrap();
    assert!(batcher.try_submit(2, 2).unwrap_err().is_full());
    settle().await; // the worker takes the first item into a flush
    let _second = batcher.try_submit(2, 2).unwrap();
    // The default capacity at maxima saturates.
    let batcher = build_keyed(
        KeyedBatcher::builder()
            .max_items(usize::MAX)
            .flush_concurrency(usize::MAX),
    )
    .unwrap();
    for i in 0..1000 {
        drop(batcher.try_submit((i % 7) as u8, i).unwrap());
    }
    batcher.close().await;
    assert_eq!(batcher.stats().flushed, 1000);
}

#[tokio::test(start_paused = true)]
async fn keyed_flush_concurrency_one_and_max_with_and_without_one_flush_per_key() {
    for concurrency in [1, usize::MAX] {
        for per_key in [false, true] {
            let batcher: KeyedBatcher<u8, u64, (), String> = KeyedBatcher::builder()
                .max_items(1)
                .flush_concurrency(concurrency)
                .one_flush_per_key(per_key)
                .build(|_: u8, _: Vec<u64>| async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(())
                })
                .unwrap();
            let started = tokio::time::Instant::now();
            let mut pending = Vec::new();
            // Two keys, three items each.
            for i in 0..6 {
                pending.push(batcher.submit((i % 2) as u8, i).await.unwrap());
            }
            for flushed in pending {
                flushed.await.unwrap();
            }
            let took = started.elapsed();
            let want = match (concurrency, per_key) {
                (1, _) => 60,     // one at a time
                (_, false) => 10, // all at once
                (_, true) => 30,  // the two keys at once, each one by one
            };
            assert_eq!(took, Duration::from_millis(want), "{concurrency} {per_key}");
        }
    }
}

#[test]
fn keyed_build_outside_a_runtime_is_refused_and_build_pair_is_not() {
    let err = build_keyed(KeyedBatcher::builder()).unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    let (batcher, worker) = KeyedBatcher::builder().build_pair(keyed_ok).unwrap();
    drop(worker);
    assert!(batcher.try_submit(1, 1).unwrap_err().is_closed());
}
