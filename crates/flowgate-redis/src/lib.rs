//! A Redis Streams consumer-group source for
//! [flowgate](https://docs.rs/flowgate) that acknowledges a message only
//! after its effect is durable.
//!
//! ```text
//!  XREADGROUP ──> Delivery ──> process ──> Batcher ──> sink (SQL) ──> ack ──> batched XACK
//!      ▲             │ lease renewed while held (XCLAIM … JUSTID)                  │
//!      └──── pending until acked: taken over only when the lease runs out ─────────┘
//! ```
//!
//! - Reads with `XREADGROUP … COUNT n BLOCK ms`, creating the group (and the
//!   stream) if missing. Several consumers — in one process or on many
//!   machines — with different names in one group split the stream.
//! - Hands out each message as a [`Delivery`], which is acknowledged only by
//!   [`Delivery::ack`] (or its [`AckToken`]). Acks are sent as one `XACK` per
//!   batch through a [`flowgate::batch::Batcher`]; each ack resolves when its
//!   `XACK` was answered. A caller holding a whole batch of tokens (the
//!   rows of one sink flush) acks them with [`Acker::ack_all`]: one `XACK`
//!   for all, no per-message future. A failed `XACK` is retried with backoff
//!   (see [`Acker`]), so a Redis restart does not leave written messages
//!   pending.
//! - After a restart, re-reads this consumer's own pending messages first;
//!   then takes over messages whose lease ran out and whose consumer is gone
//!   (see [Leases](#leases)).
//! - Bounded: at most [`max_in_flight`](SourceBuilder::max_in_flight)
//!   deliveries are out at once; reading pauses at the bound.
//! - Graceful shutdown: [`StopHandle::stop`] ends the stream; ack what was
//!   written, then [`Acker::close`] sends the last `XACK`s. Everything else
//!   stays pending for the next consumer.
//! - Connecting fails fast: one attempt, bounded by
//!   [`connect_timeout`](SourceBuilder::connect_timeout), with an error
//!   naming the server (`host:port/db`, never the password) and keeping the
//!   server's message ([`SourceError::Connect`]). A permanent failure later
//!   (`NOGROUP` after `XGROUP DESTROY`, `WRONGTYPE`) is logged, delivered as
//!   an `Err` item naming the stream, the group and the server, and ends the
//!   stream.
//!
//! # Leases
//!
//! A delivery this consumer holds — handed out and not yet acked,
//! dead-lettered or dropped — is *leased*: every
//! [`lease_renewal`](SourceBuilder::lease_renewal) (default
//! `claim_idle / 4`) the source renews the claim on all of them with one Lua
//! script call (in chunks of 500) on its commands connection. For each id
//! the script checks that the entry is still pending **with this consumer**
//! (`XPENDING stream group id id 1`) and only then runs
//! `XCLAIM stream group me 0 id JUSTID`, which resets its idle time without
//! counting a delivery. So:
//!
//! - a live consumer keeps its messages however long their processing
//!   takes (a sink outage, a slow batch): no other consumer is handed them;
//! - only a consumer that is gone loses its messages: one whose leases were
//!   not renewed for [`claim_idle`](SourceBuilder::claim_idle) **and** whose
//!   command connection is gone (it died: killed, crashed, its machine
//!   lost). A running consumer names that connection (`CLIENT SETNAME
//!   flowgate:<hex stream>:<hex group>:<hex consumer>`, renewed with every
//!   lease renewal), and a takeover checks `CLIENT LIST` first. A consumer
//!   that is still connected but renews nothing — starved of CPU on a busy
//!   machine, paused, hung, or cut off by a partition Redis has not noticed
//!   yet — keeps its messages until [`hung_after`](SourceBuilder::hung_after)
//!   (default 10 × `claim_idle`). So no scheduling delay short of
//!   `hung_after` makes two live consumers receive the same message, while a
//!   killed consumer's messages move on after `claim_idle`. (Without the
//!   `CLIENT` permission, leases fall back to time alone, with a warning.)
//!   The takeover scans the pending list (`XPENDING … IDLE claim_idle`) and
//!   moves the entries with a script that re-checks the idle time, so a
//!   lease renewed in between holds;
//! - a consumer that stalled past `claim_idle` never steals back what
//!   another consumer took over (the owner check); it counts such leases as
//!   lost ([`SourceStats::leases_lost`]). Its late `XACK` still removes the
//!   message from the group, but the new owner may have processed it too:
//!   the effect may happen twice (at-least-once);
//! - a failed renewal is logged (warn) and retried at the next tick;
//! - a delivery that is neither acked nor dropped keeps its lease for as long
//!   as the process lives: bound your processing (a timeout) if a task may
//!   hang forever.
//!
//! A consumer is never handed a message it holds or has just acked: a claim
//! reply (or a recovery read) is filtered by the deliveries held *and* by
//! every id acked or released while the claim was on its way, so an `XACK`
//! that Redis ran just after the claim cannot make the message reappear.
//! Takeovers move entries with `XCLAIM … JUSTID`, so a message this consumer
//! still holds (which a takeover only finds if its renewal failed) is not
//! counted as delivered again; the others are fetched with a counted
//! `XCLAIM`.
//!
//! # Delivery counting
//!
//! [`Delivery::deliveries`] is 1 on the first read, and grows by one each
//! time the message is read again because the consumer holding it died,
//! hung, lost Redis for `claim_idle`, or dropped the delivery without acking
//! it. A message delivered more than
//! [`max_deliveries`](SourceBuilder::max_deliveries) times is moved to the
//! dead-letter stream: it keeps crashing or hanging its consumers. A live
//! consumer retries failed work itself while the lease holds the message, so
//! an outage of the sink never burns deliveries.
//!
//! # Dead letters
//!
//! The dead-letter stream ([`dead_letter_stream`](SourceBuilder::dead_letter_stream),
//! default `<stream>:dead`) receives, with one `XADD` that is atomic with
//! the `XACK` of the original (a Lua script: the `XACK` runs only if the
//! `XADD` succeeded), an entry with the original fields (as raw bytes) and:
//!
//! | field | value |
//! |---|---|
//! | `flowgate-original-id` | the original entry id |
//! | `flowgate-deliveries` | how many times it was delivered (`0` if unknown: an entry deleted before a takeover) |
//! | `flowgate-reason` | why, in words |
//!
//! Entries land there for four reasons, each counted in [`SourceStats`] and
//! logged (warn); none of them stalls the group — the rest of the batch
//! flows:
//!
//! - **delivered more than `max_deliveries` times** (`dead_lettered`);
//!   reason `delivered N times, more than max_deliveries M: its consumers
//!   died or hung while processing it`;
//! - **unreadable** (`unreadable`): a field name that is not UTF-8, an odd
//!   number of field items, a value that is not a string. Replies are parsed
//!   entry by entry from the raw reply, so one such entry does not fail the
//!   read; its items are copied as bytes (an odd last item with an empty
//!   value);
//! - **deleted while pending** (`deleted`): `XDEL` or `XTRIM` removed an
//!   entry that was never acked; only its id is left, recorded without
//!   original fields (also when a takeover finds the entry gone);
//! - **rejected by the caller** (`rejected`): [`AckToken::dead_letter`],
//!   [`Delivery::dead_letter`] or [`Acker::dead_letter`], for content the
//!   application cannot use (it does not parse or map, the sink refuses it
//!   for good). A sink that is *down* is no reason: retry the write, the
//!   lease keeps the message.
//!
//! # Reading cost
//!
//! Reads are the hot path, so `XREADGROUP` goes over a plain RESP2
//! connection of the source's own (TCP or a Unix socket; `AUTH` and
//! `SELECT` from the URL), not through the `redis` crate's value tree: the
//! reply is read into one buffer and each entry's [`Fields`] point into it —
//! no allocation or copy per id, field name or value (the crate's parser
//! spent about half of a hand-written batch loop's CPU per message). A read
//! batch crosses the source's channel as one `Vec`. Acks, claims, renewals
//! and scripts use the `redis` crate on the commands connection. A message
//! kept long after its batch keeps that batch's buffer alive; copy its
//! fields (`Fields::from_iter(fields.iter())`) to let it go.
//!
//! The guarantee is at-least-once: a message can be delivered again after a
//! crash between its write and its ack, or after a takeover. Make the write
//! idempotent (the `flowgate-sql` sinks skip rows whose key is stored) and
//! the effect is exactly-once.
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
//!     match delivery.field("body") {
//!         // ... write the body durably, then:
//!         Some(_body) => delivery.ack().await?,
//!         None => delivery.dead_letter("no body field").await?,
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod delivery;
mod error;
mod fields;
mod reply;
mod resp;
mod shared;
mod source;

pub use delivery::{AckToken, Acker, Delivery, Message};
pub use error::{BuildError, SourceError};
pub use fields::{Fields, FieldsBatchBuilder, FieldsBuilder};
#[cfg(feature = "metrics")]
pub use source::SOURCE_SERIES;
pub use source::{RedisStreamSource, SourceBuilder, SourceStats, StopHandle};

// The public types can move between tasks and threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<RedisStreamSource>();
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
