//! Runs one side of the `batch` benchmark once, for profilers that count
//! instructions (`valgrind --tool=callgrind`) or sample (`perf record`):
//!
//! ```text
//! cargo build --release -p flowgate-bench --example profile_batch
//! valgrind --tool=callgrind target/release/examples/profile_batch flowgate 100000
//! valgrind --tool=callgrind target/release/examples/profile_batch tokio 100000
//! ```

use flowgate_bench::batch::{flowgate_batcher, tokio_mpsc_oneshot};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "flowgate".to_owned());
    let items: u64 = args
        .next()
        .map_or(100_000, |n| n.parse().expect("item count"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match which.as_str() {
        "flowgate" => runtime.block_on(flowgate_batcher(items)),
        "tokio" => runtime.block_on(tokio_mpsc_oneshot(items)),
        other => panic!("unknown side {other:?}: flowgate or tokio"),
    }
}
