//! [`KeyedBatcher`]: a [`Batcher`](super::Batcher) whose items carry a key,
//! with one open batch per key. It shares the plain batcher's state, worker,
//! acknowledgements and waiters, generic over the key (see
//! [`keys`](super::keys)).

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::builder::KeyedBatcherBuilder;
use super::error::{FlushError, SubmitError, TrySubmitError};
use super::flushed::Flushed;
use super::keys::{Keyed, OpenSet};
use super::shared::{Enter, RoomPolicy, Shared};
use super::wait::KeyedSubmitAndWait;
use crate::sync::lock;

/// A handle for submitting keyed items to be flushed in batches of one key;
/// see the [module documentation](super#keyed-batches).
///
/// `K` is the key, `T` the item type, `O` the per-item output of the flush
/// function (`()` unless it returns one output per item) and `E` its error
/// type. The flush function is called with `(key, items)`: a batch never
/// mixes keys.
///
/// Each key has its own open batch, flushed by the same triggers as a
/// [`Batcher`](super::Batcher)'s — [`max_items`](KeyedBatcherBuilder::max_items),
/// [`max_delay`](KeyedBatcherBuilder::max_delay) from the batch's own first
/// item, [`max_bytes`](KeyedBatcherBuilder::max_bytes),
/// [`flush`](Self::flush) and [`close`](Self::close) — plus one of its own:
/// [`max_open_keys`](KeyedBatcherBuilder::max_open_keys), which flushes the
/// oldest open batch early when a new key would exceed it. Every item
/// resolves as with a `Batcher`: `Ok` once its batch was flushed, the
/// batch's [`FlushError`] otherwise, never pending forever.
///
/// Handles are cheap to clone and share one batcher. When the last handle is
/// dropped, the batcher flushes what it holds and its worker stops.
///
/// Keys are hashed with [foldhash](https://docs.rs/foldhash), randomly
/// seeded, outside the batcher's lock; their `Eq` and `Clone` run under it,
/// so they should be cheap (a `String` or an integer is).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::{Arc, Mutex};
/// use flowgate::batch::KeyedBatcher;
///
/// let written = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&written);
/// let batcher = KeyedBatcher::builder()
///     .max_items(2)
///     .build(move |table: &'static str, rows: Vec<u32>| {
///         log.lock().unwrap().push((table, rows));
///         async { Ok::<(), std::io::Error>(()) }
///     })
///     .unwrap();
/// let (a, b, c) = tokio::join!(
///     batcher.submit_and_wait("users", 1),
///     batcher.submit_and_wait("orders", 2),
///     batcher.submit_and_wait("users", 3),
/// );
/// assert!(a.is_ok() && b.is_ok() && c.is_ok());
/// batcher.close().await;
/// // "users" filled up first; "orders" was flushed by its delay.
/// assert_eq!(*written.lock().unwrap(), [("users", vec![1, 3]), ("orders", vec![2])]);
/// # }
/// ```
pub struct KeyedBatcher<K, T, O = (), E = std::convert::Infallible>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    pub(crate) shared: Arc<Shared<Keyed<K>, T, O, E>>,
}

/// Counters of a [`KeyedBatcher`], from [`KeyedBatcher::stats`]. Item
/// counts, unless the name says batches or keys.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use flowgate::batch::KeyedBatcher;
///
/// let batcher = KeyedBatcher::builder()
///     .max_open_keys(1)
///     .build(|_: char, items: Vec<u32>| async move {
///         if items.contains(&0) { Err("no zeros") } else { Ok(()) }
///     })
///     .unwrap();
/// let a = batcher.submit('a', 0).await.unwrap();
/// let b = batcher.submit('b', 1).await.unwrap(); // a second key: 'a' goes early
/// batcher.close().await;
/// assert!(a.await.is_err() && b.await.is_ok());
/// let stats = batcher.stats();
/// assert_eq!((stats.batches, stats.failed_batches, stats.early_batches), (2, 1, 1));
/// assert_eq!((stats.flushed, stats.failed, stats.pending, stats.open_keys), (1, 1, 0, 0));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedBatchStats {
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
    /// Keys with an open batch right now (never more than
    /// [`max_open_keys`](KeyedBatcherBuilder::max_open_keys)).
    pub open_keys: usize,
    /// Batches flushed early, before their own triggers: the oldest open
    /// batch, when a new key would have exceeded `max_open_keys`, or when
    /// the batcher was full and every item it held sat in open batches.
    pub early_batches: u64,
}

