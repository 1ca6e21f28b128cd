//! [`BatcherBuilder`] and [`KeyedBatcherBuilder`]: the limits of a batcher
//! and its flush function. Both share their knobs and their rules.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::error::{BuildError, FlushError};
use super::keys::{BatchKey, Keyed};
use super::observe::Metrics;
use super::output::FlushOutput;
use super::shared::{Limits, Shared, Weigher};
use super::worker::{Driver, FlushFn, FlushFuture};
use super::{Batcher, KeyedBatcher, KeyedWorker, Worker};
use crate::telemetry::Name;

/// Configures and builds a [`Batcher`]. Created by [`Batcher::builder`].
///
/// | setting | default | rule | at its maximum |
/// |---|---|---|---|
/// | [`max_items`](Self::max_items) | 1000 | at least 1 ([`BuildError::ZeroMaxItems`]) | `usize::MAX`: no size bound |
/// | [`max_delay`](Self::max_delay) | 100 ms | greater than zero ([`BuildError::ZeroMaxDelay`]) | `Duration::MAX`: never flushes by time |
/// | [`max_bytes`](Self::max_bytes) | none | at least 1 ([`BuildError::ZeroMaxBytes`]) | `usize::MAX`: as if unset |
/// | [`capacity`](Self::capacity) | `max_items × (flush_concurrency + 1)`, saturating | at least `max_items` ([`BuildError::CapacityBelowMaxItems`]) | `usize::MAX`: no backpressure |
/// | [`flush_concurrency`](Self::flush_concurrency) | 1 | at least 1 ([`BuildError::ZeroFlushConcurrency`]) | `usize::MAX`: no bound on flushes at once |
/// | [`resolve_in_order`](Self::resolve_in_order) | `false` | none | |
/// | [`name`](Self::name) | none: no metrics | any string, as given | |
///
/// Setters only store their value and never panic. Every rule is checked by
/// [`build`](Self::build) and [`build_pair`](Self::build_pair), which return
/// a [`BuildError`] naming the first one broken. Nothing is allocated in
/// proportion to a limit: a batch reserves room for at most 4096 items when
/// it opens and grows as items come, so the maxima above are safe (a
/// `usize::MAX` default capacity saturates instead of overflowing).
pub struct BatcherBuilder<T> {
    knobs: Knobs<T>,
    resolve_in_order: bool,
}

/// The settings both builders share.
struct Knobs<T> {
    max_items: usize,
    max_delay: Duration,
    max_bytes: Option<usize>,
    weigher: Option<Weigher<T>>,
    capacity: Option<usize>,
    flush_concurrency: usize,
    name: Name,
    _items: PhantomData<fn(T)>,
}

impl<T> Default for Knobs<T> {
    fn default() -> Self {
        Knobs {
            max_items: 1000,
            max_delay: Duration::from_millis(100),
            max_bytes: None,
            weigher: None,
            capacity: None,
            flush_concurrency: 1,
            name: Name::none(),
            _items: PhantomData,
        }
    }
}

impl<T> Knobs<T> {
    /// Checks the shared rules; the caller fills in its own fields.
    fn limits(&self) -> Result<Limits, BuildError> {
        if self.max_items == 0 {
            return Err(BuildError::ZeroMaxItems);
        }
        if self.max_delay.is_zero() {
            return Err(BuildError::ZeroMaxDelay);
        }
        if self.max_bytes == Some(0) {
            return Err(BuildError::ZeroMaxBytes);
        }
        if self.flush_concurrency == 0 {
            return Err(BuildError::ZeroFlushConcurrency);
        }
        let capacity = match self.capacity {
            Some(capacity) => capacity,
            None => self
                .max_items
                .saturating_mul(self.flush_concurrency.saturating_add(1)),
        };
        if capacity < self.max_items {
            return Err(BuildError::CapacityBelowMaxItems {
                capacity,
                max_items: self.max_items,
            });
        }
        Ok(Limits {
            max_items: self.max_items,
            max_bytes: self.max_bytes.unwrap_or(usize::MAX),
            max_delay: self.max_delay,
            capacity,
            flush_concurrency: self.flush_concurrency,
            resolve_in_order: false,
            max_open_keys: usize::MAX,
            one_flush_per_key: false,
            seal_when_full: false,
        })
    }

