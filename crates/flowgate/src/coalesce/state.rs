//! The queue itself: a hash table holding each accepting entry's key and
//! items inline, and a slab of list nodes that orders the entries.
//!
//! ```text
//!  table: [ (key, items, count, slot) ... ]   entries still accepting items
//!  slots: [ node | node | free | node ... ]   hash, deadline, links; reused
//!  open:  head ─> n ─> n ─> tail   windowed mode: window running, by deadline
//!  ready: head ─> n ─> n ─> tail   dequeued from the head, oldest first
//! ```
//!
//! Compared with the naive `VecDeque<K>` + `HashMap<K, Vec<T>>` (the
//! benchmark's baseline), the hot path — an item joining a queued key — is the
//! same single probe of a table holding key and items inline. What differs:
//! - the key is stored once, not cloned into the deque;
//! - a dequeue does not hash the key again: the node keeps the hash, and the
//!   table entry is found by slot index, without comparing keys;
//! - a windowed batch that fills up leaves the middle of the open list in O(1)
//!   without tombstones (its key and items move into its node);
//! - nodes are reused, so a steady queue does not allocate for bookkeeping;
//! - the caller hashes the key before taking the lock, and drops a joining
//!   item's key after releasing it.
//!
//! `BENCHMARKS.md` measures it: with the same hasher the structure alone is
//! on par with the naive one; the speed-up over the naive queue as usually
//! written comes from foldhash and from hashing outside the lock, which
//! matters most when producers and consumers contend.

use std::hash::Hash;
use std::time::Duration;

use hashbrown::HashTable;
use tokio::time::Instant;

use super::observe::{Trigger, WindowMetrics};
use super::waiters::WaitList;

const NIL: usize = usize::MAX;

/// Turns a key's first item into its accumulator.
pub(crate) type Start<T, A> = Box<dyn Fn(T) -> A + Send + Sync + 'static>;
/// Folds a later item into a key's accumulator.
pub(crate) type Add<T, A> = Box<dyn Fn(&mut A, T) + Send + Sync + 'static>;

/// The validated configuration of one queue.
pub(crate) struct Config<T, A> {
    pub(crate) depth: usize,
    pub(crate) width: usize,
    pub(crate) window: Option<Duration>,
    pub(crate) start: Start<T, A>,
    pub(crate) add: Add<T, A>,
}

/// Why an item was refused; the caller turns it into its error type.
pub(crate) enum Refused {
    DepthFull,
    WidthFull,
    Closed,
}

/// What `enqueue` did, for the caller to act on once the lock is released.
pub(crate) struct Added<K> {
    /// A parked consumer should be woken.
    pub(crate) wake: bool,
    /// The key of an item that joined an entry, no longer needed: dropped
    /// by the caller outside the lock (a `String` key is a free). `Some`
    /// exactly when the item was merged into a queued entry.
    pub(crate) spare_key: Option<K>,
}

impl<K> Added<K> {
    fn woke(wake: bool) -> Self {
        Added {
            wake,
            spare_key: None,
        }
    }

    fn with_spare(mut self, key: K) -> Self {
        self.spare_key = Some(key);
        self
    }

    /// Whether the item joined a queued entry rather than starting one.
    pub(crate) fn merged(&self) -> bool {
        self.spare_key.is_some()
    }
}

/// A queued entry's data: in the table while it accepts items, in its node
/// once released (windowed mode).
struct Keyed<K, A> {
    key: K,
    acc: A,
    /// Items folded into `acc`.
    count: usize,
    /// The entry's node in `slots`.
    slot: usize,
}

/// A list node of the slab.
struct Node<K, A> {
    hash: u64,
    /// Windowed mode: when the entry's window closes.
    deadline: Option<Instant>,
    prev: usize,
    /// Next in the entry's list, or next free node.
    next: usize,
    /// The entry's data once it left the table (windowed mode); `None` while
    /// it is keyed. Boxed, so that nodes stay small in plain mode, where it is
    /// never used.
    released: Option<Box<Keyed<K, A>>>,
}

#[derive(Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };

    fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

