//! The metrics handles of one event stream, registered when it is created
//! with a name ([`Publisher::with_name`](super::Publisher::with_name),
//! [`BoundedPublisher::with_name`](super::BoundedPublisher::with_name)).

use crate::telemetry::{Counter, Gauge, Name};

/// Every series of one stream; no-op handles for an unnamed stream.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) name: Name,
    /// `flowgate_broadcast_events_published_total`, updated a block at a
    /// time (see [`Writer::report`](super::writer::Writer)).
    pub(crate) published: Counter,
    /// `flowgate_broadcast_subscribers`.
    pub(crate) subscribers: Gauge,
    /// `flowgate_broadcast_subscribers_left_total{reason="finished"}`.
    pub(crate) left_finished: Counter,
    /// `flowgate_broadcast_subscribers_left_total{reason="dropped"}`.
    pub(crate) left_dropped: Counter,
    /// `flowgate_broadcast_events_buffered`: 128 per full block held.
    pub(crate) buffered: Gauge,
    /// `flowgate_broadcast_publishers_waiting`.
    pub(crate) publishers_waiting: Gauge,
    /// `flowgate_broadcast_publish_rejected_total{reason="full"}`.
    pub(crate) rejected_full: Counter,
    /// `flowgate_broadcast_publish_rejected_total{reason="closed"}`.
    pub(crate) rejected_closed: Counter,
}

impl Metrics {
    pub(crate) fn new(name: Name) -> Self {
        const LEFT: &str = "flowgate_broadcast_subscribers_left_total";
        const REJECTED: &str = "flowgate_broadcast_publish_rejected_total";
        Metrics {
            published: name.counter("flowgate_broadcast_events_published_total"),
            subscribers: name.gauge("flowgate_broadcast_subscribers"),
            left_finished: name.counter_with(LEFT, &[("reason", "finished")]),
            left_dropped: name.counter_with(LEFT, &[("reason", "dropped")]),
            buffered: name.gauge("flowgate_broadcast_events_buffered"),
            publishers_waiting: name.gauge("flowgate_broadcast_publishers_waiting"),
            rejected_full: name.counter_with(REJECTED, &[("reason", "full")]),
            rejected_closed: name.counter_with(REJECTED, &[("reason", "closed")]),
            name,
        }
    }

    /// A `try_publish` found the stream full (transient: the caller has the
    /// event back).
    pub(crate) fn reject_full(&self) {
        self.rejected_full.inc();
        tracing::debug!(
            target: "flowgate::broadcast",
            name = %self.name.as_str(),
            "publish refused: the slowest subscriber is `bound` events behind"
        );
    }

    /// A publish found the stream closed (permanent: the caller has the
    /// event back).
    pub(crate) fn reject_closed(&self) {
        self.rejected_closed.inc();
        tracing::warn!(
            target: "flowgate::broadcast",
            name = %self.name.as_str(),
            "publish to a closed event stream: the event is handed back"
        );
    }
}
