//! Fair admission shared by tenants with weights: [`FairLimit`] (permits
//! held at once) and [`FairRate`] (calls per period).
//!
//! Both keep, under one mutex, the tenants that hold or wait for something
//! (a slab, indexed by a foldhash table), one FIFO of waiters per tenant (a
//! linked list through a slab of waiters), and an ordered set of the
//! tenants that wait, by whose turn it is. A tenant that neither holds nor
//! waits has no state at all, so memory is bounded by what is held and
//! waited for, plus the weight overrides the user sets.

mod limit;
mod rate;

use std::hash::{BuildHasher, Hash};
use std::task::Waker;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use slab::Slab;

pub use self::limit::{FairLimit, FairLimitBuilder, FairPermit};
pub use self::rate::{FairRate, FairRateBuilder};

/// No node: the end of a waiter list.
const NONE: usize = usize::MAX;

/// The tenants that hold or wait, their waiters, and the weight overrides.
struct Tenants<T, D> {
    hasher: RandomState,
    slots: Slab<Tenant<T, D>>,
    index: HashTable<usize>,
    waiters: Slab<Waiter>,
    weights: HashTable<(T, u32)>,
    next_seq: u64,
}

struct Tenant<T, D> {
    key: T,
    weight: u32,
    head: usize,
    tail: usize,
    waiting: usize,
    /// What the limiter keeps per tenant.
    data: D,
}

struct Waiter {
    tenant: usize,
    prev: usize,
    next: usize,
    /// When it started waiting (a counter): the FIFO tie-break.
    seq: u64,
    waker: Option<Waker>,
    /// Handed what it waits for, and no longer in its tenant's queue.
    granted: bool,
}

impl<T: Hash + Eq + Clone, D> Tenants<T, D> {
    fn new(weights: impl IntoIterator<Item = (T, u32)>) -> Tenants<T, D> {
        let mut tenants = Tenants {
            hasher: RandomState::default(),
            slots: Slab::new(),
            index: HashTable::new(),
            waiters: Slab::new(),
            weights: HashTable::new(),
            next_seq: 0,
        };
        for (key, weight) in weights {
            tenants.set_weight(key, weight);
        }
        tenants
    }

    fn find(&self, key: &T) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.index.find(hash, |&t| slots[t].key == *key).copied()
    }

    /// The tenant's slot, made (with `data`) if it has none.
    fn find_or_insert(&mut self, key: &T, data: impl FnOnce() -> D) -> usize {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        if let Some(&t) = self.index.find(hash, |&t| slots[t].key == *key) {
            return t;
        }
        let weight = self.weight_of(hash, key);
        let t = self.slots.insert(Tenant {
            key: key.clone(),
            weight,
            head: NONE,
            tail: NONE,
            waiting: 0,
            data: data(),
        });
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, t, |&t| hasher.hash_one(&slots[t].key));
        t
    }

    /// Drops the tenant's slot.
    fn remove(&mut self, t: usize) {
        let hash = self.hasher.hash_one(&self.slots[t].key);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == t) {
            entry.remove();
        }
        self.slots.remove(t);
    }

    fn weight_of(&self, hash: u64, key: &T) -> u32 {
        self.weights
            .find(hash, |(k, _)| k == key)
            .map_or(1, |&(_, w)| w)
    }

    fn weight(&self, key: &T) -> u32 {
        self.weight_of(self.hasher.hash_one(key), key)
    }

    /// Sets a weight override; the tenant's slot (if any) if it changed.
    fn set_weight(&mut self, key: T, weight: u32) -> (Option<u32>, Option<usize>) {
        let hash = self.hasher.hash_one(&key);
        let t = self.find(&key);
        if let Some(t) = t {
            self.slots[t].weight = weight;
        }
        let old = match self.weights.find_mut(hash, |(k, _)| *k == key) {
            Some(entry) => Some(std::mem::replace(&mut entry.1, weight)),
            None => {
                let hasher = &self.hasher;
                self.weights
                    .insert_unique(hash, (key, weight), |(k, _)| hasher.hash_one(k));
                None
            }
        };
        (old, t)
    }

    /// Removes a weight override (back to 1); the tenant's slot (if any).
    fn remove_weight(&mut self, key: &T) -> (Option<u32>, Option<usize>) {
        let hash = self.hasher.hash_one(key);
        let old = match self.weights.find_entry(hash, |(k, _)| k == key) {
            Ok(entry) => Some(entry.remove().0.1),
            Err(_) => None,
        };
        let t = self.find(key);
        if let Some(t) = t {
            self.slots[t].weight = 1;
        }
        (old, t)
    }

    /// Appends a waiter to tenant `t`'s queue.
    fn push(&mut self, t: usize, waker: &Waker) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tail = self.slots[t].tail;
        let node = self.waiters.insert(Waiter {
            tenant: t,
            prev: tail,
            next: NONE,
            seq,
            waker: Some(waker.clone()),
            granted: false,
        });
        let tenant = &mut self.slots[t];
        match tail {
            NONE => tenant.head = node,
            tail => self.waiters[tail].next = node,
        }
        tenant.tail = node;
        tenant.waiting += 1;
        node
    }

    /// Takes a waiter out of its tenant's queue (its slab entry stays, for
    /// the future to see).
    fn unlink(&mut self, node: usize) {
        let Waiter {
            tenant, prev, next, ..
        } = self.waiters[node];
        let tenant = &mut self.slots[tenant];
        match prev {
            NONE => tenant.head = next,
            prev => self.waiters[prev].next = next,
        }
        match next {
            NONE => tenant.tail = prev,
            next => self.waiters[next].prev = prev,
        }
        tenant.waiting -= 1;
    }

    /// The waker of tenant `t`'s head waiter, taken so it looks again.
    fn head_waker(&mut self, t: usize) -> Option<Waker> {
        match self.slots[t].head {
            NONE => None,
            head => self.waiters[head].waker.take(),
        }
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(old) if old.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}
