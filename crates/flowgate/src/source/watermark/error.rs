//! Errors of the watermark types.

use std::error::Error;
use std::fmt;

/// Why [`Watermark::track`](super::Watermark::track) (or
/// [`SharedWatermark::try_track`](super::SharedWatermark::try_track) and
/// [`track`](super::SharedWatermark::track)) refused an offset. Nothing was
/// tracked.
///
/// # Examples
///
/// ```
/// use flowgate::source::{TrackError, Watermark};
///
/// let mut watermark = Watermark::with_max_pending(1);
/// watermark.track(7).unwrap();
/// assert_eq!(watermark.track(7), Err(TrackError::NotIncreasing { offset: 7, last: 7 }));
/// let full = watermark.track(8).unwrap_err();
/// assert_eq!(full, TrackError::Full { offset: 8, max_pending: 1 });
/// assert!(full.is_transient()); // room comes back as offsets are acked
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackError {
    /// `offset` is not above the last tracked offset `last`: offsets are
    /// tracked in increasing order (a bug in the caller, or a partition
    /// that was reset; start a new watermark for it).
    NotIncreasing {
        /// The offset refused.
        offset: u64,
        /// The last offset tracked.
        last: u64,
    },
    /// `max_pending` offsets are tracked and not passed yet: ack some (the
    /// lowest first) before tracking more. The back-pressure signal: a
    /// source stops fetching until the watermark moves.
    Full {
        /// The offset refused.
        offset: u64,
        /// The watermark's limit.
        max_pending: usize,
    },
    /// `u64::MAX` cannot be tracked: the commit point after it (`offset + 1`)
    /// would not fit in a `u64`.
    OutOfRange {
        /// The offset refused (`u64::MAX`).
        offset: u64,
    },
    /// The shared watermark is full, and its lowest pending offset
    /// `abandoned` was dropped unacknowledged
    /// ([`WatermarkAck`](super::WatermarkAck) dropped without `ack`), so it
    /// never moves and room never comes back. Only
    /// [`SharedWatermark::track`](super::SharedWatermark::track) returns it.
    Stuck {
        /// The offset refused.
        offset: u64,
        /// The abandoned offset that holds the watermark.
        abandoned: u64,
    },
}

impl TrackError {
    /// The offset that was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// watermark.track(10).unwrap();
    /// assert_eq!(watermark.track(3).unwrap_err().offset(), 3);
    /// ```
    pub fn offset(&self) -> u64 {
        match *self {
            Self::NotIncreasing { offset, .. }
            | Self::Full { offset, .. }
            | Self::OutOfRange { offset }
            | Self::Stuck { offset, .. } => offset,
        }
    }

    /// Whether trying again later may succeed: only [`Full`](Self::Full),
    /// once offsets are acknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// assert!(!watermark.track(u64::MAX).unwrap_err().is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Full { .. })
    }
}

impl fmt::Display for TrackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotIncreasing { offset, last } => write!(
                f,
                "offset {offset} is not above the last tracked offset {last}"
            ),
            Self::Full {
                offset,
                max_pending,
            } => write!(
                f,
                "cannot track offset {offset}: {max_pending} offsets are pending"
            ),
            Self::OutOfRange { offset } => write!(
                f,
                "offset {offset} cannot be tracked: the commit point after it would not fit in a u64"
            ),
            Self::Stuck { offset, abandoned } => write!(
                f,
                "cannot track offset {offset}: the watermark is full and held for good by abandoned offset {abandoned}"
            ),
        }
    }
}

impl Error for TrackError {}

/// Why [`Watermark::ack`](super::Watermark::ack) (or
/// [`PartitionedWatermark::ack`](super::PartitionedWatermark::ack)) refused an
/// offset. The watermark did not change.
///
/// # Examples
///
/// ```
/// use flowgate::source::{AckError, Watermark};
///
/// let mut watermark = Watermark::new();
/// watermark.track(1).unwrap();
/// watermark.track(2).unwrap();
/// watermark.ack(2).unwrap();
/// assert_eq!(watermark.ack(2), Err(AckError::Duplicate { offset: 2 }));
/// assert_eq!(watermark.ack(5), Err(AckError::Untracked { offset: 5 }));
/// watermark.ack(1).unwrap();
/// assert_eq!(watermark.ack(1), Err(AckError::Passed { offset: 1 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckError {
    /// `offset` is tracked, not passed yet, and was already acknowledged.
    Duplicate {
        /// The offset acknowledged twice.
        offset: u64,
    },
    /// `offset` is at or below the last contiguously acknowledged offset:
    /// the watermark has passed it. It was acknowledged before (a duplicate)
    /// or never tracked; the watermark forgets passed offsets, so it cannot
    /// tell which.
    Passed {
        /// The offset behind the watermark.
        offset: u64,
    },
    /// `offset` is above the watermark and was never tracked (a gap between
    /// tracked offsets, above the last one, or a partition never tracked or
    /// removed).
    Untracked {
        /// The offset that is not tracked.
        offset: u64,
    },
}

impl AckError {
    /// The offset that was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// assert_eq!(watermark.ack(4).unwrap_err().offset(), 4);
    /// ```
    pub fn offset(&self) -> u64 {
        match *self {
            Self::Duplicate { offset } | Self::Passed { offset } | Self::Untracked { offset } => {
                offset
            }
        }
    }

    /// Whether trying again later may succeed: never — each is a fact about
    /// the offset, not a passing condition.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Watermark;
    ///
    /// let mut watermark = Watermark::new();
    /// assert!(!watermark.ack(4).unwrap_err().is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        false
    }
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate { offset } => write!(f, "offset {offset} was already acknowledged"),
            Self::Passed { offset } => write!(
                f,
                "offset {offset} is behind the watermark (acknowledged before, or never tracked)"
            ),
            Self::Untracked { offset } => write!(f, "offset {offset} was never tracked"),
        }
    }
}

impl Error for AckError {}

/// Why [`WatermarkWatch::changed`](super::WatermarkWatch::changed) resolved
/// without a new commit point.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use flowgate::source::{SharedWatermark, WatchError};
///
/// let watermark = SharedWatermark::new();
/// let mut watch = watermark.watch();
/// drop(watermark.try_track(1).unwrap()); // dropped without ack
/// assert_eq!(watch.changed().await, Err(WatchError::Stuck { offset: 1 }));
/// drop(watermark);
/// assert_eq!(watch.changed().await, Err(WatchError::Stuck { offset: 1 })); // still stuck
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchError {
    /// The lowest pending offset was dropped unacknowledged (its
    /// [`WatermarkAck`](super::WatermarkAck) dropped without `ack`): the
    /// commit point can never move again.
    Stuck {
        /// The abandoned offset.
        offset: u64,
    },
    /// Every [`SharedWatermark`](super::SharedWatermark) handle and every
    /// [`WatermarkAck`](super::WatermarkAck) is gone, and the last commit
    /// point was already seen: nothing can move it again.
    Closed,
}

impl WatchError {
    /// Whether waiting again may succeed: never.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::WatchError;
    ///
    /// assert!(!WatchError::Closed.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        false
    }
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stuck { offset } => write!(
                f,
                "the watermark is held for good by offset {offset}, dropped unacknowledged"
            ),
            Self::Closed => f.write_str("every watermark handle and ack is gone"),
        }
    }
}

impl Error for WatchError {}
