//! Stream pipelines: fan-out/fan-in and flow-control operators on any
//! [`Stream`], chained with the [`PipelineExt`] extension trait.
//!
//! A pipeline reads as one chain, the way the Go seed's
//! `generator | fork(10) | task1 | task2 | branch | ...` does:
//!
//! ```
//! use std::time::Duration;
//! use flowgate::prelude::*;
//! use futures_util::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let out: Vec<u64> = stream::iter(0..10u64)
//!     .par_map(5, |i| async move {
//!         tokio::time::sleep(Duration::from_millis(100)).await;
//!         i * 10
//!     })
//!     .collect()
//!     .await;
//! assert_eq!(out, (0..10).map(|i| i * 10).collect::<Vec<_>>());
//! # }
//! ```
//!
//! # Operators
//!
//! | operator | what it does | items |
//! |---|---|---|
//! | [`par_map`](PipelineExt::par_map) | at most `n` calls of an async fn at once, outputs in input order | `O` |
//! | [`par_map_unordered`](PipelineExt::par_map_unordered) | the same, outputs as they complete | `O` |
//! | [`par_map_keyed`](PipelineExt::par_map_keyed) | at most `n` calls at once and `per_key` of one key, each key's items in input order, keys in parallel; outputs in input order | `O` |
//! | [`par_map_keyed_unordered`](PipelineExt::par_map_keyed_unordered) | the same, outputs in input order per key, as they complete across keys | `O` |
//! | [`limit_in_flight`](PipelineExt::limit_in_flight) | attaches a permit of a shared [`InFlightLimit`] to every item | `(T, `[`InFlightPermit`](crate::limit::InFlightPermit)`)` |
//! | [`rate_limit`](PipelineExt::rate_limit) | at most `n` items per period, with or without burst (GCRA), shareable [`RateLimiter`] | `T` |
//! | [`throttle_keep`](PipelineExt::throttle_keep) | at most one item per period, keeping the [first or last](Keep) (lossy) | `T` |
//! | [`debounce`](PipelineExt::debounce) | an item once a quiet period passed without a newer one | `T` |
//! | [`item_timeout`](PipelineExt::item_timeout) | an [`Elapsed`] error whenever no item came within a timeout; goes on | `Result<T, Elapsed>` |
//! | [`idle_timeout`](PipelineExt::idle_timeout) | ends with an [`IdleElapsed`] error when upstream is idle too long | `Result<T, IdleElapsed>` |
//! | [`heartbeat`](PipelineExt::heartbeat) | a [`Beat::Tick`] whenever nothing passed for an interval | [`Beat<T>`] |
//! | [`batch`](PipelineExt::batch) | `Vec`s by size and time, flushed on demand through a [`BatchFlush`] handle | `Vec<T>` |
//! | [`batch_dedup_by_key`](PipelineExt::batch_dedup_by_key), [`batch_dedup`](PipelineExt::batch_dedup) | the same, dropping repeats within a batch | `Vec<T>` |
//! | [`write_batches`](PipelineExt::write_batches) | `(row, token)` pairs written in batches, `n` writes at once, one future per batch; each batch's tokens handed back once its write finished (write durably, then ack) | `(O, Vec<T>)` |
//! | [`rebatch`](PipelineExt::rebatch) | a stream of batches (read batches) regrouped by size and time, whole `Vec`s moved: a chunk that fits an empty batch is handed on as it is | `Vec<T>` |
//! | [`write_chunks`](PipelineExt::write_chunks) | `write_batches` for a stream of read batches: rebatched, `n` writes at once, each write's output yielded when it finishes | `O` |
//! | [`dedup_within`](PipelineExt::dedup_within), [`dedup_last`](PipelineExt::dedup_last) | drops items whose key passed within a time window, or among the last `n` | `T` |
//! | [`branch`](PipelineExt::branch), [`partition`](PipelineExt::partition) | one stream into two [`Branch`]es, by a routing function or a predicate | `(Branch<L>, Branch<R>)` |
//! | [`split_results`](PipelineExt::split_results) | a stream of `Result`s into an ok stream and an error stream | `(Branch<T>, Branch<E>)` |
//! | [`merge_with`](PipelineExt::merge_with) | two streams into one, fairly | `T` |
//! | [`take_until_cancelled`](PipelineExt::take_until_cancelled), [`cancellable`](PipelineExt::cancellable) | stop on a [`CancellationToken`], draining or dropping the work in flight ([`CancelMode`]) | `T` |
//! | [`observe`](PipelineExt::observe) | counts items and rates per stage in a shared [`Progress`]; an `indicatif` bar with the `progress-bar` feature | `T` |
//! | [`par_map_retry`](PipelineExt::par_map_retry) | `par_map_unordered` that retries each item's call with backoff ([`Retry`]) and hands back the items that fail for good | `Result<O, DeadLetter<T, E>>` |
//! | [`par_map_adaptive`](PipelineExt::par_map_adaptive), [`par_map_adaptive_with`](PipelineExt::par_map_adaptive_with) | `par_map_unordered` whose limit adapts to the service ([`AdaptiveLimit`]) | `O` |
//! | [`route_errors`](PipelineExt::route_errors) | yields the `Ok` values, sends the errors to a [dead-letter stream](crate::resilience::dead_letters) | `T` |
//! | [`pausable`](PipelineExt::pausable) | pulls nothing from upstream while a [`PauseHandle`] is paused | `T` |
//!
//! No operator shares a name with `futures::StreamExt` or
//! `tokio_stream::StreamExt`, so all three traits can be in scope at once:
//! flowgate's are `item_timeout`, `throttle_keep` and `merge_with` where
//! tokio-stream has `timeout`, `throttle` (which delays instead of
//! dropping) and `merge`.
//!
//! # Fan-out and fan-in
//!
//! `par_map` is fan-out and fan-in in one: it starts up to `n` calls, and
//! merges their outputs back into one stream. The stream ends only when
//! upstream has ended *and* every call has finished, so the Go seed's
//! premature close (closing the results channel while workers still send)
//! cannot happen: no output is ever dropped.
//!
//! The calls run *inside* the stream's `poll_next`, on the task that polls
//! the pipeline (as with `futures`' `buffered`), so they are concurrent but
//! not parallel. For CPU-heavy work, wrap the function in [`spawned`]:
//! `par_map(n, spawned(|x| async move { work(x) }))` runs every call as a
//! tokio task on the runtime's worker threads, with the same limit, order,
//! panics (resumed in the consumer) and cancellation (dropping the stage
//! aborts its calls).
//!
//! ## Panics
//!
//! A panic in a call *propagates*: it unwinds out of `poll_next` into the
//! task polling the pipeline, with its original payload. No item goes
//! missing silently: every output before the panic has been yielded, and the
//! pipeline fails loudly (a spawned pipeline's `JoinHandle` reports the
//! panic). To turn panics into items instead, catch them in the function:
//!
//! ```
//! use std::panic::AssertUnwindSafe;
//! use flowgate::prelude::*;
//! use futures_util::{stream, FutureExt, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let out: Vec<Result<u32, String>> = stream::iter([1u32, 0, 2])
//!     .par_map(4, |x| {
//!         AssertUnwindSafe(async move { 10 / x })
//!             .catch_unwind()
//!             .map(|result| result.map_err(|_| "panicked".to_owned()))
//!     })
//!     .collect()
//!     .await;
//! assert_eq!(out, vec![Ok(10), Err("panicked".to_owned()), Ok(5)]);
//! # }
//! ```
//!
//! # Which limit should I use?
//!
//! | you want | use | items are |
//! |---|---|---|
//! | at most `n` calls of *this stage* at once | [`par_map(n, ..)`](PipelineExt::par_map) | all processed |
//! | at most `n` calls at once across stages, pipelines and plain tasks | [`InFlightLimit`] ([`run`](InFlightLimit::run), [`limit_in_flight`](PipelineExt::limit_in_flight)) | all processed |
//! | at most `n` per period, smooth or bursty | [`rate_limit`](PipelineExt::rate_limit) / [`RateLimiter`] | all processed, delayed |
//! | at most one per period, the rest are stale | [`throttle_keep`](PipelineExt::throttle_keep) | dropped |
//! | only the settled value after a burst | [`debounce`](PipelineExt::debounce) | dropped |
//! | many small items as few big writes | [`batch`](PipelineExt::batch), or [`Batcher`](crate::batch::Batcher) with per-item acks | all processed, grouped |
//!
//! [`RateLimiter`] and [`InFlightLimit`] work around any async call, not
//! only as stream stages, and are cheap to clone and share.
//!
//! # A whole pipeline
//!
//! The seed's `generator | fork | task | branch | error: retry, success:
//! print`, with a shared rate limit, a watchdog and a clean shutdown:
//!
//! ```
//! use std::time::Duration;
//! use flowgate::limit::{Rate, RateLimiter};
//! use flowgate::pipeline::{CancelMode, CancellationToken, Progress};
//! use flowgate::prelude::*;
//! use futures_util::{stream, StreamExt};
//!
//! async fn fetch(id: u32) -> Result<u32, u32> {
//!     tokio::time::sleep(Duration::from_millis(20)).await;
//!     if id % 7 == 0 { Err(id) } else { Ok(id * 10) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let shutdown = CancellationToken::new();
//! let api_limit = RateLimiter::new(Rate::per_second(100).with_burst(10));
//! let progress = Progress::new();
//!
//! let results = stream::iter(0..50u32)
//!     .dedup_last(64, |id| *id)
//!     .cancellable(shutdown.clone(), CancelMode::Drain, |ids| {
//!         ids.rate_limit(api_limit.clone())
//!             .par_map_unordered(8, fetch)
//!             .observe(&progress, "fetch")
//!     });
//! let (ok, failed) = results.split_results(64);
//! let retried = failed.par_map(2, |id| async move { fetch(id + 1).await.unwrap_or(0) });
//! let batches: Vec<Vec<u32>> = ok
//!     .merge_with(retried)
//!     .batch(16, Duration::from_millis(50))
//!     .collect()
//!     .await;
//!
//! assert_eq!(batches.concat().len(), 50);
//! assert_eq!(progress.snapshot()[0].items(), 50);
//! # }
//! ```
//!
//! # Buffering and backpressure
//!
//! Every operator pulls from upstream only when it is polled, so a slow
//! consumer slows the source down. What each one holds in between:
//!
//! | operator | holds at most |
//! |---|---|
//! | `par_map(n)`, `par_map_unordered(n)` | `n` calls in flight (ordered: finished outputs wait for older ones, in those `n` slots) |
//! | `rate_limit`, `limit_in_flight` | one item, taken from upstream before waiting |
//! | `throttle(Keep::Last)`, `debounce` | one item |
//! | `batch(max_items, ..)` | `max_items` items (distinct keys, with dedup) |
//! | `dedup_within` | one key per distinct key passed within the window (no hard bound) |
//! | `dedup_last(n)` | `n` keys |
//! | `branch(capacity, ..)` | `capacity` items per [`Branch`] that is not polled; then the other branch waits |
//! | `par_map_retry(n, ..)` | `n` items in progress, running or backing off (a backing-off item keeps its slot) |
//! | `par_map_adaptive(..)` | the adaptive limit's calls in flight, plus one item waiting for room |
//! | `route_errors` | one error, waiting for room in the dead-letter channel (which holds its own `capacity`) |
//! | the others (`pausable` among them) | nothing |
//!
//! # Metrics
//!
//! With the `metrics` feature, a stage with a bound records its series once
//! it is named with its `name` method, chained right after the operator:
//! `stream.par_map(8, f).name("enrich")`. Every named stage counts the items
//! it pulled (`flowgate_pipeline_items_in_total`) and yielded
//! (`flowgate_pipeline_items_out_total`); `par_map`-like stages follow their
//! calls in flight (`flowgate_pipeline_in_flight`), stages that hold items
//! the items held (`flowgate_pipeline_held`), lossy ones their drops by
//! `reason`, timeouts their timeouts, batch stages their batches by
//! `trigger`, sizes and how long they were open. The `name` setters are on
//! [`ParMap`], [`ParMapUnordered`], [`ParMapKeyed`],
//! [`ParMapKeyedUnordered`], [`RateLimit`], [`LimitInFlight`], [`Batch`],
//! [`BatchDedup`], [`Dedup`], [`ThrottleKeep`], [`Debounce`],
//! [`ItemTimeout`] and [`IdleTimeout`]; each one's doc lists its series,
//! and [`crate::metrics`] has the table. An unnamed stage records nothing,
//! and a named one updates at most two handles per item (`par_map` in its
//! steady state: the in and out counters; its gauges move only when a poll
//! changed them). A stage dropped with calls in flight or items held takes
//! them back out of its gauges. The shared limiters ([`RateLimiter`],
//! [`InFlightLimit`]) record their own series, named when they are made
//! ([`RateLimiter::with_name`], [`InFlightLimit::with_name`]).
//!
//! Tracing: an [`idle_timeout`](PipelineExt::idle_timeout) ending its
//! stream is a `warn` event, each [`item_timeout`](PipelineExt::item_timeout)
//! timeout a `debug` one (it may be frequent), both with the stage's `name`
//! field; nothing is logged per item at `info` or above.
//!
//! # Pinning
//!
//! Operators that own a timer (`rate_limit`, `throttle_keep`, `debounce`,
//! `item_timeout`, `idle_timeout`, `heartbeat`, `batch`, the cancellation
//! stages) are not `Unpin`. Combinators that take `self` (`collect`,
//! `for_each`, `count`) do not care; to call `next()` in a loop, pin the
//! stream first with [`std::pin::pin!`] or `Box::pin`.
//!
//! # Cancel safety
//!
//! Every operator here is a [`Stream`]; `next().await` on any of them is
//! cancel-safe: a cancelled `next()` loses no item, because items are only
//! handed over by a `poll_next` that returns `Ready`. Dropping a stream drops
//! what it holds: the calls in flight of a `par_map`, the items buffered by a
//! batch or a branch. To stop a pipeline without losing work that started,
//! use [`cancellable`](PipelineExt::cancellable) with [`CancelMode::Drain`].
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | `next()` on any operator | yes | nothing |
//! | [`RateLimiter::acquire`] | yes | nothing; no cell is taken until it completes |
//! | [`InFlightLimit::acquire`] | yes | its place among the waiters |
//! | [`InFlightLimit::run`] | yes for the limit (the room is given back) | whatever the wrapped future loses when dropped |