    fn debug(&self, f: &mut fmt::DebugStruct<'_, '_>) {
        f.field("max_items", &self.max_items)
            .field("max_delay", &self.max_delay)
            .field("max_bytes", &self.max_bytes)
            .field("capacity", &self.capacity)
            .field("flush_concurrency", &self.flush_concurrency)
            .field("name", &self.name);
    }
}

/// Wraps a flush function that returns `Result<R, E>` into the worker's
/// boxed form, which splits `R` into one output per item.
fn boxed<K, T, F, Fut, R, O, E>(mut flush: F) -> FlushFn<K, T, O, E>
where
    F: FnMut(K, Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: FlushOutput<O>,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    Box::new(move |key: K, items: Vec<T>| -> FlushFuture<O, E> {
        let expected = items.len();
        let future = flush(key, items);
        Box::pin(async move {
            match future.await {
                Ok(output) => output
                    .into_outputs(expected)
                    .map_err(|actual| FlushError::OutputMismatch { expected, actual }),
                Err(err) => Err(FlushError::Failed(Arc::new(err))),
            }
        })
    })
}

/// The shared state and the worker of a new batcher, with its series
/// registered (when it has a name).
#[allow(clippy::type_complexity)]
fn assemble<K: BatchKey, T, O, E>(
    limits: Limits,
    knobs: Knobs<T>,
    keyed: bool,
    flush: FlushFn<K, T, O, E>,
) -> (Arc<Shared<K, T, O, E>>, Driver<K, T, O, E>)
where
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    let metrics = Metrics::new(knobs.name, keyed);
    let shared = Arc::new(Shared::new(limits, knobs.weigher, metrics));
    let driver = Driver::new(Arc::clone(&shared), flush);
    (shared, driver)
}

impl<T> Default for BatcherBuilder<T> {
    fn default() -> Self {
        BatcherBuilder {
            knobs: Knobs::default(),
            resolve_in_order: false,
        }
    }
}

