//! [`rebatch`](super::PipelineExt::rebatch) and
//! [`write_chunks`](super::PipelineExt::write_chunks): batch a stream of
//! batches (a broker source's read batches) by size and time, moving whole
//! `Vec`s instead of one item at a time.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::BUDGET;
use super::batch::take_open;
use super::metrics::{BatchSeries, DebugName, IN_FLIGHT, Level};
use crate::telemetry::Name;

pin_project! {
    /// Stream for [`rebatch`](super::PipelineExt::rebatch): yields batches
    /// of at most `max_items` items, formed from upstream's chunks.
    #[must_use = "streams do nothing unless polled"]
    pub struct Rebatch<S, T> {
        #[pin]
        stream: Fuse<S>,
        max_items: usize,
        max_delay: Duration,
        // The open batch.
        open: Vec<T>,
        // What is left of a chunk that did not fit the open batch: taken
        // before upstream is pulled again.
        carry: Vec<T>,
        // Runs from the first item of the open batch.
        #[pin]
        sleep: Option<Sleep>,
        series: BatchSeries,
    }
}

impl<S, T> Rebatch<S, T>
where
    S: Stream<Item = Vec<T>>,
{
    /// `op` names the calling operator in the panic messages.
    #[track_caller]
    pub(super) fn new(op: &str, stream: S, max_items: usize, max_delay: Duration) -> Self {
        assert!(max_items > 0, "{op}: max_items must be at least 1");
        assert!(
            !max_delay.is_zero(),
            "{op}: max_delay must be greater than zero"
        );
        Rebatch {
            stream: stream.fuse(),
            max_items,
            max_delay,
            open: Vec::new(),
            carry: Vec::new(),
            sleep: None,
            series: BatchSeries::none(),
        }
    }

    /// Names the stage: with the `metrics` feature it records the series of
    /// [`batch`](super::PipelineExt::batch), with the label `name` (any
    /// string, as given; see [`crate::metrics`]):
    /// `flowgate_pipeline_items_in_total` (items pulled, not chunks),
    /// `flowgate_pipeline_items_out_total`, `flowgate_pipeline_held` (the
    /// items of the open batch and of a chunk's rest waiting for the next
    /// batch), `flowgate_pipeline_batches_total{trigger}` (`size`, `delay`,
    /// `end`), `flowgate_pipeline_batch_size` and
    /// `flowgate_pipeline_batch_open_seconds`. An unnamed stage records
    /// nothing.
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
    /// let batches: Vec<Vec<u32>> = stream::iter([vec![1, 2], vec![3]])
    ///     .rebatch(10, Duration::from_millis(5))
    ///     .name("reads")
    ///     .collect()
    ///     .await;
    /// assert_eq!(batches, vec![vec![1, 2, 3]]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.series = BatchSeries::new(Name::new(name), false);
        self
    }

    /// Items held: the open batch's, and the rest of a chunk that did not
    /// fit it (the next batch's first items).
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
    /// let mut batches = Box::pin(
    ///     stream::iter([vec![1, 2, 3]]).rebatch(2, Duration::from_millis(5)),
    /// );
    /// assert_eq!(batches.next().await, Some(vec![1, 2]));
    /// assert_eq!(batches.held(), 1); // 3, the next batch's first
    /// assert_eq!(batches.next().await, Some(vec![3]));
    /// assert_eq!(batches.held(), 0);
    /// # }
    /// ```
    pub fn held(&self) -> usize {
        self.open.len() + self.carry.len()
    }
}

impl<S, T> Stream for Rebatch<S, T>
where
    S: Stream<Item = Vec<T>>,
{
    type Item = Vec<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        let next = self.as_mut().poll_batch(cx);
        let this = self.project();
        this.series.held.set(this.open.len() + this.carry.len());
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Upstream's chunks may be empty, and a chunk may make several
        // batches: no upper bound from upstream's count.
        let held = usize::from(!self.open.is_empty() || !self.carry.is_empty());
        match self.stream.size_hint() {
            (_, Some(0)) => (held, Some(self.held())),
            _ => (held, None),
        }
    }
}

impl<S, T> Rebatch<S, T>
where
    S: Stream<Item = Vec<T>>,
{
    fn poll_batch(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        let mut this = self.project();
        let max = *this.max_items;
        for _ in 0..BUDGET {
            // 1. The next chunk: the rest of the last one first.
            let mut chunk = if this.carry.is_empty() {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(chunk)) => {
                        this.series.flow.items_in.add(chunk.len() as u64);
                        chunk
                    }
                    // Upstream ended: yield what is left, then end.
                    Poll::Ready(None) if this.open.is_empty() => return Poll::Ready(None),
                    Poll::Ready(None) => {
                        let trigger = &this.series.end;
                        return Poll::Ready(Some(take_open(
                            this.open,
                            this.sleep,
                            *this.max_delay,
                            this.series,
                            trigger,
                        )));
                    }
                    Poll::Pending => {
                        // 3. The open batch's delay passed: yield it partial.
                        if let Some(sleep) = this.sleep.as_mut().as_pin_mut()
                            && sleep.poll(cx).is_ready()
                        {
                            let trigger = &this.series.delay;
                            return Poll::Ready(Some(take_open(
                                this.open,
                                this.sleep,
                                *this.max_delay,
                                this.series,
                                trigger,
                            )));
                        }
                        return Poll::Pending;
                    }
                }
            } else {
                mem::take(this.carry)
            };
            if chunk.is_empty() {
                continue;
            }
            // 2. Into the open batch: a chunk that fits an empty one
            //    becomes it (no copy); the rest of one that does not fit
            //    waits for the next batch.
            if this.open.is_empty() {
                if chunk.len() > max {
                    *this.carry = chunk.split_off(max);
                }
                *this.open = chunk;
                // A delay too long to represent never fires.
                if let Some(deadline) = Instant::now().checked_add(*this.max_delay) {
                    this.sleep.set(Some(sleep_until(deadline)));
                }
            } else {
                let room = max - this.open.len();
                if chunk.len() > room {
                    *this.carry = chunk.split_off(room);
                }
                this.open.append(&mut chunk);
            }
            if this.open.len() >= max {
                let trigger = &this.series.size;
                return Poll::Ready(Some(take_open(
                    this.open,
                    this.sleep,
                    *this.max_delay,
                    this.series,
                    trigger,
                )));
            }
        }
        // Upstream had many chunks ready: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S, T> FusedStream for Rebatch<S, T>