pub(crate) struct State<K, A> {
    table: HashTable<Keyed<K, A>>,
    slots: Vec<Node<K, A>>,
    free: usize,
    open: List,
    ready: List,
    /// Entries held, open and ready: what `depth` bounds.
    len: usize,
    /// Items held in all entries.
    items: usize,
    pub(crate) closed: bool,
    /// Parked `dequeue` calls.
    pub(crate) consumers: WaitList,
    /// Parked `enqueue` calls (waiting for room).
    pub(crate) producers: WaitList,
    /// Windowed mode: the series of released batches.
    windows: WindowMetrics,
}

impl<K, A> State<K, A> {
    pub(crate) fn new(depth: usize, windows: WindowMetrics) -> Self {
        let capacity = depth.min(1024);
        State {
            table: HashTable::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            free: NIL,
            open: List::EMPTY,
            ready: List::EMPTY,
            len: 0,
            items: 0,
            closed: false,
            consumers: WaitList::default(),
            producers: WaitList::default(),
            windows,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn items(&self) -> usize {
        self.items
    }

    /// Whether a consumer has anything to wait for: an entry to take now or
    /// once its window closes.
    pub(crate) fn has_entries(&self) -> bool {
        self.len != 0
    }

    /// When the oldest open window closes.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.open.is_empty() {
            None
        } else {
            self.slots[self.open.head].deadline
        }
    }

    // ===== lists =====

    fn push_back(slots: &mut [Node<K, A>], list: &mut List, idx: usize) {
        slots[idx].prev = list.tail;
        slots[idx].next = NIL;
        if list.tail == NIL {
            list.head = idx;
        } else {
            slots[list.tail].next = idx;
        }
        list.tail = idx;
    }

    fn unlink(slots: &mut [Node<K, A>], list: &mut List, idx: usize) {
        let (prev, next) = (slots[idx].prev, slots[idx].next);
        if prev == NIL {
            list.head = next;
        } else {
            slots[prev].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            slots[next].prev = prev;
        }
    }

    // ===== slab =====

    fn alloc(
        slots: &mut Vec<Node<K, A>>,
        free: &mut usize,
        hash: u64,
        deadline: Option<Instant>,
    ) -> usize {
        let node = Node {
            hash,
            deadline,
            prev: NIL,
            next: NIL,
            released: None,
        };
        if *free == NIL {
            slots.push(node);
            slots.len() - 1
        } else {
            let idx = *free;
            *free = slots[idx].next;
            slots[idx] = node;
            idx
        }
    }

    fn free_slot(&mut self, idx: usize) {
        self.slots[idx].next = self.free;
        self.free = idx;
    }

    /// Moves an entry's data out of the table into its node: the key's next
    /// item starts a new entry.
    fn unkey(&mut self, idx: usize) {
        if self.slots[idx].released.is_some() {
            return;
        }
        let hash = self.slots[idx].hash;
        let keyed = match self.table.find_entry(hash, |keyed| keyed.slot == idx) {
            Ok(found) => found.remove().0,
            Err(_) => unreachable!("an unreleased node's entry is in the table"),
        };
        self.slots[idx].released = Some(Box::new(keyed));
    }

    /// Moves an open entry to the ready list (its window closed or the queue
    /// closed). It no longer accepts items.
    fn release(&mut self, idx: usize, trigger: Trigger) {
        self.unkey(idx);
        let items = self.slots[idx]
            .released
            .as_ref()
            .map_or(0, |keyed| keyed.count);
        self.windows.released(trigger, items);
        Self::unlink(&mut self.slots, &mut self.open, idx);
        Self::push_back(&mut self.slots, &mut self.ready, idx);
    }

    /// Releases every open entry whose window has closed by `now`.
    pub(crate) fn release_expired(&mut self, now: Instant) {
        while !self.open.is_empty() {
            let head = self.open.head;
            match self.slots[head].deadline {
                Some(deadline) if deadline <= now => self.release(head, Trigger::Window),
                _ => break,
            }
        }
    }

    /// Releases every open entry, whatever its window.
    fn release_all(&mut self) {
        while !self.open.is_empty() {
            self.release(self.open.head, Trigger::Close);
        }
    }

    // ===== queue operations =====

