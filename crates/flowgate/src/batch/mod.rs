//! Fan-in batching with a per-item outcome: many tasks submit items, one
//! flush function writes them in batches, and each submitter learns when *its*
//! item's batch was flushed — or why it failed.
//!
//! The use it was made for: consume messages from a broker on many tasks,
//! write them to a database in batches, and acknowledge each message to the
//! broker only once its row is written. Nothing acknowledged is lost.
//!
//! To group the items of one [`Stream`](futures_core::Stream) into `Vec`s
//! inside a pipeline, with a single consumer and no per-item outcome, use
//! [`PipelineExt::batch`](crate::pipeline::PipelineExt::batch) instead.
//!
//! ```text
//!  task 1 ──submit──┐                                   ┌──> Flushed 1 resolves
//!  task 2 ──submit──┼──> [ batch: 1 2 3 ] ──flush(fn)──>┼──> Flushed 2 resolves
//!  task 3 ──submit──┘    size / delay / bytes / flush() └──> Flushed 3 resolves
//! ```
//!
//! | type | batches | the flush function gets |
//! |---|---|---|
//! | [`Batcher`] | one open batch for every item | `Vec<T>` |
//! | [`KeyedBatcher`] | one open batch per key, each with its own triggers; optionally one flush per key at a time, and a bound on open keys (see [Keyed batches](#keyed-batches)) | `(K, Vec<T>)`: a batch never mixes keys |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use flowgate::batch::Batcher;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let batcher = Batcher::builder()
//!     .max_items(100)
//!     .max_delay(Duration::from_millis(10))
//!     .build(|rows: Vec<String>| async move {
//!         // write `rows` to the database in one statement
//!         Ok::<(), std::io::Error>(())
//!     })
//!     .expect("valid configuration");
//!
//! let mut tasks = Vec::new();
//! for i in 0..250 {
//!     let batcher = batcher.clone();
//!     tasks.push(tokio::spawn(async move {
//!         let flushed = batcher.submit(format!("row {i}")).await.expect("open");
//!         flushed.await.expect("written"); // now acknowledge the broker message
//!     }));
//! }
//! for task in tasks {
//!     task.await.unwrap();
//! }
//! batcher.close().await; // flushes anything left, then stops the worker
//! assert_eq!(batcher.stats().flushed, 250);
//! # }
//! ```
//!
//! # When a batch is flushed
//!
//! A batch collects items in submission order and is handed to the flush
//! function as soon as one of these holds:
//!
//! - it holds [`max_items`](BatcherBuilder::max_items) items;
//! - [`max_delay`](BatcherBuilder::max_delay) has passed since its *first*
//!   item arrived (a quiet batcher holds no timer);
//! - its items' weights reach [`max_bytes`](BatcherBuilder::max_bytes) (an item
//!   that would overshoot starts the next batch instead);
//! - [`Batcher::flush`] or [`Batcher::close`] is called.
//!
//! # Outcomes
//!
//! Each submission returns a [`Flushed`], a future resolving to:
//!
//! - `Ok(output)` once the item's batch was flushed. The flush function returns
//!   either `()` or one output per item (see [`FlushOutput`]), which is how a
//!   dataloader is built on a batcher;
//! - `Err(`[`FlushError::Failed`]`)` with the flush function's error, shared by
//!   every item of the failed batch;
//! - `Err(`[`FlushError::Panicked`]`)` if the flush function panicked. Only that
//!   batch fails; the batcher keeps working;
//! - `Err(`[`FlushError::Closed`]`)` if the batcher stopped abruptly (its worker
//!   was dropped) before flushing the item.
//!
//! Dropping a `Flushed` does not withdraw its item: the item stays submitted and
//! is flushed.
//!
//! Three ways to submit, one outcome:
//!
//! | method | use it when |
//! |---|---|
//! | [`submit_and_wait`](Batcher::submit_and_wait) | the submitter waits for its item anyway: one future, submit and wait fused; the fastest |
//! | [`submit`](Batcher::submit) | submitting and waiting happen in different places: the [`Flushed`] can be stored, sent or awaited later |
//! | [`submit_with`](Batcher::submit_with) | no future per item is wanted: the worker calls a callback with the outcome |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use flowgate::batch::Batcher;
//!
//! let batcher = Batcher::builder()
//!     .build(|_rows: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
//!     .unwrap();
//! let consumer = |batcher: Batcher<u32, (), std::io::Error>| async move {
//!     for message in 0..3 {
//!         // Resolves once the message's row is written.
//!         batcher.submit_and_wait(message).await.expect("written");
//!         // now acknowledge the broker message
//!     }
//! };
//! let task = tokio::spawn(consumer(batcher.clone()));
//! task.await.unwrap();
//! assert_eq!(batcher.stats().flushed, 3);
//! # }
//! ```
//!
//! # Backpressure
//!
//! The batcher holds at most [`capacity`](BatcherBuilder::capacity) items that
//! have not been handed to the flush function yet. When it is full,
//! [`submit`](Batcher::submit) and [`submit_and_wait`](Batcher::submit_and_wait)
//! wait for room, [`try_submit`](Batcher::try_submit) hands the item back with
//! [`TrySubmitError::Full`], and [`reserve`](Batcher::reserve) waits for a slot
//! without giving up an item. Items being flushed are bounded by
//! `flush_concurrency × max_items`.
//!
//! Waiting submitters are served first come, first served: room that comes
//! back goes to the submitter that has waited longest, and a new submitter
//! does not take room while others wait. A waiting submitter that is
//! cancelled after room was granted to it hands the room on.
//!
//! # Flush concurrency and ordering
//!
//! By default one flush runs at a time: batches are flushed in the order they
//! were filled, and a slow flush makes items pile up until `capacity` pushes
//! back on submitters. With [`flush_concurrency`](BatcherBuilder::flush_concurrency)
//! `n`, up to `n` batches flush at once. They *start* in order but may *finish*
//! in any order, so an item may resolve before the items of earlier batches.
//! Within one batch the flush function always sees items in submission order.
//!
//! When the order of the outcomes matters — a consumer that commits an offset
//! per item, which must never pass an item that is not written yet — set
//! [`resolve_in_order`](BatcherBuilder::resolve_in_order): every item then
//! resolves only after every item submitted before it, and a batch that
//! finishes early is held back (keeping its flush slot) until the batches
//! before it have resolved. A slow batch then delays the outcomes of the
//! batches after it, and the start of the batch `n` places after it; memory
//! stays bounded by `n × max_items` outputs.
//!
//! ```text
//!  flush_concurrency(3)      batch 1 ████████████████░  (slow)
//!                            batch 2 ████░ finished, held ┐
//!                            batch 3 ████████░     held   ├─> resolve at once, 1 2 3
//!  resolve_in_order(true)    batch 4        waits for a slot until batch 1 resolves
//! ```
//!
//! # Shutdown
//!
//! - [`close`](Batcher::close) stops new submissions (waiting submitters get
//!   their items back), flushes every item already submitted, resolves every
//!   flushed and then stops the worker; awaiting it waits for all of that.
//! - Dropping every [`Batcher`] handle does the same, without anyone waiting.
//! - Dropping the [`Worker`] (or shutting down its runtime) stops at once:
//!   every item not yet flushed resolves with [`FlushError::Closed`] (through
//!   its flushed future, its callback, or its `submit_and_wait` as
//!   [`SubmitAndWaitError::Flush`]).
//!
//! No flushed future, callback or `submit_and_wait` is ever left pending forever.
//!
//! # Keyed batches
//!
//! A [`KeyedBatcher`] batches items that carry a key — a table, a tenant, a
//! partition — so that each batch holds items of one key, and the flush
//! function is called with the key and its items. Everything above holds
//! for each key's batch: it is flushed by its own `max_items`, by
//! `max_delay` counted from *its* first item, by its own `max_bytes`, or by
//! [`flush`](KeyedBatcher::flush) and [`close`](KeyedBatcher::close), which
//! flush every key's. Outcomes, backpressure (`capacity` counts the items of
//! all keys), shutdown and cancel safety are those of a `Batcher`.
//!
//! ```text
//!  submit("eu", 1) ─┐      "eu": [ 1 3 ]   full / its delay  ──> flush("eu", [1, 3])
//!  submit("us", 2) ─┼──>   "us": [ 2 ]     its own delay     ──> flush("us", [2])
//!  submit("eu", 3) ─┘      (at most max_open_keys open; the oldest is flushed early to open one more)
//! ```
//!
//! Two settings are its own:
//!
//! - [`one_flush_per_key`](KeyedBatcherBuilder::one_flush_per_key): at most
//!   one batch of a key is flushing at a time. A key's next batch waits,
//!   still accumulating up to its triggers, until the previous flush of that
//!   key has finished, while other keys flush up to `flush_concurrency`. Per
//!   key, batches are then flushed and resolved in submission order, and the
//!   items within a batch always are.
//! - [`max_open_keys`](KeyedBatcherBuilder::max_open_keys): at most this
//!   many keys have an open batch. A new key beyond it flushes the oldest
//!   open batch early instead of making anyone wait: nothing is lost or
//!   reordered, at the cost of smaller batches.
//!
//! The guarantees, tested with proptest in `tests/batch_keyed.rs`: a batch
//! never mixes keys; a key's items are flushed in submission order within
//! its batches; with `one_flush_per_key`, never two batches of a key are
//! flushing at once and a key's batches flush in order; the open keys never
//! exceed `max_open_keys`; and every submitter's outcome resolves exactly
//! once, on success, error, panic, close or an abrupt stop.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use flowgate::batch::KeyedBatcher;
//!
//! // One INSERT per table, at most one at a time per table.
//! let batcher = KeyedBatcher::builder()
//!     .max_items(100)
//!     .max_delay(Duration::from_millis(10))
//!     .flush_concurrency(4)
//!     .one_flush_per_key(true)
//!     .max_open_keys(64)
//!     .build(|table: String, rows: Vec<u64>| async move {
//!         assert!(rows.iter().all(|row| table == format!("t{}", row % 3)));
//!         Ok::<(), std::io::Error>(())
//!     })
//!     .unwrap();
//! let tasks: Vec<_> = (0..300u64)
//!     .map(|row| {
//!         let batcher = batcher.clone();
//!         tokio::spawn(async move { batcher.submit_and_wait(format!("t{}", row % 3), row).await })
//!     })
//!     .collect();
//! for task in tasks {
//!     task.await.unwrap().expect("written"); // now acknowledge the message
//! }
//! let stats = batcher.stats();
//! assert_eq!((stats.flushed, stats.batches), (300, 3)); // 100 rows per table
//! # }
//! ```
//!
//! # Metrics and tracing
//!
//! Name a batcher with [`BatcherBuilder::name`] (or
//! [`KeyedBatcherBuilder::name`]) and, with the `metrics` feature, it
//! records the `flowgate_batch_*` series listed in [`crate::metrics`]:
//! items submitted, pending (not handed to a flush yet), flushing, and
//! flushed by outcome; submitters waiting for room; rejections by reason;
//! flushes by trigger (`size`, `bytes`, `delay`, `flush`, `close`, and for a
//! keyed batcher `open_keys`, `full`) and by outcome; and histograms of the
//! flush size, the flush duration and the age of a batch's oldest item when
//! its flush starts — how long items wait in the buffer. A keyed batcher
//! adds its open keys. Unnamed batchers record nothing. Per item this costs
//! one counter and one gauge update; the rest is per batch.
//!
//! Each flush runs in its own `INFO` span, target `flowgate::batch`, named
//! `flush`, with the fields `name`, `size`, `trigger` and, once it is done,
//! `outcome`. The flush function is called and its future polled inside it,
//! so the sink's own spans nest under it. An item submitted inside a span
//! links the flush span to it (`follows_from`, each distinct span once): a
//! request's trace leads to the batch that wrote it. To do that, the batch
//! keeps a handle to each submitter's span until the flush starts; with no
//! subscriber interested in `flowgate::batch` at `INFO`, a submission only
//! checks that and keeps nothing. A failed flush emits one `warn` event (an
//! error the submitters get back), a panicked flush and a worker dropped
//! with items left one `error` event each; nothing is emitted per item.
//! The flush function's error type need not be `Display`, so the event
//! names its kind and type (`error_type`); log the error itself in the
//! flush function, whose events land in the flush span.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use flowgate::batch::Batcher;
//! use tracing::Instrument;
//!
//! let batcher = Batcher::builder()
//!     .name("orders")
//!     .max_items(2)
//!     .build(|rows: Vec<u32>| async move {
//!         // Inside the "flush" span: name="orders", size=2, trigger="size".
//!         tracing::debug!(rows = rows.len(), "writing");
//!         Ok::<(), std::io::Error>(())
//!     })
//!     .unwrap();
//! let (a, b) = tokio::join!(
//!     // The flush span follows from both request spans.
//!     batcher.submit_and_wait(1).instrument(tracing::info_span!("request", id = 1)),
//!     batcher.submit_and_wait(2).instrument(tracing::info_span!("request", id = 2)),
//! );
//! assert!(a.is_ok() && b.is_ok());
//! # }
//! ```
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`submit`](Batcher::submit), [`submit_with`](Batcher::submit_with) | no | the item, if cancelled while waiting for room (use [`reserve`](Batcher::reserve)) |
//! | [`submit_and_wait`](Batcher::submit_and_wait) | no | while waiting for room: the item, as `submit`; once the item was accepted: only its outcome (the item stays submitted and is flushed, as when a `Flushed` is dropped) |
//! | [`reserve`](Batcher::reserve) | yes | nothing; the place in the queue of waiters (room granted to it meanwhile is handed on) |
//! | `flushed.await` ([`Flushed`]) | yes | nothing; poll the same [`Flushed`] again |
//! | [`flush`](Batcher::flush), [`close`](Batcher::close) | yes | nothing; the flush or close already began at the call |
//!
//! The methods of [`KeyedBatcher`] and [`KeyedPermit`] are as cancel-safe as
//! their namesakes; what a cancelled `submit` loses is the key with the item.

