//! [`Subscriber`]: reads every event published after it subscribed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::block::{Next, Reader};
use super::error::TryRecvError;
use super::shared::{CursorKey, Shared, Start};
use crate::loom::sync::Arc;
use crate::loom::sync::atomic::Ordering;

/// Receives every event published after it subscribed, in publish order; see
/// the [module documentation](super).
///
/// A subscriber is a [`Stream`] of events that ends when the stream is closed
/// and every event was read. It also has [`recv`](Self::recv) and
/// [`try_recv`](Self::try_recv).
///
/// Cloning a subscriber forks it: the clone starts at the original's current
/// position and from then on both see the same events independently. To
/// start at the tail instead, use [`Publisher::subscribe`](super::Publisher::subscribe)
/// or a [`SubscribeHandle`](super::SubscribeHandle).
///
/// Events are cloned out of the stream (`T: Clone`); wrap large events in an
/// [`Arc`](std::sync::Arc). A subscriber keeps the events it has not read yet
/// in memory (in an unbounded stream, without limit); dropping it releases
/// them at once.
pub struct Subscriber<T> {
    reader: Reader<T>,
    shared: Arc<Shared<T>>,
    /// Entry among the waiting readers, once this subscriber has waited.
    reader_key: Option<usize>,
    /// Registered position, in bounded streams.
    cursor: Option<CursorKey>,
    /// Events this subscriber may still return before it consumes a unit
    /// of tokio's cooperative budget again.
    coop_credit: u32,
    /// The end of the stream was returned.
    terminated: bool,
}

/// Events received per unit of tokio's cooperative budget; see
/// [`Subscriber::poll_recv`]. Consulting the budget costs a thread-local
/// access and two calls, which per event was measured at two thirds of the
/// cost of receiving a ready event.
#[cfg(not(loom))]
const COOP_BATCH: u32 = 16;

impl<T> Subscriber<T> {
    /// A new subscriber at the tail of the stream of `shared`.
    pub(crate) fn at_tail(shared: &Arc<Shared<T>>) -> Self {
        let start = shared.start_at_tail();
        Subscriber::new(Arc::clone(shared), start)
    }

    fn new(shared: Arc<Shared<T>>, start: Start<T>) -> Self {
        Subscriber {
            reader: start.reader,
            shared,
            reader_key: None,
            cursor: start.cursor,
            coop_credit: 0,
            terminated: false,
        }
    }

    /// Sequence number of the next event this subscriber will read.
    fn position(&self) -> u64 {
        self.reader.position()
    }

    /// Whether the stream is closed and this subscriber has read every event.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// publisher.publish(1);
    /// publisher.close();
    /// assert!(!sub.is_finished());
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert!(sub.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.reader.is_finished()
    }

