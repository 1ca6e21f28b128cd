//! State shared by the [`Batcher`](super::Batcher) handles and the
//! [`Worker`](super::Worker).

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::watch;
use tokio::time::Instant;

use super::BatchStats;
use super::flushed::Completion;
use super::room::{self, Room, RoomWaiter, Woken};
use super::wait::{WaitLock, WaitTable, WaitTables};
use crate::sync::lock;

/// Measures an item for the `max_bytes` bound.
pub(crate) type Weigher<T> = Box<dyn Fn(&T) -> usize + Send + Sync + 'static>;

/// The validated limits of one batcher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_items: usize,
    /// `usize::MAX` when no byte bound was set.
    pub(crate) max_bytes: usize,
    pub(crate) max_delay: Duration,
    pub(crate) capacity: usize,
    pub(crate) flush_concurrency: usize,
    /// Resolve items in submission order across concurrent flushes.
    pub(crate) resolve_in_order: bool,
}

/// Aligned to a cache line, so that the lock word and the state's hot fields
/// (see [`State`]) share no line with the `Arc`'s reference counts.
#[repr(C, align(64))]
pub(crate) struct Shared<T, O, E> {
    pub(crate) state: Mutex<State<T, O, E>>,
    /// The worker's waker: woken when a batch opens (to arm its timer), is
    /// sealed, or when the batcher closes.
    pub(crate) worker: AtomicWaker,
    /// Live [`Batcher`](super::Batcher) handles; the worker closes the batcher
    /// when it reaches zero.
    pub(crate) handles: AtomicUsize,
    /// Flush progress, for [`Batcher::flush`](super::Batcher::flush) and
    /// [`Batcher::close`](super::Batcher::close) to wait on.
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) limits: Limits,
    pub(crate) weigher: Option<Weigher<T>>,
}

/// What the worker has finished so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    /// Every batch with a sequence number up to this one has been resolved.
    pub(crate) resolved: u64,
    /// The worker has stopped: every batch has been resolved.
    pub(crate) stopped: bool,
}

/// Everything behind the state lock.
///
/// The fields every submission touches come first, in declaration order
/// (`repr(C)`), so that with the lock word they span two cache lines: on a
/// multi-threaded runtime each line a submission touches is a line that may
/// have to move from the other core.
#[repr(C)]
pub(crate) struct State<T, O, E> {
    pub(crate) closed: bool,
    /// One unit per item the batcher may still accept. A submitter takes a
    /// unit before its item enters a batch; the worker gives a batch's units
    /// back when it hands the batch to the flush function.
    pub(crate) room: Room,
    /// Items accepted so far (`BatchStats::submitted`).
    pub(crate) submitted: u64,
    /// The batch accepting items; `None` until the next item arrives. Its
    /// hot fields come first.
    pub(crate) open: Option<Batch<T, O, E>>,
    // ---- the rest is touched once per batch ----
    /// Batches that are complete and wait for a flush slot, oldest first.
    pub(crate) sealed: VecDeque<Batch<T, O, E>>,
    /// The `submit_and_wait` waiters of the batches being flushed.
    pub(crate) flushing: WaitTables<O, E>,
    /// Sequence number of the next batch to open; batches are numbered from 1.
    pub(crate) next_seq: u64,
    /// All counters but `submitted`.
    pub(crate) stats: BatchStats,
}

/// Where an item entered: what `notify` gets to register its flushed future, callback
/// or waiter with.
pub(crate) struct Entered<'s, O, E> {
    pub(crate) completion: &'s mut Completion<O, E>,
    /// The batch's `submit_and_wait` waiters.
    pub(crate) waiters: &'s mut WaitTable<O, E>,
    /// The batch's sequence number.
    pub(crate) seq: u64,
    /// The item's index in the batch.
    pub(crate) index: usize,
}

/// How [`Shared::enter`] gets room for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomPolicy {
    /// Take a free unit, or give up with `Full`.
    Take,
    /// Take a free unit, or queue for the next one and return `Full` with
    /// the queued waiter.
    Wait,
    /// The caller already holds a unit (reserved or granted).
    Held,
}

/// The outcome of [`Shared::enter`].
pub(crate) enum Enter<R, T> {
    /// The item is in a batch; `notify` returned this.
    Entered(R),
    /// No room: the item is handed back, with the queued waiter under
    /// [`RoomPolicy::Wait`].
    Full(T, Option<Arc<RoomWaiter>>),
    /// The batcher is closed: the item is handed back (and room the caller
    /// held is given back).
    Closed(T),
}

/// A batch that is open or sealed. The fields every submission touches come
/// first (`repr(C)`; see [`State`]).
#[repr(C)]
pub(crate) struct Batch<T, O, E> {
    pub(crate) items: Vec<T>,
    /// The `submit_and_wait` waiters of the items, by index. Moved to
    /// [`State::flushing`] when the batch starts flushing.
    pub(crate) waiters: WaitTable<O, E>,
    pub(crate) bytes: usize,
    pub(crate) seq: u64,
    /// When `max_delay` has passed since the batch's first item; `None` for
    /// a delay too long for an `Instant` (up to `Duration::MAX`), which
    /// never passes: the batch holds no timer.
    pub(crate) deadline: Option<Instant>,
    pub(crate) completion: Completion<O, E>,
}

