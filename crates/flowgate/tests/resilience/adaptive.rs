use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::prelude::*;
use flowgate::resilience::AdaptiveLimit;
use futures_util::stream::{self, StreamExt};
use tokio::time::sleep;

/// A service whose latency is `base` while at most `capacity` calls are in
/// flight, and grows by `base / 2` for every call beyond.
#[derive(Clone)]
struct Service {
    capacity: usize,
    base: Duration,
    in_flight: Arc<AtomicUsize>,
}

impl Service {
    fn new(capacity: usize) -> Self {
        Service {
            capacity,
            base: Duration::from_millis(20),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn call(&self) -> Result<(), ()> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let over = now.saturating_sub(self.capacity) as u32;
        sleep(self.base + self.base / 2 * over).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn limits_over_time(capacity: usize, items: u32) -> Vec<usize> {
    let service = Service::new(capacity);
    let limit = AdaptiveLimit::new(1..=200);
    let probe = limit.clone();
    let stage = stream::iter(0..items).par_map_adaptive_with(
        &limit,
        flowgate::resilience::Outcome::of_result,
        move |_| {
            let service = service.clone();
            async move { service.call().await }
        },
    );
    let out = stage.map(move |_| probe.limit()).collect().await;
    println!("{:?}", limit.stats());
    out
}

#[tokio::test(start_paused = true)]
async fn sim() {
    for k in [8usize, 32] {
        let limits = limits_over_time(k, 20_000).await;
        let n = limits.len();
        let tail = &limits[n / 2..];
        let min = tail.iter().min().unwrap();
        let max = tail.iter().max().unwrap();
        let mean = tail.iter().sum::<usize>() as f64 / tail.len() as f64;
        println!(
            "K={k}: tail min {min} max {max} mean {mean:.1}; samples {:?}",
            limits.iter().step_by(n / 40).collect::<Vec<_>>()
        );
    }
}