mod batch;
mod branch;
mod cancel;
mod debounce;
mod dedup;
mod error;
mod heartbeat;
mod in_flight;
mod merge;
mod metrics;
mod par_map;
mod par_map_adaptive;
mod par_map_keyed;
mod par_map_retry;
mod pausable;
mod progress;
mod rate_limit;
mod rebatch;
mod route_errors;
mod spawned;
mod throttle;
mod timeout;
mod write_batches;

use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use futures_core::stream::Stream;

use crate::limit::{InFlightLimit, RateLimiter};
use crate::resilience::{AdaptiveLimit, DeadLetterSender, Outcome, PauseHandle, Retry};

pub use self::batch::{Batch, BatchDedup, BatchFlush};
pub use self::branch::Branch;
pub use self::cancel::{CancelMode, Cancellable};
pub use self::debounce::Debounce;
pub use self::dedup::Dedup;
pub use self::error::{Elapsed, IdleElapsed};
pub use self::heartbeat::{Beat, Heartbeat};
pub use self::in_flight::LimitInFlight;
pub use self::merge::MergeWith;
pub use self::par_map::{ParMap, ParMapUnordered};
pub use self::par_map_adaptive::ParMapAdaptive;
pub use self::par_map_keyed::{ParMapKeyed, ParMapKeyedUnordered};
pub use self::par_map_retry::ParMapRetry;
pub use self::pausable::Pausable;
pub use self::progress::{Observe, Progress, StageSnapshot};
pub use self::rate_limit::RateLimit;
pub use self::rebatch::{Rebatch, WriteChunks};
pub use self::route_errors::RouteErrors;
pub use self::spawned::{Spawned, spawned};
pub use self::throttle::{Keep, ThrottleKeep};
pub use self::timeout::{IdleTimeout, ItemTimeout};
pub use self::write_batches::WriteBatches;
pub use futures_util::future::Either;
pub use tokio_util::sync::CancellationToken;

