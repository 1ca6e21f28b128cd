//! The [`Worker`] and the [`KeyedWorker`]: seal batches on time, run the
//! flush function and resolve every item's flushed. Both are a [`Driver`],
//! generic over the batcher's [`BatchKey`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;
use tracing::Span;
use tracing::instrument::Instrumented;

use super::error::FlushError;
use super::flushed::Completion;
use super::keys::{BatchKey, Keyed, OpenSet};
use super::observe::{Outcome, TARGET, Trigger};
use super::room::{self, Woken};
use super::shared::{Sealed, Shared};
use crate::sync::{lock, panic_message};

/// The boxed flush future: the flush function's result, already split into
/// one output per item.
pub(crate) type FlushFuture<O, E> =
    Pin<Box<dyn Future<Output = Result<Vec<O>, FlushError<E>>> + Send + 'static>>;

/// The boxed flush function: a batch's key (`()` for a plain batcher) and
/// its items.
pub(crate) type FlushFn<K, T, O, E> =
    Box<dyn FnMut(K, Vec<T>) -> FlushFuture<O, E> + Send + 'static>;

/// How many rounds of "collect finished flushes, start new ones" one poll of
/// the worker runs before yielding to the scheduler.
const BUDGET: usize = 32;

/// How many `submit_and_wait` waiters the worker resolves per critical
/// section, so that submitters are not held off the lock for a whole batch.
const RESOLVE_CHUNK: usize = 64;

/// Drives a [`Batcher`](super::Batcher): seals batches when their delay has
/// passed, calls the flush function, and resolves every item's [`Flushed`](super::Flushed).
///
/// [`BatcherBuilder::build`](super::BatcherBuilder::build) spawns the worker on
/// the current tokio runtime; [`BatcherBuilder::build_pair`](super::BatcherBuilder::build_pair)
/// hands it to you to spawn or await wherever you like. It needs tokio's time
/// driver.
///
/// The worker completes once the batcher is closed (by
/// [`Batcher::close`](super::Batcher::close) or by dropping every handle) and
/// every submitted item has been flushed.
///
/// # Dropping the worker
///
/// Dropping the worker before it completes closes the batcher: every item not
/// yet flushed — waiting in a batch or in a flush that is cut short — resolves
/// with [`FlushError::Closed`], and submitters get their items back.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use flowgate::batch::Batcher;
///
/// let (batcher, worker) = Batcher::builder()
///     .build_pair(|_: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
///     .unwrap();
/// let worker = tokio::spawn(worker);
/// batcher.submit_and_wait(1).await.unwrap();
/// drop(batcher); // the last handle: the worker flushes what is left and completes
/// worker.await.unwrap();
/// # }
/// ```
#[must_use = "the batch worker does nothing unless spawned or awaited"]
pub struct Worker<T, O, E> {
    driver: Driver<(), T, O, E>,
}

/// Drives a [`KeyedBatcher`](super::KeyedBatcher), as a [`Worker`] drives a
/// [`Batcher`](super::Batcher): seals each key's batch when its delay has
/// passed, calls the flush function with the key and the items, and
/// resolves every item's [`Flushed`](super::Flushed).
///
/// [`KeyedBatcherBuilder::build`](super::KeyedBatcherBuilder::build) spawns
/// it on the current tokio runtime;
/// [`KeyedBatcherBuilder::build_pair`](super::KeyedBatcherBuilder::build_pair)
/// hands it to you. It completes once the batcher is closed and every item
/// was flushed. Dropping it before that closes the batcher: every item not
/// yet flushed, in any key, resolves with [`FlushError::Closed`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use flowgate::batch::KeyedBatcher;
///
/// let (batcher, worker) = KeyedBatcher::builder()
///     .build_pair(|_key: &str, _rows: Vec<u32>| async { Ok::<(), std::io::Error>(()) })
///     .unwrap();
/// let flushed = batcher.submit("eu", 1).await.unwrap();
/// drop(worker); // abrupt stop: nothing will flush the item
/// assert!(flushed.await.unwrap_err().is_closed());
/// # }
/// ```
#[must_use = "the batch worker does nothing unless spawned or awaited"]
pub struct KeyedWorker<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    driver: Driver<Keyed<K>, T, O, E>,
}