/// What happened to the open batch when an item was added.
pub(crate) struct Added {
    /// The worker must look at the state: a batch opened (its timer must be
    /// armed) or was sealed.
    pub(crate) wake_worker: bool,
}

impl<T, O, E> State<T, O, E> {
    pub(crate) fn new(capacity: usize) -> Self {
        State {
            closed: false,
            room: Room::new(capacity),
            submitted: 0,
            open: None,
            sealed: VecDeque::new(),
            flushing: WaitTables::new(),
            next_seq: 1,
            stats: BatchStats::default(),
        }
    }

    /// The counters, complete.
    pub(crate) fn stats(&self) -> BatchStats {
        let mut stats = self.stats;
        stats.submitted = self.submitted;
        stats.pending = stats.submitted - stats.flushed - stats.failed;
        stats
    }

    /// Stops accepting items: waiting submitters get their items back.
    pub(crate) fn close(&mut self, woken: &mut Woken) {
        self.closed = true;
        self.room.close(woken);
    }

    /// Moves the open batch, if any, to the back of the sealed queue.
    pub(crate) fn seal(&mut self) {
        if let Some(batch) = self.open.take() {
            self.sealed.push_back(batch);
        }
    }

    /// Adds `item` (of `weight` bytes) to the open batch, opening or sealing
    /// batches as the limits require, and lets `notify` register the item's
    /// flushed, callback or waiter at its index in the batch.
    pub(crate) fn add<R>(
        &mut self,
        limits: &Limits,
        item: T,
        weight: usize,
        notify: impl FnOnce(Entered<'_, O, E>) -> R,
    ) -> (R, Added) {
        let mut wake_worker = false;
        // An item that would push a non-empty batch over the byte bound
        // starts the next batch, so a batch exceeds `max_bytes` only when a
        // single item does.
        if let Some(open) = &self.open
            && open.bytes.saturating_add(weight) > limits.max_bytes
        {
            self.seal();
            wake_worker = true;
        }
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                wake_worker = true;
                let seq = self.next_seq;
                self.next_seq += 1;
                let now = Instant::now();
                // A delay too long to represent never passes.
                let deadline = now.checked_add(limits.max_delay);
                self.open.insert(Batch {
                    items: Vec::with_capacity(limits.max_items.min(4096)),
                    waiters: WaitTable::new(),
                    bytes: 0,
                    seq,
                    deadline,
                    completion: Completion::new(limits.max_items.min(4096)),
                })
            }
        };
        let index = open.items.len();
        open.items.push(item);
        open.bytes = open.bytes.saturating_add(weight);
        let notified = notify(Entered {
            completion: &mut open.completion,
            waiters: &mut open.waiters,
            seq: open.seq,
            index,
        });
        if open.items.len() >= limits.max_items || open.bytes >= limits.max_bytes {
            self.seal();
            wake_worker = true;
        }
        self.submitted += 1;
        (notified, Added { wake_worker })
    }
}

impl<T, O, E> Shared<T, O, E> {
    /// Enters `item` into the open batch, getting room for it as `policy`
    /// says, in one critical section; `notify` registers the item's flushed,
    /// callback or waiter.
    pub(crate) fn enter<R>(
        &self,
        item: T,
        policy: RoomPolicy,
        notify: impl FnOnce(Entered<'_, O, E>) -> R,
    ) -> Enter<R, T> {
        // Measure outside the lock: the weigher is user code.
        let weight = self.weigher.as_ref().map_or(0, |weigh| weigh(&item));
        let mut state = lock(&self.state);
        if state.closed {
            if policy == RoomPolicy::Held {
                let mut woken = Woken::new();
                state.room.release(1, &mut woken);
                drop(state);
                room::wake(woken);
            }
            return Enter::Closed(item);
        }
        if policy != RoomPolicy::Held && !state.room.try_take() {
            let waiter = (policy == RoomPolicy::Wait).then(|| state.room.wait());
            return Enter::Full(item, waiter);
        }
        let (notified, added) = state.add(&self.limits, item, weight, notify);
        drop(state);
        if added.wake_worker {
            self.worker.wake();
        }
        Enter::Entered(notified)
    }

    /// Gives `n` units of room back.
    pub(crate) fn release_room(&self, n: usize) {
        let mut woken = Woken::new();
        lock(&self.state).room.release(n, &mut woken);
        room::wake(woken);
    }
}

impl<T, O, E> WaitLock<O, E> for Mutex<State<T, O, E>> {
    fn with_table<R>(&self, seq: u64, f: impl FnOnce(Option<&mut WaitTable<O, E>>) -> R) -> R {
        let mut state = lock(self);
        let state = &mut *state;
        // Open, sealed or flushing: the batch is in exactly one place.
        let table = if let Some(open) = state.open.as_mut().filter(|open| open.seq == seq) {
            Some(&mut open.waiters)
        } else if let Ok(pos) = state.sealed.binary_search_by_key(&seq, |batch| batch.seq) {
            Some(&mut state.sealed[pos].waiters)
        } else {
            state.flushing.find(seq)
        };
        f(table)
    }
}
