//! The data loader: 10,000 concurrent loads over 1,000 distinct keys, through
//! `flowgate::dataloader::DataLoader` and with one backend call per load,
//! side by side. Every backend call sleeps 1 ms of *real* time (tokio's
//! timer, so 1–2 ms) whatever its number of keys; in the `pool16` group at
//! most 16 calls run at once (a database connection pool), in `unbounded`
//! any number do. The workloads are in `src/dataloader.rs`.
//!
//! The loader runs with a cache of the 1,000 keys (as a data loader is
//! normally used: one per request or per job) and without one (it then only
//! merges loads of a key whose fetch is still in progress, so keys loaded
//! after their fetch completed are fetched again). Before measuring, one run
//! of each prints its backend calls and keys fetched.
//!
//! ```text
//! cargo bench -p flowgate-bench --bench dataloader
//! ```
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flowgate_bench::cpu::Clock;
use flowgate_bench::dataloader::{Backend, flowgate_dataloader, one_call_per_load};
use tokio::runtime::Runtime;

const LOADS: u64 = 10_000;
const DISTINCT: u64 = 1_000;
const MAX_BATCH: usize = 100;
const LATENCY: Duration = Duration::from_millis(1);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn dataloader<M: Clock>(c: &mut Criterion<M>) {
    // The calls and keys once per run, not once per pass.
    static REPORTED: AtomicBool = AtomicBool::new(false);
    let report = !REPORTED.swap(true, Ordering::Relaxed);
    let runtime = runtime();
    for (name, pool) in [("pool16", Some(16)), ("unbounded", None)] {
        if report {
            for cache in [true, false] {
                let ours = runtime.block_on(flowgate_dataloader(
                    Backend::new(LATENCY, pool),
                    LOADS,
                    DISTINCT,
                    MAX_BATCH,
                    cache,
                ));
                println!(
                    "dataloader_10000_loads_1000_keys/{name}: flowgate DataLoader (cache: {cache}): {} calls, {} keys",
                    ours.calls, ours.keys
                );
            }
            let peer = runtime.block_on(one_call_per_load(
                Backend::new(LATENCY, pool),
                LOADS,
                DISTINCT,
            ));
            println!(
                "dataloader_10000_loads_1000_keys/{name}: one call per load: {} calls, {} keys",
                peer.calls, peer.keys
            );
        }

        let mut group = c.benchmark_group(M::group_name(format!(
            "dataloader_10000_loads_1000_keys/{name}"
        )));
        group.throughput(Throughput::Elements(LOADS));
        group.sample_size(10);
        for (id, cache) in [
            ("flowgate DataLoader (cache)", true),
            ("flowgate DataLoader (no cache)", false),
        ] {
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.to_async(&runtime).iter(|| {
                    flowgate_dataloader(
                        Backend::new(LATENCY, pool),
                        LOADS,
                        DISTINCT,
                        MAX_BATCH,
                        cache,
                    )
                })
            });
        }
        group.bench_function(BenchmarkId::from_parameter("one call per load"), |b| {
            b.to_async(&runtime)
                .iter(|| one_call_per_load(Backend::new(LATENCY, pool), LOADS, DISTINCT))
        });
        group.finish();
    }
}

flowgate_bench::wall_and_cpu_main!(dataloader);
