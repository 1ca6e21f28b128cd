//! What keys cost: `flowgate::batch::KeyedBatcher` against the plain
//! `Batcher` on the fan-in workload of `benches/batch.rs` (submitter tasks
//! each awaiting its item's `submit_and_wait` before submitting the next, a
//! no-op flush), side by side.
//!
//! - `1000x1000`: 1000 submitters, `max_items` 1000, 1,000,000 items: the
//!   plain batcher, and the keyed one with every item under one key (the
//!   overhead of keys: hashing, the table probe, the open-batch index).
//! - `16_keys`: 1008 submitters, 63 per key, `max_items` 63, 999,936 items:
//!   what one would write without keys, 16 plain batchers (one per key, each
//!   with its own worker); the keyed batcher with 16 keys; and with 16 keys,
//!   `one_flush_per_key` and `flush_concurrency` 4.
//!
//! (Not one plain batcher with `max_items` 63 for the 1008 submitters: its
//! batches mix submitters that then drift apart, and at the end the last
//! few wait for `max_delay` round after round, which measures the delay.)
//!
//! ```text
//! cargo bench -p flowgate-bench --bench batch_keyed
//! ```
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flowgate::batch::{Batcher, KeyedBatcher};
use flowgate_bench::cpu::Clock;
use tokio::runtime::Runtime;

/// Delay bound of a batch (never reached while submitters keep up).
const MAX_DELAY: Duration = Duration::from_millis(50);

/// One shape of the workload.
#[derive(Clone, Copy)]
struct Shape {
    submitters: u64,
    items_per_submitter: u64,
    keys: u64,
}

impl Shape {
    fn items(self) -> u64 {
        self.submitters * self.items_per_submitter
    }

    /// Every round fills each key's batch exactly.
    fn max_items(self) -> usize {
        (self.submitters / self.keys) as usize
    }

    fn capacity(self) -> usize {
        2 * self.submitters as usize
    }
}

const ONE_KEY: Shape = Shape {
    submitters: 1000,
    items_per_submitter: 1000,
    keys: 1,
};

const SIXTEEN_KEYS: Shape = Shape {
    submitters: 1008,
    items_per_submitter: 992,
    keys: 16,
};

/// One plain batcher per key: submitter `s` submits to batcher `s % keys`.
async fn plain(shape: Shape) {
    let batchers: Vec<Batcher<u64>> = (0..shape.keys)
        .map(|_| {
            Batcher::builder()
                .max_items(shape.max_items())
                .capacity(shape.capacity())
                .max_delay(MAX_DELAY)
                .build(|items: Vec<u64>| {
                    black_box(items);
                    std::future::ready(Ok::<(), Infallible>(()))
                })
                .expect("valid configuration")
        })
        .collect();
    let mut tasks = Vec::with_capacity(shape.submitters as usize);
    for s in 0..shape.submitters {
        let batcher = batchers[(s % shape.keys) as usize].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..shape.items_per_submitter {
                batcher
                    .submit_and_wait(s * 1_000_000 + i)
                    .await
                    .expect("flushed");
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter panicked");
    }
    for batcher in batchers {
        batcher.close().await;
    }
}

/// The keyed batcher: submitter `s` submits under key `s % keys`.
async fn keyed(shape: Shape, one_flush_per_key: bool, flush_concurrency: usize) {
    let batcher: KeyedBatcher<u64, u64> = KeyedBatcher::builder()
        .max_items(shape.max_items())
        .capacity(shape.capacity())
        .max_delay(MAX_DELAY)
        .one_flush_per_key(one_flush_per_key)
        .flush_concurrency(flush_concurrency)
        .build(|key: u64, items: Vec<u64>| {
            black_box((key, items));
            std::future::ready(Ok::<(), Infallible>(()))
        })
        .expect("valid configuration");
    let mut tasks = Vec::with_capacity(shape.submitters as usize);
    for s in 0..shape.submitters {
        let batcher = batcher.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..shape.items_per_submitter {
                batcher
                    .submit_and_wait(s % shape.keys, s * 1_000_000 + i)
                    .await
                    .expect("flushed");
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter panicked");
    }
    batcher.close().await;
}

fn runtimes() -> Vec<(&'static str, Runtime)> {
    vec![
        (
            "multi_thread(2)",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "current_thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
    ]
}

fn keys<M: Clock>(c: &mut Criterion<M>) {
    for (flavor, runtime) in runtimes() {
        let mut group = c.benchmark_group(M::group_name(format!("batch_keyed_1000x1000/{flavor}")));
        group.throughput(Throughput::Elements(ONE_KEY.items()));
        group.sample_size(10);
        group.bench_function(BenchmarkId::from_parameter("Batcher"), |b| {
            b.to_async(&runtime).iter(|| plain(ONE_KEY))
        });
        group.bench_function(BenchmarkId::from_parameter("KeyedBatcher, 1 key"), |b| {
            b.to_async(&runtime).iter(|| keyed(ONE_KEY, false, 1))
        });
        group.finish();

        let mut group = c.benchmark_group(M::group_name(format!("batch_keyed_16_keys/{flavor}")));
        group.throughput(Throughput::Elements(SIXTEEN_KEYS.items()));
        group.sample_size(10);
        group.bench_function(
            BenchmarkId::from_parameter("16 Batchers, one per key"),
            |b| b.to_async(&runtime).iter(|| plain(SIXTEEN_KEYS)),
        );
        group.bench_function(BenchmarkId::from_parameter("KeyedBatcher, 16 keys"), |b| {
            b.to_async(&runtime).iter(|| keyed(SIXTEEN_KEYS, false, 1))
        });
        group.bench_function(
            BenchmarkId::from_parameter("KeyedBatcher, 16 keys, one_flush_per_key, 4 flushes"),
            |b| b.to_async(&runtime).iter(|| keyed(SIXTEEN_KEYS, true, 4)),
        );
        group.finish();
    }
}

flowgate_bench::wall_and_cpu_main!(keys);
