//! [`BatcherBuilder`]: the limits of a [`Batcher`] and its flush function.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::watch;

use super::error::{BuildError, FlushError};
use super::output::FlushOutput;
use super::shared::{Limits, Progress, Shared, State, Weigher};
use super::worker::{FlushFn, FlushFuture};
use super::{Batcher, Worker};

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
///
/// Setters only store their value and never panic. Every rule is checked by
/// [`build`](Self::build) and [`build_pair`](Self::build_pair), which return
/// a [`BuildError`] naming the first one broken. Nothing is allocated in
/// proportion to a limit: a batch reserves room for at most 4096 items when
/// it opens and grows as items come, so the maxima above are safe (a
/// `usize::MAX` default capacity saturates instead of overflowing).
pub struct BatcherBuilder<T> {
    max_items: usize,
    max_delay: Duration,
    max_bytes: Option<usize>,
    weigher: Option<Weigher<T>>,
    capacity: Option<usize>,
    flush_concurrency: usize,
    resolve_in_order: bool,
    _items: PhantomData<fn(T)>,
}

impl<T> Default for BatcherBuilder<T> {
    fn default() -> Self {
        BatcherBuilder {
            max_items: 1000,
            max_delay: Duration::from_millis(100),
            max_bytes: None,
            weigher: None,
            capacity: None,
            flush_concurrency: 1,
            resolve_in_order: false,
            _items: PhantomData,
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
        self.max_items = max_items;
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
        self.max_delay = max_delay;
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
        self.max_bytes = Some(max_bytes);
        self.weigher = Some(Box::new(weigher));
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
        self.capacity = Some(capacity);
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
        self.flush_concurrency = flush_concurrency;
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
        let limits = self.limits()?;
        let flush: FlushFn<T, O, E> = Box::new(move |items: Vec<T>| -> FlushFuture<O, E> {
            let expected = items.len();
            let future = flush(items);
            Box::pin(async move {
                match future.await {
                    Ok(output) => output
                        .into_outputs(expected)
                        .map_err(|actual| FlushError::OutputMismatch { expected, actual }),
                    Err(err) => Err(FlushError::Failed(Arc::new(err))),
                }
            })
        });
        let (progress, _) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(limits.capacity)),
            worker: AtomicWaker::new(),
            handles: AtomicUsize::new(1),
            progress,
            limits,
            weigher: self.weigher,
        });
        let worker = Worker::new(Arc::clone(&shared), flush);
        Ok((Batcher { shared }, worker))
    }

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
            resolve_in_order: self.resolve_in_order,
        })
    }
}

impl<T> fmt::Debug for BatcherBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatcherBuilder")
            .field("max_items", &self.max_items)
            .field("max_delay", &self.max_delay)
            .field("max_bytes", &self.max_bytes)
            .field("capacity", &self.capacity)
            .field("flush_concurrency", &self.flush_concurrency)
            .field("resolve_in_order", &self.resolve_in_order)
            .finish()
    }
}
