//! The [`CursorDriver`]: fetches pages while there is room, moves the
//! checkpoint watermark as pages are acknowledged, and commits it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::future::BoxFuture;
use tokio::time::Instant;

use super::OnFetchError;
use super::ack::{CursorAck, PageTrack};
use super::checkpoint::CheckpointStore;
use super::control::{ControlInner, Stop};
use super::error::CursorError;
use super::metrics::SourceMetrics;
use super::page::Page;
use super::stream::{Event, Outbox};
use super::watermark::SharedWatermark;
use crate::store::StoreError;
use crate::sync::lock;

/// Rounds of the driver's loop in one poll before it yields (STYLE.md #14):
/// a fetch function that is always ready would otherwise hold the thread
/// until the in-flight bound is reached.
const BUDGET: usize = 32;

/// Drives a [`CursorSource`](super::CursorSource): loads the checkpoint,
/// fetches pages while fewer than `max_pages_in_flight` are unacknowledged,
/// and commits the checkpoint as pages are acknowledged.
///
/// [`CursorSourceBuilder::build`](super::CursorSourceBuilder::build) spawns
/// it on the current tokio runtime; [`build_pair`](super::CursorSourceBuilder::build_pair)
/// hands it to you to spawn or await. It completes once fetching is over and
/// every page yielded was committed, or can never be (see
/// [`CursorControl::finished`](super::CursorControl::finished)).
///
/// # Dropping the driver
///
/// Dropping it before it completes — or aborting the task that runs it, or
/// the process dying — is a crash as far as the checkpoint is concerned:
/// nothing more is fetched or committed, the stream ends after the items it
/// already holds, and a restart resumes from the last committed cursor.
#[must_use = "the source driver does nothing unless spawned or awaited"]
pub struct CursorDriver {
    future: BoxFuture<'static, ()>,
    on_drop: Box<dyn Fn() + Send>,
}

impl CursorDriver {
    pub(crate) fn new<T, C, E, F, Fut, R>(machine: Machine<T, C, E, F, Fut>) -> Self
    where
        Machine<T, C, E, F, Fut>: Send + 'static,
        T: Send + 'static,
        C: Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: FnMut(C) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        R: Into<Page<T, C>>,
    {
        let control = Arc::clone(&machine.control);
        let outbox = Arc::clone(&machine.outbox);
        let mut machine = machine;
        CursorDriver {
            future: Box::pin(std::future::poll_fn(move |cx| machine.poll(cx))),
            on_drop: Box::new(move || {
                // Finished or not, the stream ends and waiters are released.
                outbox.end();
                control.status.send_modify(|status| status.finished = true);
                // Nothing is fetched or committed any more.
                let metrics = &control.signal.metrics;
                metrics.pages_in_flight.set(0.0);
                metrics.paused.set(0.0);
            }),
        }
    }
}

impl Future for CursorDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl Drop for CursorDriver {
    fn drop(&mut self) {
        (self.on_drop)();
    }
}

impl fmt::Debug for CursorDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorDriver").finish_non_exhaustive()
    }
}

/// The driver's state; see [`Machine::poll`].
pub(crate) struct Machine<T, C, E, F, Fut> {
    pub(crate) fetch: F,
    pub(crate) store: Option<Arc<dyn CheckpointStore<C>>>,
    pub(crate) control: Arc<ControlInner<C>>,
    pub(crate) outbox: Arc<Outbox<T, E>>,
    pub(crate) max_in_flight: usize,
    pub(crate) on_error: OnFetchError,
    /// The initial cursor, until the checkpoint is loaded.
    pub(crate) start: Option<C>,
    pub(crate) loading: Option<BoxFuture<'static, Result<Option<C>, StoreError>>>,
    pub(crate) loaded: bool,
    /// The cursor of the next page; `None` once the last page was fetched.
    pub(crate) cursor: Option<C>,
    pub(crate) fetching: Option<Pin<Box<Fut>>>,
    /// When the fetch in progress started (named sources only).
    fetch_started: Option<Instant>,
    /// No fetch will start again.
    pub(crate) fetch_done: bool,
    /// The watermark over page sequence numbers (0, 1, 2, … in fetch
    /// order): it passes a page once every item of it and of every page
    /// before it is acknowledged.
    watermark: SharedWatermark,
    /// The sequence number of the next page fetched.
    next_seq: u64,
    /// The next cursor of each page the watermark has not passed yet, oldest
    /// first; the front is page `next_seq - pages.len()`.
    pages: VecDeque<Option<C>>,
    /// Fully acknowledged pages not covered by a commit yet.
    acked_pages: usize,
    /// The newest cursor the watermark passed, not committed yet.
    to_commit: Option<C>,
    committing: Option<Committing<C>>,
    store_failed: bool,
    /// An ack was dropped unacknowledged: the watermark can never move again.
    stuck: bool,
}

