//! [`CursorSource`]: the stream end of a cursor source, and the outbox the
//! driver fills.

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::task::AtomicWaker;

use super::ack::{CursorAck, Signal};
use super::control::CursorControl;
use super::error::CursorError;
use crate::sync::lock;

/// Items and errors fetched by the driver, not yet yielded by the stream.
pub(crate) struct Outbox<T, E> {
    state: Mutex<OutboxState<T, E>>,
    waker: AtomicWaker,
    signal: Arc<Signal>,
}

struct OutboxState<T, E> {
    events: VecDeque<Event<T, E>>,
    /// Nothing more will be pushed: the stream ends once `events` is empty.
    ended: bool,
    /// The stream was dropped: nothing pushed will ever be yielded.
    dropped: bool,
}

pub(crate) enum Event<T, E> {
    Item(T, CursorAck),
    Error(CursorError<E>),
}

impl<T, E> Outbox<T, E> {
    pub(crate) fn new(signal: Arc<Signal>) -> Self {
        Outbox {
            state: Mutex::new(OutboxState {
                events: VecDeque::new(),
                ended: false,
                dropped: false,
            }),
            waker: AtomicWaker::new(),
            signal,
        }
    }

    /// Queues events for the stream; dropped at once if the stream is gone.
    pub(crate) fn push(&self, events: impl IntoIterator<Item = Event<T, E>>) {
        let mut state = lock(&self.state);
        if state.dropped || state.ended {
            // Dropped outside the lock: an ack's drop wakes the driver.
            drop(state);
            drop(events.into_iter().collect::<Vec<_>>());
            return;
        }
        state.events.extend(events);
        drop(state);
        self.waker.wake();
    }

    /// Ends the stream after the queued events.
    pub(crate) fn end(&self) {
        lock(&self.state).ended = true;
        self.waker.wake();
    }

    /// Ends the stream at once, dropping the queued events (their acks are
    /// dropped unacknowledged, holding the checkpoint before their pages).
    pub(crate) fn end_now(&self) {
        let dropped = {
            let mut state = lock(&self.state);
            state.ended = true;
            mem::take(&mut state.events)
        };
        drop(dropped);
        self.waker.wake();
    }

    pub(crate) fn is_dropped(&self) -> bool {
        lock(&self.state).dropped
    }
}

/// A stream of the items of a paginated source — fetched page by page from a
/// cursor, only as fast as they are acknowledged — each with the
/// [`CursorAck`] that moves the checkpoint; see the
/// [module documentation](super).
///
/// Built by [`CursorSource::builder`]. Yields `Ok((item, ack))`, or an
/// `Err(`[`CursorError`]`)` when a fetch, the checkpoint store or an ack
/// fails. Dropping the stream stops the source: items fetched but not yielded
/// are dropped (and redone after a restart); items already yielded can still
/// be acknowledged and committed.
#[must_use = "streams do nothing unless polled"]
pub struct CursorSource<T, C, E> {
    pub(crate) outbox: Arc<Outbox<T, E>>,
    pub(crate) control: CursorControl<C>,
    pub(crate) terminated: bool,
}

impl<T, C, E> CursorSource<T, C, E> {
    /// A handle to pause, resume and stop this source and to read its
    /// checkpoint; it stays usable after the stream is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::source::{CursorSource, Page};
    /// # let fetch = |after: u64| async move {
    /// #     let rows: Vec<u64> = (after + 1..=10).take(5).collect();
    /// #     Ok::<_, std::convert::Infallible>(Page::keyset(rows, |row| *row))
    /// # };
    ///
    /// let source = CursorSource::builder(0u64).build(fetch).unwrap();
    /// let control = source.control(); // cloneable, usable from other tasks
    /// let other = control.clone();
    /// other.stop();
    /// assert!(control.is_stopped());
    /// # }
    /// ```
    pub fn control(&self) -> CursorControl<C> {
        self.control.clone()
    }
}

impl<T, C, E> Stream for CursorSource<T, C, E> {
    type Item = Result<(T, CursorAck), CursorError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.terminated {
            return Poll::Ready(None);
        }
        let mut state = lock(&self.outbox.state);
        match state.events.pop_front() {
            Some(Event::Item(item, mut ack)) => {
                ack.emit(&self.outbox.signal.metrics);
                Poll::Ready(Some(Ok((item, ack))))
            }
            Some(Event::Error(err)) => Poll::Ready(Some(Err(err))),
            None if state.ended => {
                drop(state);
                self.terminated = true;
                Poll::Ready(None)
            }
            None => {
                // Registered under the lock: the driver pushes under it and
                // wakes after, so no push is missed.
                self.outbox.waker.register(cx.waker());
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.terminated {
            return (0, Some(0));
        }
        let state = lock(&self.outbox.state);
        let queued = state.events.len();
        (queued, state.ended.then_some(queued))
    }
}

impl<T, C, E> FusedStream for CursorSource<T, C, E> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<T, C, E> Drop for CursorSource<T, C, E> {
    fn drop(&mut self) {
        let dropped = {
            let mut state = lock(&self.outbox.state);
            state.dropped = true;
            state.ended = true;
            mem::take(&mut state.events)
        };
        // Outside the lock: each ack dropped here wakes the driver.
        drop(dropped);
        self.outbox.signal.driver.wake();
    }
}

impl<T, C: fmt::Debug, E> fmt::Debug for CursorSource<T, C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queued = lock(&self.outbox.state).events.len();
        f.debug_struct("CursorSource")
            .field("queued", &queued)
            .field("control", &self.control)
            .field("terminated", &self.terminated)
            .finish()
    }
}
