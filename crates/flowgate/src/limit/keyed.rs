//! [`KeyedRateLimiter`]: one GCRA per key, with a default [`Rate`], per-key
//! overrides, FIFO waiting per key and idle keys evicted.
//!
//! # Layout
//!
//! Keys are hashed once with foldhash and spread over `shards` mutexes (a
//! power of two by default, four per core). A shard holds:
//!
//! - `entries`: one `(key, TAT)` per key that is not idle — 16 bytes for a
//!   `u64` key, the same as governor's keyed state;
//! - `queues`: the keys that have waiters, each with its FIFO (a linked
//!   list through `waiters`, a slab);
//! - `overrides`: the keys with a rate of their own.
//!
//! The last two are looked at only when they are not empty, so a check of
//! a key with neither is one probe of one table under one uncontended lock.
//!
//! # Why evicting an idle key changes nothing
//!
//! A key's whole state is its TAT (theoretical arrival time). A TAT at or
//! before `now` behaves exactly as a key never seen (TAT 0): the next cell
//! is charged at `now` and the full burst is free (see
//! [`gcra_step`](super::rate::gcra_step)). So an entry whose TAT has passed
//! and whose key has no waiters can be dropped without changing any later
//! decision. Overrides are kept apart from the entries, so they survive.

use std::fmt;
use std::future::poll_fn;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use slab::Slab;
use tokio::time::{Sleep, sleep_until};

use super::error::{BuildError, NotReady};
use super::metrics::DebugName;
use super::metrics::{Kind, LimitMetrics};
use super::rate::{Clock, Params, Rate, gcra_step};
use crate::sync::lock;
use crate::telemetry::{GaugeGuard, Name};

/// No node: the end of a waiter list.
const NONE: usize = usize::MAX;

/// Capacity a shard's table is never shrunk below.
const MIN_CAPACITY: usize = 16;

/// The default of [`KeyedRateLimiterBuilder::sweep_threshold`].
const DEFAULT_SWEEP_THRESHOLD: usize = 1024;

/// A rate limiter with one GCRA per key: every key may pass its own
/// [`Rate`] — the default one, or an override set for that key — and keys
/// never affect each other.
///
/// - **Exact**: each key is the [`RateLimiter`](super::RateLimiter)'s GCRA,
///   on tokio's clock, so under paused time `n` calls at a rate take exactly
///   the computed time, and a waiter that wakes late keeps its slot.
/// - **FIFO per key**: waiters on one key are served in the order they
///   started waiting, and while any waits,
///   [`try_acquire`](Self::try_acquire) on that key is refused, so a caller
///   that polls cannot overtake one that waits.
/// - **Bounded memory**: a key whose GCRA is back at "full burst available"
///   and that has no waiters carries no information and is dropped (see
///   [Eviction](#eviction)); [`len`](Self::len) counts the keys kept.
/// - **A handle**: clones share one limiter (an `Arc` inside).
///
/// Keys are hashed with [foldhash](https://docs.rs/foldhash), randomly
/// seeded per limiter, and spread over
/// [`shards`](KeyedRateLimiterBuilder::shards) locks.
///
/// # Eviction
///
/// A key is *idle* once its theoretical arrival time has passed (for a
/// burst of 1, one interval after its last call; for a burst of `b`, when
/// all `b` cells have refilled) and nobody waits on it. Idle keys are
/// dropped
///
/// - **amortised, on access**: when a new key is added to a shard that holds
///   `max(sweep_threshold / shards, 2 × what its last sweep kept)` keys, the
///   shard first sweeps its idle keys out (and shrinks its table when it is
///   more than four times too big). A sweep costs time linear in the
///   shard's size and runs only after the shard has doubled, so each new key
///   pays O(1) for it;
/// - **on demand**: [`retain_recent`](Self::retain_recent) sweeps every
///   shard now, for a periodic task or after a burst of one-off keys.
///
/// So [`len`](Self::len) never exceeds the sum over shards of
/// `max(sweep_threshold / shards, 2 × live keys at that shard's last
/// sweep)`: about twice the keys busy at once, plus `sweep_threshold`
/// (1,024 by default). Eviction never changes a decision (a key never seen
/// and an idle key are the same GCRA state); overrides are kept apart and
/// survive it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::limit::{KeyedRateLimiter, Rate};
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // Two calls per second per client, and ten for the "batch" client.
/// let limiter = KeyedRateLimiter::new(Rate::per_second(2));
/// limiter.set_rate_for("batch", Rate::per_second(10));
///
/// let start = Instant::now();
/// for _ in 0..3 {
///     limiter.acquire(&"alice").await;
/// }
/// assert_eq!(start.elapsed(), Duration::from_secs(1)); // 0, 500, 1000 ms
///
/// assert!(limiter.try_acquire(&"bob").is_ok()); // alice's calls cost bob nothing
/// assert!(limiter.try_acquire(&"batch").is_ok());
/// let not_ready = limiter.try_acquire(&"batch").unwrap_err();
/// assert_eq!(not_ready.wait_time(), Duration::from_millis(100));
/// # }
/// ```
pub struct KeyedRateLimiter<K> {
    shared: Arc<Shared<K>>,
}

