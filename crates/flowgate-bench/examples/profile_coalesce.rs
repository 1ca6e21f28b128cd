//! Runs the coalescing-queue workload of issue 18 (`src/coalesce.rs`) side by
//! side in one process: flowgate's `OpQueue` and the hand-written queue,
//! interleaved, each repetition on a fresh queue, on a 2-worker runtime (or
//! a current_thread one).
//! Prints, per side, the fastest and the median repetition's items per second
//! and CPU time per item (the process's user + system time over the
//! repetition, all threads), then the ratios (hand-written ÷ flowgate for
//! CPU, flowgate ÷ hand-written for items/s).
//!
//! ```text
//! cargo build --release -p flowgate-bench --example profile_coalesce
//! # items, producers, consumers, repetitions (default 1000000 1 1 9)
//! target/release/examples/profile_coalesce 1000000 1 1 9
//! target/release/examples/profile_coalesce 1000000 4 2 9
//! # one side only, for a profiler (perf record, valgrind --tool=callgrind)
//! target/release/examples/profile_coalesce 1000000 1 1 1 flowgate
//! # both sides on a current_thread runtime: the tasks take turns on one
//! # thread, so the figures are the queues' own work, without cores contending
//! target/release/examples/profile_coalesce 1000000 1 1 9 both current_thread
//! ```

use std::time::Instant;

use cpu_time::ProcessTime;
use flowgate_bench::coalesce::{flowgate_opqueue, naive_queue};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |default: u64| {
        args.next()
            .map_or(default, |n| n.parse().expect("a number"))
    };
    let items = number(1_000_000);
    let producers = number(1);
    let consumers = number(1) as usize;
    let reps = number(9) as usize;
    let only = std::env::args().nth(5);
    let flavor = std::env::args()
        .nth(6)
        .unwrap_or_else(|| "multi_thread".to_owned());
    let runtime = flowgate_bench::example_runtime(&flavor);
    let sides: Vec<&str> = match only.as_deref() {
        Some(side @ ("flowgate" | "naive")) => vec![side],
        Some("both") | None => vec!["flowgate", "naive"],
        Some(other) => panic!("unknown side {other:?}: flowgate, naive or both"),
    };
    // (items/s, CPU ns per item, dequeues) per repetition, per side.
    let mut runs = vec![Vec::new(); sides.len()];
    for _ in 0..reps {
        for (side, runs) in sides.iter().zip(&mut runs) {
            let (wall, cpu) = (Instant::now(), ProcessTime::now());
            let dequeues = match *side {
                "flowgate" => runtime.block_on(flowgate_opqueue(items, producers, consumers)),
                _ => runtime.block_on(naive_queue(items, producers, consumers)),
            };
            let (wall, cpu) = (wall.elapsed(), cpu.elapsed());
            runs.push((
                items as f64 / wall.as_secs_f64(),
                cpu.as_nanos() as f64 / items as f64,
                dequeues,
            ));
        }
    }
    println!(
        "{items} items, {producers} producers, {consumers} consumers, {reps} repetitions, {flavor}, load {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut best = Vec::new();
    for (side, runs) in sides.iter().zip(&mut runs) {
        let mut rates: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let mut cpus: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let mut dequeues: Vec<u64> = runs.iter().map(|r| r.2).collect();
        rates.sort_by(f64::total_cmp);
        cpus.sort_by(f64::total_cmp);
        dequeues.sort_unstable();
        let (fast, median) = (rates[rates.len() - 1], rates[rates.len() / 2]);
        let (least, median_cpu) = (cpus[0], cpus[cpus.len() / 2]);
        println!(
            "{side:>8}: {:6.2} M items/s fastest, {:6.2} median; CPU {:6.1} ns/item least, {:6.1} median; dequeues (median) {}",
            fast / 1e6,
            median / 1e6,
            least,
            median_cpu,
            dequeues[dequeues.len() / 2]
        );
        best.push((fast, median, least, median_cpu));
    }
    if let [f, n] = best[..] {
        println!(
            "flowgate / naive: items/s {:.2}x fastest, {:.2}x median; CPU per item (naive / flowgate) {:.2}x least, {:.2}x median",
            f.0 / n.0,
            f.1 / n.1,
            n.2 / f.2,
            n.3 / f.3
        );
    }
}
