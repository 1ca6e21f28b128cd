//! [`OpQueueBuilder`]: the bounds, window and folding of an [`OpQueue`].

use foldhash::fast::RandomState;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::BuildError;
use super::observe::{Metrics, WindowMetrics};
use super::shared::Shared;
use super::state::{Add, Config, Start, State};
use super::{Consumer, OpQueue};
use crate::telemetry::Name;

/// Configures and builds an [`OpQueue`] and its [`Consumer`]. Created by
/// [`OpQueue::builder`].
///
/// | setting | default | rule |
/// |---|---|---|
/// | [`depth`](Self::depth) | 1024 | at least 1; up to `usize::MAX` (unbounded in practice, nothing pre-allocated) |
/// | [`width`](Self::width) | 1024 | at least 1; up to `usize::MAX` (unbounded in practice) |
/// | [`window`](Self::window) | none (released at once) | greater than zero; needs a tokio runtime; a window too long for an `Instant`, up to `Duration::MAX`, never ends by time (a batch is released when it reaches `width` or the queue closes) |
/// | [`merge`](Self::merge) / [`fold`](Self::fold) | items collected in a `Vec` | — |
/// | [`name`](Self::name) | none (no metrics) | any string |
///
/// Every rule is checked by [`build`](Self::build), which returns a
/// [`BuildError`] naming the first one broken.
///
/// # Merge and fold functions run under the queue's lock
///
/// They are called while the queue is locked, so that an item is folded into
/// its key's entry atomically with respect to `dequeue`. Keep them cheap and
/// non-blocking. If one panics, the panic propagates to the `try_enqueue` or `enqueue` caller,
/// the item is dropped, and the key's value is left as the function left it;
/// the queue itself stays consistent.
pub struct OpQueueBuilder<K, T, A = Vec<T>> {
    depth: usize,
    width: usize,
    window: Option<Duration>,
    start: Start<T, A>,
    add: Add<T, A>,
    name: Name,
    _keys: PhantomData<fn(K)>,
}

impl<K, T> Default for OpQueueBuilder<K, T, Vec<T>>
where
    T: 'static,
{
    fn default() -> Self {
        OpQueueBuilder {
            depth: 1024,
            width: 1024,
            window: None,
            start: Box::new(|item| vec![item]),
            add: Box::new(|items: &mut Vec<T>, item| items.push(item)),
            name: Name::none(),
            _keys: PhantomData,
        }
    }
}

