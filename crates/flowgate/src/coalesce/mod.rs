//! A keyed, bounded, coalescing queue: items that share a key while the key
//! is queued are dequeued together, so duplicate work is done once.
//!
//! ```text
//!        +------------ width: items held under one key ------------>
//!        + +-----+
//!        | | 923 |                     enqueue(424, c): 424 is queued,
//!        | +-----+                     c joins its set (up to `width`)
//!        |    |
//!  depth | +-----+    +-----+    +-----+
//!  keys  | | 424 +----> a   +---->  b  |    enqueue(7, d): 7 is new, it
//!  queued| +-----+    +-----+    +-----+    goes to the back (up to `depth`)
//!        |    |
//!        | +-----+
//!        | | 99  |   dequeue() takes the front key with all its items:
//!        | +-----+   (923, [..]), then (424, [a, b, c]), then (99, [..])
//!        v
//! ```
//!
//! Think of a cache refresher: many requests ask for user 424 to be reloaded
//! while an earlier reload of 424 is still queued. With an [`OpQueue`] keyed
//! by user id, they all join the one queued entry, and a worker reloads 424
//! once for all of them.
//!
//! # Example
//!
//! ```
//! use flowgate::coalesce::OpQueue;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (queue, consumer) = OpQueue::<u64, &str>::new(100, 10);
//!
//! queue.try_enqueue(424, "a").unwrap();
//! queue.try_enqueue(99, "b").unwrap();
//! queue.try_enqueue(424, "c").unwrap(); // joins 424's set, keeps its place
//! drop(queue); // no more producers: the consumer drains, then sees None
//!
//! let worker = tokio::spawn(async move {
//!     let mut done = Vec::new();
//!     while let Some((key, items)) = consumer.dequeue().await {
//!         done.push((key, items)); // one reload of `key` serves all `items`
//!     }
//!     done
//! });
//! assert_eq!(worker.await.unwrap(), [(424, vec!["a", "c"]), (99, vec!["b"])]);
//! # }
//! ```
//!
//! # Semantics
//!
//! - **Order.** Keys are dequeued oldest first: a key's place is fixed by the
//!   item that queued it, and items joining it later do not move it. Within a
//!   key, items keep their enqueue order.
//! - **Bounds.** [`depth`](OpQueueBuilder::depth) bounds the distinct keys
//!   queued, [`width`](OpQueueBuilder::width) the items held under one key, so
//!   the queue holds at most `depth × width` items. At a bound,
//!   [`try_enqueue`](OpQueue::try_enqueue) hands the item back with
//!   [`TryEnqueueError::DepthFull`] or [`TryEnqueueError::WidthFull`], and
//!   [`enqueue`](OpQueue::enqueue) waits for room.
//! - **Merging.** By default a key's items are collected into a `Vec`. With
//!   [`merge`](OpQueueBuilder::merge) they are folded into one value (keep the
//!   latest, sum, max...), with [`fold`](OpQueueBuilder::fold) into a value of
//!   another type (a set, a count...).
//! - **Windowed mode** (the Go library's `OpWindow`). With
//!   [`window`](OpQueueBuilder::window), a key's items form a micro-batch that
//!   consumers cannot see until the window — measured from the batch's first
//!   item — ends, or the batch reaches `width`, whichever comes first. The
//!   key's next item then starts a new batch. This is a keyed debounce: a
//!   burst of updates to one key within the window costs one dequeue. `depth`
//!   then bounds the batches held, open or released; `WidthFull` never
//!   happens. Released batches are dequeued in the order they were released.
//!
//! # Closing and dropping
//!
//! - [`close`](OpQueue::close) (on either handle) refuses new items, fails
//!   waiting `enqueue` calls, and releases open windows at once;
//!   consumers drain what is left and then get `None`.
//! - Dropping every [`OpQueue`] handle closes the queue the same way: no one
//!   can enqueue any more, so consumers must not wait forever.
//! - Dropping every [`Consumer`] closes the queue and drops what it holds:
//!   no one would ever take it. Enqueues then fail with `Closed`, handing the
//!   item back.
//!
//! # Which one should I use?
//!
//! | you want | use |
//! |---|---|
//! | duplicate requests for the same key to be served by one piece of work, in key order, with bounded keys and items per key | [`OpQueue`] |
//! | the same, but a burst on one key should be allowed to settle first (debounce) | [`OpQueue`] with a [`window`](OpQueueBuilder::window) |
//! | many items written together regardless of key, each acknowledged after its batch is flushed | [`Batcher`](crate::batch::Batcher) |
//! | every item delivered on its own, in order, nothing merged | `tokio::sync::mpsc` |
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`Consumer::dequeue`], [`Consumer::dequeue_many`], `StreamExt::next` on a [`Consumer`] | yes | nothing: entries are taken only when the call returns them |
//! | [`OpQueue::enqueue`] | no | the key and the item, if cancelled while waiting for room (use [`try_enqueue`](OpQueue::try_enqueue) in a retry loop to keep them) |
//!
//! # Metrics
//!
//! A queue named with [`OpQueueBuilder::name`] records, with the `metrics`
//! feature, the `flowgate_coalesce_*` series listed in [`crate::metrics`]:
//! items enqueued (`outcome="queued"` for an item that queued its key,
//! `"merged"` for one that joined a queued key), dequeued and dropped; keys
//! and items queued; `enqueue` calls waiting for room; refusals by `reason`;
//! and, in windowed mode, batches released by `trigger` with their sizes.
//! Each is updated under the queue's lock, where the counts are exact: an
//! item costs one counter increment and the depth gauges are set (one store
//! each). Refusals are logged at `debug` (full) or `warn` (closed); dropping
//! the last consumer with items queued is logged at `error`.
//!
//! # Hashing
//!
//! Keys are hashed with [foldhash](https://docs.rs/foldhash), randomly seeded
//! per queue, before the queue's lock is taken. It is several times faster
//! than std's SipHash and has some resistance to hash flooding, but it is not
//! a cryptographic guarantee: if untrusted parties choose keys in bulk, bound
//! `depth` accordingly or key by a digest you control.
//!
//! # Waking
//!
//! A new entry wakes one waiting consumer, and none when every consumer is
//! busy (a busy consumer comes back for it without being woken). A consumer
//! that is woken and then cancelled passes the wake-up on. A `dequeue` future
//! (or a [`Consumer`] polled as a stream) that returned `Pending` keeps its
//! place among the waiting consumers until it is polled again or dropped, so
//! do not leave one parked and unpolled while other consumers wait: it could
//! take the wake-up meant for them. Producers
//! waiting in `enqueue` are all woken whenever room is made, since they
//! may be waiting for different keys; with very many blocked producers prefer
//! fewer of them, or `try_enqueue` with your own backoff.

