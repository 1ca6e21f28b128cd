//! [`batch`](super::PipelineExt::batch) and
//! [`batch_dedup_by_key`](super::PipelineExt::batch_dedup_by_key): group a
//! stream's items into `Vec`s by size and time, with an on-demand flush.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::BUDGET;
use super::metrics::DebugName;
use super::metrics::{BatchSeries, recording};
use crate::telemetry::{Counter, Name};

/// The most items a batch reserves room for when it opens, and the most one
/// poll adds to it beyond [`BUDGET`].
const RESERVE: usize = 4096;

// ===== impl BatchFlush =====

#[derive(Debug, Default)]
struct FlushShared {
    requested: AtomicBool,
    waker: AtomicWaker,
}

/// A handle that makes a [`Batch`] (or [`BatchDedup`]) stream yield the items
/// it holds now, without waiting for the batch to fill up or its delay to
/// pass; from [`Batch::flush_handle`].
///
/// Cheap to clone and `Send + Sync`: call it from any task. A flush asked
/// for while the stream holds no item does nothing (it is not remembered for
/// the next item), and once the stream is dropped it does nothing.
#[derive(Clone)]
pub struct BatchFlush {
    shared: Arc<FlushShared>,
}

impl BatchFlush {
    /// Asks the stream to yield the items it holds as a batch at its next
    /// poll (and wakes it). Does not wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{FutureExt, StreamExt};
    /// use tokio_stream::wrappers::ReceiverStream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
    /// let batches = ReceiverStream::new(rx).batch(100, Duration::from_secs(60));
    /// let flush = batches.flush_handle();
    /// let mut batches = Box::pin(batches);
    /// tx.send(1).await.unwrap();
    /// assert!(batches.next().now_or_never().is_none()); // waits for 99 more, or 60 s
    /// flush.flush();
    /// assert_eq!(batches.next().await, Some(vec![1]));
    ///
    /// // With no item held, a flush does nothing and is not remembered.
    /// flush.flush();
    /// tx.send(2).await.unwrap();
    /// assert!(batches.next().now_or_never().is_none());
    /// # }
    /// ```
    pub fn flush(&self) {
        self.shared.requested.store(true, Ordering::Release);
        self.shared.waker.wake();
    }
}

impl fmt::Debug for BatchFlush {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchFlush")
            .field("requested", &self.shared.requested.load(Ordering::Relaxed))
            .finish()
    }
}

// ===== the shared core =====

/// What a batch does with an item's key: nothing, or remember it.
trait Dedup<T> {
    /// Whether `item` is new to the current batch (and remember it).
    fn admit(&mut self, item: &T) -> bool;
    /// Forget every key: a new batch starts.
    fn clear(&mut self);
}

#[derive(Debug)]
struct NoDedup;

impl<T> Dedup<T> for NoDedup {
    fn admit(&mut self, _item: &T) -> bool {
        true
    }

    fn clear(&mut self) {}
}

struct ByKey<F, K> {
    key: F,
    seen: HashSet<K>,
}

impl<T, F, K> Dedup<T> for ByKey<F, K>
where
    F: FnMut(&T) -> K,
    K: Hash + Eq,
{
    fn admit(&mut self, item: &T) -> bool {
        self.seen.insert((self.key)(item))
    }

    fn clear(&mut self) {
        self.seen.clear();
    }
}

pin_project! {
    struct Core<S, D>
    where
        S: Stream,
    {
        #[pin]
        stream: Fuse<S>,
        max_items: usize,
        max_delay: Duration,
        items: Vec<S::Item>,
        dedup: D,
        duplicates: u64,
        flush: Arc<FlushShared>,
        // Runs from the first item of the open batch.
        #[pin]
        sleep: Option<Sleep>,
        metrics: BatchSeries,
    }
}

impl<S: Stream, D> Core<S, D> {
    /// `op` names the operator in the panic messages.
    #[track_caller]
    fn new(op: &str, stream: S, max_items: usize, max_delay: Duration, dedup: D) -> Self {
        assert!(max_items > 0, "{op}: max_items must be at least 1");
        assert!(
            !max_delay.is_zero(),
            "{op}: max_delay must be greater than zero"
        );
        Core {
            stream: stream.fuse(),
            max_items,
            max_delay,
            items: Vec::new(),
            dedup,
            duplicates: 0,
            flush: Arc::default(),
            sleep: None,
            metrics: BatchSeries::none(),
        }
    }