mod builder;
mod error;
mod flushed;
mod keyed;
mod keys;
mod observe;
mod output;
mod room;
mod shared;
mod wait;
mod worker;

use std::fmt;
use std::future::Future;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use self::builder::{BatcherBuilder, KeyedBatcherBuilder};
pub use self::error::{BuildError, FlushError, SubmitAndWaitError, SubmitError, TrySubmitError};
pub use self::flushed::Flushed;
pub use self::keyed::{KeyedBatchStats, KeyedBatcher, KeyedPermit};
pub use self::output::FlushOutput;
pub use self::wait::{KeyedSubmitAndWait, SubmitAndWait};
pub use self::worker::{KeyedWorker, Worker};

use self::shared::{Enter, RoomPolicy, Shared};
use crate::sync::lock;

/// A handle for submitting items to be flushed in batches; see the
/// [module documentation](self).
///
/// `T` is the item type, `O` the per-item output of the flush function (`()`
/// unless it returns one output per item) and `E` its error type.
///
/// Handles are cheap to clone and share one batcher. When the last handle is
/// dropped, the batcher flushes what it holds and its worker stops.
pub struct Batcher<T, O = (), E = std::convert::Infallible> {
    shared: Arc<Shared<(), T, O, E>>,
}

/// Counters of a [`Batcher`], from [`Batcher::stats`]. Item counts, unless
/// the name says batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Items accepted by `submit` and its variants.
    pub submitted: u64,
    /// Items whose batch was flushed successfully.
    pub flushed: u64,
    /// Items whose batch failed (error, panic, output mismatch or abrupt stop).
    pub failed: u64,
    /// Batches handed to the flush function that have finished.
    pub batches: u64,
    /// Of those, batches that failed.
    pub failed_batches: u64,
    /// Items submitted whose outcome is not known yet:
    /// `submitted - flushed - failed`.
    pub pending: u64,
}

