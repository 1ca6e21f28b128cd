//! [`SharedWatermark`]: a [`Watermark`] acknowledged from many tasks through
//! [`WatermarkAck`] tokens, and [`WatermarkWatch`] to await its moves.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use super::Watermark;
use super::error::{TrackError, WatchError};

/// The watermark, inside the channel that wakes the watchers when it moves.
/// Held by every handle and every token: when the last one is dropped,
/// watchers see the channel closed.
type Cell = watch::Sender<Watermark>;

/// A [`Watermark`] shared by the task that tracks offsets and the tasks that
/// acknowledge them: [`try_track`](Self::try_track) returns a
/// [`WatermarkAck`] token for the offset, which is `Send + 'static` and
/// acknowledges it when [`ack`](WatermarkAck::ack) is called — from any task,
/// in any order — or abandons it when dropped. [`watch`](Self::watch) gives
/// a [`WatermarkWatch`] whose [`changed`](WatermarkWatch::changed) waits for
/// the commit point to move.
///
/// Handles are cheap clones of one watermark. The plain [`Watermark`] sits
/// behind one lock: a token's `ack` takes it once (and wakes the watchers
/// only when the commit point moves). This is what a
/// [`CursorSource`](super::super::CursorSource) uses over its page sequence
/// numbers.
///
/// # Abandoned offsets
///
/// Dropping a [`WatermarkAck`] without calling `ack` means "not done": the
/// watermark never passes that offset. [`abandoned`](Self::abandoned) tells
/// at once; once every offset below it is acknowledged, watchers get
/// [`WatchError::Stuck`]. A consumer then stops and restarts from the
/// commit point, redoing the abandoned offset.
///
/// # Back-pressure
///
/// With [`with_max_pending`](Self::with_max_pending), [`try_track`](Self::try_track)
/// returns [`TrackError::Full`] when that many offsets are pending, and
/// [`track`](Self::track) waits until the lowest ones are acknowledged.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use flowgate::source::SharedWatermark;
///
/// let watermark = SharedWatermark::new();
/// let mut watch = watermark.watch();
/// let mut workers = Vec::new();
/// for offset in [10, 11, 13] {
///     let ack = watermark.try_track(offset).unwrap();
///     workers.push(tokio::spawn(async move {
///         // ... process the record at `offset` ...
///         ack.ack();
///     }));
/// }
/// drop(watermark);
/// let mut point = None;
/// while point != Some(14) {
///     point = Some(watch.changed().await.unwrap()); // commit it here
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct SharedWatermark {
    cell: Arc<Cell>,
}

impl SharedWatermark {
    /// A shared watermark with no limit on pending offsets.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// watermark.try_track(0).unwrap().ack();
    /// assert_eq!(watermark.commit_point(), Some(1));
    /// ```
    pub fn new() -> Self {
        Self::from_watermark(Watermark::new())
    }

    /// A shared watermark holding at most `max_pending` pending offsets (see
    /// [`Watermark::with_max_pending`]); `usize::MAX` means no limit, and
    /// nothing is allocated up front.
    ///
    /// # Panics
    ///
    /// `"SharedWatermark::with_max_pending: max_pending must be at least 1"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::{SharedWatermark, TrackError};
    ///
    /// let watermark = SharedWatermark::with_max_pending(1);
    /// let first = watermark.try_track(0).unwrap();
    /// assert!(matches!(watermark.try_track(1), Err(TrackError::Full { .. })));
    /// first.ack();
    /// watermark.try_track(1).unwrap().ack();
    /// ```
    #[track_caller]
    pub fn with_max_pending(max_pending: usize) -> Self {
        assert!(
            max_pending > 0,
            "SharedWatermark::with_max_pending: max_pending must be at least 1"
        );
        Self::from_watermark(Watermark::with_max_pending(max_pending))
    }

