//! The fan-out/fan-in seed, ported: 10 jobs, 4 workers, every result printed.
//!
//! In the Go original, workers read from a jobs channel, write to a results
//! channel, and a `WaitGroup` decides when the results channel may be closed;
//! closing it too early (the seed's "Approach 2") loses results. Here
//! `par_map_unordered(4, ..)` is the whole pattern: it runs at most four jobs
//! at once and its stream ends only after upstream has ended *and* every job
//! has finished, so no result can be lost to an early close.
//!
//! ```text
//! cargo run --example fanout_fanin
//! ```

use std::time::Duration;

use flowgate::prelude::*;
use futures_util::{StreamExt, stream};

/// The worker's task for one job.
async fn work(job: u32) -> u32 {
    // Jobs take different times, so results arrive out of order.
    tokio::time::sleep(Duration::from_millis(u64::from(11 - job) * 5)).await;
    job * 2
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    const NUM_JOBS: u32 = 10;
    const NUM_WORKERS: usize = 4;

    // Fan-out to NUM_WORKERS concurrent jobs, fan the results back in.
    let mut results = stream::iter(1..=NUM_JOBS).par_map_unordered(NUM_WORKERS, work);

    let mut received = 0;
    while let Some(result) = results.next().await {
        println!("Result: {result}");
        received += 1;
    }
    assert_eq!(received, NUM_JOBS, "every job's result is received");
    println!("all {received} results received");
}
