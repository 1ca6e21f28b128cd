//! Intrusive waiters: how [`submit_and_wait`](super::Batcher::submit_and_wait)
//! waits for its item's batch without an allocation or a reference count per
//! item.
//!
//! # The protocol
//!
//! A [`Waiter`] lives *inside* the submitting future, which is pinned. When
//! the item enters a batch, the waiter's address is recorded in that batch's
//! [`WaitTable`], at the item's index. The table travels with the batch while
//! it is open, and moves to the state's [`WaitTables`] when the batch is
//! sealed (a keyed batcher seals batches out of sequence order, so the tables
//! are kept sorted by sequence number); wherever it is, it is only touched
//! under the state lock. When the batch resolves, the worker walks the table
//! under the lock and, for each waiter still there, takes its waker, moves
//! the item's output into it, and sets its `done` flag; it wakes the tasks
//! after unlocking. A waiter whose future is dropped first removes its own
//! entry under the lock, so the worker never sees it.
//!
//! ```text
//!  state lock ─┬─ open batch 9: [&w5, ∅, &w6]
//!              ├─ sealed (WaitTables): [ seq 7: [&w0, &w1, ∅, &w3] ][ seq 8: [&w4] ]
//!              │                             │
//!  future ─────┴─ Waiter { done, waker, output }   (pinned in the future)
//! ```
//!
//! # Why this module has `unsafe`
//!
//! The tables hold raw pointers to waiters that live in other tasks' futures.
//! These invariants make every access sound:
//!
//! 1. **A linked waiter is alive.** A pointer is in a table only between
//!    [`Waiter::link`] and either the worker's resolution (which removes it)
//!    or the waiter's `Drop` (which removes it). Both removals happen under
//!    the state lock, and the waiter is pinned, so while a table holds its
//!    pointer the waiter is at that address. The worker dereferences table
//!    pointers only under the lock.
//! 2. **`waker` belongs to the lock while linked.** While the waiter is linked
//!    its `waker` cell is read and written only under the state lock (by the
//!    owner re-registering, or by the worker taking it).
//! 3. **`done` publishes `output`, and is the worker's last touch.** The
//!    worker writes `output` and then sets `done` with `Release`, under the
//!    lock, after unlinking the waiter; it never touches the waiter again.
//!    The owner reads `output` only after observing `done == true` with
//!    `Acquire` (or under the lock), so the write happened before, and nothing
//!    else accesses it afterwards. A `done` waiter may be dropped without the
//!    lock.
//!
//! These are model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test
//! --release -p flowgate --lib batch::wait`), including a waiter dropped
//! while its batch resolves, a waker replaced while it resolves, and an
//! abrupt stop resolving every waiter with `Closed`; the unit tests below run
//! under miri (`cargo +nightly miri test -p flowgate --lib batch::wait`).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker, ready};

use pin_project_lite::pin_project;

use super::error::{FlushError, SubmitAndWaitError};
use super::flushed::WakerId;
use super::keys::{BatchKey, Keyed};
use super::room::RoomWait;
use super::shared::{Enter, RoomPolicy, Shared, State};
use super::{Batcher, KeyedBatcher};
use crate::loom::{AtomicBool, UnsafeCell};

/// The lock that guards every [`WaitTable`] (the batcher's state mutex).
pub(crate) trait WaitLock<O, E> {
    /// Runs `f` holding the lock, with the table of batch `seq` if it has one
    /// (a batch that had waiters keeps its table until it is resolved).
    fn with_table<R>(&self, seq: u64, f: impl FnOnce(Option<&mut WaitTable<O, E>>) -> R) -> R;
}

/// The waiters of one batch, by item index; `None` for items submitted in
/// another way and for waiters that left.
pub(crate) struct WaitTable<O, E> {
    entries: Vec<Option<NodePtr<O, E>>>,
}

/// The tables of the batches sealed or being flushed, by sequence number.
pub(crate) struct WaitTables<O, E> {
    tables: VecDeque<(u64, WaitTable<O, E>)>,
}

/// A pointer to the [`Node`] of a linked [`Waiter`].
struct NodePtr<O, E>(NonNull<Node<O, E>>);

// SAFETY: a `NodePtr` is only dereferenced under the state lock, while its
// waiter is linked (invariant 1), and the worker uses it to move a `Waker`,
// an `O` and a `FlushError<E>` into the node and a `Waker` out of it, from
// whichever thread holds the lock. Those need `O: Send` and
// `FlushError<E>: Send`, i.e. `E: Send + Sync`; nothing is shared by reference
// across threads without the lock.
#[allow(unsafe_code)]
unsafe impl<O: Send, E: Send + Sync> Send for NodePtr<O, E> {}

