//! [`Watermark`]: the contiguous acknowledgement watermark over sparse
//! offsets; [`PartitionedWatermark`], one per partition; and
//! [`SharedWatermark`], acknowledged from many tasks by [`WatermarkAck`]
//! tokens. See the [module documentation](super#acknowledgement-watermarks).

mod error;
mod partitioned;
mod shared;

use std::collections::VecDeque;
use std::fmt;

use crate::telemetry::{Gauge, Name};

pub use self::error::{AckError, TrackError, WatchError};
pub use self::partitioned::PartitionedWatermark;
pub use self::shared::{SharedWatermark, WatermarkAck, WatermarkWatch};

/// What became of a tracked offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Pending,
    Acked,
    /// Dropped unacknowledged (a [`WatermarkAck`] dropped): never passed.
    Abandoned,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    mark: Mark,
}

/// A contiguous acknowledgement watermark: offsets are handed out in
/// increasing order ([`track`](Self::track)), acknowledged in any order
/// ([`ack`](Self::ack)), and [`commit_point`](Self::commit_point) is the
/// point below which every tracked offset is acknowledged — the value a
/// Kafka-style consumer commits for its partition.
///
/// Offsets may be sparse — a compacted Kafka topic skips offsets, a page
/// sequence may have holes — which is why the watermark must be told which
/// offsets were handed out: an offset that was never tracked never holds it
/// back.
///
/// # The commit point
///
/// [`last_acked_contiguous`](Self::last_acked_contiguous) is the highest
/// tracked offset that is acknowledged together with every tracked offset
/// below it; [`commit_point`](Self::commit_point) is one past it — Kafka's
/// convention, "the offset of the next record to read" — or `None` while no
/// offset has been passed. [`first_unacked`](Self::first_unacked) is the
/// lowest tracked offset not acknowledged. With offsets 3, 5 and 8 tracked:
///
/// | acked | `last_acked_contiguous` | `commit_point` | `first_unacked` |
/// |---|---|---|---|
/// | — | `None` | `None` | `Some(3)` |
/// | 5 | `None` | `None` | `Some(3)` |
/// | 5, 3 | `Some(5)` | `Some(6)` | `Some(8)` |
/// | 5, 3, 8 | `Some(8)` | `Some(9)` | `None` |
///
/// Committing 6 in the third row is exact even though 6 and 7 do not exist
/// (a compacted topic): a consumer resuming at 6 reads 8 next. The commit
/// point never passes an unacknowledged tracked offset, never moves back,
/// and reaches one past the last tracked offset exactly when every tracked
/// offset is acknowledged.
///
/// # Outcomes
///
/// Nothing here panics except [`with_max_pending(0)`](Self::with_max_pending);
/// every refusal is a typed error and leaves the watermark unchanged:
///
/// | call | outcome |
/// |---|---|
/// | `track(o)`, `o` ≤ the last tracked offset | [`TrackError::NotIncreasing`] |
/// | `track(o)` with `max_pending` offsets pending | [`TrackError::Full`]: ack first (back-pressure) |
/// | `track(u64::MAX)` | [`TrackError::OutOfRange`]: the commit point after it would not fit |
/// | `ack(o)` a second time, `o` not passed yet | [`AckError::Duplicate`] |
/// | `ack(o)`, `o` ≤ `last_acked_contiguous` | [`AckError::Passed`]: acked before, or never tracked (passed offsets are forgotten) |
/// | `ack(o)`, `o` never tracked and above the watermark | [`AckError::Untracked`] |
///
/// # Memory and cost
///
/// The watermark holds one 16-byte entry per *pending* offset: tracked and
/// not passed yet, including offsets acknowledged out of order behind an
/// unacknowledged one. Entries are dropped as the watermark passes them, so
/// memory is bounded by the pending count, which
/// [`with_max_pending`](Self::with_max_pending) caps. `track` is O(1)
/// amortised; `ack` is O(1) when the offsets between the lowest pending one
/// and the acknowledged one are dense, O(log pending) otherwise, plus O(1)
/// amortised for the entries it passes. No locks, no atomics: for acks from
/// many tasks use [`SharedWatermark`], built on this type.
///
/// # Examples
///
/// A consumer that processes records concurrently and commits only what is
/// safe:
///
/// ```
/// use flowgate::source::Watermark;
///
/// let mut watermark = Watermark::new();
/// for offset in [3, 5, 8] {
///     watermark.track(offset).unwrap(); // as records are fetched
/// }
/// assert_eq!(watermark.ack(5), Ok(None)); // 3 is still in progress
/// assert_eq!(watermark.ack(3), Ok(Some(6))); // moved: commit 6
/// assert_eq!(watermark.commit_point(), Some(6));
/// assert_eq!(watermark.ack(8), Ok(Some(9))); // everything done
/// assert_eq!(watermark.pending(), 0);
/// ```
#[derive(Clone)]
pub struct Watermark {
    /// Tracked offsets not passed yet, in increasing order. The front is
    /// never `Acked`: acks at the front are passed at once.
    entries: VecDeque<Entry>,
    /// The last offset passed: `last_acked_contiguous`.
    passed: Option<u64>,
    last_tracked: Option<u64>,
    max_pending: usize,
    /// The lowest offset abandoned (never passed).
    abandoned: Option<u64>,
    metrics: WatermarkMetrics,
}