impl<K, T> KeyedBatcher<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
{
    /// Starts configuring a keyed batcher; see [`KeyedBatcherBuilder`] for
    /// the settings and their defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_items(100)
    ///     .build(|_key: u64, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// assert!(!batcher.is_closed());
    /// # }
    /// ```
    pub fn builder() -> KeyedBatcherBuilder<K, T> {
        KeyedBatcherBuilder::default()
    }
}

impl<K, T, O, E> KeyedBatcher<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Submits `item` under `key`, waiting for room if the batcher is full,
    /// and returns the [`Flushed`] that resolves when the item's batch has
    /// been flushed.
    ///
    /// Awaiting `submit` only waits for the item to be *accepted*; await the
    /// returned [`Flushed`] to learn that it was *flushed*.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the key and the item if the batcher is closed,
    /// including while waiting for room.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped while waiting for room, the
    /// key and the item are dropped with it. Use [`reserve`](Self::reserve)
    /// to wait for room without handing them over.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_key: u8, _items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let flushed = batcher.submit(1, 10).await.unwrap();
    /// batcher.close().await;
    /// assert!(flushed.await.is_ok());
    /// // Closed: the key and the item come back.
    /// assert_eq!(batcher.submit(2, 20).await.unwrap_err().into_inner(), (2, 20));
    /// # }
    /// ```
    pub async fn submit(&self, key: K, item: T) -> Result<Flushed<O, E>, SubmitError<(K, T)>> {
        self.shared
            .submit(Keyed(key), item)
            .await
            .map_err(|(Keyed(key), item)| SubmitError((key, item)))
    }

    /// Submits `item` under `key`, waiting for room if the batcher is full,
    /// and then waits for the item's batch to be flushed: the output of the
    /// item, in one future.
    ///
    /// This is `batcher.submit(key, item).await?.await` fused, and costs no
    /// allocation per item, as [`Batcher::submit_and_wait`](super::Batcher::submit_and_wait).
    ///
    /// # Errors
    ///
    /// [`SubmitAndWaitError::Closed`](super::SubmitAndWaitError::Closed) with
    /// the key and the item if the batcher was closed before it accepted
    /// them; [`SubmitAndWaitError::Flush`](super::SubmitAndWaitError::Flush)
    /// if the item's batch failed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe while waiting for room: the key and the item are
    /// dropped with the future. Once the item was accepted (the first poll,
    /// when there is room), dropping the future only loses its outcome: the
    /// item stays submitted and is flushed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{KeyedBatcher, SubmitAndWaitError};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|key: u32, items: Vec<u32>| async move {
    ///         Ok::<_, std::io::Error>(items.iter().map(|x| key * 100 + x).collect::<Vec<_>>())
    ///     })
    ///     .unwrap();
    /// let (a, b) = tokio::join!(batcher.submit_and_wait(1, 2), batcher.submit_and_wait(3, 4));
    /// assert_eq!((a.unwrap(), b.unwrap()), (102, 304));
    /// batcher.close().await;
    /// match batcher.submit_and_wait(5, 6).await {
    ///     Err(SubmitAndWaitError::Closed(back)) => assert_eq!(back, (5, 6)),
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn submit_and_wait(&self, key: K, item: T) -> KeyedSubmitAndWait<'_, K, T, O, E> {
        KeyedSubmitAndWait::new(self, key, item)
    }

    /// Submits `item` under `key` if there is room right now, without
    /// waiting.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] with the key and the item if the batcher
    /// holds `capacity` items that are not being flushed yet;
    /// [`TrySubmitError::Closed`] with them if it is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{KeyedBatcher, TrySubmitError};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_items(2)
    ///     .capacity(2)
    ///     .build(|_: char, _items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let _a = batcher.try_submit('a', 1).unwrap();
    /// let _b = batcher.try_submit('b', 2).unwrap();
    /// // The worker has not run yet, so both items still count against capacity.
    /// assert!(matches!(batcher.try_submit('c', 3), Err(TrySubmitError::Full(('c', 3)))));
    /// # }
    /// ```
    pub fn try_submit(&self, key: K, item: T) -> Result<Flushed<O, E>, TrySubmitError<(K, T)>> {
        self.shared
            .try_submit(Keyed(key), item)
            .map_err(|err| match err {
                TrySubmitError::Full((Keyed(key), item)) => TrySubmitError::Full((key, item)),
                TrySubmitError::Closed((Keyed(key), item)) => TrySubmitError::Closed((key, item)),
            })
    }

    /// Submits `item` under `key`, waiting for room if the batcher is full;
    /// `callback` is called once with the item's outcome, on the worker,
    /// when its batch has been flushed or has failed.
    ///
    /// The callback runs on the batcher's worker, so it must be quick; a
    /// panic in it is caught and logged.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the key and the item if the batcher is closed;
    /// the callback is then not called.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, like [`submit`](Self::submit).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    /// use tokio::sync::oneshot;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: u8, _items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let (tx, rx) = oneshot::channel();
    /// batcher
    ///     .submit_with(1, 10, move |outcome| {
    ///         let _ = tx.send(outcome.is_ok());
    ///     })
    ///     .await
    ///     .unwrap();
    /// batcher.flush().await;
    /// assert!(rx.await.unwrap());
    /// # }
    /// ```
    pub async fn submit_with<C>(
        &self,
        key: K,
        item: T,
        callback: C,
    ) -> Result<(), SubmitError<(K, T)>>
    where
        C: FnOnce(Result<O, FlushError<E>>) + Send + 'static,
    {
        self.shared
            .submit_with(Keyed(key), item, Box::new(callback))
            .await
            .map_err(|(Keyed(key), item)| SubmitError((key, item)))
    }

    /// Submits `item` under `key` with a callback if there is room right
    /// now, without waiting; see [`submit_with`](Self::submit_with).
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
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_items(1)
    ///     .capacity(1)
    ///     .build(|_: u8, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.try_submit_with(1, 10, |outcome| assert!(outcome.is_ok())).unwrap();
    /// // Full: the key and the item come back and the callback is not called.
    /// let err = batcher.try_submit_with(2, 20, |_| unreachable!()).unwrap_err();
    /// assert_eq!(err.into_inner(), (2, 20));
    /// batcher.close().await;
    /// # }
    /// ```
    pub fn try_submit_with<C>(
        &self,
        key: K,
        item: T,
        callback: C,
    ) -> Result<(), TrySubmitError<(K, T)>>
    where
        C: FnOnce(Result<O, FlushError<E>>) + Send + 'static,
    {
        match self
            .shared
            .enter_with(Keyed(key), item, RoomPolicy::Take, Box::new(callback))
        {
            Enter::Entered(()) => Ok(()),
            Enter::Full((Keyed(key), item), _) => Err(TrySubmitError::Full((key, item))),
            Enter::Closed((Keyed(key), item)) => Err(TrySubmitError::Closed((key, item))),
        }
    }

    /// Waits for room for one item and reserves it, without handing over a
    /// key or an item yet. Submitting through the [`KeyedPermit`] cannot
    /// wait.
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
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: u8, _items: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let permit = batcher.reserve().await.unwrap();
    /// let flushed = permit.submit(1, 7).unwrap();
    /// batcher.close().await;
    /// assert!(flushed.await.is_ok());
    /// # }
    /// ```
    pub async fn reserve(&self) -> Result<KeyedPermit<'_, K, T, O, E>, SubmitError<()>> {
        if self.shared.reserve().await {
            Ok(KeyedPermit { batcher: self })
        } else {
            Err(SubmitError(()))
        }
    }

    /// Flushes the open batch of every key, without waiting for them to
    /// fill up or for their delays to pass.
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
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .max_delay(Duration::from_secs(3600))
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let a = batcher.submit('a', 1).await.unwrap();
    /// let b = batcher.submit('b', 2).await.unwrap();
    /// batcher.flush().await; // long before the hour
    /// assert!(a.await.is_ok() && b.await.is_ok());
    /// assert_eq!(batcher.stats().batches, 2);
    /// # }
    /// ```
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.flush()
    }

    /// Closes the batcher: no more items are accepted (submitters waiting for
    /// room get their keys and items back), the open batch of every key is
    /// flushed, every flushed future resolves, and the worker stops.
    ///
    /// Closing begins when `close` is called; the returned future resolves
    /// when the worker has stopped. Calling `close` again is harmless.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the wait; the batcher
    /// still closes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let a = batcher.submit('a', 1).await.unwrap();
    /// let b = batcher.submit('b', 2).await.unwrap();
    /// batcher.close().await;
    /// assert!(a.await.is_ok() && b.await.is_ok()); // flushed before the worker stopped
    /// assert!(batcher.submit('c', 3).await.is_err());
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
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
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
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: char, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let _a = batcher.submit('a', 1).await.unwrap();
    /// let _b = batcher.submit('b', 2).await.unwrap();
    /// let _c = batcher.submit('a', 3).await.unwrap();
    /// let stats = batcher.stats();
    /// assert_eq!((stats.submitted, stats.open_keys, stats.pending), (3, 2, 3));
    /// batcher.close().await;
    /// let stats = batcher.stats();
    /// assert_eq!((stats.flushed, stats.batches, stats.open_keys), (3, 2, 0));
    /// # }
    /// ```
    pub fn stats(&self) -> KeyedBatchStats {
        let state = lock(&self.shared.state);
        let stats = state.stats();
        KeyedBatchStats {
            submitted: stats.submitted,
            flushed: stats.flushed,
            failed: stats.failed,
            batches: stats.batches,
            failed_batches: stats.failed_batches,
            pending: stats.pending,
            open_keys: state.open.len(),
            early_batches: state.early,
        }
    }
}

