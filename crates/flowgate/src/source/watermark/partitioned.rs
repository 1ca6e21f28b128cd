//! [`PartitionedWatermark`]: one [`Watermark`] per partition, and the report
//! of the partitions whose commit points moved.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use foldhash::fast::RandomState;

use super::Watermark;
use super::error::{AckError, TrackError};
use crate::telemetry::{Gauge, Name};

struct Partition {
    watermark: Watermark,
    /// Listed in `changed` since the last `take_changed`.
    changed: bool,
}

/// A [`Watermark`] per partition (a Kafka topic-partition, a Redis stream
/// key, a shard), each independent of the others, and
/// [`take_changed`](Self::take_changed): the partitions whose commit points
/// moved since the last call, so that a consumer commits only those.
///
/// A partition is created by its first [`track`](Self::track) and dropped by
/// [`remove`](Self::remove) (a Kafka rebalance revoking it). Every
/// partition gets the same `max_pending` limit. Each call hashes the
/// partition once; the rest is [`Watermark`]'s cost.
///
/// # Examples
///
/// ```
/// use flowgate::source::PartitionedWatermark;
///
/// let mut watermark = PartitionedWatermark::new();
/// watermark.track("orders-0", 10).unwrap();
/// watermark.track("orders-0", 11).unwrap();
/// watermark.track("orders-1", 7).unwrap();
/// watermark.ack(&"orders-0", 11).unwrap(); // 10 still pending
/// watermark.ack(&"orders-1", 7).unwrap();
/// // Commit only what moved: orders-1 at 8.
/// assert_eq!(watermark.take_changed(), vec![("orders-1", 8)]);
/// watermark.ack(&"orders-0", 10).unwrap();
/// assert_eq!(watermark.take_changed(), vec![("orders-0", 12)]);
/// assert!(watermark.take_changed().is_empty());
/// ```
pub struct PartitionedWatermark<P> {
    partitions: HashMap<P, Partition, RandomState>,
    /// Partitions whose commit point moved since the last `take_changed`,
    /// in the order they first moved.
    changed: Vec<P>,
    max_pending: usize,
    name: Name,
    /// `flowgate_source_watermark_pending`: over every partition.
    pending: Gauge,
    /// `flowgate_source_watermark_partitions`.
    partition_count: Gauge,
}

impl<P: Hash + Eq + Clone> PartitionedWatermark<P> {
    /// Per-partition watermarks with no limit on pending offsets.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::PartitionedWatermark;
    ///
    /// let watermark = PartitionedWatermark::<u32>::new();
    /// assert_eq!(watermark.commit_point(&0), None);
    /// ```
    pub fn new() -> Self {
        Self::with_max_pending(usize::MAX)
    }

    /// Per-partition watermarks each holding at most `max_pending` pending
    /// offsets (see [`Watermark::with_max_pending`]); `usize::MAX` means no
    /// limit, and nothing is allocated up front.
    ///
    /// # Panics
    ///
    /// `"PartitionedWatermark::with_max_pending: max_pending must be at least 1"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::{PartitionedWatermark, TrackError};
    ///
    /// let mut watermark = PartitionedWatermark::with_max_pending(1);
    /// watermark.track(0u32, 5).unwrap();
    /// assert!(matches!(watermark.track(0, 6), Err(TrackError::Full { .. })));
    /// watermark.track(1, 6).unwrap(); // another partition has its own room
    /// ```
    #[track_caller]
    pub fn with_max_pending(max_pending: usize) -> Self {
        assert!(
            max_pending > 0,
            "PartitionedWatermark::with_max_pending: max_pending must be at least 1"
        );
        PartitionedWatermark {
            partitions: HashMap::default(),
            changed: Vec::new(),
            max_pending,
            name: Name::none(),
            pending: Gauge::noop(),
            partition_count: Gauge::noop(),
        }
    }

