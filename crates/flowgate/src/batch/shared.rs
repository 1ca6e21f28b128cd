//! State shared by the handles ([`Batcher`](super::Batcher),
//! [`KeyedBatcher`](super::KeyedBatcher)) and the worker, and the submit,
//! flush and close paths both kinds of handle share.
//!
//! Everything here is generic over a [`BatchKey`]: `()` for the plain
//! batcher, [`Keyed`](super::keys::Keyed) for the keyed one (see
//! [`keys`](super::keys)).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use foldhash::fast::RandomState;
use futures_util::task::AtomicWaker;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Span;

use super::BatchStats;
use super::error::TrySubmitError;
use super::flushed::{Callback, Completion, Flushed};
use super::keys::{BatchKey, Lanes, OpenSet};
use super::observe::{self, Links, Metrics, Trigger};
use super::room::{self, Room, RoomWait, RoomWaiter, Woken};
use super::wait::{WaitLock, WaitTable, WaitTables};
use crate::sync::lock;
use crate::telemetry::Gauge;

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
    /// How many batches may be open at once: `usize::MAX` for a plain
    /// batcher, which has one at most anyway. Opening one more seals the
    /// oldest.
    pub(crate) max_open_keys: usize,
    /// At most one batch of a key is flushing at a time; its later batches
    /// wait in its lane.
    pub(crate) one_flush_per_key: bool,
    /// When the batcher is full and no sealed batch is waiting to start,
    /// seal the oldest open batch (a keyed batcher, whose open batches can
    /// hold every unit of room between them).
    pub(crate) seal_when_full: bool,
}

/// Aligned to a cache line, so that the lock word and the state's hot fields
/// (see [`State`]) share no line with the `Arc`'s reference counts.
#[repr(C, align(64))]
pub(crate) struct Shared<K: BatchKey, T, O, E> {
    pub(crate) state: Mutex<State<K, T, O, E>>,
    /// The worker's waker: woken when a batch opens (to arm its timer), is
    /// sealed, or when the batcher closes.
    pub(crate) worker: AtomicWaker,
    /// Live handles; the worker closes the batcher when it reaches zero.
    pub(crate) handles: AtomicUsize,
    /// Flush progress, for `flush()` and `close()` to wait on.
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) limits: Limits,
    pub(crate) weigher: Option<Weigher<T>>,
    /// Hashes keys, outside the lock (unused by a plain batcher).
    pub(crate) hasher: RandomState,
    /// The batcher's series and name.
    pub(crate) metrics: Metrics,
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
pub(crate) struct State<K: BatchKey, T, O, E> {
    pub(crate) closed: bool,
    /// One unit per item the batcher may still accept. A submitter takes a
    /// unit before its item enters a batch; the worker gives a batch's units
    /// back when it hands the batch to the flush function.
    pub(crate) room: Room,
    /// Items accepted so far (`BatchStats::submitted`).
    pub(crate) submitted: u64,
    /// The batches accepting items: one at most for a plain batcher, one
    /// per key for a keyed one. Their hot fields come first.
    pub(crate) open: K::Open<T, O, E>,
    // ---- the rest is touched once per batch ----
    /// Batches that are complete and may start flushing, in the order they
    /// were sealed; each waits for a flush slot.
    pub(crate) ready: VecDeque<Sealed<K, T, O, E>>,
    /// With `one_flush_per_key`: the keys with a batch ready or flushing,
    /// and their batches sealed meanwhile.
    pub(crate) lanes: Lanes<K, T, O, E>,
    /// The `submit_and_wait` waiters of the batches sealed or being flushed:
    /// a batch's table moves here when it is sealed.
    pub(crate) flushing: WaitTables<O, E>,
    /// Sequence number of the next batch to open; batches are numbered from 1.
    pub(crate) next_seq: u64,
    /// All counters but `submitted`.
    pub(crate) stats: BatchStats,
    /// Batches sealed before their own triggers, to keep `max_open_keys` or
    /// to make room.
    pub(crate) early: u64,
    /// `Limits::one_flush_per_key`, where sealing needs it.
    one_flush_per_key: bool,
    /// `flowgate_batch_open_keys`, moved as batches open and are sealed.
    open_keys: Gauge,
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
    /// [`State::flushing`] when the batch is sealed.
    pub(crate) waiters: WaitTable<O, E>,
    pub(crate) bytes: usize,
    pub(crate) seq: u64,
    /// When `max_delay` has passed since the batch's first item; `None` for
    /// a delay too long for an `Instant` (up to `Duration::MAX`), which
    /// never passes: the batch holds no timer.
    pub(crate) deadline: Option<Instant>,
    pub(crate) completion: Completion<O, E>,
    /// When the first item arrived (for `flowgate_batch_oldest_item_age_seconds`).
    pub(crate) opened: Instant,
    /// What sealed it; `Close` until it is sealed.
    pub(crate) trigger: Trigger,
    /// The spans its items were submitted in, for the flush span to follow
    /// from.
    pub(crate) links: Links,
}

