//! [`CircuitBreaker`]: stop calling a failing service for a while, then probe
//! it before letting traffic back.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::error::{BreakerError, BuildError, Rejected};
use crate::sync::lock;

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls pass; outcomes are counted.
    Closed,
    /// Calls are rejected fast until the cooldown ends.
    Open,
    /// A set number of probe calls pass; their outcome decides whether the
    /// breaker closes or opens again. Other calls are rejected.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        })
    }
}

/// A transition of a [`CircuitBreaker`], passed to
/// [`on_state_change`](CircuitBreakerBuilder::on_state_change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// When it changed, on tokio's clock.
    pub at: Instant,
}

/// Which recent calls the failure ratio is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window(WindowKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WindowKind {
    Calls(usize),
    Time { span: Duration, buckets: u32 },
}

impl Window {
    /// The last `n` calls (a count-based sliding window).
    pub const fn last_calls(n: usize) -> Window {
        Window(WindowKind::Calls(n))
    }

    /// The calls of the last `span` (a time-based sliding window), counted in
    /// 10 buckets of `span / 10`: a call leaves the window between
    /// `span - span / 10` and `span` after it was recorded.
    pub const fn last(span: Duration) -> Window {
        Window::last_bucketed(span, 10)
    }

    /// The calls of the last `span`, counted in `buckets` buckets: more
    /// buckets track time more closely, at the cost of memory (one small
    /// counter pair each).
    pub const fn last_bucketed(span: Duration, buckets: u32) -> Window {
        Window(WindowKind::Time { span, buckets })
    }
}

/// Counters of a [`CircuitBreaker`], from [`CircuitBreaker::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// The state now.
    pub state: BreakerState,
    /// Calls admitted (permits handed out).
    pub admitted: u64,
    /// Calls rejected without running.
    pub rejected: u64,
    /// Successes recorded.
    pub successes: u64,
    /// Failures recorded.
    pub failures: u64,
    /// Times the breaker opened (tripped), from closed or half-open.
    pub trips: u64,
    /// Calls in the sliding window now (closed state).
    pub window_calls: usize,
    /// Failures in the sliding window now (closed state).
    pub window_failures: usize,
}

type Listener = Arc<dyn Fn(StateChange) + Send + Sync>;

/// Configures a [`CircuitBreaker`]; from [`CircuitBreaker::builder`].
///
/// | setting | default | rule |
/// |---|---|---|
/// | [`failure_ratio`](Self::failure_ratio) | 0.5 | in `(0, 1]` |
/// | [`window`](Self::window) | [`Window::last_calls(20)`](Window::last_calls) | at least 1 call, or a non-zero span with at least 1 bucket |
/// | [`min_calls`](Self::min_calls) | 10 | at least 1; at most a count window's size |
/// | [`consecutive_failures`](Self::consecutive_failures) | off | at least 1 |
/// | [`cooldown`](Self::cooldown) | 30 s | greater than zero |
/// | [`half_open_probes`](Self::half_open_probes) | 1 | at least 1 |
///
/// At least one of the two trip rules (ratio, consecutive failures) must be
/// on.
#[derive(Clone)]
pub struct CircuitBreakerBuilder {
    failure_ratio: Option<f64>,
    window: Window,
    min_calls: usize,
    consecutive_failures: Option<u32>,
    cooldown: Duration,
    probes: u32,
    listener: Option<Listener>,
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        CircuitBreakerBuilder {
            failure_ratio: Some(0.5),
            window: Window::last_calls(20),
            min_calls: 10,
            consecutive_failures: None,
            cooldown: Duration::from_secs(30),
            probes: 1,
            listener: None,
        }
    }
}