/// The part of a waiter that the worker reaches through the tables.
struct Node<O, E> {
    /// Set with `Release` by the worker, after writing `output`, as its last
    /// access to the node (invariant 3).
    done: AtomicBool,
    /// Woken when the batch resolves; guarded by the lock while linked
    /// (invariant 2).
    waker: UnsafeCell<Option<Waker>>,
    /// The item's outcome; written once by the worker before `done`.
    output: UnsafeCell<Option<Result<O, FlushError<E>>>>,
}

/// What a [`SubmitAndWait`](super::SubmitAndWait) future waits on: pinned
/// inside the future, linked into its item's batch.
///
/// `L` is the lock guarding the tables (the batcher's state mutex); the
/// waiter borrows it for `'a` so that its `Drop` can unlink it.
pub(crate) struct Waiter<'a, L, O, E>
where
    L: WaitLock<O, E>,
{
    node: Node<O, E>,
    /// Where the waiter is linked, and the lock guarding it; `None` before
    /// linking and once the output was taken. Owner-only.
    link: Option<Link<'a, L>>,
    /// The tables point at `node`: it must not move.
    _pinned: PhantomPinned,
}

struct Link<'a, L> {
    lock: &'a L,
    seq: u64,
    index: usize,
    /// The waker last stored in the node, to re-register only when the
    /// future is polled by another task.
    registered: WakerId,
}

// ===== impl WaitTable, WaitTables =====

impl<O, E> WaitTable<O, E> {
    pub(crate) const fn new() -> Self {
        WaitTable {
            entries: Vec::new(),
        }
    }

    /// Whether no waiter was ever linked into the batch.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many waiters are linked.
    #[cfg(all(test, not(loom)))]
    fn linked(&self) -> usize {
        self.entries.iter().filter(|entry| entry.is_some()).count()
    }

    /// Resolves the waiters at entries `*cursor..` (at most `max` of them)
    /// with `outcome(index)`, pushing their wakers to `wakers`, to be woken
    /// after unlocking. Returns `true` once every entry is done.
    fn resolve(
        &mut self,
        cursor: &mut usize,
        max: usize,
        outcome: &mut impl FnMut(usize) -> Result<O, FlushError<E>>,
        wakers: &mut Vec<Waker>,
    ) -> bool {
        let end = self.entries.len().min(cursor.saturating_add(max));
        for index in *cursor..end {
            let Some(ptr) = self.entries[index].take() else {
                continue;
            };
            let output = outcome(index);
            // SAFETY: the pointer was in the table, under the lock we hold,
            // so the node is alive and pinned (invariant 1); we just
            // unlinked it, and the `done` store below is our last access
            // (invariant 3).
            #[allow(unsafe_code)]
            let node = unsafe { ptr.0.as_ref() };
            // SAFETY: linked, and we hold the lock (invariant 2).
            #[allow(unsafe_code)]
            let waker = node.waker.with_mut(|waker| unsafe { (*waker).take() });
            // SAFETY: `done` is false, so the owner does not read `output`;
            // it is written once, here (invariant 3).
            #[allow(unsafe_code)]
            node.output.with_mut(|slot| unsafe { *slot = Some(output) });
            node.done.store(true, Ordering::Release);
            if let Some(waker) = waker {
                wakers.push(waker);
            }
        }
        *cursor = end;
        end == self.entries.len()
    }

    /// Resolves every linked waiter with `err` (the batcher stopped
    /// abruptly), pushing their wakers to `wakers`.
    pub(crate) fn close(&mut self, err: &FlushError<E>, wakers: &mut Vec<Waker>) {
        self.resolve(&mut 0, usize::MAX, &mut |_| Err(err.clone()), wakers);
    }

    /// Removes the entry of the waiter at `index`.
    fn unlink(&mut self, index: usize, node: *const Node<O, E>) {
        let entry = self.entries[index]
            .take()
            .expect("a linked waiter is in its table");
        debug_assert!(std::ptr::eq(entry.0.as_ptr(), node));
    }
}

impl<O, E> WaitTables<O, E> {
    pub(crate) fn new() -> Self {
        WaitTables {
            tables: VecDeque::new(),
        }
    }

    /// Takes over the table of batch `seq`, which was sealed. A plain
    /// batcher seals its batches in order; a keyed one seals them in any
    /// order, mostly close to it.
    pub(crate) fn insert(&mut self, seq: u64, table: WaitTable<O, E>) {
        if table.is_empty() {
            return;
        }
        match self.tables.back() {
            Some((last, _)) if *last > seq => {
                let pos = self.tables.partition_point(|(other, _)| *other < seq);
                self.tables.insert(pos, (seq, table));
            }
            _ => self.tables.push_back((seq, table)),
        }
    }