where
    S: Stream<Item = Vec<T>>,
{
    fn is_terminated(&self) -> bool {
        self.open.is_empty() && self.carry.is_empty() && self.stream.is_done()
    }
}

impl<S, T> fmt::Debug for Rebatch<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rebatch")
            .name_field(&self.series.name)
            .field("max_items", &self.max_items)
            .field("max_delay", &self.max_delay)
            .field("held", &(self.open.len() + self.carry.len()))
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// Stream for [`write_chunks`](super::PipelineExt::write_chunks):
    /// yields each batch write's output as it finishes.
    #[must_use = "streams do nothing unless polled"]
    pub struct WriteChunks<S, T, F, Fut>
    where
        Fut: Future,
    {
        #[pin]
        batches: Rebatch<S, T>,
        write: F,
        in_flight: FuturesUnordered<Fut>,
        limit: usize,
        upstream_done: bool,
        // Writes in flight, once named.
        writes: Level,
    }
}

impl<S, T, F, Fut> WriteChunks<S, T, F, Fut>
where
    S: Stream<Item = Vec<T>>,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future,
{
    #[track_caller]
    pub(super) fn new(
        stream: S,
        max_items: usize,
        max_delay: Duration,
        concurrency: usize,
        write: F,
    ) -> Self {
        assert!(
            concurrency > 0,
            "write_chunks: concurrency must be at least 1"
        );
        WriteChunks {
            batches: Rebatch::new("write_chunks", stream, max_items, max_delay),
            write,
            in_flight: FuturesUnordered::new(),
            limit: concurrency,
            upstream_done: false,
            writes: Level::none(),
        }
    }

    /// Names the stage: with the `metrics` feature it records the series of
    /// its [`rebatch`](Rebatch::name) and `flowgate_pipeline_in_flight` (the
    /// writes in flight, the [`in_flight`](Self::in_flight)) — the series of
    /// [`write_batches`](super::WriteBatches::name) — with the label `name`
    /// (any string, as given; see [`crate::metrics`]). An unnamed stage
    /// records nothing.
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
    /// let written: Vec<usize> = stream::iter([vec![1, 2, 3], vec![4]])
    ///     .write_chunks(2, Duration::from_millis(10), 2, |rows: Vec<u32>| async move { rows.len() })
    ///     .name("orders")
    ///     .collect()
    ///     .await;
    /// assert_eq!(written.iter().sum::<usize>(), 4);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.writes = Level::of(name.gauge(IN_FLIGHT));
        self.batches.series = BatchSeries::new(name, false);
        self
    }

    /// Batch writes in flight now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, FutureExt, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let chunks = stream::iter([vec![1u32, 2], vec![3, 4]]);
    /// let mut written = Box::pin(chunks.write_chunks(2, Duration::from_millis(10), 2, |rows: Vec<u32>| async move {
    ///     tokio::time::sleep(Duration::from_millis(100)).await;
    ///     rows.len()
    /// }));
    /// assert!(written.next().now_or_never().is_none()); // two writes started, none done
    /// assert_eq!(written.in_flight(), 2);
    /// assert_eq!(written.next().await, Some(2));
    /// assert_eq!(written.in_flight(), 1);
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl<S, T, F, Fut> Stream for WriteChunks<S, T, F, Fut>
where
    S: Stream<Item = Vec<T>>,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        // Start writes while there is room: the next batch is only formed
        // (and upstream only pulled) when fewer than `limit` are in flight.
        while !*this.upstream_done && this.in_flight.len() < *this.limit {
            match this.batches.as_mut().poll_next(cx) {
                Poll::Ready(Some(rows)) => this.in_flight.push((this.write)(rows)),
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        let next = match this.in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(done)) => Poll::Ready(Some(done)),
            Poll::Ready(None) if *this.upstream_done => Poll::Ready(None),
            // Nothing in flight: upstream (or its batch timer) wakes us.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        };
        this.writes.set(this.in_flight.len());
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (_, upper) = self.batches.size_hint();
        let in_flight = self.in_flight.len();
        (in_flight, upper.and_then(|u| u.checked_add(in_flight)))
    }
}

impl<S, T, F, Fut> FusedStream for WriteChunks<S, T, F, Fut>
where
    S: Stream<Item = Vec<T>>,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future,
{
    fn is_terminated(&self) -> bool {
        self.upstream_done && self.in_flight.is_empty()
    }
}

impl<S, T, F, Fut> fmt::Debug for WriteChunks<S, T, F, Fut>
where
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteChunks")
            .field("batches", &self.batches)
            .field("in_flight", &self.in_flight.len())
            .field("limit", &self.limit)
            .field("upstream_done", &self.upstream_done)
            .finish_non_exhaustive()
    }
}
