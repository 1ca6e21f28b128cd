//! `OpQueue` against the naive coalescing queue: a `Mutex<(VecDeque,
//! HashMap)>` with a `Notify`, which is what one writes by hand (and what the
//! Go seed is).
//!
//! Workloads, each with 1,000 distinct keys and 100,000 items (key = i % 1000):
//! - `1p1c`: one producer task and one consumer task on a 2-worker runtime,
//!   the consumer taking entries until it has seen every item;
//! - `fill_drain`: one task enqueues everything, then dequeues everything —
//!   the data structure alone, no cross-thread wake-ups.
//!
//! And one workload without coalescing, `fill_drain_10000_distinct_string_keys`:
//! 10,000 distinct `String` keys, one item each.
//!
//! `waiting_1m_items_width_100` (issue 18; `flowgate_bench::coalesce`):
//! 1,000,000 items, 1,000 keys, depth 1,000, width 100, producers that *wait*
//! for room (`OpQueue::enqueue`) and consumers that wait for entries, with
//! 1 producer / 1 consumer and 4 producers / 2 consumers, against a careful
//! hand-written queue (the naive structure with a `Notify` each way).
//!
//! Run: `cargo bench -p flowgate-bench --bench coalesce`
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{Criterion, Throughput};
use flowgate::coalesce::OpQueue;
use flowgate_bench::cpu::Clock;
use tokio::sync::Notify;

const KEYS: u64 = 1_000;
const ITEMS: u64 = 100_000;
const DEPTH: usize = 1_000;
const WIDTH: usize = 1_024;

/// The naive baseline: keys in a deque, sets in a map, a `Notify` poked on
/// every enqueue. `S` is the map's hasher: std's SipHash by default, as one
/// writes it; the `_foldhash` rows give it OpQueue's hasher, to separate what
/// the hasher buys from what the structure does.
struct Naive<K, T, S = std::collections::hash_map::RandomState> {
    inner: Mutex<KeysAndSets<K, T, S>>,
    notify: Notify,
    depth: usize,
    width: usize,
}

type KeysAndSets<K, T, S> = (VecDeque<K>, HashMap<K, Vec<T>, S>);

type NaiveFoldhash<K, T> = Naive<K, T, foldhash::fast::RandomState>;

impl<K: Hash + Eq + Clone, T, S: std::hash::BuildHasher + Default> Naive<K, T, S> {
    fn new(depth: usize, width: usize) -> Self {
        Naive {
            inner: Mutex::new((VecDeque::new(), HashMap::default())),
            notify: Notify::new(),
            depth,
            width,
        }
    }

    fn enqueue(&self, key: K, item: T) -> Result<(), (K, T)> {
        {
            let mut guard = self.inner.lock().unwrap();
            let (order, sets) = &mut *guard;
            match sets.get_mut(&key) {
                Some(set) if set.len() >= self.width => return Err((key, item)),
                Some(set) => set.push(item),
                None if order.len() >= self.depth => return Err((key, item)),
                None => {
                    order.push_back(key.clone());
                    sets.insert(key, vec![item]);
                }
            }
        }
        self.notify.notify_one();
        Ok(())
    }

    fn try_dequeue(&self) -> Option<(K, Vec<T>)> {
        let mut guard = self.inner.lock().unwrap();
        let (order, sets) = &mut *guard;
        let key = order.pop_front()?;
        let set = sets.remove(&key).expect("queued keys have a set");
        Some((key, set))
    }

    async fn dequeue(&self) -> (K, Vec<T>) {
        loop {
            if let Some(entry) = self.try_dequeue() {
                return entry;
            }
            self.notify.notified().await;
        }
    }
}

