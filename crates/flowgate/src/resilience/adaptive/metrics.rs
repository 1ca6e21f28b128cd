//! The series of a named [`AdaptiveLimit`](super::AdaptiveLimit); see
//! [`AdaptiveLimitBuilder::name`](super::AdaptiveLimitBuilder::name).

use crate::telemetry::{Counter, Gauge, Histogram, Name};

/// Handles registered when the limit is built (no-ops when unnamed).
pub(super) struct AdaptiveMetrics {
    pub(super) name: Name,
    /// `flowgate_adaptive_limit`: the limit now.
    limit: Gauge,
    /// `flowgate_adaptive_in_flight`: calls admitted, not finished.
    pub(super) in_flight: Gauge,
    /// `flowgate_adaptive_increases_total`.
    increases: Counter,
    /// `flowgate_adaptive_decreases_total`.
    decreases: Counter,
    /// `flowgate_adaptive_overloads_total`: calls finished with back-pressure.
    pub(super) overloads: Counter,
    /// `flowgate_adaptive_rtt_seconds`: the RTT samples the limit adapts on.
    pub(super) rtt: Histogram,
}

impl AdaptiveMetrics {
    pub(super) fn new(name: Name, initial: usize) -> Self {
        let metrics = AdaptiveMetrics {
            limit: name.gauge("flowgate_adaptive_limit"),
            in_flight: name.gauge("flowgate_adaptive_in_flight"),
            increases: name.counter("flowgate_adaptive_increases_total"),
            decreases: name.counter("flowgate_adaptive_decreases_total"),
            overloads: name.counter("flowgate_adaptive_overloads_total"),
            rtt: name.histogram("flowgate_adaptive_rtt_seconds"),
            name,
        };
        metrics.limit.set(initial as f64);
        metrics
    }

    /// The limit grew to `limit` (under the limit's lock).
    pub(super) fn increased(&self, limit: usize) {
        self.increases.inc();
        self.limit.set(limit as f64);
    }

    /// The limit shrank to `limit` (under the limit's lock).
    pub(super) fn decreased(&self, limit: usize) {
        self.decreases.inc();
        self.limit.set(limit as f64);
    }
}

/// Counts an `acquire` caller in the waiting gauge until dropped (it may be
/// cancelled while it waits).
pub(super) struct Waiting<'a>(&'a Gauge);

impl<'a> Waiting<'a> {
    pub(super) fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
