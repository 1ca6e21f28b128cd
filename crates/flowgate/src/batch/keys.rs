//! How batches are grouped: one open batch for a [`Batcher`](super::Batcher),
//! one open batch per key for a [`KeyedBatcher`](super::KeyedBatcher).
//!
//! The batcher's state, worker and submit paths are generic over a
//! [`BatchKey`]: `()` for the plain batcher, whose open set is a single
//! `Option` (the code compiles to what it was before keys existed), and
//! [`Keyed<K>`] for the keyed one, whose open set is a hash table of batches
//! with the order in which they opened.
//!
//! ```text
//!  ByKey  table: [ (hash, key, batch) ... ]    one open batch per key, probed by hash
//!         order: { seq -> hash }               oldest first: the next deadline, the next eviction
//!  Lanes  table: [ (hash, key, running seq, parked batches) ... ]
//!                                              one_flush_per_key: a key's batches wait in
//!                                              its lane while one of them is flushing
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use tokio::time::Instant;

use super::shared::{Batch, Sealed};

/// A key that groups items into batches. Its open set is where the batches
/// accepting items live.
pub(crate) trait BatchKey: Clone + Eq + Send + Sized + 'static {
    /// The open batches of a batcher with this key.
    type Open<T, O, E>: OpenSet<Self, T, O, E>;

    /// The key's hash, computed by submitters before they take the lock.
    fn hash(hasher: &RandomState, key: &Self) -> u64;
}

/// The open batches of one batcher.
///
/// Batches open in sequence order, and every batch has the same
/// `max_delay`, so the oldest open batch is also the one whose deadline
/// comes first.
pub(crate) trait OpenSet<K, T, O, E> {
    fn new() -> Self;

    /// How many batches are open (for a keyed batcher, how many keys).
    fn len(&self) -> usize;

    /// The open batch of `key`.
    fn get_mut(&mut self, hash: u64, key: &K) -> Option<&mut Batch<T, O, E>>;

    /// Opens `batch` for `key`, which has no open batch.
    fn insert(&mut self, hash: u64, key: K, batch: Batch<T, O, E>) -> &mut Batch<T, O, E>;

    /// Removes the open batch `seq`, with its key, to seal it.
    fn remove(&mut self, seq: u64) -> Option<Sealed<K, T, O, E>>;

    /// The sequence number and deadline of the oldest open batch.
    fn oldest(&self) -> Option<(u64, Option<Instant>)>;

    /// The open batch `seq`, if it is open.
    fn find(&mut self, seq: u64) -> Option<&mut Batch<T, O, E>>;

    /// Removes every open batch.
    fn drain(&mut self) -> Vec<Sealed<K, T, O, E>>;
}

impl BatchKey for () {
    type Open<T, O, E> = Single<T, O, E>;

    #[inline(always)]
    fn hash(_: &RandomState, _: &()) -> u64 {
        0
    }
}

/// The open set of a plain batcher: at most one batch.
pub(crate) struct Single<T, O, E>(Option<Batch<T, O, E>>);

impl<T, O, E> OpenSet<(), T, O, E> for Single<T, O, E> {
    fn new() -> Self {
        Single(None)
    }

    #[inline]
    fn len(&self) -> usize {
        usize::from(self.0.is_some())
    }

    #[inline(always)]
    fn get_mut(&mut self, _: u64, _: &()) -> Option<&mut Batch<T, O, E>> {
        self.0.as_mut()
    }

    #[inline]
    fn insert(&mut self, _: u64, _: (), batch: Batch<T, O, E>) -> &mut Batch<T, O, E> {
        self.0.insert(batch)
    }

    #[inline]
    fn remove(&mut self, seq: u64) -> Option<Sealed<(), T, O, E>> {
        if self.0.as_ref().is_some_and(|batch| batch.seq == seq) {
            self.0.take().map(|batch| Sealed {
                hash: 0,
                key: (),
                batch,
            })
        } else {
            None
        }
    }

    #[inline]
    fn oldest(&self) -> Option<(u64, Option<Instant>)> {
        self.0.as_ref().map(|batch| (batch.seq, batch.deadline))
    }

    fn find(&mut self, seq: u64) -> Option<&mut Batch<T, O, E>> {
        self.0.as_mut().filter(|batch| batch.seq == seq)
    }

    fn drain(&mut self) -> Vec<Sealed<(), T, O, E>> {
        self.0
            .take()
            .map(|batch| Sealed {
                hash: 0,
                key: (),
                batch,
            })
            .into_iter()
            .collect()
    }
}

/// A user's key, as a [`BatchKey`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Keyed<K>(pub(crate) K);

impl<K> BatchKey for Keyed<K>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    type Open<T, O, E> = ByKey<K, T, O, E>;

    #[inline]
    fn hash(hasher: &RandomState, key: &Self) -> u64 {
        hasher.hash_one(&key.0)
    }
}

/// An open batch of a keyed batcher, in the table by its key.
struct OpenEntry<K, T, O, E> {
    hash: u64,
    key: Keyed<K>,
    batch: Batch<T, O, E>,
}

/// The open set of a keyed batcher: one batch per key.
pub(crate) struct ByKey<K, T, O, E> {
    table: HashTable<OpenEntry<K, T, O, E>>,
    /// The hash of each open batch by sequence number: the oldest first. A
    /// batch is found again by hash and sequence number, without comparing
    /// keys.
    order: BTreeMap<u64, u64>,
}

