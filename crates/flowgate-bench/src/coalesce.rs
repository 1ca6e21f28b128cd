//! Coalescing queues with waiting producers (issue 18): `P` producer tasks
//! enqueue `items` `u64`s between them under `KEYS` keys (`key = i % KEYS`),
//! waiting for room when a key holds `WIDTH` items or `DEPTH` keys are
//! queued; `C` consumer tasks take one key with all its items at a time
//! until every item has been taken.
//!
//! Two sides, the same workload:
//!
//! - [`flowgate_opqueue`]: `OpQueue::enqueue(key, item).await` and
//!   `Consumer::dequeue().await`; the queue closes when the producers' handles
//!   are dropped, and each consumer stops at `None`.
//! - [`naive_queue`]: the queue a careful engineer writes by hand, with
//!   the seed's shape: `Mutex<(VecDeque<K>, HashMap<K, Vec<T>>)>` (std's
//!   hasher, as written by default), a `tokio::sync::Notify` poked on every
//!   enqueue for the consumers and one poked after every dequeue for the
//!   producers waiting for room. Each waiter enables its `Notified` before it
//!   looks, so that no wake-up is lost; a closed flag ends the consumers.
//!
//! Both return the number of dequeues (entries taken), which says how much
//! the queue coalesced.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use flowgate::coalesce::OpQueue;
use tokio::sync::Notify;

/// Distinct keys.
pub const KEYS: u64 = 1_000;
/// Keys queued at most (every key fits: only width makes a producer wait).
pub const DEPTH: usize = 1_000;
/// Items queued under one key at most.
pub const WIDTH: usize = 100;

/// `items` through a `flowgate::coalesce::OpQueue` with `producers`
/// producer tasks and `consumers` consumer tasks; returns the dequeues.
pub async fn flowgate_opqueue(items: u64, producers: u64, consumers: usize) -> u64 {
    let (queue, consumer) = OpQueue::<u64, u64>::new(DEPTH, WIDTH);
    let mut producing = Vec::new();
    for p in 0..producers {
        let queue = queue.clone();
        producing.push(tokio::spawn(async move {
            for i in (p..items).step_by(producers as usize) {
                queue.enqueue(i % KEYS, i).await.expect("open");
            }
        }));
    }
    // The queue closes once every producer's handle is gone.
    drop(queue);
    let mut consuming = Vec::new();
    for _ in 0..consumers {
        let consumer = consumer.clone();
        consuming.push(tokio::spawn(async move {
            let (mut taken, mut dequeues) = (0u64, 0u64);
            while let Some((_, batch)) = consumer.dequeue().await {
                taken += batch.len() as u64;
                dequeues += 1;
                black_box(batch);
            }
            (taken, dequeues)
        }));
    }
    drop(consumer);
    join(producing, consuming, items).await
}

/// The keys in order, and each key's items.
type KeysAndSets = (VecDeque<u64>, HashMap<u64, Vec<u64>>);

/// The hand-written queue of [`naive_queue`].
struct Naive {
    inner: Mutex<KeysAndSets>,
    /// Poked on every enqueue: a consumer may take something.
    ready: Notify,
    /// Poked after every dequeue: a producer may find room.
    room: Notify,
    closed: AtomicBool,
}

impl Naive {
    fn try_enqueue(&self, key: u64, item: u64) -> bool {
        let mut guard = self.inner.lock().unwrap();
        let (order, sets) = &mut *guard;
        match sets.get_mut(&key) {
            Some(set) if set.len() >= WIDTH => return false,
            Some(set) => set.push(item),
            None if order.len() >= DEPTH => return false,
            None => {
                order.push_back(key);
                sets.insert(key, vec![item]);
            }
        }
        drop(guard);
        self.ready.notify_one();
        true
    }

    async fn enqueue(&self, key: u64, item: u64) {
        loop {
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            if self.try_enqueue(key, item) {
                return;
            }
            room.await;
        }
    }

    fn try_dequeue(&self) -> Option<(u64, Vec<u64>)> {
        let mut guard = self.inner.lock().unwrap();
        let (order, sets) = &mut *guard;
        let key = order.pop_front()?;
        let set = sets.remove(&key).expect("queued keys have a set");
        drop(guard);
        self.room.notify_waiters();
        Some((key, set))
    }

    /// The oldest key and its items; `None` once closed and empty.
    async fn dequeue(&self) -> Option<(u64, Vec<u64>)> {
        loop {
            let mut ready = pin!(self.ready.notified());
            ready.as_mut().enable();
            if let Some(entry) = self.try_dequeue() {
                return Some(entry);
            }
            if self.closed.load(Ordering::Acquire) {
                return self.try_dequeue();
            }
            ready.await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_waiters();
    }
}

/// `items` through the hand-written queue, with `producers` producer tasks
/// and `consumers` consumer tasks; returns the dequeues.
pub async fn naive_queue(items: u64, producers: u64, consumers: usize) -> u64 {
    let queue = Arc::new(Naive {
        inner: Mutex::new((VecDeque::new(), HashMap::new())),
        ready: Notify::new(),
        room: Notify::new(),
        closed: AtomicBool::new(false),
    });
    let mut producing = Vec::new();
    for p in 0..producers {
        let queue = Arc::clone(&queue);
        producing.push(tokio::spawn(async move {
            for i in (p..items).step_by(producers as usize) {
                queue.enqueue(i % KEYS, i).await;
            }
        }));
    }
    let mut consuming = Vec::new();
    for _ in 0..consumers {
        let queue = Arc::clone(&queue);
        consuming.push(tokio::spawn(async move {
            let (mut taken, mut dequeues) = (0u64, 0u64);
            while let Some((_, batch)) = queue.dequeue().await {
                taken += batch.len() as u64;
                dequeues += 1;
                black_box(batch);
            }
            (taken, dequeues)
        }));
    }
    for task in producing {
        task.await.expect("producer panicked");
    }
    queue.close();
    join(Vec::new(), consuming, items).await
}

/// Awaits the tasks, checks that every item was taken once, and returns
/// the dequeues.
async fn join(
    producing: Vec<tokio::task::JoinHandle<()>>,
    consuming: Vec<tokio::task::JoinHandle<(u64, u64)>>,
    items: u64,
) -> u64 {
    for task in producing {
        task.await.expect("producer panicked");
    }
    let (mut taken, mut dequeues) = (0, 0);
    for task in consuming {
        let (t, d) = task.await.expect("consumer panicked");
        taken += t;
        dequeues += d;
    }
    assert_eq!(taken, items, "every item is taken once");
    dequeues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_sides_take_every_item_once() {
        for (producers, consumers) in [(1, 1), (4, 2)] {
            let flowgate = flowgate_opqueue(200_000, producers, consumers).await;
            let naive = naive_queue(200_000, producers, consumers).await;
            // Coalescing: fewer entries than items, at least one per key.
            for dequeues in [flowgate, naive] {
                assert!((KEYS..=200_000).contains(&dequeues), "{dequeues} dequeues");
            }
        }
    }
}
