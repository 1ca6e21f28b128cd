//! [`DataLoaderBuilder`]: the batching and cache settings of a data loader.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::future::poll_fn;
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{BuildError, LoadError};
use super::observe::{LoaderMetrics, TARGET};
use super::results::BatchResults;
use super::{DataLoader, LoaderWorker, Shared};
use crate::batch::Batcher;
use crate::expiring::ExpiringMap;
use crate::telemetry::Name;

/// Configures and builds a [`DataLoader`]. Created by
/// [`DataLoader::builder`].
///
/// | setting | default | rule | at its maximum |
/// |---|---|---|---|
/// | [`max_batch`](Self::max_batch) | 100 | at least 1 | `usize::MAX`: no size bound |
/// | [`delay`](Self::delay) | 1 ms | greater than zero | `Duration::MAX`: fetch only when `max_batch` keys wait, or on [`flush`](DataLoader::flush) or [`close`](DataLoader::close) |
/// | [`concurrency`](Self::concurrency) | 4 | at least 1 | `usize::MAX`: no bound on fetches at once |
/// | [`capacity`](Self::capacity) | `max_batch × (concurrency + 1)`, saturating | at least `max_batch` | `usize::MAX`: no backpressure |
/// | [`cache`](Self::cache) | none | capacity at least 1 ([`BuildError::ZeroCacheCapacity`]), ttl greater than zero ([`BuildError::ZeroCacheTtl`]) | capacity `usize::MAX`: no size bound; ttl `Duration::MAX`: never expires |
/// | [`name`](Self::name) | none: no metrics | any string, as given | |
///
/// Setters only store their value and never panic; [`build`](Self::build)
/// and [`build_pair`](Self::build_pair) check every rule and return a
/// [`BuildError`] naming the first one broken (a batching rule as
/// [`BuildError::Batch`], displayed with the loader's setting names).
#[derive(Clone)]
pub struct DataLoaderBuilder {
    max_batch: usize,
    delay: Duration,
    concurrency: usize,
    capacity: Option<usize>,
    cache: Option<(usize, Duration)>,
    name: Name,
}

impl Default for DataLoaderBuilder {
    fn default() -> Self {
        DataLoaderBuilder {
            max_batch: 100,
            delay: Duration::from_millis(1),
            concurrency: 4,
            capacity: None,
            cache: None,
            name: Name::none(),
        }
    }
}

impl DataLoaderBuilder {
    /// At most this many distinct keys per batch fetch.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::{BuildError, DataLoader};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let loader: DataLoader<u32, u32, std::io::Error> =
    ///     DataLoader::builder().max_batch(2).build(fetch).unwrap();
    /// let values = loader.load_many([1, 2, 3]).await;
    /// assert_eq!(values.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [2, 4, 6]);
    /// assert_eq!(loader.stats().batches, 2); // [1, 2], then [3]
    ///
    /// let err = DataLoader::builder().max_batch(0).build(fetch).unwrap_err();
    /// assert_eq!(err, BuildError::Batch(flowgate::batch::BuildError::ZeroMaxItems));
    /// assert_eq!(err.to_string(), "max_batch must be at least 1");
    /// # }
    /// ```
    pub fn max_batch(mut self, keys: usize) -> Self {
        self.max_batch = keys;
        self
    }

    /// The window: a batch is fetched at the latest this long after its first
    /// key arrived (sooner when it holds `max_batch` keys). Loads within the
    /// window share one fetch; a load waits at most this long before its
    /// fetch starts, if a fetch slot is free.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use flowgate::dataloader::{BuildError, DataLoader};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .delay(Duration::from_millis(10))
    ///     .build(fetch)
    ///     .unwrap();
    /// let start = Instant::now();
    /// assert_eq!(loader.load(1).await.unwrap(), 2);
    /// assert!(start.elapsed() >= Duration::from_millis(10)); // waited for the window
    ///
    /// let err = DataLoader::builder().delay(Duration::ZERO).build(fetch).unwrap_err();
    /// assert_eq!(err, BuildError::Batch(flowgate::batch::BuildError::ZeroMaxDelay));
    /// # }
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// How many batch fetches may run at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::{BuildError, DataLoader};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .max_batch(1)
    ///     .concurrency(2)
    ///     .build(fetch)
    ///     .unwrap();
    /// let values = loader.load_many(0..4).await;
    /// assert!(values.iter().all(Result::is_ok));
    /// assert_eq!(loader.stats().batches, 4);
    ///
    /// let err = DataLoader::builder().concurrency(0).build(fetch).unwrap_err();
    /// assert_eq!(err, BuildError::Batch(flowgate::batch::BuildError::ZeroFlushConcurrency));
    /// # }
    /// ```
    pub fn concurrency(mut self, fetches: usize) -> Self {
        self.concurrency = fetches;
        self
    }