impl<T> Batcher<T>
where
    T: Send + 'static,
{
    /// Starts configuring a batcher; see [`BatcherBuilder`] for the settings
    /// and their defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .max_items(100)
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// assert!(!batcher.is_closed());
    /// # }
    /// ```
    pub fn builder() -> BatcherBuilder<T> {
        BatcherBuilder::default()
    }
}

impl<T, O, E> Batcher<T, O, E>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Submits `item`, waiting for room if the batcher is full, and returns
    /// the [`Flushed`] that resolves when the item's batch has been flushed.
    ///
    /// Awaiting `submit` only waits for the item to be *accepted*; await the
    /// returned [`Flushed`] future to learn that it was *flushed*:
    /// `batcher.submit(item).await?.await?`.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the item if the batcher is closed, including while
    /// waiting for room.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped while waiting for room, the
    /// item is dropped with it. Use [`reserve`](Self::reserve) to wait for
    /// room without handing over the item.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let flushed = batcher.submit(1).await.unwrap();
    /// batcher.close().await;
    /// assert!(flushed.await.is_ok());
    /// // Closed: the item comes back.
    /// assert_eq!(batcher.submit(2).await.unwrap_err().into_inner(), 2);
    /// # }
    /// ```
    pub async fn submit(&self, item: T) -> Result<Flushed<O, E>, SubmitError<T>> {
        self.shared
            .submit((), item)
            .await
            .map_err(|((), item)| SubmitError(item))
    }

    /// Submits `item`, waiting for room if the batcher is full, and then waits
    /// for the item's batch to be flushed: the output of the item, in one
    /// future.
    ///
    /// This is `batcher.submit(item).await?.await` fused, and the fastest way
    /// to submit when the submitter waits for its item anyway (the
    /// acknowledged-consumer pattern): the future holds the state of its wait
    /// itself, so an item costs no allocation and no shared reference count.
    /// Use [`submit`](Self::submit) when submitting and waiting happen in
    /// different places.
    ///
    /// # Errors
    ///
    /// [`SubmitAndWaitError::Closed`] with the item if the batcher was closed
    /// before it accepted the item; [`SubmitAndWaitError::Flush`] if the item's
    /// batch failed (see [`FlushError`]).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe while waiting for room: the item is dropped with the
    /// future, as with [`submit`](Self::submit). Once the item was accepted
    /// (the first poll, when there is room), dropping the future is like
    /// dropping a [`Flushed`]: the item stays submitted and is flushed, and only
    /// its outcome is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::batch::{Batcher, SubmitAndWaitError};
    ///
    /// let batcher = Batcher::builder()
    ///     .max_items(2)
    ///     .build(|items: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(items.iter().map(|x| x + 1).collect::<Vec<_>>())
    ///     })
    ///     .unwrap();
    /// let (a, b) = tokio::join!(batcher.submit_and_wait(1), batcher.submit_and_wait(2));
    /// assert_eq!((a.unwrap(), b.unwrap()), (2, 3));
    /// batcher.close().await;
    /// // Closed: the item comes back.
    /// match batcher.submit_and_wait(3).await {
    ///     Err(SubmitAndWaitError::Closed(item)) => assert_eq!(item, 3),
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn submit_and_wait(&self, item: T) -> SubmitAndWait<'_, T, O, E> {
        SubmitAndWait::new(self, item)
    }

    /// Submits `item` if there is room right now, without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] with the item if the batcher holds `capacity`
    /// items that are not being flushed yet; [`TrySubmitError::Closed`] with
    /// the item if it is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::batch::{Batcher, TrySubmitError};
    ///
    /// let batcher = Batcher::builder()
    ///     .max_items(2)
    ///     .capacity(2)
    ///     .build(|_items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let _a = batcher.try_submit(1).unwrap();
    /// let _b = batcher.try_submit(2).unwrap();
    /// // The worker has not run yet, so both items still count against capacity.
    /// assert!(matches!(batcher.try_submit(3), Err(TrySubmitError::Full(3))));
    /// # }
    /// ```
    pub fn try_submit(&self, item: T) -> Result<Flushed<O, E>, TrySubmitError<T>> {
        self.shared.try_submit((), item).map_err(|err| match err {
            TrySubmitError::Full(((), item)) => TrySubmitError::Full(item),
            TrySubmitError::Closed(((), item)) => TrySubmitError::Closed(item),
        })
    }

    /// Submits `item`, waiting for room if the batcher is full; `callback` is
    /// called once with the item's outcome, on the worker, when its batch has
    /// been flushed or has failed.
    ///
    /// This is the callback form of [`submit`](Self::submit): use it when a
    /// future per item is not wanted. The callback runs on the batcher's
    /// worker, so it must be quick; a panic in it is caught and logged.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the item if the batcher is closed; the callback is
    /// then not called.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, like [`submit`](Self::submit).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    /// use tokio::sync::oneshot;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let (tx, rx) = oneshot::channel();
    /// batcher
    ///     .submit_with(1, move |outcome| {
    ///         let _ = tx.send(outcome.is_ok());
    ///     })
    ///     .await
    ///     .unwrap();
    /// batcher.flush().await;
    /// assert!(rx.await.unwrap());
    /// # }
    /// ```
    pub async fn submit_with<C>(&self, item: T, callback: C) -> Result<(), SubmitError<T>>
    where
        C: FnOnce(Result<O, FlushError<E>>) + Send + 'static,
    {
        self.shared
            .submit_with((), item, Box::new(callback))
            .await
            .map_err(|((), item)| SubmitError(item))
    }

    /// Submits `item` with a callback if there is room right now, without
    /// waiting; see [`submit_with`](Self::submit_with).
    ///
    /// # Errors
    ///
    /// As [`try_submit`](Self::try_submit); the callback is then not called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .max_items(1)
    ///     .capacity(1)
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.try_submit_with(1, |outcome| assert!(outcome.is_ok())).unwrap();
    /// // Full: the item comes back and the callback is not called.
    /// let err = batcher.try_submit_with(2, |_| unreachable!()).unwrap_err();
    /// assert_eq!(err.into_inner(), 2);
    /// batcher.close().await;
    /// # }
    /// ```
    pub fn try_submit_with<C>(&self, item: T, callback: C) -> Result<(), TrySubmitError<T>>
    where
        C: FnOnce(Result<O, FlushError<E>>) + Send + 'static,
    {
        match self
            .shared
            .enter_with((), item, RoomPolicy::Take, Box::new(callback))
        {
            Enter::Entered(()) => Ok(()),
            Enter::Full(((), item), _) => Err(TrySubmitError::Full(item)),
            Enter::Closed(((), item)) => Err(TrySubmitError::Closed(item)),
        }
    }

    /// Waits for room for one item and reserves it, without handing over an
    /// item yet. Submitting through the [`Permit`] cannot wait.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] if the batcher is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled `reserve` holds no room and loses nothing but
    /// its place among waiting submitters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let permit = batcher.reserve().await.unwrap();
    /// let flushed = permit.submit(7).unwrap();
    /// batcher.close().await;
    /// assert!(flushed.await.is_ok());
    /// # }
    /// ```
    pub async fn reserve(&self) -> Result<Permit<'_, T, O, E>, SubmitError<()>> {
        if self.shared.reserve().await {
            Ok(Permit { batcher: self })
        } else {
            Err(SubmitError(()))
        }
    }

    /// Flushes the items submitted so far, without waiting for the batch to
    /// fill up or its delay to pass.
    ///
    /// The flush is requested when `flush` is called; the returned future
    /// resolves once every item submitted before the call has been flushed or
    /// has failed (or the batcher has stopped). Awaiting it is optional.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .max_delay(Duration::from_secs(3600))
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let flushed = batcher.submit(1).await.unwrap();
    /// batcher.flush().await; // long before the hour
    /// assert!(flushed.await.is_ok());
    /// # }
    /// ```
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.flush()
    }

    /// Closes the batcher: no more items are accepted (submitters waiting for
    /// room get their items back), every item already submitted is flushed,
    /// every flushed future resolves, and the worker stops.
    ///
    /// Closing begins when `close` is called; the returned future resolves
    /// when the worker has stopped. Calling `close` again is harmless.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the wait; the batcher still
    /// closes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let flushed = batcher.submit(1).await.unwrap();
    /// batcher.close().await;
    /// assert!(flushed.await.is_ok()); // flushed before the worker stopped
    /// assert!(batcher.submit(2).await.is_err());
    /// # }
    /// ```
    pub fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.close()
    }

    /// Whether the batcher no longer accepts items.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// assert!(!batcher.is_closed());
    /// batcher.close().await;
    /// assert!(batcher.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }

    /// A snapshot of the batcher's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .max_items(2)
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let (a, b) = tokio::join!(batcher.submit_and_wait(1), batcher.submit_and_wait(2));
    /// assert!(a.is_ok() && b.is_ok());
    /// let stats = batcher.stats();
    /// assert_eq!((stats.submitted, stats.flushed, stats.batches, stats.pending), (2, 2, 1, 0));
    /// # }
    /// ```
    pub fn stats(&self) -> BatchStats {
        lock(&self.shared.state).stats()
    }
}

