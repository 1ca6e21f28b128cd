//! [`par_map`](super::PipelineExt::par_map) and
//! [`par_map_unordered`](super::PipelineExt::par_map_unordered).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, FuturesOrdered, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;

#[track_caller]
fn check_limit(op: &str, limit: usize) {
    assert!(limit > 0, "{op}: limit must be at least 1");
}

pin_project! {
    /// Stream for [`par_map`](super::PipelineExt::par_map): runs up to `limit`
    /// calls at once and yields their outputs in input order.
    #[must_use = "streams do nothing unless polled"]
    pub struct ParMap<S, F, Fut>
    where
        Fut: Future,
    {
        #[pin]
        stream: Fuse<S>,
        f: F,
        in_progress: FuturesOrdered<Fut>,
        limit: usize,
    }
}

impl<S, F, Fut> ParMap<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    #[track_caller]
    pub(super) fn new(stream: S, limit: usize, f: F) -> Self {
        check_limit("par_map", limit);
        ParMap {
            stream: stream.fuse(),
            f,
            in_progress: FuturesOrdered::new(),
            limit,
        }
    }
}

impl<S, F, Fut> Stream for ParMap<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();

        // Start calls while there is room. Bounded by `limit`, so this loop
        // cannot starve other tasks.
        while this.in_progress.len() < *this.limit {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => this.in_progress.push_back((this.f)(item)),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }

        // Yield the oldest call's output once it is ready. A panic in a call
        // unwinds out of this poll, into the consumer: never a lost item.
        match this.in_progress.poll_next_unpin(cx) {
            Poll::Ready(Some(output)) => return Poll::Ready(Some(output)),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }

        // Nothing in flight: the stream ends only when upstream has ended, so
        // no call's output is ever dropped by an early close.
        if this.stream.is_done() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        size_hint(self.in_progress.len(), self.stream.size_hint())
    }
}

impl<S, F, Fut> FusedStream for ParMap<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_done() && self.in_progress.is_empty()
    }
}

impl<S, F, Fut> fmt::Debug for ParMap<S, F, Fut>
where
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMap")
            .field("limit", &self.limit)
            .field("in_flight", &self.in_progress.len())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// Stream for [`par_map_unordered`](super::PipelineExt::par_map_unordered):
    /// runs up to `limit` calls at once and yields their outputs as they
    /// complete.
    #[must_use = "streams do nothing unless polled"]
    pub struct ParMapUnordered<S, F, Fut> {
        #[pin]
        stream: Fuse<S>,
        f: F,
        in_progress: FuturesUnordered<Fut>,
        limit: usize,
    }
}

impl<S, F, Fut> ParMapUnordered<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    #[track_caller]
    pub(super) fn new(stream: S, limit: usize, f: F) -> Self {
        check_limit("par_map_unordered", limit);
        ParMapUnordered {
            stream: stream.fuse(),
            f,
            in_progress: FuturesUnordered::new(),
            limit,
        }
    }
}

impl<S, F, Fut> Stream for ParMapUnordered<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();

        // Start calls while there is room (bounded by `limit`).
        while this.in_progress.len() < *this.limit {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => this.in_progress.push((this.f)(item)),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }

        // Yield whichever call finishes first. `FuturesUnordered` polls only
        // woken futures and yields to the executor after a full pass.
        match this.in_progress.poll_next_unpin(cx) {
            Poll::Ready(Some(output)) => return Poll::Ready(Some(output)),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }

        if this.stream.is_done() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        size_hint(self.in_progress.len(), self.stream.size_hint())
    }
}

impl<S, F, Fut> FusedStream for ParMapUnordered<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_done() && self.in_progress.is_empty()
    }
}

impl<S, F, Fut> fmt::Debug for ParMapUnordered<S, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMapUnordered")
            .field("limit", &self.limit)
            .field("in_flight", &self.in_progress.len())
            .finish_non_exhaustive()
    }
}

/// Every call in flight yields exactly one output, plus one per upstream item.
fn size_hint(in_flight: usize, (lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
    (
        lower.saturating_add(in_flight),
        upper.and_then(|upper| upper.checked_add(in_flight)),
    )
}
