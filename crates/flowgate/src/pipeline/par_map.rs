//! [`par_map`](super::PipelineExt::par_map) and
//! [`par_map_unordered`](super::PipelineExt::par_map_unordered): one core,
//! generic over the queue of calls in flight ([`Ordered`] yields in input
//! order, [`FuturesUnordered`] as calls complete).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;

use super::metrics::DebugName;
use super::metrics::{Flow, HELD, IN_FLIGHT, Level};
use crate::telemetry::{Name, Series};

// ===== the ordered queue =====

pin_project! {
    /// A call tagged with its input position.
    struct Indexed<Fut> {
        index: u64,
        #[pin]
        future: Fut,
    }
}

impl<Fut: Future> Future for Indexed<Fut> {
    type Output = Finished<Fut::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        Poll::Ready(Finished {
            index: *this.index,
            output,
        })
    }
}

/// A finished call's output, ordered so that the lowest index is the top of
/// a `BinaryHeap` (a max-heap).
struct Finished<O> {
    index: u64,
    output: O,
}

impl<O> PartialEq for Finished<O> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}

impl<O> Eq for Finished<O> {}

impl<O> PartialOrd for Finished<O> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<O> Ord for Finished<O> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.index.cmp(&self.index)
    }
}

/// `futures`' `FuturesOrdered`, written out (the same algorithm: the calls
/// run in a `FuturesUnordered`, outputs that finish early wait in a heap by
/// input position) so that the stage can tell running calls from finished
/// outputs waiting for an older one: the `in_flight` and `held` series.
struct Ordered<Fut: Future> {
    running: FuturesUnordered<Indexed<Fut>>,
    waiting: BinaryHeap<Finished<Fut::Output>>,
    next_in: u64,
    next_out: u64,
}

impl<Fut: Future> Default for Ordered<Fut> {
    fn default() -> Self {
        Ordered {
            running: FuturesUnordered::new(),
            waiting: BinaryHeap::new(),
            next_in: 0,
            next_out: 0,
        }
    }
}

impl<Fut: Future> Unpin for Ordered<Fut> {}

impl<Fut: Future> Stream for Ordered<Fut> {
    type Item = Fut::Output;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let this = &mut *self;
        // The next output may have finished already.
        if let Some(top) = this.waiting.peek_mut()
            && top.index == this.next_out
        {
            this.next_out += 1;
            return Poll::Ready(Some(PeekMut::pop(top).output));
        }
        loop {
            match std::task::ready!(this.running.poll_next_unpin(cx)) {
                Some(finished) if finished.index == this.next_out => {
                    this.next_out += 1;
                    return Poll::Ready(Some(finished.output));
                }
                Some(finished) => this.waiting.push(finished),
                // Nothing running: nothing waits either (the oldest output
                // would have been yielded above).
                None => return Poll::Ready(None),
            }
        }
    }
}

// ===== the shared core =====

/// The calls in flight: the one thing `ParMap` and `ParMapUnordered` differ
/// in. Monomorphised, so the core costs nothing over a hand-written copy.
trait InFlight<Fut: Future>: Stream<Item = Fut::Output> + Unpin + Default {
    fn push(&mut self, future: Fut);
    /// Slots taken: calls running and outputs waiting to be yielded.
    fn len(&self) -> usize;
    /// Outputs finished and waiting for an older one.
    fn waiting(&self) -> usize;
}

impl<Fut: Future> InFlight<Fut> for Ordered<Fut> {
    #[inline]
    fn push(&mut self, future: Fut) {
        let index = self.next_in;
        self.next_in += 1;
        self.running.push(Indexed { index, future });
    }

    #[inline]
    fn len(&self) -> usize {
        self.running.len() + self.waiting.len()
    }

    #[inline]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

impl<Fut: Future> InFlight<Fut> for FuturesUnordered<Fut> {
    #[inline]
    fn push(&mut self, future: Fut) {
        FuturesUnordered::push(self, future);
    }

    #[inline]
    fn len(&self) -> usize {
        FuturesUnordered::len(self)
    }

    #[inline]
    fn waiting(&self) -> usize {
        0
    }
}

pin_project! {
    struct Core<S, F, Q> {
        #[pin]
        stream: Fuse<S>,
        f: F,
        in_progress: Q,
        limit: usize,
        metrics: Metrics,
    }
}

/// The series of a named `par_map`: `held` is registered for the ordered
/// one only (the unordered one holds no finished output).
#[derive(Debug)]
struct Metrics {
    name: Name,
    series: Series<Handles>,
}

#[derive(Debug)]
struct Handles {
    flow: Flow,
    in_flight: Level,
    held: Level,
}

impl Metrics {
    fn none() -> Metrics {
        Metrics {
            name: Name::none(),
            series: Series::none(),
        }
    }

