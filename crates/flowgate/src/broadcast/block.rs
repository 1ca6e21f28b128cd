//! The storage of an event stream: an append-only linked list of fixed-size
//! blocks, written by one [`Tail`] and read by any number of [`Reader`]s.
//!
//! This is the only module of the crate with `unsafe` code. Everything else
//! uses the safe [`Tail`] / [`Reader`] interface, whose invariants are kept
//! here.
//!
//! ```text
//!  reader A ──┐              reader B ──┐             Tail ──┐
//!             v                         v                    v
//!  [ e0 … e127 ] ──next──> [ e128 … e255 ] ──next──> [ e256 e257 _ _ … _ ]
//!   freed when A moves on                           len = 2, next unset
//! ```
//!
//! Each block holds [`BLOCK_CAP`] slots and one state word, `len << 2 |
//! CLOSED | WAITING`:
//!
//! - The tail writes slot `len` (a plain write: nobody else may touch an
//!   unwritten slot), then adds one to `len` with a release read-modify-write.
//!   A reader that loads the state with acquire may read every slot below the
//!   `len` it saw; those slots are never written again. This is the classic
//!   single-producer publication protocol, as in the seed's linked list and
//!   in `crossbeam`'s and `tokio`'s block-linked queues.
//! - Before the tail makes the last slot visible it links the next block,
//!   so a reader that saw `len == BLOCK_CAP` always finds `next`.
//! - `WAITING` is set by a reader that caught up and registered its waker.
//!   The tail learns it from the value its own `fetch_add` returns, so the hot
//!   path checks for sleepers without a lock, a fence or a second atomic
//!   access. Both sides update the same word with read-modify-writes, which
//!   are totally ordered: either the tail's add sees the flag, or the
//!   reader's `fetch_or` sees the new length and does not sleep. No wakeup is
//!   lost.
//! - `CLOSED` is set on the tail's block when the stream closes; a reader
//!   that has read every slot of a closed block is at the end.
//!
//! Blocks are reference-counted: a reader holds its current block, each
//! block holds the next one, the tail holds its block. A block is freed (with
//! its events) as soon as every reader has moved past it, and a dropped
//! reader simply releases its reference.
//!
//! Why `unsafe`: slots were first `OnceLock<T>`s. Setting one costs a
//! compare-exchange and a swap behind a non-inlined call, which was a third
//! of the publisher's time and kept the 4-subscriber benchmark below its
//! target; plain `MaybeUninit` slots published by the one `fetch_add` that is
//! needed anyway remove that cost (see `BENCHMARKS.md`).

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::telemetry::Gauge;

/// Slots per block. Events are reclaimed a block at a time, so smaller is
/// finer; but every block costs an allocation, a free (often on another
/// thread than the allocation, which is slow), an `Arc` hop per reader and a
/// lock to update the shared tail. Measured CPU time for 1M events, 1 and 4
/// subscribers: 64 slots 17 / 28 ms, 128 slots 11 / 23 ms, 256 and more no
/// better than 128.
#[cfg(not(loom))]
pub(crate) const BLOCK_CAP: usize = 128;
/// Small blocks under loom, so that models cross block boundaries.
#[cfg(loom)]
pub(crate) const BLOCK_CAP: usize = 2;

const WAITING: usize = 0b01;
const CLOSED: usize = 0b10;
const LEN_SHIFT: u32 = 2;

/// What a reader saw of a block's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// Slots below this index are written and may be read.
    len: usize,
    /// The stream closed while this block was the tail's block: nothing will
    /// be written at or after `len`.
    closed: bool,
}

impl Seen {
    fn decode(state: usize) -> Self {
        Seen {
            len: state >> LEN_SHIFT,
            closed: state & CLOSED != 0,
        }
    }
}

struct Block<T> {
    /// `len << LEN_SHIFT | CLOSED | WAITING`.
    state: AtomicUsize,
    /// Sequence number of the event in slot 0.
    start: u64,
    /// Set by the tail before `len` reaches [`BLOCK_CAP`].
    next: OnceLock<Arc<Block<T>>>,
    /// Slots below `len` are initialised and immutable; the others are
    /// untouched except by the tail. Boxed rather than inline, so that a block
    /// of large events is never built on the stack.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// The stream's `events_buffered` gauge: raised by [`BLOCK_CAP`] when
    /// the tail fills the block, lowered again when a full block is freed.
    buffered: Gauge,
}

