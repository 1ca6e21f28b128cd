//! Runs the scatter/gather rows of the `group` bench (`src/group.rs`) side by
//! side in one process, interleaved, on a 2-worker runtime (or a
//! current_thread one). Prints, per row, the fastest and the median
//! repetition's ops per second and CPU time per op (the process's user +
//! system time over the repetition, all threads), and each row's ratio to
//! `JoinSet` (ops/s, and the JoinSet's CPU per op ÷ the row's).
//!
//! ```text
//! cargo build --release -p flowgate-bench --example profile_group
//! # groups, ops per group, repetitions (default 10000 100 7)
//! target/release/examples/profile_group 10000 100 7
//! # some rows only (spawn, joinset, workers, chunked, inline), e.g. for perf
//! target/release/examples/profile_group 10000 100 1 spawn
//! target/release/examples/profile_group 10000 100 7 spawn,joinset current_thread
//! # the gathering code on the thread that called block_on instead of in a
//! # runtime task (the bench's `…_from_block_on` group)
//! target/release/examples/profile_group 10000 100 7 all multi_thread block_on
//! ```

use std::time::Instant;

use cpu_time::ProcessTime;
use flowgate_bench::group::{
    callgroup_inline, callgroup_spawn, callgroup_workers, callgroup_workers_chunked, expected,
    joinset,
};

const ROWS: [&str; 5] = ["joinset", "spawn", "workers", "chunked", "inline"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |n| n.parse().expect("a number"))
    };
    let (groups, per_group, reps) = (number(0, 10_000), number(1, 100), number(2, 7) as usize);
    let rows: Vec<&str> = match args.get(3).map(String::as_str) {
        None | Some("all") => ROWS.to_vec(),
        Some(list) => list
            .split(',')
            .map(|row| {
                *ROWS
                    .iter()
                    .find(|known| **known == row)
                    .unwrap_or_else(|| panic!("unknown row {row:?}: one of {ROWS:?}"))
            })
            .collect(),
    };
    let flavor = args.get(4).map_or("multi_thread", String::as_str);
    let in_task = match args.get(5).map_or("task", String::as_str) {
        "task" => true,
        "block_on" => false,
        other => panic!("unknown placement {other:?}: task or block_on"),
    };
    let runtime = flowgate_bench::example_runtime(flavor);
    let ops = groups * per_group;
    let want = expected(groups, per_group);
    // (ops/s, CPU ns per op) per repetition, per row.
    let mut runs = vec![Vec::new(); rows.len()];
    for _ in 0..reps {
        for (row, runs) in rows.iter().zip(&mut runs) {
            let (wall, cpu) = (Instant::now(), ProcessTime::now());
            let row_name = *row;
            let work = async move {
                match row_name {
                    "joinset" => joinset(groups, per_group).await,
                    "spawn" => callgroup_spawn(groups, per_group).await,
                    "workers" => callgroup_workers(groups, per_group, 2).await,
                    "chunked" => callgroup_workers_chunked(groups, per_group, 2).await,
                    _ => callgroup_inline(groups, per_group).await,
                }
            };
            let total = if in_task {
                runtime.block_on(runtime.spawn(work)).unwrap()
            } else {
                runtime.block_on(work)
            };
            let (wall, cpu) = (wall.elapsed(), cpu.elapsed());
            assert_eq!(total, want, "{row}");
            runs.push((
                ops as f64 / wall.as_secs_f64(),
                cpu.as_nanos() as f64 / ops as f64,
            ));
        }
    }
    println!(
        "{groups} groups of {per_group}, {reps} repetitions, {flavor}, {}, load {}",
        if in_task {
            "in a task"
        } else {
            "from block_on"
        },
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let summary: Vec<(f64, f64, f64, f64)> = runs
        .iter_mut()
        .map(|runs| {
            let mut rates: Vec<f64> = runs.iter().map(|r| r.0).collect();
            let mut cpus: Vec<f64> = runs.iter().map(|r| r.1).collect();
            rates.sort_by(f64::total_cmp);
            cpus.sort_by(f64::total_cmp);
            (
                rates[rates.len() - 1],
                rates[rates.len() / 2],
                cpus[0],
                cpus[cpus.len() / 2],
            )
        })
        .collect();
    let peer = rows
        .iter()
        .position(|row| *row == "joinset")
        .map(|i| summary[i]);
    for (row, &(fast, median, least, median_cpu)) in rows.iter().zip(&summary) {
        print!(
            "{row:>8}: {:6.2} M ops/s fastest, {:6.2} median; CPU {:6.1} ns/op least, {:6.1} median",
            fast / 1e6,
            median / 1e6,
            least,
            median_cpu
        );
        match peer {
            Some(p) if *row != "joinset" => println!(
                "; / JoinSet: ops/s {:.2}x fastest, {:.2}x median; CPU {:.2}x least, {:.2}x median",
                fast / p.0,
                median / p.1,
                p.2 / least,
                p.3 / median_cpu
            ),
            _ => println!(),
        }
    }
}
