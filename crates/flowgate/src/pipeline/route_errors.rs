//! [`route_errors`](super::PipelineExt::route_errors): successes continue,
//! errors go to a dead-letter channel.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio_util::sync::PollSender;

use super::BUDGET;
use crate::resilience::DeadLetterSender;

pin_project! {
    /// Stream for [`route_errors`](super::PipelineExt::route_errors): yields
    /// the `Ok` values and sends the errors to a dead-letter channel.
    #[must_use = "streams do nothing unless polled"]
    pub struct RouteErrors<S, X>
    where
        X: Send,
        X: 'static,
    {
        #[pin]
        stream: Fuse<S>,
        sender: PollSender<X>,
        dropped: Arc<AtomicU64>,
        // An error taken from upstream, waiting for room in the channel.
        pending: Option<X>,
    }
}

impl<S, T, X> RouteErrors<S, X>
where
    S: Stream<Item = Result<T, X>>,
    X: Send + 'static,
{
    pub(super) fn new(stream: S, dead: DeadLetterSender<X>) -> Self {
        RouteErrors {
            stream: stream.fuse(),
            sender: PollSender::new(dead.tx),
            dropped: dead.dropped,
            pending: None,
        }
    }

    /// Errors discarded because the dead-letter receiver was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::dead_letters;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, dead) = dead_letters::<&str>(4);
    /// drop(dead); // nobody reads the dead letters
    /// let mut stage = stream::iter([Err("a"), Ok(1)]).route_errors(tx);
    /// assert_eq!(stage.next().await, Some(1));
    /// assert_eq!(stage.dropped(), 1);
    /// # }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<S, T, X> Stream for RouteErrors<S, X>
where
    S: Stream<Item = Result<T, X>>,
    X: Send + 'static,
{
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut this = self.project();
        for _ in 0..BUDGET {
            // 1. Hand a held error to the channel before pulling more, so
            //    errors keep their order and a full channel holds back the
            //    stage (backpressure, not loss).
            if let Some(err) = this.pending.take() {
                match this.sender.poll_reserve(cx) {
                    Poll::Ready(Ok(())) => {
                        if let Err(closed) = this.sender.send_item(err) {
                            // Raced with the receiver being dropped.
                            drop(closed);
                            this.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Poll::Ready(Err(_closed)) => {
                        // The receiver is gone: dead letters are discarded
                        // by the user's choice; successes go on.
                        this.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Poll::Pending => {
                        *this.pending = Some(err);
                        return Poll::Pending;
                    }
                }
            }
            // 2. Pull: successes pass, errors are held for the channel.
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(value))) => return Poll::Ready(Some(value)),
                Poll::Ready(Some(Err(err))) => *this.pending = Some(err),
                Poll::Ready(None) => {
                    // Let the dead-letter stream end once the other senders
                    // are gone too.
                    this.sender.close();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        // A long run of errors: yield to the executor, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Any upstream item may be an error.
        (0, self.stream.size_hint().1)
    }
}

impl<S, T, X> FusedStream for RouteErrors<S, X>
where
    S: Stream<Item = Result<T, X>>,
    X: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.pending.is_none() && self.stream.is_done()
    }
}

impl<S, X> fmt::Debug for RouteErrors<S, X>
where
    X: Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteErrors")
            .field("holding_error", &self.pending.is_some())
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