impl<K, T, O, E> Clone for KeyedBatcher<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        KeyedBatcher {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, T, O, E> Drop for KeyedBatcher<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last handle: the worker flushes what is left and stops.
            self.shared.worker.wake();
        }
    }
}

impl<K, T, O, E> fmt::Debug for KeyedBatcher<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("KeyedBatcher")
            .field("limits", &self.shared.limits)
            .field("closed", &state.closed)
            .field("open_keys", &state.open.len())
            .field("stats", &state.stats())
            .finish()
    }
}

/// Room for one item in a [`KeyedBatcher`], reserved by
/// [`KeyedBatcher::reserve`], for an item of any key.
///
/// Submitting through a permit never waits. Dropping it unused gives the room
/// back.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use flowgate::batch::KeyedBatcher;
///
/// let batcher = KeyedBatcher::builder()
///     .max_items(1)
///     .capacity(1)
///     .build(|_: u8, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
///     .unwrap();
/// let permit = batcher.reserve().await.unwrap();
/// assert!(batcher.try_submit(1, 1).unwrap_err().is_full()); // the permit holds the room
/// drop(permit);
/// assert!(batcher.try_submit(1, 1).is_ok());
/// # }
/// ```
#[must_use = "a KeyedPermit holds room in the batcher until it is used or dropped"]
pub struct KeyedPermit<'a, K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    batcher: &'a KeyedBatcher<K, T, O, E>,
}

