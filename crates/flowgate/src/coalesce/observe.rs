//! The metrics handles of one queue, registered by
//! [`OpQueueBuilder::build`](super::OpQueueBuilder::build) when the queue
//! has a [name](super::OpQueueBuilder::name).
//!
//! Every update happens under the queue's lock, where the exact counts are at
//! hand: the depth gauges are *set* to them (a store, and no two updates can
//! race), and each accepted item costs one counter increment.

use super::state::State;
use crate::telemetry::{Counter, Gauge, Histogram, Name, Series};

const ENQUEUED: &str = "flowgate_coalesce_items_enqueued_total";
const REJECTED: &str = "flowgate_coalesce_enqueue_rejected_total";
const RELEASED: &str = "flowgate_coalesce_batches_released_total";

/// Why an enqueue was refused, as the `reason` label says it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reason {
    DepthFull,
    WidthFull,
    Closed,
}

/// Every series of one queue; none when it has no name.
#[derive(Debug)]
pub(crate) struct Metrics {
    name: Name,
    series: Series<Handles>,
}

struct Handles {
    /// `items_enqueued_total{outcome="queued"}`: items that queued a key.
    queued: Counter,
    /// `items_enqueued_total{outcome="merged"}`: items that joined one.
    merged: Counter,
    dequeued: Counter,
    dropped: Counter,
    keys: Gauge,
    items: Gauge,
    waiting: Gauge,
    depth_full: Counter,
    width_full: Counter,
    closed: Counter,
}

impl Metrics {
    pub(crate) fn new(name: Name) -> Self {
        Metrics {
            series: Series::new(&name, |name| Handles {
                queued: name.counter_with(ENQUEUED, &[("outcome", "queued")]),
                merged: name.counter_with(ENQUEUED, &[("outcome", "merged")]),
                dequeued: name.counter("flowgate_coalesce_items_dequeued_total"),
                dropped: name.counter("flowgate_coalesce_items_dropped_total"),
                keys: name.gauge("flowgate_coalesce_keys_queued"),
                items: name.gauge("flowgate_coalesce_items_queued"),
                waiting: name.gauge("flowgate_coalesce_enqueuers_waiting"),
                depth_full: name.counter_with(REJECTED, &[("reason", "depth_full")]),
                width_full: name.counter_with(REJECTED, &[("reason", "width_full")]),
                closed: name.counter_with(REJECTED, &[("reason", "closed")]),
            }),
            name,
        }
    }

    /// An item was accepted; `state` is still locked.
    #[inline]
    pub(crate) fn enqueued<K, A>(&self, merged: bool, state: &State<K, A>) {
        self.series.with(|s| {
            if merged {
                s.merged.inc();
            } else {
                s.queued.inc();
                s.keys.set(state.len() as f64);
            }
            s.items.set(state.items() as f64);
        });
    }

    /// Consumers took `items` items; `state` is still locked.
    #[inline]
    pub(crate) fn dequeued<K, A>(&self, items: usize, state: &State<K, A>) {
        self.series.with(|s| {
            s.dequeued.add(items as u64);
            s.keys.set(state.len() as f64);
            s.items.set(state.items() as f64);
        });
    }

    /// The last consumer went away and `items` items in `keys` entries were
    /// dropped with the queue's contents (lock released).
    pub(crate) fn dropped(&self, keys: usize, items: usize) {
        self.series.with(|s| {
            s.keys.set(0.0);
            s.items.set(0.0);
            s.dropped.add(items as u64);
        });
        if items == 0 {
            return;
        }
        tracing::error!(
            target: "flowgate::coalesce",
            name = %self.name.as_str(),
            keys,
            items,
            "coalescing queue: the last consumer was dropped; queued items are dropped unprocessed"
        );
    }

    /// An enqueue was refused and the item handed back (lock released).
    pub(crate) fn rejected(&self, reason: Reason) {
        match reason {
            Reason::DepthFull => {
                self.series.with(|s| s.depth_full.inc());
                tracing::debug!(
                    target: "flowgate::coalesce",
                    name = %self.name.as_str(),
                    "enqueue refused: depth full"
                );
            }
            Reason::WidthFull => {
                self.series.with(|s| s.width_full.inc());
                tracing::debug!(
                    target: "flowgate::coalesce",
                    name = %self.name.as_str(),
                    "enqueue refused: width full"
                );
            }
            Reason::Closed => {
                self.series.with(|s| s.closed.inc());
                tracing::warn!(
                    target: "flowgate::coalesce",
                    name = %self.name.as_str(),
                    "enqueue to a closed coalescing queue: the item is handed back"
                );
            }
        }
    }

    /// An `enqueue` call started waiting for room.
    pub(crate) fn wait_started(&self) {
        self.series.with(|s| s.waiting.inc());
    }

    /// An `enqueue` call that waited for room stopped waiting.
    pub(crate) fn wait_ended(&self) {
        self.series.with(|s| s.waiting.dec());
    }
}

/// The series of a windowed queue's batches, kept in its [`State`] where
/// batches are released. No-op handles for an unwindowed or unnamed queue.
#[derive(Debug)]
pub(crate) struct WindowMetrics {
    /// `batches_released_total{trigger="window"}`: the window ended.
    by_window: Counter,
    /// `{trigger="width"}`: the batch reached `width`.
    by_width: Counter,
    /// `{trigger="close"}`: the queue closed with the window open.
    by_close: Counter,
    /// `flowgate_coalesce_batch_size`: items in a batch when released.
    items: Histogram,
}

/// What released a windowed batch.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Trigger {
    Window,
    Width,
    Close,
}

impl WindowMetrics {
    pub(crate) fn new(name: &Name, windowed: bool) -> Self {
        if !windowed {
            return WindowMetrics {
                by_window: Counter::noop(),
                by_width: Counter::noop(),
                by_close: Counter::noop(),
                items: Histogram::noop(),
            };
        }
        WindowMetrics {
            by_window: name.counter_with(RELEASED, &[("trigger", "window")]),
            by_width: name.counter_with(RELEASED, &[("trigger", "width")]),
            by_close: name.counter_with(RELEASED, &[("trigger", "close")]),
            items: name.histogram("flowgate_coalesce_batch_size"),
        }
    }

    /// A batch of `items` items was released (per batch, under the lock).
    pub(crate) fn released(&self, trigger: Trigger, items: usize) {
        match trigger {
            Trigger::Window => self.by_window.inc(),
            Trigger::Width => self.by_width.inc(),
            Trigger::Close => self.by_close.inc(),
        }
        self.items.record(items as f64);
    }
}
