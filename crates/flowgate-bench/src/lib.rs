//! Workloads of the criterion benchmarks in `benches/`, shared with the
//! profiling examples in `examples/`. Each function runs one side of a
//! side-by-side comparison; see `BENCHMARKS.md` for the results. [`e2e`]
//! holds the hand-written peers of the end-to-end benchmark (binaries in
//! `src/bin/`, run by `dev/bench-e2e.sh`).

pub mod batch;
pub mod coalesce;
pub mod dataloader;
pub mod e2e;
