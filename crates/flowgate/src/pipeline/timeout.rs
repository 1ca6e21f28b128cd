//! [`item_timeout`](super::PipelineExt::item_timeout) and
//! [`idle_timeout`](super::PipelineExt::idle_timeout).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::error::{Elapsed, IdleElapsed};
use super::metrics::DebugName;
use super::metrics::{Flow, TIMEOUTS};
use crate::telemetry::{Counter, Name};

/// The series of a named timeout stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    timeouts: Counter,
}

impl Metrics {
    fn none() -> Metrics {
        Metrics {
            name: Name::none(),
            flow: Flow::none(),
            timeouts: Counter::noop(),
        }
    }

    fn new(name: Name) -> Metrics {
        Metrics {
            flow: Flow::new(&name),
            timeouts: name.counter(TIMEOUTS),
            name,
        }
    }
}

/// Restarts `sleep` to fire `duration` from now.
fn restart(mut sleep: Pin<&mut Option<Sleep>>, duration: Duration) {
    let deadline = crate::time::deadline(Instant::now(), duration);
    match sleep.as_mut().as_pin_mut() {
        Some(sleep) => sleep.reset(deadline),
        None => sleep.set(Some(sleep_until(deadline))),
    }
}

/// Polls `sleep`, starting it `duration` from now if it is not running.
fn poll_deadline(
    mut sleep: Pin<&mut Option<Sleep>>,
    duration: Duration,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if sleep.is_none() {
        restart(sleep.as_mut(), duration);
    }
    match sleep.as_pin_mut() {
        Some(sleep) => sleep.poll(cx),
        None => Poll::Pending,
    }
}

pin_project! {
    /// Stream for [`item_timeout`](super::PipelineExt::item_timeout).
    #[must_use = "streams do nothing unless polled"]
    pub struct ItemTimeout<S> {
        #[pin]
        stream: Fuse<S>,
        duration: Duration,
        #[pin]
        sleep: Option<Sleep>,
        metrics: Metrics,
    }
}

impl<S: Stream> ItemTimeout<S> {
    #[track_caller]
    pub(super) fn new(stream: S, duration: Duration) -> Self {
        assert!(
            !duration.is_zero(),
            "item_timeout: duration must be greater than zero"
        );
        ItemTimeout {
            stream: stream.fuse(),
            duration,
            sleep: None,
            metrics: Metrics::none(),
        }
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total` and
    /// `flowgate_pipeline_items_out_total` (items passed through; the
    /// [`Elapsed`] errors are not items) and `flowgate_pipeline_timeouts_total`
    /// (the `Elapsed` errors yielded), with the label `name` (any string, as
    /// given; see [`crate::metrics`]). An unnamed stage records nothing.
    /// Each timeout is also a `debug` event of target
    /// `flowgate::pipeline::timeout`, named or not.
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
    /// let out: Vec<_> = stream::iter([1u32, 2])
    ///     .item_timeout(Duration::from_secs(1))
    ///     .name("ticks")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.metrics = Metrics::new(Name::new(name));
        self
    }
}

impl<S: Stream> Stream for ItemTimeout<S> {
    type Item = Result<S::Item, Elapsed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        // 1. An item that is ready wins over a deadline that passed.
        match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                restart(this.sleep, *this.duration);
                this.metrics.flow.items_in.inc();
                this.metrics.flow.items_out.inc();
                return Poll::Ready(Some(Ok(item)));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        // 2. The deadline runs from the first poll, the last item or the last
        //    timeout; when it passes, report it and start the next one.
        if poll_deadline(this.sleep.as_mut(), *this.duration, cx).is_ready() {
            restart(this.sleep, *this.duration);
            this.metrics.timeouts.inc();
            // Per timeout, possibly often: debug, not warn.
            tracing::debug!(
                name = %this.metrics.name.as_str(),
                timeout = ?*this.duration,
                "no item within the timeout"
            );
            return Poll::Ready(Some(Err(Elapsed(()))));
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Any number of timeouts may come in between.
        (self.stream.size_hint().0, None)
    }
}

impl<S: Stream> FusedStream for ItemTimeout<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_done()
    }
}

impl<S> fmt::Debug for ItemTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemTimeout")
            .field("duration", &self.duration)
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// Stream for [`idle_timeout`](super::PipelineExt::idle_timeout).
    #[must_use = "streams do nothing unless polled"]
    pub struct IdleTimeout<S> {
        #[pin]
        stream: Fuse<S>,
        duration: Duration,
        #[pin]
        sleep: Option<Sleep>,
        timed_out: bool,
        metrics: Metrics,
    }
}

impl<S: Stream> IdleTimeout<S> {
    #[track_caller]
    pub(super) fn new(stream: S, duration: Duration) -> Self {
        assert!(
            !duration.is_zero(),
            "idle_timeout: duration must be greater than zero"
        );
        IdleTimeout {
            stream: stream.fuse(),
            duration,
            sleep: None,
            timed_out: false,
            metrics: Metrics::none(),
        }
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total` and
    /// `flowgate_pipeline_items_out_total` (items passed through) and
    /// `flowgate_pipeline_timeouts_total` (0, or 1 once the stream ended
    /// with [`IdleElapsed`]), with the label `name` (any string, as given;
    /// see [`crate::metrics`]). An unnamed stage records nothing. The
    /// timeout is also a `warn` event of target
    /// `flowgate::pipeline::timeout`, named or not.
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
    /// let out: Vec<_> = stream::iter([1u32, 2])
    ///     .idle_timeout(Duration::from_secs(1))
    ///     .name("feed")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.metrics = Metrics::new(Name::new(name));
        self
    }

    /// Whether the stream ended because upstream was idle too long.
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
    /// let silent = stream::iter([1]).chain(stream::pending());
    /// let mut idle = Box::pin(silent.idle_timeout(Duration::from_secs(5)));
    /// assert_eq!(idle.next().await.map(|r| r.is_ok()), Some(true));
    /// assert!(matches!(idle.next().await, Some(Err(_))));
    /// assert_eq!(idle.next().await.map(|r| r.is_ok()), None);
    /// assert!(idle.timed_out(), "ended by the timeout, not by upstream");
    /// # }
    /// ```
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }
}

impl<S: Stream> Stream for IdleTimeout<S> {
    type Item = Result<S::Item, IdleElapsed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.timed_out {
            return Poll::Ready(None);
        }
        match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                restart(this.sleep, *this.duration);
                this.metrics.flow.items_in.inc();
                this.metrics.flow.items_out.inc();
                return Poll::Ready(Some(Ok(item)));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if poll_deadline(this.sleep.as_mut(), *this.duration, cx).is_ready() {
            // Idle too long: report it once, then end. Upstream is not polled
            // again (drop the stream to release it).
            *this.timed_out = true;
            this.sleep.set(None);
            this.metrics.timeouts.inc();
            // The stream ends with the error: the caller gets it.
            tracing::warn!(
                name = %this.metrics.name.as_str(),
                timeout = ?*this.duration,
                "upstream idle too long, ending the stream"
            );
            return Poll::Ready(Some(Err(IdleElapsed(()))));
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.timed_out {
            return (0, Some(0));
        }
        // The stream may end early, with one timeout item.
        let upper = self.stream.size_hint().1;
        (0, upper.and_then(|upper| upper.checked_add(1)))
    }
}

impl<S: Stream> FusedStream for IdleTimeout<S> {
    fn is_terminated(&self) -> bool {
        self.timed_out || self.stream.is_done()
    }
}

impl<S> fmt::Debug for IdleTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("duration", &self.duration)
            .field("timed_out", &self.timed_out)
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
