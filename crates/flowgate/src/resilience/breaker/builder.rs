//! [`CircuitBreakerBuilder`]: the settings of a
//! [`CircuitBreaker`], checked when it is built.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::CircuitBreaker;
use super::error::BuildError;
use super::metrics::BreakerMetrics;
use super::state::{Config, Inner, Phase, Shared, StateChange};
use super::window::{Outcomes, Window, WindowKind};
use crate::telemetry::Name;

pub(super) type Listener = Arc<dyn Fn(StateChange) + Send + Sync>;

/// Configures a [`CircuitBreaker`]; from [`CircuitBreaker::builder`].
///
/// | setting | default | rule |
/// |---|---|---|
/// | [`failure_ratio`](Self::failure_ratio) | 0.5 | in `(0, 1]` |
/// | [`window`](Self::window) | [`Window::last_calls(20)`](Window::last_calls) | at least 1 call, or a non-zero span with at least 1 bucket |
/// | [`min_calls`](Self::min_calls) | 10 | at least 1; at most a count window's size |
/// | [`consecutive_failures`](Self::consecutive_failures) | off | at least 1 |
/// | [`cooldown`](Self::cooldown) | 30 s | greater than zero; up to `Duration::MAX`, which never ends (the breaker stays open) |
/// | [`half_open_probes`](Self::half_open_probes) | 1 | at least 1 |
/// | [`name`](Self::name) | none: no metrics | any string |
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
    name: Name,
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
            name: Name::none(),
        }
    }
}

impl CircuitBreakerBuilder {
    /// Opens when at least this share of the calls in the window failed
    /// (once the window holds [`min_calls`](Self::min_calls) calls).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    /// use flowgate::resilience::Window;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().failure_ratio(0.5).window(Window::last_calls(4)).min_calls(4).build().unwrap();
    /// for ok in [true, false, true, false] {
    ///     let _ = breaker.run(async move { if ok { Ok(()) } else { Err(()) } }).await;
    /// }
    /// assert_eq!(breaker.state(), BreakerState::Open); // 2 of 4 failed
    /// # }
    /// ```
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.failure_ratio = Some(ratio);
        self
    }

    /// Turns the failure-ratio rule off, to open on
    /// [`consecutive_failures`](Self::consecutive_failures) only.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// # }
    /// ```
    pub fn without_failure_ratio(mut self) -> Self {
        self.failure_ratio = None;
        self
    }

    /// The calls the failure ratio is computed over: the last `n` calls or
    /// the calls of the last span of time. The window is cleared whenever
    /// the breaker closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    /// use flowgate::resilience::Window;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().window(Window::last(Duration::from_secs(10))).min_calls(1).failure_ratio(1.0).build().unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// # }
    /// ```
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// The fewest calls in the window before the ratio is judged, so that
    /// one failure out of one call does not open the breaker.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().min_calls(3).failure_ratio(1.0).build().unwrap();
    /// for _ in 0..2 {
    ///     let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// }
    /// assert_eq!(breaker.state(), BreakerState::Closed); // 2 calls say too little
    /// # }
    /// ```
    pub fn min_calls(mut self, min_calls: usize) -> Self {
        self.min_calls = min_calls;
        self
    }

    /// Also opens after `n` failures in a row, whatever the window says.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(2).build().unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// # }
    /// ```
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }

    /// How long the breaker stays open before admitting probes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).cooldown(Duration::from_secs(2)).build().unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// tokio::time::sleep(Duration::from_secs(2)).await;
    /// assert_eq!(breaker.state(), BreakerState::HalfOpen);
    /// # }
    /// ```
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How many probe calls a half-open breaker admits. It closes when all
    /// of them succeed, and opens again at the first failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).cooldown(Duration::from_secs(1)).half_open_probes(2).build().unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// let (a, b) = (breaker.try_acquire().unwrap(), breaker.try_acquire().unwrap());
    /// assert!(breaker.try_acquire().is_err()); // both probes in flight
    /// a.success();
    /// b.success();
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// # }
    /// ```
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
    /// logged with `tracing`: opening at `WARN`, closing at `INFO`, turning
    /// half-open at `DEBUG`.
    ///
    /// The open → half-open change happens when the first call (or
    /// [`state`](CircuitBreaker::state)) after the cooldown sees it, not on
    /// a timer, so it is reported then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    /// use std::sync::{Arc, Mutex};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let breaker = CircuitBreaker::builder()
    ///     .without_failure_ratio()
    ///     .consecutive_failures(1)
    ///     .on_state_change(move |change| log.lock().unwrap().push(change.to))
    ///     .build()
    ///     .unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// assert_eq!(*seen.lock().unwrap(), [BreakerState::Open]);
    /// # let _ = Duration::ZERO;
    /// # }
    /// ```
    pub fn on_state_change<F>(mut self, listener: F) -> Self
    where
        F: Fn(StateChange) + Send + Sync + 'static,
    {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Names the breaker: the `name` label of its series (feature
    /// `metrics`) and the `name` field of its events. Any string is
    /// accepted as given. Without a name the breaker records no metrics
    /// (its events say `name = ""`).
    ///
    /// Enables, registered by [`build`](Self::build) with the recorder
    /// current then (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_breaker_state` (gauge): **0 closed, 1 half-open, 2 open**;
    /// - `flowgate_breaker_transitions_total{state}`: transitions *into*
    ///   `closed`, `half_open`, `open`;
    /// - `flowgate_breaker_calls_permitted_total`: permits handed out;
    /// - `flowgate_breaker_calls_rejected_total{reason}`: rejected without
    ///   running, `open` or `half_open` (probes busy);
    /// - `flowgate_breaker_outcomes_total{outcome}`: outcomes reported,
    ///   `success` or `failure` (a permit dropped reports none).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder()
    ///     .name("payments")
    ///     .without_failure_ratio()
    ///     .consecutive_failures(1)
    ///     .build()
    ///     .unwrap();
    /// let _ = breaker.run(async { Err::<(), _>("down") }).await;
    /// // flowgate_breaker_state{name="payments"} is now 2, and a warning
    /// // "circuit breaker opened" was logged with name = "payments".
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }

    /// Builds the breaker, closed.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first broken rule (see the table above).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::CircuitBreaker;
    /// use flowgate::resilience::breaker::BuildError;
    ///
    /// assert!(CircuitBreaker::builder().build().is_ok());
    /// let err = CircuitBreaker::builder().min_calls(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroMinCalls);
    /// ```
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
        let outcomes = Outcomes::new(self.window, Instant::now());
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
                name: self.name.clone(),
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
                    metrics: BreakerMetrics::new(&self.name),
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
            .field("name", &self.name)
            .finish()
    }
}