impl CircuitBreakerBuilder {
    /// Opens when at least this share of the calls in the window failed
    /// (once the window holds [`min_calls`](Self::min_calls) calls).
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.failure_ratio = Some(ratio);
        self
    }

    /// Turns the failure-ratio rule off, to open on
    /// [`consecutive_failures`](Self::consecutive_failures) only.
    pub fn without_failure_ratio(mut self) -> Self {
        self.failure_ratio = None;
        self
    }

    /// The calls the failure ratio is computed over: the last `n` calls or
    /// the calls of the last span of time. The window is cleared whenever
    /// the breaker closes.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// The fewest calls in the window before the ratio is judged, so that
    /// one failure out of one call does not open the breaker.
    pub fn min_calls(mut self, min_calls: usize) -> Self {
        self.min_calls = min_calls;
        self
    }

    /// Also opens after `n` failures in a row, whatever the window says.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }

    /// How long the breaker stays open before admitting probes.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How many probe calls a half-open breaker admits. It closes when all
    /// of them succeed, and opens again at the first failure.
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// Calls `listener` on every state change.
    ///
    /// It runs on the task whose call caused the change, after the breaker's
    /// lock is released, so it may use the breaker; keep it short. Changes
    /// made at the same moment on two threads may be reported in either
    /// order: each [`StateChange`] says where it came from. Changes are also
    /// logged with `tracing` at `INFO`.
    ///
    /// The open → half-open change happens when the first call (or
    /// [`state`](CircuitBreaker::state)) after the cooldown sees it, not on
    /// a timer, so it is reported then.
    pub fn on_state_change<F>(mut self, listener: F) -> Self
    where
        F: Fn(StateChange) + Send + Sync + 'static,
    {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Builds the breaker, closed.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first broken rule (see the table above).
    pub fn build(self) -> Result<CircuitBreaker, BuildError> {
        if let Some(ratio) = self.failure_ratio
            && !(ratio > 0.0 && ratio <= 1.0)
        {
            return Err(BuildError::FailureRatio(ratio));
        }
        match self.window.0 {
            WindowKind::Calls(0) => return Err(BuildError::ZeroWindowCalls),
            WindowKind::Calls(n) if self.min_calls > n && self.failure_ratio.is_some() => {
                return Err(BuildError::MinCallsAboveWindow {
                    min_calls: self.min_calls,
                    window: n,
                });
            }
            WindowKind::Time { span, .. } if span.is_zero() => {
                return Err(BuildError::ZeroWindowSpan);
            }
            WindowKind::Time { buckets: 0, .. } => return Err(BuildError::ZeroWindowBuckets),
            _ => {}
        }
        if self.min_calls == 0 {
            return Err(BuildError::ZeroMinCalls);
        }
        if self.consecutive_failures == Some(0) {
            return Err(BuildError::ZeroConsecutiveFailures);
        }
        if self.failure_ratio.is_none() && self.consecutive_failures.is_none() {
            return Err(BuildError::NoTripRule);
        }
        if self.cooldown.is_zero() {
            return Err(BuildError::ZeroCooldown);
        }
        if self.probes == 0 {
            return Err(BuildError::ZeroProbes);
        }
        let now = Instant::now();
        let outcomes = match self.window.0 {
            WindowKind::Calls(n) => Outcomes::Calls {
                ring: VecDeque::with_capacity(n.min(4096)),
                size: n,
                failures: 0,
            },
            WindowKind::Time { span, buckets } => Outcomes::Time {
                epoch: now,
                width: (span / buckets).max(Duration::from_nanos(1)),
                count: u64::from(buckets),
                buckets: VecDeque::with_capacity(buckets.min(1024) as usize),
                calls: 0,
                failures: 0,
            },
        };
        Ok(CircuitBreaker {
            shared: Arc::new(Shared {
                config: Config {
                    failure_ratio: self.failure_ratio,
                    min_calls: self.min_calls,
                    consecutive_failures: self.consecutive_failures,
                    cooldown: self.cooldown,
                    probes: self.probes,
                },
                listener: self.listener,
                inner: Mutex::new(Inner {
                    phase: Phase::Closed,
                    generation: 0,
                    outcomes,
                    consecutive: 0,
                    admitted: 0,
                    rejected: 0,
                    successes: 0,
                    failures: 0,
                    trips: 0,
                }),
            }),
        })
    }
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("failure_ratio", &self.failure_ratio)
            .field("window", &self.window)
            .field("min_calls", &self.min_calls)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("cooldown", &self.cooldown)
            .field("half_open_probes", &self.probes)
            .field("on_state_change", &self.listener.is_some())
            .finish()
    }
}