    /// The table of batch `seq`, if it is sealed or flushing and has one.
    pub(crate) fn find(&mut self, seq: u64) -> Option<&mut WaitTable<O, E>> {
        let pos = self
            .tables
            .binary_search_by_key(&seq, |(seq, _)| *seq)
            .ok()?;
        Some(&mut self.tables[pos].1)
    }

    /// Resolves up to `max` waiters of batch `seq`, from entry `*cursor` on,
    /// with `outcome(index)`, pushing their wakers to `wakers` (to be woken
    /// after unlocking). Returns `true` once every waiter of the batch is
    /// resolved; the batch's table is then gone.
    ///
    /// Runs under the lock, so the walk is done in chunks: between them,
    /// submitters can take the lock, and the remaining waiters stay in the
    /// table, where a waiter that is dropped can still remove itself.
    pub(crate) fn resolve(
        &mut self,
        seq: u64,
        cursor: &mut usize,
        max: usize,
        mut outcome: impl FnMut(usize) -> Result<O, FlushError<E>>,
        wakers: &mut Vec<Waker>,
    ) -> bool {
        let Ok(pos) = self.tables.binary_search_by_key(&seq, |(seq, _)| *seq) else {
            // No waiter was linked into this batch.
            return true;
        };
        let done = self.tables[pos]
            .1
            .resolve(cursor, max, &mut outcome, wakers);
        if done {
            self.tables.remove(pos);
        }
        done
    }

    /// Resolves every linked waiter of every flushing batch with `err` (the
    /// batcher stopped abruptly), pushing their wakers to `wakers`.
    pub(crate) fn close_all(&mut self, err: &FlushError<E>, wakers: &mut Vec<Waker>) {
        for (_, mut table) in self.tables.drain(..) {
            table.close(err, wakers);
        }
    }
}

impl<O, E> fmt::Debug for WaitTable<O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitTable")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl<O, E> fmt::Debug for WaitTables<O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitTables")
            .field("flushing", &self.tables.len())
            .finish()
    }
}

// ===== impl Waiter =====

impl<'a, L, O, E> Waiter<'a, L, O, E>
where
    L: WaitLock<O, E>,
{
    pub(crate) fn new() -> Self {
        Waiter {
            node: Node {
                done: AtomicBool::new(false),
                waker: UnsafeCell::new(None),
                output: UnsafeCell::new(None),
            },
            link: None,
            _pinned: PhantomPinned,
        }
    }

    /// Links the waiter into `table`, the table of batch `seq`, at item
    /// `index`, to be woken through `waker` when the batch resolves.
    ///
    /// # Safety
    ///
    /// The caller must hold `lock`, and `table` must be the table that
    /// `lock` guards for batch `seq` (so that [`WaitLock::with_table`] finds
    /// it until the batch is resolved). No other waiter may be linked at the
    /// same `index` of it.
    ///
    /// # Panics
    ///
    /// If the waiter was linked before.
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) unsafe fn link(
        self: Pin<&mut Self>,
        table: &mut WaitTable<O, E>,
        lock: &'a L,
        seq: u64,
        index: usize,
        waker: &Waker,
    ) {
        // SAFETY: only the owner-only `link` is written through the mutable
        // reference; nothing is moved out of it.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(
            this.link.is_none() && !this.node.done.load(Ordering::Relaxed),
            "a waiter is linked once"
        );
        // SAFETY: not linked yet, so no one else can reach the cell.
        this.node
            .waker
            .with_mut(|cell| unsafe { *cell = Some(waker.clone()) });
        this.link = Some(Link {
            lock,
            seq,
            index,
            registered: WakerId::of(waker),
        });
        if table.entries.len() < index {
            table.entries.resize_with(index, || None);
        }
        debug_assert_eq!(table.entries.len(), index, "one waiter per item");
        table.entries.push(Some(NodePtr(NonNull::from(&this.node))));
    }

    /// Whether the waiter was linked and has not returned its outcome yet.
    pub(crate) fn is_linked(&self) -> bool {
        self.link.is_some()
    }

    /// Polls for the item's outcome: `Ready` once the worker resolved it.
    ///
    /// # Panics
    ///
    /// If the waiter is not linked, or its outcome was already taken.
    #[inline]
    pub(crate) fn poll_outcome(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<O, FlushError<E>>> {
        // SAFETY: only the owner-only `link` is written through the mutable
        // reference; nothing is moved out of it.
        #[allow(unsafe_code)]
        let this = unsafe { self.get_unchecked_mut() };
        let node = &this.node;
        let link = this
            .link
            .as_mut()
            .expect("a waiter is polled only while linked, until it returns `Ready`");
        if !node.done.load(Ordering::Acquire) {
            let id = WakerId::of(cx.waker());
            if link.registered == id {
                // The node holds a clone of this very waker.
                return Poll::Pending;
            }
            // Polled by another task: replace the waker under the lock.
            let replaced = link.lock.with_table(link.seq, |_| {
                if node.done.load(Ordering::Relaxed) {
                    return None;
                }
                // SAFETY: linked (not done, under the lock), and we hold the
                // lock (invariant 2).
                #[allow(unsafe_code)]
                let old = node
                    .waker
                    .with_mut(|cell| unsafe { (*cell).replace(cx.waker().clone()) });
                Some(old)
            });
            if let Some(old) = replaced {
                // The old waker is dropped outside the lock.
                drop(old);
                link.registered = id;
                return Poll::Pending;
            }
        }
        this.link = None;
        // SAFETY: `done` was observed (with `Acquire`, or under the lock it
        // was set under), so the worker wrote `output` before and will not
        // touch the node again (invariant 3); `link` is now `None`, so this
        // runs once.
        #[allow(unsafe_code)]
        let output = node.output.with_mut(|cell| unsafe { (*cell).take() });
        Poll::Ready(output.expect("the worker writes the output before `done`"))
    }
}