struct Committing<C> {
    future: BoxFuture<'static, Result<(), StoreError>>,
    cursor: C,
    pages: usize,
    /// When it started (named sources only).
    started: Option<Instant>,
}

impl<T, C, E, F, Fut, R> Machine<T, C, E, F, Fut>
where
    C: Clone + Send + Sync + 'static,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Into<Page<T, C>>,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        fetch: F,
        start: C,
        store: Option<Arc<dyn CheckpointStore<C>>>,
        control: Arc<ControlInner<C>>,
        outbox: Arc<Outbox<T, E>>,
        max_in_flight: usize,
        on_error: OnFetchError,
    ) -> Self {
        Machine {
            fetch,
            store,
            control,
            outbox,
            max_in_flight,
            on_error,
            start: Some(start),
            loading: None,
            loaded: false,
            cursor: None,
            fetching: None,
            fetch_started: None,
            fetch_done: false,
            watermark: SharedWatermark::quiet(),
            next_seq: 0,
            pages: VecDeque::new(),
            acked_pages: 0,
            to_commit: None,
            committing: None,
            store_failed: false,
            stuck: false,
        }
    }

    /// Pages that a crash now would make a restart redo: yielded and not
    /// acknowledged, acknowledged but not committed, being committed.
    fn in_flight(&self) -> usize {
        self.pages.len() + self.acked_pages + self.committing.as_ref().map_or(0, |c| c.pages)
    }

    fn metrics(&self) -> &SourceMetrics {
        &self.control.signal.metrics
    }

    /// One round: control, load, watermark, commit, fetch, in that order.
    /// Each step returns whether it made progress; the round repeats until
    /// none does (everything is then waiting on a registered waker).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.control.signal.driver.register(cx.waker());
        for _ in 0..BUDGET {
            let mut progress = self.apply_control();
            progress |= self.poll_load(cx);
            progress |= self.advance();
            progress |= self.poll_commit(cx);
            progress |= self.poll_fetch(cx);
            if self.is_done() {
                self.outbox.end();
                self.control
                    .status
                    .send_modify(|status| status.finished = true);
                let metrics = self.metrics();
                metrics.pages_in_flight.set(0.0);
                metrics.paused.set(0.0);
                tracing::debug!(name = metrics.name.as_str(), "cursor source finished");
                return Poll::Ready(());
            }
            if !progress {
                self.publish_pages_in_flight();
                return Poll::Pending;
            }
        }
        self.publish_pages_in_flight();
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Sets the pages-in-flight gauge (once per poll of the driver): the
    /// pages counted against `max_pages_in_flight`, and the one being
    /// fetched.
    fn publish_pages_in_flight(&self) {
        let pages = self.in_flight() + usize::from(self.fetching.is_some());
        self.metrics().pages_in_flight.set(pages as f64);
    }

    fn is_done(&self) -> bool {
        self.fetch_done
            && self.loading.is_none()
            && self.committing.is_none()
            && (self.to_commit.is_none() || self.store_failed || self.store.is_none())
            // Every page yielded is committed, or the oldest one never can
            // be (later acks could not move the watermark past it).
            && (self.pages.is_empty() || self.watermark.abandoned() == Some(self.first_seq()))
    }

    /// No fetch starts again; the stream ends after the items it holds.
    fn finish_fetching(&mut self) {
        self.fetch_done = true;
        self.fetching = None;
        self.outbox.end();
    }

    /// Reports `err` on the stream, unless the stream is gone or ended.
    fn report(&self, err: CursorError<E>) {
        self.outbox.push([Event::Error(err)]);
    }

    fn apply_control(&mut self) -> bool {
        if self.fetch_done {
            return false;
        }
        let stop = if self.outbox.is_dropped() {
            Some(Stop::Now)
        } else {
            self.control.flags().stop
        };
        match stop {
            None => false,
            Some(Stop::Drain) => {
                self.finish_fetching();
                true
            }
            Some(Stop::Now) => {
                self.finish_fetching();
                self.outbox.end_now();
                true
            }
        }
    }

    fn poll_load(&mut self, cx: &mut Context<'_>) -> bool {
        if self.loaded {
            return false;
        }
        if self.loading.is_none() {
            match &self.store {
                Some(store) => {
                    let store = Arc::clone(store);
                    self.loading = Some(Box::pin(async move { store.load().await }));
                }
                None => {
                    self.loaded = true;
                    self.cursor = self.start.take();
                    self.publish_start();
                    return true;
                }
            }
        }
        let loading = self.loading.as_mut().expect("set above");
        let Poll::Ready(result) = loading.as_mut().poll(cx) else {
            return false;
        };
        self.loading = None;
        self.loaded = true;
        match result {
            Ok(stored) => {
                self.cursor = stored.or_else(|| self.start.take());
                self.publish_start();
            }
            Err(err) => {
                let metrics = self.metrics();
                metrics.load_errors.inc();
                tracing::warn!(
                    name = metrics.name.as_str(),
                    error = %err,
                    "cursor source: loading the checkpoint failed; the source stops"
                );
                self.report(CursorError::Checkpoint(err));
                self.store_failed = true;
                self.finish_fetching();
            }
        }
        true
    }

    fn publish_start(&self) {
        let cursor = self.cursor.clone();
        self.control
            .status
            .send_modify(|status| status.started_from = cursor);
    }

    /// The sequence number of the oldest page not passed.
    fn first_seq(&self) -> u64 {
        self.next_seq - self.pages.len() as u64
    }

    /// Takes the pages the watermark passed (every leading page whose items
    /// are all acknowledged), and notices a page that never can be.
    fn advance(&mut self) -> bool {
        let (passed, abandoned) = self
            .watermark
            .read(|watermark| (watermark.last_acked_contiguous(), watermark.abandoned()));
        let mut progress = false;
        if let Some(passed) = passed {
            while !self.pages.is_empty() && self.first_seq() <= passed {
                let next = self.pages.pop_front().expect("checked");
                self.acked_pages += 1;
                if let Some(next) = next {
                    self.to_commit = Some(next);
                }
                progress = true;
            }
        }
        if !self.stuck && abandoned.is_some() {
            self.stuck = true;
            tracing::warn!(
                name = self.metrics().name.as_str(),
                "cursor source: an item's CursorAck was dropped without ack(); \
                 the checkpoint cannot pass its page, the source stops"
            );
            if !self.fetch_done {
                self.report(CursorError::Unacked);
                self.finish_fetching();
            }
            progress = true;
        }
        progress
    }

    fn poll_commit(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        if self.committing.is_none() && !self.store_failed {
            if let Some(cursor) = self.to_commit.take() {
                let pages = mem::take(&mut self.acked_pages);
                match &self.store {
                    None => self.committed(cursor, pages, false),
                    Some(store) => {
                        let store = Arc::clone(store);
                        let commit = cursor.clone();
                        self.committing = Some(Committing {
                            future: Box::pin(async move { store.commit(commit).await }),
                            cursor,
                            pages,
                            started: self.control.signal.metrics.timed(),
                        });
                    }
                }
                progress = true;
            } else if self.acked_pages > 0 {
                // The last page (no next cursor): nothing to commit for it.
                self.acked_pages = 0;
                progress = true;
            }
        }
        if let Some(committing) = &mut self.committing
            && let Poll::Ready(result) = committing.future.as_mut().poll(cx)
        {
            let Committing {
                cursor,
                pages,
                started,
                ..
            } = self.committing.take().expect("polled");
            let metrics = self.metrics();
            if let Some(started) = started {
                metrics.commit_seconds.record_duration(started.elapsed());
            }
            match result {
                Ok(()) => {
                    metrics.commits_ok.inc();
                    self.committed(cursor, pages, true);
                }
                Err(err) => {
                    metrics.commits_error.inc();
                    tracing::warn!(
                        name = metrics.name.as_str(),
                        error = %err,
                        "cursor source: committing the checkpoint failed; the source stops"
                    );
                    self.store_failed = true;
                    if !self.fetch_done {
                        self.report(CursorError::Checkpoint(err));
                        self.finish_fetching();
                    }
                }
            }
            progress = true;
        }
        progress
    }

    fn committed(&self, cursor: C, pages: usize, stored: bool) {
        self.control.status.send_modify(|status| {
            status.committed = Some(cursor);
            status.stats.pages_committed += pages as u64;
            if stored {
                status.stats.commits += 1;
            }
        });
    }

    fn poll_fetch(&mut self, cx: &mut Context<'_>) -> bool {
        if self.fetching.is_none()
            && !self.fetch_done
            && self.loaded
            && !self.control.flags().paused
            && self.in_flight() < self.max_in_flight
        {
            match &self.cursor {
                Some(cursor) => {
                    self.fetch_started = self.control.signal.metrics.timed();
                    self.fetching = Some(Box::pin((self.fetch)(cursor.clone())));
                }
                None => {
                    self.finish_fetching();
                    return true;
                }
            }
        }
        let Some(fetching) = &mut self.fetching else {
            return false;
        };
        let Poll::Ready(result) = fetching.as_mut().poll(cx) else {
            return false;
        };
        self.fetching = None;
        let started = self.fetch_started.take();
        let metrics = &self.control.signal.metrics;
        match result {
            Ok(page) => {
                let Page { items, next } = page.into();
                let count = items.len() as u64;
                metrics.pages_fetched.inc();
                metrics.items_fetched.add(count);
                if let Some(started) = started {
                    metrics.fetch_seconds.record_duration(started.elapsed());
                }
                self.control.status.send_modify(|status| {
                    status.stats.pages_fetched += 1;
                    status.stats.items_fetched += count;
                });
                let seq = self.next_seq;
                self.next_seq += 1;
                self.pages.push_back(next.clone());
                let page = self
                    .watermark
                    .try_track(seq)
                    .expect("page numbers increase, and the watermark has no limit");
                if items.is_empty() {
                    page.ack();
                } else {
                    let track = Arc::new(PageTrack::new(
                        items.len(),
                        page,
                        Arc::clone(&self.control.signal),
                    ));
                    self.outbox.push(
                        items
                            .into_iter()
                            .map(|item| Event::Item(item, CursorAck::new(Arc::clone(&track)))),
                    );
                }
                match next {
                    Some(next) => self.cursor = Some(next),
                    None => {
                        self.cursor = None;
                        self.finish_fetching();
                    }
                }
            }
            Err(err) => {
                metrics.fetch_errors.inc();
                let then = match self.on_error {
                    OnFetchError::Stop => "the source stops",
                    OnFetchError::Pause => "the source pauses until resumed",
                };
                tracing::warn!(
                    name = metrics.name.as_str(),
                    "cursor source: fetch failed; {then}"
                );
                self.control
                    .status
                    .send_modify(|status| status.stats.fetch_errors += 1);
                self.report(CursorError::Fetch(err));
                match self.on_error {
                    OnFetchError::Stop => self.finish_fetching(),
                    OnFetchError::Pause => {
                        let mut flags = lock(&self.control.flags);
                        if !flags.paused {
                            flags.paused = true;
                            self.control.set_paused_gauge(true);
                        }
                    }
                }
            }
        }
        true
    }
}