/// The series of a named [`Watermark`]; see [`Watermark::name`].
#[derive(Clone)]
struct WatermarkMetrics {
    name: Name,
    /// `flowgate_source_watermark_commit_point`.
    commit_point: Gauge,
    /// `flowgate_source_watermark_pending`.
    pending: Gauge,
    /// Log the first abandoned offset (off inside a cursor source, which
    /// logs it itself).
    quiet: bool,
}

impl Default for WatermarkMetrics {
    fn default() -> Self {
        WatermarkMetrics {
            name: Name::none(),
            commit_point: Gauge::noop(),
            pending: Gauge::noop(),
            quiet: false,
        }
    }
}

impl Watermark {
    /// A watermark with no limit on pending offsets (and nothing allocated up
    /// front).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let watermark = Watermark::new();
    /// assert_eq!(watermark.commit_point(), None);
    /// assert_eq!(watermark.max_pending(), usize::MAX);
    /// ```
    pub fn new() -> Self {
        Self::with_max_pending(usize::MAX)
    }

    /// A watermark that holds at most `max_pending` pending offsets (tracked,
    /// not passed yet): [`track`](Self::track) beyond that returns
    /// [`TrackError::Full`] until the lowest ones are acknowledged — the
    /// signal for a source to stop fetching. `usize::MAX` means no limit;
    /// nothing is allocated up front either way.
    ///
    /// # Panics
    ///
    /// `"Watermark::with_max_pending: max_pending must be at least 1"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::{TrackError, Watermark};
    ///
    /// let mut watermark = Watermark::with_max_pending(2);
    /// watermark.track(0).unwrap();
    /// watermark.track(1).unwrap();
    /// assert!(watermark.is_full());
    /// assert!(matches!(watermark.track(2), Err(TrackError::Full { .. })));
    /// watermark.ack(1).unwrap(); // out of order: still pending behind 0
    /// assert!(watermark.is_full());
    /// watermark.ack(0).unwrap(); // passes 0 and 1
    /// watermark.track(2).unwrap();
    /// ```
    #[track_caller]
    pub fn with_max_pending(max_pending: usize) -> Self {
        assert!(
            max_pending > 0,
            "Watermark::with_max_pending: max_pending must be at least 1"
        );
        Watermark {
            entries: VecDeque::new(),
            passed: None,
            last_tracked: None,
            max_pending,
            abandoned: None,
            metrics: WatermarkMetrics::default(),
        }
    }

