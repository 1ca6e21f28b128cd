//! [`SharedPublisher`]: the cloneable publisher, for several producers.

use std::fmt;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::Poll;

use super::error::{PublishError, TryPublishError};
use super::handle::SubscribeHandle;
use super::shared::Shared;
use super::subscriber::Subscriber;
use super::writer::Writer;
use crate::sync::lock;
use crate::telemetry::GaugeGuard;

/// A publisher that can be cloned and used from several tasks at once; see
/// the [module documentation](super).
///
/// This is the slower path: every publish takes a lock around the stream's
/// single writer. Prefer one owned [`Publisher`](super::Publisher) or
/// [`BoundedPublisher`](super::BoundedPublisher) fed by a channel, or one
/// per producer if their events need not be interleaved, when publishing is
/// hot.
///
/// It keeps the mode it was made from: an unbounded stream's
/// [`try_publish`](Self::try_publish) never reports `Full`, so it is the
/// non-async way to publish; in a bounded stream [`publish`](Self::publish)
/// waits for room. Events from one task are published in the order that task
/// published them; events from different tasks are interleaved in the order
/// they took the lock.
///
/// The stream closes when [`close`](Self::close) is called through any clone,
/// or when the last clone is dropped.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use flowgate::broadcast::Publisher;
///
/// let publisher = Publisher::new().into_shared();
/// let mut sub = publisher.subscribe();
/// let producers: Vec<_> = (0..4)
///     .map(|p| {
///         let publisher = publisher.clone();
///         tokio::spawn(async move { publisher.publish(p).await.unwrap() })
///     })
///     .collect();
/// for producer in producers {
///     producer.await.unwrap();
/// }
/// drop(publisher); // the last clone: closes the stream
/// let mut seen = Vec::new();
/// while let Some(p) = sub.recv().await {
///     seen.push(p);
/// }
/// seen.sort();
/// assert_eq!(seen, [0, 1, 2, 3]);
/// # }
/// ```
pub struct SharedPublisher<T> {
    inner: std::sync::Arc<Inner<T>>,
}

struct Inner<T> {
    writer: Mutex<Writer<T>>,
    /// The writer's shared state, reachable without the lock.
    shared: crate::loom::sync::Arc<Shared<T>>,
}

impl<T> SharedPublisher<T> {
    pub(crate) fn from_writer(writer: Writer<T>) -> Self {
        let shared = crate::loom::sync::Arc::clone(&writer.shared);
        SharedPublisher {
            inner: std::sync::Arc::new(Inner {
                writer: Mutex::new(writer),
                shared,
            }),
        }
    }

