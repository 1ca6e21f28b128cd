//! [`par_map`](super::PipelineExt::par_map) and
//! [`par_map_unordered`](super::PipelineExt::par_map_unordered): one core,
//! generic over the queue of calls in flight ([`FuturesOrdered`] yields in
//! input order, [`FuturesUnordered`] as calls complete).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, FuturesOrdered, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;

// ===== the shared core =====

/// The calls in flight: the one thing `ParMap` and `ParMapUnordered` differ
/// in. Monomorphised, so the core costs nothing over a hand-written copy.
trait InFlight<Fut: Future>: Stream<Item = Fut::Output> + Unpin + Default {
    fn push(&mut self, future: Fut);
    fn len(&self) -> usize;
}

impl<Fut: Future> InFlight<Fut> for FuturesOrdered<Fut> {
    #[inline]
    fn push(&mut self, future: Fut) {
        self.push_back(future);
    }

    #[inline]
    fn len(&self) -> usize {
        FuturesOrdered::len(self)
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
}

pin_project! {
    struct Core<S, F, Q> {
        #[pin]
        stream: Fuse<S>,
        f: F,
        in_progress: Q,
        limit: usize,
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
        }
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();

        // 1. Start calls while there is room. Bounded by `limit`, so this
        //    loop cannot starve other tasks.
        while this.in_progress.len() < *this.limit {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => this.in_progress.push((this.f)(item)),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }

        // 2. Yield the next output: the oldest call's once it is ready
        //    (ordered), or whichever finishes first (unordered; it polls only
        //    woken futures and yields to the executor after a full pass). A
        //    panic in a call unwinds out of this poll, into the consumer:
        //    never a lost item.
        match this.in_progress.poll_next_unpin(cx) {
            Poll::Ready(Some(output)) => return Poll::Ready(Some(output)),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }

        // 3. Nothing in flight: the stream ends only when upstream has
        //    ended, so no call's output is ever dropped by an early close.
        if this.stream.is_done() {
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
    ($(#[$doc:meta])* $name:ident, $op:literal, $queue:ident) => {
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
                    .finish_non_exhaustive()
            }
        }
    };
}

par_map_stream! {
    /// Stream for [`par_map`](super::PipelineExt::par_map): runs up to `limit`
    /// calls at once and yields their outputs in input order.
    ParMap, "par_map", FuturesOrdered
}

par_map_stream! {
    /// Stream for [`par_map_unordered`](super::PipelineExt::par_map_unordered):
    /// runs up to `limit` calls at once and yields their outputs as they
    /// complete.
    ParMapUnordered, "par_map_unordered", FuturesUnordered
}