    /// Names the watermark: the `name` label of its series (feature
    /// `metrics`) and the `name` field of its events. Any string is
    /// accepted as given. The series are registered now, with the recorder
    /// current at this call, and set to the watermark's state. Without a
    /// name, no metrics. A clone keeps the name, and updates the same
    /// series: rename it.
    ///
    /// Enables (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_source_watermark_commit_point` (gauge): the
    ///   [`commit_point`](Self::commit_point) (0 until there is one; an
    ///   `f64`, exact up to 2⁵³);
    /// - `flowgate_source_watermark_pending` (gauge): the
    ///   [`pending`](Self::pending) offsets, tracked and not passed yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new().name("orders-0");
    /// watermark.track(7).unwrap(); // flowgate_source_watermark_pending{name="orders-0"} is 1
    /// watermark.ack(7).unwrap(); // ... 0, and the commit point gauge 8
    /// assert_eq!(watermark.commit_point(), Some(8));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.set_name(Name::new(name));
        self
    }

    pub(crate) fn set_name(&mut self, name: Name) {
        self.metrics = WatermarkMetrics {
            commit_point: name.gauge("flowgate_source_watermark_commit_point"),
            pending: name.gauge("flowgate_source_watermark_pending"),
            name,
            quiet: self.metrics.quiet,
        };
        self.metrics
            .commit_point
            .set(self.commit_point().unwrap_or(0) as f64);
        self.metrics.pending.set(self.entries.len() as f64);
    }

    /// Leaves the first abandoned offset to the caller to log.
    pub(crate) fn quiet(mut self) -> Self {
        self.metrics.quiet = true;
        self
    }

    /// Starts tracking `offset`: it was handed out (fetched, delivered) and
    /// the watermark may not pass it until it is acknowledged. Offsets are
    /// tracked in increasing order; gaps are fine.
    ///
    /// # Errors
    ///
    /// Nothing is tracked on an error:
    /// [`TrackError::NotIncreasing`] if `offset` is not above the last
    /// tracked offset, [`TrackError::OutOfRange`] for `u64::MAX`, and
    /// [`TrackError::Full`] if `max_pending` offsets are pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::{TrackError, Watermark};
    ///
    /// let mut watermark = Watermark::new();
    /// watermark.track(10).unwrap();
    /// watermark.track(12).unwrap(); // 11 was compacted away
    /// assert_eq!(watermark.track(11), Err(TrackError::NotIncreasing { offset: 11, last: 12 }));
    /// assert_eq!(watermark.pending(), 2);
    /// ```
    pub fn track(&mut self, offset: u64) -> Result<(), TrackError> {
        if offset == u64::MAX {
            return Err(TrackError::OutOfRange { offset });
        }
        if let Some(last) = self.last_tracked
            && offset <= last
        {
            return Err(TrackError::NotIncreasing { offset, last });
        }
        if self.entries.len() >= self.max_pending {
            return Err(TrackError::Full {
                offset,
                max_pending: self.max_pending,
            });
        }
        self.entries.push_back(Entry {
            offset,
            mark: Mark::Pending,
        });
        self.last_tracked = Some(offset);
        self.metrics.pending.set(self.entries.len() as f64);
        Ok(())
    }

    /// Acknowledges the tracked `offset`: it is done with. Returns the new
    /// [`commit_point`](Self::commit_point) if it moved — `offset` was the
    /// lowest pending one — and `None` if an offset below it is still
    /// pending.
    ///
    /// # Errors
    ///
    /// The watermark does not change on an error: [`AckError::Duplicate`]
    /// if `offset` was already acknowledged and is not passed yet,
    /// [`AckError::Passed`] if the watermark is already past it, and
    /// [`AckError::Untracked`] if it was never tracked.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// for offset in 0..4 {
    ///     watermark.track(offset).unwrap();
    /// }
    /// assert_eq!(watermark.ack(2), Ok(None));
    /// assert_eq!(watermark.ack(1), Ok(None));
    /// assert_eq!(watermark.ack(0), Ok(Some(3))); // passes 0, 1 and 2
    /// ```
    pub fn ack(&mut self, offset: u64) -> Result<Option<u64>, AckError> {
        let index = self.find(offset)?;
        let entry = &mut self.entries[index];
        if entry.mark != Mark::Pending {
            return Err(AckError::Duplicate { offset });
        }
        entry.mark = Mark::Acked;
        if index > 0 {
            return Ok(None);
        }
        while let Some(front) = self.entries.front()
            && front.mark == Mark::Acked
        {
            self.passed = Some(front.offset);
            self.entries.pop_front();
        }
        let point = self.commit_point();
        self.metrics.pending.set(self.entries.len() as f64);
        self.metrics.commit_point.set(point.unwrap_or(0) as f64);
        Ok(point)
    }

    /// Marks the pending `offset` as never to be acknowledged: the
    /// watermark stops before it for good (a [`WatermarkAck`] dropped).
    pub(crate) fn abandon(&mut self, offset: u64) -> Result<(), AckError> {
        let index = self.find(offset)?;
        let entry = &mut self.entries[index];
        if entry.mark != Mark::Pending {
            return Err(AckError::Duplicate { offset });
        }
        entry.mark = Mark::Abandoned;
        if self.abandoned.is_none() && !self.metrics.quiet {
            tracing::warn!(
                name = self.metrics.name.as_str(),
                offset,
                "watermark: an offset was abandoned (its ack dropped); \
                 the commit point will never pass it"
            );
        }
        self.abandoned = Some(self.abandoned.map_or(offset, |low| low.min(offset)));
        Ok(())
    }

    /// The index of the pending `offset`.
    fn find(&self, offset: u64) -> Result<usize, AckError> {
        let missing = || {
            if self.passed.is_some_and(|passed| offset <= passed) {
                AckError::Passed { offset }
            } else {
                AckError::Untracked { offset }
            }
        };
        let Some(head) = self.entries.front() else {
            return Err(missing());
        };
        let Some(distance) = offset.checked_sub(head.offset) else {
            return Err(missing());
        };
        // Dense offsets: the entry is `distance` places after the head.
        // Offsets increase by at least 1, so it is never further than that.
        if let Ok(guess) = usize::try_from(distance)
            && self
                .entries
                .get(guess)
                .is_some_and(|entry| entry.offset == offset)
        {
            return Ok(guess);
        }
        self.entries
            .binary_search_by_key(&offset, |entry| entry.offset)
            .map_err(|_| AckError::Untracked { offset })
    }

    /// The offset to commit: one past
    /// [`last_acked_contiguous`](Self::last_acked_contiguous) (Kafka's "next
    /// offset to read"), or `None` while no offset has been passed. Every
    /// tracked offset below it is acknowledged; it never moves back.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// watermark.track(40).unwrap();
    /// assert_eq!(watermark.commit_point(), None); // nothing to commit yet
    /// watermark.ack(40).unwrap();
    /// assert_eq!(watermark.commit_point(), Some(41));
    /// ```
    pub fn commit_point(&self) -> Option<u64> {
        // `u64::MAX` is never tracked, so this never overflows.
        self.passed.map(|passed| passed + 1)
    }

    /// The highest tracked offset that is acknowledged together with every
    /// tracked offset below it, or `None` while there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// for offset in [1, 4, 9] {
    ///     watermark.track(offset).unwrap();
    /// }
    /// watermark.ack(1).unwrap();
    /// watermark.ack(9).unwrap();
    /// assert_eq!(watermark.last_acked_contiguous(), Some(1)); // 4 is pending
    /// ```
    pub fn last_acked_contiguous(&self) -> Option<u64> {
        self.passed
    }

    /// The lowest tracked offset not acknowledged yet: where a consumer
    /// would resume after a crash now. `None` when every tracked offset is
    /// acknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// for offset in [1, 4, 9] {
    ///     watermark.track(offset).unwrap();
    /// }
    /// watermark.ack(1).unwrap();
    /// assert_eq!(watermark.first_unacked(), Some(4));
    /// ```
    pub fn first_unacked(&self) -> Option<u64> {
        // The front is never acked (acks there are passed at once).
        self.entries.front().map(|entry| entry.offset)
    }

    /// The last offset tracked, passed or not; `None` before the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// assert_eq!(watermark.last_tracked(), None);
    /// watermark.track(7).unwrap();
    /// watermark.ack(7).unwrap();
    /// assert_eq!(watermark.last_tracked(), Some(7));
    /// ```
    pub fn last_tracked(&self) -> Option<u64> {
        self.last_tracked
    }

    /// How many offsets are pending: tracked and not passed yet, including
    /// those acknowledged out of order behind an unacknowledged one. This is
    /// what the watermark holds in memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// for offset in 0..3 {
    ///     watermark.track(offset).unwrap();
    /// }
    /// watermark.ack(2).unwrap();
    /// assert_eq!(watermark.pending(), 3); // 2 waits behind 0 and 1
    /// watermark.ack(0).unwrap();
    /// assert_eq!(watermark.pending(), 2);
    /// ```
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    /// The limit on pending offsets (`usize::MAX`: none).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// assert_eq!(Watermark::with_max_pending(64).max_pending(), 64);
    /// ```
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// Whether `max_pending` offsets are pending, so that
    /// [`track`](Self::track) would return [`TrackError::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::with_max_pending(1);
    /// assert!(!watermark.is_full());
    /// watermark.track(0).unwrap();
    /// assert!(watermark.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_pending
    }

    /// The lowest abandoned offset, if any: the watermark never passes it.
    pub(crate) fn abandoned(&self) -> Option<u64> {
        self.abandoned
    }

    /// The abandoned offset at the front, if the watermark can never move
    /// again.
    pub(crate) fn stuck_at(&self) -> Option<u64> {
        self.entries
            .front()
            .filter(|entry| entry.mark == Mark::Abandoned)
            .map(|entry| entry.offset)
    }
}

impl Default for Watermark {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watermark")
            .field("last_acked_contiguous", &self.passed)
            .field("first_unacked", &self.first_unacked())
            .field("last_tracked", &self.last_tracked)
            .field("pending", &self.entries.len())
            .field("max_pending", &self.max_pending)
            .field("name", &self.metrics.name)
            .finish()
    }
}
