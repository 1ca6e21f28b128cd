//! [`par_map_adaptive`](super::PipelineExt::par_map_adaptive): a concurrent
//! stage whose concurrency follows an [`AdaptiveLimit`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tokio_util::sync::PollSemaphore;

use crate::resilience::{AdaptiveLimit, AdaptivePermit, Outcome};

use super::metrics::{CALL_DURATION, DebugName, Flow, HELD, IN_FLIGHT, Level};
use crate::telemetry::{Histogram, Name};

pin_project! {
    /// A call holding its room under the limit; notes when it finished, so
    /// the RTT does not include the time its output waits to be yielded.
    struct Measured<Fut> {
        #[pin]
        fut: Fut,
        permit: Option<AdaptivePermit>,
    }
}

impl<Fut: Future> Future for Measured<Fut> {
    type Output = (AdaptivePermit, Instant, Fut::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.fut.poll(cx));
        let permit = this.permit.take().expect("polled after completion");
        Poll::Ready((permit, Instant::now(), output))
    }
}

pin_project! {
    /// Stream for [`par_map_adaptive`](super::PipelineExt::par_map_adaptive)
    /// and [`par_map_adaptive_with`](super::PipelineExt::par_map_adaptive_with):
    /// runs calls under an [`AdaptiveLimit`] and yields their outputs as
    /// they complete.
    #[must_use = "streams do nothing unless polled"]
    pub struct ParMapAdaptive<S, F, Fut, C>
    where
        S: Stream,
    {
        #[pin]
        stream: Fuse<S>,
        f: F,
        classify: C,
        limit: AdaptiveLimit,
        semaphore: PollSemaphore,
        // An item taken from upstream, waiting for room.
        pending: Option<S::Item>,
        in_progress: FuturesUnordered<Measured<Fut>>,
        metrics: Metrics,
    }
}

/// The series of a named `par_map_adaptive` stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    in_flight: Level,
    held: Level,
    duration: Histogram,
}

impl<S, F, Fut, C> ParMapAdaptive<S, F, Fut, C>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    C: FnMut(&Fut::Output) -> Outcome,
{
    pub(super) fn new(stream: S, limit: AdaptiveLimit, classify: C, f: F) -> Self {
        ParMapAdaptive {
            stream: stream.fuse(),
            f,
            classify,
            semaphore: PollSemaphore::new(limit.semaphore()),
            limit,
            pending: None,
            in_progress: FuturesUnordered::new(),
            metrics: Metrics {
                name: Name::none(),
                flow: Flow::none(),
                in_flight: Level::none(),
                held: Level::none(),
                duration: Histogram::noop(),
            },
        }
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`,
    /// `flowgate_pipeline_in_flight` (calls running),
    /// `flowgate_pipeline_held` (the item taken from upstream and waiting for
    /// room: 0 or 1) and `flowgate_pipeline_call_duration_seconds` (each
    /// call's time from admission to its end, the RTT the limit is fed:
    /// no extra clock read), with the label `name` (any string, as given;
    /// see [`crate::metrics`]). The limit's own value is the
    /// [`AdaptiveLimit`]'s to report. An unnamed stage records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<Result<u32, ()>> = stream::iter([1u32, 2])
    ///     .par_map_adaptive(1..=4, |x| async move { Ok(x) })
    ///     .name("calls")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out.len(), 2);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.metrics = Metrics {
            flow: Flow::new(&name),
            in_flight: Level::of(name.gauge(IN_FLIGHT)),
            held: Level::of(name.gauge(HELD)),
            duration: name.histogram(CALL_DURATION),
            name,
        };
        self
    }

    /// The limit this stage runs under: read its current value with
    /// [`AdaptiveLimit::limit`] (clone it before consuming the stream).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let stage = stream::iter([1u32]).par_map_adaptive(1..=8, |x| async move { Ok::<_, ()>(x) });
    /// assert_eq!(stage.limit().range(), 1..=8);
    /// # }
    /// ```
    pub fn limit(&self) -> &AdaptiveLimit {
        &self.limit
    }
}

impl<S, F, Fut, C> Stream for ParMapAdaptive<S, F, Fut, C>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    C: FnMut(&Fut::Output) -> Outcome,
{
    type Item = Fut::Output;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.as_mut().poll_calls(cx);
        // The levels, once per poll.
        let this = self.project();
        this.metrics.in_flight.set(this.in_progress.len());
        this.metrics.held.set(usize::from(this.pending.is_some()));
        if let Poll::Ready(Some(_)) = next {
            this.metrics.flow.items_out.inc();
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.size_hint_of()
    }
}

impl<S, F, Fut, C> ParMapAdaptive<S, F, Fut, C>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    C: FnMut(&Fut::Output) -> Outcome,
{
    fn poll_calls(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();

        // 1. Start calls while the limit has room. An item is taken from
        //    upstream before waiting for room, so no room is held while
        //    upstream is slow. Bounded by the limit's room.
        loop {
            if this.pending.is_none() {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        this.metrics.flow.items_in.inc();
                        *this.pending = Some(item);
                    }
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            match this.semaphore.poll_acquire(cx) {
                Poll::Ready(Some(room)) => {
                    let permit = this.limit.admit(room);
                    let item = this.pending.take().expect("an item is pending");
                    this.in_progress.push(Measured {
                        fut: (this.f)(item),
                        permit: Some(permit),
                    });
                }
                Poll::Ready(None) => unreachable!("the adaptive semaphore is never closed"),
                Poll::Pending => break,
            }
        }

        // 2. Yield whichever call finishes first, reporting its outcome (and
        //    its RTT up to when it finished) to the limit.
        match this.in_progress.poll_next_unpin(cx) {
            Poll::Ready(Some((permit, finished, output))) => {
                this.metrics
                    .duration
                    .record_duration(finished.saturating_duration_since(permit.started()));
                permit.record_at((this.classify)(&output), finished);
                return Poll::Ready(Some(output));
            }
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }

        if this.stream.is_done() && this.pending.is_none() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn size_hint_of(&self) -> (usize, Option<usize>) {
        let held = self.in_progress.len() + usize::from(self.pending.is_some());
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(held),
            upper.and_then(|upper| upper.checked_add(held)),
        )
    }
}

impl<S, F, Fut, C> FusedStream for ParMapAdaptive<S, F, Fut, C>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    C: FnMut(&Fut::Output) -> Outcome,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_done() && self.pending.is_none() && self.in_progress.is_empty()
    }
}

impl<S: Stream, F, Fut, C> fmt::Debug for ParMapAdaptive<S, F, Fut, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMapAdaptive")
            .field("limit", &self.limit)
            .field("in_flight", &self.in_progress.len())
            .field("holding_item", &self.pending.is_some())
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
