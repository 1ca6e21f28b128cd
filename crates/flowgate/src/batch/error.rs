//! Errors of the [`batch`](super) module.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Returned by [`Batcher::submit`](super::Batcher::submit) and friends when the
/// batcher is closed; the item is handed back.
///
/// A batcher is closed by [`Batcher::close`](super::Batcher::close), when its
/// worker stops (it was dropped, or its runtime shut down), or when every
/// handle was dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SubmitError<T>(pub T);

impl<T> SubmitError<T> {
    /// Returns the item that could not be submitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<String>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.close().await;
    /// let err = batcher.submit("row".to_owned()).await.unwrap_err();
    /// assert_eq!(err.into_inner(), "row"); // handed back, to retry elsewhere
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SubmitError").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("batcher is closed")
    }
}

impl<T> Error for SubmitError<T> {}

/// Returned by [`Batcher::try_submit`](super::Batcher::try_submit): the item
/// is handed back, with the reason it was refused.
#[derive(Clone, PartialEq, Eq)]
pub enum TrySubmitError<T> {
    /// The batcher holds `capacity` items that have not been handed to a
    /// flush yet. This is transient: room is made as batches start flushing.
    Full(T),
    /// The batcher is closed. This is permanent.
    Closed(T),
}

impl<T> TrySubmitError<T> {
    /// Returns the item that could not be submitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .max_items(1)
    ///     .capacity(1)
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let _first = batcher.try_submit(1).unwrap();
    /// assert_eq!(batcher.try_submit(2).unwrap_err().into_inner(), 2); // full
    /// batcher.close().await;
    /// assert_eq!(batcher.try_submit(3).unwrap_err().into_inner(), 3); // closed
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Closed(item) => item,
        }
    }

    /// Whether the batcher was full (transient) rather than closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .max_items(1)
    ///     .capacity(1)
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let first = batcher.try_submit(1).unwrap();
    /// let err = batcher.try_submit(2).unwrap_err();
    /// assert!(err.is_full() && !err.is_closed()); // transient: try again later
    /// first.await.unwrap(); // room again once the first batch is flushed
    /// assert!(batcher.try_submit(2).is_ok());
    /// # }
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the batcher was closed (permanent).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// batcher.close().await;
    /// let err = batcher.try_submit(1).unwrap_err();
    /// assert!(err.is_closed() && !err.is_full()); // permanent: do not retry here
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("batcher is full"),
            Self::Closed(_) => f.write_str("batcher is closed"),
        }
    }
}

impl<T> Error for TrySubmitError<T> {}

impl<T> From<SubmitError<T>> for TrySubmitError<T> {
    fn from(err: SubmitError<T>) -> Self {
        Self::Closed(err.0)
    }
}

/// Why an item's [`Flushed`](super::Flushed) resolved without an output.
///
/// Every item of a failed batch sees the same error: the flush function's
/// error is shared through an [`Arc`], so `E` need not be `Clone`.
#[non_exhaustive]
pub enum FlushError<E> {
    /// The flush function returned this error for the item's batch.
    ///
    /// Whether it is worth retrying depends on `E`; the batcher itself keeps
    /// running and later batches are unaffected.
    Failed(Arc<E>),
    /// The flush function panicked while flushing the item's batch; the
    /// message of the panic is kept. Only that batch fails.
    Panicked(Arc<str>),
    /// The flush function returned a number of outputs different from the
    /// number of items in the batch, so no item's output can be trusted.
    OutputMismatch {
        /// Items in the batch.
        expected: usize,
        /// Outputs returned.
        actual: usize,
    },
    /// The batcher stopped before the item could be flushed: its worker was
    /// dropped (for example because its runtime shut down). An orderly
    /// [`close`](super::Batcher::close) or dropping every handle flushes all
    /// items instead, so this is only seen on abrupt shutdown.
    Closed,
}