mod builder;
mod error;
mod observe;
mod shared;
mod state;
mod waiters;

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use tokio::time::Instant;

pub use self::builder::OpQueueBuilder;
pub use self::error::{BuildError, EnqueueError, TryDequeueError, TryEnqueueError};

use self::shared::{ConsumerWait, Enqueued, Shared};
use crate::sync::lock;

// ===== impl OpQueue =====

/// The producing handle of a keyed, coalescing queue; see the
/// [module documentation](self).
///
/// `K` is the key, `T` the item, and `A` what a key's items are collected
/// into: `Vec<T>` unless built with [`merge`](OpQueueBuilder::merge) or
/// [`fold`](OpQueueBuilder::fold). Handles are cheap to clone; when the last
/// one is dropped the queue closes.
pub struct OpQueue<K, T, A = Vec<T>> {
    shared: Arc<Shared<K, T, A>>,
}

impl<K, T> OpQueue<K, T, Vec<T>>
where
    K: Hash + Eq + Send + 'static,
    T: Send + 'static,
{
    /// Creates a queue of at most `depth` distinct keys holding at most
    /// `width` items each, collected into a `Vec`; use
    /// [`builder`](Self::builder) for windows and merging (and for a
    /// [`BuildError`] instead of a panic).
    ///
    /// Both bounds may be as large as `usize::MAX`, which means "unbounded in
    /// practice": nothing is allocated up front for them.
    ///
    /// # Panics
    ///
    /// - `"OpQueue::new: depth must be at least 1"` if `depth` is 0;
    /// - `"OpQueue::new: width must be at least 1"` if `width` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u64, String>::new(1000, 16);
    /// assert_eq!((queue.depth(), queue.width()), (1000, 16));
    /// assert!(consumer.is_empty());
    /// ```
    ///
    /// A zero bound is refused:
    ///
    /// ```should_panic
    /// # use flowgate::coalesce::OpQueue;
    /// let _ = OpQueue::<u64, String>::new(0, 16); // panics: depth must be at least 1
    /// ```
    #[track_caller]
    #[allow(clippy::new_ret_no_self)] // the (producer, consumer) pair
    pub fn new(depth: usize, width: usize) -> (Self, Consumer<K, T>) {
        assert!(depth > 0, "OpQueue::new: depth must be at least 1");
        assert!(width > 0, "OpQueue::new: width must be at least 1");
        match Self::builder().depth(depth).width(width).build() {
            Ok(pair) => pair,
            Err(err) => unreachable!("an unwindowed queue with non-zero bounds builds: {err}"),
        }
    }

    /// Starts configuring a queue; see [`OpQueueBuilder`] for the settings
    /// and their defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<&str, u32>::builder()
    ///     .depth(100)
    ///     .merge(|total, n| *total += n)
    ///     .build()
    ///     .unwrap();
    /// queue.try_enqueue("clicks", 2).unwrap();
    /// queue.try_enqueue("clicks", 3).unwrap();
    /// assert_eq!(consumer.try_dequeue(), Ok(("clicks", 5)));
    /// ```
    pub fn builder() -> OpQueueBuilder<K, T> {
        OpQueueBuilder::default()
    }
}

