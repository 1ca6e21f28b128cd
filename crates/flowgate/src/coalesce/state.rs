//! The queue itself: entries in a slab, linked into FIFO lists by index, and
//! a hash table from key to the entry that still accepts items for it.
//!
//! ```text
//!  table: key ──> slot          (entries still accepting items)
//!  slots: [ entry | entry | free | entry ... ]   reused, never shrunk below use
//!  open:  head ─> e ─> e ─> tail   windowed mode: window running, by deadline
//!  ready: head ─> e ─> e ─> tail   dequeued from the head, oldest first
//! ```
//!
//! Why not `VecDeque<K>` + `HashMap<K, Vec<T>>` (the naive design, and the
//! benchmark's baseline): the key is stored and hashed once per entry instead
//! of being cloned into the deque and hashed again to find its items at
//! dequeue (the entry keeps its hash, and its slot is found in the table by
//! index); a windowed batch that fills up leaves the middle of the open list
//! in O(1) without tombstones; slots are reused, so a steady queue does not
//! allocate for its bookkeeping.

use std::hash::Hash;
use std::time::Duration;

use hashbrown::HashTable;
use tokio::time::Instant;

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

struct Slot<K, A> {
    entry: Option<Entry<K, A>>,
    prev: usize,
    /// Next in the entry's list, or next free slot.
    next: usize,
}

struct Entry<K, A> {
    key: K,
    acc: A,
    hash: u64,
    /// Items folded into `acc`.
    count: usize,
    /// Windowed mode: when the window closes.
    deadline: Option<Instant>,
    /// Whether the table points at this entry (it still accepts items).
    keyed: bool,
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
    slots: Vec<Slot<K, A>>,
    free: usize,
    table: HashTable<usize>,
    open: List,
    ready: List,
    /// Entries held, open and ready: what `depth` bounds.
    len: usize,
    /// Items held in all entries.
    items: usize,
    pub(crate) closed: bool,
    /// Parked `dequeue` calls.
    pub(crate) consumers: WaitList,
    /// Parked `enqueue_wait` calls.
    pub(crate) producers: WaitList,
}

impl<K, A> State<K, A> {
    pub(crate) fn new(depth: usize) -> Self {
        let capacity = depth.min(1024);
        State {
            slots: Vec::with_capacity(capacity),
            free: NIL,
            table: HashTable::with_capacity(capacity),
            open: List::EMPTY,
            ready: List::EMPTY,
            len: 0,
            items: 0,
            closed: false,
            consumers: WaitList::default(),
            producers: WaitList::default(),
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
            self.entry(self.open.head).deadline
        }
    }

    fn entry(&self, idx: usize) -> &Entry<K, A> {
        self.slots[idx]
            .entry
            .as_ref()
            .expect("linked slots hold an entry")
    }

    fn entry_mut(&mut self, idx: usize) -> &mut Entry<K, A> {
        self.slots[idx]
            .entry
            .as_mut()
            .expect("linked slots hold an entry")
    }

    // ===== lists =====

    fn push_back(slots: &mut [Slot<K, A>], list: &mut List, idx: usize) {
        slots[idx].prev = list.tail;
        slots[idx].next = NIL;
        if list.tail == NIL {
            list.head = idx;
        } else {
            slots[list.tail].next = idx;
        }
        list.tail = idx;
    }

