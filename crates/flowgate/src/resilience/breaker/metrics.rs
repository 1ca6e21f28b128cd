//! The series of a named [`CircuitBreaker`](super::CircuitBreaker); see
//! [`CircuitBreakerBuilder::name`](super::CircuitBreakerBuilder::name).

use super::state::BreakerState;
use crate::telemetry::{Counter, Gauge, Name};

/// Handles registered when the breaker is built (no-ops when unnamed).
pub(super) struct BreakerMetrics {
    /// `flowgate_breaker_state`: 0 closed, 1 half-open, 2 open.
    state: Gauge,
    /// `flowgate_breaker_transitions_total{state}`, by [`code`].
    transitions: [Counter; 3],
    /// `flowgate_breaker_calls_permitted_total`.
    pub(super) permitted: Counter,
    /// `flowgate_breaker_calls_rejected_total{reason="open"}`.
    pub(super) rejected_open: Counter,
    /// `flowgate_breaker_calls_rejected_total{reason="half_open"}`.
    pub(super) rejected_half_open: Counter,
    /// `flowgate_breaker_outcomes_total{outcome="success"}`.
    pub(super) successes: Counter,
    /// `flowgate_breaker_outcomes_total{outcome="failure"}`.
    pub(super) failures: Counter,
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
        let transition =
            |state| name.counter_with("flowgate_breaker_transitions_total", &[("state", state)]);
        let metrics = BreakerMetrics {
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
        metrics.state.set(0.0);
        metrics
    }

    /// The breaker entered `to` (called under the breaker's lock, so the
    /// gauge follows the transitions in order).
    pub(super) fn entered(&self, to: BreakerState) {
        let code = code(to);
        self.state.set(code as f64);
        self.transitions[code].inc();
    }
}