struct Shared<K> {
    clock: Clock,
    rate: Rate,
    params: Params,
    hasher: RandomState,
    shards: Box<[Padded<Mutex<Shard<K>>>]>,
    /// Per shard: the size below which a shard never sweeps.
    sweep_at: usize,
    metrics: LimitMetrics,
}

/// A shard on a cache line (pair) of its own, so two cores working on two
/// shards do not share one.
#[repr(align(128))]
struct Padded<T>(T);

struct Shard<K> {
    entries: HashTable<Entry<K>>,
    queues: HashTable<Queue<K>>,
    overrides: HashTable<Override<K>>,
    waiters: Slab<Waiter>,
    /// The size at which adding a key sweeps first.
    next_sweep: usize,
}

struct Entry<K> {
    key: K,
    /// Theoretical arrival time of the key's next cell (nanoseconds since
    /// the limiter's start).
    tat: u64,
}

/// The waiters of one key, oldest first.
struct Queue<K> {
    key: K,
    head: usize,
    tail: usize,
    len: usize,
    /// The slot the head was told to sleep until.
    promised: Option<u64>,
}

struct Override<K> {
    key: K,
    rate: Rate,
    params: Params,
}

struct Waiter {
    prev: usize,
    next: usize,
    waker: Option<Waker>,
}

impl<K> KeyedRateLimiter<K> {
    /// The most [`shards`](KeyedRateLimiterBuilder::shards): 4,096.
    pub const MAX_SHARDS: usize = 4096;
}

