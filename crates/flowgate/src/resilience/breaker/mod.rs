//! [`CircuitBreaker`]: stop calling a failing service for a while, then probe
//! it before letting traffic back.

//!
//! The breaker is one shared value ([`CircuitBreaker`]), configured by a
//! [`CircuitBreakerBuilder`] whose [`build`](CircuitBreakerBuilder::build)
//! checks every rule ([`BuildError`]). A call is admitted with a
//! [`BreakerPermit`] or refused with [`Rejected`]; the wrappers
//! [`run`](CircuitBreaker::run) and [`run_with`](CircuitBreaker::run_with)
//! return a [`BreakerError`]. The sliding [`Window`] counts calls or time.

mod builder;
mod error;
mod metrics;
mod state;
mod window;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use self::state::{Changed, Phase, Shared};
use crate::sync::lock;

pub use self::builder::CircuitBreakerBuilder;
pub use self::error::{BreakerError, BuildError, Rejected};
pub use self::state::{BreakerState, BreakerStats, StateChange};
pub use self::window::Window;

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
/// [`run`](Self::run) and [`run_with`](Self::run_with) wrappers do both.
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
///     let _ = breaker.run(async { Err::<(), _>("boom") }).await;
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
///
/// // Rejected fast, without running the call.
/// match breaker.run(async { Ok::<_, &str>(1) }).await {
///     Err(BreakerError::Open { retry_after }) => assert_eq!(retry_after, Duration::from_secs(5)),
///     other => panic!("{other:?}"),
/// }
///
/// tokio::time::sleep(Duration::from_secs(5)).await;
/// assert_eq!(breaker.state(), BreakerState::HalfOpen);
/// assert_eq!(breaker.run(async { Ok::<_, &str>(1) }).await.unwrap(), 1); // the probe
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
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder().build().unwrap();
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// ```
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
                    inner.metrics.permitted();
                    Ok(inner.generation)
                }
                Err(rejected) => {
                    inner.rejected += 1;
                    inner.metrics.rejected(&rejected);
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
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerError, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// assert_eq!(breaker.run(async { Err::<(), _>("down") }).await, Err(BreakerError::Inner("down")));
    /// assert!(breaker.run(async { Ok::<_, &str>(1) }).await.unwrap_err().is_rejected());
    /// # }
    /// ```
    pub async fn run<Fut, T, E>(&self, fut: Fut) -> Result<T, BreakerError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_with(|_| true, fut).await
    }

    /// Like [`run`](Self::run), counting an error as a failure only when
    /// `is_failure` says so; other errors count as successes (the service
    /// answered: a bad request, a missing key).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Self::run).
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
    ///     let _ = breaker.run_with(not_found, async { Err::<(), u16>(404) }).await;
    /// }
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// # }
    /// ```
    pub async fn run_with<P, Fut, T, E>(
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
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{BreakerState, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// breaker.try_acquire().unwrap().failure();
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// # }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// breaker.try_acquire().unwrap().failure();
    /// let _ = breaker.try_acquire();
    /// let stats = breaker.stats();
    /// assert_eq!((stats.admitted, stats.rejected, stats.failures, stats.trips), (1, 1, 1, 1));
    /// # }
    /// ```
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

    /// Logs a transition (outside the lock) and calls the listener.
    fn report(&self, changed: Option<Changed>) {
        let Some(Changed {
            change,
            window: (calls, failures),
            consecutive,
        }) = changed
        else {
            return;
        };
        let name = self.shared.name.as_str();
        match change.to {
            BreakerState::Open if change.from == BreakerState::Closed => tracing::warn!(
                name,
                from = %change.from,
                window_calls = calls,
                window_failures = failures,
                failure_ratio = if calls == 0 { 0.0 } else { failures as f64 / calls as f64 },
                consecutive_failures = consecutive,
                cooldown = ?self.shared.config.cooldown,
                "circuit breaker opened"
            ),
            BreakerState::Open => tracing::warn!(
                name,
                from = %change.from,
                cooldown = ?self.shared.config.cooldown,
                "circuit breaker opened again: a half-open probe failed"
            ),
            BreakerState::HalfOpen => {
                tracing::debug!(name, from = %change.from, "circuit breaker half-open")
            }
            BreakerState::Closed => {
                tracing::info!(name, from = %change.from, "circuit breaker closed")
            }
        }
        if let Some(listener) = &self.shared.listener {
            listener(change);
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
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// breaker.try_acquire().unwrap().success();
    /// assert_eq!(breaker.stats().successes, 1);
    /// # }
    /// ```
    pub fn success(self) {
        self.record(false);
    }

    /// The call failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// breaker.try_acquire().unwrap().failure();
    /// assert_eq!(breaker.stats().failures, 1);
    /// # }
    /// ```
    pub fn failure(self) {
        self.record(true);
    }

    /// The call failed if `failed`, succeeded otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().without_failure_ratio().consecutive_failures(1).build().unwrap();
    /// let status = 503;
    /// breaker.try_acquire().unwrap().record(status >= 500);
    /// assert_eq!(breaker.stats().failures, 1);
    /// # }
    /// ```
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
