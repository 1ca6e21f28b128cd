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
//! | [`broadcast`] | [`Publisher`] and [`Subscriber`]: an event stream in which every subscriber sees every event published after it subscribed, in order, with nothing lost (unbounded, or bounded by waiting for the slowest subscriber) |
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
//!
//! # Unsafe code
//!
//! `unsafe` is denied crate-wide and allowed in one module only, the block
//! storage of [`broadcast`], where a benchmark showed it pays. Its accesses
//! carry `// SAFETY:` comments and are checked by loom models
//! (`RUSTFLAGS="--cfg loom" cargo test --release -p flowgate --test loom_broadcast`)
//! and under miri (`cargo +nightly miri test -p flowgate --lib broadcast`).
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings), allow(unused_variables))))]

pub mod batch;
pub mod broadcast;

mod loom;
mod sync;

pub use batch::Batcher;
pub use broadcast::{Publisher, Subscriber};