    /// How many distinct keys may wait for a fetch before new loads wait for
    /// room (backpressure on the loaders).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::batch;
    /// use flowgate::dataloader::{BuildError, DataLoader};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .max_batch(2)
    ///     .capacity(2)
    ///     .build(fetch)
    ///     .unwrap();
    /// // Loads beyond the two waiting keys wait for room, then go on.
    /// let values = loader.load_many(0..5).await;
    /// assert!(values.iter().all(Result::is_ok));
    ///
    /// let err = DataLoader::builder().max_batch(2).capacity(1).build(fetch).unwrap_err();
    /// assert_eq!(
    ///     err,
    ///     BuildError::Batch(batch::BuildError::CapacityBelowMaxItems { capacity: 1, max_items: 2 })
    /// );
    /// assert_eq!(err.to_string(), "capacity (1) must be at least max_batch (2)");
    /// # }
    /// ```
    pub fn capacity(mut self, keys: usize) -> Self {
        self.capacity = Some(keys);
        self
    }

    /// Caches fetched values: at most `capacity` keys, each for `ttl` after
    /// it was fetched (the oldest key goes first when full). Errors are never
    /// cached. Without a cache, each window fetches its keys again.
    ///
    /// A `capacity` of `usize::MAX` is no size bound (nothing is allocated
    /// up front), and a `ttl` too long for an `Instant` (up to
    /// `Duration::MAX`) never expires in practice (the cache's far future is
    /// about 30 years, as tokio's `sleep(Duration::MAX)`). Zero for either is
    /// refused by `build` ([`BuildError::ZeroCacheCapacity`],
    /// [`BuildError::ZeroCacheTtl`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use flowgate::dataloader::{BuildError, DataLoader};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .cache(100, Duration::from_secs(60))
    ///     .build(fetch)
    ///     .unwrap();
    /// loader.load(1).await.unwrap();
    /// loader.load(1).await.unwrap(); // from the cache
    /// assert_eq!((loader.stats().batches, loader.stats().cache_hits), (1, 1));
    /// tokio::time::advance(Duration::from_secs(61)).await;
    /// loader.load(1).await.unwrap(); // expired: fetched again
    /// assert_eq!(loader.stats().batches, 2);
    ///
    /// let zero = DataLoader::builder().cache(0, Duration::from_secs(60)).build(fetch);
    /// assert_eq!(zero.unwrap_err(), BuildError::ZeroCacheCapacity);
    /// let zero = DataLoader::builder().cache(100, Duration::ZERO).build(fetch);
    /// assert_eq!(zero.unwrap_err(), BuildError::ZeroCacheTtl);
    /// # }
    /// ```
    pub fn cache(mut self, capacity: usize, ttl: Duration) -> Self {
        self.cache = Some((capacity, ttl));
        self
    }

    /// Names the loader: the `name` label of its series and the `name`
    /// field of its spans and events. Any string is accepted as given; give
    /// each loader its own.
    ///
    /// With the `metrics` feature, a named loader registers its
    /// `flowgate_dataloader_*` series when it is built (see [the
    /// table](crate::metrics)): loads, cache hits and misses, loads joined
    /// to a fetch in progress, keys per batch fetch, failed batch fetches
    /// (by reason) and each key's result (by outcome). Its batcher is named
    /// the same, so the `flowgate_batch_*` series with this `name` are its
    /// queue: keys pending and being fetched, fetches by trigger, their
    /// duration and the time keys waited for their window. An unnamed
    /// loader records no metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // With a `metrics` recorder installed, this loader's series carry
    /// // `name="users"`, e.g. flowgate_dataloader_loads_total{name="users"}.
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .name("users")
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// assert_eq!(loader.load(21).await.unwrap(), 42);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }

    /// Builds the loader and spawns its batch worker on the current tokio
    /// runtime.
    ///
    /// `fetch(keys)` gets distinct keys and returns their values as a
    /// [`BatchResults`]: a `HashMap<K, V>`, or a `HashMap<K, Result<V, E>>`
    /// for per-key errors; its `Err` fails the whole batch.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if a setting breaks its rule (see the table above),
    /// or `BuildError::Batch(NoRuntime)` outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::batch;
    /// use flowgate::dataloader::{BuildError, DataLoader};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder().build(fetch).unwrap();
    /// assert_eq!(loader.load(21).await.unwrap(), 42);
    ///
    /// // A thread without a tokio runtime has nothing to spawn the worker on.
    /// let outside: Result<DataLoader<u32, u32, std::io::Error>, BuildError> =
    ///     std::thread::spawn(move || DataLoader::builder().build(fetch)).join().unwrap();
    /// assert_eq!(outside.unwrap_err(), BuildError::Batch(batch::BuildError::NoRuntime));
    /// # }
    /// ```
    pub fn build<K, V, E, F, Fut, R>(self, fetch: F) -> Result<DataLoader<K, V, E>, BuildError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnMut(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: BatchResults<K, V, E>,
    {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| BuildError::Batch(crate::batch::BuildError::NoRuntime))?;
        let (loader, worker) = self.build_pair(fetch)?;
        runtime.spawn(worker);
        Ok(loader)
    }

