//! Flow-control and coordination primitives for async services that move
//! messages, on tokio.
//!
//! flowgate is for services that consume from brokers, call rate-limited APIs,
//! batch writes into databases and push events to many clients — and that must
//! not lose data at shutdown.
//!
//! # Modules
//!
//! | module | what it gives you |
//! |---|---|
//! | [`batch`] | [`Batcher`]: many tasks submit items, one function flushes them in batches (by size, delay or bytes), each submitter's [`Ack`](batch::Ack) resolves when *its* item was flushed |
//! | [`pipeline`] | [`PipelineExt`]: stream operators for fan-out/fan-in (`par_map`), rate limits, in-flight limits, throttle, debounce, timeouts, heartbeat, batching, branching, dedup, progress and cancellation; `use flowgate::prelude::*` |
//! | [`resilience`] | [`Retry`] with [`Backoff`] (attempts, time budget, jitter), [`CircuitBreaker`], [`AdaptiveLimit`] (AIMD concurrency), dead-letter routing, [`PauseHandle`] to pause the source on error, and [`Guard`] to put them all around one call; stages `par_map_retry`, `par_map_adaptive`, `route_errors`, `pausable` |
//!
//! # Features
//!
//! - `progress-bar`: an [`indicatif`](https://docs.rs/indicatif) progress bar
//!   for a pipeline stage, [`Observe::with_bar`](pipeline::Observe).
//! - `tower`: the circuit breaker and the adaptive limit as tower layers,
//!   and [`Retry`] as a `tower::retry::Policy` (see
//!   [resilience](resilience#tower)).
//!
//! # Guarantees every primitive keeps
//!
//! - Every queue is bounded, or says loudly why not.
//! - No future you await hangs because the other side was dropped, closed or
//!   panicked: it resolves with a typed error.
//! - Configuration is validated when it is built, with an error naming the
//!   broken rule.
//! - Every async method documents whether it is cancel-safe and what a
//!   cancelled call loses.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings), allow(unused_variables))))]

pub mod batch;
pub mod pipeline;
pub mod prelude;
pub mod resilience;

mod loom;
mod sync;

pub use batch::Batcher;
pub use pipeline::{InFlightLimit, PipelineExt, Rate, RateLimiter};
pub use resilience::{AdaptiveLimit, Backoff, CircuitBreaker, Guard, PauseHandle, Retry};
