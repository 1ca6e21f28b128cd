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
//! | [`batch`] | [`Batcher`]: many tasks submit items, one function flushes them in batches (by size, delay or bytes), each submitter's [`Flushed`](batch::Flushed) (or [`submit_and_wait`](Batcher::submit_and_wait)) resolves when *its* item was flushed; [`KeyedBatcher`]: the same with one batch per key, `flush(key, items)`, optionally one flush per key at a time and a bound on open keys |
//! | [`broadcast`] | [`Publisher`] and [`Subscriber`]: an event stream in which every subscriber sees every event published after it subscribed, in order, with nothing lost (unbounded, or bounded by waiting for the slowest subscriber) |
//! | [`coalesce`] | [`OpQueue`]: keyed, bounded, coalescing queue — items that share a key while it is queued are dequeued together (or merged), oldest key first; a windowed mode debounces each key |
//! | [`dataloader`] | [`DataLoader`]: `load(key)` calls from many tasks within a window become one `batch_fetch(keys)` of distinct keys, with an error per key and an optional bounded TTL cache; built on [`Batcher`] |
//! | [`group`] | [`CallGroup`]: scatter/gather — add operations by id, finish each from anywhere, get every [`Outcome`](group::Outcome) by id once the last one is done (abandoned and timed-out ops included) |
//! | [`idempotency`] | [`Idempotency`]: runs an item's effect only if its key was not processed successfully before, recording the key after success in an [`IdempotencyStore`] (bounded TTL memory store here, SQLite in `flowgate-sql`) |
//! | [`limit`] | [`RateLimiter`] (of a [`Rate`]: calls per period, with or without burst, GCRA), [`KeyedRateLimiter`] (that per key: a default rate and per-key overrides, FIFO per key, idle keys evicted), [`InFlightLimit`] (calls at once), and fair shares of a concurrency or a rate between weighted tenants ([`FairLimit`], [`FairRate`]): shared limits for any async call, in a loop or across tasks; the stream stages are in [`pipeline`] |
//! | [`pipeline`] | [`PipelineExt`]: stream operators for fan-out/fan-in (`par_map`; `par_map_keyed` for per-key order with keys in parallel; [`spawned`](pipeline::spawned) to run each call as a task, on every core), rate limits, in-flight limits, throttle, debounce, timeouts, heartbeat, batching, branching, dedup, progress and cancellation; `use flowgate::prelude::*` |
//! | [`resilience`] | [`Retry`] with [`Backoff`] (attempts, time budget, jitter), [`CircuitBreaker`], [`AdaptiveLimit`] (AIMD concurrency), dead-letter routing, [`PauseHandle`] to pause the source on error, and [`Guard`] to put them all around one call; stages `par_map_retry`, `par_map_adaptive`, `route_errors`, `pausable` |
//! | [`source`] | [`CursorSource`]: a stream paged from `fetch(cursor)` only as fast as downstream acknowledges, with pause/resume/stop through a [`CursorControl`], committing the cursor to a [`CheckpointStore`] once every item before it was acked, so a restart skips nothing and redoes at most `max_pages_in_flight` pages; and the acknowledgement watermark it commits with, for any source of offsets: [`Watermark`](source::Watermark) (offsets tracked in increasing order, sparse allowed, acked in any order → the Kafka commit point), [`PartitionedWatermark`](source::PartitionedWatermark) (per partition, reports the partitions that moved) and [`SharedWatermark`](source::SharedWatermark) (acked from many tasks by tokens, awaited with `watch().changed()`) |
//!
//! # Each primitive in a few lines
//!
//! Each module's documentation has the whole story; here is the shortest
//! useful run of each.
//!
//! **[`batch`]**: many tasks submit, one function writes batches, each task
//! learns when *its* item is written.
//!
//! ```
//! use std::time::Duration;
//! use flowgate::Batcher;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let batcher = Batcher::builder()
//!     .max_items(100)
//!     .max_delay(Duration::from_millis(10))
//!     .build(|rows: Vec<u32>| async move { Ok::<_, std::io::Error>(()) })
//!     .unwrap();
//! let tasks: Vec<_> = (0..250)
//!     .map(|i| {
//!         let batcher = batcher.clone();
//!         tokio::spawn(async move { batcher.submit_and_wait(i).await })
//!     })
//!     .collect();
//! for task in tasks {
//!     task.await.unwrap().expect("written"); // now ack the broker message
//! }
//! assert_eq!(batcher.stats().flushed, 250);
//! # }
//! ```
//!
//! **[`broadcast`]**: every subscriber sees every event, in order, nothing
//! lost.
//!
//! ```
//! use flowgate::Publisher;
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut publisher = Publisher::new();
//! let (a, b) = (publisher.subscribe(), publisher.subscribe());
//! publisher.publish("deploy started");
//! publisher.publish("deploy done");
//! publisher.close();
//! assert_eq!(a.collect::<Vec<_>>().await, ["deploy started", "deploy done"]);
//! assert_eq!(b.collect::<Vec<_>>().await, ["deploy started", "deploy done"]);
//! # }
//! ```
//!
//! **[`coalesce`]**: requests for a key already queued join it, and one
//! dequeue serves them all.
//!
//! ```
//! use flowgate::OpQueue;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (queue, consumer) = OpQueue::<u64, &str>::new(100, 10);
//! queue.try_enqueue(424, "reload").unwrap();
//! queue.try_enqueue(424, "reload again").unwrap(); // joins 424's entry
//! drop(queue);
//! assert_eq!(consumer.dequeue().await, Some((424, vec!["reload", "reload again"])));
//! assert_eq!(consumer.dequeue().await, None);
//! # }
//! ```
//!
//! **[`dataloader`]**: `load(key)` from many tasks becomes one fetch of the
//! distinct keys.
//!
//! ```
//! use std::collections::HashMap;
//! use flowgate::DataLoader;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let users = DataLoader::builder()
//!     .build(|ids: Vec<u64>| async move {
//!         Ok::<_, std::io::Error>(ids.into_iter().map(|id| (id, format!("user {id}"))).collect::<HashMap<_, _>>())
//!     })
//!     .unwrap();
//! let (a, b, c) = tokio::join!(users.load(1), users.load(2), users.load(1));
//! assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), ("user 1".into(), "user 2".into(), "user 1".into()));
//! assert_eq!(users.stats().keys_fetched, 2);
//! # }
//! ```
//!
//! **[`group`]**: scatter work by id, gather every outcome once the last is
//! done.
//!
//! ```
//! use flowgate::CallGroup;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut group = CallGroup::new();
//! for id in 0..3u32 {
//!     let op = group.add(id, id * 10).unwrap();
//!     tokio::spawn(async move {
//!         let doubled = *op.msg() * 2;
//!         op.finish(Ok::<_, std::io::Error>(doubled));
//!     });
//! }
//! let results = group.wait().await;
//! let total: u32 = results.into_iter().filter_map(|(_, outcome)| outcome.ok()).sum();
//! assert_eq!(total, 60);
//! # }
//! ```
//!
//! **[`idempotency`]**: a redelivered message does not repeat its effect.
//!
//! ```
//! use std::time::Duration;
//! use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore, Processed};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let once = Idempotency::new(MemoryIdempotencyStore::new(1000, Duration::from_secs(3600)));
//! let charge = || async { Ok::<_, std::io::Error>("charged") };
//! assert_eq!(once.run("order-7", charge).await.unwrap(), Processed::Done("charged"));
//! assert_eq!(once.run("order-7", charge).await.unwrap(), Processed::Skipped);
//! # }
//! ```
//!
//! **[`limit`]**: a rate and a concurrency bound, outside any stream.
//!
//! ```
//! use std::time::Duration;
//! use flowgate::{InFlightLimit, Rate, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limiter = RateLimiter::new(Rate::per_second(10));
//! let in_flight = InFlightLimit::new(2);
//! let start = tokio::time::Instant::now();
//! for _ in 0..5 {
//!     limiter.acquire().await;
//!     let permit = in_flight.acquire().await; // at most 2 calls at once
//!     drop(permit);
//! }
//! assert_eq!(start.elapsed(), Duration::from_millis(400), "10 per second");
//! # }
//! ```
//!
//! **[`pipeline`]**: stream operators; `par_map` is fan-out and fan-in.
//!
//! ```
//! use std::time::Duration;
//! use flowgate::prelude::*;
//! use futures_util::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let out: Vec<Vec<u32>> = stream::iter(0..10u32)
//!     .par_map(4, |i| async move { i * 10 }) // 4 calls at once, input order
//!     .batch(4, Duration::from_millis(5))
//!     .collect()
//!     .await;
//! assert_eq!(out, [vec![0, 10, 20, 30], vec![40, 50, 60, 70], vec![80, 90]]);
//! # }
//! ```
//!
//! **[`resilience`]**: retry with backoff, and the rest of the tool belt.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use flowgate::{Backoff, Retry};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = AtomicU32::new(0);
//! let retry = Retry::new(Backoff::exponential(Duration::from_millis(100))).max_attempts(5);
//! let answer = retry
//!     .run(|| async {
//!         match calls.fetch_add(1, Ordering::SeqCst) {
//!             0 | 1 => Err("busy"),
//!             _ => Ok(42),
//!         }
//!     })
//!     .await;
//! assert_eq!(answer.unwrap(), 42);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # }
//! ```
//!
//! **[`source`]**: page a table as fast as downstream acknowledges, and
//! resume from a checkpoint.
//!
//! ```
//! use flowgate::source::{CursorSource, MemoryCheckpointStore, Page};
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryCheckpointStore::new();
//! let source = CursorSource::builder(0u64)
//!     .checkpoint(store.clone())
//!     .build(|after: u64| async move {
//!         let rows: Vec<u64> = (after + 1..=30).take(10).collect();
//!         Ok::<_, std::io::Error>(Page::keyset(rows, |row| *row))
//!     })
//!     .unwrap();
//! let control = source.control();
//! let rows = source
//!     .map(|item| {
//!         let (row, ack) = item.unwrap();
//!         ack.ack(); // processed: the checkpoint may pass it
//!         row
//!     })
//!     .count()
//!     .await;
//! control.finished().await;
//! assert_eq!((rows, store.get()), (30, Some(30)));
//! # }
//! ```
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
//! - Bad configuration is refused before anything runs, by one policy (see
//!   [Validation](#validation)).
//! - A duration that is a timer (a timeout, a delay, a window, a TTL, a
//!   cooldown) too long for an `Instant` — up to `Duration::MAX` — means
//!   "never"; it never overflows into a panic or a timer that fires at once.
//!   Where flowgate compares times (TTLs, coalescing windows, dedup
//!   windows, group deadlines) there is then no deadline at all; where it
//!   must arm a tokio timer (a timeout, a debounce, a batch delay) the
//!   timer is set about 30 years ahead, tokio's own far future, as
//!   `tokio::time::sleep(Duration::MAX)` does.
//! - Every async method documents whether it is cancel-safe and what a
//!   cancelled call loses.
//!
//! # Validation
//!
//! One policy, everywhere:
//!
//! - **Plain arguments** of a function, constructor or stream operator —
//!   `par_map(0, f)`, `batch(0, d)`, `Rate::per_second(0)`,
//!   `InFlightLimit::new(0)`, `dead_letters(0)`, a zero period — are checked
//!   at the call and a broken rule **panics** there, like
//!   `tokio::sync::mpsc::channel(0)`: the panic points at your call
//!   (`#[track_caller]`), its message names the function, the argument and
//!   the rule (`"item_timeout: duration must be greater than zero"`), and
//!   the function's `# Panics` section lists every rule. Such a value is a
//!   constant in your code, so a panic is a bug found on the first run.
//! - **Builders** (`Batcher::builder()`, `OpQueue::builder()`,
//!   `CircuitBreaker::builder()`, …) never panic in their setters;
//!   `build()` returns a typed `BuildError` whose variant and message name
//!   the broken rule, and the builder's docs list every rule. Use them for
//!   configuration read at run time.
//! - A value usually read from input also has a **fallible constructor**
//!   (`Rate::new(count, per)` returns a `RateError`).
//! - No `NonZero*` types in the API: zero is refused by the rules above.
//! - **Durations** that are timers (a timeout, a delay, a window, a TTL, a
//!   cooldown) mean "never" when too long for an `Instant`, up to
//!   `Duration::MAX`; zero is refused where it makes no sense. tokio's timers
//!   tick in milliseconds, so a timer shorter than 1 ms ends at the next
//!   tick.
//! - **Sizes** up to `usize::MAX` never overflow and never allocate up front:
//!   they mean "unbounded in practice" unless the docs say they are refused.
//!
//! `tests/edges` walks every public constructor and operator with zero, one
//! and the maximum value and checks each against this policy.
//!
//! # Names
//!
//! One vocabulary, after tokio's:
//!
//! | name | means |
//! |---|---|
//! | `new`, `builder` | a value from plain arguments; a builder for many knobs, ending in a fallible `build()` |
//! | `try_*` | never waits: succeeds now or returns an error holding your value (`try_enqueue`, `try_dequeue`, `try_acquire`) |
//! | the plain verb | waits, as an `async fn` or a named future (`enqueue`, `dequeue`, `acquire`) |
//! | `run` | runs your async call inside a wrapper (`Retry::run`, `CircuitBreaker::run`, `Guard::run`) |
//! | ack | the consumer saying an item is done: a token you call or drop ([`CursorAck`](source::CursorAck), [`WatermarkAck`](source::WatermarkAck), `flowgate_redis::Delivery::ack`) |
//! | `commit_point` | the offset to commit: Kafka's "next offset to read", one past the last contiguously acknowledged offset |
//! | `Keyed*` | the keyed twin of a type, items carrying a key: [`KeyedBatcher`] and its `KeyedBatcherBuilder`, `KeyedWorker`, `KeyedPermit`, `KeyedSubmitAndWait`, `KeyedBatchStats`; [`KeyedRateLimiter`] |
//! | `Flushed` | a future that resolves when a submitted item was written by a [`Batcher`] ([`submit`](Batcher::submit) returns one; [`submit_and_wait`](Batcher::submit_and_wait) is submit and wait fused in one future) |
//! | `Cursor*` | the parts of a [`CursorSource`] (`CursorControl`, `CursorStats`, `CursorError`), so they do not clash with a broker crate's `Source*` |
//! | a stream type | named after its operator: `item_timeout` → `ItemTimeout`, `throttle_keep` → `ThrottleKeep` |
//! | `<Op>Error` | the error of one operation, giving your value back where it can (`TryEnqueueError::Full(item)`); `BuildError` for builders |
//! | `is_transient()` | on every error: whether trying again later may succeed |
//! | `*Stats`, `stats()` | counters read at any time, cheap and never blocking |
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
pub mod limit;
pub mod metrics;
pub mod pipeline;
pub mod prelude;
pub mod resilience;
pub mod source;

mod expiring;
mod loom;
mod store;
mod sync;
mod telemetry;
mod time;

pub use batch::{Batcher, KeyedBatcher};
pub use broadcast::{Publisher, Subscriber};
pub use coalesce::OpQueue;
pub use dataloader::DataLoader;
pub use group::CallGroup;
pub use idempotency::{Idempotency, IdempotencyStore};
pub use limit::{FairLimit, FairRate, InFlightLimit, KeyedRateLimiter, Rate, RateLimiter};
pub use pipeline::PipelineExt;
pub use resilience::{AdaptiveLimit, Backoff, CircuitBreaker, Guard, PauseHandle, Retry};
pub use source::{CheckpointStore, CursorControl, CursorSource};
pub use store::StoreError;