    /// Builds the loader and returns its batch worker for you to spawn or
    /// await, as [`build`](Self::build) would have spawned it.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if a setting breaks its rule (see the table above).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::{BuildError, DataLoader};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let (loader, worker) = DataLoader::builder().build_pair(fetch).unwrap();
    /// let worker = tokio::spawn(worker);
    /// let loader: DataLoader<u32, u32, std::io::Error> = loader;
    /// assert_eq!(loader.load(21).await.unwrap(), 42);
    /// loader.close().await;
    /// worker.await.unwrap(); // the worker stops once the loader is closed
    ///
    /// let err = DataLoader::builder().max_batch(0).build_pair(fetch).unwrap_err();
    /// assert_eq!(err, BuildError::Batch(flowgate::batch::BuildError::ZeroMaxItems));
    /// # }
    /// ```
    #[allow(clippy::type_complexity)] // the (handle, worker) pair is the point
    pub fn build_pair<K, V, E, F, Fut, R>(
        self,
        mut fetch: F,
    ) -> Result<(DataLoader<K, V, E>, LoaderWorker<K, V, E>), BuildError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnMut(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: BatchResults<K, V, E>,
    {
        let cache = match self.cache {
            None => None,
            Some((0, _)) => return Err(BuildError::ZeroCacheCapacity),
            Some((_, ttl)) if ttl.is_zero() => return Err(BuildError::ZeroCacheTtl),
            Some((capacity, ttl)) => Some(Mutex::new(ExpiringMap::new(capacity, ttl))),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            cache,
            stats: Default::default(),
            metrics: LoaderMetrics::new(self.name.clone()),
        });
        let counters = Arc::clone(&shared);
        let mut batcher = Batcher::builder()
            .max_items(self.max_batch)
            .max_delay(self.delay)
            .flush_concurrency(self.concurrency);
        if let Some(capacity) = self.capacity {
            batcher = batcher.capacity(capacity);
        }
        if let Some(name) = self.name.get() {
            batcher = batcher.name(name);
        }
        let (batcher, worker) = batcher.build_pair(move |keys: Vec<K>| {
            counters.stats.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .stats
                .keys_fetched
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            counters.metrics.fetch_size.record(keys.len() as f64);
            // The keys are needed after the fetch, to pick each one's result.
            let fetched = match catch_unwind(AssertUnwindSafe(|| fetch(keys.clone()))) {
                Ok(fetched) => fetched,
                Err(panic) => counters.fetch_panicked(panic),
            };
            let counters = Arc::clone(&counters);
            async move {
                // The batcher catches a panic (and fails the batch with it);
                // count it on its way.
                let mut fetched = pin!(fetched);
                let fetched = poll_fn(|cx| {
                    match catch_unwind(AssertUnwindSafe(|| fetched.as_mut().poll(cx))) {
                        Ok(poll) => poll,
                        Err(panic) => counters.fetch_panicked(panic),
                    }
                })
                .await;
                let mut results = fetched.inspect_err(|_| counters.metrics.fetch_failed.inc())?;
                let (mut errors, mut missing) = (0usize, 0usize);
                let outputs = keys
                    .iter()
                    .map(|key| match results.take(key) {
                        Some(Ok(value)) => Ok(value),
                        Some(Err(err)) => {
                            errors += 1;
                            Err(LoadError::Key(Arc::new(err)))
                        }
                        None => {
                            missing += 1;
                            Err(LoadError::Missing)
                        }
                    })
                    .collect::<Vec<_>>();
                let name = counters.metrics.name.as_str();
                if errors > 0 {
                    tracing::warn!(
                        target: TARGET,
                        name,
                        keys = keys.len(),
                        errors,
                        missing,
                        "batch fetch returned errors for some keys"
                    );
                } else if missing > 0 {
                    tracing::debug!(
                        target: TARGET,
                        name,
                        keys = keys.len(),
                        missing,
                        "batch fetch returned no entry for some keys"
                    );
                }
                Ok::<_, E>(outputs)
            }
        })?;
        Ok((DataLoader { batcher, shared }, worker))
    }
}

impl fmt::Debug for DataLoaderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLoaderBuilder")
            .field("max_batch", &self.max_batch)
            .field("delay", &self.delay)
            .field("concurrency", &self.concurrency)
            .field("capacity", &self.capacity)
            .field("cache", &self.cache)
            .field("name", &self.name)
            .finish()
    }
}
