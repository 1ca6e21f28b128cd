//! The series of a named [`Retry`](super::Retry); see
//! [`Retry::name`](super::Retry::name).

use std::time::Duration;

use super::error::StopReason;
use crate::telemetry::{Counter, Histogram, Name};

/// Handles registered when the policy is named (no-ops otherwise), shared by
/// its clones.
pub(super) struct RetryMetrics {
    pub(super) name: Name,
    /// `flowgate_retry_calls_total`: retry loops started.
    calls: Counter,
    /// `flowgate_retry_attempts_total`: attempts started, first ones included.
    pub(super) attempts: Counter,
    /// `flowgate_retry_retries_total`: retries scheduled (a backoff begun).
    retries: Counter,
    /// `flowgate_retry_gave_up_total{reason}`.
    not_retryable: Counter,
    attempts_exhausted: Counter,
    budget_exhausted: Counter,
    /// `flowgate_retry_backoff_seconds`: the delays slept before retries.
    backoff: Histogram,
}

impl RetryMetrics {
    pub(super) fn new(name: Name) -> Self {
        let gave_up =
            |reason| name.counter_with("flowgate_retry_gave_up_total", &[("reason", reason)]);
        RetryMetrics {
            calls: name.counter("flowgate_retry_calls_total"),
            attempts: name.counter("flowgate_retry_attempts_total"),
            retries: name.counter("flowgate_retry_retries_total"),
            not_retryable: gave_up("not_retryable"),
            attempts_exhausted: gave_up("attempts_exhausted"),
            budget_exhausted: gave_up("budget_exhausted"),
            backoff: name.histogram("flowgate_retry_backoff_seconds"),
            name,
        }
    }

    pub(super) fn unnamed() -> Self {
        RetryMetrics::new(Name::none())
    }

    /// A retry loop starts; returns the handle its attempts count on.
    pub(super) fn call(&self) -> Counter {
        self.calls.inc();
        self.attempts.clone()
    }

    /// A retry was scheduled, in `delay`.
    pub(super) fn retry(&self, delay: Duration) {
        self.retries.inc();
        self.backoff.record_duration(delay);
    }

    /// The loop gave up; returns the reason's label.
    pub(super) fn gave_up(&self, reason: StopReason) -> &'static str {
        let (counter, label) = match reason {
            StopReason::NotRetryable => (&self.not_retryable, "not_retryable"),
            StopReason::AttemptsExhausted => (&self.attempts_exhausted, "attempts_exhausted"),
            StopReason::BudgetExhausted => (&self.budget_exhausted, "budget_exhausted"),
        };
        counter.inc();
        label
    }
}
