//! State shared by the [`Batcher`](super::Batcher) handles and the
//! [`Worker`](super::Worker).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::BatchStats;
use super::ack::Completion;
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
}

pub(crate) struct Shared<T, O, E> {
    pub(crate) state: Mutex<State<T, O, E>>,
    /// One permit per item the batcher may still accept. A submitter takes a
    /// permit before its item enters a batch; the worker returns the batch's
    /// permits when it hands the batch to the flush function. Closed when the
    /// batcher closes, which fails every waiting submitter.
    pub(crate) room: Semaphore,
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

pub(crate) struct State<T, O, E> {
    /// The batch accepting items; `None` until the next item arrives.
    pub(crate) open: Option<Batch<T, O, E>>,
    /// Batches that are complete and wait for a flush slot, oldest first.
    pub(crate) sealed: VecDeque<Batch<T, O, E>>,
    pub(crate) closed: bool,
    /// Sequence number of the next batch to open; batches are numbered from 1.
    pub(crate) next_seq: u64,
    pub(crate) stats: BatchStats,
}

pub(crate) struct Batch<T, O, E> {
    pub(crate) seq: u64,
    pub(crate) items: Vec<T>,
    pub(crate) bytes: usize,
    /// When `max_delay` has passed since the batch's first item.
    pub(crate) deadline: Instant,
    pub(crate) completion: Completion<O, E>,
}

/// What happened to the open batch when an item was added.
pub(crate) struct Added {
    /// The worker must look at the state: a batch opened (its timer must be
    /// armed) or was sealed.
    pub(crate) wake_worker: bool,
}

impl<T, O, E> State<T, O, E> {
    pub(crate) fn new() -> Self {
        State {
            open: None,
            sealed: VecDeque::new(),
            closed: false,
            next_seq: 1,
            stats: BatchStats::default(),
        }
    }

    /// Moves the open batch, if any, to the back of the sealed queue.
    pub(crate) fn seal(&mut self) {
        if let Some(batch) = self.open.take() {
            self.sealed.push_back(batch);
        }
    }

    /// Adds `item` (of `weight` bytes) to the open batch, opening or sealing
    /// batches as the limits require, and lets `notify` register the item's
    /// ack or callback at its index in the batch.
    pub(crate) fn add<R>(
        &mut self,
        limits: &Limits,
        item: T,
        weight: usize,
        notify: impl FnOnce(&mut Completion<O, E>, usize) -> R,
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
                let deadline = now
                    .checked_add(limits.max_delay)
                    // A delay too long to represent never expires in practice.
                    .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30));
                self.open.insert(Batch {
                    seq,
                    items: Vec::with_capacity(limits.max_items.min(4096)),
                    bytes: 0,
                    deadline,
                    completion: Completion::new(limits.max_items.min(4096)),
                })
            }
        };
        let index = open.items.len();
        open.items.push(item);
        open.bytes = open.bytes.saturating_add(weight);
        let notified = notify(&mut open.completion, index);
        if open.items.len() >= limits.max_items || open.bytes >= limits.max_bytes {
            self.seal();
            wake_worker = true;
        }
        self.stats.submitted += 1;
        (notified, Added { wake_worker })
    }
}

impl<T, O, E> Shared<T, O, E> {
    /// Enters `item` into the open batch. The caller holds one permit of
    /// `room`, which this consumes; if the batcher is closed the permit is
    /// returned and the item handed back.
    pub(crate) fn enqueue<R>(
        &self,
        item: T,
        notify: impl FnOnce(&mut Completion<O, E>, usize) -> R,
    ) -> Result<R, T> {
        // Measure outside the lock: the weigher is user code.
        let weight = self.weigher.as_ref().map_or(0, |weigh| weigh(&item));
        let mut state = lock(&self.state);
        if state.closed {
            drop(state);
            self.room.add_permits(1);
            return Err(item);
        }
        let (notified, added) = state.add(&self.limits, item, weight, notify);
        drop(state);
        if added.wake_worker {
            self.worker.wake();
        }
        Ok(notified)
    }
}