// SAFETY: a block is shared between the tail's thread and readers' threads.
// Readers only take shared references to initialised slots (`Reader::next`),
// so concurrent reads of one `T` from several threads require `T: Sync`.
// Events are written on the tail's thread and cloned or dropped on others
// (whoever frees the block), which requires `T: Send`. Every other field is
// `Sync` already. The slot accesses themselves are race-free by the
// publication protocol described in the module documentation.
unsafe impl<T: Send + Sync> Sync for Block<T> {}

impl<T> Block<T> {
    fn new(start: u64, buffered: Gauge) -> Arc<Self> {
        Arc::new(Block {
            state: AtomicUsize::new(0),
            start,
            next: OnceLock::new(),
            slots: (0..BLOCK_CAP)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
            buffered,
        })
    }

    /// The state with acquire ordering: every slot below the returned `len`
    /// is initialised, and the initialisation happens-before this load.
    fn load(&self) -> Seen {
        Seen::decode(self.state.load(Ordering::Acquire))
    }

    /// The block after this one, which must be full (a `Seen` of it had
    /// `len == BLOCK_CAP`).
    fn next_block(&self) -> &Arc<Block<T>> {
        self.next
            .get()
            .expect("broadcast: a full block has no next block")
    }
}

/// Frees a chain of blocks iteratively. Without this, dropping a reader that
/// lags a million events behind would drop the chain recursively, one stack
/// frame per block, and overflow the stack.
impl<T> Drop for Block<T> {
    fn drop(&mut self) {
        // `&mut self`: every other reference is gone, and the `Arc` that
        // released this block synchronised with all their drops, so every
        // write to the slots and the state happens-before this point.
        let len = Seen::decode(self.state.load(Ordering::Acquire)).len;
        if len == BLOCK_CAP {
            // Only a full block was counted (by `Tail::push`, when it filled
            // it); the tail's last block never is.
            self.buffered.sub(BLOCK_CAP as f64);
        }
        for slot in &self.slots[..len] {
            // SAFETY: slots below the committed `len` were initialised by the
            // tail (`Tail::push` writes before it commits) and are dropped
            // exactly once, here, as the block is going away.
            slot.with_mut(|value| unsafe { (*value).assume_init_drop() });
        }
        let mut next = self.next.take();
        while let Some(block) = next {
            match Arc::try_unwrap(block) {
                // We held the last reference: detach its successor before it
                // is dropped (non-recursively, its `next` being empty now).
                Ok(mut block) => next = block.next.take(),
                // Someone else still holds it (a reader, the tail), so it
                // stays; dropping our reference is all there is to do.
                Err(_) => break,
            }
        }
    }
}

impl<T> fmt::Debug for Block<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self.load();
        f.debug_struct("Block")
            .field("start", &self.start)
            .field("len", &seen.len)
            .field("closed", &seen.closed)
            .finish_non_exhaustive()
    }
}

// ===== Tail =====

/// The writing end of a chain of blocks. There is exactly one per chain: it
/// is created with the chain and cannot be cloned, which is what makes its
/// plain slot writes race-free.
pub(crate) struct Tail<T> {
    /// The block being written.
    block: Arc<Block<T>>,
    /// The next slot to write in `block`: the block's committed `len`.
    index: usize,
    /// The stream's `events_buffered` gauge, handed to every new block.
    buffered: Gauge,
}

/// What [`Tail::push`] did besides storing the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pushed {
    /// A reader was waiting for the event: wake the waiting readers.
    pub(crate) wake: bool,
    /// The tail moved on to a new block (after filling the last one).
    pub(crate) new_block: bool,
}

impl<T> Tail<T> {
    /// A new, empty chain, whose full blocks are counted in `buffered`.
    pub(crate) fn new(buffered: Gauge) -> Self {
        Tail {
            block: Block::new(0, buffered.clone()),
            index: 0,
            buffered,
        }
    }

