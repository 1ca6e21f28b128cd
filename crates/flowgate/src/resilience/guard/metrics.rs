//! The series of a named [`Guard`](super::Guard); see
//! [`Guard::name`](super::Guard::name).

use super::error::Failure;
use crate::telemetry::{Counter, Name};

/// Handles registered when the guard is named (no-ops otherwise), shared by
/// its clones.
pub(super) struct GuardMetrics {
    pub(super) name: Name,
    /// `flowgate_guard_calls_total{outcome="ok"}`.
    ok: Counter,
    /// `flowgate_guard_calls_total{outcome="error"}`.
    error: Counter,
    /// `flowgate_guard_attempt_failures_total{reason}`.
    timeout: Counter,
    rejected: Counter,
    call_error: Counter,
}

impl GuardMetrics {
    pub(super) fn new(name: Name) -> Self {
        let calls =
            |outcome| name.counter_with("flowgate_guard_calls_total", &[("outcome", outcome)]);
        let failures = |reason| {
            name.counter_with(
                "flowgate_guard_attempt_failures_total",
                &[("reason", reason)],
            )
        };
        GuardMetrics {
            ok: calls("ok"),
            error: calls("error"),
            timeout: failures("timeout"),
            rejected: failures("rejected"),
            call_error: failures("error"),
            name,
        }
    }

    pub(super) fn succeeded(&self) {
        self.ok.inc();
    }

    /// An attempt failed.
    pub(super) fn attempt_failed<E>(&self, failure: &Failure<E>) {
        match failure {
            Failure::Inner(_) => self.call_error.inc(),
            Failure::Timeout(_) => self.timeout.inc(),
            Failure::Rejected(_) => self.rejected.inc(),
        }
    }

    /// The call failed for good.
    pub(super) fn failed(&self) {
        self.error.inc();
    }
}

/// The label of a failure, for the events.
pub(super) fn kind<E>(failure: &Failure<E>) -> &'static str {
    match failure {
        Failure::Inner(_) => "error",
        Failure::Timeout(_) => "timeout",
        Failure::Rejected(_) => "rejected",
    }
}
