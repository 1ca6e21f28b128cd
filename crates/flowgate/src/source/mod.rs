//! Sources that page through a cursor, pause, resume and stop, and checkpoint
//! the cursor so that a restart goes on where the last one left off — with no
//! item skipped and a bounded amount of work redone; and the acknowledgement
//! watermark they checkpoint with, for any source of offsets (Kafka-style
//! partitions, Redis streams): see [Acknowledgement
//! watermarks](#acknowledgement-watermarks).
//!
//! The seed's use case: stream a large SQL table through a pipeline in small
//! pages by cursor (keyset) pagination, never loading it all into memory;
//! pause the job when something downstream fails; and store the last cursor to
//! resume from.
//!
//! ```text
//!  checkpoint store ──load──> driver ──fetch(cursor)──> page: items + next cursor
//!        ^                      │  (only while < max_pages_in_flight pages are
//!        │                      │   uncommitted; not while paused)
//!        │                      v
//!        │            CursorSource stream ──(item, CursorAck)──> pipeline
//!        │                      ^                                   │
//!        └──commit(next)── watermark <────────── ack() ─────────────┘
//!              when every item of every page up to it is acknowledged
//! ```
//!
//! # Example
//!
//! ```
//! use flowgate::prelude::*;
//! use flowgate::source::{CursorSource, MemoryCheckpointStore, Page};
//! use futures_util::StreamExt;
//!
//! // A "table" of 100 rows, read 10 at a time by key.
//! async fn fetch(after: u64) -> Result<Page<u64, u64>, std::io::Error> {
//!     let rows: Vec<u64> = (after + 1..=100).take(10).collect();
//!     Ok(Page::keyset(rows, |row| *row))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryCheckpointStore::new();
//! let source = CursorSource::builder(0u64)
//!     .checkpoint(store.clone())
//!     .max_pages_in_flight(2)
//!     .build(fetch)
//!     .unwrap();
//! let control = source.control();
//!
//! let processed = source
//!     .par_map_unordered(8, |item| async move {
//!         let (row, ack) = item.expect("no fetch error here");
//!         // ... process `row` ...
//!         ack.ack(); // done with it: the checkpoint may pass it
//!         row
//!     })
//!     .count()
//!     .await;
//! control.finished().await; // the last checkpoint is committed
//! assert_eq!(processed, 100);
//! assert_eq!(store.get(), Some(100)); // a restart would fetch after row 100
//! # }
//! ```
//!
//! # Pages and cursors
//!
//! The fetch function maps a cursor to a [`Page`]: its items and the cursor of
//! the next page, or `None` after the last page. It is called once at a time,
//! and only when there is room (below). For keyset pagination,
//! [`Page::keyset`] takes the last item's key as the next cursor, and an empty
//! page ends the stream.
//!
//! # Acknowledgement and the checkpoint watermark
//!
//! Every item comes with a [`CursorAck`]. Downstream may acknowledge items in
//! any order — after `par_map_unordered`, after a
//! [`Batcher`](crate::batch::Batcher) flush, from other tasks. The driver
//! keeps the pages that are not fully acknowledged in order and moves a
//! watermark over every leading page whose items are *all* acknowledged; the
//! cursor after the newest such page is committed to the
//! [`CheckpointStore`]. (That watermark is a [`SharedWatermark`] over the
//! pages' sequence numbers: each page's token is acknowledged when its last
//! item is.) So a committed cursor never passes an unacknowledged item,
//! however the acks are ordered:
//!
//! ```text
//!  pages:     [ p0: all acked ][ p1: all acked ][ p2: 3 of 4 acked ][ p3: 0 acked ]
//!  committed: p1.next ────────────────────────^   (p2 and p3 redone after a crash)
//! ```
//!
//! Commits run one at a time, each with the newest cursor available; a slow
//! store commits less often, never out of order.
//!
//! Dropping a `CursorAck` without calling `ack` means "not done": the
//! watermark can never pass that page. The source yields
//! [`CursorError::Unacked`] and stops as with [`CursorControl::stop`]; the
//! items it already holds still flow, the pages before the dropped item are
//! still committed as they are acknowledged, and the driver finishes. Restart
//! the source (build a new one on the same store) to redo everything from the
//! checkpoint. To skip a poison item for good instead, handle it (for example
//! write it to a dead-letter table) and *then* ack it.
//!
//! # Bounded memory, bounded redo
//!
//! A page is *in flight* from the moment its fetch starts until the checkpoint
//! covering it is committed. The driver starts a fetch only while fewer than
//! [`max_pages_in_flight`](CursorSourceBuilder::max_pages_in_flight) pages are
//! in flight, so:
//!
//! - **memory**: at most `max_pages_in_flight` pages of items exist at once —
//!   waiting in the stream, or in downstream stages waiting for their acks. A
//!   slow or stuck downstream stops fetching; nothing is loaded ahead of it.
//! - **redo**: a crash at any moment (the process dies, the driver task is
//!   aborted) loses only in-flight pages: a restart resumes from the last
//!   committed cursor and fetches at most `max_pages_in_flight` pages again —
//!   every one of their items is yielded again, including those that had been
//!   acknowledged but not yet committed. No item before the committed cursor
//!   is yielded again, and none after it is skipped.
//!
//! The source is *at-least-once*. To make each item's *effect* happen once,
//! guard it with [`Idempotency`](crate::idempotency::Idempotency): the items
//! redone after a restart are then recognised and skipped.
//!
//! # Pause, resume, stop
//!
//! [`CursorControl`], from [`CursorSource::control`], is a cloneable handle:
//!
//! - [`pause`](CursorControl::pause) stops fetching new pages; a fetch already
//!   running completes, and items already fetched keep flowing (at most
//!   `max_pages_in_flight` pages of them), so downstream drains while the
//!   source waits. The stream does not end.
//! - [`resume`](CursorControl::resume) fetches again from the next cursor.
//! - [`stop`](CursorControl::stop) fetches nothing more (a fetch in progress
//!   is dropped) and ends the stream after the items already fetched.
//! - [`stop_now`](CursorControl::stop_now) ends the stream at once; the items
//!   fetched but not yet yielded are dropped unacknowledged, so the checkpoint
//!   stays before them and a restart redoes them.
//!
//! After the stream ends, items yielded earlier can still be acknowledged;
//! [`CursorControl::finished`] resolves once the last checkpoint they allow
//! is committed.
//!
//! To pause the source while a later stage backs off (the seed's "pause the
//! job on error, and retry after sleep"), use the pipeline's pause instead of
//! calling `pause` from that stage: put
//! [`.pausable(&handle)`](crate::PipelineExt::pausable) right after the source
//! and hand the same [`PauseHandle`](crate::resilience::PauseHandle) to
//! [`Retry::pause_while_backing_off`](crate::resilience::Retry::pause_while_backing_off).
//! While it is held nothing is pulled from the source, so the source fetches
//! at most the `max_pages_in_flight` pages it may prefetch, then waits.
//! [`CursorControl`] stays the handle for an operator's pause, resume and stop.
//!
//! # Acknowledgement watermarks
//!
//! The commit point of any source whose items carry increasing offsets
//! (sequence numbers) and are acknowledged in any order: a Kafka consumer
//! processing records concurrently, a Redis stream reader, a page sequence.
//! The offsets handed out are *tracked* in increasing order — they may be
//! sparse: a compacted topic skips offsets — and *acknowledged* in any order;
//! the commit point is one past the highest offset below which every tracked
//! offset is acknowledged (Kafka's "next offset to read"). It never passes an
//! unacknowledged offset, never moves back, and reaches one past the last
//! tracked offset exactly when all are acknowledged.
//!
//! | type | for | acks |
//! |---|---|---|
//! | [`Watermark`] | one partition, one task: the core, no locks | `ack(offset)` → the new commit point if it moved |
//! | [`PartitionedWatermark`] | one per partition, one task; [`take_changed`](PartitionedWatermark::take_changed) lists the partitions to commit | `ack(&partition, offset)` |
//! | [`SharedWatermark`] | one partition, acks from many tasks; [`WatermarkWatch::changed`] awaits a move | a [`WatermarkAck`] token per offset: `ack()`, or dropped = abandoned |
//!
//! Memory is one entry per *pending* offset (tracked and not passed yet,
//! including those acknowledged out of order), dropped as the commit point
//! passes it; `with_max_pending(n)` caps it, and tracking beyond the cap
//! returns [`TrackError::Full`] (or waits, with [`SharedWatermark::track`])
//! — the back-pressure that stops a source fetching. A double ack, an ack of
//! an offset never tracked or already passed, and a non-increasing track are
//! typed errors ([`AckError`], [`TrackError`]) that change nothing.
//!
//! ```
//! use flowgate::source::{PartitionedWatermark, Watermark};
//!
//! // Offsets 10, 11 and 13 of one partition (12 was compacted away).
//! let mut watermark = Watermark::new();
//! for offset in [10, 11, 13] {
//!     watermark.track(offset).unwrap();
//! }
//! assert_eq!(watermark.ack(13), Ok(None)); // 10 and 11 still in progress
//! assert_eq!(watermark.ack(10), Ok(Some(11))); // commit 11
//! assert_eq!(watermark.ack(11), Ok(Some(14))); // everything: commit 14
//!
//! // Many partitions: commit only those that moved.
//! let mut partitions = PartitionedWatermark::new();
//! partitions.track(0u32, 5).unwrap();
//! partitions.track(1u32, 9).unwrap();
//! partitions.ack(&1, 9).unwrap();
//! assert_eq!(partitions.take_changed(), vec![(1, 10)]);
//! ```
//!
//! # Errors
//!
//! The stream yields `Err(`[`CursorError`]`)` in place of an item:
//!
//! | error | what the source does |
//! |---|---|
//! | [`Fetch`](CursorError::Fetch) | [`OnFetchError::Stop`] (default): stops as with `stop()`. [`OnFetchError::Pause`]: pauses; `resume()` fetches the same cursor again |
//! | [`Checkpoint`](CursorError::Checkpoint) | the store failed to load or commit: stops as with `stop()`, commits nothing more |
//! | [`Unacked`](CursorError::Unacked) | an ack was dropped: stops as with `stop()` |
//!
//! For retries with backoff, wrap the fetch function itself, or use
//! `OnFetchError::Pause` and resume from the task that handles the errors.
//!
//! # Shutdown and drop
//!
//! - Dropping the stream stops the source as `stop_now` would.
//! - Dropping the [`CursorDriver`] (or aborting its task, or the process
//!   dying) is a crash: nothing more is fetched or committed, the stream ends
//!   after what it holds, and [`CursorControl::finished`] resolves.
//! - The driver finishes by itself once fetching is over and every yielded
//!   page is committed or can never be; while downstream still holds
//!   unacknowledged items, it waits for them.
//!
//! # Metrics and events
//!
//! With the `metrics` feature, a source named with
//! [`CursorSourceBuilder::name`] records pages and items fetched, items
//! yielded, acknowledged, dropped and in flight, pages in flight, fetch and
//! commit latencies, fetch, load and commit errors, and whether it is
//! paused. [`Watermark::name`] and [`SharedWatermark::name`] record the
//! commit point and the pending offsets; [`PartitionedWatermark::name`] the
//! pending offsets and the partitions, summed over its partitions. See
//! [`crate::metrics`] for the table of series and events.
//!
//! A failed fetch, a failed checkpoint load or commit, and a dropped
//! [`CursorAck`] each log one `warn` event with the source's name; so does
//! the first abandoned offset of a [`SharedWatermark`] (named or not).
//! Pausing, resuming and finishing log at `debug`; nothing is logged per
//! item.
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | `next()` on [`CursorSource`] | yes | nothing: an item is handed over only by a `poll_next` that returns it |
//! | [`CursorControl::finished`] | yes | nothing; the wait |
//! | [`SharedWatermark::track`] | yes | nothing: it tracks only when it returns the token |
//! | [`WatermarkWatch::changed`] | yes | nothing: the next call returns the move |
//! | [`CheckpointStore::load`], [`CheckpointStore::commit`] (your store) | load must be; a cancelled commit must leave the old or the new cursor | — |