impl<K, T, A> OpQueueBuilder<K, T, A>
where
    K: Hash + Eq + Send + 'static,
    T: Send + 'static,
    A: Send + 'static,
{
    /// How many distinct keys may be queued at once (in windowed mode: how
    /// many batches, open or released). An item for a key that is not queued
    /// is refused with [`TryEnqueueError::DepthFull`](super::TryEnqueueError::DepthFull)
    /// beyond it.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::{BuildError, OpQueue};
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::builder().depth(1).build().unwrap();
    /// queue.try_enqueue(1, 1).unwrap();
    /// assert!(queue.try_enqueue(2, 2).unwrap_err().is_depth_full());
    /// let err = OpQueue::<u8, u8>::builder().depth(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroDepth);
    /// ```
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }

    /// How many items one key's entry may hold. A queued key that holds
    /// `width` items refuses more with
    /// [`TryEnqueueError::WidthFull`](super::TryEnqueueError::WidthFull) until it is
    /// dequeued; in windowed mode a batch that reaches `width` is released at
    /// once instead, and the key's next item starts a new batch.
    ///
    /// With [`merge`](Self::merge) the value does not grow, and `usize::MAX`
    /// is a sensible width.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::{BuildError, OpQueue};
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::builder().width(2).build().unwrap();
    /// queue.try_enqueue(1, 1).unwrap();
    /// queue.try_enqueue(1, 2).unwrap();
    /// assert!(queue.try_enqueue(1, 3).unwrap_err().is_width_full());
    /// let err = OpQueue::<u8, u8>::builder().width(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroWidth);
    /// ```
    pub fn width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// Windowed mode: items of a key that arrive within `window` of the key's
    /// first item form one micro-batch, which is released to consumers when
    /// the window ends or it reaches [`width`](Self::width) — a keyed debounce.
    ///
    /// Windows run on tokio's clock, in the runtime `build` is called in. A
    /// zero window is refused by [`build`](Self::build)
    /// ([`BuildError::ZeroWindow`]); a window too long for an `Instant`, up
    /// to `Duration::MAX`, never ends by time: a batch is then released only
    /// when it reaches `width` or the queue closes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::coalesce::OpQueue;
    ///
    /// // Re-index a document at most once per 100 ms, however often it changes.
    /// let (queue, consumer) = OpQueue::<&str, u32>::builder()
    ///     .window(Duration::from_millis(100))
    ///     .merge(|latest, version| *latest = version)
    ///     .build()
    ///     .unwrap();
    /// for version in 1..=5 {
    ///     queue.try_enqueue("doc-1", version).unwrap();
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    /// }
    /// // Five edits in 50 ms: one re-index, of the latest version, when the
    /// // window that opened with the first edit ends.
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(consumer.dequeue().await, Some(("doc-1", 5)));
    /// assert_eq!(start.elapsed(), Duration::from_millis(50));
    /// # }
    /// ```
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// Names the queue: with the `metrics` feature, its series are recorded
    /// with the label `name="…"` (any string is accepted as given; give each
    /// queue its own). An unnamed queue records nothing.
    ///
    /// It enables, registered by [`build`](Self::build):
    /// `flowgate_coalesce_items_enqueued_total{outcome="queued"|"merged"}`
    /// (items that queued a key / joined a queued key),
    /// `flowgate_coalesce_items_dequeued_total`,
    /// `flowgate_coalesce_items_dropped_total`,
    /// `flowgate_coalesce_keys_queued`, `flowgate_coalesce_items_queued`,
    /// `flowgate_coalesce_enqueuers_waiting`,
    /// `flowgate_coalesce_enqueue_rejected_total{reason}`, and for a windowed
    /// queue `flowgate_coalesce_batches_released_total{trigger}` and
    /// `flowgate_coalesce_batch_size`. See [`crate::metrics`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u64, &str>::builder()
    ///     .name("reloads")
    ///     .build()
    ///     .unwrap();
    /// queue.try_enqueue(424, "a").unwrap();
    /// queue.try_enqueue(424, "b").unwrap(); // counted as outcome="merged"
    /// assert_eq!(consumer.try_dequeue(), Ok((424, vec!["a", "b"])));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }

    /// Folds each key's items into one value with `merge` instead of
    /// collecting them: the key's first item is the starting value and
    /// `merge(&mut value, item)` folds in each later one. Consumers receive
    /// `(key, value)`. See the note on the builder about the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::coalesce::OpQueue;
    ///
    /// // Keep only the latest value of each key.
    /// let (queue, consumer) = OpQueue::<&str, u32>::builder()
    ///     .merge(|latest, item| *latest = item)
    ///     .build()
    ///     .unwrap();
    /// queue.try_enqueue("temp", 20).unwrap();
    /// queue.try_enqueue("temp", 21).unwrap();
    /// assert_eq!(consumer.dequeue().await, Some(("temp", 21)));
    /// # }
    /// ```
    pub fn merge<F>(self, merge: F) -> OpQueueBuilder<K, T, T>
    where
        F: Fn(&mut T, T) + Send + Sync + 'static,
    {
        OpQueueBuilder {
            depth: self.depth,
            width: self.width,
            window: self.window,
            start: Box::new(|item| item),
            add: Box::new(merge),
            name: self.name,
            _keys: PhantomData,
        }
    }

    /// Folds each key's items into a value of another type: `start(item)`
    /// makes the value from the key's first item and `add(&mut value, item)`
    /// folds in each later one. See the note on the builder about the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::collections::BTreeSet;
    /// use flowgate::coalesce::OpQueue;
    ///
    /// // Deduplicate each user's requested fields.
    /// let (queue, consumer) = OpQueue::<u64, &str>::builder()
    ///     .fold(|field| BTreeSet::from([field]), |fields, field| {
    ///         fields.insert(field);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// for field in ["name", "email", "name"] {
    ///     queue.try_enqueue(7, field).unwrap();
    /// }
    /// let (user, fields) = consumer.dequeue().await.unwrap();
    /// assert_eq!((user, fields.len()), (7, 2));
    /// # }
    /// ```
    pub fn fold<B, S, F>(self, start: S, add: F) -> OpQueueBuilder<K, T, B>
    where
        S: Fn(T) -> B + Send + Sync + 'static,
        F: Fn(&mut B, T) + Send + Sync + 'static,
    {
        OpQueueBuilder {
            depth: self.depth,
            width: self.width,
            window: self.window,
            start: Box::new(start),
            add: Box::new(add),
            name: self.name,
            _keys: PhantomData,
        }
    }

    /// Builds the queue: the [`OpQueue`] handle to enqueue with and the
    /// [`Consumer`] handle to dequeue with. Both can be cloned.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if a setting breaks its rule (see the table above),
    /// or [`BuildError::NoRuntime`] for a windowed queue built outside a tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::coalesce::{BuildError, OpQueue};
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::builder().depth(8).width(8).build().unwrap();
    /// queue.try_enqueue(1, 1).unwrap();
    /// assert_eq!(consumer.try_dequeue(), Ok((1, vec![1])));
    /// // A window needs a tokio runtime for its timer; there is none here.
    /// let err = OpQueue::<u8, u8>::builder()
    ///     .window(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::NoRuntime);
    /// ```
    #[allow(clippy::type_complexity)] // the (producer, consumer) pair
    pub fn build(self) -> Result<(OpQueue<K, T, A>, Consumer<K, T, A>), BuildError> {
        if self.depth == 0 {
            return Err(BuildError::ZeroDepth);
        }
        if self.width == 0 {
            return Err(BuildError::ZeroWidth);
        }
        let runtime = match self.window {
            Some(window) if window.is_zero() => return Err(BuildError::ZeroWindow),
            Some(_) => {
                Some(tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?)
            }
            None => None,
        };
        let windows = WindowMetrics::new(&self.name, self.window.is_some());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(self.depth, windows)),
            metrics: Metrics::new(self.name),
            config: Config {
                depth: self.depth,
                width: self.width,
                window: self.window,
                start: self.start,
                add: self.add,
            },
            hasher: RandomState::default(),
            runtime,
            producers: AtomicUsize::new(1),
            consumers: AtomicUsize::new(1),
        });
        Ok((
            OpQueue {
                shared: Arc::clone(&shared),
            },
            Consumer::new(shared),
        ))
    }
}

impl<K, T, A> fmt::Debug for OpQueueBuilder<K, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpQueueBuilder")
            .field("depth", &self.depth)
            .field("width", &self.width)
            .field("window", &self.window)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