/// A sealed batch with its key (and the key's hash), on its way to the
/// flush function.
pub(crate) struct Sealed<K, T, O, E> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) batch: Batch<T, O, E>,
}

/// What happened when an item was added.
pub(crate) struct Added<K> {
    /// The worker must look at the state: a batch opened (its timer must be
    /// armed) or was sealed.
    pub(crate) wake_worker: bool,
    /// The key of an item that joined an open batch, no longer needed:
    /// dropped by the caller outside the lock.
    pub(crate) spare_key: Option<K>,
}

impl<T, O, E> Batch<T, O, E> {
    fn new(limits: &Limits, seq: u64) -> Self {
        // A delay too long to represent never passes.
        let opened = Instant::now();
        let deadline = opened.checked_add(limits.max_delay);
        Batch {
            items: Vec::with_capacity(limits.max_items.min(4096)),
            waiters: WaitTable::new(),
            bytes: 0,
            seq,
            deadline,
            completion: Completion::new(limits.max_items.min(4096)),
            opened,
            trigger: Trigger::Close,
            links: Links::new(),
        }
    }

    /// Adds `item` and lets `notify` register it; returns what `notify`
    /// returned and, if the batch is now complete, which bound it reached.
    #[inline]
    fn push<R>(
        &mut self,
        limits: &Limits,
        item: T,
        weight: usize,
        link: Option<Span>,
        notify: impl FnOnce(Entered<'_, O, E>) -> R,
    ) -> (R, Option<Trigger>) {
        let index = self.items.len();
        self.items.push(item);
        self.bytes = self.bytes.saturating_add(weight);
        self.links.push(link);
        let notified = notify(Entered {
            completion: &mut self.completion,
            waiters: &mut self.waiters,
            seq: self.seq,
            index,
        });
        let full = if self.items.len() >= limits.max_items {
            Some(Trigger::Size)
        } else if self.bytes >= limits.max_bytes {
            Some(Trigger::Bytes)
        } else {
            None
        };
        (notified, full)
    }
}

impl<K: BatchKey, T, O, E> State<K, T, O, E> {
    pub(crate) fn new(limits: &Limits, metrics: &Metrics) -> Self {
        State {
            closed: false,
            room: Room::new(limits.capacity, metrics.waiting.clone()),
            submitted: 0,
            open: OpenSet::new(),
            ready: VecDeque::new(),
            lanes: Lanes::new(),
            flushing: WaitTables::new(),
            next_seq: 1,
            stats: BatchStats::default(),
            early: 0,
            one_flush_per_key: limits.one_flush_per_key,
            open_keys: metrics.open_keys.clone(),
        }
    }

