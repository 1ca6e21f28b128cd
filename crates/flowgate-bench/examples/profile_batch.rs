//! Runs one side of the `batch` benchmark, for profilers that count
//! instructions (`valgrind --tool=callgrind`) or sample (`perf record`), and
//! for quick wall-clock comparisons:
//!
//! ```text
//! cargo build --release -p flowgate-bench --example profile_batch
//! valgrind --tool=callgrind target/release/examples/profile_batch flowgate 100000
//! valgrind --tool=callgrind target/release/examples/profile_batch tokio 100000
//! # side, items, runtime (current_thread | multi_thread), repetitions
//! target/release/examples/profile_batch fused 1000000 multi_thread 5
//! ```
//!
//! Sides: `flowgate` (`submit` then `ack.await`), `fused`
//! (`submit_and_wait`), `tokio` (mpsc + oneshot) and `floor` (the scheduling
//! floor: no batcher at all). Each repetition prints its items per second.

use std::time::Instant;

use flowgate_bench::batch::{
    flowgate_batcher, flowgate_submit_and_wait, scheduling_floor, tokio_mpsc_oneshot,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "flowgate".to_owned());
    let items: u64 = args
        .next()
        .map_or(100_000, |n| n.parse().expect("item count"));
    let flavor = args.next().unwrap_or_else(|| "current_thread".to_owned());
    let reps: u32 = args.next().map_or(1, |n| n.parse().expect("repetitions"));
    let runtime = match flavor.as_str() {
        "current_thread" => tokio::runtime::Builder::new_current_thread(),
        "multi_thread" => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
        other => panic!("unknown runtime {other:?}: current_thread or multi_thread"),
    }
    .enable_all()
    .build()
    .unwrap();
    for _ in 0..reps {
        let start = Instant::now();
        match which.as_str() {
            "flowgate" => runtime.block_on(flowgate_batcher(items)),
            "fused" => runtime.block_on(flowgate_submit_and_wait(items)),
            "tokio" => runtime.block_on(tokio_mpsc_oneshot(items)),
            "floor" => runtime.block_on(scheduling_floor(items)),
            other => panic!("unknown side {other:?}: flowgate, fused, tokio or floor"),
        }
        let secs = start.elapsed().as_secs_f64();
        if reps > 1 {
            println!(
                "{which} {flavor}: {:.2} M items/s",
                items as f64 / secs / 1e6
            );
        }
    }
}