    /// Names the watermark: the `name` label of its series (feature
    /// `metrics`) and the `name` field of its events, as
    /// [`Watermark::name`], for every handle and token. Any string is
    /// accepted as given; the series are registered now, with the recorder
    /// current at this call. Without a name, no metrics.
    ///
    /// Enables `flowgate_source_watermark_commit_point` and
    /// `flowgate_source_watermark_pending` (gauges; see [`crate::metrics`]).
    /// The first abandoned offset logs one `warn` event.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new().name("stream:orders");
    /// let ack = watermark.try_track(41).unwrap();
    /// std::thread::spawn(move || ack.ack()).join().unwrap();
    /// // flowgate_source_watermark_commit_point{name="stream:orders"} is 42.
    /// assert_eq!(watermark.commit_point(), Some(42));
    /// ```
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = crate::telemetry::Name::new(name);
        // Not a move of the commit point: no one to wake.
        self.cell.send_if_modified(|watermark| {
            watermark.set_name(name);
            false
        });
        self
    }

    /// A watermark whose first abandoned offset its owner logs itself (a
    /// cursor source).
    pub(crate) fn quiet() -> Self {
        Self::from_watermark(Watermark::new().quiet())
    }

    fn from_watermark(watermark: Watermark) -> Self {
        SharedWatermark {
            cell: Arc::new(watch::Sender::new(watermark)),
        }
    }

    /// Tracks `offset` now (see [`Watermark::track`]) and returns its token.
    /// Never waits.
    ///
    /// # Errors
    ///
    /// As [`Watermark::track`]: [`TrackError::NotIncreasing`],
    /// [`TrackError::OutOfRange`], [`TrackError::Full`] — or
    /// [`TrackError::Stuck`] instead of `Full` when the lowest pending
    /// offset was abandoned, so room never comes back.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::{SharedWatermark, TrackError};
    ///
    /// let watermark = SharedWatermark::new();
    /// let ack = watermark.try_track(5).unwrap();
    /// assert_eq!(ack.offset(), 5);
    /// assert!(matches!(watermark.try_track(5), Err(TrackError::NotIncreasing { .. })));
    /// ack.ack();
    /// ```
    pub fn try_track(&self, offset: u64) -> Result<WatermarkAck, TrackError> {
        let mut tracked = Ok(());
        // Tracking never moves the commit point: no one to wake.
        self.cell.send_if_modified(|watermark| {
            tracked = watermark.track(offset);
            if let Err(TrackError::Full { .. }) = tracked
                && let Some(abandoned) = watermark.stuck_at()
            {
                tracked = Err(TrackError::Stuck { offset, abandoned });
            }
            false
        });
        tracked.map(|()| WatermarkAck {
            cell: Arc::clone(&self.cell),
            offset,
            resolved: false,
        })
    }

    /// Tracks `offset` and returns its token, waiting while `max_pending`
    /// offsets are pending until the lowest ones are acknowledged. Without a
    /// limit it never waits.
    ///
    /// # Errors
    ///
    /// As [`try_track`](Self::try_track), but never [`TrackError::Full`]:
    /// [`TrackError::Stuck`] if the lowest pending offset is abandoned while
    /// this waits (room would never come back).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled call tracks nothing and loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::with_max_pending(1);
    /// let first = watermark.track(0).await.unwrap();
    /// let worker = tokio::spawn(async move { first.ack() });
    /// let second = watermark.track(1).await.unwrap(); // waits for the ack of 0
    /// assert_eq!(watermark.commit_point(), Some(1));
    /// second.ack();
    /// worker.await.unwrap();
    /// # }
    /// ```
    pub async fn track(&self, offset: u64) -> Result<WatermarkAck, TrackError> {
        // Subscribed before trying, so an ack in between is not missed.
        let mut moved = self.cell.subscribe();
        loop {
            match self.try_track(offset) {
                Err(TrackError::Full { .. }) => {}
                done => return done,
            }
            // Room comes back when the commit point moves (acks at the
            // front), and never once the front is abandoned.
            let _ = moved
                .wait_for(|watermark| !watermark.is_full() || watermark.stuck_at().is_some())
                .await
                .expect("this handle keeps the channel open");
        }
    }

    /// The offset to commit now; see [`Watermark::commit_point`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let (a, b) = (watermark.try_track(1).unwrap(), watermark.try_track(2).unwrap());
    /// b.ack();
    /// assert_eq!(watermark.commit_point(), None); // 1 still pending
    /// a.ack();
    /// assert_eq!(watermark.commit_point(), Some(3));
    /// ```
    pub fn commit_point(&self) -> Option<u64> {
        self.cell.borrow().commit_point()
    }

    /// See [`Watermark::last_acked_contiguous`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// watermark.try_track(4).unwrap().ack();
    /// assert_eq!(watermark.last_acked_contiguous(), Some(4));
    /// ```
    pub fn last_acked_contiguous(&self) -> Option<u64> {
        self.cell.borrow().last_acked_contiguous()
    }

    /// See [`Watermark::first_unacked`]; an abandoned offset counts as
    /// unacknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let (a, b) = (watermark.try_track(4).unwrap(), watermark.try_track(6).unwrap());
    /// a.ack();
    /// assert_eq!(watermark.first_unacked(), Some(6));
    /// b.ack();
    /// ```
    pub fn first_unacked(&self) -> Option<u64> {
        self.cell.borrow().first_unacked()
    }

    /// See [`Watermark::pending`]; abandoned offsets stay pending for good.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let ack = watermark.try_track(0).unwrap();
    /// assert_eq!(watermark.pending(), 1);
    /// ack.ack();
    /// assert_eq!(watermark.pending(), 0);
    /// ```
    pub fn pending(&self) -> usize {
        self.cell.borrow().pending()
    }

    /// The lowest offset whose [`WatermarkAck`] was dropped without `ack`:
    /// the watermark never passes it. Known as soon as the token is
    /// dropped, before the commit point reaches it.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let first = watermark.try_track(1).unwrap();
    /// drop(watermark.try_track(2).unwrap()); // not done
    /// assert_eq!(watermark.abandoned(), Some(2));
    /// first.ack();
    /// assert_eq!(watermark.commit_point(), Some(2)); // and no further
    /// ```
    pub fn abandoned(&self) -> Option<u64> {
        self.cell.borrow().abandoned()
    }

    /// A [`WatermarkWatch`] that waits for the commit point to move from
    /// where it is now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let mut watch = watermark.watch();
    /// watermark.try_track(0).unwrap().ack();
    /// assert_eq!(watch.changed().await, Ok(1));
    /// # }
    /// ```
    pub fn watch(&self) -> WatermarkWatch {
        let moved = self.cell.subscribe();
        let seen = moved.borrow().commit_point();
        WatermarkWatch { moved, seen }
    }

    /// Reads the watermark under its lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Watermark) -> R) -> R {
        f(&self.cell.borrow())
    }
}

