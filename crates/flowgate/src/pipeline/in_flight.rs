//! [`limit_in_flight`](super::PipelineExt::limit_in_flight): a stream stage
//! that pairs every item with a permit of a shared [`InFlightLimit`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio_util::sync::PollSemaphore;

use crate::limit::{InFlightLimit, InFlightPermit};

pin_project! {
    /// Stream for [`limit_in_flight`](super::PipelineExt::limit_in_flight):
    /// pairs every item with an [`InFlightPermit`].
    #[must_use = "streams do nothing unless polled"]
    pub struct LimitInFlight<S>
    where
        S: Stream,
    {
        #[pin]
        stream: Fuse<S>,
        semaphore: PollSemaphore,
        pending: Option<S::Item>,
    }
}

impl<S: Stream> LimitInFlight<S> {
    pub(super) fn new(stream: S, limit: &InFlightLimit) -> Self {
        LimitInFlight {
            stream: stream.fuse(),
            semaphore: PollSemaphore::new(limit.semaphore()),
            pending: None,
        }
    }
}

impl<S: Stream> Stream for LimitInFlight<S> {
    type Item = (S::Item, InFlightPermit);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();

        // Take an item first, so no room is held while upstream is slow.
        if this.pending.is_none() {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => *this.pending = Some(item),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }

        // Then wait for room for it.
        match this.semaphore.poll_acquire(cx) {
            Poll::Ready(Some(permit)) => {
                let item = this.pending.take().expect("an item is pending");
                Poll::Ready(Some((item, InFlightPermit::new(permit))))
            }
            Poll::Ready(None) => unreachable!("the in-flight semaphore is never closed"),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let pending = usize::from(self.pending.is_some());
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(pending),
            upper.and_then(|upper| upper.checked_add(pending)),
        )
    }
}

impl<S: Stream> FusedStream for LimitInFlight<S> {
    fn is_terminated(&self) -> bool {
        self.pending.is_none() && self.stream.is_done()
    }
}

impl<S: Stream> fmt::Debug for LimitInFlight<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitInFlight")
            .field("available", &self.semaphore.available_permits())
            .field("holding_item", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}