    fn new(name: Name, ordered: bool) -> Metrics {
        Metrics {
            series: Series::new(&name, |name| Handles {
                flow: Flow::new(name),
                in_flight: Level::of(name.gauge(IN_FLIGHT)),
                held: if ordered {
                    Level::of(name.gauge(HELD))
                } else {
                    Level::none()
                },
            }),
            name,
        }
    }
}

impl<S, F, Fut, Q> Core<S, F, Q>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    Q: InFlight<Fut>,
{
    #[track_caller]
    fn new(op: &str, stream: S, limit: usize, f: F) -> Self {
        assert!(limit > 0, "{op}: limit must be at least 1");
        Core {
            stream: stream.fuse(),
            f,
            in_progress: Q::default(),
            limit,
            metrics: Metrics::none(),
        }
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let this = self.project();
        let (stream, f, in_progress, limit) = (this.stream, this.f, this.in_progress, *this.limit);
        let mut pulled = 0;
        let next = Self::poll_calls(stream, f, in_progress, limit, &mut pulled, cx);
        // The levels, once per poll: no gauge update in a poll that started
        // as many calls as it finished.
        this.metrics.series.with_mut(|s| {
            s.flow.pulled(pulled);
            let waiting = in_progress.waiting();
            s.in_flight.set(in_progress.len() - waiting);
            s.held.set(waiting);
            if let Poll::Ready(Some(_)) = next {
                s.flow.items_out.inc();
            }
        });
        next
    }

    fn poll_calls(
        mut stream: Pin<&mut Fuse<S>>,
        f: &mut F,
        in_progress: &mut Q,
        limit: usize,
        pulled: &mut usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Fut::Output>> {
        // 1. Start calls while there is room. Bounded by `limit`, so this
        //    loop cannot starve other tasks.
        while in_progress.len() < limit {
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    *pulled += 1;
                    in_progress.push(f(item));
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        // 2. Yield the next output: the oldest call's once it is ready
        //    (ordered), or whichever finishes first (unordered; it polls only
        //    woken futures and yields to the executor after a full pass). A
        //    panic in a call unwinds out of this poll, into the consumer:
        //    never a lost item.
        match in_progress.poll_next_unpin(cx) {
            Poll::Ready(Some(output)) => return Poll::Ready(Some(output)),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }

        // 3. Nothing in flight: the stream ends only when upstream has
        //    ended, so no call's output is ever dropped by an early close.
        if stream.is_done() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// Every call in flight yields exactly one output, plus one per upstream
    /// item.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let in_flight = self.in_progress.len();
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(in_flight),
            upper.and_then(|upper| upper.checked_add(in_flight)),
        )
    }

    fn is_terminated(&self) -> bool {
        self.stream.is_done() && self.in_progress.len() == 0
    }
}

// ===== impl ParMap and ParMapUnordered =====

/// Defines a public stream type over [`Core`] with queue `$queue`.
macro_rules! par_map_stream {
    ($(#[$doc:meta])* $name:ident, $op:literal, $queue:ident, $ordered:literal, $series:literal) => {
        pin_project! {
            $(#[$doc])*
            #[must_use = "streams do nothing unless polled"]
            pub struct $name<S, F, Fut>
            where
                Fut: Future,
            {
                #[pin]
                core: Core<S, F, $queue<Fut>>,
            }
        }

        impl<S, F, Fut> $name<S, F, Fut>
        where
            S: Stream,
            F: FnMut(S::Item) -> Fut,
            Fut: Future,
        {
            #[track_caller]
            pub(super) fn new(stream: S, limit: usize, f: F) -> Self {
                $name {
                    core: Core::new($op, stream, limit, f),
                }
            }

            #[doc = concat!("Names the stage: with the `metrics` feature it records ", $series, " with the label `name` (any string, as given; see [`crate::metrics`]). An unnamed stage records nothing.")]
            ///
            /// The series are registered here, with the recorder current
            /// now. Name the stage before the first poll.
            ///
            /// # Examples
            ///
            /// ```
            /// use flowgate::prelude::*;
            /// use futures_util::{stream, StreamExt};
            ///
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() {
            #[doc = concat!("let out: Vec<u32> = stream::iter([1u32, 2, 3])\n    .", $op, "(2, |x| async move { x * 10 })")]
            ///     .name("enrich")
            ///     .collect()
            ///     .await;
            /// assert_eq!(out.len(), 3);
            /// # }
            /// ```
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.core.metrics = Metrics::new(Name::new(name), $ordered);
                self
            }
        }

        impl<S, F, Fut> Stream for $name<S, F, Fut>
        where
            S: Stream,
            F: FnMut(S::Item) -> Fut,
            Fut: Future,
        {
            type Item = Fut::Output;

            #[inline]
            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.project().core.poll_next(cx)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.core.size_hint()
            }
        }

        impl<S, F, Fut> FusedStream for $name<S, F, Fut>
        where
            S: Stream,
            F: FnMut(S::Item) -> Fut,
            Fut: Future,
        {
            fn is_terminated(&self) -> bool {
                self.core.is_terminated()
            }
        }

        impl<S, F, Fut: Future> fmt::Debug for $name<S, F, Fut> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("limit", &self.core.limit)
                    .field("in_flight", &self.core.in_progress.len())
                    .name_field(&self.core.metrics.name)
                    .finish_non_exhaustive()
            }
        }
    };
}

par_map_stream! {
    /// Stream for [`par_map`](super::PipelineExt::par_map): runs up to `limit`
    /// calls at once and yields their outputs in input order.
    ParMap, "par_map", Ordered, true,
    "`flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`, `flowgate_pipeline_in_flight` (calls running) and `flowgate_pipeline_held` (outputs finished early, waiting for an older one)"
}

par_map_stream! {
    /// Stream for [`par_map_unordered`](super::PipelineExt::par_map_unordered):
    /// runs up to `limit` calls at once and yields their outputs as they
    /// complete.
    ParMapUnordered, "par_map_unordered", FuturesUnordered, false,
    "`flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total` and `flowgate_pipeline_in_flight` (calls running)"
}