mod ack;
mod builder;
mod checkpoint;
mod control;
mod driver;
mod error;
mod metrics;
mod page;
mod stream;
mod watermark;

pub use self::ack::CursorAck;
pub use self::builder::CursorSourceBuilder;
pub use self::checkpoint::{CheckpointStore, MemoryCheckpointStore};
pub use self::control::{CursorControl, CursorStats};
pub use self::driver::CursorDriver;
pub use self::error::{BuildError, CursorError};
pub use self::page::Page;
pub use self::stream::CursorSource;
pub use self::watermark::{
    AckError, PartitionedWatermark, SharedWatermark, TrackError, WatchError, Watermark,
    WatermarkAck, WatermarkWatch,
};
pub use crate::store::StoreError;

/// What a [`CursorSource`] does when its fetch function fails. In both cases
/// the error is yielded on the stream as [`CursorError::Fetch`], and the
/// cursor does not move: the failed page is fetched again on resume or after
/// a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnFetchError {
    /// Stop as with [`CursorControl::stop`]: the stream ends after the items
    /// already fetched.
    #[default]
    Stop,
    /// Pause as with [`CursorControl::pause`]: the stream goes on (and does
    /// not end) until [`CursorControl::resume`] retries the same cursor, or a
    /// stop. The seed's "pause the job on error, and retry after sleep".
    Pause,
}

impl<C> CursorSource<(), C, ()>
where
    C: Clone + Send + Sync + 'static,
{
    /// Starts configuring a source that begins at `start` when its checkpoint
    /// store holds no cursor (or when it has no store); see
    /// [`CursorSourceBuilder`] for the settings.
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
    /// let mut rows = Vec::new();
    /// while let Some(next) = source.next().await {
    ///     let (row, ack) = next.unwrap();
    ///     rows.push(row);
    ///     ack.ack();
    /// }
    /// assert_eq!(rows, (1..=10).collect::<Vec<_>>());
    /// # }
    /// ```
    pub fn builder(start: C) -> CursorSourceBuilder<C> {
        CursorSourceBuilder::new(start)
    }
}