impl<K> KeyedRateLimiter<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A limiter letting `rate` calls through for every key, with the
    /// default knobs (see [`builder`](Self::builder)).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    /// assert!(limiter.try_acquire(&1u64).is_ok());
    /// assert!(limiter.try_acquire(&1u64).is_err());
    /// assert!(limiter.try_acquire(&2u64).is_ok());
    /// # }
    /// ```
    pub fn new(rate: Rate) -> KeyedRateLimiter<K> {
        match Self::builder(rate).build() {
            Ok(limiter) => limiter,
            Err(err) => unreachable!("the default knobs are valid: {err}"),
        }
    }

    /// A builder for per-key overrides and the eviction knobs.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::builder(Rate::per_second(1))
    ///     .rate_for("admin", Rate::per_second(100))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.rate_for(&"admin"), Rate::per_second(100));
    /// assert_eq!(limiter.rate_for(&"guest"), Rate::per_second(1));
    /// # }
    /// ```
    pub fn builder(rate: Rate) -> KeyedRateLimiterBuilder<K> {
        KeyedRateLimiterBuilder {
            rate,
            overrides: Vec::new(),
            shards: None,
            sweep_threshold: DEFAULT_SWEEP_THRESHOLD,
            name: Name::none(),
        }
    }

    /// The default rate: the rate of every key without an override.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// let limiter = KeyedRateLimiter::<u64>::new(Rate::per_second(5));
    /// assert_eq!(limiter.rate(), Rate::per_second(5));
    /// ```
    pub fn rate(&self) -> Rate {
        self.shared.rate
    }

    /// The rate `key` is limited to: its override, or the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(5));
    /// limiter.set_rate_for(7u64, Rate::per_second(50));
    /// assert_eq!(limiter.rate_for(&7), Rate::per_second(50));
    /// assert_eq!(limiter.rate_for(&8), Rate::per_second(5));
    /// ```
    pub fn rate_for(&self, key: &K) -> Rate {
        let hash = self.shared.hasher.hash_one(key);
        let shard = lock(self.shared.shard(hash));
        shard
            .override_of(hash, key)
            .map_or(self.shared.rate, |o| o.rate)
    }

    /// Gives `key` a rate of its own, in place of the default, from now on.
    /// Returns the override it replaces, if any.
    ///
    /// The key's GCRA state carries over: cells it took under the old rate
    /// still count, and the next one is judged at the new rate. A waiter on
    /// the key looks again at once, so a faster rate takes effect for it
    /// too.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    /// assert_eq!(limiter.set_rate_for("vip", Rate::per_second(4)), None);
    /// limiter.try_acquire(&"vip").unwrap();
    /// let not_ready = limiter.try_acquire(&"vip").unwrap_err();
    /// assert_eq!(not_ready.wait_time(), Duration::from_millis(250));
    /// # }
    /// ```
    pub fn set_rate_for(&self, key: K, rate: Rate) -> Option<Rate> {
        let hash = self.shared.hasher.hash_one(&key);
        let mut shard = lock(self.shared.shard(hash));
        // The head waiter on the key (if any) looks again.
        let waker = shard.head_waker(hash, &key);
        let new = Override {
            key,
            rate,
            params: Params::of(rate),
        };
        let old = match shard.overrides.find_mut(hash, |o| o.key == new.key) {
            Some(o) => Some(std::mem::replace(o, new).rate),
            None => {
                shard
                    .overrides
                    .insert_unique(hash, new, |o| self.shared.hasher.hash_one(&o.key));
                None
            }
        };
        drop(shard);
        wake(waker);
        old
    }

    /// Removes `key`'s override: it goes back to the default rate. Returns
    /// the override, if there was one.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    /// limiter.set_rate_for("vip", Rate::per_second(4));
    /// assert_eq!(limiter.remove_rate_for(&"vip"), Some(Rate::per_second(4)));
    /// assert_eq!(limiter.remove_rate_for(&"vip"), None);
    /// assert_eq!(limiter.rate_for(&"vip"), Rate::per_second(1));
    /// ```
    pub fn remove_rate_for(&self, key: &K) -> Option<Rate> {
        let hash = self.shared.hasher.hash_one(key);
        let mut shard = lock(self.shared.shard(hash));
        let removed = match shard.overrides.find_entry(hash, |o| o.key == *key) {
            Ok(entry) => entry.remove().0.rate,
            Err(_) => return None,
        };
        let waker = shard.head_waker(hash, key);
        drop(shard);
        wake(waker);
        Some(removed)
    }

    /// Takes one cell for `key` if one is free now, without waiting.
    ///
    /// # Errors
    ///
    /// [`NotReady`] if no cell of `key` is free now, or if another call
    /// waits on `key` in [`acquire`](Self::acquire) (it came first).
    /// [`ready_at`](NotReady::ready_at) is when the next cell frees up —
    /// with waiters on the key, when those waiters will have had their
    /// turns (if none gives up and the rate does not change).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(2).with_burst(2));
    /// assert!(limiter.try_acquire(&"k").is_ok());
    /// assert!(limiter.try_acquire(&"k").is_ok());
    /// let not_ready = limiter.try_acquire(&"k").unwrap_err();
    /// assert_eq!(not_ready.wait_time(), Duration::from_millis(500));
    /// # }
    /// ```
    pub fn try_acquire(&self, key: &K) -> Result<(), NotReady> {
        let shared = &*self.shared;
        let hash = shared.hasher.hash_one(key);
        // Read before the lock, to keep the critical section short: a
        // reading a little stale is the same as a call that came a little
        // earlier.
        let now = shared.clock.now();
        let mut shard = lock(shared.shard(hash));
        let taken = match shard.queue(hash, key) {
            Some(queue) => Err(shard.after_queue(shared, hash, key, queue.len, now)),
            None => shard.take(shared, hash, key, now, None),
        };
        drop(shard);
        taken.map_err(|slot| {
            shared.metrics.rejected.inc();
            NotReady {
                ready_at: shared.clock.instant(slot),
            }
        })
    }

    /// Waits until a cell of `key` is free and takes it. Waiters on one key
    /// are served first come, first served.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cell is taken only in the poll that completes the
    /// future, so a cancelled call takes nothing, and it leaves the queue of
    /// `key` at once — the waiter behind it moves up. It loses only its
    /// place in that queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(4));
    /// let start = Instant::now();
    /// let tasks: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let limiter = limiter.clone();
    ///         tokio::spawn(async move {
    ///             limiter.acquire(&"tenant").await;
    ///             start.elapsed()
    ///         })
    ///     })
    ///     .collect();
    /// let mut done = Vec::new();
    /// for task in tasks {
    ///     done.push(task.await.unwrap());
    /// }
    /// // In the order they started waiting, 250 ms apart.
    /// assert_eq!(done, [0, 250, 500, 750].map(Duration::from_millis));
    /// # }
    /// ```
    pub async fn acquire(&self, key: &K) {
        let mut waiting = Waiting {
            shared: &self.shared,
            key,
            hash: self.shared.hasher.hash_one(key),
            node: None,
            sleep: None,
            waiting: None,
        };
        poll_fn(|cx| waiting.poll(cx)).await;
    }

    /// How many keys the limiter holds state for now: keys not yet idle,
    /// keys with waiters, and idle keys not yet swept (see
    /// [Eviction](Self#eviction)). Overrides are not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(10));
    /// for key in 0..100u64 {
    ///     limiter.try_acquire(&key).unwrap();
    /// }
    /// assert_eq!(limiter.len(), 100);
    /// tokio::time::advance(Duration::from_millis(100)).await;
    /// limiter.retain_recent();
    /// assert_eq!(limiter.len(), 0);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|shard| lock(&shard.0).entries.len())
            .sum()
    }

    /// Whether the limiter holds no key (see [`len`](Self::len)).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(10));
    /// assert!(limiter.is_empty());
    /// limiter.try_acquire(&"k").unwrap();
    /// assert!(!limiter.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every idle key now — whose GCRA is back at "full burst
    /// available" and that has no waiters — and shrinks the tables to fit.
    /// It changes no decision: a dropped key behaves as it would have.
    ///
    /// Eviction also runs by itself as new keys come (see
    /// [Eviction](Self#eviction)); call this from a periodic task to give
    /// memory back after a burst of one-off keys. It locks one shard at a
    /// time, for a time linear in that shard's size.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    /// limiter.try_acquire(&"old").unwrap();
    /// tokio::time::advance(Duration::from_secs(1)).await;
    /// limiter.try_acquire(&"new").unwrap();
    /// limiter.retain_recent();
    /// assert_eq!(limiter.len(), 1); // "old" is idle again, "new" is not
    /// # }
    /// ```
    pub fn retain_recent(&self) {
        let shared = &*self.shared;
        for shard in shared.shards.iter() {
            let mut shard = lock(&shard.0);
            let now = shared.clock.now();
            shard.sweep(shared, now);
        }
    }
}

