//! The workloads of `benches/metrics_overhead.rs`, once each with every
//! primitive named and no recorder installed, for counting instructions
//! under callgrind: the deterministic form of "what the `metrics` feature
//! costs when no recorder is installed" (`dev/metrics-cost.sh` builds it
//! with and without the feature and compares).
//!
//! ```text
//! metrics-cost [--unnamed]
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use flowgate::Batcher;
use flowgate::broadcast::Publisher;
use flowgate::coalesce::OpQueue;
use flowgate::group::CallGroup;
use flowgate::limit::{Rate, RateLimiter};
use flowgate::pipeline::PipelineExt;
use flowgate::resilience::CircuitBreaker;
use futures_util::StreamExt;
use futures_util::future::join_all;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let named = !args.iter().any(|a| a == "--unnamed");
    // `--only W` runs one workload: batch, queue, events, stage, group, rate, breaker.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let run = |w: &str| only.as_deref().is_none_or(|o| o == w);
    let name = |s: &'static str| named.then_some(s);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if run("batch") {
            // Batcher: 50,000 items from 100 tasks, batches of 100.
            let builder = Batcher::builder()
                .max_items(100)
                .max_delay(Duration::from_millis(1));
            let builder = match name("batch") {
                Some(n) => builder.name(n),
                None => builder,
            };
            let batcher = builder
                .build(|items: Vec<u64>| async move {
                    black_box(items);
                    Ok::<_, Infallible>(())
                })
                .unwrap();
            let tasks: Vec<_> = (0..100u64)
                .map(|t| {
                    let batcher = batcher.clone();
                    tokio::spawn(async move {
                        for i in 0..500 {
                            batcher.submit_and_wait(t * 1000 + i).await.unwrap();
                        }
                    })
                })
                .collect();
            join_all(tasks).await;
        }
        if run("queue") {
            // OpQueue: 50,000 items over 1000 keys, one producer, one consumer.
            let builder = OpQueue::<u64, u64>::builder().depth(1000).width(1024);
            let builder = match name("queue") {
                Some(n) => builder.name(n),
                None => builder,
            };
            let (queue, consumer) = builder.build().unwrap();
            let producer = tokio::spawn(async move {
                for i in 0..50_000u64 {
                    queue.enqueue(i % 1000, i).await.unwrap();
                }
            });
            let mut seen = 0;
            while seen < 50_000 {
                let (_, items) = consumer.dequeue().await.unwrap();
                seen += items.len();
            }
            producer.await.unwrap();
        }
        if run("events") {
            // broadcast: 100,000 events to 4 subscribers.
            let mut publisher = match name("events") {
                Some(n) => Publisher::with_name(n),
                None => Publisher::new(),
            };
            let mut subs: Vec<_> = (0..4)
                .map(|_| {
                    let mut sub = publisher.subscribe();
                    tokio::spawn(async move {
                        let mut count = 0u64;
                        while sub.recv().await.is_some() {
                            count += 1;
                        }
                        count
                    })
                })
                .collect();
            subs.push(tokio::spawn(async move {
                for i in 0..100_000u64 {
                    publisher.publish(i);
                }
                0
            }));
            black_box(join_all(subs).await);
        }
        if run("stage") {
            // par_map(64): 200,000 items.
            let stage =
                futures_util::stream::iter(0..200_000u64).par_map(64, |x| async move { x + 1 });
            let stage = match name("stage") {
                Some(n) => stage.name(n).boxed(),
                None => stage.boxed(),
            };
            black_box(
                stage
                    .fold(0u64, |a, x| async move { a.wrapping_add(x) })
                    .await,
            );
        }
        if run("group") {
            // CallGroup: 50,000 ops finished inline.
            let group = CallGroup::<u64, u64, Infallible>::with_capacity(50_000);
            let mut group = match name("group") {
                Some(n) => group.name(n),
                None => group,
            };
            for id in 0..50_000 {
                group.add(id, id).unwrap().finish(Ok(id));
            }
            black_box(group.wait().await.len());
        }
    });

    // RateLimiter and CircuitBreaker: 200,000 calls each, never limited.
    if run("rate") {
        let rate = Rate::new(1_000_000_000, Duration::from_secs(1), 1_000_000).unwrap();
        let limiter = match name("rate") {
            Some(n) => RateLimiter::with_name(rate, n),
            None => RateLimiter::new(rate),
        };
        black_box(
            (0..200_000)
                .filter(|_| limiter.try_acquire().is_ok())
                .count(),
        );
    }
    if run("breaker") {
        let builder = CircuitBreaker::builder();
        let builder = match name("breaker") {
            Some(n) => builder.name(n),
            None => builder,
        };
        let breaker = builder.build().unwrap();
        for i in 0..200_000u32 {
            if let Ok(permit) = breaker.try_acquire() {
                permit.record(i % 100 == 0);
            }
        }
    }
}
