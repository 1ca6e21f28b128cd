//! The crate's one way to record a metric: handles registered once, when a
//! primitive is built, and cheap to update on the hot path.
//!
//! With the `metrics` feature off every handle is a zero-sized type whose
//! methods are empty and inline: no cost. With it on, a handle is the
//! `metrics` facade's own (`metrics::Counter`, …), registered with the
//! recorder that is current when the primitive is built (the global one, or
//! a `metrics::with_local_recorder` scope in tests); with no recorder it is a
//! no-op handle (one branch per update); an unnamed primitive's handles are
//! empty (`None`): one inlined branch per update and no call into `metrics`.
//!
//! A primitive records metrics only once it has a [`Name`]: the user's label
//! `name="…"` on every series. Unnamed primitives hold no-op handles, so two
//! unnamed queues never share one gauge.
//!
//! Every handle is registered eagerly, at build time — one per label value
//! (`reason="full"`, `reason="closed"`, …) — so the hot path never looks a
//! key up, and a recorder installed for a scope sees every series.

use std::fmt;
use std::sync::Arc;

/// The user-given name of one primitive instance: the `name` label of its
/// series and a field of its tracing spans. Cheap to clone.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Name(Option<Arc<str>>);

impl Name {
    /// A name; any string is accepted (the empty one too, as given).
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Name(Some(Arc::from(name.into())))
    }

    /// No name: no metrics, spans say `name = ""`.
    pub(crate) const fn none() -> Self {
        Name(None)
    }

    /// The name, if one was given.
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The name, or `""` when none was given (for span fields).
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// Whether a name was given (and so metrics are recorded).
    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// A counter `metric{name="…"}`; a no-op one when unnamed.
    pub(crate) fn counter(&self, metric: &'static str) -> Counter {
        self.counter_with(metric, &[])
    }

    /// A counter `metric{name="…", k="v", …}` for a fixed set of extra labels.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn counter_with(
        &self,
        metric: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Counter {
        #[cfg(feature = "metrics")]
        {
            match &self.0 {
                Some(name) => Counter(Some(::metrics::counter!(metric, labels_of(name, labels)))),
                None => Counter(None),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Counter()
    }

    /// A gauge `metric{name="…"}`; a no-op one when unnamed.
    pub(crate) fn gauge(&self, metric: &'static str) -> Gauge {
        self.gauge_with(metric, &[])
    }

    /// A gauge with extra fixed labels.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn gauge_with(
        &self,
        metric: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Gauge {
        #[cfg(feature = "metrics")]
        {
            match &self.0 {
                Some(name) => Gauge(Some(::metrics::gauge!(metric, labels_of(name, labels)))),
                None => Gauge(None),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Gauge()
    }

    /// A histogram `metric{name="…"}`; a no-op one when unnamed.
    pub(crate) fn histogram(&self, metric: &'static str) -> Histogram {
        self.histogram_with(metric, &[])
    }

    /// A histogram with extra fixed labels.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn histogram_with(
        &self,
        metric: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Histogram {
        #[cfg(feature = "metrics")]
        {
            match &self.0 {
                Some(name) => {
                    Histogram(Some(::metrics::histogram!(metric, labels_of(name, labels))))
                }
                None => Histogram(None),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Histogram()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => fmt::Debug::fmt(name, f),
            None => f.write_str("None"),
        }
    }
}

impl<S: Into<String>> From<S> for Name {
    fn from(name: S) -> Self {
        Name::new(name)
    }
}

#[cfg(feature = "metrics")]
fn labels_of(name: &Arc<str>, labels: &[(&'static str, &'static str)]) -> Vec<::metrics::Label> {
    let mut all = Vec::with_capacity(1 + labels.len());
    all.push(::metrics::Label::new("name", name.to_string()));
    all.extend(
        labels
            .iter()
            .map(|&(k, v)| ::metrics::Label::from_static_parts(k, v)),
    );
    all
}

/// A monotonic counter (`_total`).
#[derive(Clone)]
pub(crate) struct Counter(#[cfg(feature = "metrics")] Option<::metrics::Counter>);

impl Counter {
    /// A handle that records nothing.
    pub(crate) fn noop() -> Self {
        #[cfg(feature = "metrics")]
        {
            Counter(None)
        }
        #[cfg(not(feature = "metrics"))]
        Counter()
    }

    /// Adds `n`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn add(&self, n: u64) {
        #[cfg(feature = "metrics")]
        if let Some(counter) = &self.0 {
            counter.increment(n);
        }
    }

    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }
}

/// A value that goes up and down (a depth, a limit, a state).
#[derive(Clone)]
pub(crate) struct Gauge(#[cfg(feature = "metrics")] Option<::metrics::Gauge>);

impl Gauge {
    /// A handle that records nothing.
    pub(crate) fn noop() -> Self {
        #[cfg(feature = "metrics")]
        {
            Gauge(None)
        }
        #[cfg(not(feature = "metrics"))]
        Gauge()
    }

    /// Sets the value.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn set(&self, value: f64) {
        #[cfg(feature = "metrics")]
        if let Some(gauge) = &self.0 {
            gauge.set(value);
        }
    }

    /// Adds `by` (may be fractional).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn add(&self, by: f64) {
        #[cfg(feature = "metrics")]
        if let Some(gauge) = &self.0 {
            gauge.increment(by);
        }
    }

    /// Subtracts `by`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn sub(&self, by: f64) {
        #[cfg(feature = "metrics")]
        if let Some(gauge) = &self.0 {
            gauge.decrement(by);
        }
    }

    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub(crate) fn dec(&self) {
        self.sub(1.0);
    }
}

/// A distribution (batch sizes, latencies in seconds).
#[derive(Clone)]
pub(crate) struct Histogram(#[cfg(feature = "metrics")] Option<::metrics::Histogram>);

impl Histogram {
    /// A handle that records nothing.
    pub(crate) fn noop() -> Self {
        #[cfg(feature = "metrics")]
        {
            Histogram(None)
        }
        #[cfg(not(feature = "metrics"))]
        Histogram()
    }

    /// Records one value.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn record(&self, value: f64) {
        #[cfg(feature = "metrics")]
        if let Some(histogram) = &self.0 {
            histogram.record(value);
        }
    }

    /// Records a duration, in seconds.
    #[inline]
    pub(crate) fn record_duration(&self, elapsed: std::time::Duration) {
        self.record(elapsed.as_secs_f64());
    }
}

/// All the handles of one primitive, present only once it is named: an
/// unnamed primitive pays one inlined branch per event, however many series
/// the event updates (with per-handle options it would pay one per handle).
/// With the feature off it is zero-sized and `with` is empty.
pub(crate) struct Series<T>(
    #[cfg(feature = "metrics")] Option<Box<T>>,
    #[cfg(not(feature = "metrics"))] std::marker::PhantomData<fn() -> T>,
);

impl<T> Series<T> {
    /// The handles `make` registers under `name`; none when it is unnamed
    /// (and `make` is not called).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &Name, make: impl FnOnce(&Name) -> T) -> Self {
        #[cfg(feature = "metrics")]
        {
            Series(name.is_some().then(|| Box::new(make(name))))
        }
        #[cfg(not(feature = "metrics"))]
        Series(std::marker::PhantomData)
    }

    /// No handles.
    pub(crate) fn none() -> Self {
        #[cfg(feature = "metrics")]
        {
            Series(None)
        }
        #[cfg(not(feature = "metrics"))]
        Series(std::marker::PhantomData)
    }

    /// Whether there are handles: the primitive is named and the feature
    /// is on (always `false` without the feature, so a branch on it is
    /// compiled out).
    #[inline(always)]
    pub(crate) fn is_some(&self) -> bool {
        #[cfg(feature = "metrics")]
        {
            self.0.is_some()
        }
        #[cfg(not(feature = "metrics"))]
        false
    }

    /// Runs `f` on the handles, if there are any.
    #[inline(always)]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn with(&self, f: impl FnOnce(&T)) {
        #[cfg(feature = "metrics")]
        if let Some(series) = &self.0 {
            f(series);
        }
    }

    /// Runs `f` on the handles mutably, if there are any.
    #[inline(always)]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn with_mut(&mut self, f: impl FnOnce(&mut T)) {
        #[cfg(feature = "metrics")]
        if let Some(series) = &mut self.0 {
            f(series);
        }
    }
}

impl<T> fmt::Debug for Series<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Series")
    }
}

macro_rules! debug_opaque {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($t))
            }
        }
    )*};
}
debug_opaque!(Counter, Gauge, Histogram);

/// A gauge that follows a count with `+1` on creation and `-1` on drop: for
/// "in flight" gauges whose items may be dropped on any path (cancelled
/// futures, panics) without a matching decrement being forgotten.
#[derive(Debug)]
pub(crate) struct GaugeGuard {
    gauge: Gauge,
}

impl GaugeGuard {
    /// Increments `gauge` and returns the guard that decrements it.
    #[inline]
    pub(crate) fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        GaugeGuard {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for GaugeGuard {
    #[inline]
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
