//! Errors of the [`coalesce`](super) module.

use std::error::Error;
use std::fmt;

/// Returned by [`OpQueue::try_enqueue`](super::OpQueue::try_enqueue): the key and the
/// item are handed back, with the reason they were refused.
#[derive(Clone, PartialEq, Eq)]
pub enum TryEnqueueError<K, T> {
    /// The key is not queued and `depth` distinct keys (windowed: batches)
    /// already are. Transient: room is made as entries are dequeued.
    DepthFull(K, T),
    /// The key is queued and its entry already holds `width` items.
    /// Transient: the key accepts items again once its entry is dequeued.
    /// A windowed queue never returns this: a full batch is released and the
    /// key's next item starts a new one.
    WidthFull(K, T),
    /// The queue is closed. Permanent.
    Closed(K, T),
}

impl<K, T> TryEnqueueError<K, T> {
    /// Returns the key and the item that were refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<&str, u8>::new(1, 1);
    /// queue.try_enqueue("a", 1).unwrap();
    /// let err = queue.try_enqueue("a", 2).unwrap_err();
    /// assert_eq!(err.into_inner(), ("a", 2));
    /// ```
    pub fn into_inner(self) -> (K, T) {
        match self {
            Self::DepthFull(key, item) | Self::WidthFull(key, item) | Self::Closed(key, item) => {
                (key, item)
            }
        }
    }

    /// The key of the refused item.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<&str, u8>::new(1, 1);
    /// queue.try_enqueue("a", 1).unwrap();
    /// assert_eq!(queue.try_enqueue("b", 2).unwrap_err().key(), &"b");
    /// ```
    pub fn key(&self) -> &K {
        match self {
            Self::DepthFull(key, _) | Self::WidthFull(key, _) | Self::Closed(key, _) => key,
        }
    }

    /// Whether the queue was full, by depth or by width (transient).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(1, 1);
    /// queue.try_enqueue(1, 1).unwrap();
    /// assert!(queue.try_enqueue(1, 2).unwrap_err().is_full()); // width
    /// assert!(queue.try_enqueue(2, 2).unwrap_err().is_full()); // depth
    /// queue.close();
    /// assert!(!queue.try_enqueue(2, 2).unwrap_err().is_full()); // closed
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, Self::DepthFull(..) | Self::WidthFull(..))
    }

    /// Whether `depth` distinct keys were already queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(1, 1);
    /// queue.try_enqueue(1, 1).unwrap();
    /// assert!(queue.try_enqueue(2, 2).unwrap_err().is_depth_full());
    /// assert!(!queue.try_enqueue(1, 2).unwrap_err().is_depth_full());
    /// ```
    pub fn is_depth_full(&self) -> bool {
        matches!(self, Self::DepthFull(..))
    }

    /// Whether the key's entry already held `width` items.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<u8, u8>::new(1, 1);
    /// queue.try_enqueue(1, 1).unwrap();
    /// assert!(queue.try_enqueue(1, 2).unwrap_err().is_width_full());
    /// assert!(!queue.try_enqueue(2, 2).unwrap_err().is_width_full());
    /// ```
    pub fn is_width_full(&self) -> bool {
        matches!(self, Self::WidthFull(..))
    }

    /// Whether the queue was closed (permanent).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, consumer) = OpQueue::<u8, u8>::new(1, 1);
    /// drop(consumer); // no one will take anything: the queue closes
    /// assert!(queue.try_enqueue(1, 1).unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(..))
    }
}

impl<K, T> fmt::Debug for TryEnqueueError<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DepthFull(..) => f.write_str("DepthFull(..)"),
            Self::WidthFull(..) => f.write_str("WidthFull(..)"),
            Self::Closed(..) => f.write_str("Closed(..)"),
        }
    }
}

impl<K, T> fmt::Display for TryEnqueueError<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DepthFull(..) => f.write_str("queue is full (depth): too many distinct keys"),
            Self::WidthFull(..) => {
                f.write_str("queue is full (width): too many items for this key")
            }
            Self::Closed(..) => f.write_str("queue is closed"),
        }
    }
}

impl<K, T> Error for TryEnqueueError<K, T> {}

/// Returned by [`OpQueue::enqueue`](super::OpQueue::enqueue) when
/// the queue is closed, before or while waiting for room; the key and the item
/// are handed back.
#[derive(Clone, PartialEq, Eq)]
pub struct EnqueueError<K, T>(pub K, pub T);

impl<K, T> EnqueueError<K, T> {
    /// Returns the key and the item that were refused.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::coalesce::OpQueue;
    ///
    /// let (queue, _consumer) = OpQueue::<&str, u8>::new(1, 1);
    /// queue.close();
    /// let err = queue.enqueue("a", 1).await.unwrap_err();
    /// assert_eq!(err.into_inner(), ("a", 1));
    /// # }
    /// ```
    pub fn into_inner(self) -> (K, T) {
        (self.0, self.1)
    }
}

impl<K, T> fmt::Debug for EnqueueError<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EnqueueError").finish_non_exhaustive()
    }
}

impl<K, T> fmt::Display for EnqueueError<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is closed")
    }
}

impl<K, T> Error for EnqueueError<K, T> {}

/// Returned by [`Consumer::try_dequeue`](super::Consumer::try_dequeue) when
/// there is nothing to take right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryDequeueError {
    /// Nothing is ready: the queue is empty, or (windowed) every batch's
    /// window is still open. Transient.
    Empty,
    /// The queue is closed and everything was taken. Permanent.
    Closed,
}

impl fmt::Display for TryDequeueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("queue has nothing ready"),
            Self::Closed => f.write_str("queue is closed and drained"),
        }
    }
}

impl Error for TryDequeueError {}

/// An [`OpQueueBuilder`](super::OpQueueBuilder) setting that cannot work,
/// reported by `build` before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `depth` was zero: no key could ever be queued.
    ZeroDepth,
    /// `width` was zero: no item could ever be queued.
    ZeroWidth,
    /// `window` was zero: leave the window unset for a queue that releases
    /// every key at once.
    ZeroWindow,
    /// A window was set outside a tokio runtime, so there is no timer to close
    /// windows with.
    NoRuntime,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroDepth => f.write_str("depth must be at least 1"),
            Self::ZeroWidth => f.write_str("width must be at least 1"),
            Self::ZeroWindow => f.write_str("window must be greater than zero"),
            Self::NoRuntime => f.write_str("a windowed queue needs a tokio runtime"),
        }
    }
}

impl Error for BuildError {}
