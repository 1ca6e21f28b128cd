//! [`CursorAck`]: the token that comes with every item of a
//! [`CursorSource`](super::CursorSource), and the per-page count that turns
//! the acks of a page's items into the one ack of the page's sequence number
//! in the driver's [`SharedWatermark`](super::SharedWatermark).

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::task::AtomicWaker;

use super::metrics::SourceMetrics;
use super::watermark::WatermarkAck;
use crate::sync::lock;

/// What acks and the control handle use to wake the driver.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    pub(crate) driver: AtomicWaker,
    /// Items acknowledged, for the stats.
    pub(crate) acked: AtomicU64,
    pub(crate) metrics: SourceMetrics,
}

/// One fetched page: how many of its items are not resolved (acked or
/// dropped) yet, and the watermark token of the page, acknowledged when the
/// last item is, or dropped (abandoning the page) as soon as one item is
/// dropped unacknowledged.
pub(crate) struct PageTrack {
    remaining: AtomicUsize,
    page: Mutex<Option<WatermarkAck>>,
    signal: Arc<Signal>,
}

impl PageTrack {
    /// A page of `items` items (at least one: the driver acks an empty
    /// page's token itself).
    pub(crate) fn new(items: usize, page: WatermarkAck, signal: Arc<Signal>) -> Self {
        debug_assert!(items > 0);
        PageTrack {
            remaining: AtomicUsize::new(items),
            page: Mutex::new(Some(page)),
            signal,
        }
    }

    /// One item is resolved: `acked`, or dropped unacknowledged; it was
    /// `emitted` by the stream, or dropped before it was.
    fn resolve_one(&self, acked: bool, emitted: bool) {
        let metrics = &self.signal.metrics;
        if emitted {
            metrics.items_in_flight.dec();
        }
        if acked {
            self.signal.acked.fetch_add(1, Ordering::Relaxed);
            metrics.items_acked.inc();
        } else {
            if emitted {
                metrics.items_unacked.inc();
            } else {
                metrics.items_dropped.inc();
            }
            // Abandon the page at once, before the other items resolve: the
            // driver stops the source as soon as it knows.
            let page = lock(&self.page).take();
            drop(page);
        }
        // An abandoning item takes the token before its decrement, so the
        // last decrement finds it gone if any item was dropped.
        let last = self.remaining.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && acked {
            let page = lock(&self.page).take();
            if let Some(page) = page {
                page.ack();
            }
        }
        // The driver only cares when a page completes, or as soon as the
        // watermark is known to be stuck.
        if last || !acked {
            self.signal.driver.wake();
        }
    }
}

/// The acknowledgement token of one item of a
/// [`CursorSource`](super::CursorSource).
///
/// Call [`ack`](Self::ack) once the item is done with — processed, or handled
/// for good (for example sent to a dead-letter table). The source commits a
/// page's cursor to its checkpoint store only after *every* item of that page
/// and of every page before it was acknowledged, in whatever order the acks
/// come.
///
/// Dropping the token without calling `ack` means "not done": the checkpoint
/// can never move past this item's page. The source then stops fetching (as
/// with [`CursorControl::stop`](super::CursorControl::stop)) and yields
/// [`CursorError::Unacked`](super::CursorError::Unacked); restart it (a new
/// source from the same store) to redo everything from the last checkpoint,
/// this item included.
///
/// The token is `Send + Sync + 'static`: carry it through `par_map`, into a
/// [`Batcher`](crate::batch::Batcher) callback, or to another task.
#[must_use = "dropping a CursorAck without calling ack() holds the checkpoint back and stops the source"]
pub struct CursorAck {
    page: Option<Arc<PageTrack>>,
    /// Yielded by the stream (counted in the in-flight gauge).
    emitted: bool,
}

impl CursorAck {
    pub(crate) fn new(page: Arc<PageTrack>) -> Self {
        CursorAck {
            page: Some(page),
            emitted: false,
        }
    }

    /// The stream hands the item over: it is in flight until resolved.
    pub(crate) fn emit(&mut self, metrics: &SourceMetrics) {
        self.emitted = true;
        metrics.items_emitted.inc();
        metrics.items_in_flight.inc();
    }

    /// Acknowledges the item: it will not be redone after a restart once the
    /// checkpoint passes its page.
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
    /// while let Some(next) = source.next().await {
    ///     let (_row, ack) = next.unwrap();
    ///     ack.ack(); // done with this row
    /// }
    /// # }
    /// ```
    pub fn ack(mut self) {
        if let Some(page) = self.page.take() {
            page.resolve_one(true, self.emitted);
        }
    }
}

impl Drop for CursorAck {
    fn drop(&mut self) {
        if let Some(page) = self.page.take() {
            page.resolve_one(false, self.emitted);
        }
    }
}

impl fmt::Debug for CursorAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorAck").finish_non_exhaustive()
    }
}
