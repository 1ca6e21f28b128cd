//! The list of every series flowgate records, for [`describe`] and for
//! tooling (dashboards, tests).

/// Which kind of series a [`MetricInfo`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A monotonic counter (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

/// One series flowgate records: its name, kind, unit, extra labels and help
/// text (the same as the table in [the module docs](crate::metrics)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricInfo {
    /// The series name, e.g. `flowgate_batch_items_submitted_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The unit, as the `metrics` crate names it.
    pub unit: metrics::Unit,
    /// Labels besides `name`, with their fixed values, e.g.
    /// `&[("reason", &["full", "closed"])]`.
    pub labels: &'static [(&'static str, &'static [&'static str])],
    /// What it counts or measures (the Prometheus `# HELP` line).
    pub help: &'static str,
}

/// Every series flowgate records, in the order of the table in
/// [the module docs](crate::metrics).
///
/// ```
/// let names: Vec<_> = flowgate::metrics::METRICS.iter().map(|m| m.name).collect();
/// assert!(names.iter().all(|n| n.starts_with("flowgate_")));
/// ```
pub const METRICS: &[MetricInfo] = &[
    // METRICS_LIST
];

/// Describes every series of [`METRICS`] (unit and help text) to the
/// installed recorder: call it once, after installing the recorder, so that
/// an exporter prints `# HELP` lines and units.
///
/// Optional: series are recorded without it.
///
/// ```
/// // With no recorder installed this does nothing.
/// flowgate::metrics::describe();
/// ```
pub fn describe() {
    for info in METRICS {
        match info.kind {
            Kind::Counter => metrics::describe_counter!(info.name, info.unit, info.help),
            Kind::Gauge => metrics::describe_gauge!(info.name, info.unit, info.help),
            Kind::Histogram => metrics::describe_histogram!(info.name, info.unit, info.help),
        }
    }
}