impl Default for SharedWatermark {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SharedWatermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedWatermark")
            .field(&*self.cell.borrow())
            .finish()
    }
}

/// The acknowledgement token of one offset of a [`SharedWatermark`], from
/// [`try_track`](SharedWatermark::try_track) or
/// [`track`](SharedWatermark::track).
///
/// [`ack`](Self::ack) acknowledges the offset. Dropping the token without
/// calling it *abandons* the offset: the watermark never passes it (see
/// [`SharedWatermark::abandoned`] and [`WatchError::Stuck`]). A token keeps
/// the watermark alive, so watchers are not closed while one is out.
///
/// # Examples
///
/// ```
/// use flowgate::source::SharedWatermark;
///
/// let watermark = SharedWatermark::new();
/// let ack = watermark.try_track(3).unwrap();
/// std::thread::spawn(move || ack.ack()).join().unwrap();
/// assert_eq!(watermark.commit_point(), Some(4));
/// ```
#[must_use = "dropping a WatermarkAck without calling ack() holds the watermark back for good"]
pub struct WatermarkAck {
    cell: Arc<Cell>,
    offset: u64,
    resolved: bool,
}

impl WatermarkAck {
    /// The offset this token acknowledges.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let ack = watermark.try_track(9).unwrap();
    /// assert_eq!(ack.offset(), 9);
    /// ack.ack();
    /// ```
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Acknowledges the offset; wakes the watchers if that moved the commit
    /// point.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let acks: Vec<_> = (0..3).map(|offset| watermark.try_track(offset).unwrap()).collect();
    /// for ack in acks.into_iter().rev() {
    ///     ack.ack(); // any order
    /// }
    /// assert_eq!(watermark.commit_point(), Some(3));
    /// ```
    pub fn ack(mut self) {
        self.resolved = true;
        let offset = self.offset;
        self.cell.send_if_modified(|watermark| {
            let acked = watermark.ack(offset);
            debug_assert!(acked.is_ok(), "a token's offset is pending: {acked:?}");
            matches!(acked, Ok(Some(_)))
        });
    }
}