    fn unlink(slots: &mut [Slot<K, A>], list: &mut List, idx: usize) {
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

    fn alloc(&mut self, entry: Entry<K, A>) -> usize {
        if self.free == NIL {
            self.slots.push(Slot {
                entry: Some(entry),
                prev: NIL,
                next: NIL,
            });
            self.slots.len() - 1
        } else {
            let idx = self.free;
            self.free = self.slots[idx].next;
            self.slots[idx].entry = Some(entry);
            idx
        }
    }

    fn release_slot(&mut self, idx: usize) -> Entry<K, A> {
        let entry = self.slots[idx]
            .entry
            .take()
            .expect("released slots hold an entry");
        self.slots[idx].next = self.free;
        self.free = idx;
        entry
    }

    /// Stops an entry from accepting items: the key's next item starts a new
    /// entry.
    fn unkey(&mut self, idx: usize) {
        let entry = self.slots[idx]
            .entry
            .as_mut()
            .expect("linked slots hold an entry");
        if entry.keyed {
            entry.keyed = false;
            let hash = entry.hash;
            if let Ok(found) = self.table.find_entry(hash, |&slot| slot == idx) {
                found.remove();
            }
        }
    }

    /// Moves an open entry to the ready list (its window closed, it filled
    /// up, or the queue closed). It no longer accepts items.
    fn release(&mut self, idx: usize) {
        self.unkey(idx);
        Self::unlink(&mut self.slots, &mut self.open, idx);
        Self::push_back(&mut self.slots, &mut self.ready, idx);
    }

    /// Releases every open entry whose window has closed by `now`.
    pub(crate) fn release_expired(&mut self, now: Instant) {
        while !self.open.is_empty() {
            let head = self.open.head;
            match self.entry(head).deadline {
                Some(deadline) if deadline <= now => self.release(head),
                _ => break,
            }
        }
    }

    /// Releases every open entry, whatever its window.
    fn release_all(&mut self) {
        while !self.open.is_empty() {
            self.release(self.open.head);
        }
    }

    // ===== queue operations =====

    /// Adds `item` under `key` (whose hash is `hash`). Returns whether a
    /// parked consumer should be woken.
    pub(crate) fn enqueue<T>(
        &mut self,
        config: &Config<T, A>,
        hash: u64,
        key: K,
        item: T,
    ) -> Result<bool, (Refused, K, T)>
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
        let slots = &self.slots;
        let found = self.table.find(hash, |&idx| {
            slots[idx]
                .entry
                .as_ref()
                .is_some_and(|entry| entry.key == key)
        });
        if let Some(&idx) = found {
            let windowed = config.window.is_some();
            let entry = self.entry_mut(idx);
            if entry.count >= config.width {
                // Only a queued (not windowed) entry can stay full.
                return Err((Refused::WidthFull, key, item));
            }
            // User code under the lock: documented on the builder.
            (config.add)(&mut entry.acc, item);
            entry.count += 1;
            let full = entry.count >= config.width;
            self.items += 1;
            if windowed && full {
                self.release(idx);
                return Ok(true);
            }
            return Ok(released);
        }
        if self.len >= config.depth {
            return Err((Refused::DepthFull, key, item));
        }
        let deadline = config.window.zip(now).map(|(window, now)| {
            now.checked_add(window)
                .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
        });
        // A windowed entry of width 1 is full with its first item.
        let open = config.window.is_some() && config.width > 1;
        let idx = self.alloc(Entry {
            key,
            acc: (config.start)(item),
            hash,
            count: 1,
            deadline,
            keyed: open || config.window.is_none(),
        });
        if self.entry(idx).keyed {
            let slots = &self.slots;
            self.table.insert_unique(hash, idx, |&slot| {
                slots[slot]
                    .entry
                    .as_ref()
                    .expect("the table points at live entries")
                    .hash
            });
        }
        self.len += 1;
        self.items += 1;
        if open {
            let was_empty = self.open.is_empty();
            Self::push_back(&mut self.slots, &mut self.open, idx);
            // A consumer parked without a timer must arm one; one parked on
            // an earlier window needs nothing.
            Ok(was_empty || released)
        } else {
            Self::push_back(&mut self.slots, &mut self.ready, idx);
            Ok(true)
        }
    }

    /// Takes the oldest ready entry.
    pub(crate) fn dequeue(&mut self) -> Option<(K, A)> {
        if self.ready.is_empty() {
            return None;
        }
        let idx = self.ready.head;
        self.unkey(idx);
        Self::unlink(&mut self.slots, &mut self.ready, idx);
        let entry = self.release_slot(idx);
        self.len -= 1;
        self.items -= entry.count;
        Some((entry.key, entry.acc))
    }

    /// Items held under `key` in the entry that accepts them.
    pub(crate) fn count<Q>(&self, hash: u64, key: &Q) -> usize
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table
            .find(hash, |&idx| self.entry(idx).key.borrow() == key)
            .map_or(0, |&idx| self.entry(idx).count)
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
