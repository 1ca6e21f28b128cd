//! [`throttle_keep`](super::PipelineExt::throttle_keep): at most one item per period.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use std::task::ready;
use tokio::time::{Instant, Sleep, sleep_until};

use super::BUDGET;
use super::metrics::DebugName;
use super::metrics::{DROPPED, Flow, REASON_SUPERSEDED, REASON_THROTTLED};
use crate::telemetry::{Counter, Name};

/// Which item of a period a [`throttle_keep`](super::PipelineExt::throttle_keep) keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keep {
    /// Yield an item at once and drop whatever arrives in the `period` after
    /// it ("leading edge"; Rx's `throttleFirst`).
    First,
    /// On an item, open a window of `period`; yield the *latest* item when it
    /// closes ("trailing edge"). The freshest value wins, at the price of
    /// `period` of latency.
    Last,
}

pin_project! {
    /// Stream for [`throttle_keep`](super::PipelineExt::throttle_keep).
    #[must_use = "streams do nothing unless polled"]
    pub struct ThrottleKeep<S>
    where
        S: Stream,
    {
        #[pin]
        stream: Fuse<S>,
        period: Duration,
        keep: Keep,
        // `Keep::First`: the end of the window opened by the last yield.
        window_end: Option<Instant>,
        // `Keep::Last`: the latest item of the open window.
        held: Option<S::Item>,
        // `Keep::Last`: the end of the open window.
        #[pin]
        sleep: Option<Sleep>,
        dropped: u64,
        metrics: Metrics,
    }
}

/// The series of a named throttle stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    dropped: Counter,
}

impl<S: Stream> ThrottleKeep<S> {
    #[track_caller]
    pub(super) fn new(stream: S, period: Duration, keep: Keep) -> Self {
        assert!(
            !period.is_zero(),
            "throttle_keep: period must be greater than zero"
        );
        ThrottleKeep {
            stream: stream.fuse(),
            period,
            keep,
            window_end: None,
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

    /// How many items were dropped (superseded or inside a window) so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Keep;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut first = Box::pin(stream::iter(1..=5).throttle_keep(Duration::from_secs(1), Keep::First));
    /// assert_eq!(first.next().await, Some(1));
    /// assert_eq!(first.next().await, None, "2..=5 fell in 1's window");
    /// assert_eq!(first.dropped(), 4);
    /// # }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`
    /// and `flowgate_pipeline_items_dropped_total` (the [`dropped`](Self::dropped)
    /// items) with `reason="throttled"` for [`Keep::First`] (an item inside
    /// the window) or `reason="superseded"` for [`Keep::Last`] (a held item
    /// replaced by a newer one), with the label `name` (any string, as given; see
    /// [`crate::metrics`]). An unnamed stage records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Keep;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<u32> = stream::iter([1u32, 1, 2])
    ///     .throttle_keep(Duration::from_secs(1), Keep::First)
    ///     .name("clicks")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![1]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        let reason = match self.keep {
            Keep::First => REASON_THROTTLED,
            Keep::Last => REASON_SUPERSEDED,
        };
        self.metrics = Metrics {
            flow: Flow::new(&name),
            dropped: name.counter_with(DROPPED, &[("reason", reason)]),
            name,
        };
        self
    }
}

impl<S: Stream> Stream for ThrottleKeep<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        match this.keep {
            Keep::First => {
                for _ in 0..BUDGET {
                    let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                        return Poll::Ready(None);
                    };
                    this.metrics.flow.items_in.inc();
                    let now = Instant::now();
                    match *this.window_end {
                        Some(end) if now < end => {
                            *this.dropped += 1;
                            this.metrics.dropped.inc();
                        }
                        _ => {
                            *this.window_end = Some(crate::time::deadline(now, *this.period));
                            this.metrics.flow.items_out.inc();
                            return Poll::Ready(Some(item));
                        }
                    }
                }
            }
            Keep::Last => {
                for _ in 0..BUDGET {
                    // 1. A window that has closed yields its latest item.
                    if let Some(sleep) = this.sleep.as_mut().as_pin_mut()
                        && sleep.poll(cx).is_ready()
                    {
                        this.sleep.set(None);
                        this.metrics.flow.items_out.inc();
                        return Poll::Ready(this.held.take());
                    }
                    // 2. Take the next item: it opens a window or supersedes
                    //    the held one.
                    match this.stream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(item)) => {
                            this.metrics.flow.items_in.inc();
                            if this.held.replace(item).is_some() {
                                *this.dropped += 1;
                                this.metrics.dropped.inc();
                            } else {
                                let end = crate::time::deadline(Instant::now(), *this.period);
                                this.sleep.set(Some(sleep_until(end)));
                            }
                        }
                        // Upstream ended: a held item still waits for its
                        // window to close, so yields stay a period apart.
                        Poll::Ready(None) if this.held.is_none() => return Poll::Ready(None),
                        Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
        // Upstream had many items ready: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        super::lossy_size_hint(self.held.is_some(), self.stream.size_hint())
    }
}

impl<S: Stream> FusedStream for ThrottleKeep<S> {
    fn is_terminated(&self) -> bool {
        self.held.is_none() && self.stream.is_done()
    }
}

impl<S: Stream> fmt::Debug for ThrottleKeep<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleKeep")
            .field("period", &self.period)
            .field("keep", &self.keep)
            .field("dropped", &self.dropped)
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