    /// Names the watermarks: the `name` label of their series (feature
    /// `metrics`). Any string is accepted as given. The series are
    /// registered now, with the recorder current at this call, and set to
    /// the present state. Without a name, no metrics. Partitions are not a
    /// label (their number is unbounded): the series sum over them.
    ///
    /// Enables (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_source_watermark_pending` (gauge): pending offsets over
    ///   every partition;
    /// - `flowgate_source_watermark_partitions` (gauge): partitions tracked.
    ///
    /// Read each partition's commit point from
    /// [`take_changed`](Self::take_changed) or [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::PartitionedWatermark;
    ///
    /// let mut watermark = PartitionedWatermark::new().name("orders");
    /// watermark.track(0u32, 5).unwrap();
    /// watermark.track(1u32, 9).unwrap();
    /// // flowgate_source_watermark_pending{name="orders"} is 2,
    /// // flowgate_source_watermark_partitions{name="orders"} 2.
    /// watermark.ack(&1, 9).unwrap();
    /// assert_eq!(watermark.take_changed(), vec![(1, 10)]);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self.pending = self.name.gauge("flowgate_source_watermark_pending");
        self.partition_count = self.name.gauge("flowgate_source_watermark_partitions");
        let pending: usize = self
            .partitions
            .values()
            .map(|entry| entry.watermark.pending())
            .sum();
        self.pending.set(pending as f64);
        self.partition_count.set(self.partitions.len() as f64);
        self
    }

    /// Tracks `offset` of `partition`, creating the partition's watermark on
    /// its first offset; see [`Watermark::track`].
    ///
    /// # Errors
    ///
    /// As [`Watermark::track`], for this partition's watermark; nothing is
    /// tracked (and no partition created) on an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::{PartitionedWatermark, TrackError};
    ///
    /// let mut watermark = PartitionedWatermark::new();
    /// watermark.track(0u32, 100).unwrap();
    /// watermark.track(1, 3).unwrap(); // partitions are independent
    /// assert!(matches!(watermark.track(0, 50), Err(TrackError::NotIncreasing { .. })));
    /// ```
    pub fn track(&mut self, partition: P, offset: u64) -> Result<(), TrackError> {
        if let Some(existing) = self.partitions.get_mut(&partition) {
            existing.watermark.track(offset)?;
            self.pending.inc();
            return Ok(());
        }
        let mut watermark = Watermark::with_max_pending(self.max_pending);
        watermark.track(offset)?;
        self.pending.inc();
        self.partition_count.inc();
        self.partitions.insert(
            partition,
            Partition {
                watermark,
                changed: false,
            },
        );
        Ok(())
    }

    /// Acknowledges `offset` of `partition`; returns the partition's new
    /// commit point if it moved (and lists the partition for
    /// [`take_changed`](Self::take_changed)). See [`Watermark::ack`].
    ///
    /// # Errors
    ///
    /// As [`Watermark::ack`]; an unknown partition (never tracked, or
    /// removed) gives [`AckError::Untracked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::{AckError, PartitionedWatermark};
    ///
    /// let mut watermark = PartitionedWatermark::new();
    /// watermark.track(0u32, 100).unwrap();
    /// assert_eq!(watermark.ack(&0, 100), Ok(Some(101)));
    /// assert_eq!(watermark.ack(&9, 100), Err(AckError::Untracked { offset: 100 }));
    /// ```
    pub fn ack(&mut self, partition: &P, offset: u64) -> Result<Option<u64>, AckError> {
        let Some(entry) = self.partitions.get_mut(partition) else {
            return Err(AckError::Untracked { offset });
        };
        let before = entry.watermark.pending();
        let moved = entry.watermark.ack(offset)?;
        if moved.is_some() {
            self.pending
                .sub((before - entry.watermark.pending()) as f64);
        }
        if moved.is_some() && !entry.changed {
            entry.changed = true;
            self.changed.push(partition.clone());
        }
        Ok(moved)
    }

    /// The commit point of `partition` (see [`Watermark::commit_point`]);
    /// `None` for an unknown partition or one with nothing passed yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::PartitionedWatermark;
    ///
    /// let mut watermark = PartitionedWatermark::new();
    /// watermark.track(2u32, 0).unwrap();
    /// watermark.ack(&2, 0).unwrap();
    /// assert_eq!(watermark.commit_point(&2), Some(1));
    /// assert_eq!(watermark.commit_point(&3), None);
    /// ```
    pub fn commit_point(&self, partition: &P) -> Option<u64> {
        self.partitions
            .get(partition)
            .and_then(|entry| entry.watermark.commit_point())
    }

    /// The watermark of `partition`, to read its pending count, first
    /// unacknowledged offset and so on.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::PartitionedWatermark;
    ///
    /// let mut watermark = PartitionedWatermark::new();
    /// watermark.track("a", 1).unwrap();
    /// watermark.track("a", 2).unwrap();
    /// assert_eq!(watermark.get(&"a").map(|w| w.pending()), Some(2));
    /// assert!(watermark.get(&"b").is_none());
    /// ```
    pub fn get(&self, partition: &P) -> Option<&Watermark> {
        self.partitions.get(partition).map(|entry| &entry.watermark)
    }

    /// Forgets `partition` (for example revoked by a rebalance) and returns
    /// its watermark; it is no longer reported by
    /// [`take_changed`](Self::take_changed), and its late acks give
    /// [`AckError::Untracked`]. Tracking it again starts a new watermark.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::PartitionedWatermark;
    ///
    /// let mut watermark = PartitionedWatermark::new();
    /// watermark.track(0u32, 10).unwrap();
    /// watermark.ack(&0, 10).unwrap();
    /// let revoked = watermark.remove(&0).unwrap();
    /// assert_eq!(revoked.commit_point(), Some(11)); // commit it before letting go
    /// assert!(watermark.take_changed().is_empty());
    /// ```
    pub fn remove(&mut self, partition: &P) -> Option<Watermark> {
        let entry = self.partitions.remove(partition)?;
        self.pending.sub(entry.watermark.pending() as f64);
        self.partition_count.dec();
        if entry.changed {
            self.changed.retain(|changed| changed != partition);
        }
        Some(entry.watermark)
    }

    /// The partitions whose commit points moved since the last call (or since
    /// they were created), each with its commit point now, in the order they
    /// first moved. A Kafka consumer commits exactly these.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::PartitionedWatermark;
    ///
    /// let mut watermark = PartitionedWatermark::new();
    /// for partition in 0u32..3 {
    ///     watermark.track(partition, 0).unwrap();
    ///     watermark.track(partition, 1).unwrap();
    /// }
    /// watermark.ack(&2, 0).unwrap();
    /// watermark.ack(&0, 0).unwrap();
    /// watermark.ack(&2, 1).unwrap(); // 2 moved twice: listed once, at its latest
    /// assert_eq!(watermark.take_changed(), vec![(2, 2), (0, 1)]);
    /// assert_eq!(watermark.take_changed(), vec![]);
    /// ```
    pub fn take_changed(&mut self) -> Vec<(P, u64)> {
        let partitions = &mut self.partitions;
        self.changed
            .drain(..)
            .filter_map(|partition| {
                let entry = partitions.get_mut(&partition)?;
                entry.changed = false;
                let point = entry.watermark.commit_point()?;
                Some((partition, point))
            })
            .collect()
    }
}

impl<P: Hash + Eq + Clone> Default for PartitionedWatermark<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: fmt::Debug> fmt::Debug for PartitionedWatermark<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedWatermark")
            .field("partitions", &self.partitions.len())
            .field("changed", &self.changed)
            .field("max_pending", &self.max_pending)
            .field("name", &self.name)
            .finish()
    }
}