impl<L, O, E> Drop for Waiter<'_, L, O, E>
where
    L: WaitLock<O, E>,
{
    #[inline]
    fn drop(&mut self) {
        // Never linked, or the outcome was taken: nothing to do. Otherwise a
        // `done` node is in no table and the worker is done with it
        // (invariant 3): it may be freed without the lock.
        if self.link.is_some() && !self.node.done.load(Ordering::Acquire) {
            self.unlink();
        }
    }
}

impl<L, O, E> Waiter<'_, L, O, E>
where
    L: WaitLock<O, E>,
{
    /// Removes a waiter that is being dropped unresolved from its table.
    #[cold]
    #[inline(never)]
    fn unlink(&mut self) {
        let Some(link) = &self.link else {
            return;
        };
        let node = &self.node;
        let waker = link.lock.with_table(link.seq, |table| {
            if node.done.load(Ordering::Relaxed) {
                // Resolved since: the worker took the waker and unlinked us.
                return None;
            }
            // Still linked: remove our entry before our memory goes away
            // (invariant 1).
            table
                .expect("a linked waiter's batch has its table")
                .unlink(link.index, node);
            // SAFETY: we were linked until just now, and hold the lock
            // (invariant 2).
            #[allow(unsafe_code)]
            node.waker.with_mut(|cell| unsafe { (*cell).take() })
        });
        // Dropped outside the lock.
        drop(waker);
    }
}

impl<L, O, E> fmt::Debug for Waiter<'_, L, O, E>
where
    L: WaitLock<O, E>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("linked", &self.link.is_some())
            .field("done", &self.node.done.load(Ordering::Relaxed))
            .finish()
    }
}

// ===== impl SubmitAndWait =====

pin_project! {
    /// The state of one `submit_and_wait`, for either kind of batcher: the
    /// item with its key until it enters a batch, then the waiter.
    #[project = SubmittingProj]
    pub(crate) struct Submitting<'a, K: BatchKey, T, O, E> {
        shared: &'a Shared<K, T, O, E>,
        // `None` once the item entered a batch or was handed back.
        item: Option<(K, T)>,
        // Waiting for room, when the batcher was full.
        room: Option<RoomWait<'a, K, T, O, E>>,
        #[pin]
        waiter: Waiter<'a, Mutex<State<K, T, O, E>>, O, E>,
    }
}

impl<'a, K: BatchKey, T, O, E> Submitting<'a, K, T, O, E> {
    #[inline]
    pub(crate) fn new(shared: &'a Shared<K, T, O, E>, key: K, item: T) -> Self {
        Submitting {
            shared,
            item: Some((key, item)),
            room: None,
            waiter: Waiter::new(),
        }
    }

    /// Whether the item entered a batch.
    pub(crate) fn is_submitted(&self) -> bool {
        self.waiter.is_linked()
    }

    /// Whether it waits for room.
    pub(crate) fn is_waiting_for_room(&self) -> bool {
        self.room.is_some()
    }
}

/// The outcome of a [`Submitting`]: the output, or the key and the item
/// handed back, or the batch's failure.
type Submitted<K, T, O, E> = Result<O, SubmitAndWaitError<(K, T), E>>;