    fn flush_handle(&self) -> BatchFlush {
        BatchFlush {
            shared: Arc::clone(&self.flush),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Every batch holds at least one item; duplicates may shrink it.
        let (lower, upper) = self.stream.size_hint();
        let held = self.items.len();
        (
            usize::from(lower.saturating_add(held) > 0),
            upper.and_then(|upper| upper.checked_add(held)),
        )
    }

    fn is_terminated(&self) -> bool {
        self.items.is_empty() && self.stream.is_done()
    }
}

impl<S: Stream, D: Dedup<S::Item>> Core<S, D> {
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<S::Item>>> {
        let next = self.as_mut().poll_batch(cx);
        // The open batch's size, once per poll.
        let this = self.project();
        this.metrics.held.set(this.items.len());
        next
    }

    fn poll_batch(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<S::Item>>> {
        let mut this = self.project();
        let series = &*this.metrics;
        let max_delay = *this.max_delay;

        // 1. An on-demand flush. Register before reading the flag, so a flush
        //    asked for in between still wakes us.
        this.flush.waker.register(cx.waker());
        if this.flush.requested.swap(false, Ordering::AcqRel) && !this.items.is_empty() {
            let batch = take_batch(
                this.items,
                this.dedup,
                this.sleep,
                max_delay,
                series,
                &series.flush,
            );
            return Poll::Ready(Some(batch));
        }

        // 2. Fill the batch from upstream. Duplicates do not count, so the
        //    number of polls is bounded separately for fairness.
        //    A huge `max_items` does not make one poll unbounded: past
        //    `RESERVE` items the loop yields and the batch goes on filling
        //    at the next poll.
        for _ in 0..(*this.max_items).min(RESERVE).saturating_add(BUDGET) {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    series.flow.items_in.inc();
                    if !this.dedup.admit(&item) {
                        *this.duplicates += 1;
                        series.duplicates.inc();
                        continue;
                    }
                    if this.items.is_empty() {
                        // Never more than `RESERVE` up front: `max_items`
                        // may be `usize::MAX`, meaning "no size bound".
                        this.items.reserve((*this.max_items).min(RESERVE));
                        // A delay too long to represent never fires.
                        if let Some(deadline) = Instant::now().checked_add(*this.max_delay) {
                            this.sleep.set(Some(sleep_until(deadline)));
                        }
                    }
                    this.items.push(item);
                    if this.items.len() >= *this.max_items {
                        let batch = take_batch(
                            this.items,
                            this.dedup,
                            this.sleep,
                            max_delay,
                            series,
                            &series.size,
                        );
                        return Poll::Ready(Some(batch));
                    }
                }
                // Upstream ended: yield what is left, then end.
                Poll::Ready(None) => {
                    if this.items.is_empty() {
                        return Poll::Ready(None);
                    }
                    let batch = take_batch(
                        this.items,
                        this.dedup,
                        this.sleep,
                        max_delay,
                        series,
                        &series.end,
                    );
                    return Poll::Ready(Some(batch));
                }
                Poll::Pending => {
                    // 3. The open batch's delay passed: yield it partial.
                    if let Some(sleep) = this.sleep.as_mut().as_pin_mut()
                        && sleep.poll(cx).is_ready()
                    {
                        let batch = take_batch(
                            this.items,
                            this.dedup,
                            this.sleep,
                            max_delay,
                            series,
                            &series.delay,
                        );
                        return Poll::Ready(Some(batch));
                    }
                    return Poll::Pending;
                }
            }
        }
        // Upstream had many items ready: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Hands over the open batch and starts a new one.
///
/// The next batch reserves room when its first item arrives.
/// Takes the open batch, recording it under `trigger` (one of `series`'
/// trigger counters): once per batch, its size, and how long it was open
/// (its timer was set at the first item, `max_delay` ahead; the one clock
/// read is made only when the series are recorded).
fn take_batch<T, D: Dedup<T>>(
    items: &mut Vec<T>,
    dedup: &mut D,
    sleep: Pin<&mut Option<Sleep>>,
    max_delay: Duration,
    series: &BatchSeries,
    trigger: &Counter,
) -> Vec<T> {
    dedup.clear();
    take_open(items, sleep, max_delay, series, trigger)
}

/// Takes the open batch `items` (its timer `sleep` stopped), recording it
/// under `trigger`: also [`rebatch`](super::PipelineExt::rebatch)'s.
pub(super) fn take_open<T>(
    items: &mut Vec<T>,
    mut sleep: Pin<&mut Option<Sleep>>,
    max_delay: Duration,
    series: &BatchSeries,
    trigger: &Counter,
) -> Vec<T> {
    if recording(&series.name)
        && let Some(timer) = sleep.as_ref().as_pin_ref()
    {
        let opened = timer.deadline() - max_delay;
        series
            .open
            .record_duration(Instant::now().saturating_duration_since(opened));
    }
    trigger.inc();
    series.batch_size.record(items.len() as f64);
    series.flow.items_out.add(items.len() as u64);
    sleep.set(None);
    mem::take(items)
}

/// The doc of the `name` method of both batch stages.
macro_rules! batch_name_doc {
    ($op:literal, $extra:literal) => {
        concat!(
            "Names the stage: with the `metrics` feature it records, with the label `name` ",
            "(any string, as given; see [`crate::metrics`]):\n\n",
            "- `flowgate_pipeline_items_in_total`: items pulled from upstream",
            $extra,
            ";\n- `flowgate_pipeline_items_out_total`: items yielded, in batches;\n",
            "- `flowgate_pipeline_held`: items in the open batch;\n",
            "- `flowgate_pipeline_batches_total{trigger}`: batches yielded, by what closed them: ",
            "`size` (`max_items`), `delay` (`max_delay`), `flush` (a [`BatchFlush`]), `end` (upstream ended);\n",
            "- `flowgate_pipeline_batch_size`: items per batch (histogram);\n",
            "- `flowgate_pipeline_batch_open_seconds`: how long each batch was open, from its first item ",
            "(histogram; one clock read per batch).\n\n",
            "An unnamed stage records nothing. The series are registered here, with the recorder ",
            "current now.\n\n",
            "# Examples\n\n",
            "```\n",
            "use std::time::Duration;\n",
            "use flowgate::prelude::*;\n",
            "use futures_util::{stream, StreamExt};\n\n",
            "# #[tokio::main(flavor = \"current_thread\", start_paused = true)]\n",
            "# async fn main() {\n",
            "let batches: Vec<Vec<u32>> = stream::iter([1u32, 2, 3])\n",
            "    .", $op, "\n",
            "    .name(\"rows\")\n",
            "    .collect()\n",
            "    .await;\n",
            "assert_eq!(batches, vec![vec![1, 2], vec![3]]);\n",
            "# }\n",
            "```"
        )
    };
}

// ===== impl Batch =====

pin_project! {
    /// Stream for [`batch`](super::PipelineExt::batch): yields `Vec`s of up
    /// to `max_items` items.
    #[must_use = "streams do nothing unless polled"]
    pub struct Batch<S>
    where
        S: Stream,
    {
        #[pin]
        core: Core<S, NoDedup>,
    }
}

impl<S: Stream> Batch<S> {
    /// `op` names the calling operator in the panic messages.
    #[track_caller]
    pub(super) fn new(op: &str, stream: S, max_items: usize, max_delay: Duration) -> Self {
        Batch {
            core: Core::new(op, stream, max_items, max_delay, NoDedup),
        }
    }

