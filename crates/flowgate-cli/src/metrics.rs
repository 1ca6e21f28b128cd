//! `--metrics-addr`: the binary's Prometheus endpoint.
//!
//! [`serve`] installs `metrics-exporter-prometheus` as the process's
//! `metrics` recorder, with an HTTP listener that answers every GET with the
//! Prometheus text format: flowgate's own series (see `flowgate::metrics`)
//! and the command's totals ([`INGEST`], [`RUN`]). Durations
//! (`…_seconds`) are Prometheus histograms with the buckets of
//! [`SECONDS_BUCKETS`]; sizes (`…_size`: items per batch or fetch) with [`SIZE_BUCKETS`].

use std::fmt;
use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Histogram buckets for durations, in seconds: 100 µs to 60 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Histogram buckets for sizes (items per batch): 1 to 100,000.
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0,
    100_000.0,
];

/// The series of `flowgate ingest` itself, besides the primitives' own: each
/// agrees with the line of the final report it is named after.
pub const INGEST: &[(&str, &str)] = &[
    (
        "flowgate_ingest_received_total",
        "messages taken from the source (report: received)",
    ),
    (
        "flowgate_ingest_messages_total",
        "messages by outcome, label outcome = written | duplicate | dead_lettered | failed | unacked (report: the line of that name)",
    ),
    (
        "flowgate_ingest_acked_total",
        "messages acknowledged to the source (report: acked)",
    ),
    (
        "flowgate_ingest_sink_retries_total",
        "sink writes retried after a transient failure (report: retries)",
    ),
    (
        "flowgate_ingest_in_flight",
        "messages received whose outcome is not known yet",
    ),
    (
        "flowgate_ingest_sink_down",
        "1 while the sink is failing and reads are paused, else 0",
    ),
    (
        "flowgate_ingest_ack_latency_seconds",
        "time from receipt to acknowledgement, per acked message",
    ),
];

/// The series of `flowgate run` itself: each agrees with the summary line of
/// its name.
pub const RUN: &[(&str, &str)] = &[
    (
        "flowgate_run_items_total",
        "input items read (summary: items)",
    ),
    (
        "flowgate_run_jobs_total",
        "finished jobs by outcome, label outcome = succeeded | failed (summary: succeeded, failed)",
    ),
    (
        "flowgate_run_jobs_timed_out_total",
        "failed jobs whose last attempt timed out (summary: timed out)",
    ),
    (
        "flowgate_run_jobs_retried_total",
        "jobs that needed more than one attempt (summary: retried)",
    ),
    (
        "flowgate_run_retries_total",
        "extra attempts in all (summary: retries)",
    ),
    (
        "flowgate_run_skipped_total",
        "items not run, label reason = resume | dedup (summary: skipped)",
    ),
    ("flowgate_run_jobs_running", "jobs running now"),
    (
        "flowgate_run_jobs_waiting",
        "items read and waiting for a slot or for their key",
    ),
];

/// Why `--metrics-addr` could not be served.
#[derive(Debug)]
pub struct ServeError {
    addr: SocketAddr,
    source: BuildError,
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--metrics-addr {}: cannot serve metrics there",
            self.addr
        )
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Serves Prometheus text on `addr` (any path) from now until the process
/// exits, and makes it the recorder of every series recorded from now on.
/// Call it from within the tokio runtime, before building the pipeline.
///
/// # Errors
///
/// If the address cannot be bound (in use, not local, no permission), or a
/// recorder is already installed.
pub fn serve(addr: SocketAddr) -> Result<(), ServeError> {
    let fail = |source| ServeError { addr, source };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
        .map_err(fail)?
        .install()
        .map_err(fail)?;
    #[cfg(feature = "metrics")]
    flowgate::metrics::describe();
    describe(INGEST);
    describe(RUN);
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(())
}

fn describe(series: &[(&'static str, &'static str)]) {
    for &(name, help) in series {
        if name.ends_with("_total") {
            metrics::describe_counter!(name, help);
        } else if name.ends_with("_seconds") {
            metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
        } else {
            metrics::describe_gauge!(name, help);
        }
    }
}