fn one_producer_one_consumer<M: Clock>(c: &mut Criterion<M>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group(M::group_name("coalesce/1p1c_1000_keys"));
    group.throughput(Throughput::Elements(ITEMS));

    group.bench_function("flowgate_opqueue", |b| {
        b.to_async(&runtime).iter(|| async {
            let (queue, consumer) = OpQueue::<u64, u64>::new(DEPTH, WIDTH);
            let producer = tokio::spawn(async move {
                for i in 0..ITEMS {
                    queue.try_enqueue(i % KEYS, i).unwrap();
                }
            });
            let mut seen = 0;
            let mut dequeues = 0u64;
            while seen < ITEMS {
                let (_, items) = consumer.dequeue().await.unwrap();
                seen += items.len() as u64;
                dequeues += 1;
                black_box(items);
            }
            producer.await.unwrap();
            dequeues
        });
    });

    group.bench_function("flowgate_opqueue_dequeue_many", |b| {
        b.to_async(&runtime).iter(|| async {
            let (queue, consumer) = OpQueue::<u64, u64>::new(DEPTH, WIDTH);
            let producer = tokio::spawn(async move {
                for i in 0..ITEMS {
                    queue.try_enqueue(i % KEYS, i).unwrap();
                }
            });
            let mut seen = 0;
            let mut buffer = Vec::with_capacity(64);
            while seen < ITEMS {
                consumer.dequeue_many(&mut buffer, 64).await;
                for (_, items) in buffer.drain(..) {
                    seen += items.len() as u64;
                    black_box(items);
                }
            }
            producer.await.unwrap();
        });
    });

    group.bench_function("naive_mutex_vecdeque_hashmap_notify", |b| {
        b.to_async(&runtime)
            .iter(|| naive_1p1c(Arc::new(Naive::<u64, u64>::new(DEPTH, WIDTH))));
    });

    group.bench_function("naive_mutex_vecdeque_hashmap_notify_foldhash", |b| {
        b.to_async(&runtime)
            .iter(|| naive_1p1c(Arc::new(NaiveFoldhash::<u64, u64>::new(DEPTH, WIDTH))));
    });
    group.finish();
}

async fn naive_1p1c<S>(queue: Arc<Naive<u64, u64, S>>) -> u64
where
    S: std::hash::BuildHasher + Default + Send + Sync + 'static,
{
    let producer = {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            for i in 0..ITEMS {
                queue.enqueue(i % KEYS, i).map_err(|_| ()).unwrap();
            }
        })
    };
    let mut seen = 0;
    let mut dequeues = 0u64;
    while seen < ITEMS {
        let (_, items) = queue.dequeue().await;
        seen += items.len() as u64;
        dequeues += 1;
        black_box(items);
    }
    producer.await.unwrap();
    dequeues
}

/// Issue 18's workload: waiting producers and consumers, 1M items.
fn waiting<M: Clock>(c: &mut Criterion<M>) {
    use flowgate_bench::coalesce::{flowgate_opqueue, naive_queue};
    const ITEMS: u64 = 1_000_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group(M::group_name("coalesce/waiting_1m_items_width_100"));
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    for (producers, consumers) in [(1, 1), (4, 2)] {
        group.bench_function(format!("flowgate_opqueue_{producers}p{consumers}c"), |b| {
            b.to_async(&runtime)
                .iter(|| flowgate_opqueue(ITEMS, producers, consumers));
        });
        group.bench_function(format!("naive_{producers}p{consumers}c"), |b| {
            b.to_async(&runtime)
                .iter(|| naive_queue(ITEMS, producers, consumers));
        });
    }
    group.finish();
}

