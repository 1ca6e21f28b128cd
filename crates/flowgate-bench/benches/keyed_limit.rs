//! `flowgate::limit::KeyedRateLimiter` against governor's keyed limiter
//! (`governor::RateLimiter::keyed`, a `DashMap` with std's SipHash, and the
//! same with foldhash, to separate what the hasher buys), side by side in
//! one run:
//!
//! - `keyed_limit/distinct_1m/*`: `try_acquire` / `check_key` cycling over
//!   1,000,000 distinct `u64` keys, all in the map beforehand (the table,
//!   ~32 MB, is bigger than the cache: this is the cost of a cache miss);
//! - `keyed_limit/hot_16/*`: the same over 16 hot keys (all in cache);
//! - `keyed_limit/hot_16_2_threads/*`: 16 hot keys hammered by two threads
//!   at once (the locks under contention).
//!
//! The rate is 10 per second with a burst of 10 for both (governor's
//! `Quota::per_second(10)`), so both make the same decisions: mostly
//! refusals once a key's burst is spent.
//!
//! Before the timings, it prints the **bytes per key** of each with
//! 1,000,000 keys: live heap bytes counted by a global allocator (every
//! allocation of this binary goes through it; nothing else runs meanwhile),
//! after minus before adding the keys, divided by the keys.
//!
//! ```text
//! cargo bench -p flowgate-bench --bench keyed_limit -- --warm-up-time 1 --measurement-time 5
//! ```
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use criterion::{Criterion, Throughput};
use flowgate::limit::{KeyedRateLimiter, Rate};
use flowgate_bench::cpu::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counter is a plain
// atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEYS: u64 = 1_000_000;
const HOT: u64 = 16;

type GovernorFoldhash = DefaultKeyedRateLimiter<
    u64,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    foldhash::fast::RandomState,
>;

fn flowgate() -> KeyedRateLimiter<u64> {
    KeyedRateLimiter::new(Rate::per_second(10).with_burst(10))
}

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(10).expect("10 > 0"))
}

fn governor() -> DefaultKeyedRateLimiter<u64> {
    governor::RateLimiter::keyed(quota())
}

fn governor_foldhash() -> GovernorFoldhash {
    governor::RateLimiter::dashmap_with_hasher(quota(), foldhash::fast::RandomState::default())
}

/// Heap bytes per key of a limiter holding `KEYS` keys, each checked once.
fn bytes_per_key<L>(make: impl FnOnce() -> L, check: impl Fn(&L, u64)) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let limiter = make();
    for key in 0..KEYS {
        check(&limiter, key);
    }
    let after = LIVE.load(Ordering::Relaxed);
    drop(limiter);
    (after - before) as f64 / KEYS as f64
}

fn memory() {
    let flowgate = bytes_per_key(flowgate, |l, k| {
        let _ = l.try_acquire(&k);
    });
    let governor = bytes_per_key(governor, |l, k| {
        let _ = l.check_key(&k);
    });
    let governor_foldhash = bytes_per_key(governor_foldhash, |l, k| {
        let _ = l.check_key(&k);
    });
    println!("keyed_limit/bytes_per_key (1,000,000 u64 keys, live heap bytes / keys):");
    println!("  flowgate_keyed           {flowgate:6.1}");
    println!("  governor_keyed           {governor:6.1}");
    println!("  governor_keyed_foldhash  {governor_foldhash:6.1}");
}

/// Benches `check` cycling over keys `0..keys`, every key in the map first.
fn cycle<M: Clock, L>(
    group: &mut criterion::BenchmarkGroup<'_, M>,
    name: &str,
    limiter: &L,
    keys: u64,
    check: impl Fn(&L, u64) -> bool,
) {
    for key in 0..keys {
        check(limiter, key);
    }
    let mut key = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            key += 1;
            if key == keys {
                key = 0;
            }
            black_box(check(limiter, black_box(key)))
        });
    });
}

fn single_thread<M: Clock>(c: &mut Criterion<M>) {
    // Once per run, not once per pass: it measures bytes, not time.
    static MEMORY_PRINTED: AtomicBool = AtomicBool::new(false);
    if !MEMORY_PRINTED.swap(true, Ordering::Relaxed) {
        memory();
    }
    for (group_name, keys) in [
        ("keyed_limit/distinct_1m", KEYS),
        ("keyed_limit/hot_16", HOT),
    ] {
        let mut group = c.benchmark_group(M::group_name(group_name));
        group.throughput(Throughput::Elements(1));
        cycle(
            &mut group,
            "flowgate_try_acquire",
            &flowgate(),
            keys,
            |l, k| l.try_acquire(&k).is_ok(),
        );
        cycle(
            &mut group,
            "governor_check_key",
            &governor(),
            keys,
            |l, k| l.check_key(&k).is_ok(),
        );
        cycle(
            &mut group,
            "governor_foldhash_check_key",
            &governor_foldhash(),
            keys,
            |l, k| l.check_key(&k).is_ok(),
        );
        group.finish();
    }
}

/// `iters` checks in all, split between two threads over the hot keys:
/// the span from before the threads start to after both end, on clock `M`
/// (wall time, or the CPU time of the process over that span).
fn two_threads<M: Clock, L: Sync>(
    limiter: &L,
    iters: u64,
    check: impl Fn(&L, u64) -> bool + Sync,
) -> M::Value {
    let ((), span) = M::span(|| {
        std::thread::scope(|s| {
            for thread in 0..2u64 {
                let check = &check;
                s.spawn(move || {
                    for i in 0..iters / 2 {
                        black_box(check(limiter, (i + thread * 7) % HOT));
                    }
                });
            }
        })
    });
    span
}

fn contended<M: Clock>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group(M::group_name("keyed_limit/hot_16_2_threads"));
    group.throughput(Throughput::Elements(1));
    let flowgate = flowgate();
    group.bench_function("flowgate_try_acquire", |b| {
        b.iter_custom(|iters| {
            two_threads::<M, _>(&flowgate, iters, |l, k| l.try_acquire(&k).is_ok())
        });
    });
    let governor = governor();
    group.bench_function("governor_check_key", |b| {
        b.iter_custom(|iters| {
            two_threads::<M, _>(&governor, iters, |l, k| l.check_key(&k).is_ok())
        });
    });
    let governor_foldhash = governor_foldhash();
    group.bench_function("governor_foldhash_check_key", |b| {
        b.iter_custom(|iters| {
            two_threads::<M, _>(&governor_foldhash, iters, |l, k| l.check_key(&k).is_ok())
        });
    });
    group.finish();
}

flowgate_bench::wall_and_cpu_main!(single_thread, contended);
