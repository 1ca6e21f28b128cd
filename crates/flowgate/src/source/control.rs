//! [`CursorControl`]: pause, resume and stop a cursor source from anywhere,
//! and watch its checkpoint.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::ack::Signal;
use crate::sync::lock;

/// State shared by the control handles, the stream and the driver.
pub(crate) struct ControlInner<C> {
    pub(crate) flags: Mutex<Flags>,
    pub(crate) signal: Arc<Signal>,
    pub(crate) status: watch::Sender<Status<C>>,
    /// Ends the stream at once, from the caller of `stop_now` rather than
    /// at the driver's next poll.
    pub(crate) end_now: Box<dyn Fn() + Send + Sync>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub(crate) paused: bool,
    pub(crate) stop: Option<Stop>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Fetch no more; deliver what was fetched.
    Drain,
    /// Fetch no more; drop what was not delivered.
    Now,
}

/// What the driver publishes.
#[derive(Debug)]
pub(crate) struct Status<C> {
    pub(crate) started_from: Option<C>,
    pub(crate) committed: Option<C>,
    pub(crate) finished: bool,
    pub(crate) stats: CursorStats,
}

impl<C> ControlInner<C> {
    pub(crate) fn new(signal: Arc<Signal>, end_now: Box<dyn Fn() + Send + Sync>) -> Self {
        ControlInner {
            flags: Mutex::new(Flags::default()),
            signal,
            end_now,
            status: watch::Sender::new(Status {
                started_from: None,
                committed: None,
                finished: false,
                stats: CursorStats::default(),
            }),
        }
    }

    pub(crate) fn flags(&self) -> Flags {
        *lock(&self.flags)
    }

    fn update(&self, f: impl FnOnce(&mut Flags)) {
        f(&mut lock(&self.flags));
        self.signal.driver.wake();
    }
}

/// Counters of a [`CursorSource`](super::CursorSource), from
/// [`CursorControl::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CursorStats {
    /// Pages fetched (empty ones included).
    pub pages_fetched: u64,
    /// Items fetched.
    pub items_fetched: u64,
    /// Items acknowledged.
    pub items_acked: u64,
    /// Pages covered by committed checkpoints: fully acknowledged, and
    /// behind the committed cursor.
    pub pages_committed: u64,
    /// Successful commits to the checkpoint store.
    pub commits: u64,
    /// Failed fetches.
    pub fetch_errors: u64,
}

/// A handle to pause, resume and stop a [`CursorSource`](super::CursorSource),
/// and to read its checkpoint. Get one from
/// [`CursorSource::control`](super::CursorSource::control); clones control
/// the same source.
///
/// | call | fetching | items already fetched | the stream |
/// |---|---|---|---|
/// | [`pause`](Self::pause) | no new page starts; one being fetched completes | still yielded | waits, does not end |
/// | [`resume`](Self::resume) | goes on from the next cursor | — | — |
/// | [`stop`](Self::stop) | stops; a fetch in progress is dropped | still yielded | ends after them |
/// | [`stop_now`](Self::stop_now) | stops; a fetch in progress is dropped | dropped, redone after a restart | ends at once |
///
/// Stopping never loses an acknowledged item and never commits past an
/// unacknowledged one; items yielded before the stop can still be
/// acknowledged, and the driver commits their pages before it finishes.
pub struct CursorControl<C> {
    pub(crate) inner: Arc<ControlInner<C>>,
}

impl<C> CursorControl<C> {
    /// Stops fetching new pages until [`resume`](Self::resume). A fetch in
    /// progress completes and its items are yielded; items already fetched
    /// keep flowing. Pausing twice is the same as pausing once.
    pub fn pause(&self) {
        self.inner.update(|flags| flags.paused = true);
    }

    /// Fetches pages again after [`pause`](Self::pause) (or after a failed
    /// fetch with [`OnFetchError::Pause`](super::OnFetchError::Pause), which
    /// retries the same cursor). Does nothing after a stop.
    pub fn resume(&self) {
        self.inner.update(|flags| flags.paused = false);
    }

    /// Whether the source is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.flags().paused
    }

    /// Stops fetching; the stream ends once the items already fetched have
    /// been yielded (at most `max_pages_in_flight` pages). A fetch in
    /// progress is dropped, so the fetch function must be safe to cancel (it
    /// only reads). Irreversible.
    pub fn stop(&self) {
        self.inner.update(|flags| {
            flags.stop.get_or_insert(Stop::Drain);
        });
    }

    /// Stops fetching and ends the stream at once: items fetched but not yet
    /// yielded are dropped, and since they were never acknowledged, the
    /// checkpoint stays before their page and a restart fetches them again.
    /// Irreversible; overrides [`stop`](Self::stop).
    pub fn stop_now(&self) {
        self.inner.update(|flags| flags.stop = Some(Stop::Now));
        (self.inner.end_now)();
    }

    /// Whether [`stop`](Self::stop) or [`stop_now`](Self::stop_now) was
    /// called.
    pub fn is_stopped(&self) -> bool {
        self.inner.flags().stop.is_some()
    }

    /// A snapshot of the source's counters.
    pub fn stats(&self) -> CursorStats {
        let mut stats = self.inner.status.borrow().stats;
        stats.items_acked = self.inner.signal.acked.load(Ordering::Relaxed);
        stats
    }

    /// Whether the driver has finished: fetching is over, and every page
    /// yielded was either committed or can never be (an item was dropped
    /// unacknowledged, or the store failed). Nothing is committed after this.
    pub fn is_finished(&self) -> bool {
        self.inner.status.borrow().finished
    }

    /// Waits until the driver has finished (see [`is_finished`](Self::is_finished)):
    /// after the stream ended, this is how to wait for the last checkpoint to
    /// be committed. Also resolves if the driver was dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the wait.
    pub fn finished(&self) -> impl Future<Output = ()> + Send + 'static
    where
        C: Send + Sync + 'static,
    {
        let mut status = self.inner.status.subscribe();
        async move {
            // An error means every handle and the driver are gone.
            let _ = status.wait_for(|status| status.finished).await;
        }
    }
}

impl<C: Clone> CursorControl<C> {
    /// The last cursor committed to the checkpoint store (without a store,
    /// the last cursor the watermark passed): every item before it was
    /// acknowledged. `None` until the first commit.
    pub fn committed(&self) -> Option<C> {
        self.inner.status.borrow().committed.clone()
    }

    /// The cursor the source started from: the one loaded from the
    /// checkpoint store, or the initial cursor if the store had none. `None`
    /// until the driver has loaded it.
    pub fn started_from(&self) -> Option<C> {
        self.inner.status.borrow().started_from.clone()
    }
}

impl<C> Clone for CursorControl<C> {
    fn clone(&self) -> Self {
        CursorControl {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for CursorControl<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = self.inner.flags();
        let status = self.inner.status.borrow();
        f.debug_struct("CursorControl")
            .field("paused", &flags.paused)
            .field("stopped", &flags.stop.is_some())
            .field("committed", &status.committed)
            .field("finished", &status.finished)
            .finish()
    }
}
