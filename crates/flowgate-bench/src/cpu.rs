//! CPU time as a criterion measurement, so a bench reports the CPU an item
//! costs beside the wall time it takes.
//!
//! [`ProcessCpu`] measures the CPU time of the whole process (user + system,
//! every thread: the tokio workers as much as the thread criterion runs on)
//! spent during the measured iterations, read with
//! `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` through the `cpu-time` crate's
//! [`ProcessTime`]. Wall time counts the time a design spends preempted or
//! waiting for a core; CPU time does not: a lead in wall time with no lead in
//! CPU time comes from scheduling, not from doing less work.
//!
//! [`Clock`] is what the benches are generic over: it is implemented for
//! criterion's default [`WallTime`] and for [`ProcessCpu`], and gives each a
//! group-name prefix (the two passes of a group are stored apart under
//! `target/criterion/`) and a way to measure a custom span with the active
//! measurement (for `iter_custom`). Every bench in `benches/` runs each of
//! its groups under both:
//!
//! ```no_run
//! use criterion::measurement::WallTime;
//! use criterion::{Criterion, criterion_group, criterion_main};
//! use flowgate_bench::cpu::{Clock, ProcessCpu};
//!
//! fn bench<M: Clock>(c: &mut Criterion<M>) {
//!     let mut group = c.benchmark_group(M::group_name("example"));
//!     group.bench_function("sum", |b| b.iter(|| (0..1000u64).sum::<u64>()));
//!     group.finish();
//! }
//!
//! criterion_group!(wall, bench::<WallTime>);
//! criterion_group! {
//!     name = cpu;
//!     config = Criterion::default().with_measurement(ProcessCpu);
//!     targets = bench::<ProcessCpu>
//! }
//! fn cpu_unless_wall_only() {
//!     flowgate_bench::cpu::unless_wall_only(cpu);
//! }
//! criterion_main!(wall, cpu_unless_wall_only);
//! ```
//!
//! Under [`ProcessCpu`] criterion's `time:` line is CPU time per iteration
//! (units `ns cpu`, `µs cpu`, `ms cpu`, `s cpu`) and its `thrpt:` line is
//! elements (or bytes) per CPU-second (`Melem/cpu-s`, `MiB/cpu-s`, …).

use std::time::Duration;

pub use cpu_time::ProcessTime;
use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// The environment variable that skips the CPU pass of every bench (set to
/// anything but empty or `0`): see [`unless_wall_only`].
pub const WALL_ONLY_VAR: &str = "FLOWGATE_BENCH_WALL_ONLY";

