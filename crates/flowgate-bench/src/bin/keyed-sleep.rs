//! 16 keys, one item of a key at a time, every call waiting 1 ms (a write
//! to a per-key resource): `par_map_keyed` against a single sequential
//! consumer and against the loop a good engineer writes by hand (one task
//! per key fed by a bounded channel, results collected from one channel).
//!
//! ```text
//! cargo run --release -p flowgate-bench --bin keyed-sleep -- --items 1000000 --sequential-items 1000000
//! ```
//!
//! Prints seconds, items per second and the ratios. Real time: the wait is
//! a tokio timer (1 ms granularity), as a real call's would be.

use std::time::{Duration, Instant};

use clap::Parser;
use flowgate::prelude::*;
use futures_util::{StreamExt, stream};
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// Items through par_map_keyed and the hand-written per-key tasks.
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    /// Items through the sequential consumer (per-item time is what is
    /// compared; 1,000,000 takes over 17 minutes).
    #[arg(long, default_value_t = 10_000)]
    sequential_items: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 16)]
    keys: u64,
    /// par_map_keyed's limit.
    #[arg(long, default_value_t = 64)]
    limit: usize,
}

/// The key of item `i`: a fixed pseudo-random spread over `keys`.
fn key_of(i: u64, keys: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    x ^= x >> 29;
    x % keys
}

async fn call(i: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    i
}

async fn sequential(items: u64) -> Duration {
    let start = Instant::now();
    let mut sum = 0u64;
    for i in 0..items {
        sum = sum.wrapping_add(call(i).await);
    }
    std::hint::black_box(sum);
    start.elapsed()
}

async fn keyed(items: u64, keys: u64, limit: usize) -> Duration {
    let start = Instant::now();
    let sum = stream::iter(0..items)
        .par_map_keyed_unordered(limit, 1, move |i| key_of(*i, keys), call)
        .fold(0u64, |acc, x| async move { acc.wrapping_add(x) })
        .await;
    std::hint::black_box(sum);
    start.elapsed()
}

/// One task per key, each reading its own bounded channel in order; the
/// producer routes by key; results come back on one channel.
async fn hand(items: u64, keys: u64) -> Duration {
    let start = Instant::now();
    let (done_tx, mut done_rx) = mpsc::channel::<u64>(1024);
    let mut senders = Vec::new();
    for _ in 0..keys {
        let (tx, mut rx) = mpsc::channel::<u64>(4);
        let done = done_tx.clone();
        tokio::spawn(async move {
            while let Some(i) = rx.recv().await {
                if done.send(call(i).await).await.is_err() {
                    break;
                }
            }
        });
        senders.push(tx);
    }
    drop(done_tx);
    let producer = tokio::spawn(async move {
        for i in 0..items {
            senders[key_of(i, keys) as usize].send(i).await.unwrap();
        }
    });
    let mut sum = 0u64;
    while let Some(x) = done_rx.recv().await {
        sum = sum.wrapping_add(x);
    }
    producer.await.unwrap();
    std::hint::black_box(sum);
    start.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64();
    let k = keyed(args.items, args.keys, args.limit).await;
    println!(
        "par_map_keyed_unordered({}, 1), {} keys: {} items in {:.2} s = {:.0} items/s",
        args.limit,
        args.keys,
        args.items,
        k.as_secs_f64(),
        rate(args.items, k)
    );
    let h = hand(args.items, args.keys).await;
    println!(
        "hand: a task per key:                {} items in {:.2} s = {:.0} items/s",
        args.items,
        h.as_secs_f64(),
        rate(args.items, h)
    );
    let s = sequential(args.sequential_items).await;
    println!(
        "sequential consumer:                 {} items in {:.2} s = {:.0} items/s",
        args.sequential_items,
        s.as_secs_f64(),
        rate(args.sequential_items, s)
    );
    println!(
        "ratios (items/s): keyed / sequential = {:.2}x, keyed / hand = {:.2}x",
        rate(args.items, k) / rate(args.sequential_items, s),
        rate(args.items, k) / rate(args.items, h)
    );
}
