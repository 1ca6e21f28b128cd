//! `flowgate::pipeline` against its peers, side by side in one run:
//!
//! - `par_map/*`: `par_map(64)` and `par_map_unordered(64)` over 2,000,000
//!   trivial items, against `futures`' `buffered(64)` and
//!   `buffer_unordered(64)`.
//! - `rate_limiter/*`: the per-item cost of a limiter that never has to wait,
//!   `RateLimiter::check` and the `rate_limit` stage against `governor` used
//!   directly (`RateLimiter::direct(..).check()` and its `ratelimit_stream`).
//!
//! ```text
//! cargo bench -p flowgate-bench --bench pipeline
//! ```
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::future::ready;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use flowgate::limit::{Rate, RateLimiter};
use flowgate::prelude::*;
use flowgate_bench::cpu::Clock;
use futures_util::{StreamExt, stream};
use governor::Quota;
use governor::prelude::StreamRateLimitExt;

const ITEMS: u64 = 2_000_000;
const LIMIT: usize = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Sums a stream, so nothing is optimised away.
async fn sum(s: impl futures_util::Stream<Item = u64>) -> u64 {
    s.fold(0u64, |acc, x| ready(acc.wrapping_add(x))).await
}

fn par_map<M: Clock>(c: &mut Criterion<M>) {
    let rt = runtime();
    let mut group = c.benchmark_group(M::group_name("par_map"));
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);

    group.bench_function("flowgate_par_map_64", |b| {
        b.iter(|| {
            rt.block_on(sum(
                stream::iter(0..black_box(ITEMS)).par_map(LIMIT, |x| ready(x + 1))
            ))
        });
    });
    group.bench_function("futures_buffered_64", |b| {
        b.iter(|| {
            rt.block_on(sum(stream::iter(0..black_box(ITEMS))
                .map(|x| ready(x + 1))
                .buffered(LIMIT)))
        });
    });
    group.bench_function("flowgate_par_map_unordered_64", |b| {
        b.iter(|| {
            rt.block_on(sum(
                stream::iter(0..black_box(ITEMS)).par_map_unordered(LIMIT, |x| ready(x + 1))
            ))
        });
    });
    group.bench_function("futures_buffer_unordered_64", |b| {
        b.iter(|| {
            rt.block_on(sum(stream::iter(0..black_box(ITEMS))
                .map(|x| ready(x + 1))
                .buffer_unordered(LIMIT)))
        });
    });
    group.finish();
}

/// A rate nothing reaches: every check passes, so only the cost is measured.
const PER_SECOND: u32 = 1_000_000_000;
const BURST: u32 = 1_000_000;

fn rate_limiter<M: Clock>(c: &mut Criterion<M>) {
    let rt = runtime();
    let mut group = c.benchmark_group(M::group_name("rate_limiter"));
    const N: u64 = 100_000;
    group.throughput(Throughput::Elements(N));

    group.bench_function("flowgate_check", |b| {
        b.iter_batched(
            || RateLimiter::new(Rate::new(PER_SECOND, Duration::from_secs(1), BURST).unwrap()),
            |limiter| {
                for _ in 0..N {
                    black_box(limiter.try_acquire()).unwrap();
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("governor_check", |b| {
        let quota = Quota::per_second(NonZeroU32::new(PER_SECOND).unwrap())
            .allow_burst(NonZeroU32::new(BURST).unwrap());
        b.iter_batched(
            || governor::RateLimiter::direct(quota),
            |limiter| {
                for _ in 0..N {
                    black_box(limiter.check()).unwrap();
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("flowgate_rate_limit_stream", |b| {
        b.iter_batched(
            || RateLimiter::new(Rate::new(PER_SECOND, Duration::from_secs(1), BURST).unwrap()),
            |limiter| rt.block_on(sum(stream::iter(0..N).rate_limit(limiter))),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("governor_ratelimit_stream", |b| {
        let quota = Quota::per_second(NonZeroU32::new(PER_SECOND).unwrap())
            .allow_burst(NonZeroU32::new(BURST).unwrap());
        b.iter_batched(
            || governor::RateLimiter::direct(quota),
            |limiter| rt.block_on(sum(stream::iter(0..N).ratelimit_stream(&limiter))),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

flowgate_bench::wall_and_cpu_main!(par_map, rate_limiter);