// ===== internals =====

struct Config {
    failure_ratio: Option<f64>,
    min_calls: usize,
    consecutive_failures: Option<u32>,
    cooldown: Duration,
    probes: u32,
}

struct Shared {
    config: Config,
    listener: Option<Listener>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// The outcomes in the sliding window (closed state only).
enum Outcomes {
    /// The last `size` outcomes, `true` for a failure.
    Calls {
        ring: VecDeque<bool>,
        size: usize,
        failures: usize,
    },
    /// Per-bucket counts of the last `count` buckets of `width`; a bucket is
    /// `(index since epoch, calls, failures)`.
    Time {
        epoch: Instant,
        width: Duration,
        count: u64,
        buckets: VecDeque<(u64, usize, usize)>,
        calls: usize,
        failures: usize,
    },
}

impl Outcomes {
    fn record(&mut self, now: Instant, failed: bool) {
        match self {
            Outcomes::Calls {
                ring,
                size,
                failures,
            } => {
                if ring.len() == *size && ring.pop_front() == Some(true) {
                    *failures -= 1;
                }
                ring.push_back(failed);
                *failures += usize::from(failed);
            }
            Outcomes::Time { .. } => {
                self.expire(now);
                let index = self.bucket_index(now);
                if let Outcomes::Time {
                    buckets,
                    calls,
                    failures,
                    ..
                } = self
                {
                    match buckets.back_mut() {
                        Some(bucket) if bucket.0 == index => {
                            bucket.1 += 1;
                            bucket.2 += usize::from(failed);
                        }
                        _ => buckets.push_back((index, 1, usize::from(failed))),
                    }
                    *calls += 1;
                    *failures += usize::from(failed);
                }
            }
        }
    }

    fn bucket_index(&self, now: Instant) -> u64 {
        match self {
            Outcomes::Time { epoch, width, .. } => {
                let since = now.saturating_duration_since(*epoch).as_nanos();
                u64::try_from(since / width.as_nanos()).unwrap_or(u64::MAX)
            }
            Outcomes::Calls { .. } => 0,
        }
    }

    /// Drops the buckets that left the time window.
    fn expire(&mut self, now: Instant) {
        let index = self.bucket_index(now);
        if let Outcomes::Time {
            count,
            buckets,
            calls,
            failures,
            ..
        } = self
        {
            // Buckets `index - count + 1 ..= index` are in the window.
            while let Some(&(oldest, c, f)) = buckets.front() {
                if oldest.saturating_add(*count) > index {
                    break;
                }
                buckets.pop_front();
                *calls -= c;
                *failures -= f;
            }
        }
    }

    /// `(calls, failures)` in the window now.
    fn counts(&mut self, now: Instant) -> (usize, usize) {
        self.expire(now);
        match self {
            Outcomes::Calls { ring, failures, .. } => (ring.len(), *failures),
            Outcomes::Time {
                calls, failures, ..
            } => (*calls, *failures),
        }
    }

    fn clear(&mut self) {
        match self {
            Outcomes::Calls { ring, failures, .. } => {
                ring.clear();
                *failures = 0;
            }
            Outcomes::Time {
                buckets,
                calls,
                failures,
                ..
            } => {
                buckets.clear();
                *calls = 0;
                *failures = 0;
            }
        }
    }
}

struct Inner {
    phase: Phase,
    /// Bumped on every transition. A permit's outcome counts only in the
    /// generation that admitted it: a call admitted while closed that ends
    /// after the breaker opened says nothing about the probes.
    generation: u64,
    outcomes: Outcomes,
    consecutive: u32,
    admitted: u64,
    rejected: u64,
    successes: u64,
    failures: u64,
    trips: u64,
}

impl Inner {
    fn transition(&mut self, to: Phase, now: Instant) -> StateChange {
        let from = self.phase.state();
        self.phase = to;
        self.generation = self.generation.wrapping_add(1);
        match to {
            Phase::Open { .. } => self.trips += 1,
            Phase::Closed => {
                self.outcomes.clear();
                self.consecutive = 0;
            }
            Phase::HalfOpen { .. } => {}
        }
        StateChange {
            from,
            to: to.state(),
            at: now,
        }
    }