    /// A handle to make this stream yield its open batch now.
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::StreamExt;
    /// use tokio_stream::wrappers::ReceiverStream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
    /// let batches = ReceiverStream::new(rx).batch(100, Duration::from_secs(60));
    /// let flush = batches.flush_handle();
    /// let mut batches = Box::pin(batches);
    /// tx.send(1).await.unwrap();
    /// tx.send(2).await.unwrap();
    /// tokio::spawn(async move { flush.flush() }); // from any task
    /// assert_eq!(batches.next().await, Some(vec![1, 2])); // long before 60 s
    /// # }
    /// ```
    pub fn flush_handle(&self) -> BatchFlush {
        self.core.flush_handle()
    }

    /// Items held in the open batch.
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{FutureExt, StreamExt};
    /// use tokio_stream::wrappers::ReceiverStream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
    /// let mut batches = Box::pin(ReceiverStream::new(rx).batch(3, Duration::from_secs(1)));
    /// assert_eq!(batches.pending(), 0);
    /// tx.send(1).await.unwrap();
    /// tx.send(2).await.unwrap();
    /// assert!(batches.next().now_or_never().is_none()); // not full yet
    /// assert_eq!(batches.pending(), 2);
    /// tx.send(3).await.unwrap();
    /// assert_eq!(batches.next().await, Some(vec![1, 2, 3]));
    /// assert_eq!(batches.pending(), 0);
    /// # }
    /// ```
    pub fn pending(&self) -> usize {
        self.core.items.len()
    }

    #[doc = batch_name_doc!("batch(2, Duration::from_millis(10))", "")]
    pub fn name(self, name: impl Into<String>) -> Self {
        self.named(Name::new(name))
    }

