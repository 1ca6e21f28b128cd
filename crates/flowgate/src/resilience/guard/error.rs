//! Errors of the [`Guard`](super::Guard).

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::resilience::breaker::Rejected;

// ===== guard =====

/// Why one attempt of a [`Guard`](super::Guard) call failed. Every variant
/// but `Inner` is transient, and the guard retries them.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError<E> {
    /// The call ran and returned this error.
    Inner(E),
    /// The attempt did not finish within the guard's timeout.
    Timeout(Duration),
    /// The circuit breaker is open; it admits probes again in `retry_after`.
    Open {
        /// How long until the cooldown ends.
        retry_after: Duration,
    },
    /// The circuit breaker is half-open and its probes are busy.
    HalfOpen,
}

impl<E> CallError<E> {
    /// The call's own error, if it ran and failed.
    pub fn inner(&self) -> Option<&E> {
        match self {
            Self::Inner(err) => Some(err),
            _ => None,
        }
    }

    /// Returns the call's own error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(err) => Some(err),
            _ => None,
        }
    }

    /// Whether the attempt timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Whether the circuit breaker refused the attempt.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Open { .. } | Self::HalfOpen)
    }
}

impl<E> From<Rejected> for CallError<E> {
    fn from(rejected: Rejected) -> Self {
        match rejected {
            Rejected::Open { retry_after } => Self::Open { retry_after },
            Rejected::HalfOpen => Self::HalfOpen,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inner(err) => f.debug_tuple("Inner").field(err).finish(),
            Self::Timeout(after) => f.debug_tuple("Timeout").field(after).finish(),
            Self::Open { retry_after } => f
                .debug_struct("Open")
                .field("retry_after", retry_after)
                .finish(),
            Self::HalfOpen => f.write_str("HalfOpen"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inner(err) => err.fmt(f),
            Self::Timeout(after) => write!(f, "call timed out after {after:?}"),
            Self::Open { retry_after } => Rejected::Open {
                retry_after: *retry_after,
            }
            .fmt(f),
            Self::HalfOpen => Rejected::HalfOpen.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for CallError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Inner(err) => Some(err),
            _ => None,
        }
    }
}
