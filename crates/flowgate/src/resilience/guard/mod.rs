//! [`Guard`]: timeout, rate limit, concurrency limit, circuit breaker and
//! retry around one call, as one value.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, timeout};

use super::adaptive::{AdaptiveLimit, Outcome};
use super::breaker::CircuitBreaker;
use super::retry::Retry;

mod error;
mod metrics;

use self::error::Failure;
pub use self::error::GuardError;
use self::metrics::{GuardMetrics, kind};
use crate::limit::{InFlightLimit, RateLimiter};
use crate::telemetry::Name;

type Hook<E> = Arc<dyn Fn(&GuardError<E>, u32, Duration) + Send + Sync>;

#[derive(Clone)]
enum Concurrency {
    Fixed(InFlightLimit),
    Adaptive(AdaptiveLimit),
}

/// Resilience around one call, composed in a fixed, sensible order:
///
/// ```text
/// retry ( breaker ( rate limit ( concurrency limit ( timeout ( call ) ) ) ) )
/// ```
///
/// Each attempt:
///
/// 1. asks the [`CircuitBreaker`] first, so a rejected attempt costs no rate
///    cell and no room ([`GuardError::is_rejected`]);
/// 2. waits for the [`RateLimiter`];
/// 3. waits for room under the [`InFlightLimit`] or [`AdaptiveLimit`];
/// 4. runs the call under the timeout ([`GuardError::is_timeout`]).
///
/// Then the outcome is reported: a success to the breaker and the adaptive
/// limit; a timeout, or an error the [`Retry`] policy deems retryable
/// (transient), as a breaker failure and as back-pressure; an error it does
/// not retry as neither (the service answered). The retry loop retries
/// timeouts and rejections always, and the call's own errors as its
/// [`when`](Retry::when) predicate says; after a rejection by an open
/// breaker it waits at least the rest of the cooldown. Every part is
/// optional: set the ones you need.
///
/// # Errors
///
/// One error type, [`GuardError<E>`], whatever parts the guard holds: an
/// opaque struct that says what failed in the last attempt
/// ([`inner`](GuardError::inner) for the call's own error,
/// [`is_timeout`](GuardError::is_timeout),
/// [`is_rejected`](GuardError::is_rejected) by the breaker), how many
/// [`attempts`](GuardError::attempts) were made, and, only when a retry
/// policy is set, why it gave up ([`stop_reason`](GuardError::stop_reason)).
/// We chose one flat type over a type that depends on the configuration
/// (`RetryError<CallError<E>>` with a retry, `CallError<E>` without): the
/// type of `run` does not change when a part is added, and a guard without
/// retry does not claim to have "exhausted" attempts it never planned. The
/// rate limit and the concurrency limit wait rather than fail, so they add
/// no failure.
///
/// `Guard` is cheap to clone (its parts are shared handles), so one guard
/// can serve many tasks, and its breaker and limits are shared with
/// whatever else holds them. For tower users, the `tower` feature offers
/// the same parts as layers (see the [module documentation](super#tower)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::limit::Rate;
/// use flowgate::resilience::{Backoff, CircuitBreaker, Guard, Retry};
///
/// #[derive(Debug)]
/// struct Unavailable;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let breaker = CircuitBreaker::builder().build().unwrap();
/// let guard = Guard::new()
///     .timeout(Duration::from_millis(200))
///     .rate_limit(Rate::per_second(50))
///     .breaker(&breaker)
///     .retry(Retry::new(Backoff::exponential(Duration::from_millis(50))).max_attempts(4));
///
/// let mut calls = 0;
/// let body = guard
///     .run(|| {
///         calls += 1;
///         let attempt = calls;
///         async move {
///             match attempt {
///                 1 => Err(Unavailable),
///                 2 => { tokio::time::sleep(Duration::from_secs(1)).await; Ok("late") } // times out
///                 _ => Ok("body"),
///             }
///         }
///     })
///     .await;
/// assert_eq!(body.unwrap(), "body");
/// assert_eq!(breaker.stats().failures, 2);
/// # }
/// ```
pub struct Guard<E> {
    timeout: Option<Duration>,
    rate: Option<RateLimiter>,
    concurrency: Option<Concurrency>,
    breaker: Option<CircuitBreaker>,
    retry: Option<Retry<E>>,
    on_retry: Option<Hook<E>>,
    metrics: Arc<GuardMetrics>,
}

