//! Errors of the [`CircuitBreaker`](super::CircuitBreaker).

use std::error::Error;
use std::fmt;
use std::time::Duration;

// ===== circuit breaker =====

/// A [`CircuitBreaker`](super::CircuitBreaker) refused a call without
/// running it. Transient: the breaker lets calls through again after its
/// cooldown, if its probes succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejected {
    /// The breaker is open; it admits probes again in `retry_after`.
    Open {
        /// How long until the cooldown ends.
        retry_after: Duration,
    },
    /// The breaker is half-open and all of its probes are in flight; the
    /// outcome of those probes decides whether it closes.
    HalfOpen,
}

impl Rejected {
    /// How long until the breaker may admit a call: the rest of the cooldown
    /// when open, `None` when half-open (it depends on the probes).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{CircuitBreaker, Rejected};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// breaker.try_acquire().unwrap().failure();
    /// let rejected = breaker.try_acquire().unwrap_err();
    /// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(30)));
    /// assert_eq!(Rejected::HalfOpen.retry_after(), None);
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open { retry_after } => Some(*retry_after),
            Self::HalfOpen => None,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { retry_after } => {
                write!(f, "circuit breaker is open, retry after {retry_after:?}")
            }
            Self::HalfOpen => f.write_str("circuit breaker is half-open and its probes are busy"),
        }
    }
}

impl Error for Rejected {}

/// The error of a call through a
/// [`CircuitBreaker`](super::CircuitBreaker): either the breaker refused it
/// (transient, see [`Rejected`]) or the call ran and failed with `E`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerError<E> {
    /// Refused: the breaker is open; it admits probes again in `retry_after`.
    Open {
        /// How long until the cooldown ends.
        retry_after: Duration,
    },
    /// Refused: the breaker is half-open and its probes are busy.
    HalfOpen,
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> BreakerError<E> {
    /// Whether the breaker refused the call (it did not run).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// assert!(!breaker.run(async { Err::<(), _>("down") }).await.unwrap_err().is_rejected());
    /// assert!(breaker.run(async { Err::<(), _>("down") }).await.unwrap_err().is_rejected());
    /// # }
    /// ```
    pub fn is_rejected(&self) -> bool {
        !matches!(self, Self::Inner(_))
    }

    /// How long until the breaker may admit a call, when it refused this one
    /// while open.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// let err = breaker.run(async { Ok::<_, &str>(()) }).await.unwrap_err();
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The call's own error, if it ran.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// assert_eq!(breaker.run(async { Err::<(), _>("down") }).await.unwrap_err().into_inner(), Some("down"));
    /// assert_eq!(breaker.run(async { Err::<(), _>("down") }).await.unwrap_err().into_inner(), None);
    /// # }
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(err) => Some(err),
            _ => None,
        }
    }
}

impl<E> From<Rejected> for BreakerError<E> {
    fn from(rejected: Rejected) -> Self {
        match rejected {
            Rejected::Open { retry_after } => Self::Open { retry_after },
            Rejected::HalfOpen => Self::HalfOpen,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { retry_after } => f
                .debug_struct("Open")
                .field("retry_after", retry_after)
                .finish(),
            Self::HalfOpen => f.write_str("HalfOpen"),
            Self::Inner(err) => f.debug_tuple("Inner").field(err).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { retry_after } => Rejected::Open {
                retry_after: *retry_after,
            }
            .fmt(f),
            Self::HalfOpen => Rejected::HalfOpen.fmt(f),
            Self::Inner(err) => err.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for BreakerError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Inner(err) => Some(err),
            _ => None,
        }
    }
}

// ===== guard =====

// ===== configuration =====

/// A [`CircuitBreakerBuilder`](super::CircuitBreakerBuilder) configuration
/// that cannot work, reported by
/// [`build`](super::CircuitBreakerBuilder::build) before anything runs. Each
/// variant names the broken rule.
///
/// # Examples
///
/// ```
/// use flowgate::resilience::CircuitBreaker;
/// use flowgate::resilience::breaker::BuildError;
///
/// let err = CircuitBreaker::builder().failure_ratio(f64::NAN).build().unwrap_err();
/// assert!(matches!(err, BuildError::FailureRatio(r) if r.is_nan()));
/// assert_eq!(err.to_string(), "failure_ratio must be in (0, 1], got NaN");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// The failure ratio was not in `(0, 1]` (NaN included).
    FailureRatio(f64),
    /// The count window was empty.
    ZeroWindowCalls,
    /// The time window was zero.
    ZeroWindowSpan,
    /// The time window had no buckets.
    ZeroWindowBuckets,
    /// `min_calls` was zero.
    ZeroMinCalls,
    /// `min_calls` exceeded a count window, so the ratio could never be
    /// judged.
    MinCallsAboveWindow {
        /// The configured `min_calls`.
        min_calls: usize,
        /// The size of the count window.
        window: usize,
    },
    /// `consecutive_failures` was zero.
    ZeroConsecutiveFailures,
    /// Both trip rules were off (no failure ratio, no consecutive
    /// failures): the breaker could never open.
    NoTripRule,
    /// The cooldown was zero: an open breaker would admit probes at once.
    ZeroCooldown,
    /// `half_open_probes` was zero: a half-open breaker could never close.
    ZeroProbes,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FailureRatio(r) => write!(f, "failure_ratio must be in (0, 1], got {r}"),
            Self::ZeroWindowCalls => f.write_str("window must count at least 1 call"),
            Self::ZeroWindowSpan => f.write_str("window span must be greater than zero"),
            Self::ZeroWindowBuckets => f.write_str("window must have at least 1 bucket"),
            Self::ZeroMinCalls => f.write_str("min_calls must be at least 1"),
            Self::MinCallsAboveWindow { min_calls, window } => write!(
                f,
                "min_calls ({min_calls}) must be at most the window's {window} calls"
            ),
            Self::ZeroConsecutiveFailures => f.write_str("consecutive_failures must be at least 1"),
            Self::NoTripRule => {
                f.write_str("a breaker needs a failure_ratio or consecutive_failures to open")
            }
            Self::ZeroCooldown => f.write_str("cooldown must be greater than zero"),
            Self::ZeroProbes => f.write_str("half_open_probes must be at least 1"),
        }
    }
}

impl Error for BuildError {}