impl<K: BatchKey, T, O, E> Future for Submitting<'_, K, T, O, E> {
    type Output = Submitted<K, T, O, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.waiter.is_linked() {
            // The common wake-up: the outcome is in.
            return this
                .waiter
                .poll_outcome(cx)
                .map_err(SubmitAndWaitError::Flush);
        }
        Self::poll_submit(this, cx)
    }
}

impl<'a, K: BatchKey, T, O, E> Submitting<'a, K, T, O, E> {
    /// Enters the item (waiting for room if needed) and links the waiter.
    #[inline(never)]
    fn poll_submit(
        mut this: SubmittingProj<'_, 'a, K, T, O, E>,
        cx: &mut Context<'_>,
    ) -> Poll<Submitted<K, T, O, E>> {
        let shared: &'a Shared<K, T, O, E> = this.shared;
        loop {
            let mut policy = RoomPolicy::Wait;
            if let Some(room) = this.room.as_mut() {
                let granted = ready!(Pin::new(room).poll(cx));
                *this.room = None;
                if !granted {
                    shared.metrics.rejected_closed.inc();
                    let item = this.item.take().expect("the item waits with the room");
                    return Poll::Ready(Err(SubmitAndWaitError::Closed(item)));
                }
                policy = RoomPolicy::Held;
            }
            let (key, item) = this
                .item
                .take()
                .expect("`SubmitAndWait` polled after completion");
            let waiter = this.waiter.as_mut();
            let entered = shared.enter(key, item, policy, |entered| {
                // SAFETY: `enter` holds the lock of `shared.state` while
                // calling us, and `entered.waiters` is the table of the open
                // batch `entered.seq`, which the lock's `with_table` finds
                // until the batch is resolved; `entered.index` is the item's
                // own index in it.
                #[allow(unsafe_code)]
                unsafe {
                    waiter.link(
                        entered.waiters,
                        &shared.state,
                        entered.seq,
                        entered.index,
                        cx.waker(),
                    );
                }
            });
            match entered {
                // Linked with this task's waker: woken when the batch
                // resolves.
                Enter::Entered(()) => return Poll::Pending,
                Enter::Closed(item) => {
                    return Poll::Ready(Err(SubmitAndWaitError::Closed(item)));
                }
                Enter::Full(item, waiter) => {
                    // Queued for room: poll the wait (next turn) to register.
                    *this.item = Some(item);
                    let waiter = waiter.expect("`RoomPolicy::Wait` queues a waiter");
                    *this.room = Some(RoomWait::new(shared, waiter));
                }
            }
        }
    }
}

pin_project! {
    /// Submits an item and waits for its batch to be flushed; returned by
    /// [`Batcher::submit_and_wait`], which documents it.
    ///
    /// # Panics
    ///
    /// Polling it again after it returned `Ready` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{Batcher, SubmitAndWait};
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// // A named future: nothing is submitted until it is first polled.
    /// let waiting: SubmitAndWait<'_, u32, (), std::io::Error> = batcher.submit_and_wait(7);
    /// assert_eq!(batcher.stats().submitted, 0);
    /// waiting.await.unwrap();
    /// assert_eq!(batcher.stats().flushed, 1);
    /// # }
    /// ```
    #[must_use = "futures do nothing unless polled; the item is submitted on the first poll"]
    pub struct SubmitAndWait<'a, T, O, E> {
        #[pin]
        inner: Submitting<'a, (), T, O, E>,
    }
}

impl<'a, T, O, E> SubmitAndWait<'a, T, O, E> {
    #[inline]
    pub(crate) fn new(batcher: &'a Batcher<T, O, E>, item: T) -> Self {
        SubmitAndWait {
            inner: Submitting::new(&batcher.shared, (), item),
        }
    }
}

impl<T, O, E> Future for SubmitAndWait<'_, T, O, E> {
    type Output = Result<O, SubmitAndWaitError<T, E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(|err| match err {
            SubmitAndWaitError::Closed(((), item)) => SubmitAndWaitError::Closed(item),
            SubmitAndWaitError::Flush(err) => SubmitAndWaitError::Flush(err),
        })
    }
}

impl<T, O, E> fmt::Debug for SubmitAndWait<'_, T, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitAndWait")
            .field("submitted", &self.inner.is_submitted())
            .field("waiting_for_room", &self.inner.is_waiting_for_room())
            .finish()
    }
}

