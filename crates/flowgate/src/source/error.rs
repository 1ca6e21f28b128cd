//! Errors of the [`source`](super) module.

use std::error::Error;
use std::fmt;

use crate::store::StoreError;

/// An error yielded by a [`CursorSource`](super::CursorSource) in place of an
/// item.
///
/// None of them loses an acknowledged item: the checkpoint only ever holds a
/// cursor whose items were all acknowledged, so a restart redoes whatever the
/// error interrupted.
#[non_exhaustive]
pub enum CursorError<E> {
    /// The fetch function failed. With [`OnFetchError::Stop`](super::OnFetchError::Stop)
    /// (the default) the stream ends after the items already fetched; with
    /// [`OnFetchError::Pause`](super::OnFetchError::Pause) the source pauses,
    /// and [`resume`](super::CursorControl::resume) fetches the same cursor
    /// again.
    Fetch(E),
    /// Loading or committing the checkpoint failed. The source stops: the
    /// stream ends after the items already fetched, and nothing more is
    /// committed.
    Checkpoint(StoreError),
    /// An item's [`CursorAck`](super::CursorAck) was dropped without being
    /// acknowledged, so the checkpoint cannot move past its page. The source
    /// stops as with [`stop`](super::CursorControl::stop); restart it to redo
    /// everything from the last checkpoint, that item included.
    Unacked,
}

impl<E> CursorError<E> {
    /// The fetch function's error, if that is what this is.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    ///
    /// let mut source = CursorSource::builder(0u64)
    ///     .build(|_| async { Err::<Page<u64, u64>, _>("db down") })
    ///     .unwrap();
    /// let err = source.next().await.unwrap().unwrap_err();
    /// assert_eq!(err.fetch_error(), Some(&"db down"));
    /// # }
    /// ```
    pub fn fetch_error(&self) -> Option<&E> {
        match self {
            Self::Fetch(err) => Some(err),
            _ => None,
        }
    }

    /// Whether this is a checkpoint store error.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::CursorError;
    /// use flowgate::StoreError;
    ///
    /// let err = CursorError::<()>::Checkpoint(StoreError::new("disk full"));
    /// assert!(err.is_checkpoint() && !err.is_unacked());
    /// ```
    pub fn is_checkpoint(&self) -> bool {
        matches!(self, Self::Checkpoint(_))
    }

    /// Whether an item was dropped without being acknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    /// use flowgate::source::CursorError;
    ///
    /// let mut source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let (_row, ack) = source.next().await.unwrap().unwrap();
    /// drop(ack); // never acknowledged: the checkpoint cannot pass it
    /// let mut error = None;
    /// while let Some(next) = source.next().await {
    ///     match next {
    ///         Ok((_, ack)) => ack.ack(),
    ///         Err(err) => error = Some(err),
    ///     }
    /// }
    /// assert!(error.is_some_and(|err: CursorError<_>| err.is_unacked()));
    /// # }
    /// ```
    pub fn is_unacked(&self) -> bool {
        matches!(self, Self::Unacked)
    }
}

impl<E: fmt::Debug> fmt::Debug for CursorError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch(err) => f.debug_tuple("Fetch").field(err).finish(),
            Self::Checkpoint(err) => f.debug_tuple("Checkpoint").field(err).finish(),
            Self::Unacked => f.write_str("Unacked"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CursorError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch(err) => write!(f, "fetching a page failed: {err}"),
            Self::Checkpoint(err) => write!(f, "checkpoint: {err}"),
            Self::Unacked => f.write_str(
                "an item was dropped without being acknowledged; the checkpoint cannot pass it",
            ),
        }
    }
}

impl<E: Error + 'static> Error for CursorError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Fetch(err) => Some(err),
            Self::Checkpoint(err) => Some(err),
            Self::Unacked => None,
        }
    }
}

/// A [`CursorSourceBuilder`](super::CursorSourceBuilder) setting that cannot
/// work, reported by `build` before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_pages_in_flight` was zero: no page could ever be fetched.
    ZeroPagesInFlight,
    /// [`build`](super::CursorSourceBuilder::build) was called outside a
    /// tokio runtime, so the driver could not be spawned; use
    /// [`build_pair`](super::CursorSourceBuilder::build_pair) to drive it
    /// yourself.
    NoRuntime,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroPagesInFlight => f.write_str("max_pages_in_flight must be at least 1"),
            Self::NoRuntime => {
                f.write_str("no tokio runtime to spawn the source driver on; use build_pair")
            }
        }
    }
}

impl Error for BuildError {}