impl<K> Shared<K> {
    fn shard(&self, hash: u64) -> &Mutex<Shard<K>> {
        // Bits 25..57 of the hash: the table inside a shard uses the low
        // bits for the bucket and the top 7 for its tag.
        let bits = (hash >> 25) as u32;
        let index = (u64::from(bits) * self.shards.len() as u64) >> 32;
        &self.shards[index as usize].0
    }
}

impl<K: Hash + Eq + Clone> Shard<K> {
    fn new(sweep_at: usize) -> Shard<K> {
        Shard {
            entries: HashTable::new(),
            queues: HashTable::new(),
            overrides: HashTable::new(),
            waiters: Slab::new(),
            next_sweep: sweep_at,
        }
    }

    fn override_of(&self, hash: u64, key: &K) -> Option<&Override<K>> {
        if self.overrides.is_empty() {
            return None;
        }
        self.overrides.find(hash, |o| o.key == *key)
    }

    fn params(&self, shared: &Shared<K>, hash: u64, key: &K) -> Params {
        self.override_of(hash, key)
            .map_or(shared.params, |o| o.params)
    }

    fn queue(&self, hash: u64, key: &K) -> Option<&Queue<K>> {
        if self.queues.is_empty() {
            return None;
        }
        self.queues.find(hash, |q| q.key == *key)
    }

