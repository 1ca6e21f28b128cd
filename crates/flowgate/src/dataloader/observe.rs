//! What a data loader reports: its `flowgate_dataloader_*` series (its
//! batcher, named the same, reports the `flowgate_batch_*` ones) and the
//! events of a batch fetch that returned errors for some keys.

use super::error::LoadError;
use crate::telemetry::{Counter, Histogram, Name};

/// The target of the data loader's events.
pub(crate) const TARGET: &str = "flowgate::dataloader";

/// The `outcome` of one key's result, for
/// `flowgate_dataloader_key_results_total`.
const KEY_OUTCOMES: [&str; 6] = [
    "ok",
    "key_error",
    "missing",
    "fetch_error",
    "panic",
    "closed",
];

/// The series of one loader; no-op handles when it has no name.
#[derive(Debug)]
pub(crate) struct LoaderMetrics {
    pub(crate) name: Name,
    /// `flowgate_dataloader_loads_total`.
    pub(crate) loads: Counter,
    /// `flowgate_dataloader_cache_hits_total`.
    pub(crate) cache_hits: Counter,
    /// `flowgate_dataloader_cache_misses_total`.
    pub(crate) cache_misses: Counter,
    /// `flowgate_dataloader_joined_total`.
    pub(crate) joined: Counter,
    /// `flowgate_dataloader_fetch_size`: keys per batch fetch.
    pub(crate) fetch_size: Histogram,
    /// `flowgate_dataloader_fetch_errors_total{reason="error"}`.
    pub(crate) fetch_failed: Counter,
    /// `flowgate_dataloader_fetch_errors_total{reason="panic"}`.
    pub(crate) fetch_panicked: Counter,
    /// `flowgate_dataloader_key_results_total{outcome}`, by [`KEY_OUTCOMES`].
    key_results: [Counter; 6],
}

impl LoaderMetrics {
    /// Registers every series of a loader named `name`.
    pub(crate) fn new(name: Name) -> Self {
        LoaderMetrics {
            loads: name.counter("flowgate_dataloader_loads_total"),
            cache_hits: name.counter("flowgate_dataloader_cache_hits_total"),
            cache_misses: name.counter("flowgate_dataloader_cache_misses_total"),
            joined: name.counter("flowgate_dataloader_joined_total"),
            fetch_size: name.histogram("flowgate_dataloader_fetch_size"),
            fetch_failed: name.counter_with(
                "flowgate_dataloader_fetch_errors_total",
                &[("reason", "error")],
            ),
            fetch_panicked: name.counter_with(
                "flowgate_dataloader_fetch_errors_total",
                &[("reason", "panic")],
            ),
            key_results: KEY_OUTCOMES.map(|outcome| {
                name.counter_with(
                    "flowgate_dataloader_key_results_total",
                    &[("outcome", outcome)],
                )
            }),
            name,
        }
    }

    /// A key's fetch resolved with `result`.
    pub(crate) fn key_result<V, E>(&self, result: &Result<V, LoadError<E>>) {
        let index = match result {
            Ok(_) => 0,
            Err(LoadError::Key(_)) => 1,
            Err(LoadError::Missing) => 2,
            Err(LoadError::Fetch(_)) => 3,
            Err(LoadError::Panicked(_)) => 4,
            Err(LoadError::Closed) => 5,
        };
        self.key_results[index].inc();
    }
}
