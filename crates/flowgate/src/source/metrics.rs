//! The series of a named [`CursorSource`](super::CursorSource); see
//! [`CursorSourceBuilder::name`](super::CursorSourceBuilder::name).

use crate::telemetry::{Counter, Gauge, Histogram, Name};

/// Handles registered when the source is built (no-ops when unnamed),
/// shared by the stream, the driver, the control handles and the acks.
#[derive(Debug)]
pub(crate) struct SourceMetrics {
    pub(crate) name: Name,
    /// `flowgate_source_pages_fetched_total`.
    pub(crate) pages_fetched: Counter,
    /// `flowgate_source_items_fetched_total`.
    pub(crate) items_fetched: Counter,
    /// `flowgate_source_items_emitted_total`: yielded by the stream.
    pub(crate) items_emitted: Counter,
    /// `flowgate_source_items_acked_total`.
    pub(crate) items_acked: Counter,
    /// `flowgate_source_items_unacked_total`: yielded, ack dropped.
    pub(crate) items_unacked: Counter,
    /// `flowgate_source_items_dropped_total`: fetched, never yielded.
    pub(crate) items_dropped: Counter,
    /// `flowgate_source_items_in_flight`: yielded, not resolved yet.
    pub(crate) items_in_flight: Gauge,
    /// `flowgate_source_pages_in_flight`: being fetched, or fetched and not
    /// committed.
    pub(crate) pages_in_flight: Gauge,
    /// `flowgate_source_fetch_errors_total`.
    pub(crate) fetch_errors: Counter,
    /// `flowgate_source_fetch_seconds`.
    pub(crate) fetch_seconds: Histogram,
    /// `flowgate_source_commits_total{outcome="ok"}`.
    pub(crate) commits_ok: Counter,
    /// `flowgate_source_commits_total{outcome="error"}`.
    pub(crate) commits_error: Counter,
    /// `flowgate_source_commit_seconds`.
    pub(crate) commit_seconds: Histogram,
    /// `flowgate_source_load_errors_total`.
    pub(crate) load_errors: Counter,
    /// `flowgate_source_paused`: 1 while paused, else 0.
    pub(crate) paused: Gauge,
}

impl SourceMetrics {
    pub(crate) fn new(name: Name) -> Self {
        SourceMetrics {
            pages_fetched: name.counter("flowgate_source_pages_fetched_total"),
            items_fetched: name.counter("flowgate_source_items_fetched_total"),
            items_emitted: name.counter("flowgate_source_items_emitted_total"),
            items_acked: name.counter("flowgate_source_items_acked_total"),
            items_unacked: name.counter("flowgate_source_items_unacked_total"),
            items_dropped: name.counter("flowgate_source_items_dropped_total"),
            items_in_flight: name.gauge("flowgate_source_items_in_flight"),
            pages_in_flight: name.gauge("flowgate_source_pages_in_flight"),
            fetch_errors: name.counter("flowgate_source_fetch_errors_total"),
            fetch_seconds: name.histogram("flowgate_source_fetch_seconds"),
            commits_ok: name.counter_with("flowgate_source_commits_total", &[("outcome", "ok")]),
            commits_error: name
                .counter_with("flowgate_source_commits_total", &[("outcome", "error")]),
            commit_seconds: name.histogram("flowgate_source_commit_seconds"),
            load_errors: name.counter("flowgate_source_load_errors_total"),
            paused: name.gauge("flowgate_source_paused"),
            name,
        }
    }

    /// Whether to read the clock for the latency histograms (per page and
    /// per commit, only when named).
    pub(crate) fn timed(&self) -> Option<tokio::time::Instant> {
        self.name.is_some().then(tokio::time::Instant::now)
    }
}

impl Default for SourceMetrics {
    fn default() -> Self {
        SourceMetrics::new(Name::none())
    }
}
