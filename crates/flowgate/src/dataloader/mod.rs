//! A data loader: `load(key)` calls from many tasks within a short window
//! become one `batch_fetch(keys)` call, with each key fetched once however
//! many tasks asked for it, an error per key, and an optional bounded cache
//! with a time to live.
//!
//! The seed's "dataloader for caching similar resources": pass user ids from
//! many pipeline items, deduplicate them, and fetch them in one query from a
//! cache or a database. Built on [`Batcher`], which
//! does the windowing, the bounded queue, concurrent fetches, panic isolation
//! and shutdown; the loader adds per-key deduplication, per-key results and
//! the cache.
//!
//! ```text
//!  task 1: load(7) ──┐                 ┌─ in cache? ──yes──> value
//!  task 2: load(9) ──┼─> per key: ─────┼─ fetch of 7 pending? ──yes──> wait for it (joined)
//!  task 3: load(7) ──┘                 └─ else submit 7 to the batcher
//!                                             │  window: delay / max_batch
//!                                             v
//!                                 batch_fetch([7, 9]) ──> {7: v7, 9: Err(e9)}
//!                                             │
//!                      task 1, task 3 <── Ok(v7)     task 2 <── Err(LoadError::Key(e9))
//! ```
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use flowgate::dataloader::DataLoader;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let loader = DataLoader::builder()
//!     .max_batch(100)
//!     .delay(Duration::from_millis(2))
//!     .cache(10_000, Duration::from_secs(30))
//!     .build(|ids: Vec<u64>| async move {
//!         // SELECT id, name FROM users WHERE id IN (...)
//!         Ok::<_, std::io::Error>(
//!             ids.into_iter().map(|id| (id, format!("user {id}"))).collect::<HashMap<_, _>>(),
//!         )
//!     })
//!     .unwrap();
//!
//! let tasks: Vec<_> = [1u64, 2, 1, 3, 2, 1]
//!     .into_iter()
//!     .map(|id| {
//!         let loader = loader.clone();
//!         tokio::spawn(async move { loader.load(id).await })
//!     })
//!     .collect();
//! for task in tasks {
//!     assert!(task.await.unwrap().is_ok());
//! }
//! let stats = loader.stats();
//! assert_eq!(stats.loads, 6);
//! assert_eq!(stats.keys_fetched, 3); // each id fetched once
//! assert_eq!(stats.batches, 1);
//! # }
//! ```
//!
//! # Deduplication
//!
//! A key is fetched by at most one batch at a time. The first `load(k)` that
//! finds no cached value and no fetch of `k` in progress submits `k`; every
//! other `load(k)` until that fetch completes waits for its result (counted
//! as [`joined`](LoadStats::joined)). So keys are deduplicated within a
//! window and across windows while a fetch is running, and `batch_fetch`
//! always receives distinct keys. Once the fetch completes, its result is
//! handed to every waiter; without a cache, a later `load(k)` fetches `k`
//! again.
//!
//! # Errors per key
//!
//! The batch fetch returns a [`BatchResults`]: a map of values, or of
//! `Result`s per key. Each key gets its own outcome:
//!
//! | the batch fetch | `load(k)` returns |
//! |---|---|
//! | `Ok(map)` with `k: v` (or `k: Ok(v)`) | `Ok(v)` |
//! | `Ok(map)` with `k: Err(e)` | `Err(LoadError::Key(e))`, for `k` only |
//! | `Ok(map)` without `k` | `Err(LoadError::Missing)`, for `k` only |
//! | `Err(e)` | `Err(LoadError::Fetch(e))` for every key of the batch |
//! | panics | `Err(LoadError::Panicked(msg))` for every key of the batch; the loader keeps working |
//!
//! Errors are shared (`Arc`) between the loads waiting on one key, and never
//! cached: the next `load(k)` after an error fetches `k` again.
//!
//! # Cache
//!
//! With [`cache(capacity, ttl)`](DataLoaderBuilder::cache), fetched values are
//! kept for `ttl` (at most `capacity` keys; the oldest goes first), and
//! [`prime`](DataLoader::prime), [`clear`](DataLoader::clear) and
//! [`clear_all`](DataLoader::clear_all) edit it. The cache is a bounded TTL
//! map of flowgate's own (see [`idempotency`](crate::idempotency#stores) for
//! why not moka); it follows tokio's clock. A fetch in progress when
//! `clear(k)` is called still caches its value when it completes.
//!
//! # Backpressure and shutdown
//!
//! At most [`capacity`](DataLoaderBuilder::capacity) distinct keys wait for a
//! fetch; a load that would add one more waits for room. Up to
//! [`concurrency`](DataLoaderBuilder::concurrency) batch fetches run at once.
//! [`close`](DataLoader::close) fetches every key already submitted, then
//! stops; later loads fail with [`LoadError::Closed`]. Dropping every handle
//! does the same without waiting. No load is ever left waiting: if the
//! batcher's worker is dropped, waiting loads fail with `Closed`.
//!
//! # Metrics and tracing
//!
//! Name a loader with [`DataLoaderBuilder::name`] and, with the `metrics`
//! feature, it records the `flowgate_dataloader_*` series listed in
//! [`crate::metrics`]: loads, cache hits and misses, loads joined to a fetch
//! in progress, keys per batch fetch, batch fetches that failed (by reason)
//! and each fetched key's result (by outcome). Its batcher takes the same
//! name, so the `flowgate_batch_*` series with it describe the keys' queue:
//! keys waiting for their window, fetches by trigger, their duration, and
//! the time a key waited before its fetch started.
//!
//! Each batch fetch runs in its batcher's `flush` span (target
//! `flowgate::batch`, with the loader's name); a failed or panicked fetch is
//! that batcher's `warn` or `error` event. A fetch that returned errors for
//! some keys emits one `warn` event (target `flowgate::dataloader`, with the
//! counts), one with only missing keys a `debug` event; nothing is emitted
//! per key.
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`load`](DataLoader::load), [`load_many`](DataLoader::load_many) | yes | only its own result. A key it submitted is still fetched, cached and handed to the other loads waiting for it; if it was cancelled before the key was accepted (waiting for room), a waiting load submits the key instead |
//! | [`close`](DataLoader::close) | yes | nothing; the close began at the call |

