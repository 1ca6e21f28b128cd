//! [`CursorAck`]: the token that comes with every item of a
//! [`CursorSource`](super::CursorSource), and the per-page counters the
//! driver reads to move the checkpoint watermark.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use futures_util::task::AtomicWaker;

/// What acks and the control handle use to wake the driver.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    pub(crate) driver: AtomicWaker,
    /// Items acknowledged, for the stats.
    pub(crate) acked: AtomicU64,
}

/// One fetched page: how many of its items are not resolved (acked or
/// dropped) yet, and whether any was dropped unacknowledged.
pub(crate) struct PageTrack {
    remaining: AtomicUsize,
    abandoned: AtomicBool,
    signal: Arc<Signal>,
}

impl PageTrack {
    pub(crate) fn new(items: usize, signal: Arc<Signal>) -> Self {
        PageTrack {
            remaining: AtomicUsize::new(items),
            abandoned: AtomicBool::new(false),
            signal,
        }
    }

    /// Every item of the page was acknowledged.
    pub(crate) fn is_complete(&self) -> bool {
        // Acquire pairs with the AcqRel decrements, which form one release
        // sequence: seeing 0 means every ack (and `abandoned` store) is seen.
        self.remaining.load(Ordering::Acquire) == 0 && !self.is_abandoned()
    }

    /// An item of the page was dropped without being acknowledged: the
    /// watermark can never pass this page.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    fn resolve_one(&self, acked: bool) {
        if acked {
            self.signal.acked.fetch_add(1, Ordering::Relaxed);
        } else {
            self.abandoned.store(true, Ordering::Release);
        }
        let last = self.remaining.fetch_sub(1, Ordering::AcqRel) == 1;
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
}

impl CursorAck {
    pub(crate) fn new(page: Arc<PageTrack>) -> Self {
        CursorAck { page: Some(page) }
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
            page.resolve_one(true);
        }
    }
}

impl Drop for CursorAck {
    fn drop(&mut self) {
        if let Some(page) = self.page.take() {
            page.resolve_one(false);
        }
    }
}

impl fmt::Debug for CursorAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorAck").finish_non_exhaustive()
    }
}
