//! Fan-in batching with per-item acknowledgement: `flowgate::batch::Batcher`
//! (with `submit_and_wait`, and with `submit` then `ack.await`) against the
//! straightforward tokio design (mpsc of `(item, oneshot)` plus a `recv_many`
//! flusher), side by side. The workloads are in `src/batch.rs`.
//!
//! ```text
//! cargo bench -p flowgate-bench --bench batch
//! ```
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flowgate_bench::batch::{
    flowgate_batcher, flowgate_submit_and_wait, scheduling_floor, tokio_mpsc_oneshot,
};
use flowgate_bench::cpu::Clock;
use tokio::runtime::Runtime;

const ITEMS: u64 = 1_000_000;

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

fn fan_in<M: Clock>(c: &mut Criterion<M>) {
    for (flavor, runtime) in runtimes() {
        let mut group =
            c.benchmark_group(M::group_name(format!("batch_fan_in_1000x1000/{flavor}")));
        group.throughput(Throughput::Elements(ITEMS));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(15));
        group.bench_function(
            BenchmarkId::from_parameter("flowgate Batcher submit_and_wait"),
            |b| {
                b.to_async(&runtime)
                    .iter(|| flowgate_submit_and_wait(ITEMS))
            },
        );
        group.bench_function(
            BenchmarkId::from_parameter("flowgate Batcher submit+ack"),
            |b| b.to_async(&runtime).iter(|| flowgate_batcher(ITEMS)),
        );
        group.bench_function(BenchmarkId::from_parameter("tokio mpsc+oneshot"), |b| {
            b.to_async(&runtime).iter(|| tokio_mpsc_oneshot(ITEMS))
        });
        // Not a peer: the same tasks and wake-ups with no batcher at all, to
        // show how much of each figure is the runtime's.
        group.bench_function(
            BenchmarkId::from_parameter("reference: scheduling floor"),
            |b| b.to_async(&runtime).iter(|| scheduling_floor(ITEMS)),
        );
        group.finish();
    }
}

flowgate_bench::wall_and_cpu_main!(fan_in);