impl<K, T, A> OpQueue<K, T, A>
where
    K: Hash + Eq,
{
    /// Enqueues `item` under `key` without waiting.
    ///
    /// If `key` is queued (windowed: its batch is open), the item joins it;
    /// otherwise the key is added at the back of the queue.
    ///
    /// # Errors
    ///
    /// The key and the item are handed back with:
    /// - [`TryEnqueueError::WidthFull`] if `key` is queued and holds `width`
    ///   items already;
    /// - [`TryEnqueueError::DepthFull`] if `key` is not queued and `depth` keys
    ///   are;
    /// - [`TryEnqueueError::Closed`] if the queue is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::{TryEnqueueError, OpQueue};
    ///
    /// let (queue, _consumer) = OpQueue::<&str, u32>::new(1, 2);
    /// queue.try_enqueue("a", 1).unwrap();
    /// queue.try_enqueue("a", 2).unwrap();
    /// assert_eq!(queue.try_enqueue("a", 3), Err(TryEnqueueError::WidthFull("a", 3)));
    /// assert_eq!(queue.try_enqueue("b", 4), Err(TryEnqueueError::DepthFull("b", 4)));
    /// queue.close();
    /// assert_eq!(queue.try_enqueue("a", 5), Err(TryEnqueueError::Closed("a", 5)));
    /// ```
    pub fn try_enqueue(&self, key: K, item: T) -> Result<(), TryEnqueueError<K, T>> {
        self.shared.try_enqueue(key, item)
    }

    /// Enqueues `item` under `key`, waiting for room while the queue is full
    /// for it (`depth` keys queued, or `width` items under `key`).
    ///
    /// # Errors
    ///
    /// [`EnqueueError`] with the key and the item if the queue is closed,
    /// before or while waiting.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped while waiting for room, the
    /// key and the item are dropped with it. To keep them, retry
    /// [`try_enqueue`](Self::try_enqueue), which hands them back.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u32, u32>::new(1, 8);
    /// queue.try_enqueue(1, 10).unwrap();
    /// let producer = tokio::spawn(async move {
    ///     // Key 2 needs room: waits until key 1 is dequeued.
    ///     queue.enqueue(2, 20).await.unwrap();
    /// });
    /// assert_eq!(consumer.dequeue().await, Some((1, vec![10])));
    /// assert_eq!(consumer.dequeue().await, Some((2, vec![20])));
    /// producer.await.unwrap();
    /// # }
    /// ```
    pub fn enqueue(&self, key: K, item: T) -> Enqueue<'_, K, T, A> {
        Enqueue {
            shared: &self.shared,
            hash: self.shared.hash(&key),
            pending: Some((key, item)),
            waiter: None,
        }
    }

    /// How many items are held under `key` in the entry that accepts its
    /// items (windowed: its open batch); `0` if none.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<String, u32>::new(10, 10);
    /// queue.try_enqueue("user:1".to_owned(), 1).unwrap();
    /// queue.try_enqueue("user:1".to_owned(), 2).unwrap();
    /// assert_eq!(queue.count_for("user:1"), 2);
    /// assert_eq!(queue.count_for("user:2"), 0);
    /// ```
    pub fn count_for<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.count_for(key)
    }
}

