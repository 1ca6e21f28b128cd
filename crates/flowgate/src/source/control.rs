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
        {
            let mut flags = lock(&self.flags);
            let was_paused = flags.paused;
            f(&mut flags);
            if flags.paused != was_paused {
                self.set_paused_gauge(flags.paused);
            }
        }
        self.signal.driver.wake();
    }

    /// Follows the paused flag; called under the flags' lock, so the gauge
    /// follows it in order.
    pub(crate) fn set_paused_gauge(&self, paused: bool) {
        let metrics = &self.signal.metrics;
        metrics.paused.set(if paused { 1.0 } else { 0.0 });
        tracing::debug!(
            name = metrics.name.as_str(),
            "cursor source {}",
            if paused { "paused" } else { "resumed" }
        );
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// control.pause();
    /// assert!(control.is_paused());
    /// // Nothing is fetched while paused.
    /// let waited = tokio::time::timeout(std::time::Duration::from_secs(1), source.next()).await;
    /// assert!(waited.is_err());
    /// control.resume();
    /// let (row, ack) = source.next().await.unwrap().unwrap();
    /// assert_eq!(row, 1);
    /// ack.ack();
    /// # }
    /// ```
    pub fn pause(&self) {
        self.inner.update(|flags| flags.paused = true);
    }

    /// Fetches pages again after [`pause`](Self::pause) (or after a failed
    /// fetch with [`OnFetchError::Pause`](super::OnFetchError::Pause), which
    /// retries the same cursor). Does nothing after a stop.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// control.pause();
    /// control.resume();
    /// assert!(!control.is_paused());
    /// let (row, ack) = source.next().await.unwrap().unwrap();
    /// assert_eq!(row, 1);
    /// ack.ack();
    /// # }
    /// ```
    pub fn resume(&self) {
        self.inner.update(|flags| flags.paused = false);
    }

    /// Whether the source is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// assert!(!control.is_paused());
    /// control.pause();
    /// assert!(control.is_paused());
    /// # }
    /// ```
    pub fn is_paused(&self) -> bool {
        self.inner.flags().paused
    }

    /// Stops fetching; the stream ends once the items already fetched have
    /// been yielded (at most `max_pages_in_flight` pages). A fetch in
    /// progress is dropped, so the fetch function must be safe to cancel (it
    /// only reads). Irreversible.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64)
    ///     .max_pages_in_flight(1)
    ///     .build(fetch)
    ///     .unwrap();
    /// let control = source.control();
    /// let (first, ack) = source.next().await.unwrap().unwrap();
    /// ack.ack();
    /// control.stop();
    /// // The rest of the page already fetched is still yielded, then the end.
    /// let mut rest = Vec::new();
    /// while let Some(next) = source.next().await {
    ///     let (row, ack) = next.unwrap();
    ///     rest.push(row);
    ///     ack.ack();
    /// }
    /// assert_eq!((first, rest), (1, vec![2, 3, 4, 5]));
    /// # }
    /// ```
    pub fn stop(&self) {
        self.inner.update(|flags| {
            flags.stop.get_or_insert(Stop::Drain);
        });
    }

    /// Stops fetching and ends the stream at once: items fetched but not yet
    /// yielded are dropped, and since they were never acknowledged, the
    /// checkpoint stays before their page and a restart fetches them again.
    /// Irreversible; overrides [`stop`](Self::stop).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// let (_, ack) = source.next().await.unwrap().unwrap();
    /// ack.ack();
    /// control.stop_now();
    /// assert!(source.next().await.is_none()); // fetched items are dropped
    /// # }
    /// ```
    pub fn stop_now(&self) {
        self.inner.update(|flags| flags.stop = Some(Stop::Now));
        (self.inner.end_now)();
    }

    /// Whether [`stop`](Self::stop) or [`stop_now`](Self::stop_now) was
    /// called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// assert!(!control.is_stopped());
    /// control.stop();
    /// assert!(control.is_stopped());
    /// # }
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.inner.flags().stop.is_some()
    }

    /// A snapshot of the source's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// while let Some(next) = source.next().await {
    ///     next.unwrap().1.ack();
    /// }
    /// control.finished().await;
    /// let stats = control.stats();
    /// assert_eq!((stats.items_fetched, stats.items_acked), (10, 10));
    /// # }
    /// ```
    pub fn stats(&self) -> CursorStats {
        let mut stats = self.inner.status.borrow().stats;
        stats.items_acked = self.inner.signal.acked.load(Ordering::Relaxed);
        stats
    }

    /// Whether the driver has finished: fetching is over, and every page
    /// yielded was either committed or can never be (an item was dropped
    /// unacknowledged, or the store failed). Nothing is committed after this.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// assert!(!control.is_finished());
    /// while let Some(next) = source.next().await {
    ///     next.unwrap().1.ack();
    /// }
    /// control.finished().await;
    /// assert!(control.is_finished());
    /// # }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control();
    /// while let Some(next) = source.next().await {
    ///     next.unwrap().1.ack();
    /// }
    /// control.finished().await; // the last checkpoint is committed
    /// assert_eq!(control.committed(), Some(10));
    /// # }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let mut source = CursorSource::builder(0u64)
    ///     .max_pages_in_flight(1)
    ///     .build(fetch)
    ///     .unwrap();
    /// let control = source.control();
    /// assert_eq!(control.committed(), None);
    /// for _ in 0..5 {
    ///     source.next().await.unwrap().unwrap().1.ack(); // the whole first page
    /// }
    /// let (_, ack) = source.next().await.unwrap().unwrap(); // row 6: the next page
    /// assert_eq!(control.committed(), Some(5));
    /// ack.ack();
    /// # }
    /// ```
    pub fn committed(&self) -> Option<C> {
        self.inner.status.borrow().committed.clone()
    }

    /// The cursor the source started from: the one loaded from the
    /// checkpoint store, or the initial cursor if the store had none. `None`
    /// until the driver has loaded it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// use futures_util::StreamExt;
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    /// use flowgate::source::MemoryCheckpointStore;
    ///
    /// let mut source = CursorSource::builder(0u64)
    ///     .checkpoint(MemoryCheckpointStore::with_cursor(5))
    ///     .build(fetch)
    ///     .unwrap();
    /// let (row, ack) = source.next().await.unwrap().unwrap();
    /// assert_eq!(row, 6); // resumed after the stored cursor
    /// assert_eq!(source.control().started_from(), Some(5));
    /// ack.ack();
    /// # }
    /// ```
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
