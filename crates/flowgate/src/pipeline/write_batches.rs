//! [`write_batches`](super::PipelineExt::write_batches): the batch-shaped
//! write stage — one future per batch, not per item.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;

use super::batch::Batch;
use super::metrics::{IN_FLIGHT, Level};
use crate::telemetry::Name;

pin_project! {
    /// One batch's write, with the tokens of its items.
    struct Write<Fut, T> {
        #[pin]
        write: Fut,
        tokens: Option<Vec<T>>,
    }
}

impl<Fut: Future, T> Future for Write<Fut, T> {
    type Output = (Fut::Output, Vec<T>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.write.poll(cx));
        let tokens = this
            .tokens
            .take()
            .expect("a write is polled to completion once");
        Poll::Ready((output, tokens))
    }
}

pin_project! {
    /// Stream for [`write_batches`](super::PipelineExt::write_batches):
    /// yields, per batch, the write's output and the batch's tokens.
    #[must_use = "streams do nothing unless polled"]
    pub struct WriteBatches<S, F, Fut, R, T>
    where
        S: Stream<Item = (R, T)>,
        Fut: Future,
    {
        #[pin]
        batches: Batch<S>,
        write: F,
        in_flight: FuturesUnordered<Write<Fut, T>>,
        limit: usize,
        upstream_done: bool,
        // Writes in flight, once named.
        writes: Level,
    }
}

impl<S, F, Fut, R, T> WriteBatches<S, F, Fut, R, T>
where
    S: Stream<Item = (R, T)>,
    F: FnMut(Vec<R>) -> Fut,
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
            "write_batches: concurrency must be at least 1"
        );
        WriteBatches {
            batches: Batch::new("write_batches", stream, max_items, max_delay),
            write,
            in_flight: FuturesUnordered::new(),
            limit: concurrency,
            upstream_done: false,
            writes: Level::none(),
        }
    }

    /// Names the stage: with the `metrics` feature it records the series of
    /// its [`batch`](super::PipelineExt::batch) (`flowgate_pipeline_items_in_total`,
    /// the rows pulled; `flowgate_pipeline_items_out_total`, the rows handed
    /// to a write; `flowgate_pipeline_held`, the rows of the open batch;
    /// `flowgate_pipeline_batches_total{trigger}`,
    /// `flowgate_pipeline_batch_size`, `flowgate_pipeline_batch_open_seconds`)
    /// and `flowgate_pipeline_in_flight` (the writes in flight, the
    /// [`in_flight`](Self::in_flight)), with the label `name` (any string, as
    /// given; see [`crate::metrics`]). An unnamed stage records nothing.
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
    /// let acks: Vec<(usize, Vec<u32>)> = stream::iter((0..4u32).map(|i| (i, i)))
    ///     .write_batches(2, Duration::from_millis(10), 2, |rows: Vec<u32>| async move { rows.len() })
    ///     .name("orders")
    ///     .collect()
    ///     .await;
    /// assert_eq!(acks.len(), 2);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.writes = Level::of(name.gauge(IN_FLIGHT));
        self.batches = self.batches.named(name);
        self
    }

    /// Batch writes in flight now.
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, FutureExt, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let items = stream::iter((0..4u32).map(|i| (i, i)));
    /// let mut written = Box::pin(items.write_batches(2, Duration::from_millis(10), 2, |rows: Vec<u32>| async move {
    ///     tokio::time::sleep(Duration::from_millis(100)).await;
    ///     rows.len()
    /// }));
    /// assert_eq!(written.in_flight(), 0);
    /// assert!(written.next().now_or_never().is_none()); // two writes started, none done
    /// assert_eq!(written.in_flight(), 2);
    /// let (rows, tokens) = written.next().await.unwrap();
    /// assert_eq!(rows, tokens.len());
    /// assert_eq!(written.in_flight(), 1);
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl<S, F, Fut, R, T> Stream for WriteBatches<S, F, Fut, R, T>
where
    S: Stream<Item = (R, T)>,
    F: FnMut(Vec<R>) -> Fut,
    Fut: Future,
{
    type Item = (Fut::Output, Vec<T>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.as_mut().poll_writes(cx);
        // Writes in flight, once per poll.
        let this = self.project();
        this.writes.set(this.in_flight.len());
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.size_hint_of()
    }
}

impl<S, F, Fut, R, T> WriteBatches<S, F, Fut, R, T>
where
    S: Stream<Item = (R, T)>,
    F: FnMut(Vec<R>) -> Fut,
    Fut: Future,
{
    fn poll_writes(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(Fut::Output, Vec<T>)>> {
        let mut this = self.project();
        // Start writes while there is room: the next batch is only formed
        // (and upstream only pulled) when fewer than `limit` are in flight.
        while !*this.upstream_done && this.in_flight.len() < *this.limit {
            match this.batches.as_mut().poll_next(cx) {
                Poll::Ready(Some(items)) => {
                    let (rows, tokens): (Vec<R>, Vec<T>) = items.into_iter().unzip();
                    this.in_flight.push(Write {
                        write: (this.write)(rows),
                        tokens: Some(tokens),
                    });
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        match this.in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(done)) => Poll::Ready(Some(done)),
            Poll::Ready(None) if *this.upstream_done => Poll::Ready(None),
            // Nothing in flight: upstream (or its batch timer) wakes us.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint_of(&self) -> (usize, Option<usize>) {
        let (_, upper) = self.batches.size_hint();
        let in_flight = self.in_flight.len();
        (in_flight, upper.and_then(|u| u.checked_add(in_flight)))
    }
}

impl<S, F, Fut, R, T> FusedStream for WriteBatches<S, F, Fut, R, T>
where
    S: Stream<Item = (R, T)>,
    F: FnMut(Vec<R>) -> Fut,
    Fut: Future,
{
    fn is_terminated(&self) -> bool {
        self.upstream_done && self.in_flight.is_empty()
    }
}

impl<S, F, Fut, R, T> fmt::Debug for WriteBatches<S, F, Fut, R, T>
where
    S: Stream<Item = (R, T)>,
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBatches")
            .field("in_flight", &self.in_flight.len())
            .field("limit", &self.limit)
            .field("upstream_done", &self.upstream_done)
            .finish_non_exhaustive()
    }
}
