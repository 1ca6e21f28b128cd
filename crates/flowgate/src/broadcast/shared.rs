//! State shared by the publisher, its subscribers and subscribe handles.

use std::fmt;

use slab::Slab;

use super::block::{Reader, TailPointer};
use super::observe::Metrics;
use super::waiters::Waiters;
use crate::loom::lock;
use crate::loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::loom::sync::{Arc, Mutex};

/// Set in a [`Cursor`] by a bounded publisher that waits for that subscriber:
/// the subscriber's next move must wake the publisher.
const NOTIFY: u64 = 1 << 63;

/// `repr(C)`, so that the fields keep their declared order and `metrics`
/// stays last: its handles (eight with the `metrics` feature, none without)
/// must not move the fields the per-event paths read. When they moved, a
/// subscriber's poll needed one more register, pushed and popped on every
/// call (`BENCHMARKS.md`, "What the `metrics` feature costs").
#[repr(C)]
pub(crate) struct Shared<T> {
    /// The publisher's current block, for subscribing at the tail without
    /// access to the publisher. Updated once per block, not per event.
    pub(crate) tail: Mutex<TailPointer<T>>,
    /// Subscribers that caught up and wait for the next event.
    pub(crate) readers: Waiters,
    /// Publishers that wait for the slowest subscriber (bounded streams).
    pub(crate) room: Waiters,
    /// How far the publisher may run ahead of the slowest subscriber, in
    /// events; `None` for an unbounded stream.
    pub(crate) bound: Option<u64>,
    /// The position of every live subscriber, in bounded streams only.
    pub(crate) cursors: Mutex<Slab<Arc<Cursor>>>,
    /// Live subscribers.
    pub(crate) subscribers: AtomicUsize,
    /// The stream's series (no-op handles when it has no name).
    pub(crate) metrics: Metrics,
}

/// A subscriber's position in a bounded stream: the sequence number of the
/// next event it will read, with the [`NOTIFY`] bit. On its own cache line, as
/// its subscriber writes it on every event.
#[repr(align(128))]
pub(crate) struct Cursor {
    pos: AtomicU64,
}

/// A subscriber's registration in [`Shared::cursors`].
pub(crate) struct CursorKey {
    cursor: Arc<Cursor>,
    key: usize,
}

/// Where a new subscriber starts.
pub(crate) struct Start<T> {
    pub(crate) reader: Reader<T>,
    pub(crate) cursor: Option<CursorKey>,
}

impl<T> Shared<T> {
    /// Live subscribers, as every publisher and handle reports them.
    pub(crate) fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    pub(crate) fn new(tail: TailPointer<T>, bound: Option<u64>, metrics: Metrics) -> Self {
        Shared {
            metrics,
            tail: Mutex::new(tail),
            readers: Waiters::new(),
            room: Waiters::new(),
            bound,
            cursors: Mutex::new(Slab::new()),
            subscribers: AtomicUsize::new(0),
        }
    }

    /// A position at the tail: after every event published so far.
    pub(crate) fn start_at_tail(&self) -> Start<T> {
        // In a bounded stream the cursor lock is held while the position is
        // read. The publisher scans cursors under the same lock, so a new
        // subscriber is either seen by a scan or reads a position at least as
        // recent as everything the scan was based on; either way no
        // subscriber is ever behind the minimum a publisher relies on.
        let cursors = self.bound.map(|_| lock(&self.cursors));
        let reader = lock(&self.tail).reader();
        let cursor = cursors.map(|mut cursors| {
            let cursor = Arc::new(Cursor {
                pos: AtomicU64::new(reader.position()),
            });
            let key = cursors.insert(Arc::clone(&cursor));
            CursorKey { cursor, key }
        });
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        self.metrics.subscribers.inc();
        Start { reader, cursor }
    }

    /// Events published so far, as far as a subscriber can tell.
    pub(crate) fn published(&self) -> u64 {
        lock(&self.tail).committed()
    }

    /// Whether the stream is closed.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.tail).is_closed()
    }

    /// Registers a subscriber forked from one at `pos`. In a bounded stream
    /// the original's registered position is at least every minimum a
    /// publisher relies on, so the fork's is too.
    pub(crate) fn fork(&self, pos: u64) -> Option<CursorKey> {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        self.metrics.subscribers.inc();
        self.bound?;
        let cursor = Arc::new(Cursor {
            pos: AtomicU64::new(pos),
        });
        let key = lock(&self.cursors).insert(Arc::clone(&cursor));
        Some(CursorKey { cursor, key })
    }

    /// Unregisters a subscriber that is going away; `finished` if it had
    /// read to the end of the closed stream.
    pub(crate) fn leave(
        &self,
        cursor: Option<CursorKey>,
        reader_key: &mut Option<usize>,
        finished: bool,
    ) {
        self.readers.remove(reader_key);
        if let Some(CursorKey { cursor, key }) = cursor {
            lock(&self.cursors).remove(key);
            // Removed under the lock the publisher marks under, so a mark made
            // before the removal is seen here and none is made after it.
            if cursor.pos.load(Ordering::Acquire) & NOTIFY != 0 {
                self.room.wake_all();
            }
        }
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        self.metrics.subscribers.dec();
        if finished {
            self.metrics.left_finished.inc();
        } else {
            self.metrics.left_dropped.inc();
        }
    }

    /// The smallest position of a live subscriber, or `published` if there is
    /// none. With `mark`, also asks every subscriber that holds the publisher
    /// back (at least `bound` events behind `published`) to wake the room
    /// waiters when it moves. The caller registered its waker before calling
    /// with `mark`.
    pub(crate) fn min_position(&self, published: u64, bound: u64, mark: bool) -> u64 {
        let cursors = lock(&self.cursors);
        let mut min = published;
        for (_, cursor) in cursors.iter() {
            let mut current = cursor.pos.load(Ordering::Acquire);
            loop {
                let pos = current & !NOTIFY;
                let behind = published.saturating_sub(pos) >= bound;
                if mark && behind && current & NOTIFY == 0 {
                    // A compare-exchange, not a store: if the subscriber moved
                    // in between, its new position is looked at instead.
                    // If the mark lands, the subscriber's next `advance`
                    // (a swap, ordered after this in the same word) sees it.
                    if let Err(actual) = cursor.pos.compare_exchange(
                        current,
                        current | NOTIFY,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        current = actual;
                        continue;
                    }
                }
                min = min.min(pos);
                break;
            }
        }
        min
    }
}

impl CursorKey {
    /// Records that the subscriber's next event is number `pos`, waking the
    /// room waiters if a publisher asked for it.
    pub(crate) fn advance<T>(&self, pos: u64, shared: &Shared<T>) {
        if self.cursor.pos.swap(pos, Ordering::AcqRel) & NOTIFY != 0 {
            shared.room.wake_all();
        }
    }
}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("bound", &self.bound)
            .field("subscribers", &self.subscribers.load(Ordering::Relaxed))
            .field("readers", &self.readers)
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorKey")
            .field("pos", &(self.cursor.pos.load(Ordering::Relaxed) & !NOTIFY))
            .finish()
    }
}
