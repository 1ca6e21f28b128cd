//! `par_map_keyed` and the `spawned` mode, side by side in one run:
//!
//! - `par_map_keyed/*`: the cost of keys. 1,000,000 trivial items through
//!   `par_map(64)` (the reference), `par_map_keyed(64, 1)` and
//!   `par_map_keyed_unordered(64, 1)` with every key distinct (nothing ever
//!   waits: the keyed stage's bookkeeping alone), and with 16 keys (items
//!   wait for their key).
//! - `spawned/*`: a CPU-bound map (about 20 µs of work per item, 20,000
//!   items) on a 2-worker runtime: inline `par_map(8, f)` (every call polled
//!   by the consumer's task: one core), `par_map(8, spawned(f))`, and the
//!   loop a good engineer writes by hand, `map(|x| tokio::spawn(f(x)))
//!   .buffered(8)`.
//!
//! ```text
//! cargo bench -p flowgate-bench --bench par_map_keyed
//! ```
//!
//! The 1 ms wait of the issue's 16-key comparison (seconds per run) is in
//! `src/bin/keyed-sleep.rs`.
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::future::ready;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use flowgate::pipeline::spawned;
use flowgate::prelude::*;
use flowgate_bench::cpu::Clock;
use futures_util::{StreamExt, stream};

const ITEMS: u64 = 1_000_000;
const LIMIT: usize = 64;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Sums a stream, so nothing is optimised away.
async fn sum(s: impl futures_util::Stream<Item = u64>) -> u64 {
    s.fold(0u64, |acc, x| ready(acc.wrapping_add(x))).await
}

fn keyed<M: Clock>(c: &mut Criterion<M>) {
    let rt = current_thread();
    let mut group = c.benchmark_group(M::group_name("par_map_keyed"));
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);

    group.bench_function("flowgate_par_map_64", |b| {
        b.iter(|| {
            rt.block_on(sum(
                stream::iter(0..black_box(ITEMS)).par_map(LIMIT, |x| ready(x + 1))
            ))
        });
    });
    group.bench_function("flowgate_par_map_keyed_64_distinct", |b| {
        b.iter(|| {
            rt.block_on(sum(stream::iter(0..black_box(ITEMS)).par_map_keyed(
                LIMIT,
                1,
                |x| *x,
                |x| ready(x + 1),
            )))
        });
    });
    group.bench_function("flowgate_par_map_keyed_unordered_64_distinct", |b| {
        b.iter(|| {
            rt.block_on(sum(stream::iter(0..black_box(ITEMS))
                .par_map_keyed_unordered(LIMIT, 1, |x| *x, |x| ready(x + 1))))
        });
    });
    group.bench_function("flowgate_par_map_keyed_64_16keys", |b| {
        b.iter(|| {
            rt.block_on(sum(stream::iter(0..black_box(ITEMS)).par_map_keyed(
                LIMIT,
                1,
                |x| *x % 16,
                |x| ready(x + 1),
            )))
        });
    });
    group.finish();
}

/// How many rounds of [`work`] take about 20 µs on this machine, measured
/// once before the runs (the first call; later calls, as the CPU pass's,
/// return the same, so both passes run the same work).
fn calibrate() -> u64 {
    static ROUNDS: OnceLock<u64> = OnceLock::new();
    *ROUNDS.get_or_init(measure_rounds)
}

fn measure_rounds() -> u64 {
    let rounds = 100_000;
    let start = Instant::now();
    black_box(work(0, rounds));
    let per_round = start.elapsed().as_secs_f64() / rounds as f64;
    ((20e-6 / per_round) as u64).max(1)
}

/// CPU-bound work: a chain of multiply-xorshift rounds.
fn work(seed: u64, rounds: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
    }
    black_box(x)
}

fn spawned_mode<M: Clock>(c: &mut Criterion<M>) {
    const N: u64 = 20_000;
    let rounds = calibrate();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group(M::group_name("spawned"));
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    // The consumer runs as a task of the runtime, as a pipeline in a
    // service does (block_on's thread is not a worker).
    group.bench_function("flowgate_par_map_inline_8", |b| {
        b.iter(|| {
            rt.block_on(async {
                tokio::spawn(sum(
                    stream::iter(0..N).par_map(8, move |x| async move { work(x, rounds) })
                ))
                .await
                .unwrap()
            })
        });
    });
    group.bench_function("flowgate_par_map_spawned_8", |b| {
        b.iter(|| {
            rt.block_on(async {
                tokio::spawn(sum(
                    stream::iter(0..N).par_map(8, spawned(move |x| async move { work(x, rounds) }))
                ))
                .await
                .unwrap()
            })
        });
    });
    group.bench_function("hand_spawn_buffered_8", |b| {
        b.iter(|| {
            rt.block_on(async {
                tokio::spawn(sum(stream::iter(0..N)
                    .map(move |x| async move {
                        tokio::spawn(async move { work(x, rounds) }).await.unwrap()
                    })
                    .buffered(8)))
                .await
                .unwrap()
            })
        });
    });
    group.bench_function("flowgate_par_map_keyed_spawned_8_16keys", |b| {
        b.iter(|| {
            rt.block_on(async {
                tokio::spawn(sum(stream::iter(0..N).par_map_keyed(
                    8,
                    1,
                    |x| *x % 16,
                    spawned(move |x| async move { work(x, rounds) }),
                )))
                .await
                .unwrap()
            })
        });
    });
    group.finish();
}

flowgate_bench::wall_and_cpu_main!(keyed, spawned_mode);