/// How many ready upstream items an operator that drops or holds items takes
/// in one poll before it yields to the executor (see STYLE.md #14).
const BUDGET: usize = 32;

/// Pipeline operators for every [`Stream`]; see the
/// [module documentation](self). Brought in by `use flowgate::prelude::*`.
pub trait PipelineExt: Stream {
    /// Runs `f` on every item with at most `limit` calls in flight, and
    /// yields their outputs **in input order**.
    ///
    /// An output that finishes early waits for the outputs before it, and
    /// while it waits it holds one of the `limit` slots. Use
    /// [`par_map_unordered`](Self::par_map_unordered) when order does not
    /// matter.
    ///
    /// The stream ends when upstream has ended and every call has finished.
    /// A panic in a call propagates to the task polling the stream (see
    /// [Panics](self#panics)).
    ///
    /// # Panics
    ///
    /// `"par_map: limit must be at least 1"` if `limit` is zero. A `limit` of
    /// `usize::MAX` means no bound on calls in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<u64> = stream::iter([3u64, 1, 2])
    ///     .par_map(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![3, 1, 2]);
    /// # }
    /// ```
    #[track_caller]
    fn par_map<F, Fut>(self, limit: usize, f: F) -> ParMap<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future,
    {
        ParMap::new(self, limit, f)
    }

    /// Runs `f` on every item with at most `limit` calls in flight, and
    /// yields their outputs **as they complete**.
    ///
    /// The stream ends when upstream has ended and every call has finished.
    /// A panic in a call propagates to the task polling the stream (see
    /// [Panics](self#panics)).
    ///
    /// # Panics
    ///
    /// `"par_map_unordered: limit must be at least 1"` if `limit` is zero. A `limit` of
    /// `usize::MAX` means no bound on calls in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<u64> = stream::iter([3u64, 1, 2])
    ///     .par_map_unordered(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![1, 2, 3]);
    /// # }
    /// ```
    #[track_caller]
    fn par_map_unordered<F, Fut>(self, limit: usize, f: F) -> ParMapUnordered<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future,
    {
        ParMapUnordered::new(self, limit, f)
    }

