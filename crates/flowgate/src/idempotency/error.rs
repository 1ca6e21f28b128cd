//! Errors of the [`idempotency`](super) module.

use std::error::Error;
use std::fmt;

use crate::store::StoreError;

/// Why [`Idempotency::run`](super::Idempotency::run) did not return an
/// outcome.
#[non_exhaustive]
pub enum RunError<O, E> {
    /// The effect ran and failed with this error. Its key was not recorded,
    /// so a redelivery runs it again.
    Failed(E),
    /// Looking the key up failed; the effect did not run.
    Lookup(StoreError),
    /// The effect ran and succeeded, but its key could not be recorded: a
    /// redelivery would run it again. The effect's output is handed back.
    Record {
        /// What the effect returned.
        output: O,
        /// Why the key could not be recorded.
        error: StoreError,
    },
}

impl<O, E> RunError<O, E> {
    /// The effect's own error, if that is why.
    pub fn failed(&self) -> Option<&E> {
        match self {
            Self::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// The store error, if the store is why.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Lookup(err) | Self::Record { error: err, .. } => Some(err),
            Self::Failed(_) => None,
        }
    }

    /// Whether the effect ran (and succeeded or failed).
    pub fn effect_ran(&self) -> bool {
        !matches!(self, Self::Lookup(_))
    }
}

impl<O, E: fmt::Debug> fmt::Debug for RunError<O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(err) => f.debug_tuple("Failed").field(err).finish(),
            Self::Lookup(err) => f.debug_tuple("Lookup").field(err).finish(),
            Self::Record { error, .. } => f
                .debug_struct("Record")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

impl<O, E: fmt::Display> fmt::Display for RunError<O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(err) => write!(f, "effect failed: {err}"),
            Self::Lookup(err) => write!(f, "looking up the idempotency key failed: {err}"),
            Self::Record { error, .. } => {
                write!(f, "effect succeeded but its key was not recorded: {error}")
            }
        }
    }
}

impl<O, E: Error + 'static> Error for RunError<O, E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Failed(err) => Some(err),
            Self::Lookup(err) | Self::Record { error: err, .. } => Some(err),
        }
    }
}
