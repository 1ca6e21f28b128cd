//! Workloads of `benches/dataloader.rs`: many concurrent loads of few
//! distinct keys, through `flowgate::dataloader::DataLoader` or with one
//! backend call per load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flowgate::dataloader::DataLoader;
use tokio::sync::Semaphore;

/// A simulated backend (a database behind a connection pool): every call
/// takes `latency` of real time whatever the number of keys, and at most
/// `pool` calls run at once (`None`: no limit).
#[derive(Debug)]
pub struct Backend {
    latency: Duration,
    pool: Option<Semaphore>,
    calls: AtomicU64,
    keys: AtomicU64,
}

/// What a run cost the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Backend calls.
    pub calls: u64,
    /// Keys asked for, over all calls.
    pub keys: u64,
}

impl Backend {
    /// A backend whose calls take `latency`, at most `pool` at once.
    pub fn new(latency: Duration, pool: Option<usize>) -> Arc<Self> {
        Arc::new(Backend {
            latency,
            pool: pool.map(Semaphore::new),
            calls: AtomicU64::new(0),
            keys: AtomicU64::new(0),
        })
    }

    /// One call fetching `keys`: each value is its key times two.
    pub async fn fetch(&self, keys: &[u64]) -> HashMap<u64, u64> {
        let _connection = match &self.pool {
            Some(pool) => Some(pool.acquire().await.expect("never closed")),
            None => None,
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.keys.fetch_add(keys.len() as u64, Ordering::Relaxed);
        tokio::time::sleep(self.latency).await;
        keys.iter().map(|&k| (k, k * 2)).collect()
    }

    /// The calls and keys so far.
    pub fn cost(&self) -> Cost {
        Cost {
            calls: self.calls.load(Ordering::Relaxed),
            keys: self.keys.load(Ordering::Relaxed),
        }
    }
}

/// The key of the `i`-th load: `loads` loads spread over `distinct` keys,
/// in a scrambled order.
fn key(i: u64, distinct: u64) -> u64 {
    (i * 7919) % distinct
}

/// `loads` tasks each `load(key)` through one [`DataLoader`] (batches of up
/// to `max_batch` distinct keys, a 1 ms window, 4 fetches at once, and with
/// `cache` a cache of every key for 60 s), spawned at once; returns what it
/// cost the backend.
pub async fn flowgate_dataloader(
    backend: Arc<Backend>,
    loads: u64,
    distinct: u64,
    max_batch: usize,
    cache: bool,
) -> Cost {
    let before = backend.cost();
    let fetcher = Arc::clone(&backend);
    let mut builder = DataLoader::builder()
        .max_batch(max_batch)
        .delay(Duration::from_millis(1))
        .concurrency(4)
        .capacity(distinct as usize);
    if cache {
        builder = builder.cache(distinct as usize, Duration::from_secs(60));
    }
    let loader: DataLoader<u64, u64, std::convert::Infallible> = builder
        .build(move |keys: Vec<u64>| {
            let backend = Arc::clone(&fetcher);
            async move { Ok(backend.fetch(&keys).await) }
        })
        .expect("valid configuration");
    let tasks: Vec<_> = (0..loads)
        .map(|i| {
            let loader = loader.clone();
            tokio::spawn(async move {
                let k = key(i, distinct);
                assert_eq!(loader.load(k).await.expect("loaded"), k * 2);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("no panic");
    }
    let after = backend.cost();
    Cost {
        calls: after.calls - before.calls,
        keys: after.keys - before.keys,
    }
}

/// The peer: `loads` tasks each call the backend for their own key, spawned
/// at once; returns what it cost the backend.
pub async fn one_call_per_load(backend: Arc<Backend>, loads: u64, distinct: u64) -> Cost {
    let before = backend.cost();
    let tasks: Vec<_> = (0..loads)
        .map(|i| {
            let backend = Arc::clone(&backend);
            tokio::spawn(async move {
                let k = key(i, distinct);
                assert_eq!(backend.fetch(&[k]).await[&k], k * 2);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("no panic");
    }
    let after = backend.cost();
    Cost {
        calls: after.calls - before.calls,
        keys: after.keys - before.keys,
    }
}
