//! Edges of `flowgate::dataloader`: every `DataLoaderBuilder` setting at
//! zero, one and its maximum. Zero is refused by `build` with the
//! `BuildError` the builder's docs name (in the loader's own words); one and
//! the maximum behave as documented. Paused time throughout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use flowgate::batch;
use flowgate::dataloader::{BuildError, DataLoader, DataLoaderBuilder};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

type Loader = DataLoader<u64, u64, Infallible>;

fn build(builder: DataLoaderBuilder) -> Result<Loader, BuildError> {
    builder.build(|keys: Vec<u64>| async move {
        Ok::<_, Infallible>(
            keys.into_iter()
                .map(|k| (k, k * 10))
                .collect::<HashMap<_, _>>(),
        )
    })
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

// ===== max_batch =====

#[tokio::test(start_paused = true)]
async fn max_batch_zero_is_refused_in_the_loaders_words() {
    let err = build(DataLoader::builder().max_batch(0)).unwrap_err();
    assert!(
        matches!(err, BuildError::Batch(batch::BuildError::ZeroMaxItems)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "max_batch must be at least 1");
}

#[tokio::test(start_paused = true)]
async fn max_batch_one_fetches_every_key_alone() {
    let loader = build(DataLoader::builder().max_batch(1)).unwrap();
    let out = loader.load_many([1, 2, 3]).await;
    assert_eq!(out, [Ok(10), Ok(20), Ok(30)]);
    assert_eq!(loader.stats().batches, 3);
}

#[tokio::test(start_paused = true)]
async fn max_batch_max_fetches_one_batch_per_window() {
    let loader = build(DataLoader::builder().max_batch(usize::MAX)).unwrap();
    let out = loader.load_many(0..1000).await;
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(loader.stats().batches, 1);
}

// ===== delay =====

#[tokio::test(start_paused = true)]
async fn delay_zero_is_refused() {
    let err = build(DataLoader::builder().delay(Duration::ZERO)).unwrap_err();
    assert!(
        matches!(err, BuildError::Batch(batch::BuildError::ZeroMaxDelay)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "delay must be greater than zero");
}

#[tokio::test(start_paused = true)]
async fn delay_of_one_nanosecond_fetches_at_once() {
    let loader = build(DataLoader::builder().delay(Duration::from_nanos(1))).unwrap();
    assert_eq!(loader.load(4).await, Ok(40));
}

#[tokio::test(start_paused = true)]
async fn delay_max_never_fetches_by_time_but_flush_does() {
    let loader = build(DataLoader::builder().delay(Duration::MAX)).unwrap();
    let mut load = Box::pin({
        let loader = loader.clone();
        async move { loader.load(4).await }
    });
    assert!(futures_util::poll!(load.as_mut()).is_pending());
    for _ in 0..10 {
        tokio::time::advance(10 * YEAR).await;
        settle().await;
    }
    assert!(futures_util::poll!(load.as_mut()).is_pending());
    assert_eq!(loader.stats().batches, 0);
    loader.flush().await;
    assert_eq!(load.await, Ok(40));
}

// ===== concurrency =====

#[tokio::test(start_paused = true)]
async fn concurrency_zero_is_refused() {
    let err = build(DataLoader::builder().concurrency(0)).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Batch(batch::BuildError::ZeroFlushConcurrency)
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "concurrency must be at least 1");
}

#[tokio::test(start_paused = true)]
async fn concurrency_one_and_max_load() {
    for concurrency in [1, usize::MAX] {
        let loader = build(DataLoader::builder().concurrency(concurrency).max_batch(2)).unwrap();
        assert_eq!(loader.load_many([1, 2, 3]).await, [Ok(10), Ok(20), Ok(30)]);
    }
}

// ===== capacity =====

#[tokio::test(start_paused = true)]
async fn capacity_zero_is_refused_as_below_max_batch() {
    let err = build(DataLoader::builder().max_batch(2).capacity(0)).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Batch(batch::BuildError::CapacityBelowMaxItems {
                capacity: 0,
                max_items: 2
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "capacity (0) must be at least max_batch (2)"
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_one_and_max_load() {
    for capacity in [1, usize::MAX] {
        let loader = build(DataLoader::builder().max_batch(1).capacity(capacity)).unwrap();
        assert_eq!(loader.load_many([1, 2, 3]).await, [Ok(10), Ok(20), Ok(30)]);
    }
    // max_batch and concurrency at their maxima: the default capacity
    // saturates.
    let loader = build(
        DataLoader::builder()
            .max_batch(usize::MAX)
            .concurrency(usize::MAX),
    )
    .unwrap();
    assert_eq!(loader.load(1).await, Ok(10));
}

// ===== cache =====

#[tokio::test(start_paused = true)]
async fn cache_capacity_zero_is_refused() {
    let err = build(DataLoader::builder().cache(0, YEAR)).unwrap_err();
    assert!(matches!(err, BuildError::ZeroCacheCapacity), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn cache_ttl_zero_is_refused() {
    let err = build(DataLoader::builder().cache(1, Duration::ZERO)).unwrap_err();
    assert!(matches!(err, BuildError::ZeroCacheTtl), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn cache_of_one_key_keeps_the_newest() {
    let loader = build(DataLoader::builder().cache(1, YEAR)).unwrap();
    loader.load(1).await.unwrap();
    loader.load(2).await.unwrap();
    loader.load(2).await.unwrap();
    loader.load(1).await.unwrap();
    let stats = loader.stats();
    assert_eq!((stats.cache_hits, stats.keys_fetched), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn cache_ttl_of_one_nanosecond_expires_at_once() {
    let loader = build(DataLoader::builder().cache(10, Duration::from_nanos(1))).unwrap();
    loader.load(1).await.unwrap();
    tokio::time::advance(Duration::from_millis(1)).await;
    loader.load(1).await.unwrap();
    assert_eq!(loader.stats().keys_fetched, 2);
}

#[tokio::test(start_paused = true)]
async fn cache_ttl_max_never_expires_and_capacity_max_is_no_bound() {
    let loader = build(DataLoader::builder().cache(usize::MAX, Duration::MAX)).unwrap();
    assert_eq!(loader.load_many(0..100).await.len(), 100);
    // A TTL too long for an `Instant` is no deadline at all.
    for _ in 0..100 {
        tokio::time::advance(YEAR).await;
    }
    assert!(loader.load_many(0..100).await.iter().all(Result::is_ok));
    let stats = loader.stats();
    assert_eq!(stats.keys_fetched, 100, "100 years later, all still cached");
    assert_eq!(stats.cache_hits, 100);
    assert!(loader.prime(1000, 1));
    assert_eq!(loader.load(1000).await, Ok(1));
}

// ===== build and build_pair =====

#[test]
fn build_outside_a_runtime_is_refused() {
    let err = build(DataLoader::builder()).unwrap_err();
    assert!(
        matches!(err, BuildError::Batch(batch::BuildError::NoRuntime)),
        "{err:?}"
    );
}
