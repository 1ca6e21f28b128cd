//! The fan-in seed's example, ported: 1000 concurrent submitters push 10,203
//! items through one batcher (max 1000 items, max 1 s delay); each submitter
//! waits for its own item's batch to be flushed before it "acks the event".
//!
//! ```text
//! cargo run --release --example fanin
//! ```
//!
//! Prints one line per flush — `FanIn[i32].flush: 1000` ten times, then
//! `FanIn[i32].flush: 203` after the 1 s delay — and last
//! `total flushed: 10203`.

use std::sync::Arc;
use std::time::Duration;

use flowgate::batch::Batcher;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const WORKER_COUNT: usize = 1000;
const EVENTS_COUNT: i32 = 10_203;

#[tokio::main]
async fn main() {
    let batcher = Batcher::builder()
        .max_items(WORKER_COUNT)
        .max_delay(Duration::from_secs(1))
        .build(|items: Vec<i32>| async move {
            println!(
                "FanIn[{}].flush: {}",
                std::any::type_name::<i32>(),
                items.len()
            );
            Ok::<(), std::convert::Infallible>(())
        })
        .expect("valid batcher configuration");

    // The seed's worker pool (pond with 1000 workers): at most WORKER_COUNT
    // events are being handled at once.
    let pool = Arc::new(Semaphore::new(WORKER_COUNT));
    let mut events = JoinSet::new();
    for z in (1..=EVENTS_COUNT).rev() {
        let slot = Arc::clone(&pool)
            .acquire_owned()
            .await
            .expect("the pool is never closed");
        let batcher = batcher.clone();
        events.spawn(async move {
            // preprocessing here, as a message-broker consumer would
            batcher
                .submit_and_wait(z)
                .await
                .expect("open, and the flush never fails here");
            // ack the event here: its item is flushed
            drop(slot);
        });
    }
    while let Some(done) = events.join_next().await {
        done.expect("event task panicked");
    }

    batcher.close().await;
    println!("total flushed: {}", batcher.stats().flushed);
}
