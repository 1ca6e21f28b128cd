//! `CallGroup` against a `JoinSet`-based scatter/gather: 1,000,000 operations
//! in 10,000 groups of 100, on a 2-worker runtime. Each operation doubles its
//! message; each group's results are gathered by id before the next group
//! starts. The workloads are in `flowgate_bench::group`:
//!
//! - `flowgate_callgroup_spawn`: one task per op (like the peer), each task
//!   finishing its `Op`;
//! - `tokio_joinset`: `JoinSet::spawn` per op, `join_next` until empty, the
//!   results placed by id into a `Vec`;
//! - `flowgate_callgroup_workers`: the ops sent to two long-lived worker
//!   tasks over an mpsc channel (a `JoinSet` needs a task per op);
//! - `flowgate_callgroup_workers_chunked`: the same workers, each sent its
//!   share of a group's ops as one `Vec`;
//! - `flowgate_callgroup_inline`: every op finished where it is added — the
//!   cost of the group's own bookkeeping.
//!
//! Every row runs twice: with the gathering code in a runtime task (the
//! group `group/1m_ops_in_groups_of_100`), and on the thread that called
//! `block_on` (`…_from_block_on`), where every spawn goes through the
//! runtime's injection queue.
//!
//! Run: `cargo bench -p flowgate-bench --bench group`. For an interleaved
//! run of the rows in one process: `examples/profile_group.rs`.
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use criterion::{Criterion, Throughput};
use flowgate_bench::cpu::Clock;
use flowgate_bench::group::{
    callgroup_inline, callgroup_spawn, callgroup_workers, callgroup_workers_chunked, expected,
    joinset,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

const GROUPS: u64 = 10_000;
const OPS: u64 = 100;
/// Long-lived worker tasks of the `workers` rows.
const WORKERS: u64 = 2;

fn scatter_gather<M: Clock>(c: &mut Criterion<M>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let want = expected(GROUPS, OPS);
    // Where the gathering code runs: in a runtime task, as a request handler
    // or a spawned pipeline does (the ops' tasks are spawned onto its
    // worker's queue, and the completions wake it there), or on the thread
    // that called `block_on` (the body of `#[tokio::main]`, criterion's
    // `to_async`): every spawn then goes through the injection queue and
    // wakes a parked worker, and every completion crosses threads.
    for (placement, in_task) in [("", true), ("_from_block_on", false)] {
        let mut group = c.benchmark_group(M::group_name(format!(
            "group/1m_ops_in_groups_of_100{placement}"
        )));
        group.throughput(Throughput::Elements(GROUPS * OPS));
        group.sample_size(10);
        let mut row = |name: &str, work: fn() -> BoxFuture<'static, u64>| {
            group.bench_function(name, |b| {
                b.to_async(&runtime).iter(|| async {
                    let total = if in_task {
                        tokio::spawn(work()).await.unwrap()
                    } else {
                        work().await
                    };
                    assert_eq!(total, want);
                });
            });
        };
        row("flowgate_callgroup_spawn", || {
            callgroup_spawn(GROUPS, OPS).boxed()
        });
        row("tokio_joinset", || joinset(GROUPS, OPS).boxed());
        row("flowgate_callgroup_workers", || {
            callgroup_workers(GROUPS, OPS, WORKERS).boxed()
        });
        row("flowgate_callgroup_workers_chunked", || {
            callgroup_workers_chunked(GROUPS, OPS, WORKERS).boxed()
        });
        row("flowgate_callgroup_inline", || {
            callgroup_inline(GROUPS, OPS).boxed()
        });
        group.finish();
    }
}

flowgate_bench::wall_and_cpu_main!(scatter_gather);
