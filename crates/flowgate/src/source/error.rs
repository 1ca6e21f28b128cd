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
    pub fn fetch_error(&self) -> Option<&E> {
        match self {
            Self::Fetch(err) => Some(err),
            _ => None,
        }
    }

    /// Whether this is a checkpoint store error.
    pub fn is_checkpoint(&self) -> bool {
        matches!(self, Self::Checkpoint(_))
    }

    /// Whether an item was dropped without being acknowledged.
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