/// The worker of either kind of batcher.
pub(crate) struct Driver<K: BatchKey, T, O, E> {
    shared: Arc<Shared<K, T, O, E>>,
    flush: FlushFn<K, T, O, E>,
    in_flight: FuturesUnordered<InFlight<O, E>>,
    /// Fires at the oldest open batch's deadline. Created on first use,
    /// inside the runtime, so that the worker can be built outside one.
    timer: Option<Pin<Box<Sleep>>>,
    timer_deadline: Option<Instant>,
    /// Batches resolved out of order, beyond the contiguous watermark.
    resolved_ahead: BTreeSet<u64>,
    /// With `resolve_in_order`: flushes that finished before an earlier
    /// batch's, held until every earlier batch is resolved. Each keeps its
    /// flush slot meanwhile, so `in_flight + held <= flush_concurrency`.
    held: BTreeMap<u64, Finished<O, E>>,
    done: bool,
}

/// A batch being flushed.
struct InFlight<O, E> {
    seq: u64,
    /// The hash of the batch's key, to let its next batch go
    /// (`one_flush_per_key`).
    hash: u64,
    len: usize,
    /// When it was handed to the flush function.
    started: Instant,
    /// The flush future, polled (and dropped) inside the batch's flush span.
    future: Instrumented<FlushFuture<O, E>>,
    /// Taken when the flush completes; dropped unresolved (resolving every flushed future
    /// with `Closed`) if the worker drops this flush.
    completion: Option<Completion<O, E>>,
}

struct Finished<O, E> {
    seq: u64,
    hash: u64,
    len: usize,
    started: Instant,
    /// The flush span, kept open until the batch is resolved.
    span: Span,
    completion: Completion<O, E>,
    result: Result<Vec<O>, FlushError<E>>,
}

impl<O, E> Future for InFlight<O, E> {
    type Output = Finished<O, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // A panic while polling the flush fails this batch only.
        let result = match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.future).poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(payload) => Err(FlushError::Panicked(panic_message(&*payload).into())),
        };
        Poll::Ready(Finished {
            seq: this.seq,
            hash: this.hash,
            len: this.len,
            started: this.started,
            span: this.future.span().clone(),
            completion: this.completion.take().expect("a flush completes only once"),
            result,
        })
    }
}

impl<T, O, E> Worker<T, O, E> {
    pub(crate) fn new(driver: Driver<(), T, O, E>) -> Self {
        Worker { driver }
    }
}

impl<K, T, O, E> KeyedWorker<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    pub(crate) fn new(driver: Driver<Keyed<K>, T, O, E>) -> Self {
        KeyedWorker { driver }
    }
}