impl<E> FlushError<E> {
    /// Returns the flush function's error, if that is why the batch failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|items: Vec<u32>| async move {
    ///         if items.contains(&0) { Err("disk full") } else { Ok(()) }
    ///     })
    ///     .unwrap();
    /// let err = batcher.submit_and_wait(0).await.unwrap_err();
    /// assert_eq!(err.flush_error().unwrap().flush_error(), Some(&"disk full"));
    /// # }
    /// ```
    pub fn flush_error(&self) -> Option<&E> {
        match self {
            Self::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// Whether the flush function panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|items: Vec<u32>| async move {
    ///         assert!(!items.contains(&0), "zero is not allowed");
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .unwrap();
    /// let flushed = batcher.submit(0).await.unwrap();
    /// let err = flushed.await.unwrap_err();
    /// assert!(err.is_panic() && err.flush_error().is_none());
    /// // Only that batch failed: the batcher goes on.
    /// assert!(batcher.submit_and_wait(1).await.is_ok());
    /// # }
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, Self::Panicked(_))
    }

    /// Whether the batcher stopped before flushing the item.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (batcher, worker) = Batcher::builder()
    ///     .build_pair(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// let flushed = batcher.submit(1).await.unwrap();
    /// drop(worker); // abrupt shutdown: nothing will flush the item
    /// assert!(flushed.await.unwrap_err().is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }
}

impl<E> Clone for FlushError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(err) => Self::Failed(Arc::clone(err)),
            Self::Panicked(msg) => Self::Panicked(Arc::clone(msg)),
            Self::OutputMismatch { expected, actual } => Self::OutputMismatch {
                expected: *expected,
                actual: *actual,
            },
            Self::Closed => Self::Closed,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for FlushError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(err) => f.debug_tuple("Failed").field(err).finish(),
            Self::Panicked(msg) => f.debug_tuple("Panicked").field(msg).finish(),
            Self::OutputMismatch { expected, actual } => f
                .debug_struct("OutputMismatch")
                .field("expected", expected)
                .field("actual", actual)
                .finish(),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for FlushError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(err) => write!(f, "batch flush failed: {err}"),
            Self::Panicked(msg) => write!(f, "batch flush panicked: {msg}"),
            Self::OutputMismatch { expected, actual } => write!(
                f,
                "batch flush returned {actual} outputs for {expected} items"
            ),
            Self::Closed => f.write_str("batcher stopped before the item was flushed"),
        }
    }
}

impl<E: Error + 'static> Error for FlushError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Failed(err) => Some(&**err),
            _ => None,
        }
    }
}

impl<E: PartialEq> PartialEq for FlushError<E> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Failed(a), Self::Failed(b)) => a == b,
            (Self::Panicked(a), Self::Panicked(b)) => a == b,
            (
                Self::OutputMismatch { expected, actual },
                Self::OutputMismatch {
                    expected: e2,
                    actual: a2,
                },
            ) => expected == e2 && actual == a2,
            (Self::Closed, Self::Closed) => true,
            _ => false,
        }
    }
}

/// Returned by [`Batcher::submit_and_wait`](super::Batcher::submit_and_wait)
/// when the item's output did not arrive: either the item was never accepted
/// (and is handed back), or its batch failed.
#[derive(Clone, PartialEq)]
pub enum SubmitAndWaitError<T, E> {
    /// The batcher was closed before it accepted the item, which is handed
    /// back; nothing was flushed. This is permanent.
    Closed(T),
    /// The item was accepted, but its batch failed; see [`FlushError`] for
    /// which failures are worth retrying.
    Flush(FlushError<E>),
}

impl<T, E> SubmitAndWaitError<T, E> {
    /// Returns the item if the batcher never accepted it.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::Batcher;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|items: Vec<u32>| async move {
    ///         if items.contains(&0) { Err("rejected") } else { Ok(()) }
    ///     })
    ///     .unwrap();
    /// // Accepted, then its batch failed: the item went to the flush function.
    /// assert_eq!(batcher.submit_and_wait(0).await.unwrap_err().into_item(), None);
    /// batcher.close().await;
    /// // Never accepted: the item comes back.
    /// assert_eq!(batcher.submit_and_wait(7).await.unwrap_err().into_item(), Some(7));
    /// # }
    /// ```
    pub fn into_item(self) -> Option<T> {
        match self {
            Self::Closed(item) => Some(item),
            Self::Flush(_) => None,
        }
    }

