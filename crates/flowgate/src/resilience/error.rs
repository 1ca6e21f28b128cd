//! Errors of the [`resilience`](super) module.

use std::error::Error;
use std::fmt;
use std::time::Duration;

// ===== retry =====

/// Why a retry loop gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The error was not retryable: the [`Retry::when`](super::Retry::when)
    /// predicate said no. Permanent.
    NotRetryable,
    /// Every attempt allowed by
    /// [`Retry::max_attempts`](super::Retry::max_attempts) failed.
    AttemptsExhausted,
    /// The next attempt could not start within
    /// [`Retry::budget`](super::Retry::budget).
    BudgetExhausted,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotRetryable => "error is not retryable",
            Self::AttemptsExhausted => "attempts exhausted",
            Self::BudgetExhausted => "time budget exhausted",
        })
    }
}

/// A retried call failed for good: the last error, how many attempts were
/// made, and why the loop stopped. From [`Retry::run`](super::Retry::run)
/// and [`Guard::run`](super::Guard::run).
///
/// Transient when the loop gave up on attempts or time (trying again later
/// may work), permanent when the error itself was not retryable.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::resilience::{Backoff, Retry, StopReason};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(3);
/// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
/// assert_eq!(err.attempts(), 3);
/// assert_eq!(err.reason(), StopReason::AttemptsExhausted);
/// assert!(err.is_transient());
/// assert_eq!(err.into_inner(), "down");
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RetryError<E> {
    last: E,
    attempts: u32,
    reason: StopReason,
}

impl<E> RetryError<E> {
    pub(crate) fn new(last: E, attempts: u32, reason: StopReason) -> Self {
        RetryError {
            last,
            attempts,
            reason,
        }
    }

    /// The error of the last attempt.
    pub fn last(&self) -> &E {
        &self.last
    }

    /// Returns the error of the last attempt.
    pub fn into_inner(self) -> E {
        self.last
    }

    /// How many attempts were made (at least 1).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the loop stopped.
    pub fn reason(&self) -> StopReason {
        self.reason
    }

    /// Whether trying again later may succeed: the loop ran out of attempts
    /// or time, rather than meeting an error that is not retryable.
    pub fn is_transient(&self) -> bool {
        self.reason != StopReason::NotRetryable
    }
}

impl<E: fmt::Debug> fmt::Debug for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryError")
            .field("last", &self.last)
            .field("attempts", &self.attempts)
            .field("reason", &self.reason)
            .finish()
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {} attempt{} ({}): {}",
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.reason,
            self.last
        )
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.last)
    }
}

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
    pub fn is_rejected(&self) -> bool {
        !matches!(self, Self::Inner(_))
    }

    /// How long until the breaker may admit a call, when it refused this one
    /// while open.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The call's own error, if it ran.
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

// ===== configuration =====

/// A configuration that cannot work, reported when a
/// [`CircuitBreaker`](super::CircuitBreaker) or an
/// [`AdaptiveLimit`](super::AdaptiveLimit) is built, before anything runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// The failure ratio was not in `(0, 1]`.
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
    /// The adaptive limit's minimum was zero: nothing could ever run.
    ZeroMinLimit,
    /// The adaptive limit's range was empty (`min > max`).
    EmptyLimitRange {
        /// The configured minimum.
        min: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The adaptive limit's maximum exceeded
    /// [`AdaptiveLimit::MAX`](super::AdaptiveLimit::MAX).
    LimitTooLarge(usize),
    /// The initial adaptive limit was outside `min..=max`.
    InitialOutOfRange(usize),
    /// The decrease ratio was not in `(0, 1)`.
    DecreaseRatio(f64),
    /// The EWMA weight was not in `(0, 1]`.
    EwmaAlpha(f64),
    /// The RTT deviation scale was negative or not finite.
    DeviationScale(f64),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FailureRatio(r) => write!(f, "failure ratio must be in (0, 1], got {r}"),
            Self::ZeroWindowCalls => f.write_str("window must count at least 1 call"),
            Self::ZeroWindowSpan => f.write_str("window span must be greater than zero"),
            Self::ZeroWindowBuckets => f.write_str("time window must have at least 1 bucket"),
            Self::ZeroMinCalls => f.write_str("min_calls must be at least 1"),
            Self::MinCallsAboveWindow { min_calls, window } => write!(
                f,
                "min_calls ({min_calls}) must be at most the window's {window} calls"
            ),
            Self::ZeroConsecutiveFailures => f.write_str("consecutive_failures must be at least 1"),
            Self::NoTripRule => {
                f.write_str("a breaker needs a failure ratio or consecutive failures to open")
            }
            Self::ZeroCooldown => f.write_str("cooldown must be greater than zero"),
            Self::ZeroProbes => f.write_str("half_open_probes must be at least 1"),
            Self::ZeroMinLimit => f.write_str("adaptive limit minimum must be at least 1"),
            Self::EmptyLimitRange { min, max } => {
                write!(f, "adaptive limit range {min}..={max} is empty")
            }
            Self::LimitTooLarge(max) => write!(
                f,
                "adaptive limit maximum {max} exceeds {}",
                super::AdaptiveLimit::MAX
            ),
            Self::InitialOutOfRange(n) => {
                write!(f, "initial adaptive limit {n} is outside the range")
            }
            Self::DecreaseRatio(r) => write!(f, "decrease ratio must be in (0, 1), got {r}"),
            Self::EwmaAlpha(a) => write!(f, "ewma alpha must be in (0, 1], got {a}"),
            Self::DeviationScale(s) => {
                write!(f, "rtt deviation scale must be finite and >= 0, got {s}")
            }
        }
    }
}

impl Error for BuildError {}