    /// Publishes `event`, waiting for room first if the stream is bounded.
    /// In an unbounded stream it resolves at the first poll.
    ///
    /// Several publishers waiting for room are all woken when there is some;
    /// the first to take the lock publishes first (no fairness is promised).
    ///
    /// # Errors
    ///
    /// [`PublishError`] with the event if the stream is closed, including
    /// while waiting for room.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped while waiting for room, the
    /// event is dropped with it and not published. The event is published
    /// entirely or not at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::new().into_shared();
    /// let mut sub = publisher.subscribe();
    /// publisher.publish("a").await.unwrap();
    /// publisher.close();
    /// assert_eq!(publisher.publish("b").await.unwrap_err().into_inner(), "b");
    /// assert_eq!(sub.recv().await, Some("a"));
    /// assert_eq!(sub.recv().await, None);
    /// # }
    /// ```
    pub async fn publish(&self, event: T) -> Result<(), PublishError<T>> {
        let mut event = Some(event);
        let mut key = RoomKey {
            shared: &self.inner.shared,
            key: None,
        };
        let metrics = &self.inner.shared.metrics;
        // Counted among the waiting publishers from the first `Pending` until
        // this resolves or is dropped.
        let mut waiting = None;
        poll_fn(|cx| {
            let mut writer = lock(&self.inner.writer);
            if writer.is_closed() {
                drop(writer);
                metrics.reject_closed();
                let event = event.take().expect("polled after completion");
                return Poll::Ready(Err(PublishError(event)));
            }
            if writer.poll_room(cx, &mut key.key).is_pending() {
                if waiting.is_none() {
                    waiting = Some(GaugeGuard::new(&metrics.publishers_waiting));
                }
                return Poll::Pending;
            }
            writer.push(event.take().expect("polled after completion"));
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Publishes `event` if there is room, without waiting. In an unbounded
    /// stream there is always room.
    ///
    /// # Errors
    ///
    /// [`TryPublishError::Full`] with the event if the stream is bounded and
    /// a subscriber has `bound` unread events; [`TryPublishError::Closed`]
    /// with the event if the stream is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{Publisher, TryPublishError};
    ///
    /// let publisher = Publisher::new().into_shared();
    /// let mut sub = publisher.subscribe();
    /// publisher.try_publish(1).unwrap();
    /// publisher.close();
    /// assert!(matches!(publisher.try_publish(2), Err(TryPublishError::Closed(2))));
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// ```
    pub fn try_publish(&self, event: T) -> Result<(), TryPublishError<T>> {
        let mut writer = lock(&self.inner.writer);
        if writer.is_closed() {
            drop(writer);
            self.inner.shared.metrics.reject_closed();
            Err(TryPublishError::Closed(event))
        } else if writer.has_room() {
            writer.push(event);
            Ok(())
        } else {
            drop(writer);
            self.inner.shared.metrics.reject_full();
            Err(TryPublishError::Full(event))
        }
    }

    /// Closes the stream for every clone. Subscribers receive every event
    /// published so far, then the end of the stream; publishers waiting for
    /// room get their events back.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{Publisher, TryPublishError, TryRecvError};
    ///
    /// let publisher = Publisher::new().into_shared();
    /// let mut sub = publisher.subscribe();
    /// let clone = publisher.clone();
    /// publisher.try_publish(1).unwrap();
    /// publisher.close();
    /// assert!(matches!(clone.try_publish(2), Err(TryPublishError::Closed(2))));
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    /// ```
    pub fn close(&self) {
        lock(&self.inner.writer).close();
    }

    /// Whether the stream is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::<u32>::new().into_shared();
    /// let clone = publisher.clone();
    /// assert!(!clone.is_closed());
    /// publisher.close();
    /// assert!(clone.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.writer).is_closed()
    }

    /// A new subscriber at the tail: it receives every event published from
    /// now on (none, if the stream is closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{Publisher, TryRecvError};
    ///
    /// let publisher = Publisher::new().into_shared();
    /// let mut sub = publisher.subscribe();
    /// publisher.try_publish("hello").unwrap();
    /// assert_eq!(sub.try_recv(), Ok("hello"));
    /// publisher.close();
    /// let mut late = publisher.subscribe(); // at the end of a closed stream
    /// assert_eq!(late.try_recv(), Err(TryRecvError::Closed));
    /// ```
    pub fn subscribe(&self) -> Subscriber<T> {
        Subscriber::at_tail(&self.inner.shared)
    }

    /// A cloneable handle that creates subscribers at the tail.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::new().into_shared();
    /// let handle = publisher.subscribe_handle();
    /// let mut sub = handle.subscribe();
    /// publisher.try_publish(3).unwrap();
    /// assert_eq!(sub.try_recv(), Ok(3));
    /// ```
    pub fn subscribe_handle(&self) -> SubscribeHandle<T> {
        SubscribeHandle::new(&self.inner.shared)
    }

    /// Number of live subscribers.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::<u32>::new().into_shared();
    /// let subs: Vec<_> = (0..3).map(|_| publisher.subscribe()).collect();
    /// assert_eq!(publisher.subscriber_count(), 3);
    /// drop(subs);
    /// assert_eq!(publisher.subscriber_count(), 0);
    /// ```
    pub fn subscriber_count(&self) -> usize {
        self.inner.shared.subscriber_count()
    }
}

impl<T> Clone for SharedPublisher<T> {
    fn clone(&self) -> Self {
        SharedPublisher {
            inner: std::sync::Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for SharedPublisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPublisher")
            .field("shared", &self.inner.shared)
            .finish_non_exhaustive()
    }
}

/// A waiting `publish`'s entry among the room waiters, removed when the
/// future completes or is dropped.
struct RoomKey<'a, T> {
    shared: &'a Shared<T>,
    key: Option<usize>,
}

impl<T> Drop for RoomKey<'_, T> {
    fn drop(&mut self) {
        self.shared.room.remove(&mut self.key);
    }
}
