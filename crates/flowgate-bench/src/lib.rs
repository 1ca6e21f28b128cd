//! Workloads of the criterion benchmarks in `benches/`, shared with the
//! profiling examples in `examples/`. Each function runs one side of a
//! side-by-side comparison; see `BENCHMARKS.md` for the results.

pub mod batch;
pub mod dataloader;
