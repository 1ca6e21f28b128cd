//! A NATS JetStream source for [flowgate](https://docs.rs/flowgate): a
//! durable pull consumer whose messages are acknowledged only after their
//! effect is durable.
//!
//! ```text
//!  pull (batch ≤ free room) ──> Delivery ──> process ──> sink ──> ack ──> +ACK … one flush
//!        ▲                        │ held: +WPI every progress_interval (no redelivery)
//!        └── redelivered after ack_wait only if this consumer died or lost the server ──┘
//! ```
//!
//! - Reads with pull requests of at most [`batch_size`](SourceBuilder::batch_size)
//!   messages through a durable consumer (created with explicit acks if
//!   missing; the stream too, when [`subjects`](SourceBuilder::subjects) are
//!   given). Several sources with the same consumer name — in one process or
//!   on many machines — split the stream.
//! - Hands out each message as a [`Delivery`], resolved by exactly one of:
//!   - [`ack`](Delivery::ack) — done: `+ACK`, sent in batches through a
//!     [`flowgate::batch::Batcher`] and confirmed with one flush per batch;
//!     [`Acker::ack_all`] acks the tokens of one sink flush at once;
//!   - [`nak`](Delivery::nak)`(delay)` — not now: delivered again after
//!     `delay`;
//!   - [`dead_letter`](Delivery::dead_letter)`(reason)` — bad content: the
//!     message is stored on the dead-letter subject with its reason, then
//!     terminated (`+TERM`);
//!   - dropping it — nak'd at once.
//! - **Held deliveries are kept.** Every
//!   [`progress_interval`](SourceBuilder::progress_interval) (a third of the
//!   ack wait) the source sends `+WPI` for each delivery it holds, so a long
//!   batch or a sink outage never makes the server redeliver a message a
//!   live consumer is working on. Only a consumer that died, hung or lost
//!   the server for the whole ack wait loses its messages to another.
//! - **Bounded**: at most [`max_in_flight`](SourceBuilder::max_in_flight)
//!   deliveries are out at once; a pull asks only for the free room, so
//!   nothing waits in a buffer while its ack wait runs.
//! - **Poison**: a message delivered more than
//!   [`max_deliveries`](SourceBuilder::max_deliveries) times (its consumers
//!   keep crashing or nak-ing it) is dead-lettered by the source with that
//!   reason. The consumer's own `max_deliver` is left unlimited, so the
//!   server never drops a message silently. The dead-letter subject
//!   (default `flowgate.dead.<stream>`) is captured by a stream
//!   `<stream>-dead` the source creates if none captures it; each dead
//!   letter carries the original body and headers and the
//!   [`headers`](delivery::headers) `Flowgate-Stream`, `Flowgate-Sequence`,
//!   `Flowgate-Deliveries`, `Flowgate-Reason`, ….
//! - **Faults are back-pressure**: a failed pull is retried with backoff
//!   (50 ms doubling to 2 s, logged) while the client reconnects; only a
//!   deleted consumer ends the stream ([`SourceError::ConsumerGone`]). A
//!   failed ack is retried within
//!   [`ack_retry_budget`](SourceBuilder::ack_retry_budget).
//! - **Graceful drain**: [`StopHandle::stop`] ends the stream after the
//!   messages already pulled; ack what was written, then [`Acker::close`]
//!   sends the last acks.
//!
//! The guarantee is at-least-once: a message can be delivered again after a
//! crash between its write and its ack, or if an ack is lost with a
//! connection. Key the write by [`Delivery::stream_sequence`] (the same on
//! every delivery) to make its effect exactly-once.
//!
//! # Example
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use flowgate_nats::NatsSource;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut source = NatsSource::builder("nats://127.0.0.1:4222", "EVENTS", "writers")
//!     .subjects(["events.>"])
//!     .connect()
//!     .await?;
//! while let Some(delivery) = source.next().await {
//!     let delivery = delivery?;
//!     if delivery.payload().is_empty() {
//!         delivery.dead_letter("empty body").await?;
//!     } else {
//!         // ... write the body durably, then:
//!         delivery.ack().await?;
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod delivery;
mod error;
mod shared;
mod source;

pub use async_nats::HeaderMap;
pub use delivery::{AckToken, Acker, Delivery, Message};
pub use error::{BuildError, NatsError, SourceError};
#[cfg(feature = "metrics")]
pub use source::SOURCE_SERIES;
pub use source::{NatsSource, SourceBuilder, SourceStats, StopHandle};

// The public types can move between tasks and threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<NatsSource>();
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