impl<K: BatchKey, T, O, E> Driver<K, T, O, E>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn new(shared: Arc<Shared<K, T, O, E>>, flush: FlushFn<K, T, O, E>) -> Self {
        Driver {
            shared,
            flush,
            in_flight: FuturesUnordered::new(),
            timer: None,
            timer_deadline: None,
            resolved_ahead: BTreeSet::new(),
            held: BTreeMap::new(),
            done: false,
        }
    }

    /// Seals due batches and starts as many flushes as the concurrency allows.
    fn schedule(&mut self) -> Schedule {
        let limits = self.shared.limits;
        let mut starting = Vec::new();
        let mut woken = Woken::new();
        let mut state = lock(&self.shared.state);
        if !state.closed && self.shared.handles.load(Ordering::Acquire) == 0 {
            // Every handle is gone: nothing more can be submitted, so flush
            // what is left and stop.
            state.close(&mut woken);
        }
        if state.closed {
            state.seal_all(Trigger::Close);
        } else {
            // Batches open in order and share one delay, so their deadlines
            // come in the same order: seal from the oldest while due.
            let now = Instant::now();
            while let Some((seq, Some(deadline))) = state.open.oldest()
                && now >= deadline
            {
                state.seal(seq, Trigger::Delay);
            }
        }
        // A held flush keeps its slot: the outputs it holds count against
        // `flush_concurrency × max_items`.
        while self.in_flight.len() + self.held.len() + starting.len() < limits.flush_concurrency {
            match state.ready.pop_front() {
                Some(sealed) => {
                    // The items leave the batcher's capacity as the flush
                    // takes them.
                    state.room.release(sealed.batch.items.len(), &mut woken);
                    starting.push(sealed);
                }
                None => break,
            }
        }
        let deadline = state.open.oldest().and_then(|(_, deadline)| deadline);
        let finished = state.closed
            && state.open.len() == 0
            && state.ready.is_empty()
            && state.lanes.is_empty()
            && starting.is_empty()
            && self.in_flight.is_empty()
            && self.held.is_empty();
        drop(state);
        room::wake(woken);

        let started = !starting.is_empty();
        for sealed in starting {
            self.start(sealed);
        }
        Schedule {
            started,
            deadline,
            finished,
        }
    }

    /// Hands `sealed` to the flush function, inside a new flush span.
    fn start(&mut self, sealed: Sealed<K, T, O, E>) {
        let Sealed { hash, key, batch } = sealed;
        let seq = batch.seq;
        let items = batch.items;
        let completion = batch.completion;
        let len = items.len();
        // One clock read per batch: the age of its first item and the start
        // of its flush.
        let started = Instant::now();
        let metrics = &self.shared.metrics;
        metrics.pending.sub(len as f64);
        metrics.flushing.add(len as f64);
        metrics.flush_started(batch.trigger).inc();
        metrics.size.record(len as f64);
        metrics
            .age
            .record_duration(started.saturating_duration_since(batch.opened));
        let span = tracing::info_span!(
            target: TARGET,
            "flush",
            name = metrics.name.as_str(),
            size = len,
            trigger = batch.trigger.as_str(),
            outcome = tracing::field::Empty,
        );
        batch.links.follow(&span);
        let flush = &mut self.flush;
        // The flush function runs in the span too: spans it opens before
        // returning its future nest under it.
        let called = span.in_scope(|| catch_unwind(AssertUnwindSafe(|| flush(key, items))));
        let future = match called {
            Ok(future) => future,
            Err(payload) => {
                let err = FlushError::Panicked(panic_message(&*payload).into());
                Box::pin(std::future::ready(Err(err)))
            }
        };
        self.in_flight.push(InFlight {
            seq,
            hash,
            len,
            started,
            future: future.instrument(span),
            completion: Some(completion),
        });
    }
}

impl<K: BatchKey, T, O, E> Driver<K, T, O, E> {
    /// A flush finished: resolves its items now, or, with
    /// `resolve_in_order`, once every earlier batch is resolved (and then
    /// every held batch that was waiting for this one).
    fn finished(&mut self, finished: Finished<O, E>) {
        self.completed(&finished);
        if !self.shared.limits.resolve_in_order {
            self.finish(finished);
            return;
        }
        self.held.insert(finished.seq, finished);
        // Batches start in sequence order and each is resolved once, so the
        // next to resolve is the one after the contiguous watermark.
        loop {
            let next = self.shared.progress.borrow().resolved + 1;
            match self.held.remove(&next) {
                Some(finished) => self.finish(finished),
                None => break,
            }
        }
    }

    /// A flush future returned (the batch is resolved now, or later with
    /// `resolve_in_order`): its duration, its outcome, and one event if it
    /// failed, inside its span.
    fn completed(&self, finished: &Finished<O, E>) {
        let metrics = &self.shared.metrics;
        let outcome = Outcome::of(&finished.result);
        metrics
            .duration
            .record_duration(Instant::now().saturating_duration_since(finished.started));
        metrics.flush_completed(outcome);
        let span = &finished.span;
        span.record("outcome", outcome.as_str());
        if let Err(err) = &finished.result {
            let name = metrics.name.as_str();
            let size = finished.len;
            let error_type = std::any::type_name::<E>();
            span.in_scope(|| match err {
                FlushError::Panicked(_) => tracing::error!(
                    target: TARGET,
                    name,
                    size,
                    error = %DisplayKind(err),
                    "batch flush panicked; its items fail"
                ),
                _ => tracing::warn!(
                    target: TARGET,
                    name,
                    size,
                    error = %DisplayKind(err),
                    error_type,
                    "batch flush failed; its items get the error"
                ),
            });
        }
    }