    fn tat(&self, hash: u64, key: &K) -> u64 {
        self.entries
            .find(hash, |e| e.key == *key)
            .map_or(0, |e| e.tat)
    }

    /// Takes a cell of `key` at `now`, or returns the earliest slot.
    fn take(
        &mut self,
        shared: &Shared<K>,
        hash: u64,
        key: &K,
        now: u64,
        promised: Option<u64>,
    ) -> Result<(), u64> {
        let params = self.params(shared, hash, key);
        if let Some(entry) = self.entries.find_mut(hash, |e| e.key == *key) {
            entry.tat = gcra_step(entry.tat, now, promised, params)?;
            shared.metrics.granted.inc();
            return Ok(());
        }
        // A key never seen, or evicted: the same as a TAT of 0.
        let tat = gcra_step(0, now, promised, params)?;
        if self.entries.len() >= self.next_sweep {
            self.sweep(shared, now);
        }
        self.entries.insert_unique(
            hash,
            Entry {
                key: key.clone(),
                tat,
            },
            |e| shared.hasher.hash_one(&e.key),
        );
        shared.metrics.keys.inc();
        shared.metrics.granted.inc();
        Ok(())
    }

    /// The slot at which a call arriving now is served after the `waiting`
    /// calls queued on `key`.
    fn after_queue(&self, shared: &Shared<K>, hash: u64, key: &K, waiting: usize, now: u64) -> u64 {
        let params = self.params(shared, hash, key);
        let waiting = u64::try_from(waiting).unwrap_or(u64::MAX);
        self.tat(hash, key)
            .max(now)
            .saturating_add(waiting.saturating_mul(params.interval))
            .saturating_sub(params.tolerance)
            .max(now)
    }

    /// Drops the idle entries: TAT passed and no waiters.
    fn sweep(&mut self, shared: &Shared<K>, now: u64) {
        let hasher = &shared.hasher;
        let queues = &self.queues;
        let before = self.entries.len();
        self.entries.retain(|e| {
            e.tat > now
                || (!queues.is_empty()
                    && queues
                        .find(hasher.hash_one(&e.key), |q| q.key == e.key)
                        .is_some())
        });
        let len = self.entries.len();
        if len < before {
            shared.metrics.keys.sub((before - len) as f64);
        }
        self.next_sweep = shared.sweep_at.max(len.saturating_mul(2));
        let room = len.saturating_mul(2).max(MIN_CAPACITY);
        if self.entries.capacity() > room.saturating_mul(2) {
            self.entries.shrink_to(room, |e| hasher.hash_one(&e.key));
        }
    }

    /// Appends a waiter to `key`'s queue, made if there is none.
    fn enqueue(&mut self, shared: &Shared<K>, hash: u64, key: &K, waker: &Waker) -> usize {
        let node = self.waiters.insert(Waiter {
            prev: NONE,
            next: NONE,
            waker: Some(waker.clone()),
        });
        match self.queues.find_mut(hash, |q| q.key == *key) {
            Some(queue) => {
                self.waiters[queue.tail].next = node;
                self.waiters[node].prev = queue.tail;
                queue.tail = node;
                queue.len += 1;
            }
            None => {
                let queue = Queue {
                    key: key.clone(),
                    head: node,
                    tail: node,
                    len: 1,
                    promised: None,
                };
                self.queues
                    .insert_unique(hash, queue, |q| shared.hasher.hash_one(&q.key));
            }
        }
        node
    }