pin_project! {
    /// Submits an item under its key and waits for its batch to be flushed;
    /// returned by [`KeyedBatcher::submit_and_wait`], which documents it.
    ///
    /// # Panics
    ///
    /// Polling it again after it returned `Ready` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::batch::{KeyedBatcher, KeyedSubmitAndWait};
    ///
    /// let batcher = KeyedBatcher::builder()
    ///     .build(|_: u8, _: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
    ///     .unwrap();
    /// // A named future: nothing is submitted until it is first polled.
    /// let waiting: KeyedSubmitAndWait<'_, u8, u32, (), std::io::Error> = batcher.submit_and_wait(1, 7);
    /// assert_eq!(batcher.stats().submitted, 0);
    /// waiting.await.unwrap();
    /// assert_eq!(batcher.stats().flushed, 1);
    /// # }
    /// ```
    #[must_use = "futures do nothing unless polled; the item is submitted on the first poll"]
    pub struct KeyedSubmitAndWait<'a, K, T, O, E>
    where
        K: Hash,
        K: Eq,
        K: Clone,
        K: Send,
        K: 'static,
    {
        #[pin]
        inner: Submitting<'a, Keyed<K>, T, O, E>,
    }
}

impl<'a, K, T, O, E> KeyedSubmitAndWait<'a, K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    #[inline]
    pub(crate) fn new(batcher: &'a KeyedBatcher<K, T, O, E>, key: K, item: T) -> Self {
        KeyedSubmitAndWait {
            inner: Submitting::new(&batcher.shared, Keyed(key), item),
        }
    }
}

impl<K, T, O, E> Future for KeyedSubmitAndWait<'_, K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    type Output = Result<O, SubmitAndWaitError<(K, T), E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(|err| match err {
            SubmitAndWaitError::Closed((Keyed(key), item)) => {
                SubmitAndWaitError::Closed((key, item))
            }
            SubmitAndWaitError::Flush(err) => SubmitAndWaitError::Flush(err),
        })
    }
}

impl<K, T, O, E> fmt::Debug for KeyedSubmitAndWait<'_, K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedSubmitAndWait")
            .field("submitted", &self.inner.is_submitted())
            .field("waiting_for_room", &self.inner.is_waiting_for_room())
            .finish()
    }
}

#[cfg(test)]
mod harness {
    //! A stand-in for the batcher's state lock, to drive the protocol
    //! directly from the unit tests and the loom models.

    use super::*;
    use crate::loom::{Mutex, lock};

    pub(super) type Tables<O, E> = Mutex<WaitTables<O, E>>;

    impl<O, E> WaitLock<O, E> for Tables<O, E> {
        fn with_table<R>(&self, seq: u64, f: impl FnOnce(Option<&mut WaitTable<O, E>>) -> R) -> R {
            f(lock(self).find(seq))
        }
    }

    impl<O, E> WaitTables<O, E> {
        /// The table of batch `seq`, added as the newest if it has none.
        fn table_mut(&mut self, seq: u64) -> &mut WaitTable<O, E> {
            if self.find(seq).is_none() {
                self.tables.push_back((seq, WaitTable::new()));
            }
            self.find(seq).expect("just added")
        }

        /// How many waiters are linked, in every batch.
        #[cfg(not(loom))]
        pub(super) fn linked(&self) -> usize {
            self.tables.iter().map(|(_, table)| table.linked()).sum()
        }
    }

