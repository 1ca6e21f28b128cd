//! [`merge_with`](super::PipelineExt::merge_with): two streams into one.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for [`merge_with`](super::PipelineExt::merge_with).
    #[must_use = "streams do nothing unless polled"]
    pub struct MergeWith<A, B> {
        #[pin]
        a: Fuse<A>,
        #[pin]
        b: Fuse<B>,
        // Which side is polled first next time, for fairness.
        b_first: bool,
    }
}

impl<A: Stream, B: Stream<Item = A::Item>> MergeWith<A, B> {
    pub(super) fn new(a: A, b: B) -> Self {
        MergeWith {
            a: a.fuse(),
            b: b.fuse(),
            b_first: false,
        }
    }
}

impl<A: Stream, B: Stream<Item = A::Item>> Stream for MergeWith<A, B> {
    type Item = A::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<A::Item>> {
        let this = self.project();
        // Alternate which side goes first, so a busy side cannot starve the
        // other.
        let b_first = *this.b_first;
        *this.b_first = !b_first;
        if b_first {
            poll_pair(this.b, this.a, cx)
        } else {
            poll_pair(this.a, this.b, cx)
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (a_lower, a_upper) = self.a.size_hint();
        let (b_lower, b_upper) = self.b.size_hint();
        (
            a_lower.saturating_add(b_lower),
            a_upper.zip(b_upper).and_then(|(a, b)| a.checked_add(b)),
        )
    }
}

/// Polls `x`, then `y`; ends only when both have ended.
fn poll_pair<X, Y>(
    x: Pin<&mut Fuse<X>>,
    y: Pin<&mut Fuse<Y>>,
    cx: &mut Context<'_>,
) -> Poll<Option<X::Item>>
where
    X: Stream,
    Y: Stream<Item = X::Item>,
{
    let x_done = match x.poll_next(cx) {
        Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
        Poll::Ready(None) => true,
        Poll::Pending => false,
    };
    match y.poll_next(cx) {
        Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
        Poll::Ready(None) if x_done => Poll::Ready(None),
        Poll::Ready(None) | Poll::Pending => Poll::Pending,
    }
}

impl<A: Stream, B: Stream<Item = A::Item>> FusedStream for MergeWith<A, B> {
    fn is_terminated(&self) -> bool {
        self.a.is_done() && self.b.is_done()
    }
}

impl<A, B> fmt::Debug for MergeWith<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeWith").finish_non_exhaustive()
    }
}
