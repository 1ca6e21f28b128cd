//! The series a named limiter records (the table is in [`crate::metrics`]).
//!
//! Each limiter registers only the series it has, once, when it is built;
//! an unnamed limiter holds no-op handles and registers nothing.

use crate::telemetry::{Counter, Gauge, Histogram, Name};

/// Permits or cells handed out, by any path (counter).
const GRANTED: &str = "flowgate_limit_granted_total";
/// Callers waiting now (gauge).
const WAITING: &str = "flowgate_limit_waiting";
/// `try_acquire` calls refused, by `reason` (counter).
const REJECTED: &str = "flowgate_limit_rejected_total";
/// How long a waiting acquire waited, from the limiter's own times
/// (histogram, seconds).
const WAIT: &str = "flowgate_limit_wait_seconds";
/// Permits held now (gauge).
const IN_FLIGHT: &str = "flowgate_limit_in_flight";
/// Keys a keyed limiter keeps state for (gauge).
const KEYS: &str = "flowgate_limit_keys";

/// Which limiter the series are for: each has its own subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `RateLimiter`, `FairRate`: a wait histogram, `reason="not_ready"`.
    Rate,
    /// `KeyedRateLimiter`: as `Rate`, plus the keys gauge.
    Keyed,
    /// `InFlightLimit`, `FairLimit`: an in-flight gauge,
    /// `reason="no_capacity"`.
    InFlight,
}

/// The handles of one limiter; clones of the handles share the series.
#[derive(Debug)]
pub(crate) struct LimitMetrics {
    pub(crate) name: Name,
    pub(crate) granted: Counter,
    pub(crate) waiting: Gauge,
    pub(crate) rejected: Counter,
    pub(crate) wait: Histogram,
    pub(crate) in_flight: Gauge,
    pub(crate) keys: Gauge,
}

impl LimitMetrics {
    pub(super) fn new(name: Name, kind: Kind) -> LimitMetrics {
        let rate = matches!(kind, Kind::Rate | Kind::Keyed);
        let in_flight = kind == Kind::InFlight;
        let reason = if rate { "not_ready" } else { "no_capacity" };
        LimitMetrics {
            granted: name.counter(GRANTED),
            waiting: name.gauge(WAITING),
            rejected: name.counter_with(REJECTED, &[("reason", reason)]),
            wait: if rate {
                name.histogram(WAIT)
            } else {
                Histogram::noop()
            },
            in_flight: if in_flight {
                name.gauge(IN_FLIGHT)
            } else {
                Gauge::noop()
            },
            keys: if kind == Kind::Keyed {
                name.gauge(KEYS)
            } else {
                Gauge::noop()
            },
            name,
        }
    }

    /// A wait of `nanos` on the limiter's clock.
    #[inline]
    pub(crate) fn waited(&self, nanos: u64) {
        self.wait.record(nanos as f64 / 1e9);
    }
}

/// `Debug` of a named primitive: `name: "…"` is added when it has one, so
/// unnamed ones print as before.
pub(crate) trait DebugName {
    fn name_field(&mut self, name: &Name) -> &mut Self;
}

impl DebugName for std::fmt::DebugStruct<'_, '_> {
    fn name_field(&mut self, name: &Name) -> &mut Self {
        if let Some(name) = name.get() {
            self.field("name", &name);
        }
        self
    }
}