    /// Links `waiter` at `index` of batch `seq`, as the batcher's `enter`
    /// does.
    pub(super) fn link<'a, O, E>(
        tables: &'a Tables<O, E>,
        waiter: Pin<&mut Waiter<'a, Tables<O, E>, O, E>>,
        seq: u64,
        index: usize,
        waker: &Waker,
    ) {
        let mut guard = lock(tables);
        let table = guard.table_mut(seq);
        // SAFETY: we hold the lock of `tables`, `table` is the one it finds
        // for `seq`, and the callers link each index of each batch once.
        #[allow(unsafe_code)]
        unsafe {
            waiter.link(table, tables, seq, index, waker);
        }
    }

    /// Resolves batch `seq` as the worker does, `chunk` waiters per critical
    /// section, waking each chunk outside the lock.
    pub(super) fn resolve<O, E>(
        tables: &Tables<O, E>,
        seq: u64,
        chunk: usize,
        mut outcome: impl FnMut(usize) -> Result<O, FlushError<E>>,
    ) {
        let mut cursor = 0;
        let mut wakers = Vec::new();
        loop {
            let done = lock(tables).resolve(seq, &mut cursor, chunk, &mut outcome, &mut wakers);
            for waker in wakers.drain(..) {
                waker.wake();
            }
            if done {
                return;
            }
        }
    }

    /// Resolves every waiter with `Closed`, as a dropped worker does.
    pub(super) fn close<O, E>(tables: &Tables<O, E>) {
        let mut wakers = Vec::new();
        lock(tables).close_all(&FlushError::Closed, &mut wakers);
        for waker in wakers {
            waker.wake();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! Exercises the unsafe parts directly; run under miri with
    //! `cargo +nightly miri test -p flowgate --lib batch::wait`.

    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::thread;

    use super::harness::{Tables, close, link, resolve};
    use super::*;
    use crate::loom::lock;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    fn woken(counter: &CountingWaker) -> usize {
        counter.0.load(Ordering::SeqCst)
    }

    type W<'a, O, E> = Waiter<'a, Tables<O, E>, O, E>;

    fn poll<O, E>(waiter: Pin<&mut W<'_, O, E>>, waker: &Waker) -> Poll<Result<O, FlushError<E>>> {
        waiter.poll_outcome(&mut Context::from_waker(waker))
    }

    #[test]
    fn outputs_move_into_their_waiters_across_threads() {
        let tables = Tables::<String, ()>::new(WaitTables::new());
        let (counter, waker) = counting();
        let mut waiters: Vec<_> = (0..4).map(|_| Box::pin(W::new())).collect();
        for (index, waiter) in waiters.iter_mut().enumerate() {
            link(&tables, waiter.as_mut(), 1, index, &waker);
            assert!(poll(waiter.as_mut(), &waker).is_pending());
        }
        assert_eq!(lock(&tables).linked(), 4);
        thread::scope(|scope| {
            scope.spawn(|| resolve(&tables, 1, 3, |index| Ok(format!("out {index}"))));
        });
        assert_eq!(woken(&counter), 4);
        assert_eq!(lock(&tables).linked(), 0);
        for (index, waiter) in waiters.iter_mut().enumerate() {
            assert_eq!(
                poll(waiter.as_mut(), &waker),
                Poll::Ready(Ok(format!("out {index}")))
            );
        }
    }

    #[test]
    fn a_dropped_waiter_leaves_its_table_and_the_rest_resolve() {
        let tables = Tables::<Box<usize>, ()>::new(WaitTables::new());
        let (counter, waker) = counting();
        let mut kept = Box::pin(W::new());
        let mut dropped = Box::pin(W::new());
        let mut never_polled = Box::pin(W::new());
        // Index 1 is an item submitted otherwise (a flushed future): no waiter.
        link(&tables, kept.as_mut(), 3, 0, &waker);
        link(&tables, dropped.as_mut(), 3, 2, &waker);
        link(&tables, never_polled.as_mut(), 3, 3, &waker);
        drop(dropped);
        assert_eq!(lock(&tables).linked(), 2);
        let mut asked = Vec::new();
        resolve(&tables, 3, 1, |index| {
            asked.push(index);
            Ok(Box::new(index))
        });
        assert_eq!(asked, [0, 3], "only linked waiters take an output");
        assert_eq!(woken(&counter), 2);
        assert_eq!(poll(kept.as_mut(), &waker), Poll::Ready(Ok(Box::new(0))));
        // Dropped resolved but unpolled: its output is freed with it.
        drop(never_polled);
    }

    #[test]
    fn a_late_waker_replaces_the_registered_one() {
        let tables = Tables::<u8, String>::new(WaitTables::new());
        let (first, first_waker) = counting();
        let (late, late_waker) = counting();
        let mut waiter = Box::pin(W::new());
        link(&tables, waiter.as_mut(), 1, 0, &first_waker);
        assert!(poll(waiter.as_mut(), &late_waker).is_pending());
        assert!(poll(waiter.as_mut(), &late_waker).is_pending(), "no change");
        let err = FlushError::Failed(Arc::new("no".to_owned()));
        thread::scope(|scope| {
            scope.spawn(|| resolve(&tables, 1, 64, |_| Err(err.clone())));
        });
        assert_eq!((woken(&first), woken(&late)), (0, 1));
        assert_eq!(poll(waiter.as_mut(), &late_waker), Poll::Ready(Err(err)));
    }

    #[test]
    fn closing_resolves_every_batch_and_tables_are_freed() {
        let tables = Tables::<Box<u8>, ()>::new(WaitTables::new());
        let (counter, waker) = counting();
        let mut a = Box::pin(W::new());
        let mut b = Box::pin(W::new());
        link(&tables, a.as_mut(), 1, 0, &waker);
        link(&tables, b.as_mut(), 2, 5, &waker);
        close(&tables);
        assert_eq!(woken(&counter), 2);
        assert_eq!(
            poll(a.as_mut(), &waker),
            Poll::Ready(Err(FlushError::Closed))
        );
        assert_eq!(
            poll(b.as_mut(), &waker),
            Poll::Ready(Err(FlushError::Closed))
        );
        assert_eq!(lock(&tables).tables.len(), 0);
        // Resolving a batch without waiters is a no-op.
        resolve(&tables, 9, 1, |_| unreachable!());
    }

    #[test]
    fn waiters_dropped_on_other_threads_while_resolving() {
        let tables = Tables::<Box<usize>, ()>::new(WaitTables::new());
        let (_, waker) = counting();
        let waiters: Vec<_> = (0..8)
            .map(|index| {
                let mut waiter = Box::pin(W::new());
                link(&tables, waiter.as_mut(), 1, index, &waker);
                waiter
            })
            .collect();
        thread::scope(|scope| {
            for waiter in waiters {
                scope.spawn(move || drop(waiter));
            }
            scope.spawn(|| resolve(&tables, 1, 2, |index| Ok(Box::new(index))));
        });
        assert_eq!(lock(&tables).tables.len(), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model-checks the waiter protocol: `RUSTFLAGS="--cfg loom" cargo test
    //! --release -p flowgate --lib batch::wait`.

    use std::future::poll_fn;
    use std::pin::pin;

    use loom::future::block_on;
    use loom::sync::Arc;
    use loom::thread;

    use super::harness::{Tables, close, link, resolve};
    use super::*;

    type W<'a, O, E> = Waiter<'a, Tables<O, E>, O, E>;

    #[test]
    fn the_output_reaches_a_waiter_polled_by_its_own_task() {
        loom::model(|| {
            let tables = Arc::new(Tables::<Box<u8>, ()>::new(WaitTables::new()));
            let mut worker = None;
            let out = block_on(async {
                let mut waiter = pin!(W::new());
                poll_fn(|cx| {
                    if worker.is_none() {
                        // Linked with the polling task's waker: the fast path.
                        link(&tables, waiter.as_mut(), 1, 0, cx.waker());
                        let tables = Arc::clone(&tables);
                        worker = Some(thread::spawn(move || {
                            resolve(&tables, 1, 1, |_| Ok(Box::new(7)));
                        }));
                    }
                    waiter.as_mut().poll_outcome(cx)
                })
                .await
            });
            worker.unwrap().join().unwrap();
            assert_eq!(out, Ok(Box::new(7)));
        });
    }

    #[test]
    fn a_late_waker_is_never_lost() {
        loom::model(|| {
            let tables = Arc::new(Tables::<u8, ()>::new(WaitTables::new()));
            let mut waiter = Box::pin(W::new());
            // Linked with another waker: the first poll replaces it under
            // the lock, racing with the worker.
            link(&tables, waiter.as_mut(), 1, 0, Waker::noop());
            let worker = {
                let tables = Arc::clone(&tables);
                thread::spawn(move || resolve(&tables, 1, 1, |_| Ok(3)))
            };
            let out = block_on(poll_fn(|cx| waiter.as_mut().poll_outcome(cx)));
            worker.join().unwrap();
            assert_eq!(out, Ok(3));
        });
    }

    #[test]
    fn a_waiter_dropped_while_its_batch_resolves() {
        loom::model(|| {
            let tables = Arc::new(Tables::<Box<u8>, ()>::new(WaitTables::new()));
            let mut kept = Box::pin(W::new());
            let mut dropped = Box::pin(W::new());
            link(&tables, dropped.as_mut(), 1, 0, Waker::noop());
            link(&tables, kept.as_mut(), 1, 1, Waker::noop());
            let worker = {
                let tables = Arc::clone(&tables);
                // One waiter per critical section, so that the drop can land
                // between them.
                thread::spawn(move || resolve(&tables, 1, 1, |i| Ok(Box::new(i as u8))))
            };
            drop(dropped);
            let out = block_on(poll_fn(|cx| kept.as_mut().poll_outcome(cx)));
            worker.join().unwrap();
            assert_eq!(out, Ok(Box::new(1)));
        });
    }

    #[test]
    fn an_abrupt_stop_resolves_waiting_waiters_as_closed() {
        loom::model(|| {
            let tables = Arc::new(Tables::<u8, ()>::new(WaitTables::new()));
            let mut a = Box::pin(W::new());
            let mut b = Box::pin(W::new());
            link(&tables, a.as_mut(), 1, 0, Waker::noop());
            link(&tables, b.as_mut(), 2, 0, Waker::noop());
            let worker = {
                let tables = Arc::clone(&tables);
                thread::spawn(move || close(&tables))
            };
            drop(b);
            // `a` waits through the race; `b` was dropped during it.
            let out = block_on(poll_fn(|cx| a.as_mut().poll_outcome(cx)));
            assert_eq!(out, Err(FlushError::Closed));
            worker.join().unwrap();
        });
    }
}
