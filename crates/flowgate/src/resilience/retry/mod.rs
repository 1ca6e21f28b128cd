//! [`Retry`]: retry an async call with backoff, up to a number of attempts
//! and/or a time budget.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::backoff::{Backoff, Schedule};
use super::pause::{PauseGuard, PauseHandle};

mod error;
mod metrics;

pub use self::error::{RetryError, StopReason};
use self::metrics::RetryMetrics;
use crate::telemetry::{Counter, Name};

type Predicate<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;
type Hint<E> = Arc<dyn Fn(&E) -> Option<Duration> + Send + Sync>;
type Hook<E> = Arc<dyn Fn(&E, u32, Duration) + Send + Sync>;

/// A retry policy: which errors to retry, how long to wait between attempts
/// ([`Backoff`]), and when to give up (attempts, time budget).
///
/// Build it once and use it for any number of calls: around any async call
/// with [`run`](Self::run), as a stream stage with
/// [`par_map_retry`](crate::pipeline::PipelineExt::par_map_retry), or as
/// part of a [`Guard`](super::Guard). Cloning is cheap.
///
/// A call is made, and after each failure:
///
/// 1. if the [`when`](Self::when) predicate says the error is not retryable,
///    the loop stops ([`StopReason::NotRetryable`]);
/// 2. if [`max_attempts`](Self::max_attempts) attempts were made, it stops
///    ([`StopReason::AttemptsExhausted`]);
/// 3. the next delay is taken from the backoff schedule, raised to the
///    error's [`retry_after`](Self::retry_after) hint if there is one;
/// 4. if the retry would start more than [`budget`](Self::budget) after the
///    first attempt started, it stops now rather than sleep in vain
///    ([`StopReason::BudgetExhausted`]);
/// 5. the [`on_retry`](Self::on_retry) hook is called, the loop sleeps —
///    holding a [`PauseHandle`] paused if
///    [`pause_while_backing_off`](Self::pause_while_backing_off) was set —
///    and calls again.
///
/// The defaults: 3 attempts, no time budget, every error retryable.
///
/// All waiting is on tokio's clock, so tests under paused time see exact
/// delays.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use flowgate::resilience::{Backoff, Jitter, Retry};
///
/// #[derive(Debug)]
/// enum ApiError { Unavailable, NotFound }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::new(
///     Backoff::exponential(Duration::from_millis(100))
///         .max_delay(Duration::from_secs(5))
///         .jitter(Jitter::Full),
/// )
/// .max_attempts(5)
/// .budget(Duration::from_secs(30))
/// .when(|err: &ApiError| matches!(err, ApiError::Unavailable))
/// .on_retry(|err, attempt, delay| println!("attempt {attempt} failed ({err:?}), again in {delay:?}"));
///
/// let calls = AtomicU32::new(0);
/// let out = retry
///     .run(|| async {
///         match calls.fetch_add(1, Ordering::SeqCst) {
///             0 | 1 => Err(ApiError::Unavailable),
///             _ => Ok("body"),
///         }
///     })
///     .await;
/// assert_eq!(out.unwrap(), "body");
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
///
/// // A permanent error is not retried.
/// let err = retry.run(|| async { Err::<(), _>(ApiError::NotFound) }).await.unwrap_err();
/// assert_eq!(err.attempts(), 1);
/// # }
/// ```
///
/// With the error predicates of flowgate's own ends (as their tests do):
/// `Retry::new(backoff).when(SinkError::is_transient)` (flowgate-sql),
/// `Retry::new(backoff).when(SourceError::is_transient)` (flowgate-redis).
pub struct Retry<E> {
    backoff: Backoff,
    max_attempts: u32,
    budget: Option<Duration>,
    when: Option<Predicate<E>>,
    retry_after: Option<Hint<E>>,
    on_retry: Option<Hook<E>>,
    pause: Option<PauseHandle>,
    /// Seeds for the jitter of successive calls, when made reproducible.
    seeds: Option<Arc<AtomicU64>>,
    metrics: Arc<RetryMetrics>,
}

