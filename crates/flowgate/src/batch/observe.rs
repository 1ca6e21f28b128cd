//! What a batcher reports: its `metrics` handles (registered once, when it
//! is built), what sealed a batch, how a flush ended, and the tracing glue
//! (the flush span and the submitters' spans it follows from).
//!
//! Every series is `flowgate_batch_*`, for plain and keyed batchers alike
//! (told apart by their `name`); see [`crate::metrics`] for the table.
//!
//! Cost per item, with the feature on: one counter and one gauge update
//! (`submitted`, `pending`), under the state lock the submission takes
//! anyway. Everything else is per batch or on a slow path (waiting for
//! room, a rejection). With tracing, a submission checks whether the flush
//! span's target is enabled at `INFO` (one atomic load when no subscriber is
//! installed) before it looks at the current span.

use tracing::Span;

use super::error::FlushError;
use crate::telemetry::{Counter, Gauge, Histogram, Name};

/// The target of the batch module's spans and events, for every file of it.
pub(crate) const TARGET: &str = "flowgate::batch";

/// What sealed a batch: the `trigger` label of
/// `flowgate_batch_flushes_total` and the `trigger` field of the flush span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Trigger {
    /// It held `max_items` items.
    Size,
    /// Its items' weights reached `max_bytes`, or the next item would have
    /// taken it over.
    Bytes,
    /// `max_delay` passed since its first item.
    Delay,
    /// `flush()` was called.
    Flush,
    /// The batcher closed (`close()`, or the last handle dropped).
    Close,
    /// Keyed: a new key would have exceeded `max_open_keys`; the oldest open
    /// batch went early.
    OpenKeys,
    /// Keyed: the batcher was full with every item in open batches; the
    /// oldest went early.
    Full,
}

impl Trigger {
    const ALL: [Trigger; 7] = [
        Trigger::Size,
        Trigger::Bytes,
        Trigger::Delay,
        Trigger::Flush,
        Trigger::Close,
        Trigger::OpenKeys,
        Trigger::Full,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Trigger::Size => "size",
            Trigger::Bytes => "bytes",
            Trigger::Delay => "delay",
            Trigger::Flush => "flush",
            Trigger::Close => "close",
            Trigger::OpenKeys => "open_keys",
            Trigger::Full => "full",
        }
    }

    /// Whether only a keyed batcher seals batches this way.
    const fn keyed_only(self) -> bool {
        matches!(self, Trigger::OpenKeys | Trigger::Full)
    }
}

/// How the items of a batch resolved: the `outcome` label of
/// `flowgate_batch_items_flushed_total` (all five) and of
/// `flowgate_batch_flushes_completed_total` (all but `Closed`: a flush cut
/// short never completes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Panic,
    Mismatch,
    Closed,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Panic,
        Outcome::Mismatch,
        Outcome::Closed,
    ];

    pub(crate) fn of<T, E>(result: &Result<T, FlushError<E>>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(FlushError::Failed(_)) => Outcome::Error,
            Err(FlushError::Panicked(_)) => Outcome::Panic,
            Err(FlushError::OutputMismatch { .. }) => Outcome::Mismatch,
            Err(FlushError::Closed) => Outcome::Closed,
        }
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Mismatch => "mismatch",
            Outcome::Closed => "closed",
        }
    }
}

/// The series of one batcher. No-op handles when it has no name (or the
/// `metrics` feature is off).
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) name: Name,
    /// `flowgate_batch_items_submitted_total`.
    pub(crate) submitted: Counter,
    /// `flowgate_batch_items_flushed_total{outcome}`, by [`Outcome`].
    items: [Counter; 5],
    /// `flowgate_batch_items_pending`: submitted, not handed to a flush yet.
    pub(crate) pending: Gauge,
    /// `flowgate_batch_items_flushing`: handed to a flush, not resolved yet.
    pub(crate) flushing: Gauge,
    /// `flowgate_batch_submitters_waiting`: queued for room.
    pub(crate) waiting: Gauge,
    /// `flowgate_batch_open_keys` (keyed only).
    pub(crate) open_keys: Gauge,
    /// `flowgate_batch_rejected_total{reason="closed"}`.
    pub(crate) rejected_closed: Counter,
    /// `flowgate_batch_rejected_total{reason="full"}`.
    pub(crate) rejected_full: Counter,
    /// `flowgate_batch_flushes_total{trigger}`, by [`Trigger`].
    flushes: [Counter; 7],
    /// `flowgate_batch_flushes_completed_total{outcome}`, by [`Outcome`]
    /// (no `closed`).
    completed: [Counter; 4],
    /// `flowgate_batch_flush_size`: items per flush.
    pub(crate) size: Histogram,
    /// `flowgate_batch_flush_duration_seconds`.
    pub(crate) duration: Histogram,
    /// `flowgate_batch_oldest_item_age_seconds`: from a batch's first item
    /// to the start of its flush.
    pub(crate) age: Histogram,
}