    /// Events pushed so far.
    pub(crate) fn pushed(&self) -> u64 {
        self.block.start + self.index as u64
    }

    /// A reader positioned after every event pushed so far.
    #[cfg(all(test, not(loom)))]
    fn reader(&self) -> Reader<T> {
        Reader::at_end_of(Arc::clone(&self.block))
    }

    /// A handle from which readers at the end can be made later, without
    /// access to the tail; see [`TailPointer`].
    pub(crate) fn pointer(&self) -> TailPointer<T> {
        TailPointer {
            block: Arc::clone(&self.block),
        }
    }

    /// Appends `value` and makes it visible to readers.
    pub(crate) fn push(&mut self, value: T) -> Pushed {
        let index = self.index;
        let block = &self.block;
        // SAFETY: slot `index` is at the committed `len`, so no reader reads
        // it (readers only read below a `len` they saw) and it was never
        // written (`index` only grows). The tail is the only writer of the
        // chain and we hold it mutably, so nothing else accesses the slot.
        block.slots[index].with_mut(|slot| unsafe { (*slot).write(value) });
        let last = index + 1 == BLOCK_CAP;
        let next = last.then(|| self.link_next());
        // Release publishes the slot (and the link). Acquire pairs with a
        // reader's `mark_waiting`, so that the waker it registered before
        // is visible to the wake our caller does next.
        let prev = block.state.fetch_add(1 << LEN_SHIFT, Ordering::AcqRel);
        debug_assert!(prev & CLOSED == 0, "broadcast: push after close");
        let wake = prev & WAITING != 0;
        if wake {
            // Clear the flag so that the next push skips the wake unless a
            // reader registers again. A reader that sets it between the add
            // and this clear registered before, and the wake that follows
            // finds it.
            block.state.fetch_and(!WAITING, Ordering::AcqRel);
        }
        match next {
            Some(next) => self.move_to(next),
            None => self.index = index + 1,
        }
        Pushed {
            wake,
            new_block: last,
        }
    }

    /// Makes and links the block after the current one, which the push
    /// in progress fills. Once per [`BLOCK_CAP`] events, and out of line
    /// (with `move_to`), so that the per-event path of `push` stays the
    /// same small code whatever the block's bookkeeping (the `metrics`
    /// feature's gauge) adds.
    #[cold]
    #[inline(never)]
    fn link_next(&self) -> Arc<Block<T>> {
        let block = &self.block;
        // Link before committing: a reader that sees the block full must
        // find its successor.
        let next = Block::new(block.start + BLOCK_CAP as u64, self.buffered.clone());
        // Counted from now until the block is freed (`Block::drop`).
        self.buffered.add(BLOCK_CAP as f64);
        let linked = block.next.set(Arc::clone(&next));
        debug_assert!(linked.is_ok(), "broadcast: block linked twice");
        next
    }

    /// Moves the tail on to `next`, the block `link_next` linked; the full
    /// block may be freed here, if every reader is past it.
    #[cold]
    #[inline(never)]
    fn move_to(&mut self, next: Arc<Block<T>>) {
        self.block = next;
        self.index = 0;
    }

    /// Closes the chain: readers that have read every event see the end.
    /// Nothing may be pushed afterwards.
    pub(crate) fn close(&self) {
        self.block.state.fetch_or(CLOSED, Ordering::AcqRel);
    }
}

impl<T> fmt::Debug for Tail<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tail")
            .field("pushed", &self.pushed())
            .finish_non_exhaustive()
    }
}

/// A reference to a block that was the tail's block when the pointer was
/// taken (or later updated): a reader made from it starts at that block's
/// current end, which is the end of the chain unless the tail has moved on,
/// in which case the block is full and the reader moves to the next one.
pub(crate) struct TailPointer<T> {
    block: Arc<Block<T>>,
}

impl<T> TailPointer<T> {
    /// A reader positioned after every event committed to the pointed block.
    pub(crate) fn reader(&self) -> Reader<T> {
        Reader::at_end_of(Arc::clone(&self.block))
    }

