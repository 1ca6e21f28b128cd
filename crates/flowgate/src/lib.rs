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
//! | [`batch`] | [`Batcher`]: many tasks submit items, one function flushes them in batches (by size, delay or bytes), each submitter's [`Ack`](batch::Ack) (or [`submit_and_wait`](Batcher::submit_and_wait)) resolves when *its* item was flushed |
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

mod loom;
mod sync;

pub use batch::Batcher;
