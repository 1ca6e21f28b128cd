//! [`heartbeat`](super::PipelineExt::heartbeat): a tick whenever nothing
//! passed for a while.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

/// An item of a [`heartbeat`](super::PipelineExt::heartbeat) stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Beat<T> {
    /// An item from upstream.
    Item(T),
    /// Nothing passed for the heartbeat's interval.
    Tick,
}

impl<T> Beat<T> {
    /// The item, or `None` for a tick.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::pipeline::Beat;
    ///
    /// assert_eq!(Beat::Item(7).into_item(), Some(7));
    /// assert_eq!(Beat::<u32>::Tick.into_item(), None);
    /// ```
    pub fn into_item(self) -> Option<T> {
        match self {
            Beat::Item(item) => Some(item),
            Beat::Tick => None,
        }
    }

    /// Whether this is a tick.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Beat;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let silent = stream::iter([7]).chain(stream::pending());
    /// let mut beats = Box::pin(silent.heartbeat(Duration::from_secs(1)));
    /// assert!(!beats.next().await.unwrap().is_tick());
    /// assert!(beats.next().await.unwrap().is_tick(), "a second of silence");
    /// assert!(Beat::<()>::Tick.is_tick());
    /// # }
    /// ```
    pub fn is_tick(&self) -> bool {
        matches!(self, Beat::Tick)
    }
}

pin_project! {
    /// Stream for [`heartbeat`](super::PipelineExt::heartbeat).
    #[must_use = "streams do nothing unless polled"]
    pub struct Heartbeat<S> {
        #[pin]
        stream: Fuse<S>,
        interval: Duration,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<S: Stream> Heartbeat<S> {
    #[track_caller]
    pub(super) fn new(stream: S, interval: Duration) -> Self {
        assert!(
            !interval.is_zero(),
            "heartbeat: interval must be greater than zero"
        );
        Heartbeat {
            stream: stream.fuse(),
            interval,
            sleep: None,
        }
    }
}

impl<S: Stream> Stream for Heartbeat<S> {
    type Item = Beat<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let beat = match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => Beat::Item(item),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                // The silence runs from the first poll, the last item or the
                // last tick.
                if this.sleep.is_none() {
                    let deadline = crate::time::deadline(Instant::now(), *this.interval);
                    this.sleep.set(Some(sleep_until(deadline)));
                }
                match this.sleep.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
                    Some(Poll::Ready(())) => Beat::Tick,
                    _ => return Poll::Pending,
                }
            }
        };
        let deadline = crate::time::deadline(Instant::now(), *this.interval);
        match this.sleep.as_mut().as_pin_mut() {
            Some(sleep) => sleep.reset(deadline),
            None => this.sleep.set(Some(sleep_until(deadline))),
        }
        Poll::Ready(Some(beat))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.stream.size_hint().0, None)
    }
}

impl<S: Stream> FusedStream for Heartbeat<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_done()
    }
}

impl<S> fmt::Debug for Heartbeat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}