    /// Records a finished flush and resolves its items.
    fn finish(&mut self, finished: Finished<O, E>) {
        let Finished {
            seq,
            hash,
            len,
            completion,
            result,
            span,
            ..
        } = finished;
        let metrics = &self.shared.metrics;
        metrics.flushing.sub(len as f64);
        metrics.items_resolved(Outcome::of(&result), len);
        let mut outcome = result.map(|outputs| outputs.into_iter().map(Some).collect::<Vec<_>>());
        let take = |outcome: &mut Result<Vec<Option<O>>, FlushError<E>>, index: usize| match outcome
        {
            Ok(outputs) => Ok(outputs[index]
                .take()
                .expect("each item's output is taken once")),
            Err(err) => Err(err.clone()),
        };
        // Resolve the waiters in chunks, waking each chunk outside the lock;
        // the first critical section also counts the batch.
        let mut cursor = 0;
        let mut wakers = Vec::new();
        let mut first = true;
        loop {
            let finished = {
                let mut state = lock(&self.shared.state);
                let state = &mut *state;
                if first {
                    first = false;
                    if state.lanes_in_use() {
                        // The key's next batch may start.
                        state.lanes.release(hash, seq, &mut state.ready);
                    }
                    let stats = &mut state.stats;
                    stats.batches += 1;
                    if outcome.is_ok() {
                        stats.flushed += len as u64;
                    } else {
                        stats.failed += len as u64;
                        stats.failed_batches += 1;
                    }
                }
                state.flushing.resolve(
                    seq,
                    &mut cursor,
                    RESOLVE_CHUNK,
                    |index| take(&mut outcome, index),
                    &mut wakers,
                )
            };
            for waker in wakers.drain(..) {
                waker.wake();
            }
            if finished {
                break;
            }
        }
        // Callbacks run (and a panicking one is logged) in the flush span.
        span.in_scope(|| completion.resolve(outcome));
        self.mark_resolved(seq);
    }

    /// Advances the contiguous watermark that `flush()` waits on.
    fn mark_resolved(&mut self, seq: u64) {
        let mut resolved = self.shared.progress.borrow().resolved;
        if seq != resolved + 1 {
            self.resolved_ahead.insert(seq);
            return;
        }
        resolved = seq;
        while self.resolved_ahead.remove(&(resolved + 1)) {
            resolved += 1;
        }
        self.shared
            .progress
            .send_modify(|progress| progress.resolved = resolved);
    }

    fn stop(&mut self) {
        self.done = true;
        self.shared.progress.send_modify(|progress| {
            progress.resolved = u64::MAX;
            progress.stopped = true;
        });
    }
}

struct Schedule {
    started: bool,
    deadline: Option<Instant>,
    finished: bool,
}

/// Formats a [`FlushError`] without requiring `E: Display`.
struct DisplayKind<'a, E>(&'a FlushError<E>);

impl<E> fmt::Display for DisplayKind<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            FlushError::Failed(_) => f.write_str("flush function returned an error"),
            FlushError::Panicked(msg) => write!(f, "flush function panicked: {msg}"),
            FlushError::OutputMismatch { expected, actual } => {
                write!(f, "{actual} outputs for {expected} items")
            }
            FlushError::Closed => f.write_str("closed"),
        }
    }
}

