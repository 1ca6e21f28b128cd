//! The error of a [`Guard`](super::Guard) call: [`GuardError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::resilience::breaker::Rejected;
use crate::resilience::retry::StopReason;

/// What failed in one attempt.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Failure<E> {
    /// The call ran and returned this error.
    Inner(E),
    /// The attempt did not finish within the guard's timeout.
    Timeout(Duration),
    /// The circuit breaker refused the attempt.
    Rejected(Rejected),
}

/// A [`Guard::run`](super::Guard::run) call failed: what failed in the last
/// attempt (the call's own error, a timeout, or a rejection by the circuit
/// breaker), how many attempts were made, and — when the guard has a retry
/// policy — why it gave up.
///
/// One type whatever the guard holds: a guard without a timeout never
/// reports one, a guard without a breaker is never rejected, and a guard
/// without a [`Retry`](crate::resilience::Retry) makes one attempt and
/// reports no [`stop_reason`](Self::stop_reason). The rate limit and the
/// concurrency limit never fail an attempt: they wait.
///
/// Transient or permanent ([`is_transient`](Self::is_transient)): timeouts
/// and rejections are transient; the call's own error is transient unless
/// the retry policy's [`when`](crate::resilience::Retry::when) predicate
/// refused it ([`StopReason::NotRetryable`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::resilience::{Backoff, Guard, Retry, StopReason};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let guard = Guard::new()
///     .timeout(Duration::from_millis(100))
///     .retry(Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(2));
/// let err = guard
///     .run(|| async {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Ok::<_, &str>(())
///     })
///     .await
///     .unwrap_err();
/// assert!(err.is_timeout());
/// assert_eq!(err.attempts(), 2);
/// assert_eq!(err.stop_reason(), Some(StopReason::AttemptsExhausted));
/// assert!(err.is_transient());
/// assert_eq!(err.into_inner(), None); // the call never failed by itself
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct GuardError<E> {
    failure: Failure<E>,
    attempts: u32,
    stop: Option<StopReason>,
}

impl<E> GuardError<E> {
    pub(super) fn new(failure: Failure<E>, attempts: u32, stop: Option<StopReason>) -> Self {
        GuardError {
            failure,
            attempts,
            stop,
        }
    }

    /// The call's own error, if the last attempt ran and failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let err = Guard::new().run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.inner(), Some(&"down"));
    /// # }
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match &self.failure {
            Failure::Inner(err) => Some(err),
            _ => None,
        }
    }

    /// Returns the call's own error, if the last attempt ran and failed
    /// (`None` after a timeout or a rejection).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let err = Guard::new().run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.into_inner(), Some("down"));
    /// # }
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self.failure {
            Failure::Inner(err) => Some(err),
            _ => None,
        }
    }

    /// Whether the last attempt timed out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new().timeout(Duration::from_millis(5));
    /// let err = guard.run(std::future::pending::<Result<(), ()>>).await.unwrap_err();
    /// assert!(err.is_timeout());
    /// assert_eq!(err.timeout(), Some(Duration::from_millis(5)));
    /// # }
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self.failure, Failure::Timeout(_))
    }

    /// The timeout the last attempt overran, if it timed out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new().timeout(Duration::from_millis(5));
    /// let err = guard.run(std::future::pending::<Result<(), ()>>).await.unwrap_err();
    /// assert_eq!(err.timeout(), Some(Duration::from_millis(5)));
    /// # }
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        match self.failure {
            Failure::Timeout(after) => Some(after),
            _ => None,
        }
    }

    /// Whether the circuit breaker refused the last attempt (it did not
    /// run).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{CircuitBreaker, Guard};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// let guard = Guard::new().breaker(&breaker);
    /// let _ = guard.run(|| async { Err::<(), _>("down") }).await;
    /// let err = guard.run(|| async { Ok::<_, &str>(()) }).await.unwrap_err();
    /// assert!(err.is_rejected());
    /// assert!(err.rejected().unwrap().retry_after().is_some());
    /// # }
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self.failure, Failure::Rejected(_))
    }

    /// The breaker's rejection of the last attempt, if it was rejected.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{CircuitBreaker, Guard, Rejected};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// let guard = Guard::new().breaker(&breaker);
    /// let _ = guard.run(|| async { Err::<(), _>("down") }).await;
    /// let err = guard.run(|| async { Ok::<_, &str>(()) }).await.unwrap_err();
    /// assert!(matches!(err.rejected(), Some(Rejected::Open { .. })));
    /// # }
    /// ```
    pub fn rejected(&self) -> Option<Rejected> {
        match self.failure {
            Failure::Rejected(rejected) => Some(rejected),
            _ => None,
        }
    }

    /// How many attempts were made (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Guard, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new().retry(Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(3));
    /// let err = guard.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.attempts(), 3);
    /// # }
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the retry policy gave up; `None` when the guard has no retry
    /// policy (it made its one attempt).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Guard, Retry, StopReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let once = Guard::new().run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(once.stop_reason(), None);
    ///
    /// let guard = Guard::new().retry(Retry::new(Backoff::constant(Duration::from_millis(1))).when(|_: &&str| false));
    /// let err = guard.run(|| async { Err::<(), _>("bad request") }).await.unwrap_err();
    /// assert_eq!(err.stop_reason(), Some(StopReason::NotRetryable));
    /// # }
    /// ```
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Whether trying again later may succeed: after a timeout or a
    /// rejection, or a call error that the retry policy would retry (every
    /// error, without a policy or a [`when`](crate::resilience::Retry::when)
    /// predicate). Permanent only when the policy refused the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Guard, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).when(|e: &&str| *e == "busy");
    /// let guard = Guard::new().retry(retry);
    /// assert!(guard.run(|| async { Err::<(), _>("busy") }).await.unwrap_err().is_transient());
    /// assert!(!guard.run(|| async { Err::<(), _>("not found") }).await.unwrap_err().is_transient());
    /// # }
    /// ```
    pub fn is_transient(&self) -> bool {
        self.stop != Some(StopReason::NotRetryable)
    }
}

impl<E: fmt::Debug> fmt::Debug for GuardError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("GuardError");
        match &self.failure {
            Failure::Inner(err) => d.field("inner", err),
            Failure::Timeout(after) => d.field("timeout", after),
            Failure::Rejected(rejected) => d.field("rejected", rejected),
        };
        d.field("attempts", &self.attempts)
            .field("stop_reason", &self.stop)
            .finish()
    }
}

impl<E: fmt::Display> fmt::Display for GuardError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reason) = self.stop {
            write!(
                f,
                "gave up after {} attempt{} ({reason}): ",
                self.attempts,
                if self.attempts == 1 { "" } else { "s" },
            )?;
        }
        match &self.failure {
            Failure::Inner(err) => err.fmt(f),
            Failure::Timeout(after) => write!(f, "call timed out after {after:?}"),
            Failure::Rejected(rejected) => rejected.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for GuardError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.failure {
            Failure::Inner(err) => Some(err),
            Failure::Rejected(rejected) => Some(rejected),
            Failure::Timeout(_) => None,
        }
    }
}
