//! `flowgate_bench::cpu::ProcessCpu` against a busy spin and a sleep.
//!
//! The clock counts the CPU time of every thread of the process, so this
//! test is alone in its test binary: the crate's other tests (which run
//! queues on two workers) would be counted while it sleeps.

use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use flowgate_bench::cpu::{Clock, ProcessCpu};

/// Busy-spins until the process has used `cpu` more CPU time; returns the
/// wall time that took.
fn spin_for_cpu(cpu: Duration) -> Duration {
    let wall = Instant::now();
    let start = ProcessTime::now();
    let mut x = 1u64;
    while start.elapsed() < cpu {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    wall.elapsed()
}

#[test]
fn a_busy_spin_costs_cpu_and_a_sleep_of_the_same_wall_time_less() {
    // The span encloses the spin, which ran until the same clock had moved
    // 50 ms: whatever the load, it is at least that.
    let (spin_wall, spin_cpu) = ProcessCpu::span(|| spin_for_cpu(Duration::from_millis(50)));
    assert!(spin_cpu >= Duration::from_millis(50), "{spin_cpu:?}");
    // A sleep of the spin's wall time (about 50 ms, more if the spin was
    // preempted) costs next to no CPU: nothing else runs in this process.
    let ((), sleep_cpu) = ProcessCpu::span(|| std::thread::sleep(spin_wall));
    assert!(
        sleep_cpu < spin_cpu,
        "sleep {sleep_cpu:?} of CPU against spin {spin_cpu:?} (wall {spin_wall:?})"
    );
}
