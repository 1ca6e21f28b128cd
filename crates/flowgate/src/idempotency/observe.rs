//! The metrics handles of one named [`Idempotency`](super::Idempotency),
//! registered by [`Idempotency::name`](super::Idempotency::name).

use crate::store::StoreError;
use crate::telemetry::{Counter, Gauge, Name};

const EFFECTS: &str = "flowgate_idempotency_effects_total";
const STORE_ERRORS: &str = "flowgate_idempotency_store_errors_total";

/// Every series of one `Idempotency` (shared by its clones); no-op handles
/// when it has no name.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) name: Name,
    ok: Counter,
    failed: Counter,
    skipped: Counter,
    lookup: Counter,
    record: Counter,
    pub(crate) running: Gauge,
    pub(crate) waiting: Gauge,
}

impl Metrics {
    pub(crate) fn new(name: Name) -> Self {
        Metrics {
            ok: name.counter_with(EFFECTS, &[("outcome", "ok")]),
            failed: name.counter_with(EFFECTS, &[("outcome", "error")]),
            skipped: name.counter("flowgate_idempotency_skipped_total"),
            lookup: name.counter_with(STORE_ERRORS, &[("reason", "lookup")]),
            record: name.counter_with(STORE_ERRORS, &[("reason", "record")]),
            running: name.gauge("flowgate_idempotency_effects_running"),
            waiting: name.gauge("flowgate_idempotency_runs_waiting"),
            name,
        }
    }

    pub(crate) fn skipped(&self) {
        self.skipped.inc();
    }

    pub(crate) fn succeeded(&self) {
        self.ok.inc();
    }

    /// The effect returned an error (handed to the caller; the key is not
    /// recorded, so a redelivery runs it again).
    pub(crate) fn failed(&self) {
        self.failed.inc();
        tracing::warn!(
            target: "flowgate::idempotency",
            name = %self.name.as_str(),
            "idempotent effect failed; its key is not recorded"
        );
    }

    /// The store could not be read: the effect did not run.
    pub(crate) fn lookup_failed(&self, error: &StoreError) {
        self.lookup.inc();
        tracing::warn!(
            target: "flowgate::idempotency",
            name = %self.name.as_str(),
            error = %error,
            "idempotency store lookup failed; the effect did not run"
        );
    }

    /// The effect succeeded but its key could not be recorded: a redelivery
    /// would run it again. Logged at `error`: the at-most-once promise is
    /// broken for that key.
    pub(crate) fn record_failed(&self, error: &StoreError) {
        self.ok.inc();
        self.record.inc();
        tracing::error!(
            target: "flowgate::idempotency",
            name = %self.name.as_str(),
            error = %error,
            "idempotency key not recorded after its effect succeeded: a redelivery would repeat the effect"
        );
    }
}