    /// Number of events published but not read yet by this subscriber: its
    /// lag behind the publisher.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// publisher.publish("a");
    /// publisher.publish("b");
    /// assert_eq!(sub.len(), 2);
    /// sub.try_recv().unwrap();
    /// assert_eq!(sub.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        let published = self.shared.published();
        usize::try_from(published.saturating_sub(self.position())).unwrap_or(usize::MAX)
    }

    /// Whether this subscriber has read every event published so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// assert!(sub.is_empty());
    /// publisher.publish(1);
    /// assert!(!sub.is_empty());
    /// sub.try_recv().unwrap();
    /// assert!(sub.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Subscriber<T> {
    /// Receives the next event, waiting for it to be published.
    ///
    /// Resolves to `None` once the stream is closed (the publisher was closed
    /// or dropped) and every event published before that was received.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an event is taken only when the future resolves, so a
    /// cancelled `recv` loses nothing, and the next call receives the same
    /// event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// let reader = tokio::spawn(async move {
    ///     let mut seen = Vec::new();
    ///     while let Some(event) = sub.recv().await {
    ///         seen.push(event);
    ///     }
    ///     seen
    /// });
    /// publisher.publish(1);
    /// publisher.publish(2);
    /// drop(publisher); // closes the stream
    /// assert_eq!(reader.await.unwrap(), [1, 2]);
    /// # }
    /// ```
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { subscriber: self }
    }

    /// Receives the next event if it has been published, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if this subscriber has read every event
    /// published so far (transient); [`TryRecvError::Closed`] if the stream
    /// is closed and every event was read (permanent).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{Publisher, TryRecvError};
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    /// publisher.publish("hello");
    /// publisher.close();
    /// assert_eq!(sub.try_recv(), Ok("hello"));
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match self.next_ready() {
            Next::Event(event) => Ok(event),
            Next::Empty => Err(TryRecvError::Empty),
            Next::Closed => {
                self.terminated = true;
                Err(TryRecvError::Closed)
            }
        }
    }

    /// Polls for the next event; the basis of [`recv`](Self::recv) and of the
    /// [`Stream`] implementation.
    ///
    /// Takes part in tokio's cooperative scheduling: a task that receives
    /// many ready events in a row yields to the scheduler now and then. To
    /// keep that cheap, one unit of the task's budget is consumed per 16
    /// events received, so a task yields after at most 2048 ready events
    /// (tokio's budget is 128 units).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::future::poll_fn;
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// publisher.publish(5);
    /// publisher.close();
    /// assert_eq!(poll_fn(|cx| sub.poll_recv(cx)).await, Some(5));
    /// assert_eq!(poll_fn(|cx| sub.poll_recv(cx)).await, None);
    /// # }
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        #[cfg(not(loom))]
        if self.coop_credit == 0 {
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            let polled = self.poll_recv_inner(cx);
            if polled.is_ready() {
                coop.made_progress();
                self.coop_credit = COOP_BATCH - 1;
            }
            return polled;
        }
        let polled = self.poll_recv_inner(cx);
        if polled.is_ready() {
            self.coop_credit = self.coop_credit.saturating_sub(1);
        }
        polled
    }

    fn poll_recv_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            match self.next_ready() {
                Next::Event(event) => return Poll::Ready(Some(event)),
                Next::Closed => {
                    self.terminated = true;
                    return Poll::Ready(None);
                }
                Next::Empty => {}
            }
            // Caught up: register, then tell the publisher and look again. The
            // publisher's next commit on this block sees the flag and wakes
            // us; if it committed before the flag was set, `mark_waiting`
            // returns the new length and we do not sleep.
            self.shared
                .readers
                .register(&mut self.reader_key, cx.waker());
            if self.reader.mark_waiting() {
                return Poll::Pending;
            }
        }
    }

    /// Takes the next event if it is published.
    fn next_ready(&mut self) -> Next<T> {
        let next = self.reader.next();
        if let (Next::Event(_), Some(cursor)) = (&next, &self.cursor) {
            cursor.advance(self.reader.position(), &self.shared);
        }
        next
    }
}

impl<T> Clone for Subscriber<T> {
    /// Forks the subscriber: the clone receives the same events as the
    /// original from its current position on.
    fn clone(&self) -> Self {
        let cursor = self.shared.fork(self.position());
        Subscriber {
            reader: self.reader.clone(),
            shared: Arc::clone(&self.shared),
            reader_key: None,
            cursor,
            coop_credit: 0,
            terminated: self.terminated,
        }
    }
}

impl<T> Drop for Subscriber<T> {
    fn drop(&mut self) {
        let finished = self.terminated || self.reader.is_finished();
        self.shared
            .leave(self.cursor.take(), &mut self.reader_key, finished);
    }
}

impl<T: Clone> Stream for Subscriber<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.terminated {
            (0, Some(0))
        } else {
            (self.len(), None)
        }
    }
}

impl<T: Clone> FusedStream for Subscriber<T> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<T> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("position", &self.position())
            .field("terminated", &self.terminated)
            .field(
                "subscribers",
                &self.shared.subscribers.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// Future returned by [`Subscriber::recv`].
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    subscriber: &'a mut Subscriber<T>,
}

impl<T: Clone> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().subscriber.poll_recv(cx)
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("subscriber", &self.subscriber)
            .finish()
    }
}
