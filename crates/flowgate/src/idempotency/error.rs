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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore};
    ///
    /// let once = Idempotency::new(MemoryIdempotencyStore::new(10, Duration::from_secs(60)));
    /// let err = once.run(1u64, || async { Err::<(), _>("boom") }).await.unwrap_err();
    /// assert_eq!(err.failed(), Some(&"boom"));
    /// assert!(err.store_error().is_none());
    /// # }
    /// ```
    pub fn failed(&self) -> Option<&E> {
        match self {
            Self::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// The store error, if the store is why.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::idempotency::RunError;
    /// use flowgate::StoreError;
    ///
    /// let err = RunError::<(), ()>::Lookup(StoreError::transient("db busy"));
    /// assert!(err.store_error().is_some_and(StoreError::is_transient));
    /// assert_eq!(err.failed(), None);
    /// ```
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Lookup(err) | Self::Record { error: err, .. } => Some(err),
            Self::Failed(_) => None,
        }
    }

    /// Whether the effect ran (and succeeded or failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::idempotency::RunError;
    /// use flowgate::StoreError;
    ///
    /// let lookup = RunError::<(), ()>::Lookup(StoreError::new("no table"));
    /// assert!(!lookup.effect_ran());
    /// let record = RunError::<u32, ()>::Record { output: 1, error: StoreError::new("disk full") };
    /// assert!(record.effect_ran()); // the effect ran, but its key is not recorded
    /// ```
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