/// Whether [`WALL_ONLY_VAR`] asks for the wall-time pass alone.
pub fn wall_only() -> bool {
    std::env::var_os(WALL_ONLY_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Runs `cpu_pass` (the function `criterion_group!` made for the
/// [`ProcessCpu`] groups) unless [`WALL_ONLY_VAR`] is set, for quick runs.
/// By default both passes run.
pub fn unless_wall_only(cpu_pass: fn()) {
    if wall_only() {
        eprintln!("{WALL_ONLY_VAR} is set: the cpu/ groups are not run");
    } else {
        cpu_pass();
    }
}

/// The `main` of a bench file: runs every target twice, as the `wall` group
/// ([`WallTime`]) and then, [`unless_wall_only`], as the `cpu` group
/// ([`ProcessCpu`]). Each target is a bench function generic over
/// [`Clock`], named without its type argument.
///
/// ```ignore
/// fn fan_in<M: Clock>(c: &mut Criterion<M>) { /* … */ }
/// flowgate_bench::wall_and_cpu_main!(fan_in);
/// ```
#[macro_export]
macro_rules! wall_and_cpu_main {
    ($($target:ident),+ $(,)?) => {
        ::criterion::criterion_group!(
            wall,
            $($target::<::criterion::measurement::WallTime>),+
        );
        ::criterion::criterion_group! {
            name = cpu;
            config = ::criterion::Criterion::default()
                .with_measurement($crate::cpu::ProcessCpu);
            targets = $($target::<$crate::cpu::ProcessCpu>),+
        }
        fn cpu_unless_wall_only() {
            $crate::cpu::unless_wall_only(cpu);
        }
        ::criterion::criterion_main!(wall, cpu_unless_wall_only);
    };
}

/// A criterion measurement the benches are generic over: [`WallTime`] or
/// [`ProcessCpu`].
pub trait Clock: Measurement + Sized {
    /// Put before every group name measured with this clock: `""` for wall
    /// time, `"cpu/"` for CPU time. A prefix, not a suffix: criterion cuts a
    /// group's directory name at 64 bytes, which would drop a suffix of a
    /// long name and store both passes in one directory.
    const PREFIX: &'static str;

    /// The measurement (both are unit structs).
    fn clock() -> Self;

    /// The name of group `name` under this clock: [`Clock::PREFIX`] then
    /// `name`.
    fn group_name(name: impl std::fmt::Display) -> String {
        format!("{}{name}", Self::PREFIX)
    }

    /// Runs `f` and measures it: its output, and the span it took on this
    /// clock (what an `iter_custom` routine returns).
    fn span<R>(f: impl FnOnce() -> R) -> (R, Self::Value) {
        let clock = Self::clock();
        let start = clock.start();
        let out = f();
        let value = clock.end(start);
        (out, value)
    }
}

impl Clock for WallTime {
    const PREFIX: &'static str = "";

    fn clock() -> Self {
        WallTime
    }
}

impl Clock for ProcessCpu {
    const PREFIX: &'static str = "cpu/";

    fn clock() -> Self {
        ProcessCpu
    }
}

/// CPU time of the process, user + system, all threads, spent between
/// criterion's `start` and `end` (the measured iterations; the setup of
/// `iter_batched` runs outside them).
///
/// Its values are nanoseconds of CPU time; [`CpuFormatter`] prints them per
/// iteration in `ns cpu` … `s cpu`, and throughput per CPU-second.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCpu;

impl Measurement for ProcessCpu {
    type Intermediate = ProcessTime;
    type Value = Duration;

    fn start(&self) -> ProcessTime {
        ProcessTime::now()
    }

    fn end(&self, start: ProcessTime) -> Duration {
        start.elapsed()
    }

    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Prints [`ProcessCpu`]'s values: CPU time per iteration with a unit that
/// says `cpu`, throughput as elements, bytes or bits per CPU-second.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuFormatter;

/// Scales `values` (per-second rates computed from CPU nanoseconds) by the
/// first of `units` whose bound the typical rate is under.
fn per_cpu_second(
    amount: f64,
    typical_ns: f64,
    values: &mut [f64],
    base: f64,
    units: [&'static str; 4],
) -> &'static str {
    let typical = amount * (1e9 / typical_ns);
    let (denominator, unit) = if typical < base {
        (1.0, units[0])
    } else if typical < base * base {
        (base, units[1])
    } else if typical < base * base * base {
        (base * base, units[2])
    } else {
        (base * base * base, units[3])
    };
    for value in values {
        *value = amount * (1e9 / *value) / denominator;
    }
    unit
}

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1.0 {
            (1e3, "ps cpu")
        } else if typical_ns < 1e3 {
            (1.0, "ns cpu")
        } else if typical_ns < 1e6 {
            (1e-3, "µs cpu")
        } else if typical_ns < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (count, base, units) = match *throughput {
            Throughput::Elements(elements) | Throughput::ElementsAndBytes { elements, .. } => (
                elements,
                1000.0,
                [" elem/cpu-s", "Kelem/cpu-s", "Melem/cpu-s", "Gelem/cpu-s"],
            ),
            Throughput::Bytes(bytes) => (
                bytes,
                1024.0,
                ["  B/cpu-s", "KiB/cpu-s", "MiB/cpu-s", "GiB/cpu-s"],
            ),
            Throughput::BytesDecimal(bytes) => (
                bytes,
                1000.0,
                ["  B/cpu-s", "KB/cpu-s", "MB/cpu-s", "GB/cpu-s"],
            ),
            Throughput::Bits(bits) => (
                bits,
                1000.0,
                ["  b/cpu-s", "Kb/cpu-s", "Mb/cpu-s", "Gb/cpu-s"],
            ),
        };
        per_cpu_second(count as f64, typical_ns, values, base, units)
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        // CPU nanoseconds, unscaled (criterion's CSV and JSON files).
        "ns"
    }
}

#[cfg(test)]
mod tests {
    // The clock against a busy spin and a sleep is tested in
    // `tests/cpu_clock.rs`, a process of its own: the clock counts every
    // thread of the process, and the other tests here run beside it.
    use super::*;

    #[test]
    fn wall_time_counts_a_sleep() {
        let ((), wall) = WallTime::span(|| std::thread::sleep(Duration::from_millis(20)));
        assert!(wall >= Duration::from_millis(20), "{wall:?}");
    }

    #[test]
    fn add_and_zero() {
        let cpu = ProcessCpu;
        let (a, b) = (Duration::from_micros(1500), Duration::from_nanos(7));
        assert_eq!(cpu.zero(), Duration::ZERO);
        assert_eq!(cpu.add(&a, &cpu.zero()), a);
        assert_eq!(cpu.add(&cpu.zero(), &b), b);
        assert_eq!(cpu.add(&a, &b), Duration::from_nanos(1_500_007));
        assert_eq!(cpu.to_f64(&cpu.add(&a, &b)), 1_500_007.0);
        assert_eq!(cpu.to_f64(&cpu.zero()), 0.0);
    }

    #[test]
    fn prefixes_keep_the_two_passes_apart() {
        assert_eq!(WallTime::group_name("batch/x"), "batch/x");
        assert_eq!(ProcessCpu::group_name("batch/x"), "cpu/batch/x");
    }

    #[test]
    fn values_are_cpu_time_per_iteration() {
        let f = CpuFormatter;
        let mut values = [2_500.0, 40_000.0];
        assert_eq!(f.scale_values(2_500.0, &mut values), "µs cpu");
        assert_eq!(values, [2.5, 40.0]);
        let mut values = [3e6];
        assert_eq!(f.scale_values(3e6, &mut values), "ms cpu");
        assert_eq!(values, [3.0]);
        let mut values = [500.0];
        assert_eq!(f.scale_values(500.0, &mut values), "ns cpu");
        assert_eq!(values, [500.0]);
        let mut values = [2e9];
        assert_eq!(f.scale_values(2e9, &mut values), "s cpu");
        assert_eq!(values, [2.0]);
        assert_eq!(f.format_value(2_500.0), "2.5000 µs cpu");
    }

    #[test]
    fn throughput_is_per_cpu_second() {
        let f = CpuFormatter;
        // 1,000,000 items in 200 ms of CPU: 5 M items per CPU-second.
        let mut values = [200e6, 100e6];
        let unit = f.scale_throughputs(200e6, &Throughput::Elements(1_000_000), &mut values);
        assert_eq!(unit, "Melem/cpu-s");
        assert_eq!(values, [5.0, 10.0]);
        // 2 MiB in 1 s of CPU.
        let mut values = [1e9];
        let unit = f.scale_throughputs(1e9, &Throughput::Bytes(2 << 20), &mut values);
        assert_eq!(unit, "MiB/cpu-s");
        assert_eq!(values, [2.0]);
        // 1 element in 2 µs of CPU.
        let mut values = [2e3];
        let unit = f.scale_throughputs(2e3, &Throughput::Elements(1), &mut values);
        assert_eq!(unit, "Kelem/cpu-s");
        assert_eq!(values, [500.0]);
    }
}