impl Drop for WatermarkAck {
    fn drop(&mut self) {
        if self.resolved {
            return;
        }
        let offset = self.offset;
        self.cell.send_if_modified(|watermark| {
            let abandoned = watermark.abandon(offset);
            debug_assert!(
                abandoned.is_ok(),
                "a token's offset is pending: {abandoned:?}"
            );
            // Watchers and waiting trackers care once the front is stuck.
            watermark.stuck_at().is_some()
        });
    }
}

impl fmt::Debug for WatermarkAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkAck")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// Waits for the commit point of a [`SharedWatermark`] to move; from
/// [`SharedWatermark::watch`]. Clones watch independently.
///
/// A watch does not keep the watermark alive: once every handle and every
/// [`WatermarkAck`] is dropped and the last commit point was seen,
/// [`changed`](Self::changed) returns [`WatchError::Closed`] rather than
/// waiting for ever.
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
/// watermark.try_track(0).unwrap().ack();
/// drop(watermark);
/// assert_eq!(watch.changed().await, Ok(1)); // the last move is still seen
/// assert_eq!(watch.changed().await, Err(WatchError::Closed));
/// # }
/// ```
#[derive(Clone)]
pub struct WatermarkWatch {
    moved: watch::Receiver<Watermark>,
    /// The commit point last returned (or when the watch was made).
    seen: Option<u64>,
}

impl WatermarkWatch {
    /// Waits until the commit point differs from the one this watch last
    /// returned (or saw when it was made) and returns it. Moves in between
    /// are not queued: it returns the newest commit point, which is what a
    /// consumer commits.
    ///
    /// # Errors
    ///
    /// [`WatchError::Stuck`] once the commit point stands right before an
    /// abandoned offset (it can never move again), and
    /// [`WatchError::Closed`] once every handle and token is gone and the
    /// newest commit point was returned already.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled call loses nothing; the next call returns
    /// the move it would have returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let mut watch = watermark.watch();
    /// let acks: Vec<_> = (0..3).map(|offset| watermark.try_track(offset).unwrap()).collect();
    /// let committer = tokio::spawn(async move {
    ///     let mut point = 0;
    ///     while point < 3 {
    ///         point = watch.changed().await.unwrap(); // commit `point` here
    ///     }
    ///     point
    /// });
    /// for ack in acks {
    ///     ack.ack();
    /// }
    /// assert_eq!(committer.await.unwrap(), 3);
    /// # }
    /// ```
    pub async fn changed(&mut self) -> Result<u64, WatchError> {
        let seen = self.seen;
        let watermark = self
            .moved
            .wait_for(|watermark| {
                watermark.commit_point() != seen || watermark.stuck_at().is_some()
            })
            .await
            .map_err(|_| WatchError::Closed)?;
        match watermark.commit_point() {
            Some(point) if Some(point) != seen => {
                drop(watermark);
                self.seen = Some(point);
                Ok(point)
            }
            _ => Err(WatchError::Stuck {
                offset: watermark.stuck_at().expect("the wait ended"),
            }),
        }
    }

    /// The commit point now (not marking it seen).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::SharedWatermark;
    ///
    /// let watermark = SharedWatermark::new();
    /// let watch = watermark.watch();
    /// watermark.try_track(0).unwrap().ack();
    /// assert_eq!(watch.commit_point(), Some(1));
    /// ```
    pub fn commit_point(&self) -> Option<u64> {
        self.moved.borrow().commit_point()
    }
}

impl fmt::Debug for WatermarkWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkWatch")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}
