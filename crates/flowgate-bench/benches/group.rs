//! `CallGroup` against a `JoinSet`-based scatter/gather: 1,000,000 operations
//! in 10,000 groups of 100, on a 2-worker runtime. Each operation doubles its
//! message; each group's results are gathered by id before the next group
//! starts.
//!
//! - `flowgate_callgroup_spawn`: one task per op (like the peer), each task
//!   finishing its `Op`;
//! - `tokio_joinset`: `JoinSet::spawn` per op, `join_next` until empty, the
//!   results placed by id into a `Vec` (the cheapest gather by id for dense
//!   ids);
//! - `flowgate_callgroup_workers`: the ops are sent to two long-lived worker
//!   tasks over an mpsc channel, which a `CallGroup` allows because an `Op` is
//!   a plain value (a `JoinSet` needs a task per op);
//! - `flowgate_callgroup_workers_chunked`: the same workers, each sent its
//!   share of a group's ops as one `Vec` (one channel message and at most
//!   one wake-up per worker per group);
//! - `flowgate_callgroup_inline`: every op finished where it is added — the
//!   cost of the group's own bookkeeping.
//!
//! Run: `cargo bench -p flowgate-bench --bench group`
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, Throughput};
use flowgate::group::{CallGroup, Op};
use flowgate_bench::cpu::Clock;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

const GROUPS: u64 = 10_000;
const OPS: u64 = 100;
/// Long-lived worker tasks of the `workers` rows.
const WORKERS: u64 = 2;

fn sum_results(results: flowgate::group::Results<u64, u64, Infallible>) -> u64 {
    results
        .outcomes()
        .iter()
        .map(|outcome| match outcome {
            flowgate::group::Outcome::Ok(v) => *v,
            _ => panic!("every op finishes"),
        })
        .sum()
}

fn scatter_gather<M: Clock>(c: &mut Criterion<M>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group(M::group_name("group/1m_ops_in_groups_of_100"));
    group.throughput(Throughput::Elements(GROUPS * OPS));
    group.sample_size(10);

    group.bench_function("flowgate_callgroup_spawn", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut total = 0;
            for _ in 0..GROUPS {
                let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(OPS as usize);
                for id in 0..OPS {
                    let op = group.add(id, id).unwrap();
                    tokio::spawn(async move {
                        let doubled = op.msg() * 2;
                        op.finish(Ok(doubled));
                    });
                }
                total += sum_results(group.wait().await);
            }
            assert_eq!(total, GROUPS * OPS * (OPS - 1));
        });
    });

    group.bench_function("tokio_joinset", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut total = 0;
            for _ in 0..GROUPS {
                let mut set = JoinSet::new();
                for id in 0..OPS {
                    set.spawn(async move { (id, id * 2) });
                }
                let mut by_id = vec![None; OPS as usize];
                while let Some(joined) = set.join_next().await {
                    let (id, doubled) = joined.unwrap();
                    by_id[id as usize] = Some(doubled);
                }
                total += by_id.into_iter().map(Option::unwrap).sum::<u64>();
            }
            assert_eq!(total, GROUPS * OPS * (OPS - 1));
        });
    });

    group.bench_function("flowgate_callgroup_workers", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut senders = Vec::new();
            let mut workers = Vec::new();
            for _ in 0..2 {
                let (tx, mut rx) = mpsc::unbounded_channel::<Op<u64, u64, Infallible>>();
                senders.push(tx);
                workers.push(tokio::spawn(async move {
                    while let Some(op) = rx.recv().await {
                        let doubled = op.msg() * 2;
                        op.finish(Ok(doubled));
                    }
                }));
            }
            let mut total = 0;
            for _ in 0..GROUPS {
                let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(OPS as usize);
                for id in 0..OPS {
                    let op = group.add(id, id).unwrap();
                    senders[(id % 2) as usize].send(op).unwrap();
                }
                total += sum_results(group.wait().await);
            }
            drop(senders);
            for worker in workers {
                worker.await.unwrap();
            }
            assert_eq!(total, GROUPS * OPS * (OPS - 1));
        });
    });

    group.bench_function("flowgate_callgroup_workers_chunked", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut senders = Vec::new();
            let mut workers = Vec::new();
            for _ in 0..WORKERS {
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Op<u64, u64, Infallible>>>();
                senders.push(tx);
                workers.push(tokio::spawn(async move {
                    while let Some(ops) = rx.recv().await {
                        for op in ops {
                            let doubled = op.msg() * 2;
                            op.finish(Ok(doubled));
                        }
                    }
                }));
            }
            let mut total = 0;
            for _ in 0..GROUPS {
                let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(OPS as usize);
                let mut chunks: Vec<Vec<_>> = (0..WORKERS)
                    .map(|_| Vec::with_capacity((OPS / WORKERS) as usize))
                    .collect();
                for id in 0..OPS {
                    chunks[(id % WORKERS) as usize].push(group.add(id, id).unwrap());
                }
                for (sender, chunk) in senders.iter().zip(chunks) {
                    sender.send(chunk).unwrap();
                }
                total += sum_results(group.wait().await);
            }
            drop(senders);
            for worker in workers {
                worker.await.unwrap();
            }
            assert_eq!(total, GROUPS * OPS * (OPS - 1));
        });
    });

    group.bench_function("flowgate_callgroup_inline", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut total = 0;
            for _ in 0..GROUPS {
                let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(OPS as usize);
                for id in 0..OPS {
                    let op = group.add(id, id).unwrap();
                    let doubled = op.msg() * 2;
                    op.finish(Ok(doubled));
                }
                total += sum_results(black_box(group.wait().await));
            }
            assert_eq!(total, GROUPS * OPS * (OPS - 1));
        });
    });
    group.finish();
}

flowgate_bench::wall_and_cpu_main!(scatter_gather);