mod builder;
mod error;
mod observe;
mod results;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use self::builder::DataLoaderBuilder;
pub use self::error::{BuildError, LoadError};
pub use self::results::BatchResults;

use crate::batch::{Batcher, FlushError, Worker};
use crate::expiring::ExpiringMap;
use crate::sync::lock;

use self::observe::LoaderMetrics;

/// The batch worker of a [`DataLoader`], from
/// [`DataLoaderBuilder::build_pair`]: spawn or await it.
pub type LoaderWorker<K, V, E> = Worker<K, Result<V, LoadError<E>>, E>;

/// The result of one key's fetch, published to every load waiting on it;
/// `None` until the fetch completes.
type Slot<V, E> = watch::Receiver<Option<Result<V, LoadError<E>>>>;

/// Batches and deduplicates `load(key)` calls into `batch_fetch(keys)`; see
/// the [module documentation](self).
///
/// Cheap to clone; clones share the batcher, the fetches in progress and the
/// cache.
pub struct DataLoader<K, V, E> {
    batcher: Batcher<K, Result<V, LoadError<E>>, E>,
    shared: Arc<Shared<K, V, E>>,
}

/// What the loader's handles and the batcher's callbacks share. It does not
/// hold the batcher, so callbacks holding it do not keep the batcher open.
struct Shared<K, V, E> {
    /// Keys submitted and not yet fetched, with the slot their result goes to.
    pending: Mutex<HashMap<K, Slot<V, E>>>,
    cache: Option<Mutex<ExpiringMap<K, V>>>,
    stats: Counters,
    metrics: LoaderMetrics,
}

#[derive(Default)]
struct Counters {
    loads: AtomicU64,
    cache_hits: AtomicU64,
    joined: AtomicU64,
    batches: AtomicU64,
    keys_fetched: AtomicU64,
}

/// Counters of a [`DataLoader`], from [`DataLoader::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadStats {
    /// Calls of `load` (each key of `load_many` counts).
    pub loads: u64,
    /// Loads answered from the cache.
    pub cache_hits: u64,
    /// Loads that waited on a fetch another load had started.
    pub joined: u64,
    /// Calls of the batch fetch function.
    pub batches: u64,
    /// Keys passed to the batch fetch function, over all calls.
    pub keys_fetched: u64,
}

