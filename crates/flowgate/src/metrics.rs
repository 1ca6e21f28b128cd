//! What flowgate's primitives report: counters, gauges and histograms through
//! the [`metrics`](https://docs.rs/metrics) facade, and `tracing` spans and
//! events.
//!
//! # Metrics (feature `metrics`)
//!
//! With the `metrics` feature, every primitive that has a bound or a queue
//! records the series below through the `metrics` facade crate. flowgate
//! ships no exporter: install the recorder of your choice
//! (`metrics-exporter-prometheus`, as the `flowgate` binary does for
//! `--metrics-addr`, or any other) before building the primitives. Without
//! the feature there is no cost at all; with it and no recorder installed,
//! each update is one branch on a no-op handle.
//!
//! **A primitive records metrics once it has a name**: the `name` setter of
//! its builder (or stage). The name is the `name` label of every series of
//! that instance, so give each instance its own; any string is accepted as
//! given. Unnamed instances record nothing (two unnamed queues would
//! otherwise share one depth gauge). Handles are registered when the
//! primitive is built, with the recorder current at that moment (the global
//! one, or a [`metrics::with_local_recorder`](https://docs.rs/metrics/0.24/metrics/fn.with_local_recorder.html) scope), one series per label
//! value, so every series exists — at zero — from the start.
//!
//! Conventions: names start with `flowgate_<module>_`; counters end in
//! `_total`; durations are histograms in seconds (`_seconds`); extra labels
//! are fixed sets: `reason` (why an item was refused or dropped), `outcome`
//! (`ok`, `error`, …), `state`.
//!
//! METRICS_TABLE
//!
//! # Tracing
//!
//! Spans and events use the module path as the target (`flowgate::batch`,
//! …), so `RUST_LOG=flowgate=debug` (with an `EnvFilter`) selects them.
//! Nothing is emitted per item at `info` level or above; every failure path
//! emits one event at `warn` (the primitive recovers or the caller gets the
//! error) or `error` (work is lost to the caller, e.g. a panicked flush).
//!
//! TRACING_TABLE

#[cfg(feature = "metrics")]
mod describe;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use describe::{Kind, METRICS, MetricInfo, describe};
