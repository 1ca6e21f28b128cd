//! A Kafka consumer-group source for [flowgate](https://docs.rs/flowgate):
//! offsets are committed, per partition, only up to the contiguous
//! acknowledged offset, so nothing is committed before its effect is
//! durable.
//!
//! ```text
//!  poll (reader thread, while room) ──> Delivery ──> process ──> sink ──> ack ──> watermark ─┐
//!        ▲   pause / resume at max_in_flight                                                 │
//!        └── commit every commit_interval: one offset per partition, the contiguous point <─┘
//! ```
//!
//! - A member of consumer group `group` reading `topics` through librdkafka
//!   (bundled; no system library), with automatic commits and offset stores
//!   off: the source commits itself. Several sources with the same group —
//!   in one process or on many machines — split the partitions; Kafka
//!   rebalances them as members come and go.
//! - Hands out each message as a [`Delivery`], resolved by exactly one of:
//!   - [`ack`](Delivery::ack) — done: the offset is marked in its
//!     partition's [`Watermark`](flowgate::source::Watermark);
//!     [`Acker::ack_all`] marks a written batch under one lock. Every
//!     [`commit_interval`](SourceBuilder::commit_interval) the reader commits,
//!     for each partition that moved, the offset after the highest one below
//!     which everything is resolved — never past a message still out, however
//!     the messages finish;
//!   - [`nak`](Delivery::nak)`(delay)` — not now (a sink that failed): handed
//!     out again after `delay`; its partition's commit point waits for it;
//!   - [`dead_letter`](Delivery::dead_letter)`(reason)` — bad content: the
//!     record is produced to the dead-letter topic (default
//!     `<topic>.dead`) with its key, value, headers and the
//!     [`headers`](delivery::headers) `flowgate-topic`, `flowgate-partition`,
//!     `flowgate-offset`, `flowgate-group` and `flowgate-reason`, and once
//!     the brokers confirmed it, resolved as done;
//!   - dropping it — nak'd at once (Kafka cannot skip a message).
//! - **Rebalances**: when partitions are revoked the reader waits (up to
//!   [`revoke_grace`](SourceBuilder::revoke_grace)) for their messages that
//!   are out, commits what is done, and drops the rest of theirs — the new
//!   owner reads them from the commit. A resolution that comes later gets
//!   [`Revoked`] and changes nothing. Assigned partitions start fresh from
//!   their committed offsets.
//! - **Ordering** ([`Ordering`]): unordered by default; [`Ordering::Key`]
//!   hands a message out only once the one before it with the same key in
//!   its partition is resolved, [`Ordering::Partition`] one per partition.
//! - **Bounded**: at most [`max_in_flight`](SourceBuilder::max_in_flight)
//!   messages are held; at the bound the reader pauses the assignment and
//!   keeps polling, so the consumer stays in its group.
//! - **Faults are back-pressure**: librdkafka reconnects and retries
//!   fetches (logged through `tracing`); a failed commit is retried at the
//!   next one. Only a fatal consumer error ends the stream
//!   ([`SourceError::Fatal`]).
//! - **Graceful drain**: [`StopHandle::stop`] ends the stream after the
//!   messages already read; acknowledge what was written, then
//!   [`Acker::close`] commits and leaves the group.
//!
//! The guarantee is at-least-once: a message is read again after a crash
//! between its write and the next commit, and after a revocation that came
//! before its acknowledgement. Key the write by (topic, partition, offset)
//! to make its effect exactly-once. Kafka counts no deliveries, so a
//! message that crashes its consumer is read again by every restart until
//! the code dead-letters it.
//!
//! # Example
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use flowgate_kafka::KafkaSource;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut source = KafkaSource::builder("127.0.0.1:9092", ["events"], "writers")
//!     .connect()
//!     .await?;
//! let acker = source.acker().clone();
//! while let Some(delivery) = source.next().await {
//!     let delivery = delivery?;
//!     if delivery.payload().is_empty() {
//!         delivery.dead_letter("empty value").await?;
//!     } else {
//!         // ... write the value durably, keyed by (topic, partition, offset), then:
//!         let _ = delivery.ack(); // Err(Revoked): its new owner writes it again
//!     }
//! }
//! acker.close().await;
//! # Ok(()) }
//! ```
//!
//! `cargo run -p flowgate-kafka --example mock` runs a whole group — read,
//! ack, dead-letter, commit, a second run that finds nothing left — on
//! librdkafka's mock cluster, with no broker to install.
//!
//! The crate's tests run against librdkafka's mock cluster
//! ([`rdkafka::mocking::MockCluster`]): brokers, topics and consumer groups
//! in-process, with errors injected.
#![forbid(unsafe_code)]

pub mod delivery;
mod error;
mod shared;
mod source;

pub use delivery::{AckAll, AckToken, Acker, Delivery, Message};
pub use error::{BuildError, Revoked, SourceError};
pub use rdkafka;
#[cfg(feature = "metrics")]
pub use source::SOURCE_SERIES;
pub use source::{KafkaSource, Ordering, SourceBuilder, SourceStats, StopHandle};

// The public types can move between tasks and threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<KafkaSource>();
    send_sync::<SourceBuilder>();
    send_sync::<SourceStats>();
    send_sync::<StopHandle>();
    send_sync::<Delivery>();
    send_sync::<Message>();
    send_sync::<AckToken>();
    send_sync::<Acker>();
    send_sync::<SourceError>();
    send_sync::<BuildError>();
};