impl DataLoader<(), (), ()> {
    /// Starts configuring a loader; see [`DataLoaderBuilder`] for the
    /// settings and their defaults.
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
    ///     .max_batch(50)
    ///     .cache(1_000, Duration::from_secs(60))
    ///     .build(fetch)
    ///     .unwrap();
    /// assert_eq!(loader.load(4).await.unwrap(), 8);
    ///
    /// let err = DataLoader::builder().cache(0, Duration::from_secs(60)).build(fetch).unwrap_err();
    /// assert_eq!(err, BuildError::ZeroCacheCapacity);
    /// # }
    /// ```
    pub fn builder() -> DataLoaderBuilder {
        DataLoaderBuilder::default()
    }
}

impl<K, V, E> DataLoader<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Loads the value of `key`: from the cache, by joining a fetch of `key`
    /// in progress, or by adding `key` to the next batch fetch.
    ///
    /// # Errors
    ///
    /// A [`LoadError`] for this key: the batch failed, the key had its own
    /// error or was missing from the batch's results, the fetch panicked, or
    /// the loader is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled load loses only its own result (see the
    /// [table](self#cancel-safety)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, String, String> = DataLoader::builder()
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok(keys
    ///             .into_iter()
    ///             .filter(|k| *k != 404) // 404 is missing
    ///             .map(|k| (k, if k == 13 { Err("unlucky".to_owned()) } else { Ok(k.to_string()) }))
    ///             .collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// let (a, b, c) = tokio::join!(loader.load(1), loader.load(13), loader.load(404));
    /// assert_eq!(a.unwrap(), "1");
    /// assert_eq!(b.unwrap_err().fetch_error().unwrap(), "unlucky");
    /// assert!(c.unwrap_err().is_missing());
    /// assert_eq!(loader.stats().batches, 1);
    /// # }
    /// ```
    pub async fn load(&self, key: K) -> Result<V, LoadError<E>> {
        let shared = &self.shared;
        shared.stats.loads.fetch_add(1, Ordering::Relaxed);
        shared.metrics.loads.inc();
        loop {
            let step = {
                let mut pending = lock(&shared.pending);
                // The cache is read under the pending lock: a completing fetch
                // caches its value before it leaves `pending`, so a load sees
                // one or the other, never neither.
                let cached = shared
                    .cache
                    .as_ref()
                    .and_then(|cache| lock(cache).get(&key).cloned());
                if let Some(value) = cached {
                    shared.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.cache_hits.inc();
                    return Ok(value);
                }
                if shared.cache.is_some() {
                    shared.metrics.cache_misses.inc();
                }
                match pending.get(&key) {
                    Some(slot) => Step::Join(slot.clone()),
                    None => {
                        let (publish, slot) = watch::channel(None);
                        pending.insert(key.clone(), slot.clone());
                        Step::Submit(publish, slot)
                    }
                }
            };
            match step {
                Step::Join(slot) => {
                    shared.stats.joined.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.joined.inc();
                    match wait(&slot).await {
                        Some(result) => return result,
                        // The load that submitted the key was cancelled before
                        // the batcher took it: try again (and maybe submit).
                        None => shared.forget(&key, &slot),
                    }
                }
                Step::Submit(publish, slot) => {
                    let guard = Unsubmitted {
                        shared,
                        key: &key,
                        slot: &slot,
                    };
                    let callback_shared = Arc::clone(shared);
                    let callback_key = key.clone();
                    let submitted = self
                        .batcher
                        .submit_with(key.clone(), move |outcome| {
                            let result = outcome.unwrap_or_else(|err: FlushError<E>| {
                                Err(LoadError::from_flush(err))
                            });
                            callback_shared.complete(&callback_key, &publish, result);
                        })
                        .await;
                    guard.defuse(submitted.is_ok());
                    if submitted.is_err() {
                        return Err(LoadError::Closed);
                    }
                    // `None`: the batcher dropped the callback without calling
                    // it, which only its worker being dropped does.
                    return wait(&slot).await.unwrap_or(Err(LoadError::Closed));
                }
            }
        }
    }

    /// Loads every key of `keys`, concurrently (so they share batches), and
    /// returns their results in the same order.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`load`](Self::load).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, String> = DataLoader::builder()
    ///     .build(|keys: Vec<u32>| async move {
    ///         // 0 is not found; the others are doubled.
    ///         Ok(keys.into_iter().filter(|k| *k != 0).map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// let results = loader.load_many([3, 0, 3]).await;
    /// assert_eq!(results[0], Ok(6));
    /// assert!(results[1].as_ref().unwrap_err().is_missing());
    /// assert_eq!(results[2], Ok(6));
    /// let stats = loader.stats();
    /// assert_eq!((stats.batches, stats.keys_fetched), (1, 2)); // 3 fetched once
    /// # }
    /// ```
    pub async fn load_many(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<Result<V, LoadError<E>>> {
        futures_util::future::join_all(keys.into_iter().map(|key| self.load(key))).await
    }

    /// Puts `value` in the cache for `key`, as if it had been fetched now.
    /// Returns `false` (and does nothing) if the loader has no cache.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fetch = |keys: Vec<u32>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    /// };
    /// let cached: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .cache(100, Duration::from_secs(60))
    ///     .build(fetch)
    ///     .unwrap();
    /// assert!(cached.prime(1, 100));
    /// assert_eq!(cached.load(1).await.unwrap(), 100); // not fetched
    /// assert_eq!(cached.stats().batches, 0);
    ///
    /// // Without a cache there is nowhere to put it.
    /// let uncached: DataLoader<u32, u32, std::io::Error> = DataLoader::builder().build(fetch).unwrap();
    /// assert!(!uncached.prime(1, 100));
    /// assert_eq!(uncached.load(1).await.unwrap(), 2);
    /// # }
    /// ```
    pub fn prime(&self, key: K, value: V) -> bool {
        match &self.shared.cache {
            Some(cache) => {
                lock(cache).insert(key, value);
                true
            }
            None => false,
        }
    }

    /// Removes `key` from the cache; whether it held a value.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .cache(100, Duration::from_secs(60))
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// loader.load(1).await.unwrap();
    /// assert!(loader.clear(&1));
    /// assert!(!loader.clear(&1)); // nothing left to clear
    /// loader.load(1).await.unwrap(); // fetched again
    /// assert_eq!(loader.stats().batches, 2);
    /// # }
    /// ```
    pub fn clear(&self, key: &K) -> bool {
        self.shared
            .cache
            .as_ref()
            .is_some_and(|cache| lock(cache).remove(key))
    }

    /// Empties the cache.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .cache(100, Duration::from_secs(60))
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// loader.load_many([1, 2]).await;
    /// loader.clear_all();
    /// assert!(!loader.clear(&1) && !loader.clear(&2));
    /// loader.load_many([1, 2]).await; // fetched again, in one batch
    /// assert_eq!(loader.stats().batches, 2);
    /// # }
    /// ```
    pub fn clear_all(&self) {
        if let Some(cache) = &self.shared.cache {
            lock(cache).clear();
        }
    }

    /// Fetches the keys waiting for their window now; see
    /// [`Batcher::flush`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use flowgate::dataloader::DataLoader;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .delay(Duration::from_secs(3600))
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// let start = Instant::now();
    /// let load = tokio::spawn({
    ///     let loader = loader.clone();
    ///     async move { loader.load(1).await }
    /// });
    /// tokio::task::yield_now().await; // let the load submit its key
    /// loader.flush().await;
    /// assert_eq!(load.await.unwrap().unwrap(), 2);
    /// assert!(start.elapsed() < Duration::from_secs(3600)); // long before the window ends
    /// # }
    /// ```
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        self.batcher.flush()
    }

    /// Closes the loader: every key already submitted is fetched and its
    /// loads resolve, later loads fail with [`LoadError::Closed`]. The
    /// returned future resolves once the batch worker has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// let load = tokio::spawn({
    ///     let loader = loader.clone();
    ///     async move { loader.load(1).await }
    /// });
    /// tokio::task::yield_now().await; // let the load submit its key
    /// loader.close().await;
    /// assert_eq!(load.await.unwrap().unwrap(), 2); // submitted before the close: fetched
    /// assert!(loader.load(2).await.unwrap_err().is_closed());
    /// # }
    /// ```
    pub fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        self.batcher.close()
    }

    /// Whether the loader was closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// assert!(!loader.is_closed());
    /// loader.close().await;
    /// assert!(loader.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.batcher.is_closed()
    }

    /// A snapshot of the loader's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .cache(100, Duration::from_secs(60))
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, k * 2)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// loader.load_many([1, 1, 2]).await; // 1 is fetched once, the second load joins it
    /// loader.load(2).await.unwrap(); // from the cache
    /// let stats = loader.stats();
    /// assert_eq!(stats.loads, 4);
    /// assert_eq!((stats.batches, stats.keys_fetched), (1, 2));
    /// assert_eq!((stats.joined, stats.cache_hits), (1, 1));
    /// # }
    /// ```
    pub fn stats(&self) -> LoadStats {
        let stats = &self.shared.stats;
        LoadStats {
            loads: stats.loads.load(Ordering::Relaxed),
            cache_hits: stats.cache_hits.load(Ordering::Relaxed),
            joined: stats.joined.load(Ordering::Relaxed),
            batches: stats.batches.load(Ordering::Relaxed),
            keys_fetched: stats.keys_fetched.load(Ordering::Relaxed),
        }
    }
}