    /// [`name`](Self::name), for stages built on this one.
    pub(super) fn named(mut self, name: Name) -> Self {
        self.core.metrics = BatchSeries::new(name, false);
        self
    }
}

impl<S: Stream> Stream for Batch<S> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().core.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.core.size_hint()
    }
}

impl<S: Stream> FusedStream for Batch<S> {
    fn is_terminated(&self) -> bool {
        self.core.is_terminated()
    }
}

impl<S: Stream> fmt::Debug for Batch<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("max_items", &self.core.max_items)
            .field("max_delay", &self.core.max_delay)
            .field("pending", &self.core.items.len())
            .name_field(&self.core.metrics.name)
            .finish_non_exhaustive()
    }
}

// ===== impl BatchDedup =====

pin_project! {
    /// Stream for [`batch_dedup_by_key`](super::PipelineExt::batch_dedup_by_key)
    /// and [`batch_dedup`](super::PipelineExt::batch_dedup): yields `Vec`s of
    /// up to `max_items` items with distinct keys.
    #[must_use = "streams do nothing unless polled"]
    pub struct BatchDedup<S, F, K>
    where
        S: Stream,
    {
        #[pin]
        core: Core<S, ByKey<F, K>>,
    }
}

impl<S, F, K> BatchDedup<S, F, K>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq,
{
    /// `op` names the calling operator in the panic messages.
    #[track_caller]
    pub(super) fn new(op: &str, stream: S, max_items: usize, max_delay: Duration, key: F) -> Self {
        BatchDedup {
            core: Core::new(
                op,
                stream,
                max_items,
                max_delay,
                ByKey {
                    key,
                    seen: HashSet::new(),
                },
            ),
        }
    }
}

impl<S: Stream, F, K> BatchDedup<S, F, K> {
    /// A handle to make this stream yield its open batch now.
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::StreamExt;
    /// use tokio_stream::wrappers::ReceiverStream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
    /// let batches = ReceiverStream::new(rx).batch_dedup(100, Duration::from_secs(60));
    /// let flush = batches.flush_handle();
    /// let mut batches = Box::pin(batches);
    /// for id in [7, 7, 8] {
    ///     tx.send(id).await.unwrap();
    /// }
    /// tokio::spawn(async move { flush.flush() });
    /// assert_eq!(batches.next().await, Some(vec![7, 8])); // long before 60 s
    /// # }
    /// ```
    pub fn flush_handle(&self) -> BatchFlush {
        self.core.flush_handle()
    }

    /// Items held in the open batch.
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{FutureExt, StreamExt};
    /// use tokio_stream::wrappers::ReceiverStream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
    /// let mut batches = Box::pin(ReceiverStream::new(rx).batch_dedup(10, Duration::from_secs(1)));
    /// for id in [1, 1, 2] {
    ///     tx.send(id).await.unwrap();
    /// }
    /// assert!(batches.next().now_or_never().is_none());
    /// assert_eq!(batches.pending(), 2); // the repeated 1 is not held
    /// # }
    /// ```
    pub fn pending(&self) -> usize {
        self.core.items.len()
    }

    /// How many items were dropped as duplicates so far.
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut batches = Box::pin(stream::iter([1, 1, 2, 1, 3]).batch_dedup(10, Duration::from_secs(1)));
    /// assert_eq!(batches.next().await, Some(vec![1, 2, 3]));
    /// assert_eq!(batches.duplicates(), 2);
    /// # }
    /// ```
    pub fn duplicates(&self) -> u64 {
        self.core.duplicates
    }

    #[doc = batch_name_doc!(
        "batch_dedup_by_key(2, Duration::from_millis(10), |x| *x)",
        ", duplicates included;\n- `flowgate_pipeline_items_dropped_total{reason=\"duplicate\"}`: items dropped as repeats within their batch (the [`duplicates`](Self::duplicates))"
    )]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.core.metrics = BatchSeries::new(Name::new(name), true);
        self
    }
}

impl<S, F, K> Stream for BatchDedup<S, F, K>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq,
{
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().core.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.core.size_hint()
    }
}

impl<S, F, K> FusedStream for BatchDedup<S, F, K>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq,
{
    fn is_terminated(&self) -> bool {
        self.core.is_terminated()
    }
}

impl<S: Stream, F, K> fmt::Debug for BatchDedup<S, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchDedup")
            .field("max_items", &self.core.max_items)
            .field("max_delay", &self.core.max_delay)
            .field("pending", &self.core.items.len())
            .field("duplicates", &self.core.duplicates)
            .name_field(&self.core.metrics.name)
            .finish_non_exhaustive()
    }
}
