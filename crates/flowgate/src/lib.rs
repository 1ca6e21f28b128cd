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
//! | [`batch`] | [`Batcher`]: many tasks submit items, one function flushes them in batches (by size, delay or bytes), each submitter's [`Flushed`](batch::Flushed) (or [`submit_and_wait`](Batcher::submit_and_wait)) resolves when *its* item was flushed |
//! | [`broadcast`] | [`Publisher`] and [`Subscriber`]: an event stream in which every subscriber sees every event published after it subscribed, in order, with nothing lost (unbounded, or bounded by waiting for the slowest subscriber) |
//! | [`coalesce`] | [`OpQueue`]: keyed, bounded, coalescing queue — items that share a key while it is queued are dequeued together (or merged), oldest key first; a windowed mode debounces each key |
//! | [`dataloader`] | [`DataLoader`]: `load(key)` calls from many tasks within a window become one `batch_fetch(keys)` of distinct keys, with an error per key and an optional bounded TTL cache; built on [`Batcher`] |
//! | [`group`] | [`CallGroup`]: scatter/gather — add operations by id, finish each from anywhere, get every [`Outcome`](group::Outcome) by id once the last one is done (abandoned and timed-out ops included) |
//! | [`idempotency`] | [`Idempotency`]: runs an item's effect only if its key was not processed successfully before, recording the key after success in an [`IdempotencyStore`] (bounded TTL memory store here, SQLite in `flowgate-sql`) |
//! | [`pipeline`] | [`PipelineExt`]: stream operators for fan-out/fan-in (`par_map`), rate limits, in-flight limits, throttle, debounce, timeouts, heartbeat, batching, branching, dedup, progress and cancellation; `use flowgate::prelude::*` |
//! | [`resilience`] | [`Retry`] with [`Backoff`] (attempts, time budget, jitter), [`CircuitBreaker`], [`AdaptiveLimit`] (AIMD concurrency), dead-letter routing, [`PauseHandle`] to pause the source on error, and [`Guard`] to put them all around one call; stages `par_map_retry`, `par_map_adaptive`, `route_errors`, `pausable` |
//! | [`source`] | [`CursorSource`]: a stream paged from `fetch(cursor)` only as fast as downstream acknowledges, with pause/resume/stop through a [`SourceControl`], committing the cursor to a [`CheckpointStore`] once every item before it was acked, so a restart skips nothing and redoes at most `max_pages_in_flight` pages |
//!
//! # Features
//!
//! - `progress-bar`: an [`indicatif`](https://docs.rs/indicatif) progress bar
//!   for a pipeline stage, [`Observe::with_bar`](pipeline::Observe).
//! - `tower`: the circuit breaker and the adaptive limit as tower layers,
//!   and [`Retry`] as a `tower::retry::Policy` (see
//!   [resilience](resilience#tower)).
//!
//! The SQLite checkpoint and idempotency stores are in the `flowgate-sql`
//! crate (feature `sqlite`), next to its sinks.
//!
//! # Unsafe code
//!
//! `unsafe` is denied crate-wide and allowed in two places only, where a
//! benchmark showed it pays: the block storage of [`broadcast`], and the
//! acknowledgement slot and the `submit_and_wait` waiters of [`batch`]. Every access carries a `// SAFETY:`
//! comment and is checked by loom models
//! (`RUSTFLAGS="--cfg loom" cargo test --release -p flowgate --test loom_broadcast`,
//! and `--lib batch::` for the batch slot) and under miri
//! (`cargo +nightly miri test -p flowgate --lib`).
//!
//! # Guarantees every primitive keeps
//!
//! - Every queue is bounded, or says loudly why not.
//! - No future you await hangs because the other side was dropped, closed or
//!   panicked: it resolves with a typed error.
//! - Configuration is validated when it is built, with an error naming the
//!   broken rule.
//! - A duration that is a timer (a timeout, a delay, a window, a TTL, a
//!   cooldown) too long for an `Instant` — up to `Duration::MAX` — means
//!   "never", as `tokio::time::sleep(Duration::MAX)` does; it never
//!   overflows into a panic or a timer that fires at once.
//! - Every async method documents whether it is cancel-safe and what a
//!   cancelled call loses.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings), allow(unused_variables))))]

pub mod batch;
pub mod broadcast;
pub mod coalesce;
pub mod dataloader;
pub mod group;
pub mod idempotency;
pub mod pipeline;
pub mod prelude;
pub mod resilience;
pub mod source;

mod expiring;
mod loom;
mod store;
mod sync;
mod time;

pub use batch::Batcher;
pub use broadcast::{Publisher, Subscriber};
pub use coalesce::OpQueue;
pub use dataloader::DataLoader;
pub use group::CallGroup;
pub use idempotency::{Idempotency, IdempotencyStore};
pub use pipeline::{InFlightLimit, PipelineExt, Rate, RateLimiter};
pub use resilience::{AdaptiveLimit, Backoff, CircuitBreaker, Guard, PauseHandle, Retry};
pub use source::{CheckpointStore, CursorSource, SourceControl};
pub use store::StoreError;