enum Step<V, E> {
    Join(Slot<V, E>),
    Submit(watch::Sender<Option<Result<V, LoadError<E>>>>, Slot<V, E>),
}

/// Waits for a key's result; `None` if its publisher was dropped unused.
async fn wait<V: Clone, E>(slot: &Slot<V, E>) -> Option<Result<V, LoadError<E>>> {
    let mut slot = slot.clone();
    // `wait_for` checks the value before the channel's closing, so a result
    // published just before the publisher was dropped is seen.
    let result = slot.wait_for(Option::is_some).await.ok()?;
    result.clone()
}

impl<K: Hash + Eq, V, E> Shared<K, V, E> {
    /// Counts a panic of the batch fetch and lets it go on to the batcher,
    /// which fails the batch with it.
    fn fetch_panicked(&self, panic: Box<dyn std::any::Any + Send>) -> ! {
        self.metrics.fetch_panicked.inc();
        std::panic::resume_unwind(panic)
    }

    /// Removes `key`'s pending entry if it is still `slot`'s.
    fn forget(&self, key: &K, slot: &Slot<V, E>) {
        let mut pending = lock(&self.pending);
        if pending.get(key).is_some_and(|s| s.same_channel(slot)) {
            pending.remove(key);
        }
    }

    /// Runs on the batcher's worker when `key`'s fetch completed.
    fn complete(
        &self,
        key: &K,
        publish: &watch::Sender<Option<Result<V, LoadError<E>>>>,
        result: Result<V, LoadError<E>>,
    ) where
        K: Clone,
        V: Clone,
    {
        self.metrics.key_result(&result);
        if let (Some(cache), Ok(value)) = (&self.cache, &result) {
            lock(cache).insert(key.clone(), value.clone());
        }
        let mut pending = lock(&self.pending);
        if pending
            .get(key)
            .is_some_and(|slot| slot.same_channel(&publish.subscribe()))
        {
            pending.remove(key);
        }
        drop(pending);
        publish.send_replace(Some(result));
    }
}

/// Removes a submitter's pending entry unless the batcher accepted its key:
/// a load cancelled while waiting for room must not leave an entry that no
/// fetch will ever complete.
struct Unsubmitted<'a, K: Hash + Eq, V, E> {
    shared: &'a Shared<K, V, E>,
    key: &'a K,
    slot: &'a Slot<V, E>,
}

impl<K: Hash + Eq, V, E> Unsubmitted<'_, K, V, E> {
    /// Consumes the guard; the entry stays if `accepted`.
    fn defuse(self, accepted: bool) {
        if !accepted {
            self.shared.forget(self.key, self.slot);
        }
        std::mem::forget(self);
    }
}

impl<K: Hash + Eq, V, E> Drop for Unsubmitted<'_, K, V, E> {
    fn drop(&mut self) {
        self.shared.forget(self.key, self.slot);
    }
}

impl<K, V, E> Clone for DataLoader<K, V, E> {
    fn clone(&self) -> Self {
        DataLoader {
            batcher: self.batcher.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, V, E> fmt::Debug for DataLoader<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLoader")
            .field("batcher", &self.batcher)
            .field("cached", &self.shared.cache.as_ref().map(|c| lock(c).len()))
            .finish_non_exhaustive()
    }
}
