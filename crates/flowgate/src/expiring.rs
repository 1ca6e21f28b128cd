//! A bounded map whose entries expire a fixed time after they were inserted:
//! the in-memory [`IdempotencyStore`](crate::idempotency::MemoryIdempotencyStore)
//! and the [`DataLoader`](crate::dataloader::DataLoader) cache.
//!
//! Why not moka: every entry lives for the same `ttl` from its insertion, so
//! insertion order *is* expiry order, and one FIFO queue gives both TTL expiry
//! and eviction of the oldest entry at capacity in O(1) amortised per insert,
//! with no background thread. It reads tokio's clock, so TTLs follow paused
//! time in tests (moka reads its own clock, which `tokio::time::pause` cannot
//! drive) and agree with the crate's other timers. What it gives up is moka's
//! frequency-aware admission (TinyLFU): at capacity the *oldest* entry goes,
//! not the least useful one. For the two uses here that is the right victim
//! anyway: an idempotency key matters only within the redelivery window, and a
//! dataloader cache entry is a short-lived snapshot.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct ExpiringMap<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Keys in insertion order, with the generation they were inserted at. A
    /// key re-inserted later leaves a stale element here, skipped (and
    /// dropped) when it reaches the front, or by `compact`.
    order: VecDeque<(K, u64)>,
    capacity: usize,
    ttl: Duration,
    next_generation: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    /// `None`: never (a `ttl` too long for an `Instant`).
    expires: Option<Instant>,
    generation: u64,
}

impl<V> Entry<V> {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|expires| expires > now)
    }
}

impl<K, V> ExpiringMap<K, V> {
    /// Entries held, including expired ones not evicted yet.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<K: Hash + Eq + Clone, V> ExpiringMap<K, V> {
    /// A map of at most `capacity` entries, each living `ttl`. Both must be
    /// non-zero (checked by the callers). A `capacity` up to `usize::MAX`
    /// allocates nothing up front; a `ttl` too long for an `Instant` (up to
    /// `Duration::MAX`) means entries never expire.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        debug_assert!(capacity > 0 && !ttl.is_zero());
        ExpiringMap {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            ttl,
            next_generation: 0,
        }
    }

    /// The live value of `key`, if any.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let now = Instant::now();
        self.evict(now);
        self.entries
            .get(key)
            .filter(|entry| entry.is_live(now))
            .map(|entry| &entry.value)
    }

    /// Whether `key` has a live value.
    pub(crate) fn contains(&mut self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or refreshes `key`: it lives `ttl` from now. Evicts expired
    /// entries, then the oldest ones while the map is over capacity.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        let now = Instant::now();
        let generation = self.next_generation;
        self.next_generation += 1;
        self.entries.insert(
            key.clone(),
            Entry {
                value,
                expires: now.checked_add(self.ttl),
                generation,
            },
        );
        self.order.push_back((key, generation));
        self.evict(now);
        // Stale elements pile up only when live keys are refreshed over and
        // over; keep the queue within a constant factor of the map.
        if self.order.len() > 2 * self.entries.len() + 16 {
            self.compact();
        }
    }

    /// Removes `key`; whether it had a live value.
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        let now = Instant::now();
        // Its element in `order` becomes stale and is skipped later.
        self.entries
            .remove(key)
            .is_some_and(|entry| entry.is_live(now))
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Pops the front of `order` while it is stale, expired, or over capacity.
    fn evict(&mut self, now: Instant) {
        while let Some((key, generation)) = self.order.front() {
            match self.entries.get(key) {
                Some(entry) if entry.generation == *generation => {
                    if !entry.is_live(now) || self.entries.len() > self.capacity {
                        self.entries.remove(key);
                    } else {
                        // The front is live and the map is within capacity:
                        // everything behind it is younger.
                        return;
                    }
                }
                // Removed, or re-inserted later: a stale element.
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Drops every stale element of `order`.
    fn compact(&mut self) {
        let entries = &self.entries;
        self.order.retain(|(key, generation)| {
            entries
                .get(key)
                .is_some_and(|entry| entry.generation == *generation)
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_ttl() {
        let mut map = ExpiringMap::new(10, Duration::from_secs(1));
        map.insert(1, "a");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(map.get(&1), Some(&"a"));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(map.get(&1), None);
        assert_eq!(map.len(), 0, "the expired entry was evicted");
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_entry_goes_at_capacity() {
        let mut map = ExpiringMap::new(2, Duration::from_secs(60));
        map.insert(1, ());
        map.insert(2, ());
        map.insert(1, ()); // refreshed: now younger than 2
        map.insert(3, ());
        assert!(map.contains(&1));
        assert!(!map.contains(&2));
        assert!(map.contains(&3));
        assert_eq!(map.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshing_one_key_keeps_the_queue_bounded() {
        let mut map = ExpiringMap::new(100, Duration::from_secs(60));
        map.insert(0, ());
        for _ in 0..10_000 {
            map.insert(1, ());
        }
        assert!(map.order.len() <= 2 * map.entries.len() + 16);
        assert!(map.contains(&0) && map.contains(&1));
    }

    #[tokio::test(start_paused = true)]
    async fn remove_and_clear() {
        let mut map = ExpiringMap::new(4, Duration::from_secs(60));
        map.insert(1, ());
        map.insert(2, ());
        assert!(map.remove(&1));
        assert!(!map.remove(&1));
        map.insert(3, ());
        map.insert(4, ());
        map.insert(5, ());
        // The stale element of 1 does not count against capacity.
        assert!(map.contains(&2));
        map.clear();
        assert_eq!(map.len(), 0);
        assert!(!map.contains(&2));
    }
}