    /// Whether batches of one key flush one at a time, through lanes.
    pub(crate) fn lanes_in_use(&self) -> bool {
        self.one_flush_per_key
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

    /// Seals the open batch `seq`, if it is open, for `trigger`: its waiters
    /// move to the flushing tables, and it is ready to flush (or, with
    /// `one_flush_per_key`, waits in its key's lane).
    pub(crate) fn seal(&mut self, seq: u64, trigger: Trigger) {
        if let Some(mut sealed) = self.open.remove(seq) {
            self.open_keys.dec();
            sealed.batch.trigger = trigger;
            let waiters = std::mem::replace(&mut sealed.batch.waiters, WaitTable::new());
            self.flushing.insert(seq, waiters);
            if self.one_flush_per_key {
                self.lanes.route(sealed, &mut self.ready);
            } else {
                self.ready.push_back(sealed);
            }
        }
    }

    /// Seals every open batch, oldest first, for `trigger`.
    pub(crate) fn seal_all(&mut self, trigger: Trigger) {
        while let Some((seq, _)) = self.open.oldest() {
            self.seal(seq, trigger);
        }
    }

    /// Seals the oldest open batch before its own triggers (`OpenKeys` or
    /// `Full`); whether there was one.
    fn seal_oldest_early(&mut self, trigger: Trigger) -> bool {
        match self.open.oldest() {
            Some((seq, _)) => {
                self.seal(seq, trigger);
                self.early += 1;
                true
            }
            None => false,
        }
    }

    /// Adds `item` (of `weight` bytes) to the open batch of `key`, opening
    /// or sealing batches as the limits require, and lets `notify` register
    /// the item's flushed, callback or waiter at its index in the batch.
    /// `link` is the submitter's span, if the flush span should follow from
    /// it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn add<R>(
        &mut self,
        limits: &Limits,
        hash: u64,
        key: K,
        item: T,
        weight: usize,
        link: Option<Span>,
        notify: impl FnOnce(Entered<'_, O, E>) -> R,
    ) -> (R, Added<K>) {
        let mut wake_worker = false;
        if let Some(open) = self.open.get_mut(hash, &key) {
            let seq = open.seq;
            // An item that would push a non-empty batch over the byte bound
            // starts the next batch, so a batch exceeds `max_bytes` only when
            // a single item does.
            if open.bytes.saturating_add(weight) <= limits.max_bytes {
                let (notified, full) = open.push(limits, item, weight, link, notify);
                if let Some(trigger) = full {
                    self.seal(seq, trigger);
                    wake_worker = true;
                }
                self.submitted += 1;
                let added = Added {
                    wake_worker,
                    spare_key: Some(key),
                };
                return (notified, added);
            }
            self.seal(seq, Trigger::Bytes);
        } else if self.open.len() >= limits.max_open_keys {
            // A new key, and as many open as allowed: the oldest goes.
            self.seal_oldest_early(Trigger::OpenKeys);
        }
        // A batch opens: the worker arms its timer.
        let seq = self.next_seq;
        self.next_seq += 1;
        let open = self.open.insert(hash, key, Batch::new(limits, seq));
        let (notified, full) = open.push(limits, item, weight, link, notify);
        self.open_keys.inc();
        if let Some(trigger) = full {
            self.seal(seq, trigger);
        }
        self.submitted += 1;
        let added = Added {
            wake_worker: true,
            spare_key: None,
        };
        (notified, added)
    }
}

impl<K: BatchKey, T, O, E> Shared<K, T, O, E> {
    pub(crate) fn new(limits: Limits, weigher: Option<Weigher<T>>, metrics: Metrics) -> Self {
        let (progress, _) = watch::channel(Progress::default());
        Shared {
            state: Mutex::new(State::new(&limits, &metrics)),
            worker: AtomicWaker::new(),
            handles: AtomicUsize::new(1),
            progress,
            limits,
            weigher,
            hasher: RandomState::default(),
            metrics,
        }
    }

