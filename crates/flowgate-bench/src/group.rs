//! The scatter/gather workload of the `group` bench and the `profile_group`
//! example: `ops` operations in groups of `per_group`, each doubling its
//! message, each group's results gathered by id before the next group starts.
//! Every function returns the sum of all results (`groups · per_group ·
//! (per_group − 1)`), which its caller checks.
//!
//! - [`callgroup_spawn`]: one task per op, each finishing its `Op`;
//! - [`joinset`]: the peer, `JoinSet::spawn` per op and `join_next` until
//!   empty, the results placed by id into a `Vec` (the cheapest gather by id
//!   for dense ids);
//! - [`callgroup_workers`]: the ops sent to long-lived worker tasks over an
//!   mpsc channel, one message per op (a `CallGroup` allows this because an
//!   `Op` is a plain value; a `JoinSet` needs a task per op);
//! - [`callgroup_workers_chunked`]: the same workers, each sent its share of
//!   a group as one `Vec`;
//! - [`callgroup_inline`]: every op finished where it is added — the group's
//!   own bookkeeping.

use std::convert::Infallible;
use std::hint::black_box;

use flowgate::group::{CallGroup, Op, Outcome, Results};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The sum every workload must return for `groups` groups of `per_group`.
pub fn expected(groups: u64, per_group: u64) -> u64 {
    groups * per_group * (per_group - 1)
}

fn sum_results(results: Results<u64, u64, Infallible>) -> u64 {
    results
        .outcomes()
        .iter()
        .map(|outcome| match outcome {
            Outcome::Ok(v) => *v,
            _ => panic!("every op finishes"),
        })
        .sum()
}

/// A `CallGroup` per group, a spawned task per op.
pub async fn callgroup_spawn(groups: u64, per_group: u64) -> u64 {
    let mut total = 0;
    for _ in 0..groups {
        let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(per_group as usize);
        for id in 0..per_group {
            let op = group.add(id, id).unwrap();
            tokio::spawn(async move {
                let doubled = op.msg() * 2;
                op.finish(Ok(doubled));
            });
        }
        total += sum_results(group.wait().await);
    }
    total
}

/// The peer: a `JoinSet` per group, gathered by id.
pub async fn joinset(groups: u64, per_group: u64) -> u64 {
    let mut total = 0;
    for _ in 0..groups {
        let mut set = JoinSet::new();
        for id in 0..per_group {
            set.spawn(async move { (id, id * 2) });
        }
        let mut by_id = vec![None; per_group as usize];
        while let Some(joined) = set.join_next().await {
            let (id, doubled) = joined.unwrap();
            by_id[id as usize] = Some(doubled);
        }
        total += by_id.into_iter().map(Option::unwrap).sum::<u64>();
    }
    total
}

/// A `CallGroup` per group, its ops sent one by one to `workers` long-lived
/// tasks, round robin.
pub async fn callgroup_workers(groups: u64, per_group: u64, workers: u64) -> u64 {
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (tx, mut rx) = mpsc::unbounded_channel::<Op<u64, u64, Infallible>>();
        senders.push(tx);
        tasks.push(tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                let doubled = op.msg() * 2;
                op.finish(Ok(doubled));
            }
        }));
    }
    let mut total = 0;
    for _ in 0..groups {
        let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(per_group as usize);
        for id in 0..per_group {
            let op = group.add(id, id).unwrap();
            senders[(id % workers) as usize].send(op).unwrap();
        }
        total += sum_results(group.wait().await);
    }
    drop(senders);
    for task in tasks {
        task.await.unwrap();
    }
    total
}

/// A `CallGroup` per group, each of `workers` long-lived tasks sent its
/// share of the group as one `Vec`.
pub async fn callgroup_workers_chunked(groups: u64, per_group: u64, workers: u64) -> u64 {
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Op<u64, u64, Infallible>>>();
        senders.push(tx);
        tasks.push(tokio::spawn(async move {
            while let Some(ops) = rx.recv().await {
                for op in ops {
                    let doubled = op.msg() * 2;
                    op.finish(Ok(doubled));
                }
            }
        }));
    }
    let mut total = 0;
    for _ in 0..groups {
        let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(per_group as usize);
        let mut chunks: Vec<Vec<_>> = (0..workers)
            .map(|_| Vec::with_capacity(per_group.div_ceil(workers) as usize))
            .collect();
        for id in 0..per_group {
            chunks[(id % workers) as usize].push(group.add(id, id).unwrap());
        }
        for (sender, chunk) in senders.iter().zip(chunks) {
            sender.send(chunk).unwrap();
        }
        total += sum_results(group.wait().await);
    }
    drop(senders);
    for task in tasks {
        task.await.unwrap();
    }
    total
}

/// A `CallGroup` per group, every op finished where it is added.
pub async fn callgroup_inline(groups: u64, per_group: u64) -> u64 {
    let mut total = 0;
    for _ in 0..groups {
        let mut group = CallGroup::<u64, u64, Infallible>::with_capacity(per_group as usize);
        for id in 0..per_group {
            let op = group.add(id, id).unwrap();
            let doubled = op.msg() * 2;
            op.finish(Ok(doubled));
        }
        total += sum_results(black_box(group.wait().await));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_gathers_every_result() {
        let want = expected(50, 10);
        assert_eq!(callgroup_spawn(50, 10).await, want);
        assert_eq!(joinset(50, 10).await, want);
        assert_eq!(callgroup_workers(50, 10, 3).await, want);
        assert_eq!(callgroup_workers_chunked(50, 10, 3).await, want);
        assert_eq!(callgroup_inline(50, 10).await, want);
    }
}
