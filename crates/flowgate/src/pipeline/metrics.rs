//! The series a named stage records (the table is in [`crate::metrics`]).
//!
//! Every stage with a bound takes a name through its `name(..)` method; the
//! handles are registered there, so a stage that is never named holds no-op
//! handles and registers nothing.
//!
//! Cost on the hot path: a stage counts what it pulls in a local and adds it
//! once per poll, counts what it yields once per item, and follows its
//! levels (calls in flight, items held) with a [`Level`] synced at the end of
//! a poll, which touches the gauge only when the level changed in that poll.
//! A `par_map` in its steady state (one output out, one item in per poll)
//! makes two counter updates per item and no gauge update.

use crate::telemetry::{Counter, Gauge, Histogram, Name};

/// Items a stage pulled from upstream (counter).
pub(super) const ITEMS_IN: &str = "flowgate_pipeline_items_in_total";
/// Items a stage yielded downstream (counter).
pub(super) const ITEMS_OUT: &str = "flowgate_pipeline_items_out_total";
/// Calls running now (gauge).
pub(super) const IN_FLIGHT: &str = "flowgate_pipeline_in_flight";
/// Items the stage holds besides its calls in flight (gauge).
pub(super) const HELD: &str = "flowgate_pipeline_held";
/// How long each call took, where the stage reads the clock anyway
/// (histogram, seconds).
pub(super) const CALL_DURATION: &str = "flowgate_pipeline_call_duration_seconds";
/// Items a stage dropped, by `reason` (counter).
pub(super) const DROPPED: &str = "flowgate_pipeline_items_dropped_total";
/// Timeouts a timeout stage reported (counter).
pub(super) const TIMEOUTS: &str = "flowgate_pipeline_timeouts_total";
/// Batches a batch stage yielded, by `trigger` (counter).
pub(super) const BATCHES: &str = "flowgate_pipeline_batches_total";
/// Items per yielded batch (histogram).
pub(super) const BATCH_SIZE: &str = "flowgate_pipeline_batch_size";
/// How long a batch was open, first item to yield (histogram, seconds).
pub(super) const BATCH_OPEN: &str = "flowgate_pipeline_batch_open_seconds";

/// `reason` of [`DROPPED`]: an item another one of its key already passed.
pub(super) const REASON_DUPLICATE: &str = "duplicate";
/// `reason` of [`DROPPED`]: an item inside a throttle window.
pub(super) const REASON_THROTTLED: &str = "throttled";
/// `reason` of [`DROPPED`]: an item replaced by a newer one.
pub(super) const REASON_SUPERSEDED: &str = "superseded";

/// Whether a stage with this name records anything: `false` without the
/// `metrics` feature, so code computing a value only for a metric (a clock
/// read per batch) compiles away.
#[inline]
pub(super) fn recording(name: &Name) -> bool {
    cfg!(feature = "metrics") && name.is_some()
}

/// The series every named stage has: items in and out.
#[derive(Debug)]
pub(super) struct Flow {
    pub(super) items_in: Counter,
    pub(super) items_out: Counter,
}

impl Flow {
    pub(super) fn none() -> Flow {
        Flow {
            items_in: Counter::noop(),
            items_out: Counter::noop(),
        }
    }

    pub(super) fn new(name: &Name) -> Flow {
        Flow {
            items_in: name.counter(ITEMS_IN),
            items_out: name.counter(ITEMS_OUT),
        }
    }

    /// Adds `n` items pulled in one poll (no update when `n` is 0).
    #[inline]
    pub(super) fn pulled(&self, n: usize) {
        if n > 0 {
            self.items_in.add(n as u64);
        }
    }
}

