//! [`limit_in_flight`](super::PipelineExt::limit_in_flight): a stream stage
//! that pairs every item with a permit of a shared [`InFlightLimit`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio_util::sync::PollSemaphore;

use super::metrics::DebugName;
use super::metrics::{Flow, HELD, Level};
use crate::limit::{InFlightLimit, InFlightPermit};
use crate::telemetry::{GaugeGuard, Name};

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
        limit: InFlightLimit,
        pending: Option<S::Item>,
        // While the pending item waits for room: its share of the limit's
        // waiting gauge.
        waiting: Option<GaugeGuard>,
        metrics: Metrics,
    }
}

/// The series of a named `limit_in_flight` stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    held: Level,
}

impl<S: Stream> LimitInFlight<S> {
    pub(super) fn new(stream: S, limit: &InFlightLimit) -> Self {
        LimitInFlight {
            stream: stream.fuse(),
            semaphore: PollSemaphore::new(limit.semaphore()),
            limit: limit.clone(),
            pending: None,
            waiting: None,
            metrics: Metrics {
                name: Name::none(),
                flow: Flow::none(),
                held: Level::none(),
            },
        }
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`
    /// and `flowgate_pipeline_held` (the item taken from upstream and
    /// waiting for room: 0 or 1), with the label `name` (any string, as
    /// given; see [`crate::metrics`]). An unnamed stage records nothing of
    /// its own; the limit records its own series if it was made with
    /// [`InFlightLimit::with_name`] (the stage's permits and waits
    /// included).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limit = InFlightLimit::new(2);
    /// let out: Vec<u32> = stream::iter([1u32, 2, 3])
    ///     .limit_in_flight(&limit)
    ///     .name("db")
    ///     .map(|(x, _permit)| x)
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![1, 2, 3]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.metrics = Metrics {
            flow: Flow::new(&name),
            held: Level::of(name.gauge(HELD)),
            name,
        };
        self
    }
}

impl<S: Stream> Stream for LimitInFlight<S> {
    type Item = (S::Item, InFlightPermit);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();

        // Take an item first, so no room is held while upstream is slow.
        if this.pending.is_none() {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    *this.pending = Some(item);
                    this.metrics.flow.items_in.inc();
                    this.metrics.held.set(1);
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }

        // Then wait for room for it.
        match this.semaphore.poll_acquire(cx) {
            Poll::Ready(Some(permit)) => {
                let item = this.pending.take().expect("an item is pending");
                *this.waiting = None;
                this.metrics.held.set(0);
                this.metrics.flow.items_out.inc();
                Poll::Ready(Some((item, this.limit.permit(permit))))
            }
            Poll::Ready(None) => unreachable!("the in-flight semaphore is never closed"),
            Poll::Pending => {
                if this.waiting.is_none() {
                    *this.waiting = Some(GaugeGuard::new(&this.limit.metrics().waiting));
                }
                Poll::Pending
            }
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
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
