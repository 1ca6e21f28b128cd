//! What the `metrics` feature costs: the same workloads with each primitive
//! unnamed (no series), named with no recorder installed (no-op handles:
//! what a library user pays by default with the feature on), and named with
//! `metrics-exporter-prometheus`'s recorder (every update lands in an
//! atomic; the exporter's own cost at scrape time is not included).
//!
//! Run it twice, without and with the feature, side by side:
//!
//! ```text
//! cargo bench -p flowgate-bench --bench metrics_overhead
//! cargo bench -p flowgate-bench --bench metrics_overhead --features metrics
//! ```
//!
//! Without the feature the three variants are the same code (naming records
//! nothing): the spread between them is the noise of the run.
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flowgate::Batcher;
use flowgate::broadcast::Publisher;
use flowgate::coalesce::OpQueue;
use flowgate::group::CallGroup;
use flowgate::limit::{Rate, RateLimiter};
use flowgate::pipeline::PipelineExt;
use flowgate::resilience::CircuitBreaker;
use flowgate_bench::cpu::Clock;
use futures_util::StreamExt;
use futures_util::future::join_all;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// How a primitive is built in one variant.
#[derive(Clone, Copy)]
enum Variant {
    Unnamed,
    NamedNoRecorder,
    NamedRecorder,
}

const VARIANTS: [(&str, Variant); 3] = [
    ("unnamed", Variant::Unnamed),
    ("named, no recorder", Variant::NamedNoRecorder),
    ("named, prometheus recorder", Variant::NamedRecorder),
];

fn recorder() -> &'static PrometheusRecorder {
    static RECORDER: std::sync::OnceLock<PrometheusRecorder> = std::sync::OnceLock::new();
    RECORDER.get_or_init(|| PrometheusBuilder::new().build_recorder())
}