impl<T> BatcherBuilder<T>
where
    T: Send + 'static,
{
    /// A batch is flushed as soon as it holds this many items.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{Batcher, BuildError};
    ///
    /// let batcher = Batcher::builder().max_items(2).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap();
    /// let (a, b) = tokio::join!(batcher.submit_and_wait(1), batcher.submit_and_wait(2));
    /// assert!(a.is_ok() && b.is_ok());
    /// assert_eq!(batcher.stats().batches, 1); // full at 2 items
    /// let err = Batcher::builder().max_items(0).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMaxItems);
    /// # }
    /// ```
    pub fn max_items(mut self, max_items: usize) -> Self {
        self.knobs.max_items = max_items;
        self
    }

    /// A batch is flushed once this much time has passed since its first item
    /// arrived, however few items it holds.
    ///
    /// A delay too long for an `Instant` (up to `Duration::MAX`) never
    /// passes: batches are then flushed only by size, bytes,
    /// [`flush`](Batcher::flush) or [`close`](Batcher::close), and hold no
    /// timer. Zero is refused by `build` ([`BuildError::ZeroMaxDelay`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::batch::{Batcher, BuildError};
    ///
    /// let batcher = Batcher::builder().max_delay(Duration::from_millis(5)).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap();
    /// let start = tokio::time::Instant::now();
    /// batcher.submit_and_wait(1).await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_millis(5));
    /// let err = Batcher::builder().max_delay(Duration::ZERO).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMaxDelay);
    /// # }
    /// ```
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.knobs.max_delay = max_delay;
        self
    }

    /// A batch is flushed once the weights of its items, as measured by
    /// `weigher`, add up to `max_bytes`.
    ///
    /// An item that would take a non-empty batch over `max_bytes` starts the
    /// next batch instead, so a batch weighs more than `max_bytes` only when a
    /// single item does; such an item is flushed alone.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{Batcher, BuildError};
    ///
    /// let batcher = Batcher::builder()
    ///     .max_bytes(10, |row: &String| row.len())
    ///     .build(|_: Vec<String>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.submit_and_wait("0123456789".to_owned()).await.unwrap(); // 10 bytes: full
    /// assert_eq!(batcher.stats().batches, 1);
    /// let err = Batcher::builder().max_bytes(0, |_: &u32| 1).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMaxBytes);
    /// # }
    /// ```
    pub fn max_bytes(
        mut self,
        max_bytes: usize,
        weigher: impl Fn(&T) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.knobs.max_bytes = Some(max_bytes);
        self.knobs.weigher = Some(Box::new(weigher));
        self
    }

    /// How many submitted items the batcher holds before
    /// [`submit`](Batcher::submit) waits and [`try_submit`](Batcher::try_submit)
    /// refuses with `Full`.
    ///
    /// The bound counts items waiting in batches that have not been handed to
    /// the flush function yet. Items being flushed are bounded separately, by
    /// `flush_concurrency × max_items`, so the batcher holds at most
    /// `capacity + flush_concurrency × max_items` items in all.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{Batcher, BuildError};
    ///
    /// let batcher = Batcher::builder().max_items(2).capacity(2).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap();
    /// let _a = batcher.try_submit(1).unwrap();
    /// let _b = batcher.try_submit(2).unwrap();
    /// assert!(batcher.try_submit(3).unwrap_err().is_full());
    /// let err = Batcher::builder().max_items(2).capacity(1).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap_err();
    /// assert!(matches!(err, BuildError::CapacityBelowMaxItems { capacity: 1, max_items: 2 }));
    /// # }
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.knobs.capacity = Some(capacity);
        self
    }

    /// How many flushes may run at once.
    ///
    /// With the default of 1, batches are flushed one at a time, in the order
    /// they were filled, and each item's flushed resolves after every earlier
    /// batch's. With `n > 1`, a slow flush no longer stalls the next batch:
    /// batches still *start* in the order they were filled, but may *finish*
    /// (and resolve their items) out of order, unless
    /// [`resolve_in_order`](Self::resolve_in_order) is set; the flush
    /// function must tolerate `n` concurrent calls.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{Batcher, BuildError};
    ///
    /// let batcher = Batcher::builder().max_items(1).flush_concurrency(4).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap();
    /// let outcomes = futures_util::future::join_all((0..8).map(|i| batcher.submit_and_wait(i))).await;
    /// assert!(outcomes.iter().all(Result::is_ok));
    /// let err = Batcher::builder().flush_concurrency(0).build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) }).unwrap_err();
    /// assert_eq!(err, BuildError::ZeroFlushConcurrency);
    /// # }
    /// ```
    pub fn flush_concurrency(mut self, flush_concurrency: usize) -> Self {
        self.knobs.flush_concurrency = flush_concurrency;
        self
    }

    /// Whether items resolve in submission order when flushes run
    /// concurrently.
    ///
    /// With `true`, an item's [`Flushed`](super::Flushed) future, its
    /// [`submit_and_wait`](Batcher::submit_and_wait) or its callback
    /// resolves only after those of every item submitted before it: a batch
    /// whose flush finishes before an earlier batch's is held back until the
    /// earlier one has resolved, then resolves at once. Its outcome is kept
    /// as it was: a failed or panicked earlier batch resolves with its error
    /// and releases the later ones. Only the *reporting* is ordered; flushes
    /// still run concurrently, start in order and may finish in any order.
    ///
    /// What it costs: a slow batch holds back the results of every later
    /// batch, and a held batch keeps its flush slot until it resolves, so at
    /// most `flush_concurrency` batches are flushing or held at once (memory
    /// stays bounded by `flush_concurrency × max_items` outputs) and a slow
    /// batch also delays the start of the batch `flush_concurrency` places
    /// after it. With the default `false` each batch resolves as soon as its
    /// flush finishes. With a `flush_concurrency` of 1 the two are the same.
    ///
    /// If the [`Worker`] is dropped, outstanding items still resolve in
    /// order: a flush cut short fails with
    /// [`FlushError::Closed`](super::FlushError::Closed), and a finished
    /// batch held back for it reports its own outcome.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use flowgate::batch::Batcher;
    ///
    /// // The first batch is the slowest, yet the others resolve after it.
    /// let batcher = Batcher::builder()
    ///     .max_items(1)
    ///     .flush_concurrency(3)
    ///     .resolve_in_order(true)
    ///     .build(|items: Vec<u64>| async move {
    ///         tokio::time::sleep(Duration::from_millis(items[0])).await;
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .unwrap();
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// for ms in [30, 10, 20] {
    ///     let order = Arc::clone(&order);
    ///     batcher
    ///         .submit_with(ms, move |_| order.lock().unwrap().push(ms))
    ///         .await
    ///         .unwrap();
    /// }
    /// batcher.close().await;
    /// assert_eq!(*order.lock().unwrap(), [30, 10, 20]);
    /// # }
    /// ```
    pub fn resolve_in_order(mut self, in_order: bool) -> Self {
        self.resolve_in_order = in_order;
        self
    }

    /// Names the batcher: the `name` label of its series and the `name`
    /// field of its flush spans and events. Any string is accepted as given;
    /// give each batcher its own.
    ///
    /// With the `metrics` feature, a named batcher registers its
    /// `flowgate_batch_*` series when it is built (see [the
    /// table](crate::metrics)): items submitted, flushed (by outcome),
    /// pending and flushing; submitters waiting for room; rejections (by
    /// reason); flushes (by trigger and by outcome); and histograms of the
    /// flush size, the flush duration and the age of a batch's oldest item
    /// when its flush starts. An unnamed batcher records no metrics; its
    /// spans and events say `name = ""`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// // With a `metrics` recorder installed, this batcher's series carry
    /// // `name="rows"`, e.g. flowgate_batch_items_submitted_total{name="rows"}.
    /// let batcher = Batcher::builder()
    ///     .name("rows")
    ///     .max_items(100)
    ///     .build(|_rows: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.submit_and_wait(1).await.unwrap();
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.knobs.name = Name::new(name);
        self
    }

    /// Builds the batcher and spawns its [`Worker`] on the current tokio
    /// runtime.
    ///
    /// `flush` is called with each batch, in order, and returns `Ok(())` or
    /// `Ok(outputs)` with one output per item (see [`FlushOutput`]), or an
    /// error that fails every item of the batch.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if a setting breaks its rule (see the table above), or
    /// [`BuildError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|rows: Vec<u32>| async move { Ok::<_, std::io::Error>(rows.iter().map(|r| r * 2).collect::<Vec<_>>()) })
    ///     .unwrap();
    /// assert_eq!(batcher.submit_and_wait(21).await.unwrap(), 42);
    /// # }
    /// ```
    pub fn build<F, Fut, R, O, E>(self, flush: F) -> Result<Batcher<T, O, E>, BuildError>
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: FlushOutput<O>,
        O: Send + 'static,
        E: Send + Sync + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let (batcher, worker) = self.build_pair(flush)?;
        runtime.spawn(worker);
        Ok(batcher)
    }

    /// Builds the batcher and returns its [`Worker`] for you to spawn or await,
    /// as [`build`](Self::build) would have spawned it.
    ///
    /// Nothing is flushed until the worker is polled; it needs tokio's time
    /// driver.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if a setting breaks its rule (see the table above).
    // The pair is spelled out rather than aliased, so that the docs show it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// // No runtime needed to build; the worker runs where it is spawned.
    /// let (batcher, worker) = Batcher::builder()
    ///     .build_pair(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// tokio::spawn(worker);
    /// batcher.submit_and_wait(1).await.unwrap();
    /// # }
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn build_pair<F, Fut, R, O, E>(
        self,
        mut flush: F,
    ) -> Result<(Batcher<T, O, E>, Worker<T, O, E>), BuildError>
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: FlushOutput<O>,
        O: Send + 'static,
        E: Send + Sync + 'static,
    {
        let limits = Limits {
            resolve_in_order: self.resolve_in_order,
            ..self.knobs.limits()?
        };
        let flush = boxed(move |(), items| flush(items));
        let (shared, driver) = assemble(limits, self.knobs, false, flush);
        Ok((Batcher { shared }, Worker::new(driver)))
    }
}