impl<T, O, E> Clone for Batcher<T, O, E> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Batcher {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, O, E> Drop for Batcher<T, O, E> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last handle: the worker flushes what is left and stops.
            self.shared.worker.wake();
        }
    }
}

impl<T, O, E> fmt::Debug for Batcher<T, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("Batcher")
            .field("limits", &self.shared.limits)
            .field("closed", &state.closed)
            .field("stats", &state.stats())
            .finish()
    }
}

/// Room for one item in a [`Batcher`], reserved by [`Batcher::reserve`].
///
/// Submitting through a permit never waits. Dropping it unused gives the room
/// back.
#[must_use = "a Permit holds room in the batcher until it is used or dropped"]
pub struct Permit<'a, T, O, E> {
    batcher: &'a Batcher<T, O, E>,
}

impl<'a, T, O, E> Permit<'a, T, O, E>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Submits `item` into the reserved room; see [`Batcher::submit`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the item if the batcher was closed since the room
    /// was reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let permit = batcher.reserve().await.unwrap();
    /// let flushed = permit.submit(7).unwrap();
    /// batcher.flush().await;
    /// assert!(flushed.await.is_ok());
    /// # }
    /// ```
    pub fn submit(self, item: T) -> Result<Flushed<O, E>, SubmitError<T>> {
        let shared = &self.consume().shared;
        shared
            .enter_held((), item)
            .map_err(|((), item)| SubmitError(item))
    }

    /// Submits `item` into the reserved room with a callback; see
    /// [`Batcher::submit_with`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the item if the batcher was closed since the room
    /// was reserved; the callback is then not called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::Batcher;
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let permit = batcher.reserve().await.unwrap();
    /// permit.submit_with(7, |outcome| assert!(outcome.is_ok())).unwrap();
    /// batcher.close().await;
    /// # }
    /// ```
    pub fn submit_with<C>(self, item: T, callback: C) -> Result<(), SubmitError<T>>
    where
        C: FnOnce(Result<O, FlushError<E>>) + Send + 'static,
    {
        let shared = &self.consume().shared;
        match shared.enter_with((), item, RoomPolicy::Held, Box::new(callback)) {
            Enter::Entered(()) => Ok(()),
            Enter::Closed(((), item)) | Enter::Full(((), item), _) => Err(SubmitError(item)),
        }
    }

    /// Hands the reserved room over to `enqueue`, which consumes it.
    fn consume(self) -> &'a Batcher<T, O, E> {
        let batcher = self.batcher;
        mem::forget(self);
        batcher
    }
}

impl<T, O, E> Drop for Permit<'_, T, O, E> {
    fn drop(&mut self) {
        self.batcher.shared.release_room(1);
    }
}

impl<T, O, E> fmt::Debug for Permit<'_, T, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}