impl<K, T, A> OpQueue<K, T, A> {
    /// Closes the queue: new items are refused, waiting `enqueue` calls
    /// fail, open windows are released, and consumers drain what is left.
    /// Calling it again is harmless.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::{OpQueue, TryEnqueueError};
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// queue.try_enqueue(1, 1).unwrap();
    /// queue.close();
    /// assert_eq!(queue.try_enqueue(2, 2), Err(TryEnqueueError::Closed(2, 2)));
    /// assert_eq!(consumer.try_dequeue(), Ok((1, vec![1]))); // still drained
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether the queue no longer accepts items: it was closed, or every
    /// [`Consumer`] was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// assert!(!queue.is_closed());
    /// drop(consumer);
    /// assert!(queue.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// How many keys are queued (windowed: batches held, open or released):
    /// the part of `depth` in use.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// queue.try_enqueue(1, 1).unwrap();
    /// queue.try_enqueue(1, 2).unwrap(); // joins key 1
    /// queue.try_enqueue(2, 3).unwrap();
    /// assert_eq!(queue.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether nothing is queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// assert!(queue.is_empty());
    /// queue.try_enqueue(1, 1).unwrap();
    /// assert!(!queue.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items are held in all, under every key.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// queue.try_enqueue(1, 1).unwrap();
    /// queue.try_enqueue(1, 2).unwrap();
    /// queue.try_enqueue(2, 3).unwrap();
    /// assert_eq!(queue.item_count(), 3);
    /// ```
    pub fn item_count(&self) -> usize {
        self.shared.item_count()
    }

    /// The queue's `depth`: most distinct keys (windowed: batches) held.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(100, 8);
    /// assert_eq!(queue.depth(), 100);
    /// ```
    pub fn depth(&self) -> usize {
        self.shared.config.depth
    }

    /// The queue's `width`: most items held under one key.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(100, 8);
    /// assert_eq!(queue.width(), 8);
    /// ```
    pub fn width(&self) -> usize {
        self.shared.config.width
    }

    /// The window of a windowed queue; `None` if it releases keys at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// assert_eq!(queue.window(), None);
    /// let (windowed, _consumer) = OpQueue::<u8, u8>::builder()
    ///     .window(Duration::from_millis(50))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(windowed.window(), Some(Duration::from_millis(50)));
    /// # }
    /// ```
    pub fn window(&self) -> Option<Duration> {
        self.shared.config.window
    }
}