impl<'a, K, T, O, E> KeyedPermit<'a, K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Submits `item` under `key` into the reserved room; see
    /// [`KeyedBatcher::submit`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the key and the item if the batcher was closed
    /// since the room was reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: u8, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let permit = batcher.reserve().await.unwrap();
    /// let flushed = permit.submit(1, 7).unwrap();
    /// batcher.flush().await;
    /// assert!(flushed.await.is_ok());
    /// # }
    /// ```
    pub fn submit(self, key: K, item: T) -> Result<Flushed<O, E>, SubmitError<(K, T)>> {
        let shared = &self.consume().shared;
        shared
            .enter_held(Keyed(key), item)
            .map_err(|(Keyed(key), item)| SubmitError((key, item)))
    }

    /// Submits `item` under `key` into the reserved room with a callback;
    /// see [`KeyedBatcher::submit_with`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the key and the item if the batcher was closed
    /// since the room was reserved; the callback is then not called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::KeyedBatcher;
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: u8, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let permit = batcher.reserve().await.unwrap();
    /// permit.submit_with(1, 7, |outcome| assert!(outcome.is_ok())).unwrap();
    /// batcher.close().await;
    /// # }
    /// ```
    pub fn submit_with<C>(self, key: K, item: T, callback: C) -> Result<(), SubmitError<(K, T)>>
    where
        C: FnOnce(Result<O, FlushError<E>>) + Send + 'static,
    {
        let shared = &self.consume().shared;
        match shared.enter_with(Keyed(key), item, RoomPolicy::Held, Box::new(callback)) {
            Enter::Entered(()) => Ok(()),
            Enter::Closed((Keyed(key), item)) | Enter::Full((Keyed(key), item), _) => {
                Err(SubmitError((key, item)))
            }
        }
    }

    /// Hands the reserved room over to the submission, which consumes it.
    fn consume(self) -> &'a KeyedBatcher<K, T, O, E> {
        let batcher = self.batcher;
        mem::forget(self);
        batcher
    }
}

impl<K, T, O, E> Drop for KeyedPermit<'_, K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    fn drop(&mut self) {
        self.batcher.shared.release_room(1);
    }
}

impl<K, T, O, E> fmt::Debug for KeyedPermit<'_, K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPermit").finish_non_exhaustive()
    }
}