fn fill_then_drain<M: Clock>(c: &mut Criterion<M>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group(M::group_name("coalesce/fill_drain_1000_keys"));
    group.throughput(Throughput::Elements(ITEMS));

    group.bench_function("flowgate_opqueue", |b| {
        b.to_async(&runtime).iter(|| async {
            let (queue, consumer) = OpQueue::<u64, u64>::new(DEPTH, WIDTH);
            for i in 0..ITEMS {
                queue.try_enqueue(i % KEYS, i).unwrap();
            }
            let mut seen = 0;
            while let Ok((_, items)) = consumer.try_dequeue() {
                seen += items.len();
                black_box(items);
            }
            assert_eq!(seen as u64, ITEMS);
        });
    });

    group.bench_function("flowgate_opqueue_string_keys", |b| {
        let keys: Vec<String> = (0..KEYS).map(|k| format!("user:{k:08}")).collect();
        b.to_async(&runtime).iter(|| async {
            let (queue, consumer) = OpQueue::<String, u64>::new(DEPTH, WIDTH);
            for i in 0..ITEMS {
                queue
                    .try_enqueue(keys[(i % KEYS) as usize].clone(), i)
                    .unwrap();
            }
            while let Ok(entry) = consumer.try_dequeue() {
                black_box(entry);
            }
        });
    });

    group.bench_function("naive_mutex_vecdeque_hashmap_notify", |b| {
        b.to_async(&runtime).iter(|| async {
            let queue = Naive::<u64, u64>::new(DEPTH, WIDTH);
            for i in 0..ITEMS {
                queue.enqueue(i % KEYS, i).map_err(|_| ()).unwrap();
            }
            let mut seen = 0;
            while let Some((_, items)) = queue.try_dequeue() {
                seen += items.len();
                black_box(items);
            }
            assert_eq!(seen as u64, ITEMS);
        });
    });

    group.bench_function("naive_mutex_vecdeque_hashmap_notify_foldhash", |b| {
        b.to_async(&runtime).iter(|| async {
            let queue = NaiveFoldhash::<u64, u64>::new(DEPTH, WIDTH);
            for i in 0..ITEMS {
                queue.enqueue(i % KEYS, i).map_err(|_| ()).unwrap();
            }
            while let Some(entry) = queue.try_dequeue() {
                black_box(entry);
            }
        });
    });

    group.bench_function("naive_mutex_vecdeque_hashmap_notify_string_keys", |b| {
        let keys: Vec<String> = (0..KEYS).map(|k| format!("user:{k:08}")).collect();
        b.to_async(&runtime).iter(|| async {
            let queue = Naive::<String, u64>::new(DEPTH, WIDTH);
            for i in 0..ITEMS {
                queue
                    .enqueue(keys[(i % KEYS) as usize].clone(), i)
                    .map_err(|_| ())
                    .unwrap();
            }
            while let Some(entry) = queue.try_dequeue() {
                black_box(entry);
            }
        });
    });
    group.finish();
}

/// No coalescing at all: 10,000 distinct `String` keys, one item each. Every
/// enqueue creates an entry and every dequeue removes one, which is where the
/// naive queue clones the key into its deque and hashes it again at dequeue.
fn distinct_keys<M: Clock>(c: &mut Criterion<M>) {
    const DISTINCT: usize = 10_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keys: Vec<String> = (0..DISTINCT)
        .map(|k| format!("tenant-{}/user:{k:08}", k % 7))
        .collect();
    let mut group = c.benchmark_group(M::group_name(
        "coalesce/fill_drain_10000_distinct_string_keys",
    ));
    group.throughput(Throughput::Elements(DISTINCT as u64));

    group.bench_function("flowgate_opqueue", |b| {
        b.to_async(&runtime).iter(|| async {
            let (queue, consumer) = OpQueue::<String, u64>::new(DISTINCT, 16);
            for (i, key) in keys.iter().enumerate() {
                queue.try_enqueue(key.clone(), i as u64).unwrap();
            }
            while let Ok(entry) = consumer.try_dequeue() {
                black_box(entry);
            }
        });
    });

    group.bench_function("naive_mutex_vecdeque_hashmap_notify", |b| {
        b.to_async(&runtime).iter(|| async {
            let queue = Naive::<String, u64>::new(DISTINCT, 16);
            for (i, key) in keys.iter().enumerate() {
                queue
                    .enqueue(key.clone(), i as u64)
                    .map_err(|_| ())
                    .unwrap();
            }
            while let Some(entry) = queue.try_dequeue() {
                black_box(entry);
            }
        });
    });

    group.bench_function("naive_mutex_vecdeque_hashmap_notify_foldhash", |b| {
        b.to_async(&runtime).iter(|| async {
            let queue = NaiveFoldhash::<String, u64>::new(DISTINCT, 16);
            for (i, key) in keys.iter().enumerate() {
                queue
                    .enqueue(key.clone(), i as u64)
                    .map_err(|_| ())
                    .unwrap();
            }
            while let Some(entry) = queue.try_dequeue() {
                black_box(entry);
            }
        });
    });
    group.finish();
}

flowgate_bench::wall_and_cpu_main!(
    one_producer_one_consumer,
    waiting,
    fill_then_drain,
    distinct_keys
);