impl<K, T, O, E> ByKey<K, T, O, E> {
    fn entry_mut(&mut self, seq: u64) -> Option<&mut OpenEntry<K, T, O, E>> {
        let hash = *self.order.get(&seq)?;
        self.table.find_mut(hash, |entry| entry.batch.seq == seq)
    }
}

impl<K, T, O, E> OpenSet<Keyed<K>, T, O, E> for ByKey<K, T, O, E>
where
    K: Eq,
{
    fn new() -> Self {
        ByKey {
            table: HashTable::new(),
            order: BTreeMap::new(),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.table.len()
    }

    #[inline]
    fn get_mut(&mut self, hash: u64, key: &Keyed<K>) -> Option<&mut Batch<T, O, E>> {
        self.table
            .find_mut(hash, |entry| entry.key == *key)
            .map(|entry| &mut entry.batch)
    }

    fn insert(&mut self, hash: u64, key: Keyed<K>, batch: Batch<T, O, E>) -> &mut Batch<T, O, E> {
        self.order.insert(batch.seq, hash);
        let entry = OpenEntry { hash, key, batch };
        &mut self
            .table
            .insert_unique(hash, entry, |entry| entry.hash)
            .into_mut()
            .batch
    }

    fn remove(&mut self, seq: u64) -> Option<Sealed<Keyed<K>, T, O, E>> {
        let hash = self.order.remove(&seq)?;
        let entry = self
            .table
            .find_entry(hash, |entry| entry.batch.seq == seq)
            .ok()?;
        let (OpenEntry { hash, key, batch }, _) = entry.remove();
        Some(Sealed { hash, key, batch })
    }

    fn oldest(&self) -> Option<(u64, Option<Instant>)> {
        let (&seq, &hash) = self.order.first_key_value()?;
        let entry = self.table.find(hash, |entry| entry.batch.seq == seq)?;
        Some((seq, entry.batch.deadline))
    }

    fn find(&mut self, seq: u64) -> Option<&mut Batch<T, O, E>> {
        self.entry_mut(seq).map(|entry| &mut entry.batch)
    }

    fn drain(&mut self) -> Vec<Sealed<Keyed<K>, T, O, E>> {
        self.order.clear();
        self.table
            .drain()
            .map(|OpenEntry { hash, key, batch }| Sealed { hash, key, batch })
            .collect()
    }
}

/// With `one_flush_per_key`: the keys that have a batch ready to flush or
/// flushing, each with the batches sealed meanwhile, which wait their turn.
pub(crate) struct Lanes<K, T, O, E> {
    table: HashTable<Lane<K, T, O, E>>,
    /// Batches waiting in lanes, in all.
    parked: usize,
}

struct Lane<K, T, O, E> {
    hash: u64,
    key: K,
    /// The batch of this key that is ready or flushing.
    running: u64,
    /// The key's batches sealed since, oldest first.
    parked: VecDeque<Batch<T, O, E>>,
}

impl<K, T, O, E> Lanes<K, T, O, E>
where
    K: BatchKey,
{
    pub(crate) fn new() -> Self {
        Lanes {
            table: HashTable::new(),
            parked: 0,
        }
    }

    /// Batches sealed that wait for an earlier batch of their key.
    pub(crate) fn parked(&self) -> usize {
        self.parked
    }

    /// Whether no key has a batch ready or flushing.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A batch was sealed: it is ready to flush if no batch of its key is,
    /// or waits in its key's lane.
    pub(crate) fn route(
        &mut self,
        sealed: Sealed<K, T, O, E>,
        ready: &mut VecDeque<Sealed<K, T, O, E>>,
    ) {
        let Sealed { hash, key, batch } = sealed;
        match self.table.find_mut(hash, |lane| lane.key == key) {
            Some(lane) => {
                lane.parked.push_back(batch);
                self.parked += 1;
            }
            None => {
                let lane = Lane {
                    hash,
                    key: key.clone(),
                    running: batch.seq,
                    parked: VecDeque::new(),
                };
                self.table.insert_unique(hash, lane, |lane| lane.hash);
                ready.push_back(Sealed { hash, key, batch });
            }
        }
    }

    /// The flush of batch `seq` (of the key hashed `hash`) finished: the
    /// key's next batch, if one waits, becomes ready.
    pub(crate) fn release(
        &mut self,
        hash: u64,
        seq: u64,
        ready: &mut VecDeque<Sealed<K, T, O, E>>,
    ) {
        let Ok(mut entry) = self.table.find_entry(hash, |lane| lane.running == seq) else {
            return;
        };
        let lane = entry.get_mut();
        match lane.parked.pop_front() {
            Some(batch) => {
                self.parked -= 1;
                lane.running = batch.seq;
                ready.push_back(Sealed {
                    hash,
                    key: lane.key.clone(),
                    batch,
                });
            }
            None => {
                entry.remove();
            }
        }
    }

    /// Removes every lane, with the batches waiting in them.
    pub(crate) fn drain(&mut self) -> Vec<Batch<T, O, E>> {
        self.parked = 0;
        self.table.drain().flat_map(|lane| lane.parked).collect()
    }
}