    /// Enters `item` into the open batch of `key`, getting room for it as
    /// `policy` says, in one critical section; `notify` registers the item's
    /// flushed, callback or waiter.
    #[inline]
    pub(crate) fn enter<R>(
        &self,
        key: K,
        item: T,
        policy: RoomPolicy,
        notify: impl FnOnce(Entered<'_, O, E>) -> R,
    ) -> Enter<R, (K, T)> {
        // Measure and hash outside the lock: the weigher is user code.
        let weight = self.weigher.as_ref().map_or(0, |weigh| weigh(&item));
        let hash = K::hash(&self.hasher, &key);
        // The submitter's span, if tracing wants it: looked up outside the
        // lock, and only when the batch target is enabled.
        let link = observe::submitter_span();
        let mut state = lock(&self.state);
        if state.closed {
            if policy == RoomPolicy::Held {
                let mut woken = Woken::new();
                state.room.release(1, &mut woken);
                drop(state);
                room::wake(woken);
            } else {
                drop(state);
            }
            self.metrics.rejected_closed.inc();
            return Enter::Closed((key, item));
        }
        if policy != RoomPolicy::Held && !state.room.try_take() {
            let waiter = (policy == RoomPolicy::Wait).then(|| state.room.wait());
            // Every unit may sit in open batches that wait for their delay:
            // seal the oldest, so that room comes back as it starts flushing.
            let sealed = self.limits.seal_when_full
                && state.ready.is_empty()
                && state.lanes.parked() == 0
                && state.seal_oldest_early(Trigger::Full);
            drop(state);
            if sealed {
                self.worker.wake();
            }
            if waiter.is_none() {
                self.metrics.rejected_full.inc();
            }
            return Enter::Full((key, item), waiter);
        }
        let (notified, added) = state.add(&self.limits, hash, key, item, weight, link, notify);
        // Under the lock, so that the worker's decrement (as it takes the
        // batch, under the lock too) never comes first.
        self.metrics.submitted.inc();
        self.metrics.pending.inc();
        drop(state);
        if added.wake_worker {
            self.worker.wake();
        }
        drop(added.spare_key);
        Enter::Entered(notified)
    }

    /// Gives `n` units of room back.
    pub(crate) fn release_room(&self, n: usize) {
        let mut woken = Woken::new();
        lock(&self.state).room.release(n, &mut woken);
        room::wake(woken);
    }

    /// `submit`: enters the item, waiting for room; the item comes back if
    /// the batcher is closed.
    pub(crate) async fn submit(&self, key: K, item: T) -> Result<Flushed<O, E>, (K, T)> {
        let mut entry = Some((key, item));
        let mut policy = RoomPolicy::Wait;
        loop {
            // Enter from inside a poll, to register this task's waker with
            // the item: the flushed future's first poll then needs no lock.
            let entered = std::future::poll_fn(|cx| {
                let (key, item) = entry
                    .take()
                    .expect("the item is put back before polling again");
                Poll::Ready(self.enter(key, item, policy, |entered| {
                    entered.completion.flushed(entered.index, Some(cx.waker()))
                }))
            })
            .await;
            match entered {
                Enter::Entered(flushed) => return Ok(flushed),
                Enter::Closed(back) => return Err(back),
                Enter::Full(back, waiter) => {
                    let waiter = waiter.expect("`RoomPolicy::Wait` queues a waiter");
                    if !RoomWait::new(self, waiter).await {
                        self.metrics.rejected_closed.inc();
                        return Err(back);
                    }
                    entry = Some(back);
                    policy = RoomPolicy::Held;
                }
            }
        }
    }

    /// `try_submit`: enters the item if there is room now.
    pub(crate) fn try_submit(
        &self,
        key: K,
        item: T,
    ) -> Result<Flushed<O, E>, TrySubmitError<(K, T)>> {
        match self.enter(key, item, RoomPolicy::Take, |entered| {
            entered.completion.flushed(entered.index, None)
        }) {
            Enter::Entered(flushed) => Ok(flushed),
            Enter::Full(item, _) => Err(TrySubmitError::Full(item)),
            Enter::Closed(item) => Err(TrySubmitError::Closed(item)),
        }
    }

    /// `submit_with`: enters the item with a callback, waiting for room.
    pub(crate) async fn submit_with(
        &self,
        key: K,
        item: T,
        callback: Callback<O, E>,
    ) -> Result<(), (K, T)> {
        let mut callback = Some(callback);
        let mut policy = RoomPolicy::Wait;
        let (mut key, mut item) = (key, item);
        loop {
            match self.enter(key, item, policy, |entered| {
                let callback = callback.take().expect("entered once");
                entered.completion.push_callback(entered.index, callback);
            }) {
                Enter::Entered(()) => return Ok(()),
                Enter::Closed(back) => return Err(back),
                Enter::Full(back, waiter) => {
                    let waiter = waiter.expect("`RoomPolicy::Wait` queues a waiter");
                    if !RoomWait::new(self, waiter).await {
                        self.metrics.rejected_closed.inc();
                        return Err(back);
                    }
                    (key, item) = back;
                    policy = RoomPolicy::Held;
                }
            }
        }
    }

    /// `try_submit_with`: enters the item with a callback if there is room
    /// now (`Held`: into room reserved before).
    pub(crate) fn enter_with(
        &self,
        key: K,
        item: T,
        policy: RoomPolicy,
        callback: Callback<O, E>,
    ) -> Enter<(), (K, T)> {
        self.enter(key, item, policy, |entered| {
            entered.completion.push_callback(entered.index, callback);
        })
    }

    /// Enters the item into room reserved before.
    pub(crate) fn enter_held(&self, key: K, item: T) -> Result<Flushed<O, E>, (K, T)> {
        match self.enter(key, item, RoomPolicy::Held, |entered| {
            entered.completion.flushed(entered.index, None)
        }) {
            Enter::Entered(flushed) => Ok(flushed),
            Enter::Closed(item) | Enter::Full(item, _) => Err(item),
        }
    }

    /// `reserve`: waits for one unit of room; `false` if the batcher is
    /// closed.
    pub(crate) async fn reserve(&self) -> bool {
        let waiter = {
            let mut state = lock(&self.state);
            if state.closed {
                drop(state);
                self.metrics.rejected_closed.inc();
                return false;
            }
            if state.room.try_take() {
                return true;
            }
            state.room.wait()
        };
        let granted = RoomWait::new(self, waiter).await;
        if !granted {
            self.metrics.rejected_closed.inc();
        }
        granted
    }

    /// `flush`: seals every open batch now; the future waits until every
    /// batch opened before the call is resolved.
    pub(crate) fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        let target = {
            let mut state = lock(&self.state);
            // Every batch opened so far is sealed now, or resolved.
            let target = state.next_seq - 1;
            state.seal_all(Trigger::Flush);
            target
        };
        self.worker.wake();
        let mut progress = self.progress.subscribe();
        async move {
            // An error means the worker and every handle are gone, and with
            // them every batch was resolved.
            let _ = progress
                .wait_for(|progress| progress.resolved >= target || progress.stopped)
                .await;
        }
    }

    /// `close`: stops accepting items and seals every open batch; the future
    /// waits for the worker to stop.
    pub(crate) fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut woken = Woken::new();
        {
            let mut state = lock(&self.state);
            state.close(&mut woken);
            state.seal_all(Trigger::Close);
        }
        room::wake(woken);
        self.worker.wake();
        let mut progress = self.progress.subscribe();
        async move {
            let _ = progress.wait_for(|progress| progress.stopped).await;
        }
    }
}

impl<K: BatchKey, T, O, E> WaitLock<O, E> for Mutex<State<K, T, O, E>> {
    fn with_table<R>(&self, seq: u64, f: impl FnOnce(Option<&mut WaitTable<O, E>>) -> R) -> R {
        let mut state = lock(self);
        let state = &mut *state;
        // Open, or sealed (or flushing): the table is in exactly one place.
        let table = match state.open.find(seq) {
            Some(open) => Some(&mut open.waiters),
            None => state.flushing.find(seq),
        };
        f(table)
    }
}