impl<K, T, A> Clone for OpQueue<K, T, A> {
    fn clone(&self) -> Self {
        self.shared.producers.fetch_add(1, Ordering::Relaxed);
        OpQueue {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, T, A> Drop for OpQueue<K, T, A> {
    fn drop(&mut self) {
        if self.shared.producers.fetch_sub(1, Ordering::AcqRel) == 1 {
            // No one can enqueue any more: let consumers drain and finish.
            self.shared.close();
        }
    }
}

impl<K, T, A> fmt::Debug for OpQueue<K, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("OpQueue")
            .field("len", &state.len())
            .field("items", &state.items())
            .field("depth", &self.shared.config.depth)
            .field("width", &self.shared.config.width)
            .field("window", &self.shared.config.window)
            .field("closed", &state.closed)
            .finish()
    }
}

/// Enqueues an item once there is room; returned by
/// [`OpQueue::enqueue`].
///
/// # Cancel safety
///
/// Not cancel-safe: dropping it while it waits drops the key and the item.
#[must_use = "futures do nothing unless polled"]
pub struct Enqueue<'a, K, T, A> {
    shared: &'a Shared<K, T, A>,
    hash: u64,
    /// `None` once the outcome was returned.
    pending: Option<(K, T)>,
    /// Its place among the producers waiting for room, from its first
    /// `Pending` until it resolves or is dropped: while it has one, it is
    /// counted in the `enqueuers_waiting` gauge.
    waiter: Option<u64>,
}

// Nothing of it is pinned in place.
impl<K, T, A> Unpin for Enqueue<'_, K, T, A> {}

impl<K, T, A> Future for Enqueue<'_, K, T, A>
where
    K: Hash + Eq,
{
    type Output = Result<(), EnqueueError<K, T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (key, item) = this
            .pending
            .take()
            .expect("`Enqueue` polled after it returned `Ready`");
        match this
            .shared
            .poll_enqueue(cx, &mut this.waiter, this.hash, key, item)
        {
            Enqueued::Done => Poll::Ready(Ok(())),
            Enqueued::Closed(key, item) => Poll::Ready(Err(EnqueueError(key, item))),
            Enqueued::Parked(key, item) => {
                this.pending = Some((key, item));
                Poll::Pending
            }
        }
    }
}

impl<K, T, A> Drop for Enqueue<'_, K, T, A> {
    fn drop(&mut self) {
        self.shared.cancel_producer(self.waiter.take());
    }
}

impl<K, T, A> fmt::Debug for Enqueue<'_, K, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enqueue")
            .field("done", &self.pending.is_none())
            .finish_non_exhaustive()
    }
}

// ===== impl Consumer =====

/// The consuming handle of an [`OpQueue`]: takes the oldest key with
/// everything queued under it.
///
/// Consumers are cheap to clone; several may take from one queue at once,
/// each entry going to exactly one of them. A `Consumer` is also a
/// [`Stream`] of `(key, items)` that ends once the queue is closed and
/// drained. When the last consumer is dropped the queue closes and drops what
/// it holds.
pub struct Consumer<K, T, A = Vec<T>> {
    shared: Arc<Shared<K, T, A>>,
    /// The parking state of the `Stream` implementation.
    wait: ConsumerWait,
    terminated: bool,
}

impl<K, T, A> Consumer<K, T, A> {
    pub(crate) fn new(shared: Arc<Shared<K, T, A>>) -> Self {
        Consumer {
            shared,
            wait: ConsumerWait::default(),
            terminated: false,
        }
    }