/// The state of one retry loop: its schedule, its attempts, its deadline.
pub(crate) struct Attempts {
    schedule: Schedule,
    made: u32,
    deadline: Option<Instant>,
    /// `flowgate_retry_attempts_total` of a named policy.
    counter: Counter,
}

impl Attempts {
    /// Counts an attempt about to start.
    pub(crate) fn start_attempt(&mut self) {
        self.made = self.made.saturating_add(1);
        self.counter.inc();
    }

    /// Attempts made so far.
    pub(crate) fn made(&self) -> u32 {
        self.made
    }
}

impl<E> Retry<E> {
    /// A policy waiting `backoff` between attempts, with the defaults: 3
    /// attempts in all, no time budget, every error retryable.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(10)));
    /// assert_eq!(retry.attempts_limit(), 3);
    /// assert_eq!(retry.run(|| async { Ok::<_, ()>(1) }).await, Ok(1));
    /// # }
    /// ```
    pub fn new(backoff: Backoff) -> Retry<E> {
        Retry {
            backoff,
            max_attempts: 3,
            budget: None,
            when: None,
            retry_after: None,
            on_retry: None,
            pause: None,
            seeds: None,
            metrics: Arc::new(RetryMetrics::unnamed()),
        }
    }

    /// Makes at most `attempts` attempts in all (the first call included).
    /// `u32::MAX` is as good as unlimited; bound the loop with a
    /// [`budget`](Self::budget) then.
    ///
    /// # Panics
    ///
    /// If `attempts` is zero: the call would never be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(5);
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.attempts(), 5);
    /// # }
    /// ```
    #[track_caller]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        assert!(
            attempts > 0,
            "Retry::max_attempts: attempts must be at least 1"
        );
        self.max_attempts = attempts;
        self
    }

    /// Gives up when the next attempt could not start within `budget` of the
    /// first attempt's start. The loop never sleeps past the budget: when the
    /// next delay would end beyond it, the call fails at once with
    /// [`StopReason::BudgetExhausted`]. An attempt already running is not
    /// cut short: bound attempts with a [`Guard`](super::Guard) timeout.
    ///
    /// A zero budget allows only retries without delay; a budget too long
    /// for an `Instant`, up to `Duration::MAX`, is no budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_secs(1))).max_attempts(100).budget(Duration::from_secs(3));
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.attempts(), 4); // retries at 1 s, 2 s and 3 s
    /// # }
    /// ```
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Retries only the errors for which `predicate` holds; the others end
    /// the loop at once ([`StopReason::NotRetryable`]). Compose with
    /// transient/permanent predicates such as
    /// `SinkError::is_transient` (flowgate-sql) or `SourceError::is_transient`
    /// (flowgate-redis): `.when(SinkError::is_transient)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).when(|e: &u16| *e >= 500);
    /// let err = retry.run(|| async { Err::<(), _>(404u16) }).await.unwrap_err();
    /// assert_eq!(err.attempts(), 1); // 404 is not retried
    /// assert!(!err.is_transient());
    /// # }
    /// ```
    pub fn when<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.when = Some(Arc::new(predicate));
        self
    }

    /// Waits at least as long as `hint` says after an error, when it returns
    /// `Some`: a server's `Retry-After`, or a circuit breaker's
    /// [`retry_after`](super::BreakerError::retry_after). The delay is the
    /// larger of the hint and the backoff's.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1)))
    ///     .max_attempts(2)
    ///     .retry_after(|_: &&str| Some(Duration::from_secs(2)));
    /// let start = Instant::now();
    /// let _ = retry.run(|| async { Err::<(), _>("slow down") }).await;
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    pub fn retry_after<H>(mut self, hint: H) -> Self
    where
        H: Fn(&E) -> Option<Duration> + Send + Sync + 'static,
    {
        self.retry_after = Some(Arc::new(hint));
        self
    }

    /// Calls `hook(error, attempt, delay)` before each retry: the error of
    /// attempt number `attempt` (from 1), and the delay before the next one.
    /// Use it to log or count retries. It runs on the retrying task; keep it
    /// short.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let seen = Arc::new(AtomicU32::new(0));
    /// let counter = Arc::clone(&seen);
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1)))
    ///     .on_retry(move |_: &&str, _attempt, _delay| { counter.fetch_add(1, Ordering::SeqCst); });
    /// let _ = retry.run(|| async { Err::<(), _>("down") }).await;
    /// assert_eq!(seen.load(Ordering::SeqCst), 2); // 3 attempts, 2 retries
    /// # }
    /// ```
    pub fn on_retry<H>(mut self, hook: H) -> Self
    where
        H: Fn(&E, u32, Duration) + Send + Sync + 'static,
    {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Holds `pause` paused while backing off, so a
    /// [`pausable`](crate::pipeline::PipelineExt::pausable) source pulls no
    /// new item until the retry is made (the seed's "pause the job on error,
    /// and retry after sleep"). With several calls backing off at once, the
    /// source stays paused until the last of them wakes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, PauseHandle, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pause = PauseHandle::new();
    /// let retry = Retry::new(Backoff::constant(Duration::from_secs(1))).max_attempts(2).pause_while_backing_off(&pause);
    /// let watcher = pause.clone();
    /// let run = retry.run(|| async { Err::<(), _>("down") });
    /// let check = async {
    ///     tokio::time::sleep(Duration::from_millis(500)).await;
    ///     assert!(watcher.is_paused()); // while backing off
    /// };
    /// let (out, ()) = tokio::join!(run, check);
    /// assert!(out.is_err());
    /// assert!(!pause.is_paused());
    /// # }
    /// ```
    pub fn pause_while_backing_off(mut self, pause: &PauseHandle) -> Self {
        self.pause = Some(pause.clone());
        self
    }

    /// Draws the jitter of successive calls from seeds derived from `seed`,
    /// so a run is reproducible (for tests). Without it, every call draws a
    /// random seed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Jitter, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::exponential(Duration::from_millis(10)).jitter(Jitter::Full)).jitter_seed(7);
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// assert_eq!(err.attempts(), 3);
    /// # }
    /// ```
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seeds = Some(Arc::new(AtomicU64::new(seed)));
        self
    }

    /// Names the policy: the `name` label of its series (feature `metrics`)
    /// and the `name` field of its events. Any string is accepted as given.
    /// The series are registered now, with the recorder current at this
    /// call, and shared by the policy's clones (every call, stage and
    /// [`Guard`](super::Guard) using them). Without a name, no metrics (the
    /// events say `name = ""`).
    ///
    /// Enables (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_retry_calls_total`: calls (retry loops) started;
    /// - `flowgate_retry_attempts_total`: attempts started, first ones
    ///   included;
    /// - `flowgate_retry_retries_total`: retries scheduled after a failed
    ///   attempt;
    /// - `flowgate_retry_gave_up_total{reason}`: calls that failed for good,
    ///   by [`StopReason`]: `not_retryable`, `attempts_exhausted`,
    ///   `budget_exhausted`;
    /// - `flowgate_retry_backoff_seconds` (histogram): each delay slept
    ///   before a retry.
    ///
    /// Giving up logs one `warn` event per call; each retry a `debug` one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(10)))
    ///     .max_attempts(3)
    ///     .name("fetch-user");
    /// let err = retry.run(|| async { Err::<(), _>("down") }).await.unwrap_err();
    /// // flowgate_retry_attempts_total{name="fetch-user"} is 3,
    /// // flowgate_retry_gave_up_total{name="fetch-user",reason="attempts_exhausted"} 1.
    /// assert_eq!(err.attempts(), 3);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.metrics = Arc::new(RetryMetrics::new(Name::new(name)));
        self
    }

    /// The backoff between attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// let backoff = Backoff::constant(Duration::from_millis(10));
    /// assert_eq!(Retry::<()>::new(backoff).backoff(), backoff);
    /// ```
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The most attempts made per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// let retry = Retry::<()>::new(Backoff::constant(Duration::ZERO)).max_attempts(7);
    /// assert_eq!(retry.attempts_limit(), 7);
    /// ```
    pub fn attempts_limit(&self) -> u32 {
        self.max_attempts
    }

    /// The time budget per call, if one was set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry};
    ///
    /// let retry = Retry::<()>::new(Backoff::constant(Duration::ZERO));
    /// assert_eq!(retry.time_budget(), None);
    /// assert_eq!(retry.budget(Duration::from_secs(9)).time_budget(), Some(Duration::from_secs(9)));
    /// ```
    pub fn time_budget(&self) -> Option<Duration> {
        self.budget
    }

    /// Calls `f` until it succeeds or the policy gives up; returns its
    /// output, or the last error with the number of attempts and the
    /// [`StopReason`].
    ///
    /// The first attempt starts at once; the time budget counts from it.
    ///
    /// # Errors
    ///
    /// [`RetryError`] when the policy gave up.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the attempt in flight (whatever that loses)
    /// or the backoff sleep, and releases the pause it held, if any. Nothing
    /// else is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry, StopReason};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::exponential(Duration::from_secs(1)))
    ///     .max_attempts(10)
    ///     .budget(Duration::from_secs(5));
    /// let start = Instant::now();
    /// let err = retry.run(|| async { Err::<(), _>("unavailable") }).await.unwrap_err();
    /// // Retries at 1 s and 3 s; the next would start at 7 s, past the budget.
    /// assert_eq!(err.attempts(), 3);
    /// assert_eq!(err.reason(), StopReason::BudgetExhausted);
    /// assert_eq!(start.elapsed(), Duration::from_secs(3));
    /// # }
    /// ```
    pub async fn run<F, Fut, T>(&self, mut f: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempts = self.start();
        loop {
            attempts.start_attempt();
            let err = match f().await {
                Ok(output) => return Ok(output),
                Err(err) => err,
            };
            match self.next_delay(&mut attempts, &err) {
                Ok(delay) => {
                    drop(err);
                    let _pause = self.hold_pause();
                    sleep(delay).await;
                }
                Err(reason) => {
                    return Err(RetryError::new(err, attempts.made(), reason));
                }
            }
        }
    }

    /// Starts the state of one retry loop; the budget counts from now.
    pub(crate) fn start(&self) -> Attempts {
        self.start_at(Instant::now())
    }

    /// Starts the state of a retry loop whose first attempt began at
    /// `first_start`.
    pub(crate) fn start_at(&self, first_start: Instant) -> Attempts {
        let schedule = match &self.seeds {
            // SplitMix64's increment: successive seeds far apart.
            Some(seeds) => self
                .backoff
                .schedule_seeded(seeds.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)),
            None => self.backoff.schedule(),
        };
        Attempts {
            schedule,
            made: 0,
            deadline: self.budget.and_then(|b| first_start.checked_add(b)),
            counter: self.metrics.call(),
        }
    }

    /// Decides what follows a failed attempt: the delay before the next one
    /// (having called the hook), or why to stop.
    pub(crate) fn next_delay(
        &self,
        attempts: &mut Attempts,
        err: &E,
    ) -> Result<Duration, StopReason> {
        let delay =
            self.next_delay_with(attempts, err, |e| self.is_retryable(e), |e| self.hint(e))?;
        self.notify(err, attempts.made(), delay);
        Ok(delay)
    }

    /// [`next_delay`](Self::next_delay) with the predicate and the hint
    /// given, for callers (the guard) whose error wraps `E`; the hook is
    /// theirs to call.
    ///
    /// Records the retry or the giving up (series and event).
    pub(crate) fn next_delay_with<X>(
        &self,
        attempts: &mut Attempts,
        err: &X,
        retryable: impl FnOnce(&X) -> bool,
        hint: impl FnOnce(&X) -> Option<Duration>,
    ) -> Result<Duration, StopReason> {
        let decision = self.decide(attempts, err, retryable, hint);
        self.record(attempts.made, decision, true);
        decision
    }

    /// [`next_delay_with`](Self::next_delay_with) for a caller that logs
    /// the giving up itself (the guard, with its own name): the series are
    /// recorded, the "gave up" event is not emitted.
    pub(crate) fn next_delay_quiet<X>(
        &self,
        attempts: &mut Attempts,
        err: &X,
        retryable: impl FnOnce(&X) -> bool,
        hint: impl FnOnce(&X) -> Option<Duration>,
    ) -> Result<Duration, StopReason> {
        let decision = self.decide(attempts, err, retryable, hint);
        self.record(attempts.made, decision, false);
        decision
    }

    /// Records a decision after attempt number `attempt` failed: the
    /// series, a `debug` event per retry, and (if `log`) one `warn` event
    /// when giving up.
    fn record(&self, attempt: u32, decision: Result<Duration, StopReason>, log: bool) {
        let name = self.metrics.name.as_str();
        match decision {
            Ok(delay) => {
                self.metrics.retry(delay);
                tracing::debug!(name, attempt, delay = ?delay, "retrying after a failed attempt");
            }
            Err(reason) => {
                let label = self.metrics.gave_up(reason);
                if log {
                    tracing::warn!(
                        name,
                        attempts = attempt,
                        reason = label,
                        "retry gave up: {reason}"
                    );
                }
            }
        }
    }

    /// The policy's name.
    pub(crate) fn metrics_name(&self) -> &Name {
        &self.metrics.name
    }

    fn decide<X>(
        &self,
        attempts: &mut Attempts,
        err: &X,
        retryable: impl FnOnce(&X) -> bool,
        hint: impl FnOnce(&X) -> Option<Duration>,
    ) -> Result<Duration, StopReason> {
        if !retryable(err) {
            return Err(StopReason::NotRetryable);
        }
        if attempts.made >= self.max_attempts {
            return Err(StopReason::AttemptsExhausted);
        }
        let mut delay = attempts.schedule.next().unwrap_or(Duration::ZERO);
        if let Some(hint) = hint(err) {
            delay = delay.max(hint);
        }
        if let Some(deadline) = attempts.deadline {
            let fits = Instant::now()
                .checked_add(delay)
                .is_some_and(|next| next <= deadline);
            if !fits {
                return Err(StopReason::BudgetExhausted);
            }
        }
        Ok(delay)
    }

    /// Whether the predicate lets `err` be retried.
    pub(crate) fn is_retryable(&self, err: &E) -> bool {
        self.when.as_ref().is_none_or(|when| when(err))
    }

    /// The error's retry-after hint.
    pub(crate) fn hint(&self, err: &E) -> Option<Duration> {
        self.retry_after.as_ref().and_then(|hint| hint(err))
    }

    /// Calls the retry hook.
    pub(crate) fn notify(&self, err: &E, attempt: u32, delay: Duration) {
        if let Some(hook) = &self.on_retry {
            hook(err, attempt, delay);
        }
    }

    /// The pause to hold while backing off, if any.
    pub(crate) fn hold_pause(&self) -> Option<PauseGuard> {
        self.pause.as_ref().map(PauseHandle::hold)
    }
}

impl<E> Clone for Retry<E> {
    fn clone(&self) -> Self {
        Retry {
            backoff: self.backoff,
            max_attempts: self.max_attempts,
            budget: self.budget,
            when: self.when.clone(),
            retry_after: self.retry_after.clone(),
            on_retry: self.on_retry.clone(),
            pause: self.pause.clone(),
            seeds: self.seeds.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<E> fmt::Debug for Retry<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("budget", &self.budget)
            .field("when", &self.when.is_some())
            .field("retry_after", &self.retry_after.is_some())
            .field("on_retry", &self.on_retry.is_some())
            .field("pause", &self.pause.is_some())
            .field("name", &self.metrics.name)
            .finish()
    }
}