/// A gauge following a level that one stage knows exactly (its calls in
/// flight, its held items), synced by difference: [`set`](Self::set) touches
/// the gauge only when the level changed since the last sync, and dropping
/// the `Level` (the stage dropped with calls in flight, on any path) takes
/// back everything this stage added, so the gauge returns to what the
/// other instances of the name hold.
///
/// Without the `metrics` feature it is zero-sized and does nothing.
pub(super) struct Level {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    gauge: Gauge,
    #[cfg(feature = "metrics")]
    reported: usize,
}

impl Level {
    pub(super) fn none() -> Level {
        Level::of(Gauge::noop())
    }

    pub(super) fn of(gauge: Gauge) -> Level {
        Level {
            gauge,
            #[cfg(feature = "metrics")]
            reported: 0,
        }
    }

    /// The level is `now`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(super) fn set(&mut self, now: usize) {
        #[cfg(feature = "metrics")]
        if now != self.reported {
            if now > self.reported {
                self.gauge.add((now - self.reported) as f64);
            } else {
                self.gauge.sub((self.reported - now) as f64);
            }
            self.reported = now;
        }
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        self.set(0);
    }
}

impl std::fmt::Debug for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Level")
    }
}

/// A count kept only for a gauge (items backing off, …): zero-sized and
/// free without the `metrics` feature, where [`get`](Self::get) is 0.
#[derive(Debug, Default)]
pub(super) struct Tally {
    #[cfg(feature = "metrics")]
    n: usize,
}

impl Tally {
    #[inline]
    pub(super) fn inc(&mut self) {
        #[cfg(feature = "metrics")]
        {
            self.n += 1;
        }
    }

    #[inline]
    pub(super) fn dec(&mut self) {
        #[cfg(feature = "metrics")]
        {
            self.n -= 1;
        }
    }

    #[inline]
    pub(super) fn get(&self) -> usize {
        #[cfg(feature = "metrics")]
        {
            self.n
        }
        #[cfg(not(feature = "metrics"))]
        0
    }
}

/// The series of a batch stage: items in and out, the open batch, batches
/// by trigger, their sizes and how long they were open.
#[derive(Debug)]
pub(super) struct BatchSeries {
    pub(super) name: Name,
    pub(super) flow: Flow,
    pub(super) held: Level,
    pub(super) size: Counter,
    pub(super) delay: Counter,
    pub(super) flush: Counter,
    pub(super) end: Counter,
    pub(super) batch_size: Histogram,
    pub(super) open: Histogram,
    /// `batch_dedup` only.
    pub(super) duplicates: Counter,
}

impl BatchSeries {
    pub(super) fn none() -> BatchSeries {
        BatchSeries {
            name: Name::none(),
            flow: Flow::none(),
            held: Level::none(),
            size: Counter::noop(),
            delay: Counter::noop(),
            flush: Counter::noop(),
            end: Counter::noop(),
            batch_size: Histogram::noop(),
            open: Histogram::noop(),
            duplicates: Counter::noop(),
        }
    }

    pub(super) fn new(name: Name, dedup: bool) -> BatchSeries {
        let trigger = |t: &'static str| name.counter_with(BATCHES, &[("trigger", t)]);
        BatchSeries {
            flow: Flow::new(&name),
            held: Level::of(name.gauge(HELD)),
            size: trigger("size"),
            delay: trigger("delay"),
            flush: trigger("flush"),
            end: trigger("end"),
            batch_size: name.histogram(BATCH_SIZE),
            open: name.histogram(BATCH_OPEN),
            duplicates: if dedup {
                name.counter_with(DROPPED, &[("reason", REASON_DUPLICATE)])
            } else {
                Counter::noop()
            },
            name,
        }
    }
}

/// `Debug` of a named primitive: `name: "…"` is added when it has one, so
/// unnamed ones print as before.
pub(crate) trait DebugName {
    fn name_field(&mut self, name: &Name) -> &mut Self;
}

impl DebugName for std::fmt::DebugStruct<'_, '_> {
    fn name_field(&mut self, name: &Name) -> &mut Self {
        if let Some(name) = name.get() {
            self.field("name", &name);
        }
        self
    }
}
