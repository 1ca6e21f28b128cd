//! The metrics handles of one named [`CallGroup`](super::CallGroup),
//! registered by [`CallGroup::name`](super::CallGroup::name). Groups made
//! per request usually share one name: their series add up.

use super::results::Outcome;
use crate::telemetry::{Counter, Gauge, Histogram, Name, Series};

const FINISHED: &str = "flowgate_group_ops_finished_total";
const GROUPS: &str = "flowgate_group_groups_finished_total";

/// How a group ended, as the `outcome` label of `groups_finished_total` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Every operation finished and the group was sealed.
    Complete,
    /// The deadline passed with operations still running.
    TimedOut,
    /// The group, or its `Wait`, was dropped before it completed.
    Dropped,
}

/// Every series of one group; none when it has no name.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) name: Name,
    series: Series<Handles>,
}

struct Handles {
    added: Counter,
    ok: Counter,
    err: Counter,
    abandoned: Counter,
    timed_out: Counter,
    late: Counter,
    in_flight: Gauge,
    complete: Counter,
    groups_timed_out: Counter,
    dropped: Counter,
    duration: Histogram,
}

impl Metrics {
    pub(crate) fn new(name: Name) -> Self {
        Metrics {
            series: Series::new(&name, |name| Handles {
                added: name.counter("flowgate_group_ops_added_total"),
                ok: name.counter_with(FINISHED, &[("outcome", "ok")]),
                err: name.counter_with(FINISHED, &[("outcome", "error")]),
                abandoned: name.counter_with(FINISHED, &[("outcome", "abandoned")]),
                timed_out: name.counter_with(FINISHED, &[("outcome", "timed_out")]),
                late: name.counter("flowgate_group_ops_late_total"),
                in_flight: name.gauge("flowgate_group_ops_in_flight"),
                complete: name.counter_with(GROUPS, &[("outcome", "complete")]),
                groups_timed_out: name.counter_with(GROUPS, &[("outcome", "timed_out")]),
                dropped: name.counter_with(GROUPS, &[("outcome", "dropped")]),
                duration: name.histogram("flowgate_group_duration_seconds"),
            }),
            name,
        }
    }

    /// Whether the group records anything (named, feature on).
    #[inline(always)]
    pub(crate) fn recording(&self) -> bool {
        self.series.is_some()
    }

    /// `n` operations were added (one, or those added before the group was
    /// named).
    #[inline]
    pub(crate) fn added(&self, n: usize) {
        self.series.with(|s| {
            s.added.add(n as u64);
            s.in_flight.add(n as f64);
        });
    }

    /// An operation finished (its `Op` is gone); `in_time` if its outcome
    /// was recorded, otherwise it came after the group ended.
    #[inline]
    pub(crate) fn finished<R, E>(&self, outcome: &Outcome<R, E>, in_time: bool) {
        self.series.with(|s| {
            s.in_flight.dec();
            if !in_time {
                s.late.inc();
                return;
            }
            match outcome {
                Outcome::Ok(_) => s.ok.inc(),
                Outcome::Err(_) => s.err.inc(),
                Outcome::Abandoned => s.abandoned.inc(),
                // Never recorded by an op: a deadline sets it (`ended`).
                Outcome::TimedOut => s.timed_out.inc(),
            }
        });
    }

    /// The group ended, with `running` operations still running (they time
    /// out) and `elapsed` since its first operation was added, if it had one
    /// and reads a clock (named).
    pub(crate) fn ended(&self, end: End, running: usize, elapsed: Option<std::time::Duration>) {
        self.series.with(|s| {
            match end {
                End::Complete => s.complete.inc(),
                End::TimedOut => {
                    s.groups_timed_out.inc();
                    s.timed_out.add(running as u64);
                }
                End::Dropped => s.dropped.inc(),
            }
            if let (End::Complete | End::TimedOut, Some(elapsed)) = (end, elapsed) {
                s.duration.record_duration(elapsed);
            }
        });
    }
}