impl<T> fmt::Debug for BatcherBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("BatcherBuilder");
        self.knobs.debug(&mut f);
        f.field("resolve_in_order", &self.resolve_in_order).finish()
    }
}

/// Configures and builds a [`KeyedBatcher`]. Created by
/// [`KeyedBatcher::builder`].
///
/// Every key has its own open batch, and the size, delay and byte settings
/// apply to each key's batch on its own, as they apply to the one batch of
/// a [`Batcher`]. `capacity` and `flush_concurrency` are shared by all keys.
///
/// | setting | default | rule | at its maximum |
/// |---|---|---|---|
/// | [`max_items`](Self::max_items) | 1000 | at least 1 ([`BuildError::ZeroMaxItems`]) | `usize::MAX`: no size bound |
/// | [`max_delay`](Self::max_delay) | 100 ms | greater than zero ([`BuildError::ZeroMaxDelay`]) | `Duration::MAX`: never flushes by time |
/// | [`max_bytes`](Self::max_bytes) | none | at least 1 ([`BuildError::ZeroMaxBytes`]) | `usize::MAX`: as if unset |
/// | [`capacity`](Self::capacity) | `max_items × (flush_concurrency + 1)`, saturating | at least `max_items` ([`BuildError::CapacityBelowMaxItems`]) | `usize::MAX`: no backpressure |
/// | [`flush_concurrency`](Self::flush_concurrency) | 1 | at least 1 ([`BuildError::ZeroFlushConcurrency`]) | `usize::MAX`: no bound on flushes at once |
/// | [`one_flush_per_key`](Self::one_flush_per_key) | `false` | none | |
/// | [`max_open_keys`](Self::max_open_keys) | `usize::MAX` (bounded by `capacity` anyway: an open key holds an item) | at least 1 ([`BuildError::ZeroMaxOpenKeys`]) | `usize::MAX`: no bound but `capacity` |
/// | [`name`](Self::name) | none: no metrics | any string, as given | |
///
/// Setters only store their value and never panic; [`build`](Self::build)
/// and [`build_pair`](Self::build_pair) check every rule and return a
/// [`BuildError`] naming the first one broken. Nothing is allocated in
/// proportion to a limit.
///
/// There is no `resolve_in_order`: batches of different keys fill at their
/// own pace, so an order across keys would make every key wait for the
/// slowest. [`one_flush_per_key`](Self::one_flush_per_key) gives the order
/// that matters per key.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use flowgate::batch::KeyedBatcher;
///
/// let batcher = KeyedBatcher::builder()
///     .max_items(500)
///     .max_delay(Duration::from_millis(20))
///     .flush_concurrency(4)
///     .one_flush_per_key(true)
///     .max_open_keys(1000)
///     .build(|table: String, rows: Vec<u64>| async move {
///         // INSERT INTO {table} the rows, in one statement
///         Ok::<(), std::io::Error>(())
///     })
///     .unwrap();
/// batcher.submit_and_wait("orders".to_owned(), 7).await.unwrap();
/// # }
/// ```
pub struct KeyedBatcherBuilder<K, T> {
    knobs: Knobs<T>,
    one_flush_per_key: bool,
    max_open_keys: usize,
    _keys: PhantomData<fn(K)>,
}

