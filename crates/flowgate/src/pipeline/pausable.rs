//! [`pausable`](super::PipelineExt::pausable): a source that pulls no new
//! item while a [`PauseHandle`] is paused.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;

use crate::resilience::PauseHandle;
use crate::resilience::pause::PauseShared;

pin_project! {
    /// Stream for [`pausable`](super::PipelineExt::pausable): passes items
    /// through, and does not poll upstream while its [`PauseHandle`] is
    /// paused.
    #[must_use = "streams do nothing unless polled"]
    pub struct Pausable<S> {
        #[pin]
        stream: Fuse<S>,
        // Not a `PauseHandle`: the stage must not count as someone who could
        // resume a manual pause (see `PauseHandle`'s drop policy).
        shared: Arc<PauseShared>,
        // Set while paused: completes when the pause may have been lifted.
        // Boxed (one allocation per pause) so the stage is `Unpin` when its
        // upstream is: a source is polled with `next()` a lot.
        lifted: Option<Pin<Box<OwnedNotified>>>,
    }
}

impl<S: Stream> Pausable<S> {
    pub(super) fn new(stream: S, handle: &PauseHandle) -> Self {
        Pausable {
            stream: stream.fuse(),
            shared: Arc::clone(handle.shared()),
            lifted: None,
        }
    }

    /// Whether the stage is paused now.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::PauseHandle;
    /// use futures_util::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pause = PauseHandle::new();
    /// let source = stream::iter(0..3).pausable(&pause);
    /// pause.pause();
    /// assert!(source.is_paused());
    /// # }
    /// ```
    pub fn is_paused(&self) -> bool {
        self.shared.is_paused()
    }
}

impl<S: Stream> Stream for Pausable<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        // 1. While paused, wait for a lift. The waiter is registered before
        //    the flags are read again, so a lift in between is not missed.
        while this.shared.is_paused() {
            match this.lifted {
                None => {
                    let mut lifted = Box::pin(this.shared.lifted());
                    lifted.as_mut().enable();
                    *this.lifted = Some(lifted);
                    // Read the flags again, now that a lift cannot be missed.
                }
                Some(lifted) => match lifted.as_mut().poll(cx) {
                    Poll::Ready(()) => *this.lifted = None,
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
        *this.lifted = None;
        // 2. Not paused: pull.
        this.stream.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S: Stream> FusedStream for Pausable<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_done()
    }
}

impl<S> fmt::Debug for Pausable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pausable")
            .field("paused", &self.shared.is_paused())
            .finish_non_exhaustive()
    }
}
