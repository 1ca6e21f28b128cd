//! Lossless broadcast: an in-process event stream in which every subscriber
//! sees every event published after it subscribed, in publish order, with
//! nothing lost.
//!
//! ```text
//!                         ┌──> Subscriber A: e0 e1 e2 …  (Stream, recv, try_recv)
//!  Publisher ──publish──> ├──> Subscriber B: e0 e1 e2 …
//!  (one, owned, no lock)  └──> Subscriber C:       e2 …  (subscribed after e1)
//! ```
//!
//! It ports [fullstorydev's `eventstream`](https://github.com/fullstorydev/go)
//! (an append-only linked list that subscribers walk and the garbage collector
//! trims) and fixes what the Go version leaves to discipline:
//!
//! - **One publisher, enforced by types.** [`Publisher::publish`] takes
//!   `&mut self`, so the fast path needs no lock and concurrent publishing
//!   cannot happen by mistake. Several producers use a [`SharedPublisher`],
//!   the documented slower path (a lock around the one writer).
//! - **Optional backpressure.** A [`BoundedPublisher`] waits while its
//!   slowest subscriber has `bound` unread events. Either way nothing is lost:
//!   unlike [`tokio::sync::broadcast`], which overwrites old events and
//!   reports `Lagged` to slow receivers, a slow subscriber here either keeps
//!   its backlog (unbounded) or slows the publisher down (bounded).
//! - **Memory is reclaimed** once every live subscriber has passed an event,
//!   a block of 128 events at a time; a dropped subscriber pins nothing.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use flowgate::broadcast::Publisher;
//! use futures_util::StreamExt;
//!
//! let mut publisher = Publisher::new();
//! let readers: Vec<_> = (0..3)
//!     .map(|i| {
//!         let sub = publisher.subscribe();
//!         tokio::spawn(async move { sub.map(|e| format!("{i}: {e}")).collect::<Vec<_>>().await })
//!     })
//!     .collect();
//! publisher.publish("Hello!");
//! publisher.publish("I am");
//! publisher.publish("EventStream");
//! publisher.close();
//! for (i, reader) in readers.into_iter().enumerate() {
//!     assert_eq!(
//!         reader.await.unwrap(),
//!         [format!("{i}: Hello!"), format!("{i}: I am"), format!("{i}: EventStream")]
//!     );
//! }
//! # }
//! ```
//!
//! # Subscribing
//!
//! - [`Publisher::subscribe`] (and the same method on the other publishers)
//!   returns a [`Subscriber`] at the tail: it receives every event published
//!   from then on.
//! - A [`SubscribeHandle`] does the same from tasks that have no access to
//!   the publisher; it is cheap to clone and holds no events back.
//! - Cloning a [`Subscriber`] forks it at its current position: the clone
//!   receives the same events as the original from there on.
//!
//! A subscriber is a [`Stream`](futures_core::Stream) of `T` and has
//! [`recv`](Subscriber::recv) and [`try_recv`](Subscriber::try_recv). Events
//! are cloned out to each subscriber (`T: Clone`); wrap large events in an
//! [`Arc`](std::sync::Arc), which makes the clone a reference-count increment.
//!
//! # Slow subscribers
//!
//! | publisher | when a subscriber lags | memory |
//! |---|---|---|
//! | [`Publisher`] (default, as in the seed) | it keeps its backlog; the publisher never waits | grows with the largest lag, without limit |
//! | [`BoundedPublisher`] | `publish(..).await` waits until it has fewer than `bound` unread events | about `bound` events, in whole blocks of 128, plus one block |
//!
//! In neither mode is an event dropped or skipped. A subscriber that stops
//! reading without being dropped holds an unbounded stream's memory, or a
//! bounded stream's publisher, for as long as it lives: drop subscribers
//! you no longer read. (A subscriber leaked with [`std::mem::forget`] holds
//! them forever.)
//!
//! # Closing
//!
//! The stream closes when its publisher is closed ([`Publisher::close`],
//! [`SharedPublisher::close`]) or dropped (the last clone, for a
//! [`SharedPublisher`]). Each subscriber then receives every event that was
//! published before, and then the end of the stream: `recv` resolves to
//! `None`, the `Stream` ends, `try_recv` returns [`TryRecvError::Closed`].
//! Subscribing to a closed stream gives a subscriber that is at its end.
//! Publishers of a [`SharedPublisher`] waiting for room get their event back
//! with an error. Nothing waits forever.
//!
//! Dropping every subscriber does not close the stream; publishing continues
//! and the events are freed as they are written (a block at a time).
//!
//! # Memory
//!
//! Events are stored in blocks of 128, linked from oldest to newest. Each
//! subscriber holds its current block; the publisher holds the block it is
//! writing. A block, with its events, is freed as soon as no subscriber is
//! in it or behind it. So memory is bounded by the lag of the slowest *live*
//! subscriber, rounded up to whole blocks, and one more block. Events are
//! dropped when their block is freed, not when the last subscriber reads
//! them.
//!
//! # Performance
//!
//! Publishing to an unbounded stream writes a slot and performs one atomic
//! read-modify-write, which also tells the publisher whether a subscriber is
//! asleep; only then does it take the lock of the waiter list. A subscriber
//! that has events to read loads one atomic per batch of available events
//! and clones each event; it consults tokio's cooperative budget once per 16
//! events. In a bounded stream each subscriber also records its position
//! with one atomic swap per event, and the publisher looks at the positions
//! only when it may have reached the bound. See `BENCHMARKS.md` for figures
//! against `tokio::sync::broadcast` and `async-broadcast`.
//!
//! <div class="warning">The block size (128) and the batching of the
//! cooperative budget (16) are implementation details that may change.</div>
//!
//! # Metrics
//!
//! A stream created with a name — [`Publisher::with_name`],
//! [`BoundedPublisher::with_name`] — records, with the `metrics` feature,
//! the `flowgate_broadcast_*` series listed in [`crate::metrics`]: events
//! published, live subscribers, subscribers that left (by `reason`), events
//! held for lagging subscribers, publishers waiting for room, and publishes
//! refused (by `reason`). None of them costs anything per event: events are
//! counted a block at a time (and whenever the publisher wakes a subscriber,
//! finds no room, or closes), and held events are counted in whole blocks of
//! 128, from when the block fills until its last subscriber moves on. A
//! publish refused because the stream is closed is logged at `warn`, one
//! refused because it is full at `debug`.
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`Subscriber::recv`], [`Subscriber`] as a `Stream` | yes | nothing; the next call receives the same event |
//! | [`BoundedPublisher::reserve`] | yes | nothing |
//! | [`BoundedPublisher::publish`] | no | the event, if cancelled while waiting for room (use `reserve`) |
//! | [`SharedPublisher::publish`] | no | the event, if cancelled while waiting for room |
//!
//! [`Publisher::publish`] and every `try_*` method never wait.

#[allow(unsafe_code)]
mod block;
mod error;
mod handle;
mod observe;
mod publisher;
mod shared;
mod shared_publisher;
mod subscriber;
mod waiters;
mod writer;

pub use self::error::{PublishError, TryPublishError, TryRecvError};
pub use self::handle::SubscribeHandle;
pub use self::publisher::{BoundedPublisher, Permit, Publisher};
pub use self::shared_publisher::SharedPublisher;
pub use self::subscriber::{Recv, Subscriber};