    /// Removes a waiter from `key`'s queue; the waker of the new head, if
    /// the head changed.
    fn dequeue(&mut self, hash: u64, key: &K, node: usize) -> Option<Waker> {
        let waiter = self.waiters.remove(node);
        let Ok(mut entry) = self.queues.find_entry(hash, |q| q.key == *key) else {
            unreachable!("a waiter's key has a queue");
        };
        let queue = entry.get_mut();
        queue.len -= 1;
        if queue.len == 0 {
            entry.remove();
            return None;
        }
        match waiter.next {
            NONE => queue.tail = waiter.prev,
            next => self.waiters[next].prev = waiter.prev,
        }
        match waiter.prev {
            NONE => {
                queue.head = waiter.next;
                self.waiters[queue.head].waker.take()
            }
            prev => {
                self.waiters[prev].next = waiter.next;
                None
            }
        }
    }

    /// The waker of the head waiter on `key`, taken so it looks again.
    fn head_waker(&mut self, hash: u64, key: &K) -> Option<Waker> {
        if self.queues.is_empty() {
            return None;
        }
        let head = self.queues.find(hash, |q| q.key == *key)?.head;
        self.waiters[head].waker.take()
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

/// One call of [`KeyedRateLimiter::acquire`]: its place in the key's queue,
/// left when dropped.
struct Waiting<'a, K: Hash + Eq + Clone> {
    shared: &'a Shared<K>,
    key: &'a K,
    hash: u64,
    /// Its node in the key's queue, once it waits.
    node: Option<usize>,
    /// The head's timer, until its slot.
    sleep: Option<Pin<Box<Sleep>>>,
    /// From the first refusal: when the wait began (on the limiter's
    /// clock) and the waiting gauge's share, given back on return or drop.
    waiting: Option<(u64, GaugeGuard)>,
}

impl<K: Hash + Eq + Clone> Waiting<'_, K> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (shared, hash, key) = (self.shared, self.hash, self.key);
        loop {
            let mut shard = lock(shared.shard(hash));
            let now = shared.clock.now();
            let slot = match self.node {
                None => {
                    if shard.queue(hash, key).is_some() {
                        // Others wait: behind them.
                        self.node = Some(shard.enqueue(shared, hash, key, cx.waker()));
                        self.waiting = Some((now, GaugeGuard::new(&shared.metrics.waiting)));
                        return Poll::Pending;
                    }
                    match shard.take(shared, hash, key, now, None) {
                        Ok(()) => {
                            shared.metrics.waited(0);
                            return Poll::Ready(());
                        }
                        Err(slot) => {
                            let node = shard.enqueue(shared, hash, key, cx.waker());
                            self.node = Some(node);
                            self.waiting = Some((now, GaugeGuard::new(&shared.metrics.waiting)));
                            if let Some(queue) = shard.queues.find_mut(hash, |q| q.key == *key) {
                                queue.promised = Some(slot);
                            }
                            slot
                        }
                    }
                }
                Some(node) => {
                    let Some(queue) = shard.queue(hash, key) else {
                        unreachable!("a waiter's key has a queue");
                    };
                    if queue.head != node {
                        store_waker(&mut shard.waiters[node].waker, cx.waker());
                        self.sleep = None;
                        return Poll::Pending;
                    }
                    let promised = queue.promised;
                    match shard.take(shared, hash, key, now, promised) {
                        Ok(()) => {
                            self.node = None;
                            if let Some((since, _)) = self.waiting.take() {
                                shared.metrics.waited(now.saturating_sub(since));
                            }
                            let next = shard.dequeue(hash, key, node);
                            if let Some(queue) = shard.queues.find_mut(hash, |q| q.key == *key) {
                                queue.promised = None;
                            }
                            drop(shard);
                            wake(next);
                            return Poll::Ready(());
                        }
                        Err(slot) => {
                            store_waker(&mut shard.waiters[node].waker, cx.waker());
                            if let Some(queue) = shard.queues.find_mut(hash, |q| q.key == *key) {
                                queue.promised = Some(slot);
                            }
                            slot
                        }
                    }
                }
            };
            drop(shard);
            // The head sleeps until its slot; the others until they are
            // the head.
            let deadline = shared.clock.instant(slot);
            let sleep = match &mut self.sleep {
                Some(sleep) => {
                    sleep.as_mut().reset(deadline);
                    sleep
                }
                None => self.sleep.insert(Box::pin(sleep_until(deadline))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<K: Hash + Eq + Clone> Drop for Waiting<'_, K> {
    fn drop(&mut self) {
        let Some(node) = self.node else { return };
        let mut shard = lock(self.shared.shard(self.hash));
        let next = shard.dequeue(self.hash, self.key, node);
        drop(shard);
        wake(next);
    }
}

// ===== builder =====

/// A builder of a [`KeyedRateLimiter`]: per-key overrides and the eviction
/// knobs. Setters never panic; [`build`](Self::build) checks every rule
/// and returns a [`BuildError`] naming the broken one.
///
/// | knob | default | rule |
/// |---|---|---|
/// | [`rate_for`](Self::rate_for) | none | any [`Rate`] (checked when it was made) |
/// | [`shards`](Self::shards) | 4 per core, a power of two | 1 to [`KeyedRateLimiter::MAX_SHARDS`] |
/// | [`sweep_threshold`](Self::sweep_threshold) | 1,024 | at least 1; `usize::MAX`: never sweep by itself |
///
/// # Examples
///
/// ```
/// use flowgate::limit::{KeyedRateLimiter, Rate};
///
/// let limiter = KeyedRateLimiter::<u64>::builder(Rate::per_second(10))
///     .rate_for(0, Rate::per_second(1000))
///     .shards(16)
///     .sweep_threshold(100_000)
///     .build()
///     .unwrap();
/// assert_eq!(limiter.rate_for(&0), Rate::per_second(1000));
/// ```
pub struct KeyedRateLimiterBuilder<K> {
    rate: Rate,
    overrides: Vec<(K, Rate)>,
    shards: Option<usize>,
    sweep_threshold: usize,
    name: Name,
}

impl<K> KeyedRateLimiterBuilder<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Gives `key` a rate of its own in place of the default (the last one
    /// given for a key wins). Change it later with
    /// [`set_rate_for`](KeyedRateLimiter::set_rate_for).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// let limiter = KeyedRateLimiter::builder(Rate::per_second(1))
    ///     .rate_for("a", Rate::per_second(2))
    ///     .rate_for("a", Rate::per_second(3))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.rate_for(&"a"), Rate::per_second(3));
    /// ```
    pub fn rate_for(mut self, key: K, rate: Rate) -> Self {
        self.overrides.push((key, rate));
        self
    }

    /// How many locks the keys are spread over: more shards, less
    /// contention between cores, and shorter sweeps. Any number from 1 to
    /// [`KeyedRateLimiter::MAX_SHARDS`]; by default four per core
    /// ([`std::thread::available_parallelism`]), rounded up to a power of
    /// two.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{BuildError, KeyedRateLimiter, Rate};
    ///
    /// let builder = || KeyedRateLimiter::<u64>::builder(Rate::per_second(1));
    /// assert!(builder().shards(1).build().is_ok());
    /// assert_eq!(builder().shards(0).build().unwrap_err(), BuildError::ZeroShards);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// About how many keys the limiter holds before sweeping idle ones by
    /// itself: each shard sweeps when a new key would make it hold
    /// `max(threshold / shards, 2 × what its last sweep kept)` keys (see
    /// [Eviction](KeyedRateLimiter#eviction)). At least 1; 1,024 by default;
    /// `usize::MAX` never sweeps by itself, leaving it to
    /// [`retain_recent`](KeyedRateLimiter::retain_recent).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// // Idle keys go only when `retain_recent` is called.
    /// let limiter = KeyedRateLimiter::<u64>::builder(Rate::per_second(1))
    ///     .sweep_threshold(usize::MAX)
    ///     .build()
    ///     .unwrap();
    /// # let _ = limiter;
    /// ```
    pub fn sweep_threshold(mut self, threshold: usize) -> Self {
        self.sweep_threshold = threshold;
        self
    }

    /// Names the limiter: with the `metrics` feature it records, with the
    /// label `name` (any string, as given; see [`crate::metrics`]):
    ///
    /// - `flowgate_limit_granted_total`: cells taken, all keys together;
    /// - `flowgate_limit_rejected_total{reason="not_ready"}`: refused
    ///   [`try_acquire`](KeyedRateLimiter::try_acquire) calls;
    /// - `flowgate_limit_waiting`: [`acquire`](KeyedRateLimiter::acquire)
    ///   calls waiting now (a cancelled one leaves at once);
    /// - `flowgate_limit_wait_seconds`: how long each `acquire` waited, 0
    ///   for those that did not, from the times the limiter reads anyway;
    /// - `flowgate_limit_keys`: keys with state now (the
    ///   [`len`](KeyedRateLimiter::len)).
    ///
    /// Keys are an open set, so no series is per key. Unnamed, the limiter
    /// records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{KeyedRateLimiter, Rate};
    ///
    /// let limiter = KeyedRateLimiter::<String>::builder(Rate::per_second(5))
    ///     .name("per-user")
    ///     .build()
    ///     .unwrap();
    /// # drop(limiter);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }

    /// The limiter, or the first broken rule.
    ///
    /// # Errors
    ///
    /// - [`BuildError::ZeroShards`]: `shards` was 0;
    /// - [`BuildError::TooManyShards`]: `shards` was above
    ///   [`KeyedRateLimiter::MAX_SHARDS`];
    /// - [`BuildError::ZeroSweepThreshold`]: `sweep_threshold` was 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{BuildError, KeyedRateLimiter, Rate};
    ///
    /// let err = KeyedRateLimiter::<u64>::builder(Rate::per_second(1))
    ///     .sweep_threshold(0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroSweepThreshold);
    /// ```
    pub fn build(self) -> Result<KeyedRateLimiter<K>, BuildError> {
        self.try_build().inspect_err(|err| {
            tracing::warn!(
                name = %self.name.as_str(),
                error = %err,
                "KeyedRateLimiter configuration refused"
            );
        })
    }

    fn try_build(&self) -> Result<KeyedRateLimiter<K>, BuildError> {
        let shards = match self.shards {
            Some(0) => return Err(BuildError::ZeroShards),
            Some(n) if n > KeyedRateLimiter::<K>::MAX_SHARDS => {
                return Err(BuildError::TooManyShards(n));
            }
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_mul(4)
                .next_power_of_two()
                .min(KeyedRateLimiter::<K>::MAX_SHARDS),
        };
        if self.sweep_threshold == 0 {
            return Err(BuildError::ZeroSweepThreshold);
        }
        let sweep_at = if self.sweep_threshold == usize::MAX {
            usize::MAX
        } else {
            self.sweep_threshold.div_ceil(shards)
        };
        let shared = Shared {
            clock: Clock::new(),
            rate: self.rate,
            params: Params::of(self.rate),
            hasher: RandomState::default(),
            shards: (0..shards)
                .map(|_| Padded(Mutex::new(Shard::new(sweep_at))))
                .collect(),
            sweep_at,
            metrics: LimitMetrics::new(self.name.clone(), Kind::Keyed),
        };
        let limiter = KeyedRateLimiter {
            shared: Arc::new(shared),
        };
        for (key, rate) in &self.overrides {
            limiter.set_rate_for(key.clone(), *rate);
        }
        Ok(limiter)
    }
}

impl<K> fmt::Debug for KeyedRateLimiterBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiterBuilder")
            .field("rate", &self.rate)
            .field("overrides", &self.overrides.len())
            .field("shards", &self.shards)
            .field("sweep_threshold", &self.sweep_threshold)
            .name_field(&self.name)
            .finish()
    }
}

impl<K> Clone for KeyedRateLimiter<K> {
    fn clone(&self) -> Self {
        KeyedRateLimiter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> fmt::Debug for KeyedRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("rate", &self.shared.rate)
            .field("shards", &self.shared.shards.len())
            .name_field(&self.shared.metrics.name)
            .finish_non_exhaustive()
    }
}
