//! What the primitives report: `metrics` series (feature `metrics`) read
//! back from a recorder scoped to each test, and `tracing` spans and events
//! read back from a subscriber scoped to each test.
//!
//! Every test builds its primitive inside [`common::Recorded::scope`] (so its
//! handles are registered with the test's own recorder) and runs on a
//! current-thread runtime (so the thread-local subscriber sees the
//! primitive's own tasks).

mod batch;
mod broadcast;
#[cfg(feature = "metrics")]
mod catalog;
mod coalesce;
mod common;
mod dataloader;
mod group;
mod idempotency;
mod limit;
mod pipeline;
mod resilience;
mod source;