    /// Whether the chain was closed at the pointed block.
    pub(crate) fn is_closed(&self) -> bool {
        self.block.load().closed
    }

    /// Events committed up to the end of the pointed block.
    pub(crate) fn committed(&self) -> u64 {
        self.block.start + self.block.load().len as u64
    }
}

impl<T> fmt::Debug for TailPointer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TailPointer")
            .field("block", &self.block)
            .finish()
    }
}

// ===== Reader =====

/// A position in a chain of blocks, from which events are read in order.
pub(crate) struct Reader<T> {
    /// The block holding the next event.
    block: Arc<Block<T>>,
    /// The slot of the next event in `block`.
    index: usize,
    /// Invariant: `available` is at most a `len` seen (with acquire) in a
    /// state of `block`, so slots below it are initialised and immutable.
    /// It lets a reader take a batch of events with one atomic load.
    available: usize,
}

/// The next event of a [`Reader`], without waiting.
#[derive(Debug)]
pub(crate) enum Next<T> {
    Event(T),
    /// Every event pushed so far was read.
    Empty,
    /// The chain is closed and every event was read.
    Closed,
}

impl<T> Reader<T> {
    fn at_end_of(block: Arc<Block<T>>) -> Self {
        let len = block.load().len;
        Reader {
            block,
            index: len,
            available: len,
        }
    }

    /// Sequence number of the next event this reader will read.
    pub(crate) fn position(&self) -> u64 {
        self.block.start + self.index as u64
    }

    /// Takes the next event if it was pushed, cloning it out of its slot.
    pub(crate) fn next(&mut self) -> Next<T>
    where
        T: Clone,
    {
        loop {
            if self.index < self.available {
                // SAFETY: `index < available`, which is at most a `len` seen
                // with acquire in this block's state (the field's invariant),
                // so the slot was initialised before that release commit and
                // is never written again; shared access is all that remains.
                let event = self.block.slots[self.index]
                    .with(|slot| unsafe { (*slot).assume_init_ref().clone() });
                self.index += 1;
                return Next::Event(event);
            }
            if self.index == BLOCK_CAP {
                self.advance_block();
                continue;
            }
            let seen = self.block.load();
            if seen.len > self.index {
                self.available = seen.len;
                continue;
            }
            return if seen.closed {
                Next::Closed
            } else {
                Next::Empty
            };
        }
    }

    /// Moves on to the next block, once every [`BLOCK_CAP`] events:
    /// `available == BLOCK_CAP` was seen, so the next block is linked.
    /// Replacing `block` may free the old one, whose drop is kept out of
    /// the per-event path of `next` (it is the only code there that the
    /// `metrics` feature changes).
    #[cold]
    #[inline(never)]
    fn advance_block(&mut self) {
        self.block = Arc::clone(self.block.next_block());
        self.index = 0;
        self.available = 0;
    }

    /// Records that this reader waits for the next event (its waker must be
    /// registered already) and tells whether it may sleep: `false` if an
    /// event arrived or the chain closed meanwhile. Only valid right after
    /// [`next`](Self::next) returned [`Next::Empty`].
    pub(crate) fn mark_waiting(&mut self) -> bool {
        debug_assert!(self.index < BLOCK_CAP);
        // AcqRel: acquire so that a `len` seen here lets the slots be read;
        // release so that the tail's add that sees `WAITING` also sees the
        // waker registration made before this call.
        let seen = Seen::decode(self.block.state.fetch_or(WAITING, Ordering::AcqRel));
        self.available = seen.len;
        seen.len == self.index && !seen.closed
    }

    /// Whether the chain is closed and this reader has read every event.
    pub(crate) fn is_finished(&self) -> bool {
        if self.index < self.available {
            return false;
        }
        let (block, index) = if self.index == BLOCK_CAP {
            (self.block.next_block(), 0)
        } else {
            (&self.block, self.index)
        };
        let seen = block.load();
        seen.closed && seen.len == index
    }
}

