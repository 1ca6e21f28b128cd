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