    /// Adds `item` under `key` (whose hash is `hash`).
    #[inline]
    pub(crate) fn enqueue<T>(
        &mut self,
        config: &Config<T, A>,
        hash: u64,
        key: K,
        item: T,
    ) -> Result<Added<K>, (Refused, K, T)>
    where
        K: Eq,
    {
        if self.closed {
            return Err((Refused::Closed, key, item));
        }
        // Windowed: release what expired first, so that batches are released
        // in the order their windows ended or they filled, whoever polls.
        let now = config.window.map(|_| Instant::now());
        let mut released = false;
        if let Some(now) = now {
            let before = self.ready.tail;
            self.release_expired(now);
            released = self.ready.tail != before;
        }
        // The hot path: the item joins its key's queued entry. A plain probe
        // is cheaper than `entry`, which also looks for an insertion slot.
        if let Some(keyed) = self.table.find_mut(hash, |keyed| keyed.key == key) {
            if keyed.count >= config.width {
                // Only a queued (not windowed) entry can stay full.
                return Err((Refused::WidthFull, key, item));
            }
            // User code under the lock: documented on the builder.
            (config.add)(&mut keyed.acc, item);
            keyed.count += 1;
            self.items += 1;
            if config.window.is_some() && keyed.count >= config.width {
                // A full batch is released at once.
                let (idx, count) = (keyed.slot, keyed.count);
                self.windows.released(Trigger::Width, count);
                self.unkey(idx);
                Self::unlink(&mut self.slots, &mut self.open, idx);
                Self::push_back(&mut self.slots, &mut self.ready, idx);
                return Ok(Added::woke(true).with_spare(key));
            }
            return Ok(Added::woke(released).with_spare(key));
        }
        if self.len >= config.depth {
            return Err((Refused::DepthFull, key, item));
        }
        // A window too long for an `Instant` never ends: no deadline.
        let deadline = config
            .window
            .zip(now)
            .and_then(|(window, now)| now.checked_add(window));
        let idx = Self::alloc(&mut self.slots, &mut self.free, hash, deadline);
        let keyed = Keyed {
            key,
            acc: (config.start)(item),
            count: 1,
            slot: idx,
        };
        self.len += 1;
        self.items += 1;
        if config.window.is_some() && config.width == 1 {
            // A windowed entry of width 1 is full with its first item: it
            // never enters the table.
            self.windows.released(Trigger::Width, 1);
            self.slots[idx].released = Some(Box::new(keyed));
            Self::push_back(&mut self.slots, &mut self.ready, idx);
            return Ok(Added::woke(true));
        }
        let slots = &self.slots;
        self.table
            .insert_unique(hash, keyed, |keyed| slots[keyed.slot].hash);
        if config.window.is_some() {
            let was_empty = self.open.is_empty();
            Self::push_back(&mut self.slots, &mut self.open, idx);
            // A consumer parked without a timer must arm one; one parked on
            // an earlier window needs nothing.
            Ok(Added::woke(was_empty || released))
        } else {
            Self::push_back(&mut self.slots, &mut self.ready, idx);
            Ok(Added::woke(true))
        }
    }

    /// Takes the oldest ready entry.
    pub(crate) fn dequeue(&mut self) -> Option<(K, A)> {
        if self.ready.is_empty() {
            return None;
        }
        let idx = self.ready.head;
        Self::unlink(&mut self.slots, &mut self.ready, idx);
        let keyed = match self.slots[idx].released.take() {
            Some(keyed) => *keyed,
            // Found by its node index: no key is hashed or compared.
            None => match self
                .table
                .find_entry(self.slots[idx].hash, |keyed| keyed.slot == idx)
            {
                Ok(found) => found.remove().0,
                Err(_) => unreachable!("an unreleased node's entry is in the table"),
            },
        };
        self.free_slot(idx);
        self.len -= 1;
        self.items -= keyed.count;
        Some((keyed.key, keyed.acc))
    }

    /// Items held under `key` in the entry that accepts them.
    pub(crate) fn count<Q>(&self, hash: u64, key: &Q) -> usize
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table
            .find(hash, |keyed| keyed.key.borrow() == key)
            .map_or(0, |keyed| keyed.count)
    }

    /// Closes the queue: no more items; open windows are released at once.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.release_all();
    }

    /// Empties the queue, returning what it held so the caller can drop it
    /// outside the lock.
    pub(crate) fn clear(&mut self) -> Vec<(K, A)> {
        self.release_all();
        let mut drained = Vec::with_capacity(self.len);
        while let Some(entry) = self.dequeue() {
            drained.push(entry);
        }
        drained
    }
}

impl<K: Hash, A> std::fmt::Debug for State<K, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("len", &self.len)
            .field("items", &self.items)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
