//! Workloads of the criterion benchmarks in `benches/`, shared with the
//! profiling examples in `examples/`. Each function runs one side of a
//! side-by-side comparison; see `BENCHMARKS.md` for the results. [`e2e`]
//! holds the hand-written peers of the end-to-end benchmark (binaries in
//! `src/bin/`, run by `dev/bench-e2e.sh`).
//!
//! [`cpu`] is the criterion measurement of CPU time ([`cpu::ProcessCpu`]) and
//! the [`cpu::Clock`] trait the benches are generic over: every group in
//! `benches/` is reported twice, in wall time and in process CPU time (its
//! name prefixed `cpu/`), so a lead that comes from preemption shows.

pub mod batch;
pub mod coalesce;
pub mod cpu;
pub mod dataloader;
pub mod e2e;
pub mod group;

/// The runtime a profiling example runs on: `"multi_thread"` (2 workers,
/// what the benches use) or `"current_thread"`; every driver enabled.
///
/// # Panics
///
/// On any other flavor, naming the two; or if the runtime cannot be built.
pub fn example_runtime(flavor: &str) -> tokio::runtime::Runtime {
    match flavor {
        "multi_thread" => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
        "current_thread" => tokio::runtime::Builder::new_current_thread(),
        other => panic!("unknown runtime {other:?}: multi_thread or current_thread"),
    }
    .enable_all()
    .build()
    .expect("a tokio runtime")
}