    /// Open → half-open once the cooldown has passed.
    fn end_cooldown(&mut self, now: Instant) -> Option<StateChange> {
        match self.phase {
            Phase::Open { until } if now >= until => Some(self.transition(
                Phase::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                },
                now,
            )),
            _ => None,
        }
    }

    fn should_trip(&mut self, config: &Config, now: Instant) -> bool {
        if config
            .consecutive_failures
            .is_some_and(|n| self.consecutive >= n)
        {
            return true;
        }
        match config.failure_ratio {
            Some(ratio) => {
                let (calls, failures) = self.outcomes.counts(now);
                calls >= config.min_calls && failures as f64 >= ratio * calls as f64
            }
            None => false,
        }
    }
}

// ===== impl CircuitBreaker =====

/// A circuit breaker shared by every clone: closed, open, half-open.
///
/// While **closed**, calls pass and their outcomes are counted. It
/// **opens** when, with at least [`min_calls`](CircuitBreakerBuilder::min_calls)
/// calls in the sliding [`Window`] (the last `n` calls, or the last span of
/// time), the share of failures reaches the
/// [`failure_ratio`](CircuitBreakerBuilder::failure_ratio) — or, if set,
/// after [`consecutive_failures`](CircuitBreakerBuilder::consecutive_failures)
/// failures in a row. While **open**, every call is rejected at once with
/// [`Rejected::Open`] (or [`BreakerError::Open`]), carrying how long the
/// [`cooldown`](CircuitBreakerBuilder::cooldown) still runs. After it, the
/// breaker is **half-open**: it admits
/// [`half_open_probes`](CircuitBreakerBuilder::half_open_probes) calls and
/// rejects the rest with [`Rejected::HalfOpen`]. If every probe succeeds it
/// closes, with an empty window; the first probe to fail opens it again for
/// another cooldown.
///
/// A call takes a [`BreakerPermit`] and reports its outcome on it; the
/// [`call`](Self::call) and [`call_with`](Self::call_with) wrappers do both.
/// A permit dropped without an outcome (a cancelled call) counts as nothing,
/// and gives its probe slot back. An outcome reported after the breaker
/// changed state counts for nothing either (the generation that admitted it
/// is over).
///
/// ```text
///            failure ratio >= r over the window (after min_calls),
///            or n consecutive failures
///  ┌────────┐ ─────────────────────────────────> ┌──────┐
///  │ Closed │                                    │ Open │ <─┐ rejects fast:
///  └────────┘ <──────────┐                       └──────┘   │ Rejected::Open { retry_after }
///                        │ all probes succeed        │      │
///                        │                           │ cooldown elapsed (seen by the next call)
///                  ┌──────────┐                      │      │
///                  │ HalfOpen │ <────────────────────┘      │
///                  └──────────┘ ────────────────────────────┘
///              admits `probes` calls;   a probe fails
///              the rest: Rejected::HalfOpen
/// ```
///
/// Time is tokio's clock: paused-time tests see exact cooldowns and windows.
/// One short mutex section per permit and per outcome; no user code runs
/// under it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::resilience::{BreakerError, BreakerState, CircuitBreaker, Window};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let breaker = CircuitBreaker::builder()
///     .failure_ratio(0.5)
///     .window(Window::last_calls(10))
///     .min_calls(4)
///     .cooldown(Duration::from_secs(5))
///     .build()
///     .unwrap();
///
/// for _ in 0..4 {
///     let _ = breaker.call(async { Err::<(), _>("boom") }).await;
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
///
/// // Rejected fast, without running the call.
/// match breaker.call(async { Ok::<_, &str>(1) }).await {
///     Err(BreakerError::Open { retry_after }) => assert_eq!(retry_after, Duration::from_secs(5)),
///     other => panic!("{other:?}"),
/// }
///
/// tokio::time::sleep(Duration::from_secs(5)).await;
/// assert_eq!(breaker.state(), BreakerState::HalfOpen);
/// assert_eq!(breaker.call(async { Ok::<_, &str>(1) }).await.unwrap(), 1); // the probe
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl CircuitBreaker {
    /// Starts configuring a breaker; see [`CircuitBreakerBuilder`] for the
    /// settings, their defaults and their rules.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::default()
    }

    /// Admits a call if the breaker lets one through now, without waiting.
    ///
    /// Report the call's outcome on the permit
    /// ([`success`](BreakerPermit::success),
    /// [`failure`](BreakerPermit::failure)); dropping it reports nothing.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the breaker is open, or half-open with its probes
    /// busy.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{CircuitBreaker, Rejected};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder()
    ///     .without_failure_ratio()
    ///     .consecutive_failures(1)
    ///     .build()
    ///     .unwrap();
    /// let permit = breaker.try_acquire().unwrap();
    /// permit.failure();
    /// assert!(matches!(breaker.try_acquire(), Err(Rejected::Open { .. })));
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<BreakerPermit, Rejected> {
        let now = Instant::now();
        let probes = self.shared.config.probes;
        let (result, change) = {
            let mut inner = lock(&self.shared.inner);
            let change = inner.end_cooldown(now);
            let result = match &mut inner.phase {
                Phase::Closed => Ok(()),
                Phase::Open { until } => Err(Rejected::Open {
                    retry_after: until.saturating_duration_since(now),
                }),
                Phase::HalfOpen { admitted, .. } if *admitted < probes => {
                    *admitted += 1;
                    Ok(())
                }
                Phase::HalfOpen { .. } => Err(Rejected::HalfOpen),
            };
            let result = match result {
                Ok(()) => {
                    inner.admitted += 1;
                    Ok(inner.generation)
                }
                Err(rejected) => {
                    inner.rejected += 1;
                    Err(rejected)
                }
            };
            (result, change)
        };
        self.report(change);
        result.map(|generation| BreakerPermit {
            shared: Arc::clone(&self.shared),
            generation,
            reported: false,
        })
    }

    /// Runs `fut` if the breaker admits it, counting an `Err` as a failure
    /// and an `Ok` as a success.
    ///
    /// The future is not polled when the call is rejected; it is dropped.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Open`] or [`BreakerError::HalfOpen`] when rejected,
    /// [`BreakerError::Inner`] with the call's own error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `fut` (whatever that loses) and reports no
    /// outcome: a cancelled probe gives its slot back.
    pub async fn call<Fut, T, E>(&self, fut: Fut) -> Result<T, BreakerError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(|_| true, fut).await
    }

    /// Like [`call`](Self::call), counting an error as a failure only when
    /// `is_failure` says so; other errors count as successes (the service
    /// answered: a bad request, a missing key).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder()
    ///     .without_failure_ratio()
    ///     .consecutive_failures(2)
    ///     .build()
    ///     .unwrap();
    /// let not_found = |status: &u16| *status >= 500;
    /// for _ in 0..5 {
    ///     let _ = breaker.call_with(not_found, async { Err::<(), u16>(404) }).await;
    /// }
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// # }
    /// ```
    pub async fn call_with<P, Fut, T, E>(
        &self,
        is_failure: P,
        fut: Fut,
    ) -> Result<T, BreakerError<E>>
    where
        P: FnOnce(&E) -> bool,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire()?;
        match fut.await {
            Ok(output) => {
                permit.success();
                Ok(output)
            }
            Err(err) => {
                permit.record(is_failure(&err));
                Err(BreakerError::Inner(err))
            }
        }
    }

    /// The state now. An open breaker whose cooldown has passed turns
    /// half-open here (and reports it).
    pub fn state(&self) -> BreakerState {
        let now = Instant::now();
        let (state, change) = {
            let mut inner = lock(&self.shared.inner);
            let change = inner.end_cooldown(now);
            (inner.phase.state(), change)
        };
        self.report(change);
        state
    }

    /// Counters and the state now.
    pub fn stats(&self) -> BreakerStats {
        let now = Instant::now();
        let (stats, change) = {
            let mut inner = lock(&self.shared.inner);
            let change = inner.end_cooldown(now);
            let (window_calls, window_failures) = match inner.phase {
                Phase::Closed => inner.outcomes.counts(now),
                _ => (0, 0),
            };
            let stats = BreakerStats {
                state: inner.phase.state(),
                admitted: inner.admitted,
                rejected: inner.rejected,
                successes: inner.successes,
                failures: inner.failures,
                trips: inner.trips,
                window_calls,
                window_failures,
            };
            (stats, change)
        };
        self.report(change);
        stats
    }

    fn report(&self, change: Option<StateChange>) {
        if let Some(change) = change {
            tracing::info!(from = %change.from, to = %change.to, "circuit breaker state change");
            if let Some(listener) = &self.shared.listener {
                listener(change);
            }
        }
    }
}