impl<K, T> Default for KeyedBatcherBuilder<K, T> {
    fn default() -> Self {
        KeyedBatcherBuilder {
            knobs: Knobs::default(),
            one_flush_per_key: false,
            max_open_keys: usize::MAX,
            _keys: PhantomData,
        }
    }
}

impl<K, T> KeyedBatcherBuilder<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
{
    /// A key's batch is flushed as soon as it holds this many items.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{BuildError, KeyedBatcher};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_items(2)
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let (a, b) = tokio::join!(batcher.submit_and_wait('a', 1), batcher.submit_and_wait('a', 2));
    /// assert!(a.is_ok() && b.is_ok());
    /// assert_eq!(batcher.stats().batches, 1); // key 'a' full at 2 items
    /// let err = KeyedBatcher::builder()
    ///     .max_items(0)
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMaxItems);
    /// # }
    /// ```
    pub fn max_items(mut self, max_items: usize) -> Self {
        self.knobs.max_items = max_items;
        self
    }

    /// A key's batch is flushed once this much time has passed since *its*
    /// first item arrived, however few items it holds. Each key's batch has
    /// its own deadline; one timer serves them all.
    ///
    /// A delay too long for an `Instant` (up to `Duration::MAX`) never
    /// passes. Zero is refused by `build` ([`BuildError::ZeroMaxDelay`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::batch::{BuildError, KeyedBatcher};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_delay(Duration::from_millis(5))
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let start = tokio::time::Instant::now();
    /// batcher.submit_and_wait('a', 1).await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_millis(5));
    /// let err = KeyedBatcher::builder()
    ///     .max_delay(Duration::ZERO)
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMaxDelay);
    /// # }
    /// ```
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.knobs.max_delay = max_delay;
        self
    }

    /// A key's batch is flushed once the weights of its items, as measured
    /// by `weigher`, add up to `max_bytes`.
    ///
    /// An item that would take a non-empty batch over `max_bytes` starts the
    /// key's next batch instead, so a batch weighs more than `max_bytes` only
    /// when a single item does. Only items are weighed, not keys.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{BuildError, KeyedBatcher};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_bytes(10, |row: &String| row.len())
    ///     .build(|_: u8, _: Vec<String>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.submit_and_wait(1, "0123456789".to_owned()).await.unwrap(); // 10 bytes: full
    /// assert_eq!(batcher.stats().batches, 1);
    /// let err = KeyedBatcher::builder()
    ///     .max_bytes(0, |_: &u32| 1)
    ///     .build(|_: u8, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMaxBytes);
    /// # }
    /// ```
    pub fn max_bytes(
        mut self,
        max_bytes: usize,
        weigher: impl Fn(&T) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.knobs.max_bytes = Some(max_bytes);
        self.knobs.weigher = Some(Box::new(weigher));
        self
    }

    /// How many submitted items the batcher holds, over all keys, before
    /// [`submit`](KeyedBatcher::submit) waits and
    /// [`try_submit`](KeyedBatcher::try_submit) refuses with `Full`.
    ///
    /// As for a [`Batcher`], the bound counts items not yet handed to the
    /// flush function. Open batches of many keys can hold every unit of it
    /// between them, none of them full: when a submitter finds the batcher
    /// full and no batch is waiting to start flushing, the oldest open batch
    /// is flushed early (counted in
    /// [`KeyedBatchStats::early_batches`](super::KeyedBatchStats::early_batches)),
    /// so room comes back without waiting for a delay.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{BuildError, KeyedBatcher};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_items(2)
    ///     .capacity(2)
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let _a = batcher.try_submit('a', 1).unwrap();
    /// let _b = batcher.try_submit('b', 2).unwrap();
    /// assert!(batcher.try_submit('c', 3).unwrap_err().is_full());
    /// let err = KeyedBatcher::builder()
    ///     .max_items(2)
    ///     .capacity(1)
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap_err();
    /// assert!(matches!(err, BuildError::CapacityBelowMaxItems { capacity: 1, max_items: 2 }));
    /// # }
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.knobs.capacity = Some(capacity);
        self
    }

    /// How many flushes may run at once, over all keys.
    ///
    /// Batches start in the order they were sealed and may finish in any
    /// order. Without [`one_flush_per_key`](Self::one_flush_per_key), two
    /// batches of one key may flush at once; the flush function must
    /// tolerate `flush_concurrency` concurrent calls.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{BuildError, KeyedBatcher};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_items(1)
    ///     .flush_concurrency(4)
    ///     .build(|_: u32, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let outcomes = futures_util::future::join_all((0..8).map(|i| batcher.submit_and_wait(i % 3, i))).await;
    /// assert!(outcomes.iter().all(Result::is_ok));
    /// let err = KeyedBatcher::builder()
    ///     .flush_concurrency(0)
    ///     .build(|_: u32, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroFlushConcurrency);
    /// # }
    /// ```
    pub fn flush_concurrency(mut self, flush_concurrency: usize) -> Self {
        self.knobs.flush_concurrency = flush_concurrency;
        self
    }

    /// Whether at most one batch of a key is flushed at a time.
    ///
    /// With `true`, a key's next batch does not start flushing until the
    /// flush of its previous batch has finished (and that batch's items
    /// have resolved). Meanwhile the key keeps accumulating items, bounded
    /// by its triggers as always: batches sealed in the meantime wait, in
    /// order, and hold their room. Batches of other keys flush meanwhile, up
    /// to [`flush_concurrency`](Self::flush_concurrency). So per key, batches
    /// are flushed and resolved in submission order, as with a plain
    /// [`Batcher`] of `flush_concurrency` 1, while keys still flush
    /// concurrently.
    ///
    /// What it costs: a slow flush of one key makes that key's items pile up
    /// (bounded by [`capacity`](Self::capacity), which pushes back on every
    /// submitter once full), and one clone of the key per batch. With the
    /// default `false`, batches of one key may flush concurrently and
    /// finish in any order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// // The first batch of key 'a' is slow; the second waits for it, and
    /// // key 'b' flushes meanwhile.
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let record = Arc::clone(&log);
    /// let batcher = KeyedBatcher::builder()
    ///     .max_items(1)
    ///     .flush_concurrency(4)
    ///     .one_flush_per_key(true)
    ///     .build(move |key: char, items: Vec<u64>| {
    ///         let record = Arc::clone(&record);
    ///         async move {
    ///             tokio::time::sleep(Duration::from_millis(items[0])).await;
    ///             record.lock().unwrap().push((key, items[0]));
    ///             Ok::<(), std::io::Error>(())
    ///         }
    ///     })
    ///     .unwrap();
    /// let (a1, a2, b) = (
    ///     batcher.submit('a', 30).await.unwrap(),
    ///     batcher.submit('a', 10).await.unwrap(),
    ///     batcher.submit('b', 20).await.unwrap(),
    /// );
    /// batcher.close().await;
    /// assert!(a1.await.is_ok() && a2.await.is_ok() && b.await.is_ok());
    /// assert_eq!(*log.lock().unwrap(), [('b', 20), ('a', 30), ('a', 10)]);
    /// # }
    /// ```
    pub fn one_flush_per_key(mut self, one_flush_per_key: bool) -> Self {
        self.one_flush_per_key = one_flush_per_key;
        self
    }

    /// At most this many keys have an open batch at once.
    ///
    /// When an item of a new key arrives while `max_open_keys` keys have an
    /// open batch, the *oldest* open batch (the one whose first item came
    /// first) is flushed early, before its own triggers, and the new key's
    /// batch opens. Nothing waits, nothing is lost, and a key's items stay
    /// in order: the early batch is simply that key's next batch, and the
    /// key's later items go into a later one. Early batches are counted in
    /// [`KeyedBatchStats::early_batches`](super::KeyedBatchStats::early_batches).
    ///
    /// What it costs: smaller batches, so more flush calls. With more keys
    /// active at once than the bound, in turn, every batch ends up holding
    /// about one item; set the bound above the number of keys active within
    /// one `max_delay`. The bound the policy trades against, making
    /// submitters of new keys wait, could stall them behind batches waiting
    /// for a long delay.
    ///
    /// The default, `usize::MAX`, sets no bound of its own; open batches
    /// are still bounded by [`capacity`](Self::capacity), since each holds
    /// at least one item. Zero is refused by `build`
    /// ([`BuildError::ZeroMaxOpenKeys`]). With 1, a batch holds a run of
    /// consecutive items of one key.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::{Arc, Mutex};
    /// use flowgate::batch::{BuildError, KeyedBatcher};
    ///
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let record = Arc::clone(&log);
    /// let batcher = KeyedBatcher::builder()
    ///     .max_open_keys(2)
    ///     .build(move |key: char, items: Vec<u32>| {
    ///         record.lock().unwrap().push((key, items));
    ///         async { Ok::<(), std::io::Error>(()) }
    ///     })
    ///     .unwrap();
    /// for (key, item) in [('a', 1), ('b', 2), ('a', 3), ('c', 4)] {
    ///     drop(batcher.submit(key, item).await.unwrap());
    /// }
    /// // 'c' opened a third key: the oldest batch, 'a', went early.
    /// assert_eq!(batcher.stats().early_batches, 1);
    /// batcher.close().await;
    /// assert_eq!(*log.lock().unwrap(), [('a', vec![1, 3]), ('b', vec![2]), ('c', vec![4])]);
    /// let err = KeyedBatcher::builder()
    ///     .max_open_keys(0)
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMaxOpenKeys);
    /// # }
    /// ```
    pub fn max_open_keys(mut self, max_open_keys: usize) -> Self {
        self.max_open_keys = max_open_keys;
        self
    }

    /// Names the batcher: the `name` label of its series and the `name`
    /// field of its flush spans and events. Any string is accepted as given;
    /// give each batcher its own.
    ///
    /// With the `metrics` feature, a named keyed batcher registers the
    /// `flowgate_batch_*` series of a [`Batcher`](BatcherBuilder::name)
    /// (over all keys), with two `trigger` values of its own (`open_keys`,
    /// `full`), plus `flowgate_batch_open_keys`, the keys with an open batch
    /// (see [the table](crate::metrics)). An unnamed batcher records no
    /// metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// // With a `metrics` recorder installed: flowgate_batch_open_keys{name="tables"}, …
    /// let batcher = KeyedBatcher::builder()
    ///     .name("tables")
    ///     .build(|_table: &str, _rows: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.submit_and_wait("users", 1).await.unwrap();
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.knobs.name = Name::new(name);
        self
    }

    /// Builds the batcher and spawns its [`KeyedWorker`] on the current
    /// tokio runtime.
    ///
    /// `flush` is called with each batch's key and items, and returns
    /// `Ok(())` or `Ok(outputs)` with one output per item (see
    /// [`FlushOutput`]), or an error that fails every item of the batch.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if a setting breaks its rule (see the table above), or
    /// [`BuildError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// // One output per item: here, the key and the item.
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|key: char, items: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(items.into_iter().map(|i| format!("{key}{i}")).collect::<Vec<_>>())
    ///     })
    ///     .unwrap();
    /// assert_eq!(batcher.submit_and_wait('x', 7).await.unwrap(), "x7");
    /// # }
    /// ```
    pub fn build<F, Fut, R, O, E>(self, flush: F) -> Result<KeyedBatcher<K, T, O, E>, BuildError>
    where
        F: FnMut(K, Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: FlushOutput<O>,
        O: Send + 'static,
        E: Send + Sync + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let (batcher, worker) = self.build_pair(flush)?;
        runtime.spawn(worker);
        Ok(batcher)
    }

    /// Builds the batcher and returns its [`KeyedWorker`] for you to spawn
    /// or await, as [`build`](Self::build) would have spawned it.
    ///
    /// Nothing is flushed until the worker is polled; it needs tokio's time
    /// driver.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if a setting breaks its rule (see the table above).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// // No runtime needed to build; the worker runs where it is spawned.
    /// let (batcher, worker) = KeyedBatcher::builder()
    ///     .build_pair(|_: u8, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// tokio::spawn(worker);
    /// batcher.submit_and_wait(3, 1).await.unwrap();
    /// # }
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn build_pair<F, Fut, R, O, E>(
        self,
        mut flush: F,
    ) -> Result<(KeyedBatcher<K, T, O, E>, KeyedWorker<K, T, O, E>), BuildError>
    where
        F: FnMut(K, Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: FlushOutput<O>,
        O: Send + 'static,
        E: Send + Sync + 'static,
    {
        let limits = self.knobs.limits()?;
        if self.max_open_keys == 0 {
            return Err(BuildError::ZeroMaxOpenKeys);
        }
        let limits = Limits {
            max_open_keys: self.max_open_keys,
            one_flush_per_key: self.one_flush_per_key,
            seal_when_full: true,
            ..limits
        };
        let flush = boxed(move |Keyed(key), items| flush(key, items));
        let (shared, driver) = assemble(limits, self.knobs, true, flush);
        Ok((KeyedBatcher { shared }, KeyedWorker::new(driver)))
    }
}

impl<K, T> fmt::Debug for KeyedBatcherBuilder<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("KeyedBatcherBuilder");
        self.knobs.debug(&mut f);
        f.field("one_flush_per_key", &self.one_flush_per_key)
            .field("max_open_keys", &self.max_open_keys)
            .finish()
    }
}