    /// Runs `f` on every item with at most `limit` calls in flight and at
    /// most `per_key` calls of one key, **in input order within a key**, and
    /// yields the outputs **in input order**.
    ///
    /// `key_fn` gives an item's key (a partition, an account, an entity id).
    /// Items of one key start in input order, at most `per_key` at once —
    /// `per_key = 1` processes a key strictly one item after another, the
    /// next starting only when the previous call finished — while items of
    /// different keys run in parallel up to `limit`. Waiting items start
    /// lowest input position first, as soon as their key and the stage have
    /// room. This is Akka's `mapAsyncPartitioned`; use
    /// [`par_map_keyed_unordered`](Self::par_map_keyed_unordered) to yield
    /// each output as soon as the outputs before it *of its key* are out.
    ///
    /// **Buffering is bounded.** An item whose key already runs `per_key`
    /// calls waits in the stage, and so does an output that finished before
    /// an earlier one. The stage holds at most `limit +`
    /// [`buffer`](ParMapKeyed::buffer) items in all (running, waiting, or
    /// finished; the buffer defaults to `limit`). It pulls from upstream
    /// only while fewer than `limit` calls run and it holds fewer than that
    /// many, so nothing is fetched ahead: the buffer fills only with items
    /// that must wait for their key. So a hot key does not make
    /// the stage buffer without limit: its items fill the buffer, then
    /// upstream waits; the other keys' items already in the stage keep
    /// running, and the items behind the hot key's in upstream wait with it
    /// (nothing can overtake without being pulled). A larger buffer looks
    /// further past a hot key. The key map holds only the keys of items in
    /// the stage, so memory stays bounded by the items held, however many
    /// keys pass.
    ///
    /// The stream ends when upstream has ended and every call's output has
    /// been yielded. A panic in a call or in `key_fn` propagates to the task
    /// polling the stream (see [Panics](self#panics)). For CPU-heavy calls,
    /// wrap `f` in [`spawned`].
    ///
    /// # Panics
    ///
    /// `"par_map_keyed: limit must be at least 1"` if `limit` is zero,
    /// `"par_map_keyed: per_key must be at least 1"` if `per_key` is zero. A
    /// `limit` or `per_key` of `usize::MAX` means no bound; `per_key` above
    /// `limit` is the same as `limit`.
    ///
    /// # Examples
    ///
    /// Account updates: each account's in order, accounts in parallel.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let updates = [("alice", 1), ("bob", 1), ("alice", 2), ("bob", 2)];
    /// let start = tokio::time::Instant::now();
    /// let out: Vec<(&str, u32)> = stream::iter(updates)
    ///     .par_map_keyed(4, 1, |(account, _)| *account, |update| async move {
    ///         tokio::time::sleep(Duration::from_millis(10)).await; // one write
    ///         update
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, updates);
    /// // two accounts in parallel, two writes each, one after the other
    /// assert_eq!(start.elapsed(), Duration::from_millis(20));
    /// # }
    /// ```
    #[track_caller]
    fn par_map_keyed<K, KF, F, Fut>(
        self,
        limit: usize,
        per_key: usize,
        key_fn: KF,
        f: F,
    ) -> ParMapKeyed<Self, K, KF, F, Fut>
    where
        Self: Sized,
        K: Hash + Eq + Clone,
        KF: FnMut(&Self::Item) -> K,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future,
    {
        ParMapKeyed::new(self, limit, per_key, key_fn, f)
    }

    /// [`par_map_keyed`](Self::par_map_keyed) that yields each output as
    /// soon as every earlier output **of its key** is out: per key, input
    /// order; across keys, as they finish.
    ///
    /// The same limits, start order and bounded buffering as
    /// `par_map_keyed` (see there); a slow key holds back only its own
    /// outputs. With `per_key > 1` an output that finishes before an
    /// earlier one of its key waits for it in the stage (it counts as held).
    ///
    /// # Panics
    ///
    /// `"par_map_keyed_unordered: limit must be at least 1"` if `limit` is
    /// zero, `"par_map_keyed_unordered: per_key must be at least 1"` if
    /// `per_key` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // (key, milliseconds of work)
    /// let jobs = [("slow", 50), ("fast", 10), ("fast", 10), ("slow", 50)];
    /// let out: Vec<(&str, u64)> = stream::iter(jobs)
    ///     .par_map_keyed_unordered(4, 1, |(key, _)| *key, |(key, ms)| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         (key, ms)
    ///     })
    ///     .collect()
    ///     .await;
    /// // "fast" is not held back by "slow"; each key keeps its own order
    /// assert_eq!(out, [("fast", 10), ("fast", 10), ("slow", 50), ("slow", 50)]);
    /// # }
    /// ```
    #[track_caller]
    fn par_map_keyed_unordered<K, KF, F, Fut>(
        self,
        limit: usize,
        per_key: usize,
        key_fn: KF,
        f: F,
    ) -> ParMapKeyedUnordered<Self, K, KF, F, Fut>
    where
        Self: Sized,
        K: Hash + Eq + Clone,
        KF: FnMut(&Self::Item) -> K,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future,
    {
        ParMapKeyedUnordered::new(self, limit, per_key, key_fn, f)
    }

    /// Pairs every item with an [`InFlightPermit`](crate::limit::InFlightPermit) from `limit`, waiting for
    /// room before yielding it; the room is given back when the permit is
    /// dropped.
    ///
    /// The permit travels with the item, so the limit covers whatever later
    /// stages do with it, until they drop the permit. One limit can be shared
    /// by many stages and pipelines. The stage holds at most one item while it
    /// waits for room, and takes it from upstream *before* waiting, so no room
    /// is held while upstream is slow.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limit = InFlightLimit::new(2);
    /// let out: Vec<u32> = stream::iter(0..10u32)
    ///     .limit_in_flight(&limit)
    ///     .par_map(8, |(x, permit)| async move {
    ///         let y = x + 1; // at most 2 of these at once
    ///         drop(permit);
    ///         y
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, (1..=10).collect::<Vec<_>>());
    /// # }
    /// ```
    fn limit_in_flight(self, limit: &InFlightLimit) -> LimitInFlight<Self>
    where
        Self: Sized,
    {
        LimitInFlight::new(self, limit)
    }

    /// Yields items no faster than `limiter` allows: `n` per period, with or
    /// without burst (see [`Rate`](crate::limit::Rate)).
    ///
    /// Pass a [`Rate`](crate::limit::Rate) for a limiter of this stage's own, or a clone of a
    /// [`RateLimiter`] to share one limit among stages, pipelines and plain
    /// calls. The stage takes an item from upstream first and then waits for
    /// a cell, so it holds at most one item and no cell is spent while
    /// upstream is slow. Timing follows GCRA exactly: no drift, and no burst
    /// after a quiet spell beyond the rate's `burst`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::Rate;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let start = Instant::now();
    /// let n = stream::iter(0..1000)
    ///     .rate_limit(Rate::per_second(200))
    ///     .count()
    ///     .await;
    /// assert_eq!(n, 1000);
    /// assert_eq!(start.elapsed(), Duration::from_millis(4995)); // one every 5 ms
    /// # }
    /// ```
    fn rate_limit(self, limiter: impl Into<RateLimiter>) -> RateLimit<Self>
    where
        Self: Sized,
    {
        RateLimit::new(self, limiter.into())
    }

    /// Lets at most one item through per `period`, keeping the
    /// [first](Keep::First) or the [last](Keep::Last) item of each period and
    /// dropping the others.
    ///
    /// - `Keep::First`: an item is yielded at once if none was yielded in the
    ///   last `period`, otherwise dropped. No timer is involved.
    /// - `Keep::Last`: an item opens a window of `period`; newer items replace
    ///   it; the latest is yielded when the window closes. When upstream ends
    ///   while a window is open, its item is still yielded when the window
    ///   closes, so yields always stay at least `period` apart.
    ///
    /// Throttling is lossy by design; [`ThrottleKeep::dropped`] counts the
    /// casualties. To delay items instead of dropping them, use
    /// [`rate_limit`](Self::rate_limit). A `period` of `Duration::MAX` is
    /// a window that never closes: `Keep::First` yields the first item only,
    /// `Keep::Last` nothing until the stream ends.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Keep;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // An item every 30 ms, at most one per 100 ms.
    /// let ticks = || {
    ///     stream::iter(0..10).then(|i| async move {
    ///         tokio::time::sleep(Duration::from_millis(30)).await;
    ///         i
    ///     })
    /// };
    /// let first: Vec<i32> = ticks().throttle_keep(Duration::from_millis(100), Keep::First).collect().await;
    /// assert_eq!(first, vec![0, 4, 8]);
    /// let last: Vec<i32> = ticks().throttle_keep(Duration::from_millis(100), Keep::Last).collect().await;
    /// assert_eq!(last, vec![3, 7, 9]);
    /// # }
    /// ```
    #[track_caller]
    fn throttle_keep(self, period: Duration, keep: Keep) -> ThrottleKeep<Self>
    where
        Self: Sized,
    {
        ThrottleKeep::new(self, period, keep)
    }

    /// Yields an item only once `quiet` has passed without a newer one; each
    /// new item restarts the wait and replaces the one held. A `quiet` too
    /// long for an `Instant` (`Duration::MAX`) never passes: the last item
    /// comes out when the stream ends.
    ///
    /// Use it to act on the settled value of something that changes in
    /// bursts (a config file being saved, a user typing). When upstream ends,
    /// the held item is yielded at once: nothing newer can come. At most one
    /// item is held. [`Debounce::dropped`] counts the superseded items.
    ///
    /// # Panics
    ///
    /// If `quiet` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Bursts of three items 10 ms apart, bursts 200 ms apart.
    /// let out: Vec<u32> = stream::iter(0..9u32)
    ///     .then(|i| async move {
    ///         let gap = if i % 3 == 0 { 200 } else { 10 };
    ///         tokio::time::sleep(Duration::from_millis(gap)).await;
    ///         i
    ///     })
    ///     .debounce(Duration::from_millis(50))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![2, 5, 8]);
    /// # }
    /// ```
    #[track_caller]
    fn debounce(self, quiet: Duration) -> Debounce<Self>
    where
        Self: Sized,
    {
        Debounce::new(self, quiet)
    }

    /// Yields `Ok(item)` for every item and `Err(`[`Elapsed`]`)` whenever no
    /// item arrived within `duration`; the stream goes on after a timeout.
    /// `Duration::MAX` (any duration too long for an `Instant`) never times
    /// out.
    ///
    /// The wait is measured from the first poll, then from the last item or
    /// timeout, so a stalled upstream yields one `Err` per `duration`. An item
    /// that is ready wins over a deadline that has just passed. To bound each
    /// *call* of a [`par_map`](Self::par_map) instead, wrap the call:
    /// `par_map(n, |x| tokio::time::timeout(d, work(x)))`.
    ///
    /// # Panics
    ///
    /// If `duration` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<bool> = stream::iter([10u64, 300, 10])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .item_timeout(Duration::from_millis(100))
    ///     .map(|r| r.is_ok())
    ///     .collect()
    ///     .await;
    /// // The 300 ms gap times out twice before its item arrives.
    /// assert_eq!(out, vec![true, false, false, true, true]);
    /// # }
    /// ```
    #[track_caller]
    fn item_timeout(self, duration: Duration) -> ItemTimeout<Self>
    where
        Self: Sized,
    {
        ItemTimeout::new(self, duration)
    }

    /// Yields `Ok(item)` for every item, and ends with one
    /// `Err(`[`IdleElapsed`]`)` if upstream stays idle for `duration`
    /// (`Duration::MAX`: never).
    ///
    /// The idle time is measured from the first poll, then from the last
    /// item. After the timeout, upstream is not polled again; drop the stream
    /// to release it. [`IdleTimeout::timed_out`] tells the two endings
    /// apart after the fact.
    ///
    /// # Panics
    ///
    /// If `duration` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<_> = stream::iter(0..3)
    ///     .chain(stream::pending())
    ///     .idle_timeout(Duration::from_secs(5))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out.len(), 4);
    /// assert!(out[3].is_err());
    /// # }
    /// ```
    #[track_caller]
    fn idle_timeout(self, duration: Duration) -> IdleTimeout<Self>
    where
        Self: Sized,
    {
        IdleTimeout::new(self, duration)
    }

    /// Yields [`Beat::Item`] for every item and a [`Beat::Tick`] whenever
    /// nothing passed for `interval`, so that a quiet stream still shows it
    /// is alive (to keep a connection open, or to flush on a timer). An
    /// `interval` of `Duration::MAX` never ticks.
    ///
    /// The silence is measured from the first poll, then from the last item
    /// or tick. The stream ends with upstream.
    ///
    /// # Panics
    ///
    /// If `interval` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Beat;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<Beat<u64>> = stream::iter([250u64])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .heartbeat(Duration::from_millis(100))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![Beat::Tick, Beat::Tick, Beat::Item(250)]);
    /// # }
    /// ```
    #[track_caller]
    fn heartbeat(self, interval: Duration) -> Heartbeat<Self>
    where
        Self: Sized,
    {
        Heartbeat::new(self, interval)
    }

    /// Groups items into `Vec`s of up to `max_items`, yielding a batch when
    /// it is full, when `max_delay` has passed since its *first* item, when
    /// asked through its [`BatchFlush`] handle, or when upstream ends.
    ///
    /// A quiet stream holds no timer and yields no empty batch. Latency is
    /// bounded: no item waits longer than `max_delay` (plus the consumer's own
    /// delay in polling). The stage holds at most `max_items` items.
    ///
    /// This is a stream operator, for a pipeline with one consumer. To let
    /// many tasks submit items and learn when *their* item's batch was
    /// written, use [`Batcher`](crate::batch::Batcher) (per-item acks, bytes
    /// limits, flush concurrency).
    ///
    /// # Panics
    ///
    /// - `"batch: max_items must be at least 1"` if `max_items` is zero;
    /// - `"batch: max_delay must be greater than zero"` if `max_delay` is
    ///   zero.
    ///
    /// A `max_items` of `usize::MAX` means no size bound (a batch reserves
    /// room for a few thousand items at most, and grows as items come), and a
    /// `max_delay` of `Duration::MAX` never fires: only size, a flush or the
    /// end of upstream yields a batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batches: Vec<Vec<u32>> = stream::iter(0..7u32)
    ///     .batch(3, Duration::from_millis(10))
    ///     .collect()
    ///     .await;
    /// assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    /// # }
    /// ```
    ///
    /// Flushing on demand, from another task:
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
    /// let rx = futures_util::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|x| (x, rx)) });
    /// let batches = rx.batch(100, Duration::from_secs(60));
    /// let flush = batches.flush_handle();
    /// let mut batches = Box::pin(batches);
    /// tx.send(1).await.unwrap();
    /// tx.send(2).await.unwrap();
    /// tokio::spawn(async move { flush.flush() });
    /// assert_eq!(batches.next().await, Some(vec![1, 2])); // long before 60 s
    /// # }
    /// ```
    #[track_caller]
    fn batch(self, max_items: usize, max_delay: Duration) -> Batch<Self>
    where
        Self: Sized,
    {
        Batch::new("batch", self, max_items, max_delay)
    }

    /// The batch-shaped write stage: groups a stream of `(row, token)` pairs
    /// into batches (by `max_items` or `max_delay`, as [`batch`](Self::batch)
    /// does), calls `write(rows)` once per batch with at most `concurrency`
    /// writes in flight, and yields each batch's write output **with the
    /// tokens of its items**, in the order the writes complete.
    ///
    /// It is the shape of "write durably, then acknowledge": the tokens are
    /// the items' acknowledgements (a broker's ack token, a receipt, a
    /// channel); they are handed back only once `write` finished, so the
    /// stage after it acks exactly what was written — the output tells how
    /// (for example one outcome per row, in the rows' order). One future per
    /// *batch* is alive, never one per item: per item it costs a move into
    /// the batch and out of it, nothing else. Upstream is pulled only while
    /// fewer than `concurrency` writes are in flight, so at most
    /// `(concurrency + 1) × max_items` items are held.
    ///
    /// Compare [`Batcher`](crate::batch::Batcher), for when many *tasks*
    /// submit items and each awaits its own flush; here one stream carries
    /// everything and no per-item future exists.
    ///
    /// # Ordering
    ///
    /// Batches are formed, and their writes started, in upstream order, and
    /// the rows of a batch keep that order. With `concurrency > 1` the writes
    /// may finish in any order, and each batch is yielded as soon as its
    /// write finishes: a later batch's tokens can come out before an earlier
    /// batch's. That is what a [`source`](crate::source) wants (its
    /// checkpoint watermark accepts acks in any order and never commits
    /// past an unacknowledged item), and it keeps a slow write from holding
    /// back the others. Where tokens must be handed back in upstream order
    /// (a consumer that commits one offset for everything before it), use a
    /// `concurrency` of 1, or a [`Batcher`](crate::batch::Batcher) with
    /// [`resolve_in_order`](crate::batch::BatcherBuilder::resolve_in_order).
    ///
    /// # Panics
    ///
    /// - `"write_batches: max_items must be at least 1"` if `max_items` is zero;
    /// - `"write_batches: max_delay must be greater than zero"` if `max_delay`
    ///   is zero;
    /// - `"write_batches: concurrency must be at least 1"` if `concurrency` is
    ///   zero.
    ///
    /// A `max_items` of `usize::MAX` means no size bound (nothing is
    /// reserved up front beyond a few thousand items), a `max_delay` of
    /// `Duration::MAX` never fires, and a `concurrency` of `usize::MAX` means
    /// no bound on writes in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // (row, ack token) pairs, as a broker source would give them.
    /// let items = stream::iter((0..7u32).map(|i| (format!("row {i}"), i)));
    /// let mut acked: Vec<u32> = Vec::new();
    /// let mut written = Box::pin(items.write_batches(3, Duration::from_millis(20), 2, |rows: Vec<String>| async move {
    ///     // one INSERT of the whole batch, then:
    ///     Ok::<usize, std::io::Error>(rows.len())
    /// }));
    /// while let Some((result, tokens)) = written.next().await {
    ///     assert_eq!(result.unwrap(), tokens.len());
    ///     acked.extend(tokens); // acknowledge only what was written
    /// }
    /// acked.sort();
    /// assert_eq!(acked, (0..7).collect::<Vec<_>>());
    /// # }
    /// ```
    #[track_caller]
    fn write_batches<R, T, F, Fut>(
        self,
        max_items: usize,
        max_delay: Duration,
        concurrency: usize,
        write: F,
    ) -> WriteBatches<Self, F, Fut, R, T>
    where
        Self: Sized + Stream<Item = (R, T)>,
        F: FnMut(Vec<R>) -> Fut,
        Fut: Future,
    {
        WriteBatches::new(self, max_items, max_delay, concurrency, write)
    }

    /// Batches a stream of batches — the read batches of a broker source, a
    /// file's blocks of lines — into batches of at most `max_items` items,
    /// by size and time, moving whole `Vec`s: a chunk that fits an empty
    /// batch becomes it without a copy, so a source whose reads are as large
    /// as the batches (`XREADGROUP COUNT n` into batches of `n`) hands each
    /// read batch on as it is. Smaller chunks are appended to the open
    /// batch; a chunk that does not fit fills it, and its rest starts the
    /// next batch.
    ///
    /// The batches are exactly those of `.flat_map(stream::iter).batch(max_items, max_delay)`
    /// — items in upstream order, a batch yielded when it holds `max_items`,
    /// when `max_delay` has passed since its first item arrived, or when
    /// upstream ends — at a fraction of the cost: an item is moved when its
    /// chunk is, not once per stage. Empty chunks are skipped. There is no
    /// flush handle (use [`batch`](Self::batch) for one).
    ///
    /// # Panics
    ///
    /// - `"rebatch: max_items must be at least 1"` if `max_items` is zero;
    /// - `"rebatch: max_delay must be greater than zero"` if `max_delay` is
    ///   zero.
    ///
    /// A `max_items` of `usize::MAX` means no size bound (a batch grows by
    /// whole chunks), and a `max_delay` of `Duration::MAX` never fires.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Three reads of a consumer, batched in fours.
    /// let reads = stream::iter([vec![1, 2, 3, 4], vec![5, 6], vec![7, 8, 9]]);
    /// let batches: Vec<Vec<u32>> = reads.rebatch(4, Duration::from_millis(10)).collect().await;
    /// assert_eq!(batches, vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9]]);
    /// # }
    /// ```
    #[track_caller]
    fn rebatch<T>(self, max_items: usize, max_delay: Duration) -> Rebatch<Self, T>
    where
        Self: Sized + Stream<Item = Vec<T>>,
    {
        Rebatch::new("rebatch", self, max_items, max_delay)
    }

    /// [`write_batches`](Self::write_batches) for a stream of batches: the
    /// chunks are batched as [`rebatch`](Self::rebatch) does (a chunk that
    /// fits an empty batch is written as it is, without a copy), each batch
    /// is handed to `write`, and up to `concurrency` writes run at once;
    /// each write's output is yielded as soon as it finishes. The next batch
    /// is formed (and upstream pulled) only while fewer than `concurrency`
    /// writes are in flight, so at most `(concurrency + 1) × max_items`
    /// items are held, plus the rest of one chunk.
    ///
    /// There are no tokens apart from the rows: `write` gets the items
    /// themselves and its output carries whatever acknowledging them needs
    /// (the items, their ack tokens, the outcome of each row). This is the
    /// stage `flowgate ingest` writes through.
    ///
    /// # Ordering
    ///
    /// Batches are formed, and their writes started, in upstream order; with
    /// `concurrency > 1` the writes may finish, and be yielded, in any order
    /// (see [`write_batches`](Self::write_batches)).
    ///
    /// # Panics
    ///
    /// - `"write_chunks: max_items must be at least 1"` if `max_items` is
    ///   zero;
    /// - `"write_chunks: max_delay must be greater than zero"` if `max_delay`
    ///   is zero;
    /// - `"write_chunks: concurrency must be at least 1"` if `concurrency` is
    ///   zero.
    ///
    /// A `max_items` of `usize::MAX` means no size bound, a `max_delay` of
    /// `Duration::MAX` never fires, and a `concurrency` of `usize::MAX` means
    /// no bound on writes in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Read batches of (row, ack token), as a broker consumer reads them.
    /// let reads = stream::iter([
    ///     vec![("a", 1), ("b", 2), ("c", 3)],
    ///     vec![("d", 4)],
    /// ]);
    /// let mut written = Box::pin(reads.write_chunks(2, Duration::from_millis(20), 2, |batch: Vec<(&str, u32)>| async move {
    ///     // one INSERT of the rows, then hand back what to acknowledge:
    ///     let tokens: Vec<u32> = batch.iter().map(|(_, token)| *token).collect();
    ///     Ok::<_, std::io::Error>(tokens)
    /// }));
    /// let mut acked = Vec::new();
    /// while let Some(result) = written.next().await {
    ///     acked.extend(result.unwrap()); // acknowledge only what was written
    /// }
    /// acked.sort();
    /// assert_eq!(acked, vec![1, 2, 3, 4]);
    /// # }
    /// ```
    #[track_caller]
    fn write_chunks<T, F, Fut>(
        self,
        max_items: usize,
        max_delay: Duration,
        concurrency: usize,
        write: F,
    ) -> WriteChunks<Self, T, F, Fut>
    where
        Self: Sized + Stream<Item = Vec<T>>,
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future,
    {
        WriteChunks::new(self, max_items, max_delay, concurrency, write)
    }

    /// Like [`batch`](Self::batch), but drops an item whose `key` is already
    /// in the open batch (the seed's `BatchFunc`): the first item with a key
    /// is kept, in arrival order, and `max_items` counts distinct keys.
    ///
    /// Use it to turn a burst of requests for the same ids into one batch
    /// fetch. Keys are forgotten when a batch is yielded; to drop repeats
    /// across batches, put [`dedup_within`](Self::dedup_within) before it.
    /// [`BatchDedup::duplicates`] counts the dropped items.
    ///
    /// # Panics
    ///
    /// - `"batch_dedup_by_key: max_items must be at least 1"` if `max_items` is zero;
    /// - `"batch_dedup_by_key: max_delay must be greater than zero"` if `max_delay` is
    ///   zero.
    ///
    /// A `max_items` of `usize::MAX` means no size bound (a batch reserves
    /// room for a few thousand items at most, and grows as items come), and a
    /// `max_delay` of `Duration::MAX` never fires: only size, a flush or the
    /// end of upstream yields a batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let users = [(1, "a"), (2, "b"), (1, "c"), (3, "d"), (2, "e")];
    /// let batches: Vec<Vec<(u32, &str)>> = stream::iter(users)
    ///     .batch_dedup_by_key(10, Duration::from_millis(10), |(id, _)| *id)
    ///     .collect()
    ///     .await;
    /// assert_eq!(batches, vec![vec![(1, "a"), (2, "b"), (3, "d")]]);
    /// # }
    /// ```
    #[track_caller]
    fn batch_dedup_by_key<F, K>(
        self,
        max_items: usize,
        max_delay: Duration,
        key: F,
    ) -> BatchDedup<Self, F, K>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> K,
        K: Hash + Eq,
    {
        BatchDedup::new("batch_dedup_by_key", self, max_items, max_delay, key)
    }

    /// Like [`batch_dedup_by_key`](Self::batch_dedup_by_key), with the item
    /// itself as the key (cloned into the batch's set of keys).
    ///
    /// # Panics
    ///
    /// - `"batch_dedup: max_items must be at least 1"` if `max_items` is zero;
    /// - `"batch_dedup: max_delay must be greater than zero"` if `max_delay` is
    ///   zero.
    ///
    /// A `max_items` of `usize::MAX` means no size bound (a batch reserves
    /// room for a few thousand items at most, and grows as items come), and a
    /// `max_delay` of `Duration::MAX` never fires: only size, a flush or the
    /// end of upstream yields a batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // The seed's example: 0..20 modulo 10, batches of 3 distinct ids.
    /// let batches: Vec<Vec<u32>> = stream::iter((0..20u32).map(|i| i % 10))
    ///     .batch_dedup(3, Duration::from_secs(1))
    ///     .collect()
    ///     .await;
    /// assert_eq!(batches[0], vec![0, 1, 2]);
    /// assert_eq!(batches.concat().len(), 20); // repeats land in later batches
    /// # }
    /// ```
    #[track_caller]
    #[allow(clippy::type_complexity)]
    fn batch_dedup(
        self,
        max_items: usize,
        max_delay: Duration,
    ) -> BatchDedup<Self, fn(&Self::Item) -> Self::Item, Self::Item>
    where
        Self: Sized,
        Self::Item: Hash + Eq + Clone,
    {
        BatchDedup::new("batch_dedup", self, max_items, max_delay, Clone::clone)
    }

    /// Drops an item if an item with the same `key` passed within the last
    /// `window` (`Duration::MAX`: a key is never forgotten while it is
    /// remembered at all).
    ///
    /// The window runs from the time the earlier item *passed*; dropped
    /// duplicates do not extend it, so a key that keeps coming passes once
    /// per `window`. Keys are remembered as long as they are in the window:
    /// memory grows with the number of distinct keys passed per `window`
    /// (expired keys are cleared as items arrive). For a hard bound on
    /// memory, use [`dedup_last`](Self::dedup_last).
    ///
    /// # Panics
    ///
    /// If `window` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // The same ids, 40 ms apart; each id at most once per 100 ms.
    /// let out: Vec<u32> = stream::iter([1u32, 2, 1, 2, 1, 2])
    ///     .then(|id| async move {
    ///         tokio::time::sleep(Duration::from_millis(40)).await;
    ///         id
    ///     })
    ///     .dedup_within(Duration::from_millis(100), |id| *id)
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![1, 2, 1, 2]);
    /// # }
    /// ```
    #[track_caller]
    fn dedup_within<F, K>(self, window: Duration, key: F) -> Dedup<Self, F, K>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> K,
        K: Hash + Eq + Clone,
    {
        Dedup::within(self, window, key)
    }

    /// Drops an item if its `key` is among the keys of the last `capacity`
    /// items that passed: a bounded window, using memory for `capacity` keys
    /// at most.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<u32> = stream::iter([1u32, 2, 1, 3, 1, 4, 2])
    ///     .dedup_last(2, |x| *x)
    ///     .collect()
    ///     .await;
    /// // 1 is dropped while among the last two passed; after 2 and 3 it is not.
    /// assert_eq!(out, vec![1, 2, 3, 1, 4, 2]);
    /// # }
    /// ```
    #[track_caller]
    fn dedup_last<F, K>(self, capacity: usize, key: F) -> Dedup<Self, F, K>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> K,
        K: Hash + Eq + Clone,
    {
        Dedup::last(self, capacity, key)
    }

    /// Splits the stream in two: `route` sends each item
    /// [left](Either::Left) or [right](Either::Right), possibly changing its
    /// type (the seed's `branch`).
    ///
    /// Each [`Branch`] buffers up to `capacity` items routed to it while it
    /// is not polled; when that buffer is full, the other branch waits. Poll
    /// both concurrently. See [`Branch`] for what dropping one does.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::pipeline::Either;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (numbers, words) = stream::iter(["1", "two", "3"]).branch(16, |s| match s.parse::<u32>() {
    ///     Ok(n) => Either::Left(n),
    ///     Err(_) => Either::Right(s.to_owned()),
    /// });
    /// let (numbers, words) = tokio::join!(numbers.collect::<Vec<_>>(), words.collect::<Vec<_>>());
    /// assert_eq!(numbers, vec![1, 3]);
    /// assert_eq!(words, vec!["two".to_owned()]);
    /// # }
    /// ```
    #[track_caller]
    fn branch<F, L, R>(self, capacity: usize, route: F) -> (Branch<L>, Branch<R>)
    where
        Self: Sized + Send + 'static,
        F: FnMut(Self::Item) -> Either<L, R> + Send + 'static,
        L: Send + 'static,
        R: Send + 'static,
    {
        Branch::<L>::pair(self, capacity, route)
    }

    /// Splits the stream in two by `predicate`: items for which it holds go
    /// to the first stream, the others to the second. See
    /// [`branch`](Self::branch) for buffering.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (even, odd) = stream::iter(0..10u32).partition(4, |x| x % 2 == 0);
    /// let (even, odd) = tokio::join!(even.collect::<Vec<_>>(), odd.collect::<Vec<_>>());
    /// assert_eq!(even, vec![0, 2, 4, 6, 8]);
    /// assert_eq!(odd, vec![1, 3, 5, 7, 9]);
    /// # }
    /// ```
    #[track_caller]
    fn partition<P>(
        self,
        capacity: usize,
        mut predicate: P,
    ) -> (Branch<Self::Item>, Branch<Self::Item>)
    where
        Self: Sized + Send + 'static,
        Self::Item: Send + 'static,
        P: FnMut(&Self::Item) -> bool + Send + 'static,
    {
        self.branch(capacity, move |item| {
            if predicate(&item) {
                Either::Left(item)
            } else {
                Either::Right(item)
            }
        })
    }

    /// Splits a stream of `Result`s into a stream of the `Ok` values and a
    /// stream of the errors (the seed's `error: retry, success: print`). See
    /// [`branch`](Self::branch) for buffering.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let results = stream::iter(["1", "x", "3"]).map(|s| s.parse::<u32>());
    /// let (ok, err) = results.split_results(8);
    /// let (ok, err) = tokio::join!(ok.collect::<Vec<_>>(), err.count());
    /// assert_eq!(ok, vec![1, 3]);
    /// assert_eq!(err, 1);
    /// # }
    /// ```
    #[track_caller]
    fn split_results<T, E>(self, capacity: usize) -> (Branch<T>, Branch<E>)
    where
        Self: Stream<Item = Result<T, E>> + Sized + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.branch(capacity, |result| match result {
            Ok(value) => Either::Left(value),
            Err(err) => Either::Right(err),
        })
    }

    /// Merges this stream with `other` into one stream of the items of both,
    /// as they come; it ends when both have ended.
    ///
    /// Which stream is polled first alternates, so neither can starve the
    /// other. Use it to join branches back together (say, retried errors
    /// with the successes).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut all: Vec<u32> = stream::iter([1, 3, 5]).merge_with(stream::iter([2, 4])).collect().await;
    /// all.sort_unstable();
    /// assert_eq!(all, vec![1, 2, 3, 4, 5]);
    /// # }
    /// ```
    fn merge_with<O>(self, other: O) -> MergeWith<Self, O>
    where
        Self: Sized,
        O: Stream<Item = Self::Item>,
    {
        MergeWith::new(self, other)
    }

    /// Ends the stream as soon as `token` is cancelled; items not yet
    /// yielded, and whatever upstream holds, are dropped with it.
    ///
    /// Put it on the *source* to stop pulling new items and let everything
    /// downstream finish (a drain), or at the *end* to stop at once (a drop);
    /// [`cancellable`](Self::cancellable) does both for you. The token is
    /// checked before upstream on every poll, so a busy upstream cannot delay
    /// the cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    /// use flowgate::pipeline::CancellationToken;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// let mut s = Box::pin(stream::iter(0..).take_until_cancelled(token.clone()));
    /// assert_eq!(s.next().await, Some(0));
    /// token.cancel();
    /// assert_eq!(s.next().await, None);
    /// # }
    /// ```
    fn take_until_cancelled(self, token: CancellationToken) -> Cancellable<Self>
    where
        Self: Sized,
    {
        Cancellable::new(self, token, true)
    }

    /// Runs the pipeline section built by `build` on this source until
    /// `token` is cancelled, then stops it as `mode` says:
    ///
    /// - [`CancelMode::Drain`]: the source is cut, so `par_map` and other
    ///   stages start no new work; the work in flight finishes and is
    ///   yielded; then the stream ends.
    /// - [`CancelMode::Drop`]: the stream ends at once, dropping the work in
    ///   flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::CancelMode;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    /// use flowgate::pipeline::CancellationToken;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// let out = stream::iter(0..100u64).cancellable(token.clone(), CancelMode::Drain, |source| {
    ///     source.par_map(5, |i| async move {
    ///         tokio::time::sleep(Duration::from_millis(100)).await;
    ///         i
    ///     })
    /// });
    /// let canceller = tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(150)).await;
    ///     token.cancel();
    /// });
    /// let out: Vec<u64> = out.collect().await;
    /// canceller.await.unwrap();
    /// // Two waves of five: the first done at 100 ms, the second in flight
    /// // at 150 ms and drained.
    /// assert_eq!(out, (0..10).collect::<Vec<_>>());
    /// # }
    /// ```
    fn cancellable<F, O>(
        self,
        token: CancellationToken,
        mode: CancelMode,
        build: F,
    ) -> Cancellable<O>
    where
        Self: Sized,
        F: FnOnce(Cancellable<Self>) -> O,
        O: Stream,
    {
        let source = Cancellable::new(self, token.clone(), true);
        Cancellable::new(build(source), token, mode == CancelMode::Drop)
    }

    /// Passes items through unchanged, counting them as stage `name` of
    /// `progress`: items, elapsed time, rate, and whether the stage ended
    /// (see [`Progress::snapshot`]).
    ///
    /// Put one after each stage to watch. With the `progress-bar` feature,
    /// [`Observe::with_bar`](Observe) also draws an `indicatif` bar for the stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// stream::iter(0..10u32)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(100)).await;
    ///         x
    ///     })
    ///     .observe(&progress, "slow")
    ///     .for_each(|_| async {})
    ///     .await;
    /// let stage = &progress.snapshot()[0];
    /// assert_eq!(stage.items(), 10);
    /// assert_eq!(stage.elapsed(), Duration::from_secs(1));
    /// assert_eq!(stage.rate(), 10.0);
    /// # }
    /// ```
    fn observe(self, progress: &Progress, name: &str) -> Observe<Self>
    where
        Self: Sized,
    {
        Observe::new(self, progress, name)
    }

    /// Runs `f` on every item with at most `limit` items in progress,
    /// retrying a failed call as `retry` says, and yields `Ok(output)` or,
    /// for an item that failed for good, `Err(`[`DeadLetter`](crate::resilience::DeadLetter)`)`
    /// with the item handed back, its last error, its attempt count and why
    /// retrying stopped — **as items finish** (like
    /// [`par_map_unordered`](Self::par_map_unordered)).
    ///
    /// `f` takes the item by reference, since it may be called again; the
    /// future it returns must not borrow it (clone what it needs). An item
    /// backing off keeps its slot, so `limit` bounds the items in progress,
    /// sleeping or not. With
    /// [`Retry::pause_while_backing_off`](crate::resilience::Retry::pause_while_backing_off),
    /// a [`pausable`](Self::pausable) source upstream pulls nothing while any
    /// item backs off. Send the dead letters aside with
    /// [`route_errors`](Self::route_errors), or split with
    /// [`split_results`](Self::split_results).
    ///
    /// A panic in a call propagates to the task polling the stream.
    ///
    /// # Panics
    ///
    /// If `limit` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(100))).max_attempts(3);
    /// let out: Vec<u32> = stream::iter([1u32, 2, 3])
    ///     .par_map_retry(2, retry, |x: &u32| {
    ///         let (x, calls) = (*x, calls.clone());
    ///         // Item 2 fails on its first call only.
    ///         async move {
    ///             if x == 2 && calls.fetch_add(1, Ordering::SeqCst) == 0 { Err("flaky") } else { Ok(x) }
    ///         }
    ///     })
    ///     .map(|r| r.unwrap())
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![1, 3, 2]); // 2 came back after its retry
    /// # }
    /// ```
    #[track_caller]
    fn par_map_retry<F, Fut, O, E>(
        self,
        limit: usize,
        retry: Retry<E>,
        f: F,
    ) -> ParMapRetry<Self, F, Fut, E>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> Fut,
        Fut: Future<Output = Result<O, E>>,
    {
        ParMapRetry::new(self, limit, retry, f)
    }

    /// Runs `f` on every item with as many calls in flight as an
    /// [`AdaptiveLimit`] over `range` allows, and yields their outputs **as
    /// they complete**.
    ///
    /// The limit starts at the range's minimum, grows by one while the
    /// calls' round-trip times stay near their baseline and shrinks by 10 %
    /// when a call returns `Err` (back-pressure) or the round-trip times
    /// rise (see [`AdaptiveLimit`]). Read it through
    /// [`ParMapAdaptive::limit`]. To share one limit among stages, or to
    /// classify outputs yourself (a 404 is not overload), use
    /// [`par_map_adaptive_with`](Self::par_map_adaptive_with).
    ///
    /// The stage takes an item from upstream before waiting for room, so it
    /// holds at most one item beyond the calls in flight. A panic in a call
    /// propagates to the task polling the stream.
    ///
    /// # Panics
    ///
    /// If the range is empty, starts at 0, or ends above
    /// [`AdaptiveLimit::MAX`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let stage = stream::iter(0..2000u32).par_map_adaptive(1..=32, |x| async move {
    ///     tokio::time::sleep(Duration::from_millis(10)).await; // a service that never slows down
    ///     Ok::<_, ()>(x)
    /// });
    /// let limit = stage.limit().clone();
    /// assert_eq!(stage.count().await, 2000);
    /// assert!(limit.limit() > 16, "grew to {}", limit.limit());
    /// # }
    /// ```
    #[track_caller]
    #[allow(clippy::type_complexity)]
    fn par_map_adaptive<F, Fut, O, E>(
        self,
        range: std::ops::RangeInclusive<usize>,
        f: F,
    ) -> ParMapAdaptive<Self, F, Fut, fn(&Result<O, E>) -> Outcome>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future<Output = Result<O, E>>,
    {
        ParMapAdaptive::new(
            self,
            AdaptiveLimit::new(range),
            Outcome::of_result::<O, E>,
            f,
        )
    }

    /// Like [`par_map_adaptive`](Self::par_map_adaptive), under a given
    /// (possibly shared) `limit`, reporting what `classify` makes of each
    /// output: [`Outcome::Success`] (an RTT sample),
    /// [`Outcome::Overload`] (back-pressure) or [`Outcome::Ignore`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::{AdaptiveLimit, Outcome};
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(2..=64);
    /// let statuses: Vec<u16> = stream::iter([200u16, 404, 503])
    ///     .par_map_adaptive_with(&limit, |s: &u16| match s {
    ///         503 | 429 => Outcome::Overload,
    ///         200..=299 => Outcome::Success,
    ///         _ => Outcome::Ignore,
    ///     }, |s| async move { s })
    ///     .collect()
    ///     .await;
    /// assert_eq!(statuses.len(), 3);
    /// assert_eq!(limit.stats().overloads, 1);
    /// # }
    /// ```
    fn par_map_adaptive_with<F, Fut, C>(
        self,
        limit: &AdaptiveLimit,
        classify: C,
        f: F,
    ) -> ParMapAdaptive<Self, F, Fut, C>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future,
        C: FnMut(&Fut::Output) -> Outcome,
    {
        ParMapAdaptive::new(self, limit.clone(), classify, f)
    }

    /// Yields the `Ok` values of a stream of `Result`s and sends the errors
    /// to a dead-letter channel (see [`dead_letters`](crate::resilience::dead_letters)):
    /// successes continue down the pipeline, failures are set aside — after
    /// [`par_map_retry`](Self::par_map_retry), with their item, error and
    /// attempt count.
    ///
    /// Errors keep their order. When the channel is full the stage waits for
    /// room before pulling more (backpressure: no error is lost, and
    /// successes wait too). If the receiving [`DeadLetters`](crate::resilience::DeadLetters)
    /// was dropped, errors are discarded and counted
    /// ([`RouteErrors::dropped`]); successes go on. When upstream ends, the
    /// stage drops its sender, so the dead-letter stream ends once every
    /// other sender is gone too. Hand the stage the sender itself (clone it
    /// for several stages) so that nothing else keeps the channel open.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::dead_letters;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (dead_tx, dead) = dead_letters(8);
    /// let ok = stream::iter([Ok(1), Err("a"), Ok(2), Err("b")]).route_errors(dead_tx);
    /// let (ok, dead) = tokio::join!(ok.collect::<Vec<i32>>(), dead.collect::<Vec<_>>());
    /// assert_eq!(ok, vec![1, 2]);
    /// assert_eq!(dead, vec!["a", "b"]);
    /// # }
    /// ```
    fn route_errors<T, X>(self, dead: DeadLetterSender<X>) -> RouteErrors<Self, X>
    where
        Self: Stream<Item = Result<T, X>> + Sized,
        X: Send + 'static,
    {
        RouteErrors::new(self, dead)
    }

    /// Passes items through, but pulls nothing from upstream while `pause`
    /// is paused: put it right after the source, so a paused pipeline stops
    /// reading (a cursor, a broker) while the stages downstream finish what
    /// they have. A [`Retry`] with
    /// [`pause_while_backing_off`](crate::resilience::Retry::pause_while_backing_off)
    /// pauses it for as long as it backs off.
    ///
    /// The pause is checked before every pull; the stage holds no item.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::PauseHandle;
    /// use futures_util::{stream, StreamExt};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pause = PauseHandle::new();
    /// pause.pause();
    /// let resumer = pause.clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(2)).await;
    ///     resumer.resume();
    /// });
    /// let start = Instant::now();
    /// let first = stream::iter(0..3).pausable(&pause).next().await;
    /// assert_eq!(first, Some(0));
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    fn pausable(self, pause: &PauseHandle) -> Pausable<Self>
    where
        Self: Sized,
    {
        Pausable::new(self, pause)
    }
}

impl<S: Stream + ?Sized> PipelineExt for S {}

/// The size hint of an operator that may drop any number of upstream items
/// but yields the one it holds (`held`): at least one item if anything is
/// left, at most everything left.
fn lossy_size_hint(held: bool, (lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
    let held = usize::from(held);
    let lower = if lower > 0 || held > 0 { 1 } else { 0 };
    (lower, upper.and_then(|upper| upper.checked_add(held)))
}