impl Shared {
    /// Records a permit's outcome: `Some(true)` a failure, `Some(false)` a
    /// success, `None` no outcome (dropped).
    fn record(&self, generation: u64, failed: Option<bool>) -> Option<StateChange> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        match failed {
            Some(true) => inner.failures += 1,
            Some(false) => inner.successes += 1,
            None => {}
        }
        if inner.generation != generation {
            // Admitted in an earlier state: says nothing about this one.
            return None;
        }
        let cooldown_ends = crate::time::deadline(now, self.config.cooldown);
        match (inner.phase, failed) {
            (Phase::Closed, Some(failed)) => {
                inner.outcomes.record(now, failed);
                if failed {
                    inner.consecutive = inner.consecutive.saturating_add(1);
                    if inner.should_trip(&self.config, now) {
                        return Some(inner.transition(
                            Phase::Open {
                                until: cooldown_ends,
                            },
                            now,
                        ));
                    }
                } else {
                    inner.consecutive = 0;
                }
                None
            }
            (Phase::HalfOpen { .. }, Some(true)) => Some(inner.transition(
                Phase::Open {
                    until: cooldown_ends,
                },
                now,
            )),
            (
                Phase::HalfOpen {
                    admitted,
                    succeeded,
                },
                Some(false),
            ) => {
                let succeeded = succeeded + 1;
                if succeeded >= self.config.probes {
                    Some(inner.transition(Phase::Closed, now))
                } else {
                    inner.phase = Phase::HalfOpen {
                        admitted,
                        succeeded,
                    };
                    None
                }
            }
            (
                Phase::HalfOpen {
                    admitted,
                    succeeded,
                },
                None,
            ) => {
                // A cancelled probe: let another one through.
                inner.phase = Phase::HalfOpen {
                    admitted: admitted.saturating_sub(1),
                    succeeded,
                };
                None
            }
            // Closed with no outcome; Open cannot share a generation with a
            // permit (permits are handed out closed or half-open only).
            _ => None,
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = lock(&self.shared.inner);
        f.debug_struct("CircuitBreaker")
            .field("state", &inner.phase.state())
            .field("trips", &inner.trips)
            .finish_non_exhaustive()
    }
}

/// Admission of one call by a [`CircuitBreaker`]; report the call's outcome
/// on it. Dropping it without an outcome reports nothing (a cancelled call),
/// and frees a half-open breaker's probe slot.
#[must_use = "report the call's outcome with success() or failure()"]
pub struct BreakerPermit {
    shared: Arc<Shared>,
    generation: u64,
    reported: bool,
}

impl BreakerPermit {
    /// The call succeeded.
    pub fn success(self) {
        self.record(false);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(true);
    }

    /// The call failed if `failed`, succeeded otherwise.
    pub fn record(mut self, failed: bool) {
        self.reported = true;
        let change = self.shared.record(self.generation, Some(failed));
        CircuitBreaker {
            shared: Arc::clone(&self.shared),
        }
        .report(change);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.reported {
            // Never a state change: only outcomes change the state.
            let _ = self.shared.record(self.generation, None);
        }
    }
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}