    /// Takes the oldest key with all its items, waiting while nothing is
    /// ready. `None` once the queue is closed and drained.
    ///
    /// In windowed mode, a batch is ready once its window ended or it reached
    /// `width`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an entry is taken only when the future returns it, so a
    /// cancelled `dequeue` (for example in `select!`) loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<&str, u32>::new(10, 10);
    /// queue.try_enqueue("x", 1).unwrap();
    /// queue.close();
    /// assert_eq!(consumer.dequeue().await, Some(("x", vec![1])));
    /// assert_eq!(consumer.dequeue().await, None); // closed and drained
    /// # }
    /// ```
    pub fn dequeue(&self) -> Dequeue<'_, K, T, A> {
        Dequeue {
            shared: &self.shared,
            wait: ConsumerWait::default(),
        }
    }

    /// Takes up to `limit` of the oldest ready entries into `buffer`, waiting
    /// while nothing is ready, and returns how many were taken. Returns `0`
    /// once the queue is closed and drained, or at once if `limit` is 0.
    ///
    /// Taking several entries under one lock is cheaper than as many
    /// `dequeue` calls.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: entries are moved into `buffer` only when the future
    /// returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u32, ()>::new(10, 10);
    /// for key in 0..5 {
    ///     queue.try_enqueue(key, ()).unwrap();
    /// }
    /// let mut buffer = Vec::new();
    /// assert_eq!(consumer.dequeue_many(&mut buffer, 3).await, 3);
    /// assert_eq!(consumer.dequeue_many(&mut buffer, 3).await, 2);
    /// let keys: Vec<u32> = buffer.iter().map(|(key, _)| *key).collect();
    /// assert_eq!(keys, [0, 1, 2, 3, 4]);
    /// # }
    /// ```
    pub fn dequeue_many<'a>(
        &'a self,
        buffer: &'a mut Vec<(K, A)>,
        limit: usize,
    ) -> DequeueMany<'a, K, T, A> {
        DequeueMany {
            shared: &self.shared,
            wait: ConsumerWait::default(),
            buffer,
            limit,
        }
    }

    /// Takes the oldest ready entry if there is one, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryDequeueError::Empty`] if nothing is ready;
    /// [`TryDequeueError::Closed`] if the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::{OpQueue, TryDequeueError};
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Empty));
    /// queue.try_enqueue(1, 1).unwrap();
    /// drop(queue);
    /// assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
    /// assert_eq!(consumer.try_dequeue(), Err(TryDequeueError::Closed));
    /// ```
    pub fn try_dequeue(&self) -> Result<(K, A), TryDequeueError> {
        let mut state = lock(&self.shared.state);
        if self.shared.config.window.is_some() {
            state.release_expired(Instant::now());
        }
        let before = state.items();
        match state.dequeue() {
            Some(entry) => {
                self.shared.metrics.dequeued(before - state.items(), &state);
                let producers = if state.producers.is_empty() {
                    Vec::new()
                } else {
                    state.producers.take_all()
                };
                drop(state);
                for producer in producers {
                    producer.wake();
                }
                Ok(entry)
            }
            None if state.closed && !state.has_entries() => Err(TryDequeueError::Closed),
            None => Err(TryDequeueError::Empty),
        }
    }

    /// Closes the queue from the consuming side, as
    /// [`OpQueue::close`] does: producers are refused from now on, and what
    /// is queued can still be dequeued.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// queue.try_enqueue(1, 1).unwrap();
    /// consumer.close();
    /// assert!(queue.try_enqueue(2, 2).unwrap_err().is_closed());
    /// assert_eq!(consumer.dequeue().await, Some((1, vec![1])));
    /// assert_eq!(consumer.dequeue().await, None);
    /// # }
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether producers are refused: the queue was closed, or every
    /// [`OpQueue`] handle was dropped. Entries may still be left to take.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// queue.try_enqueue(1, 1).unwrap();
    /// drop(queue); // the last producer
    /// assert!(consumer.is_closed());
    /// assert_eq!(consumer.len(), 1);
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// How many entries are left to take (windowed: batches held, open or
    /// released).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// queue.try_enqueue(1, 1).unwrap();
    /// queue.try_enqueue(2, 2).unwrap();
    /// consumer.try_dequeue().unwrap();
    /// assert_eq!(consumer.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether no entry is left to take.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// queue.try_enqueue(1, 1).unwrap();
    /// assert!(!consumer.is_empty());
    /// consumer.try_dequeue().unwrap();
    /// assert!(consumer.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items are left to take, under every key.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(10, 10);
    /// for item in 0..4 {
    ///     queue.try_enqueue(item % 2, item).unwrap();
    /// }
    /// assert_eq!(consumer.item_count(), 4);
    /// consumer.try_dequeue().unwrap(); // key 0 with two items
    /// assert_eq!(consumer.item_count(), 2);
    /// ```
    pub fn item_count(&self) -> usize {
        self.shared.item_count()
    }

    /// How many items are held under `key` in the entry that accepts its
    /// items; see [`OpQueue::count_for`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<&str, u8>::new(10, 10);
    /// queue.try_enqueue("a", 1).unwrap();
    /// assert_eq!(consumer.count_for("a"), 1);
    /// consumer.try_dequeue().unwrap();
    /// assert_eq!(consumer.count_for("a"), 0);
    /// ```
    pub fn count_for<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.count_for(key)
    }
}

