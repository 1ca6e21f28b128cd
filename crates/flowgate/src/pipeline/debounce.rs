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
    }
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
                    if this.held.replace(item).is_some() {
                        *this.dropped += 1;
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
                    return Poll::Ready(this.held.take());
                }
                Poll::Pending => {}
            }
            // 2. Quiet for long enough: yield the held item.
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut()
                && sleep.poll(cx).is_ready()
            {
                this.sleep.set(None);
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
            .finish_non_exhaustive()
    }
}
