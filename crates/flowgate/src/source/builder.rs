//! [`CursorSourceBuilder`]: the settings of a cursor source.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::OnFetchError;
use super::ack::Signal;
use super::checkpoint::CheckpointStore;
use super::control::{ControlInner, CursorControl};
use super::driver::{CursorDriver, Machine};
use super::error::BuildError;
use super::metrics::SourceMetrics;
use super::page::Page;
use super::stream::{CursorSource, Outbox};
use crate::telemetry::Name;

/// Configures and builds a [`CursorSource`]. Created by
/// [`CursorSource::builder`].
///
/// | setting | default | rule |
/// |---|---|---|
/// | [`checkpoint`](Self::checkpoint) | none: the watermark is tracked (see [`CursorControl::committed`]) but stored nowhere | — |
/// | [`max_pages_in_flight`](Self::max_pages_in_flight) | 2 | at least 1; up to `usize::MAX` (no bound in practice, nothing pre-allocated) |
/// | [`on_fetch_error`](Self::on_fetch_error) | [`OnFetchError::Stop`] | — |
/// | [`name`](Self::name) | none: no metrics | any string |
pub struct CursorSourceBuilder<C> {
    start: C,
    store: Option<Arc<dyn CheckpointStore<C>>>,
    max_pages_in_flight: usize,
    on_fetch_error: OnFetchError,
    name: Name,
}