impl<E> Guard<E> {
    /// A guard with no parts: one attempt, no limits. Add the parts with
    /// the other methods.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::<()>::new();
    /// assert_eq!(guard.run(|| async { Ok(1) }).await, Ok(1));
    /// # }
    /// ```
    pub fn new() -> Guard<E> {
        Guard {
            timeout: None,
            rate: None,
            concurrency: None,
            breaker: None,
            retry: None,
            on_retry: None,
            metrics: Arc::new(GuardMetrics::new(Name::none())),
        }
    }

    /// Bounds each attempt to `timeout` ([`GuardError::is_timeout`], a transient
    /// error that is retried and counted as back-pressure). A timeout too
    /// long for an `Instant`, up to `Duration::MAX`, never fires.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero (every attempt would time out):
    /// `"Guard::timeout: timeout must be greater than zero"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new().timeout(Duration::from_millis(100));
    /// let err = guard.run(|| async {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     Ok::<_, ()>(())
    /// }).await.unwrap_err();
    /// assert!(err.is_timeout());
    /// # }
    /// ```
    #[track_caller]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "Guard::timeout: timeout must be greater than zero"
        );
        self.timeout = Some(timeout);
        self
    }

    /// Waits for `limiter` before each attempt: pass a
    /// [`Rate`](crate::limit::Rate) for a limiter of the guard's own, or
    /// a clone of a [`RateLimiter`] to share one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    /// use flowgate::limit::Rate;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new().rate_limit(Rate::per_second(10));
    /// let start = Instant::now();
    /// for _ in 0..3 {
    ///     guard.run(|| async { Ok::<_, ()>(()) }).await.unwrap();
    /// }
    /// assert_eq!(start.elapsed(), Duration::from_millis(200));
    /// # }
    /// ```
    pub fn rate_limit(mut self, limiter: impl Into<RateLimiter>) -> Self {
        self.rate = Some(limiter.into());
        self
    }

    /// Runs each attempt under `limit` (shared with its other users).
    /// Replaces an adaptive limit set before.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = InFlightLimit::new(2);
    /// let guard = Guard::new().in_flight(&limit);
    /// let seen = guard.run(|| async { Ok::<_, ()>(limit.in_flight()) }).await;
    /// assert_eq!(seen, Ok(1));
    /// # }
    /// ```
    pub fn in_flight(mut self, limit: &InFlightLimit) -> Self {
        self.concurrency = Some(Concurrency::Fixed(limit.clone()));
        self
    }

    /// Runs each attempt under the adaptive `limit`, reporting successes
    /// and back-pressure to it. Replaces a fixed limit set before.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{AdaptiveLimit, Guard};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(1..=8);
    /// let guard = Guard::new().adaptive(&limit);
    /// guard.run(|| async { Ok::<_, ()>(()) }).await.unwrap();
    /// assert_eq!(limit.in_flight(), 0);
    /// # }
    /// ```
    pub fn adaptive(mut self, limit: &AdaptiveLimit) -> Self {
        self.concurrency = Some(Concurrency::Adaptive(limit.clone()));
        self
    }

    /// Asks `breaker` before each attempt and reports the outcome to it.
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
    /// assert!(guard.run(|| async { Ok::<_, &str>(()) }).await.unwrap_err().is_rejected());
    /// # }
    /// ```
    pub fn breaker(mut self, breaker: &CircuitBreaker) -> Self {
        self.breaker = Some(breaker.clone());
        self
    }

    /// Retries failed attempts as `retry` says. Its predicate, hint and hook
    /// see the call's own errors; timeouts and breaker rejections are always
    /// retried (within its attempts and budget). Without a retry policy the
    /// guard makes one attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new().retry(Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(2));
    /// let err = guard.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.attempts(), 2);
    /// # }
    /// ```
    pub fn retry(mut self, retry: Retry<E>) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Calls `hook(error, attempt, delay)` before every retry, including
    /// those after a timeout or a rejection (the [`Retry`]'s own hook sees
    /// only the call's own errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let timeouts = Arc::new(AtomicU32::new(0));
    /// let seen = Arc::clone(&timeouts);
    /// let guard = Guard::new()
    ///     .timeout(Duration::from_millis(10))
    ///     .retry(Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(3))
    ///     .on_retry(move |err, _attempt, _delay| if err.is_timeout() { seen.fetch_add(1, Ordering::SeqCst); });
    /// let _ = guard.run(std::future::pending::<Result<(), ()>>).await;
    /// assert_eq!(timeouts.load(Ordering::SeqCst), 2);
    /// # }
    /// ```
    pub fn on_retry<H>(mut self, hook: H) -> Self
    where
        H: Fn(&GuardError<E>, u32, Duration) + Send + Sync + 'static,
    {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Names the guard: the `name` label of its series (feature `metrics`)
    /// and the `name` field of its events. Any string is accepted as given.
    /// The series are registered now, with the recorder current at this
    /// call, and shared by the guard's clones. Without a name, no metrics.
    ///
    /// Enables (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_guard_calls_total{outcome}`: calls of [`run`](Self::run)
    ///   that returned, `ok` or `error`;
    /// - `flowgate_guard_attempt_failures_total{reason}`: failed attempts,
    ///   `timeout`, `rejected` (by the breaker) or `error` (the call's own).
    ///
    /// The parts keep their own series: name the [`Retry`], the
    /// [`CircuitBreaker`] and the [`AdaptiveLimit`] too. A failed call logs
    /// one `warn` event, with the guard's name and its retry's (the retry's
    /// own "gave up" event is not repeated).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new().timeout(Duration::from_millis(100)).name("inventory");
    /// let err = guard.run(std::future::pending::<Result<(), ()>>).await.unwrap_err();
    /// // flowgate_guard_attempt_failures_total{name="inventory",reason="timeout"} is 1.
    /// assert!(err.is_timeout());
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.metrics = Arc::new(GuardMetrics::new(Name::new(name)));
        self
    }

    /// Calls `f` through every part of the guard, retrying as its policy
    /// says; see [`Guard`] for the order and what is reported where.
    ///
    /// # Errors
    ///
    /// A [`GuardError`]: what failed in the last attempt (the call's own
    /// error, a timeout or a rejection), the number of attempts, and why the
    /// retry policy gave up ([`stop_reason`](GuardError::stop_reason),
    /// `None` without a policy).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the attempt in flight (whatever that
    /// loses), gives back the room it held, reports nothing to the breaker
    /// or the adaptive limit (a half-open breaker's probe slot is freed),
    /// and releases any pause held while backing off. A rate-limit cell
    /// already taken stays spent.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Guard;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let guard = Guard::new()
    ///     .timeout(Duration::from_secs(1))
    ///     .retry(Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(3));
    /// let mut calls = 0;
    /// let out = guard.run(|| { calls += 1; let n = calls; async move { if n < 3 { Err("busy") } else { Ok(n) } } }).await;
    /// assert_eq!(out.unwrap(), 3);
    /// # }
    /// ```
    pub async fn run<F, Fut, T>(&self, mut f: F) -> Result<T, GuardError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let metrics = &*self.metrics;
        let Some(retry) = &self.retry else {
            // No policy: one attempt, and no reason to report.
            return match self.attempt(&mut f).await {
                Ok(output) => {
                    metrics.succeeded();
                    Ok(output)
                }
                Err(failure) => {
                    metrics.attempt_failed(&failure);
                    metrics.failed();
                    tracing::warn!(
                        name = metrics.name.as_str(),
                        failure = kind(&failure),
                        attempts = 1,
                        "guarded call failed"
                    );
                    Err(GuardError::new(failure, 1, None))
                }
            };
        };
        let mut attempts = retry.start();
        loop {
            attempts.start_attempt();
            let made = attempts.made();
            let failure = match self.attempt(&mut f).await {
                Ok(output) => {
                    metrics.succeeded();
                    return Ok(output);
                }
                Err(failure) => failure,
            };
            metrics.attempt_failed(&failure);
            let decision = retry.next_delay_quiet(
                &mut attempts,
                &failure,
                |failure| match failure {
                    Failure::Inner(inner) => retry.is_retryable(inner),
                    // Timeouts and rejections are transient.
                    _ => true,
                },
                |failure| match failure {
                    Failure::Inner(inner) => retry.hint(inner),
                    Failure::Rejected(rejected) => rejected.retry_after(),
                    Failure::Timeout(_) => None,
                },
            );
            match decision {
                Ok(delay) => {
                    if let Failure::Inner(inner) = &failure {
                        retry.notify(inner, made, delay);
                    }
                    if let Some(hook) = &self.on_retry {
                        hook(&GuardError::new(failure, made, None), made, delay);
                    }
                    let _pause = retry.hold_pause();
                    sleep(delay).await;
                }
                Err(reason) => {
                    metrics.failed();
                    tracing::warn!(
                        name = metrics.name.as_str(),
                        retry = retry.metrics_name().as_str(),
                        failure = kind(&failure),
                        attempts = made,
                        reason = %reason,
                        "guarded call failed"
                    );
                    return Err(GuardError::new(failure, made, Some(reason)));
                }
            }
        }
    }

    /// One attempt through the breaker, the limits and the timeout.
    async fn attempt<F, Fut, T>(&self, f: &mut F) -> Result<T, Failure<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let breaker = match &self.breaker {
            Some(breaker) => Some(breaker.try_acquire().map_err(Failure::Rejected)?),
            None => None,
        };
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        let (adaptive, _fixed) = match &self.concurrency {
            Some(Concurrency::Adaptive(limit)) => (Some(limit.acquire().await), None),
            Some(Concurrency::Fixed(limit)) => (None, Some(limit.acquire().await)),
            None => (None, None),
        };
        let result = match self.timeout {
            Some(limit) => match timeout(limit, f()).await {
                Ok(result) => result.map_err(Failure::Inner),
                Err(_) => Err(Failure::Timeout(limit)),
            },
            None => f().await.map_err(Failure::Inner),
        };
        // Success, back-pressure (timeouts and transient errors), or an
        // answer that says nothing about the service's health.
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(Failure::Inner(err)) => {
                if self.retry.as_ref().is_none_or(|r| r.is_retryable(err)) {
                    Outcome::Overload
                } else {
                    Outcome::Ignore
                }
            }
            Err(_) => Outcome::Overload,
        };
        if let Some(permit) = breaker {
            permit.record(outcome == Outcome::Overload);
        }
        if let Some(permit) = adaptive {
            permit.record(outcome);
        }
        result
    }
}

impl<E> Default for Guard<E> {
    fn default() -> Self {
        Guard::new()
    }
}

impl<E> Clone for Guard<E> {
    fn clone(&self) -> Self {
        Guard {
            timeout: self.timeout,
            rate: self.rate.clone(),
            concurrency: self.concurrency.clone(),
            breaker: self.breaker.clone(),
            retry: self.retry.clone(),
            on_retry: self.on_retry.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<E> fmt::Debug for Guard<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let concurrency = match &self.concurrency {
            Some(Concurrency::Fixed(limit)) => format!("in_flight({})", limit.max()),
            Some(Concurrency::Adaptive(limit)) => format!("adaptive({:?})", limit.range()),
            None => "none".to_owned(),
        };
        f.debug_struct("Guard")
            .field("timeout", &self.timeout)
            .field("rate", &self.rate.as_ref().map(RateLimiter::rate))
            .field("concurrency", &concurrency)
            .field("breaker", &self.breaker.is_some())
            .field("retry", &self.retry)
            .field("name", &self.metrics.name)
            .finish()
    }
}