impl Metrics {
    /// Registers every series of a batcher named `name` (keyed or not).
    pub(crate) fn new(name: Name, keyed: bool) -> Self {
        let items = Outcome::ALL.map(|o| {
            name.counter_with(
                "flowgate_batch_items_flushed_total",
                &[("outcome", o.as_str())],
            )
        });
        let flushes = Trigger::ALL.map(|t| {
            if t.keyed_only() && !keyed {
                Counter::noop()
            } else {
                name.counter_with("flowgate_batch_flushes_total", &[("trigger", t.as_str())])
            }
        });
        let completed = [
            Outcome::Ok,
            Outcome::Error,
            Outcome::Panic,
            Outcome::Mismatch,
        ]
        .map(|o| {
            name.counter_with(
                "flowgate_batch_flushes_completed_total",
                &[("outcome", o.as_str())],
            )
        });
        Metrics {
            submitted: name.counter("flowgate_batch_items_submitted_total"),
            items,
            pending: name.gauge("flowgate_batch_items_pending"),
            flushing: name.gauge("flowgate_batch_items_flushing"),
            waiting: name.gauge("flowgate_batch_submitters_waiting"),
            open_keys: if keyed {
                name.gauge("flowgate_batch_open_keys")
            } else {
                Gauge::noop()
            },
            rejected_closed: name
                .counter_with("flowgate_batch_rejected_total", &[("reason", "closed")]),
            rejected_full: name
                .counter_with("flowgate_batch_rejected_total", &[("reason", "full")]),
            flushes,
            completed,
            size: name.histogram("flowgate_batch_flush_size"),
            duration: name.histogram("flowgate_batch_flush_duration_seconds"),
            age: name.histogram("flowgate_batch_oldest_item_age_seconds"),
            name,
        }
    }

    /// A batch sealed by `trigger` was handed to the flush function.
    pub(crate) fn flush_started(&self, trigger: Trigger) -> &Counter {
        &self.flushes[trigger as usize]
    }

    /// `len` items resolved with `outcome`.
    pub(crate) fn items_resolved(&self, outcome: Outcome, len: usize) {
        self.items[outcome as usize].add(len as u64);
    }

    /// A flush completed (its future returned) with `outcome`.
    pub(crate) fn flush_completed(&self, outcome: Outcome) {
        if let Some(counter) = self.completed.get(outcome as usize) {
            counter.inc();
        }
    }
}

/// The submitter's span, to link the flush span to it, when spans of the
/// batch target are enabled at all and the submitter is in one. Otherwise
/// `None`, at the cost of one branch (one atomic load with no subscriber).
#[inline]
pub(crate) fn submitter_span() -> Option<Span> {
    if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        capture()
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn capture() -> Option<Span> {
    let span = Span::current();
    (!span.is_disabled()).then_some(span)
}

/// The spans the items of one batch were submitted in, each once in a row
/// (most batches are submitted from few spans); empty, with no allocation,
/// when tracing is off.
#[derive(Default)]
pub(crate) struct Links(Vec<Span>);

impl Links {
    pub(crate) const fn new() -> Self {
        Links(Vec::new())
    }

    /// Keeps `span` (a clone of the submitter's, which stays open until the
    /// flush starts), unless it is the one kept last.
    #[inline]
    pub(crate) fn push(&mut self, span: Option<Span>) {
        if let Some(span) = span {
            self.push_span(span);
        }
    }

    #[cold]
    #[inline(never)]
    fn push_span(&mut self, span: Span) {
        if self.0.last().map(Span::id) != Some(span.id()) {
            self.0.push(span);
        }
    }

    /// Makes `flush` follow from each distinct span kept, and lets them go.
    pub(crate) fn follow(self, flush: &Span) {
        if self.0.is_empty() {
            return;
        }
        let mut spans = self.0;
        spans.sort_unstable_by_key(|span| span.id().map(|id| id.into_u64()));
        spans.dedup_by_key(|span| span.id());
        for span in &spans {
            flush.follows_from(span);
        }
    }
}