impl<C> CursorSourceBuilder<C>
where
    C: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(start: C) -> Self {
        CursorSourceBuilder {
            start,
            store: None,
            max_pages_in_flight: 2,
            on_fetch_error: OnFetchError::Stop,
            name: Name::none(),
        }
    }

    /// Names the source: the `name` label of its series (feature `metrics`)
    /// and the `name` field of its events. Any string is accepted as given.
    /// Without a name the source records no metrics (its events say
    /// `name = ""`).
    ///
    /// Enables, registered by [`build`](Self::build) or
    /// [`build_pair`](Self::build_pair) with the recorder current then (see
    /// [`crate::metrics`] for the table):
    ///
    /// - `flowgate_source_pages_fetched_total`, `flowgate_source_items_fetched_total`;
    /// - `flowgate_source_items_emitted_total`: items yielded by the stream;
    /// - `flowgate_source_items_acked_total`;
    /// - `flowgate_source_items_unacked_total`: yielded items whose
    ///   [`CursorAck`](super::CursorAck) was dropped without `ack`;
    /// - `flowgate_source_items_dropped_total`: fetched items never yielded
    ///   (dropped by [`stop_now`](CursorControl::stop_now) or with the stream);
    /// - `flowgate_source_items_in_flight` (gauge): yielded and neither acked
    ///   nor dropped yet;
    /// - `flowgate_source_pages_in_flight` (gauge): pages being fetched, or
    ///   fetched and not committed — what
    ///   [`max_pages_in_flight`](Self::max_pages_in_flight) bounds; 0 once
    ///   the driver is gone;
    /// - `flowgate_source_fetch_errors_total`, and
    ///   `flowgate_source_fetch_seconds` (histogram) for successful fetches;
    /// - `flowgate_source_commits_total{outcome}` (`ok`, `error`) and
    ///   `flowgate_source_commit_seconds` (histogram) for commits to the
    ///   [`checkpoint`](Self::checkpoint) store;
    ///   `flowgate_source_load_errors_total` for loading it;
    /// - `flowgate_source_paused` (gauge): 1 while paused, else 0.
    ///
    /// A failed fetch, load or commit, and a dropped ack, each log one `warn`
    /// event.
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
    /// let mut source = CursorSource::builder(0u64).name("orders").build(fetch).unwrap();
    /// let (row, ack) = source.next().await.unwrap().unwrap();
    /// // flowgate_source_items_in_flight{name="orders"} is 1 until:
    /// ack.ack();
    /// assert_eq!(row, 1);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }

    /// Loads the cursor to start from out of `store` (falling back to the
    /// initial cursor if it holds none) and commits the watermark to it as
    /// pages are acknowledged.
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
    /// let store = MemoryCheckpointStore::new();
    /// let mut source = CursorSource::builder(0u64)
    ///     .checkpoint(store.clone())
    ///     .build(fetch)
    ///     .unwrap();
    /// let control = source.control();
    /// while let Some(next) = source.next().await {
    ///     next.unwrap().1.ack();
    /// }
    /// control.finished().await;
    /// assert_eq!(store.get(), Some(10)); // a restart would start after row 10
    /// # }
    /// ```
    pub fn checkpoint(mut self, store: impl CheckpointStore<C> + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// How many pages may be fetched and not yet committed at once: the
    /// bound on memory (`max_pages_in_flight × page size` items) and on redo
    /// after a crash (at most this many pages are fetched again).
    ///
    /// A page counts from the moment its fetch starts until the checkpoint
    /// covering it is committed. With 1, the next page is fetched only once
    /// every item of the previous one was acknowledged and committed; with 2
    /// (the default), one page is fetched while the previous one is
    /// processed. Zero is refused by [`build`](Self::build)
    /// ([`BuildError::ZeroPagesInFlight`]); `usize::MAX` puts no bound on
    /// pages in practice (nothing is allocated up front for it). The size of a
    /// page is whatever `fetch` returns; an empty page is fine.
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
    /// use flowgate::source::BuildError;
    ///
    /// let source = CursorSource::builder(0u64).max_pages_in_flight(1).build(fetch);
    /// assert!(source.is_ok());
    /// let err = CursorSource::builder(0u64).max_pages_in_flight(0).build(fetch).unwrap_err();
    /// assert_eq!(err, BuildError::ZeroPagesInFlight);
    /// # }
    /// ```
    pub fn max_pages_in_flight(mut self, pages: usize) -> Self {
        self.max_pages_in_flight = pages;
        self
    }

    /// What the source does when the fetch function fails; see
    /// [`OnFetchError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, OnFetchError, Page};
    /// use futures_util::StreamExt;
    ///
    /// let mut source = CursorSource::builder(0u64)
    ///     .on_fetch_error(OnFetchError::Pause)
    ///     .build(|_| async { Err::<Page<u64, u64>, _>("timeout") })
    ///     .unwrap();
    /// assert!(source.next().await.unwrap().is_err());
    /// assert!(source.control().is_paused()); // resume() retries the same cursor
    /// # }
    /// ```
    pub fn on_fetch_error(mut self, policy: OnFetchError) -> Self {
        self.on_fetch_error = policy;
        self
    }

    /// Builds the source and spawns its [`CursorDriver`] on the current tokio
    /// runtime.
    ///
    /// `fetch(cursor)` returns the page at `cursor`: a [`Page`], or a
    /// `(Vec<T>, Option<C>)` pair of its items and the next cursor (`None`:
    /// the last page). It is called once at a time, only when fewer than
    /// `max_pages_in_flight` pages are unacknowledged, and may be dropped
    /// mid-call by [`stop`](CursorControl::stop): it should only read.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroPagesInFlight`], or [`BuildError::NoRuntime`] when
    /// called outside a tokio runtime.
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
    /// let (row, ack) = source.next().await.unwrap().unwrap();
    /// assert_eq!(row, 1);
    /// ack.ack();
    /// # }
    /// ```
    ///
    /// Outside a tokio runtime there is nothing to spawn the driver on:
    ///
    /// ```
    /// use flowgate::source::{BuildError, CursorSource, Page};
    ///
    /// let fetch = |_: u64| async { Ok::<_, ()>(Page::<u64, u64>::new(vec![], None)) };
    /// let err = CursorSource::builder(0u64).build(fetch).unwrap_err();
    /// assert_eq!(err, BuildError::NoRuntime);
    /// ```
    pub fn build<T, E, F, Fut, R>(self, fetch: F) -> Result<CursorSource<T, C, E>, BuildError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnMut(C) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: Into<Page<T, C>>,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let (source, driver) = self.build_pair(fetch)?;
        runtime.spawn(driver);
        Ok(source)
    }

    /// Builds the source and returns its [`CursorDriver`] for you to spawn or
    /// await, as [`build`](Self::build) would have spawned it. Nothing is
    /// fetched until the driver is polled.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroPagesInFlight`].
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
    /// let (mut source, driver) = CursorSource::builder(0u64).build_pair(fetch).unwrap();
    /// tokio::spawn(driver); // or poll it in a select! of your own
    /// let (row, ack) = source.next().await.unwrap().unwrap();
    /// assert_eq!(row, 1);
    /// ack.ack();
    /// # }
    /// ```
    pub fn build_pair<T, E, F, Fut, R>(
        self,
        fetch: F,
    ) -> Result<(CursorSource<T, C, E>, CursorDriver), BuildError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnMut(C) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: Into<Page<T, C>>,
    {
        if self.max_pages_in_flight == 0 {
            return Err(BuildError::ZeroPagesInFlight);
        }
        let signal = Arc::new(Signal {
            metrics: SourceMetrics::new(self.name),
            ..Signal::default()
        });
        let outbox = Arc::new(Outbox::new(Arc::clone(&signal)));
        let weak = Arc::downgrade(&outbox);
        let end_now = Box::new(move || {
            if let Some(outbox) = weak.upgrade() {
                outbox.end_now();
            }
        });
        let control = Arc::new(ControlInner::new(signal, end_now));
        let machine = Machine::new(
            fetch,
            self.start,
            self.store,
            Arc::clone(&control),
            Arc::clone(&outbox),
            self.max_pages_in_flight,
            self.on_fetch_error,
        );
        let driver = CursorDriver::new(machine);
        let source = CursorSource {
            outbox,
            control: CursorControl { inner: control },
            terminated: false,
        };
        Ok((source, driver))
    }
}

impl<C: fmt::Debug> fmt::Debug for CursorSourceBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorSourceBuilder")
            .field("start", &self.start)
            .field("checkpoint", &self.store.is_some())
            .field("max_pages_in_flight", &self.max_pages_in_flight)
            .field("on_fetch_error", &self.on_fetch_error)
            .field("name", &self.name)
            .finish()
    }
}
