//! [`debounce`](super::PipelineExt::debounce): yield an item once no newer
//! one arrived for a quiet period.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::BUDGET;
use super::metrics::DebugName;
use super::metrics::{DROPPED, Flow, REASON_SUPERSEDED};
use crate::telemetry::{Counter, Name};

pin_project! {
    /// Stream for [`debounce`](super::PipelineExt::debounce).
    #[must_use = "streams do nothing unless polled"]
    pub struct Debounce<S>
    where
        S: Stream,
    {
        #[pin]
        stream: Fuse<S>,
        quiet: Duration,
        held: Option<S::Item>,
        #[pin]
        sleep: Option<Sleep>,
        dropped: u64,
        metrics: Metrics,
    }
}

/// The series of a named debounce stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    dropped: Counter,
}

impl<S: Stream> Debounce<S> {
    #[track_caller]
    pub(super) fn new(stream: S, quiet: Duration) -> Self {
        assert!(
            !quiet.is_zero(),
            "debounce: quiet period must be greater than zero"
        );
        Debounce {
            stream: stream.fuse(),
            quiet,
            held: None,
            sleep: None,
            dropped: 0,
            metrics: Metrics {
                name: Name::none(),
                flow: Flow::none(),
                dropped: Counter::noop(),
            },
        }
    }

    /// How many items were superseded by a newer one so far.
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
    /// let mut quiet = Box::pin(stream::iter([1, 2, 3]).debounce(Duration::from_millis(50)));
    /// assert_eq!(quiet.next().await, Some(3));
    /// assert_eq!(quiet.dropped(), 2, "1 and 2 were superseded");
    /// # }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`
    /// and `flowgate_pipeline_items_dropped_total{reason="superseded"}` (the
    /// [`dropped`](Self::dropped) items, replaced by a newer one), with the label `name` (any string, as given; see
    /// [`crate::metrics`]). An unnamed stage records nothing.
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
    /// let out: Vec<u32> = stream::iter([1u32, 1, 2])
    ///     .debounce(Duration::from_millis(10))
    ///     .name("search-box")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![2]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.metrics = Metrics {
            flow: Flow::new(&name),
            dropped: name.counter_with(DROPPED, &[("reason", REASON_SUPERSEDED)]),
            name,
        };
        self
    }
}

impl<S: Stream> Stream for Debounce<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        for _ in 0..BUDGET {
            // 1. Take every item upstream has ready; each one restarts the
            //    quiet period. Items are taken before the timer is looked at,
            //    so an item that arrived in time always supersedes.
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.metrics.flow.items_in.inc();
                    if this.held.replace(item).is_some() {
                        *this.dropped += 1;
                        this.metrics.dropped.inc();
                    }
                    let deadline = crate::time::deadline(Instant::now(), *this.quiet);
                    match this.sleep.as_mut().as_pin_mut() {
                        Some(sleep) => sleep.reset(deadline),
                        None => this.sleep.set(Some(sleep_until(deadline))),
                    }
                    continue;
                }
                // Upstream ended: nothing newer can come, so the held item
                // is yielded at once.
                Poll::Ready(None) => {
                    this.sleep.set(None);
                    let last = this.held.take();
                    if last.is_some() {
                        this.metrics.flow.items_out.inc();
                    }
                    return Poll::Ready(last);
                }
                Poll::Pending => {}
            }
            // 2. Quiet for long enough: yield the held item.
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut()
                && sleep.poll(cx).is_ready()
            {
                this.sleep.set(None);
                this.metrics.flow.items_out.inc();
                return Poll::Ready(this.held.take());
            }
            return Poll::Pending;
        }
        // Upstream had many items ready: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        super::lossy_size_hint(self.held.is_some(), self.stream.size_hint())
    }
}

impl<S: Stream> FusedStream for Debounce<S> {
    fn is_terminated(&self) -> bool {
        self.held.is_none() && self.stream.is_done()
    }
}

impl<S: Stream> fmt::Debug for Debounce<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Debounce")
            .field("quiet", &self.quiet)
            .field("holding_item", &self.held.is_some())
            .field("dropped", &self.dropped)
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
