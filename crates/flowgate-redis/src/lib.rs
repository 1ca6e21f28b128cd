//! A Redis Streams consumer-group source for
//! [flowgate](https://docs.rs/flowgate) that acknowledges a message only
//! after its effect is durable.
//!
//! ```text
//!  XREADGROUP ──> Delivery ──> process ──> Batcher ──> sink (SQL) ──> ack ──> batched XACK
//!      ▲                                                                         │
//!      └──── pending until acked: redelivered after a crash (XAUTOCLAIM) ────────┘
//! ```
//!
//! - Reads with `XREADGROUP … COUNT n BLOCK ms`, creating the group (and the
//!   stream) if missing. Several consumers — in one process or on many
//!   machines — with different names in one group split the stream.
//! - Hands out each message as a [`Delivery`], which is acknowledged only by
//!   [`Delivery::ack`] (or its [`AckToken`]). Acks are sent as one `XACK` per
//!   batch through a [`flowgate::batch::Batcher`]; each ack resolves when its
//!   `XACK` was answered.
//! - After a restart, re-reads this consumer's own pending messages first;
//!   messages left pending by a dead consumer for
//!   [`claim_idle`](SourceBuilder::claim_idle) are taken over with
//!   `XAUTOCLAIM`.
//! - A message whose processing failed (its delivery was dropped without an
//!   ack, for example because its batch failed) is pending too: after
//!   `claim_idle` it is claimed again — by this consumer or another — so
//!   failures are retried with that delay.
//! - A message delivered more than [`max_deliveries`](SourceBuilder::max_deliveries)
//!   times is moved to a dead-letter stream (and acked) instead of crashing
//!   consumers forever.
//! - Bounded: at most [`max_in_flight`](SourceBuilder::max_in_flight)
//!   deliveries are out at once; reading pauses at the bound.
//! - Graceful shutdown: [`StopHandle::stop`] ends the stream; ack what was
//!   written, then [`Acker::close`] sends the last `XACK`s. Everything else
//!   stays pending for the next consumer.
//!
//! The guarantee is at-least-once: a message can be delivered again after a
//! crash between its write and its ack. Make the write idempotent (the
//! `flowgate-sql` sinks skip rows whose key is stored) and the effect is
//! exactly-once.
//!
//! # Example
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use flowgate_redis::RedisStreamSource;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut source = RedisStreamSource::builder("redis://127.0.0.1/", "events", "writers", "host-1")
//!     .connect()
//!     .await?;
//! while let Some(delivery) = source.next().await {
//!     let delivery = delivery?;
//!     // ... write delivery.field("body") durably, then:
//!     delivery.ack().await?;
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod delivery;
mod error;
mod source;

pub use delivery::{AckToken, Acker, Delivery, Message};
pub use error::{BuildError, SourceError};
pub use source::{RedisStreamSource, SourceBuilder, SourceStats, StopHandle};
