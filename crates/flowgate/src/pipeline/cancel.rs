//! [`take_until_cancelled`](super::PipelineExt::take_until_cancelled) and
//! [`cancellable`](super::PipelineExt::cancellable): stop a pipeline with a
//! [`CancellationToken`], draining or dropping the work in flight.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_core::stream::{FusedStream, Stream};
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// What a [`cancellable`](super::PipelineExt::cancellable) section does with
/// the work in flight when its token is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelMode {
    /// Stop pulling from the source, let the work in flight finish and yield
    /// it, then end. Nothing that was started is lost.
    Drain,
    /// End at once. Work in flight is dropped (cancelled) with the stream.
    Drop,
}

pin_project! {
    /// Stream for [`take_until_cancelled`](super::PipelineExt::take_until_cancelled)
    /// and [`cancellable`](super::PipelineExt::cancellable): ends when its
    /// token is cancelled (unless it drains).
    #[must_use = "streams do nothing unless polled"]
    pub struct Cancellable<S> {
        #[pin]
        stream: S,
        // Polled with `watch`'s waker, not the task's: the token's
        // cancellation sets a flag there, so a poll reads one atomic flag
        // instead of locking the token twice (is it cancelled? re-register).
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
        watch: Arc<Watch>,
        watch_waker: Waker,
        // `cancelled` was polled and is registered with the token.
        armed: bool,
        // `false` for the output of a draining section: it ends with its
        // upstream, which the token cut at the source.
        cut: bool,
        done: bool,
    }
}

/// What the token's cancellation wakes: it sets `woken` (so the next poll
/// polls the cancellation future again) and wakes the task last seen
/// waiting on upstream.
#[derive(Default)]
struct Watch {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Watch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<S: Stream> Cancellable<S> {
    pub(super) fn new(stream: S, token: CancellationToken, cut: bool) -> Self {
        let watch = Arc::new(Watch::default());
        Cancellable {
            stream,
            cancelled: token.cancelled_owned(),
            watch_waker: Waker::from(Arc::clone(&watch)),
            watch,
            armed: false,
            cut,
            done: false,
        }
    }

    /// Whether the stream ended because of its token.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::pipeline::CancellationToken;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// let mut s = Box::pin(stream::iter(0..).take_until_cancelled(token.clone()));
    /// assert_eq!(s.next().await, Some(0));
    /// assert!(!s.is_cancelled());
    /// token.cancel();
    /// assert_eq!(s.next().await, None);
    /// assert!(s.is_cancelled());
    ///
    /// // A stream that simply ended was not cancelled.
    /// let mut done = Box::pin(stream::iter([1]).take_until_cancelled(CancellationToken::new()));
    /// while done.next().await.is_some() {}
    /// assert!(!done.is_cancelled());
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.done && self.cut
    }
}

impl<S: Stream> Stream for Cancellable<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // The token first: a busy upstream cannot delay the cancellation.
        // Its future is polled the first time and again only once the
        // token's cancellation has woken it (`cancel` wakes it before it
        // returns, so the next poll after a `cancel` ends the stream).
        if *this.cut && (!*this.armed || this.watch.woken.load(Ordering::Acquire)) {
            this.watch.woken.store(false, Ordering::Relaxed);
            let mut watching = Context::from_waker(this.watch_waker);
            if this.cancelled.poll(&mut watching).is_ready() {
                *this.done = true;
                return Poll::Ready(None);
            }
            *this.armed = true;
        }
        match this.stream.poll_next(cx) {
            Poll::Pending => {
                if *this.cut {
                    // Waiting on upstream: a cancellation must wake this
                    // task. Registered before the flag is read again, so a
                    // cancellation in between is not missed.
                    this.watch.task.register(cx.waker());
                    if this.watch.woken.load(Ordering::Acquire) {
                        cx.waker().wake_by_ref();
                    }
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                *this.done = true;
                *this.cut = false;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let upper = self.stream.size_hint().1;
        if self.cut {
            (0, upper)
        } else {
            self.stream.size_hint()
        }
    }
}

impl<S: Stream> FusedStream for Cancellable<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S> fmt::Debug for Cancellable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellable")
            .field("cut", &self.cut)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