impl<K: BatchKey, T, O, E> Future for Driver<K, T, O, E>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(());
        }
        // Register before looking at the state, so that a submitter that
        // changes it after our look also sees our waker.
        this.shared.worker.register(cx.waker());
        for _ in 0..BUDGET {
            // Phase 1: resolve the flushed futures of finished flushes.
            let mut progressed = false;
            while let Poll::Ready(Some(finished)) = this.in_flight.poll_next_unpin(cx) {
                this.finished(finished);
                progressed = true;
            }
            // Phase 2: seal due batches, start flushes while slots are free.
            let schedule = this.schedule();
            if schedule.finished {
                this.stop();
                return Poll::Ready(());
            }
            // New flushes must be polled once to register their wakers.
            progressed |= schedule.started;
            // Phase 3: arm the timer for the oldest open batch's deadline.
            if let Some(deadline) = schedule.deadline {
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if this.timer_deadline != Some(deadline) {
                    timer.as_mut().reset(deadline);
                    this.timer_deadline = Some(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    progressed = true;
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
        // Out of budget with work left: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<K: BatchKey, T, O, E> Drop for Driver<K, T, O, E> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if !self.held.is_empty() {
            // Resolve in submission order still: a flush cut short fails
            // with `Closed`, a finished one held back for it reports its own
            // outcome (its items were flushed).
            let mut cut: Vec<_> = self
                .in_flight
                .iter_mut()
                .filter_map(|flush| {
                    let span = flush.future.span().clone();
                    let completion = flush.completion.take()?;
                    Some((
                        flush.seq,
                        flush.hash,
                        flush.len,
                        flush.started,
                        span,
                        completion,
                    ))
                })
                .collect();
            self.in_flight.clear();
            cut.sort_unstable_by_key(|&(seq, ..)| seq);
            let mut cut = cut.into_iter().peekable();
            let mut held = std::mem::take(&mut self.held).into_values().peekable();
            loop {
                let next_cut = cut.peek().map(|&(seq, ..)| seq);
                let next_held = held.peek().map(|finished| finished.seq);
                let take_cut = match (next_cut, next_held) {
                    (None, None) => break,
                    (Some(c), Some(h)) => c < h,
                    (cut, _) => cut.is_some(),
                };
                let finished = if take_cut {
                    let (seq, hash, len, started, span, completion) = cut.next().expect("peeked");
                    span.record("outcome", Outcome::Closed.as_str());
                    Finished {
                        seq,
                        hash,
                        len,
                        started,
                        span,
                        completion,
                        result: Err(FlushError::Closed),
                    }
                } else {
                    held.next().expect("peeked")
                };
                self.finish(finished);
            }
        }
        // Close first, so that no item enters a batch that will never flush.
        let mut woken = Woken::new();
        let mut wakers = Vec::new();
        let metrics = &self.shared.metrics;
        let (open, ready, parked, waiting, cut) = {
            let mut state = lock(&self.shared.state);
            state.close(&mut woken);
            let mut open = state.open.drain();
            let ready = std::mem::take(&mut state.ready);
            let parked = state.lanes.drain();
            let waiting = open.iter().chain(&ready).map(|sealed| &sealed.batch);
            let waiting = waiting
                .chain(&parked)
                .map(|batch| batch.items.len())
                .sum::<usize>();
            let cut = self.in_flight.iter().map(|flush| flush.len).sum::<usize>();
            state.stats.failed += (waiting + cut) as u64;
            // Under the lock, as the increments are.
            metrics.pending.sub(waiting as f64);
            metrics.open_keys.sub(open.len() as f64);
            // Every waiter, of every batch, is unresolved; resolve them while
            // holding the lock, before their tables leave the state. The
            // tables of sealed batches are with those of flushing ones.
            let closed = FlushError::Closed;
            for sealed in &mut open {
                sealed.batch.waiters.close(&closed, &mut wakers);
            }
            state.flushing.close_all(&closed, &mut wakers);
            (open, ready, parked, waiting, cut)
        };
        metrics.flushing.sub(cut as f64);
        metrics.items_resolved(Outcome::Closed, waiting + cut);
        for flush in self.in_flight.iter() {
            flush
                .future
                .span()
                .record("outcome", Outcome::Closed.as_str());
        }
        if waiting + cut > 0 {
            tracing::error!(
                target: TARGET,
                name = metrics.name.as_str(),
                items = waiting + cut,
                flushing = cut,
                "batch worker dropped before flushing every item; they fail with `Closed`"
            );
        }
        room::wake(woken);
        for waker in wakers {
            waker.wake();
        }
        // Dropping unresolved completions resolves their flushed futures with `Closed`.
        drop(open);
        drop(ready);
        drop(parked);
        self.in_flight.clear();
        self.shared.progress.send_modify(|progress| {
            progress.resolved = u64::MAX;
            progress.stopped = true;
        });
    }
}

impl<K: BatchKey, T, O, E> fmt::Debug for Driver<K, T, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("in_flight", &self.in_flight.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T, O, E> Future for Worker<T, O, E>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.driver).poll(cx)
    }
}

impl<K, T, O, E> Future for KeyedWorker<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.driver).poll(cx)
    }
}

impl<T, O, E> fmt::Debug for Worker<T, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.driver.fmt(f)
    }
}

impl<K, T, O, E> fmt::Debug for KeyedWorker<K, T, O, E>
where
    K: Hash + Eq + Clone + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedWorker")
            .field("in_flight", &self.driver.in_flight.len())
            .field("done", &self.driver.done)
            .finish_non_exhaustive()
    }
}
