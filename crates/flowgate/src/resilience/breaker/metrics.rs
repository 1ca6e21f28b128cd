//! The series of a named [`CircuitBreaker`](super::CircuitBreaker); see
//! [`CircuitBreakerBuilder::name`](super::CircuitBreakerBuilder::name).

use super::Rejected;
use super::state::BreakerState;
use crate::telemetry::{Counter, Gauge, Name, Series};

/// Handles registered when the breaker is built (none when unnamed: one
/// branch per call).
pub(super) struct BreakerMetrics {
    series: Series<Handles>,
}

struct Handles {
    /// `flowgate_breaker_state`: 0 closed, 1 half-open, 2 open.
    state: Gauge,
    /// `flowgate_breaker_transitions_total{state}`, by [`code`].
    transitions: [Counter; 3],
    /// `flowgate_breaker_calls_permitted_total`.
    permitted: Counter,
    /// `flowgate_breaker_calls_rejected_total{reason="open"}`.
    rejected_open: Counter,
    /// `flowgate_breaker_calls_rejected_total{reason="half_open"}`.
    rejected_half_open: Counter,
    /// `flowgate_breaker_outcomes_total{outcome="success"}`.
    successes: Counter,
    /// `flowgate_breaker_outcomes_total{outcome="failure"}`.
    failures: Counter,
}

/// The value of the state gauge, and the index of the state's counter.
pub(super) fn code(state: BreakerState) -> usize {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

impl BreakerMetrics {
    pub(super) fn new(name: &Name) -> Self {
        let series = Series::new(name, |name| {
            let transition = |state| {
                name.counter_with("flowgate_breaker_transitions_total", &[("state", state)])
            };
            let handles = Handles {
                state: name.gauge("flowgate_breaker_state"),
                transitions: [
                    transition("closed"),
                    transition("half_open"),
                    transition("open"),
                ],
                permitted: name.counter("flowgate_breaker_calls_permitted_total"),
                rejected_open: name.counter_with(
                    "flowgate_breaker_calls_rejected_total",
                    &[("reason", "open")],
                ),
                rejected_half_open: name.counter_with(
                    "flowgate_breaker_calls_rejected_total",
                    &[("reason", "half_open")],
                ),
                successes: name
                    .counter_with("flowgate_breaker_outcomes_total", &[("outcome", "success")]),
                failures: name
                    .counter_with("flowgate_breaker_outcomes_total", &[("outcome", "failure")]),
            };
            handles.state.set(0.0);
            handles
        });
        BreakerMetrics { series }
    }

    /// A call was let through.
    #[inline]
    pub(super) fn permitted(&self) {
        self.series.with(|s| s.permitted.inc());
    }

    /// A call was refused, for `why`.
    #[inline]
    pub(super) fn rejected(&self, why: &Rejected) {
        self.series.with(|s| match why {
            Rejected::Open { .. } => s.rejected_open.inc(),
            Rejected::HalfOpen => s.rejected_half_open.inc(),
        });
    }

    /// A permit reported its outcome.
    #[inline]
    pub(super) fn outcome(&self, failed: bool) {
        self.series.with(|s| {
            if failed {
                s.failures.inc()
            } else {
                s.successes.inc()
            }
        });
    }

    /// The breaker entered `to` (called under the breaker's lock, so the
    /// gauge follows the transitions in order).
    pub(super) fn entered(&self, to: BreakerState) {
        self.series.with(|s| {
            let code = code(to);
            s.state.set(code as f64);
            s.transitions[code].inc();
        });
    }
}
