//! Lossless broadcast: one publisher, 1 / 4 / 16 subscribers, 1,000,000 `u64`
//! events, every subscriber receiving every event.
//!
//! Peers, in the same group so they are measured side by side:
//! - `tokio::sync::broadcast` with a capacity of at least the event count,
//!   its only setting that loses nothing (a smaller one drops events for
//!   slow receivers and reports `Lagged`);
//! - `async-broadcast` with capacity 1024 (it waits for room when full, so it
//!   is lossless);
//! - flowgate unbounded (`Publisher`, the default) and bounded with the same
//!   1024 as async-broadcast (`BoundedPublisher`).
//!
//! Every run spawns the subscribers and the publisher as tasks on a
//! two-worker tokio runtime and ends when every subscriber has counted all
//! events (each asserts the count and the sum, so nothing may be lost).
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flowgate::broadcast::{BoundedPublisher, Publisher};
use flowgate_bench::cpu::Clock;
use futures_util::StreamExt;
use tokio::runtime::Runtime;

const EVENTS: u64 = 1_000_000;
const SUM: u64 = EVENTS * (EVENTS - 1) / 2;
const BOUNDED_CAPACITY: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        task.await.expect("task panicked");
    }
}

fn check(count: u64, sum: u64) {
    assert_eq!(count, EVENTS, "an event was lost");
    assert_eq!(sum, SUM, "an event was corrupted");
}

async fn flowgate_unbounded(subscribers: usize) {
    let mut publisher = Publisher::new();
    let mut tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut sub = publisher.subscribe();
            tokio::spawn(async move {
                let (mut count, mut sum) = (0, 0);
                while let Some(v) = sub.recv().await {
                    count += 1;
                    sum += v;
                }
                check(count, sum);
            })
        })
        .collect();
    tasks.push(tokio::spawn(async move {
        for i in 0..EVENTS {
            publisher.publish(black_box(i));
        }
    }));
    join_all(tasks).await;
}

async fn flowgate_bounded(subscribers: usize) {
    let mut publisher = BoundedPublisher::new(BOUNDED_CAPACITY);
    let mut tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut sub = publisher.subscribe();
            tokio::spawn(async move {
                let (mut count, mut sum) = (0, 0);
                while let Some(v) = sub.recv().await {
                    count += 1;
                    sum += v;
                }
                check(count, sum);
            })
        })
        .collect();
    tasks.push(tokio::spawn(async move {
        for i in 0..EVENTS {
            publisher.publish(black_box(i)).await;
        }
    }));
    join_all(tasks).await;
}

async fn tokio_broadcast(subscribers: usize) {
    let (tx, _) = tokio::sync::broadcast::channel(EVENTS as usize);
    let mut tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                let (mut count, mut sum) = (0, 0);
                loop {
                    match rx.recv().await {
                        Ok(v) => {
                            count += 1;
                            sum += v;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        Err(err) => panic!("lossy: {err}"),
                    }
                }
                check(count, sum);
            })
        })
        .collect();
    tasks.push(tokio::spawn(async move {
        for i in 0..EVENTS {
            tx.send(black_box(i)).expect("receivers alive");
        }
    }));
    join_all(tasks).await;
}

async fn async_broadcast(subscribers: usize) {
    let (tx, rx) = async_broadcast::broadcast(BOUNDED_CAPACITY);
    let mut tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let (mut count, mut sum) = (0, 0);
                while let Some(v) = rx.next().await {
                    count += 1;
                    sum += v;
                }
                check(count, sum);
            })
        })
        .collect();
    drop(rx);
    tasks.push(tokio::spawn(async move {
        for i in 0..EVENTS {
            tx.broadcast(black_box(i)).await.expect("receivers alive");
        }
    }));
    join_all(tasks).await;
}

fn bench<M: Clock>(c: &mut Criterion<M>) {
    let rt = runtime();
    let mut group = c.benchmark_group(M::group_name("broadcast_1m_u64"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for subscribers in [1usize, 4, 16] {
        group.throughput(Throughput::Elements(EVENTS * subscribers as u64));
        group.bench_with_input(
            BenchmarkId::new("flowgate", subscribers),
            &subscribers,
            |b, &n| b.iter(|| rt.block_on(flowgate_unbounded(n))),
        );
        group.bench_with_input(
            BenchmarkId::new("flowgate_bounded_1024", subscribers),
            &subscribers,
            |b, &n| b.iter(|| rt.block_on(flowgate_bounded(n))),
        );
        group.bench_with_input(
            BenchmarkId::new("tokio_broadcast", subscribers),
            &subscribers,
            |b, &n| b.iter(|| rt.block_on(tokio_broadcast(n))),
        );
        group.bench_with_input(
            BenchmarkId::new("async_broadcast_1024", subscribers),
            &subscribers,
            |b, &n| b.iter(|| rt.block_on(async_broadcast(n))),
        );
    }
    group.finish();
}

flowgate_bench::wall_and_cpu_main!(bench);