    /// The batch's failure, if the item was accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::{Batcher, FlushError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|items: Vec<u32>| async move {
    ///         if items.contains(&0) { Err("rejected") } else { Ok(()) }
    ///     })
    ///     .unwrap();
    /// let err = batcher.submit_and_wait(0).await.unwrap_err();
    /// assert!(matches!(err.flush_error(), Some(FlushError::Failed(e)) if **e == "rejected"));
    /// batcher.close().await;
    /// assert!(batcher.submit_and_wait(1).await.unwrap_err().flush_error().is_none());
    /// # }
    /// ```
    pub fn flush_error(&self) -> Option<&FlushError<E>> {
        match self {
            Self::Closed(_) => None,
            Self::Flush(err) => Some(err),
        }
    }
}

impl<T, E> From<FlushError<E>> for SubmitAndWaitError<T, E> {
    fn from(err: FlushError<E>) -> Self {
        Self::Flush(err)
    }
}

impl<T, E> From<SubmitError<T>> for SubmitAndWaitError<T, E> {
    fn from(err: SubmitError<T>) -> Self {
        Self::Closed(err.0)
    }
}

impl<T, E: fmt::Debug> fmt::Debug for SubmitAndWaitError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.write_str("Closed(..)"),
            Self::Flush(err) => f.debug_tuple("Flush").field(err).finish(),
        }
    }
}

impl<T, E: fmt::Display> fmt::Display for SubmitAndWaitError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.write_str("batcher is closed"),
            Self::Flush(err) => err.fmt(f),
        }
    }
}

impl<T, E: Error + 'static> Error for SubmitAndWaitError<T, E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Closed(_) => None,
            Self::Flush(err) => err.source(),
        }
    }
}

/// A [`BatcherBuilder`](super::BatcherBuilder) setting that cannot work,
/// reported by `build` before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_items` was zero: no batch could ever hold an item.
    ZeroMaxItems,
    /// `max_delay` was zero: use [`Batcher::flush`](super::Batcher::flush)
    /// or a `max_items` of 1 to flush every item at once.
    ZeroMaxDelay,
    /// `max_bytes` was zero: no batch could ever hold an item.
    ZeroMaxBytes,
    /// `capacity` was below `max_items`, so a batch could never fill up and
    /// every batch would wait for `max_delay`.
    CapacityBelowMaxItems {
        /// The configured capacity.
        capacity: usize,
        /// The configured `max_items`.
        max_items: usize,
    },
    /// `flush_concurrency` was zero: nothing would ever be flushed.
    ZeroFlushConcurrency,
    /// [`max_open_keys`](super::KeyedBatcherBuilder::max_open_keys) was
    /// zero: no key could ever open a batch.
    ZeroMaxOpenKeys,
    /// [`build`](super::BatcherBuilder::build) was called outside a tokio
    /// runtime, so the worker could not be spawned; use
    /// [`build_pair`](super::BatcherBuilder::build_pair) to drive it yourself.
    NoRuntime,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMaxItems => f.write_str("max_items must be at least 1"),
            Self::ZeroMaxDelay => f.write_str("max_delay must be greater than zero"),
            Self::ZeroMaxBytes => f.write_str("max_bytes must be at least 1"),
            Self::CapacityBelowMaxItems {
                capacity,
                max_items,
            } => write!(
                f,
                "capacity ({capacity}) must be at least max_items ({max_items})"
            ),
            Self::ZeroFlushConcurrency => f.write_str("flush_concurrency must be at least 1"),
            Self::ZeroMaxOpenKeys => f.write_str("max_open_keys must be at least 1"),
            Self::NoRuntime => {
                f.write_str("no tokio runtime to spawn the batch worker on; use build_pair")
            }
        }
    }
}

impl Error for BuildError {}
