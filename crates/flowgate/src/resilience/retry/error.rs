//! Errors of [`Retry`](super::Retry).

use std::error::Error;
use std::fmt;

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
/// and the [`par_map_retry`](crate::pipeline::PipelineExt::par_map_retry) stage (in a [`DeadLetter`](crate::resilience::DeadLetter)).
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use flowgate::resilience::StopReason;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(*err.last(), "down");
    /// assert_eq!(err.reason(), StopReason::AttemptsExhausted);
    /// # }
    /// ```
    pub fn last(&self) -> &E {
        &self.last
    }

    /// Returns the error of the last attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use flowgate::resilience::StopReason;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.reason(), StopReason::AttemptsExhausted);
    /// assert_eq!(err.into_inner(), "down");
    /// # }
    /// ```
    pub fn into_inner(self) -> E {
        self.last
    }

    /// How many attempts were made (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use flowgate::resilience::StopReason;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.attempts(), 2);
    /// assert_eq!(err.reason(), StopReason::AttemptsExhausted);
    /// # }
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the loop stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use flowgate::resilience::StopReason;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.reason(), StopReason::AttemptsExhausted);
    /// # }
    /// ```
    pub fn reason(&self) -> StopReason {
        self.reason
    }

    /// Whether trying again later may succeed: the loop ran out of attempts
    /// or time, rather than meeting an error that is not retryable.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use flowgate::resilience::StopReason;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.reason(), StopReason::AttemptsExhausted);
    /// assert!(err.is_transient());
    /// # }
    /// ```
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
