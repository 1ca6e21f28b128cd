//! The state machine of a [`CircuitBreaker`](super::CircuitBreaker)(super::CircuitBreaker): its
//! states, their transitions, and the counters.

use std::fmt;
use std::sync::Mutex;

use super::builder::Listener;
use super::metrics::BreakerMetrics;
use std::time::Duration;

use tokio::time::Instant;

use super::window::Outcomes;
use crate::sync::lock;
use crate::telemetry::Name;

/// The state of a [`CircuitBreaker`](super::CircuitBreaker).
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

/// A transition of a [`CircuitBreaker`](super::CircuitBreaker), passed to
/// [`on_state_change`](super::CircuitBreakerBuilder::on_state_change).
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

/// Counters of a [`CircuitBreaker`](super::CircuitBreaker), from [`CircuitBreaker::stats`](super::CircuitBreaker::stats).
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

pub(super) struct Config {
    pub(super) failure_ratio: Option<f64>,
    pub(super) min_calls: usize,
    pub(super) consecutive_failures: Option<u32>,
    pub(super) cooldown: Duration,
    pub(super) probes: u32,
}

/// A transition, with what the breaker saw when it made it (for the
/// event that reports it).
pub(super) struct Changed {
    pub(super) change: StateChange,
    /// Calls and failures in the window when it opened from closed.
    pub(super) window: (usize, usize),
    /// Consecutive failures when it opened.
    pub(super) consecutive: u32,
}

pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) listener: Option<Listener>,
    pub(super) name: Name,
    pub(super) inner: Mutex<Inner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

impl Phase {
    pub(super) fn state(self) -> BreakerState {
        match self {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

pub(super) struct Inner {
    pub(super) phase: Phase,
    /// Bumped on every transition. A permit's outcome counts only in the
    /// generation that admitted it: a call admitted while closed that ends
    /// after the breaker opened says nothing about the probes.
    pub(super) generation: u64,
    pub(super) outcomes: Outcomes,
    pub(super) consecutive: u32,
    pub(super) admitted: u64,
    pub(super) rejected: u64,
    pub(super) successes: u64,
    pub(super) failures: u64,
    pub(super) trips: u64,
    /// Under the lock, so the state gauge follows the transitions in order.
    pub(super) metrics: BreakerMetrics,
}

impl Inner {
    /// Moves the breaker to `to`. Rare (a trip, a cooldown's end, a probe's
    /// verdict). With the `metrics` feature, whose state gauge this
    /// updates, it is kept out of line: inlined, its larger body changed
    /// the code of every `try_acquire` (+9 instructions a call, none of
    /// them taken; `BENCHMARKS.md`, "What the `metrics` feature costs").
    /// Without the feature LLVM inlines it, which is cheaper there.
    #[cfg_attr(feature = "metrics", cold, inline(never))]
    pub(super) fn transition(&mut self, to: Phase, now: Instant) -> Changed {
        let from = self.phase.state();
        let (mut window, consecutive) = ((0, 0), self.consecutive);
        self.phase = to;
        self.generation = self.generation.wrapping_add(1);
        match to {
            Phase::Open { .. } => {
                self.trips += 1;
                if from == BreakerState::Closed {
                    window = self.outcomes.counts(now);
                }
            }
            Phase::Closed => {
                self.outcomes.clear();
                self.consecutive = 0;
            }
            Phase::HalfOpen { .. } => {}
        }
        self.metrics.entered(to.state());
        Changed {
            change: StateChange {
                from,
                to: to.state(),
                at: now,
            },
            window,
            consecutive,
        }
    }

    /// Open → half-open once the cooldown has passed.
    pub(super) fn end_cooldown(&mut self, now: Instant) -> Option<Changed> {
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

    pub(super) fn should_trip(&mut self, config: &Config, now: Instant) -> bool {
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

impl Shared {
    /// Records a permit's outcome: `Some(true)` a failure, `Some(false)` a
    /// success, `None` no outcome (dropped).
    pub(super) fn record(&self, generation: u64, failed: Option<bool>) -> Option<Changed> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        match failed {
            Some(true) => {
                inner.failures += 1;
                inner.metrics.outcome(true);
            }
            Some(false) => {
                inner.successes += 1;
                inner.metrics.outcome(false);
            }
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