impl<T> Clone for Reader<T> {
    /// A reader at the same position. The invariant on `available` holds for
    /// the clone: it is a fact about the block, and whichever thread the clone
    /// is sent to is synchronised with this one by the sending.
    fn clone(&self) -> Self {
        Reader {
            block: Arc::clone(&self.block),
            index: self.index,
            available: self.available,
        }
    }
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_long_chain_does_not_recurse() {
        let mut tail = Tail::new(Gauge::noop());
        let reader = tail.reader();
        let blocks = if cfg!(miri) { 50 } else { 200_000 };
        for i in 0..(blocks * BLOCK_CAP) as u64 {
            tail.push(i);
        }
        drop(tail);
        drop(reader); // would overflow the stack if dropped recursively
    }

    #[test]
    fn push_reports_and_clears_waiting() {
        let mut tail = Tail::new(Gauge::noop());
        let mut reader = tail.reader();
        assert!(!tail.push(7).wake);
        assert!(matches!(reader.next(), Next::Event(7)));
        assert!(matches!(reader.next(), Next::Empty));
        assert!(reader.mark_waiting(), "nothing new: may sleep");
        assert!(tail.push(8).wake);
        assert!(
            !tail.push(9).wake,
            "the flag is cleared by the push that saw it"
        );
        tail.close();
        assert!(matches!(reader.next(), Next::Event(8)));
        assert!(!reader.is_finished());
        assert!(matches!(reader.next(), Next::Event(9)));
        assert!(matches!(reader.next(), Next::Closed));
        assert!(reader.is_finished());
    }

    #[test]
    fn mark_waiting_sees_a_concurrent_push() {
        let mut tail = Tail::new(Gauge::noop());
        let mut reader = tail.reader();
        assert!(matches!(reader.next(), Next::Empty));
        tail.push(String::from("raced"));
        assert!(!reader.mark_waiting(), "the event arrived: must not sleep");
        assert!(matches!(reader.next(), Next::Event(s) if s == "raced"));
    }

    #[test]
    fn readers_cross_blocks_and_events_are_dropped_once() {
        let event = std::sync::Arc::new(());
        let mut tail = Tail::new(Gauge::noop());
        let mut a = tail.reader();
        for _ in 0..3 * BLOCK_CAP + 5 {
            tail.push(std::sync::Arc::clone(&event));
        }
        let mut b = a.clone();
        for _ in 0..2 * BLOCK_CAP {
            assert!(matches!(a.next(), Next::Event(_)));
        }
        assert_eq!(a.position(), 2 * BLOCK_CAP as u64);
        drop(b.clone());
        assert!(matches!(b.next(), Next::Event(_)));
        drop((a, b, tail));
        assert_eq!(
            std::sync::Arc::strong_count(&event),
            1,
            "every event dropped"
        );
    }

    #[test]
    fn a_concurrent_reader_sees_every_event_in_order() {
        let events: u64 = if cfg!(miri) { 300 } else { 100_000 };
        let mut tail = Tail::new(Gauge::noop());
        let mut reader = tail.reader();
        let fork = reader.clone();
        let reading = std::thread::spawn(move || {
            let mut expected = 0;
            loop {
                match reader.next() {
                    Next::Event(event) => {
                        assert_eq!(event, Box::new(expected));
                        expected += 1;
                    }
                    Next::Empty => std::thread::yield_now(),
                    Next::Closed => return expected,
                }
            }
        });
        for i in 0..events {
            tail.push(Box::new(i));
        }
        tail.close();
        drop(tail);
        assert_eq!(reading.join().unwrap(), events);
        drop(fork); // frees the whole chain, from another thread's blocks
    }

    #[test]
    fn a_reader_at_the_end_of_a_full_block_moves_on() {
        let mut tail = Tail::new(Gauge::noop());
        let pointer = tail.pointer();
        for i in 0..BLOCK_CAP as u64 {
            tail.push(i);
        }
        // The pointer still names the full block.
        assert_eq!(pointer.committed(), BLOCK_CAP as u64);
        let mut reader = pointer.reader();
        assert_eq!(reader.position(), BLOCK_CAP as u64);
        tail.push(99);
        assert!(matches!(reader.next(), Next::Event(99)));
    }
}