impl<K, T, A> Stream for Consumer<K, T, A> {
    type Item = (K, A);

    /// Like [`dequeue`](Consumer::dequeue); cancel-safe in the same way.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<(K, A)>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        let polled = this
            .shared
            .poll_take(cx, &mut this.wait, |state| state.dequeue());
        if let Poll::Ready(None) = polled {
            this.terminated = true;
        }
        polled
    }
}

impl<K, T, A> FusedStream for Consumer<K, T, A> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<K, T, A> Clone for Consumer<K, T, A> {
    fn clone(&self) -> Self {
        self.shared.consumers.fetch_add(1, Ordering::Relaxed);
        Consumer::new(Arc::clone(&self.shared))
    }
}

impl<K, T, A> Drop for Consumer<K, T, A> {
    fn drop(&mut self) {
        self.shared.cancel_consumer(&mut self.wait);
        if self.shared.consumers.fetch_sub(1, Ordering::AcqRel) == 1 {
            // No one will ever take what is queued.
            self.shared.close_and_clear();
        }
    }
}

impl<K, T, A> fmt::Debug for Consumer<K, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("Consumer")
            .field("len", &state.len())
            .field("items", &state.items())
            .field("closed", &state.closed)
            .field("terminated", &self.terminated)
            .finish()
    }
}

/// Takes the oldest ready entry; returned by [`Consumer::dequeue`].
///
/// # Cancel safety
///
/// Cancel-safe: nothing is taken unless it resolves.
#[must_use = "futures do nothing unless polled"]
pub struct Dequeue<'a, K, T, A> {
    shared: &'a Shared<K, T, A>,
    wait: ConsumerWait,
}

impl<K, T, A> Future for Dequeue<'_, K, T, A> {
    type Output = Option<(K, A)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared
            .poll_take(cx, &mut this.wait, |state| state.dequeue())
    }
}

impl<K, T, A> Drop for Dequeue<'_, K, T, A> {
    fn drop(&mut self) {
        self.shared.cancel_consumer(&mut self.wait);
    }
}

impl<K, T, A> fmt::Debug for Dequeue<'_, K, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dequeue").finish_non_exhaustive()
    }
}

/// Takes up to `limit` ready entries; returned by [`Consumer::dequeue_many`].
///
/// # Cancel safety
///
/// Cancel-safe: nothing is taken unless it resolves.
#[must_use = "futures do nothing unless polled"]
pub struct DequeueMany<'a, K, T, A> {
    shared: &'a Shared<K, T, A>,
    wait: ConsumerWait,
    buffer: &'a mut Vec<(K, A)>,
    limit: usize,
}

impl<K, T, A> Future for DequeueMany<'_, K, T, A> {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let this = self.get_mut();
        if this.limit == 0 {
            return Poll::Ready(0);
        }
        let (buffer, limit) = (&mut *this.buffer, this.limit);
        this.shared
            .poll_take(cx, &mut this.wait, |state| {
                let mut taken = 0;
                while taken < limit {
                    let Some(entry) = state.dequeue() else { break };
                    buffer.push(entry);
                    taken += 1;
                }
                (taken > 0).then_some(taken)
            })
            .map(|taken| taken.unwrap_or(0))
    }
}

impl<K, T, A> Drop for DequeueMany<'_, K, T, A> {
    fn drop(&mut self) {
        self.shared.cancel_consumer(&mut self.wait);
    }
}

impl<K, T, A> fmt::Debug for DequeueMany<'_, K, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DequeueMany")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}
