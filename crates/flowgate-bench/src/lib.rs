//! Criterion benchmarks of flowgate against named peers; see `benches/` and `BENCHMARKS.md`.