/// Builds with the variant's recorder current (handles are registered at
/// build time, so the recorder is needed only here).
fn build<R>(variant: Variant, f: impl FnOnce(Option<&'static str>) -> R) -> R {
    match variant {
        Variant::Unnamed => f(None),
        Variant::NamedNoRecorder => f(Some("bench")),
        Variant::NamedRecorder => metrics::with_local_recorder(recorder(), || f(Some("bench"))),
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const BATCH_ITEMS: u64 = 200_000;

async fn batcher(variant: Variant) {
    let batcher = build(variant, |name| {
        let builder = Batcher::builder()
            .max_items(100)
            .max_delay(Duration::from_millis(1));
        let builder = match name {
            Some(name) => builder.name(name),
            None => builder,
        };
        builder
            .build(|items: Vec<u64>| async move {
                {
                    black_box(items);
                    Ok::<_, Infallible>(())
                }
            })
            .unwrap()
    });
    let tasks: Vec<_> = (0..100)
        .map(|t| {
            let batcher = batcher.clone();
            tokio::spawn(async move {
                for i in 0..BATCH_ITEMS / 100 {
                    batcher.submit_and_wait(t * 10_000 + i).await.unwrap();
                }
            })
        })
        .collect();
    join_all(tasks).await;
}

const QUEUE_ITEMS: u64 = 200_000;

async fn opqueue(variant: Variant) {
    let (queue, consumer) = build(variant, |name| {
        let builder = OpQueue::<u64, u64>::builder().depth(1000).width(1024);
        let builder = match name {
            Some(name) => builder.name(name),
            None => builder,
        };
        builder.build().unwrap()
    });
    let producer = tokio::spawn(async move {
        for i in 0..QUEUE_ITEMS {
            queue.enqueue(i % 1000, i).await.unwrap();
        }
    });
    let mut seen = 0;
    while seen < QUEUE_ITEMS {
        let (_, items) = consumer.dequeue().await.unwrap();
        seen += items.len() as u64;
        black_box(items);
    }
    producer.await.unwrap();
}

const EVENTS: u64 = 500_000;

async fn broadcast(variant: Variant) {
    let mut publisher = build(variant, |name| match name {
        Some(name) => Publisher::with_name(name),
        None => Publisher::new(),
    });
    let mut tasks: Vec<_> = (0..4)
        .map(|_| {
            let mut sub = publisher.subscribe();
            tokio::spawn(async move {
                let mut count = 0u64;
                while let Some(v) = sub.recv().await {
                    count += 1;
                    black_box(v);
                }
                assert_eq!(count, EVENTS);
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

const STAGE_ITEMS: u64 = 1_000_000;

async fn par_map(variant: Variant) -> u64 {
    build(variant, |name| {
        let stage =
            futures_util::stream::iter(0..STAGE_ITEMS).par_map(64, |x| async move { x + 1 });
        match name {
            Some(name) => stage.name(name).boxed(),
            None => stage.boxed(),
        }
    })
    .fold(0u64, |acc, x| async move { acc.wrapping_add(x) })
    .await
}

const OPS: u64 = 200_000;

async fn call_group(variant: Variant) -> u64 {
    let mut group = build(variant, |name| {
        let group = CallGroup::<u64, u64, Infallible>::with_capacity(OPS as usize);
        match name {
            Some(name) => group.name(name),
            None => group,
        }
    });
    for id in 0..OPS {
        let op = group.add(id, id).unwrap();
        op.finish(Ok(id * 2));
    }
    group.wait().await.len() as u64
}

const CHECKS: u64 = 1_000_000;

fn rate_limiter(variant: Variant) -> u64 {
    let rate = Rate::new(1_000_000_000, Duration::from_secs(1), 1_000_000).unwrap();
    let limiter = build(variant, |name| match name {
        Some(name) => RateLimiter::with_name(rate, name),
        None => RateLimiter::new(rate),
    });
    (0..CHECKS)
        .filter(|_| limiter.try_acquire().is_ok())
        .count() as u64
}

fn breaker(variant: Variant) -> u64 {
    let breaker = build(variant, |name| {
        let builder = CircuitBreaker::builder();
        let builder = match name {
            Some(name) => builder.name(name),
            None => builder,
        };
        builder.build().unwrap()
    });
    let mut ok = 0;
    for i in 0..CHECKS {
        if let Ok(permit) = breaker.try_acquire() {
            permit.record(i % 100 == 0);
            ok += 1;
        }
    }
    ok
}

fn overhead<M: Clock>(c: &mut Criterion<M>) {
    let feature = if cfg!(feature = "metrics") {
        "feature on"
    } else {
        "feature off"
    };
    let (ct, mt) = (current_thread(), multi_thread());
    let mut groups: Vec<(&str, u64)> = vec![
        (
            "batcher submit_and_wait 100 tasks, current_thread",
            BATCH_ITEMS,
        ),
        ("opqueue 1p1c 1000 keys, multi_thread(2)", QUEUE_ITEMS),
        ("broadcast 1 -> 4, multi_thread(2)", EVENTS),
        ("par_map(64), current_thread", STAGE_ITEMS),
        ("callgroup inline, current_thread", OPS),
        ("rate limiter try_acquire", CHECKS),
        ("breaker try_acquire + record", CHECKS),
    ];
    for (which, (title, items)) in groups.drain(..).enumerate() {
        let mut group =
            c.benchmark_group(M::group_name(format!("metrics_overhead/{title}/{feature}")));
        group.throughput(Throughput::Elements(items));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(4));
        for (label, variant) in VARIANTS {
            group.bench_function(BenchmarkId::from_parameter(label), |b| match which {
                0 => b.to_async(&ct).iter(|| batcher(variant)),
                1 => b.to_async(&mt).iter(|| opqueue(variant)),
                2 => b.to_async(&mt).iter(|| broadcast(variant)),
                3 => b.to_async(&ct).iter(|| par_map(variant)),
                4 => b.to_async(&ct).iter(|| call_group(variant)),
                5 => b.iter(|| rate_limiter(variant)),
                _ => b.iter(|| breaker(variant)),
            });
        }
        group.finish();
    }
}

flowgate_bench::wall_and_cpu_main!(overhead);
