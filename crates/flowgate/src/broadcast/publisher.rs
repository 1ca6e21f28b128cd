//! The owned publishers: [`Publisher`] (unbounded) and [`BoundedPublisher`].

use std::fmt;
use std::future::poll_fn;

use super::error::TryPublishError;
use super::handle::SubscribeHandle;
use super::shared_publisher::SharedPublisher;
use super::subscriber::Subscriber;
use super::writer::Writer;
use crate::telemetry::{GaugeGuard, Name};

/// The single publisher of an unbounded event stream; see the
/// [module documentation](super).
///
/// Publishing takes `&mut self`: there is exactly one publisher, and the type
/// system rather than a lock makes sure of it, so [`publish`](Self::publish)
/// takes no lock and never waits. Subscribers that fall behind keep the
/// events they have not read in memory, without limit; use a
/// [`BoundedPublisher`] to make the publisher wait for them instead. For
/// several producers, turn it into a [`SharedPublisher`] with
/// [`into_shared`](Self::into_shared).
///
/// Dropping the publisher closes the stream, like [`close`](Self::close).
///
/// # Examples
///
/// ```
/// use flowgate::broadcast::Publisher;
///
/// let mut publisher = Publisher::new();
/// let mut a = publisher.subscribe();
/// let mut b = publisher.subscribe();
/// publisher.publish("hello");
/// assert_eq!(a.try_recv(), Ok("hello"));
/// assert_eq!(b.try_recv(), Ok("hello"));
/// ```
pub struct Publisher<T> {
    writer: Writer<T>,
}

impl<T> Publisher<T> {
    /// Creates an unbounded event stream and returns its publisher. The stream
    /// has no subscribers yet; events published before the first one
    /// subscribes are seen by no one.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::<u32>::new();
    /// assert_eq!(publisher.subscriber_count(), 0);
    /// publisher.publish(1); // no subscriber: seen by no one
    /// assert_eq!(publisher.published(), 1);
    /// ```
    pub fn new() -> Self {
        Publisher {
            writer: Writer::new(None, Name::none()),
        }
    }

    /// Creates an unbounded event stream, like [`new`](Self::new), whose
    /// metrics are recorded under `name` (feature `metrics`): the `name`
    /// label of each of its series. Any string is accepted as given; give
    /// each stream its own. The name stays with the stream through
    /// [`into_shared`](Self::into_shared).
    ///
    /// It enables `flowgate_broadcast_events_published_total`,
    /// `flowgate_broadcast_subscribers`,
    /// `flowgate_broadcast_subscribers_left_total{reason}`,
    /// `flowgate_broadcast_events_buffered`, and (for a bounded or shared
    /// publisher) `flowgate_broadcast_publishers_waiting` and
    /// `flowgate_broadcast_publish_rejected_total{reason}`, all registered
    /// here; see [`crate::metrics`] for what each one counts. A stream made
    /// with [`new`](Self::new) records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::with_name("orders");
    /// let mut sub = publisher.subscribe();
    /// publisher.publish(1);
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// ```
    pub fn with_name(name: impl Into<String>) -> Self {
        Publisher {
            writer: Writer::new(None, Name::new(name)),
        }
    }

    /// Publishes `event` to every current subscriber. Never waits and never
    /// fails; with no subscribers the event is simply dropped (a block at a
    /// time).
    ///
    /// Wakes the subscribers waiting for an event; when none is waiting this
    /// costs one atomic read-modify-write and no lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// for i in 0..3 {
    ///     publisher.publish(i);
    /// }
    /// assert_eq!(sub.try_recv(), Ok(0));
    /// ```
    pub fn publish(&mut self, event: T) {
        self.writer.push(event);
    }

    /// A new subscriber at the tail: it receives every event published from
    /// now on.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{Publisher, TryRecvError};
    ///
    /// let mut publisher = Publisher::new();
    /// publisher.publish("before");
    /// let mut sub = publisher.subscribe();
    /// publisher.publish("after");
    /// assert_eq!(sub.try_recv(), Ok("after"));
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    /// ```
    pub fn subscribe(&self) -> Subscriber<T> {
        Subscriber::at_tail(&self.writer.shared)
    }

    /// A cloneable handle that creates subscribers at the tail, for tasks
    /// that have no access to the publisher (for example, one per connecting
    /// client).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// let handle = publisher.subscribe_handle();
    /// let client = tokio::spawn(async move {
    ///     let mut sub = handle.subscribe();
    ///     sub.recv().await
    /// });
    /// while publisher.subscriber_count() == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// publisher.publish(7);
    /// assert_eq!(client.await.unwrap(), Some(7));
    /// # }
    /// ```
    pub fn subscribe_handle(&self) -> SubscribeHandle<T> {
        SubscribeHandle::new(&self.writer.shared)
    }

    /// Number of live subscribers.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::<u32>::new();
    /// let a = publisher.subscribe();
    /// let _b = publisher.subscribe();
    /// assert_eq!(publisher.subscriber_count(), 2);
    /// drop(a);
    /// assert_eq!(publisher.subscriber_count(), 1);
    /// ```
    pub fn subscriber_count(&self) -> usize {
        self.writer.shared.subscriber_count()
    }

    /// Events published so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let mut publisher = Publisher::new();
    /// for i in 0..3 {
    ///     publisher.publish(i);
    /// }
    /// assert_eq!(publisher.published(), 3);
    /// ```
    pub fn published(&self) -> u64 {
        self.writer.published()
    }

    /// Closes the stream. Subscribers receive every event published so far,
    /// then the end of the stream. Same as dropping the publisher.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{Publisher, TryRecvError};
    ///
    /// let mut publisher = Publisher::new();
    /// let mut sub = publisher.subscribe();
    /// publisher.publish(1);
    /// publisher.close();
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    /// ```
    pub fn close(self) {
        drop(self);
    }

    /// Turns this publisher into a [`SharedPublisher`], which several tasks
    /// can clone and publish through (each publish then takes a lock).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::new().into_shared();
    /// let mut sub = publisher.subscribe();
    /// let other = publisher.clone();
    /// publisher.try_publish(1).unwrap();
    /// other.try_publish(2).unwrap();
    /// assert_eq!((sub.try_recv(), sub.try_recv()), (Ok(1), Ok(2)));
    /// ```
    pub fn into_shared(self) -> SharedPublisher<T> {
        SharedPublisher::from_writer(self.writer)
    }
}

impl<T> Default for Publisher<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("writer", &self.writer)
            .finish()
    }
}

/// The single publisher of a bounded event stream: it never runs more than
/// `bound` events ahead of its slowest subscriber; see the
/// [module documentation](super).
///
/// [`publish`](Self::publish) waits while the slowest live subscriber has
/// `bound` events it has not read. Nothing is ever dropped or skipped: slow
/// subscribers slow the publisher down instead. A subscriber that is dropped
/// stops counting at once.
///
/// Dropping the publisher closes the stream, like [`close`](Self::close).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use flowgate::broadcast::{BoundedPublisher, TryPublishError};
///
/// let mut publisher = BoundedPublisher::new(2);
/// let mut sub = publisher.subscribe();
/// publisher.publish(1).await;
/// publisher.publish(2).await;
/// // `sub` has two unread events: a third would exceed the bound.
/// assert!(matches!(publisher.try_publish(3), Err(TryPublishError::Full(3))));
/// assert_eq!(sub.recv().await, Some(1));
/// publisher.publish(3).await;
/// # }
/// ```
pub struct BoundedPublisher<T> {
    writer: Writer<T>,
}

impl<T> BoundedPublisher<T> {
    /// Creates an event stream whose publisher waits while a subscriber has
    /// `bound` unread events, and returns its publisher.
    ///
    /// A bound of 1 makes every subscriber read each event before the next
    /// is published. A bound of `usize::MAX` never makes the publisher wait
    /// in practice (nothing is allocated for it up front: memory follows the
    /// slowest subscriber's lag, as in an unbounded stream).
    ///
    /// # Panics
    ///
    /// `"BoundedPublisher::new: bound must be at least 1"` if `bound` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let publisher = BoundedPublisher::<u32>::new(64);
    /// assert_eq!(publisher.bound(), 64);
    /// ```
    ///
    /// A zero bound is refused:
    ///
    /// ```should_panic
    /// # use flowgate::broadcast::BoundedPublisher;
    /// let _ = BoundedPublisher::<u32>::new(0); // panics: bound must be at least 1
    /// ```
    #[track_caller]
    pub fn new(bound: usize) -> Self {
        assert!(bound > 0, "BoundedPublisher::new: bound must be at least 1");
        Self::create(bound, Name::none())
    }

    /// Creates a bounded event stream, like [`new`](Self::new), whose metrics
    /// are recorded under `name` (feature `metrics`); the series are those
    /// listed on [`Publisher::with_name`], and any string is accepted as
    /// given. `flowgate_broadcast_publishers_waiting` counts the `publish` and
    /// `reserve` calls waiting for room and
    /// `flowgate_broadcast_publish_rejected_total{reason="full"}` the
    /// [`try_publish`](Self::try_publish) calls refused.
    ///
    /// # Panics
    ///
    /// `"BoundedPublisher::with_name: bound must be at least 1"` if `bound`
    /// is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::with_name(1, "ticks");
    /// let _slow = publisher.subscribe();
    /// publisher.try_publish(1).unwrap();
    /// assert!(publisher.try_publish(2).is_err()); // counted as reason="full"
    /// ```
    #[track_caller]
    pub fn with_name(bound: usize, name: impl Into<String>) -> Self {
        assert!(
            bound > 0,
            "BoundedPublisher::with_name: bound must be at least 1"
        );
        Self::create(bound, Name::new(name))
    }

    fn create(bound: usize, name: Name) -> Self {
        BoundedPublisher {
            // A usize always fits in a u64 on the platforms tokio supports.
            writer: Writer::new(Some(u64::try_from(bound).unwrap_or(u64::MAX)), name),
        }
    }

    /// The bound this stream was created with.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let publisher = BoundedPublisher::<u32>::new(8);
    /// assert_eq!(publisher.bound(), 8);
    /// ```
    pub fn bound(&self) -> usize {
        // Created from a usize.
        usize::try_from(self.writer.shared.bound.unwrap_or(u64::MAX)).unwrap_or(usize::MAX)
    }

    /// Publishes `event`, first waiting until every live subscriber has fewer
    /// than `bound` unread events.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped while waiting, `event` is
    /// dropped with it and not published. Use [`reserve`](Self::reserve) to
    /// wait without handing over the event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(16);
    /// let mut sub = publisher.subscribe();
    /// let reader = tokio::spawn(async move {
    ///     let mut total = 0;
    ///     while let Some(n) = sub.recv().await {
    ///         total += n;
    ///     }
    ///     total
    /// });
    /// for n in 1..=1000u64 {
    ///     publisher.publish(n).await; // at most 16 ahead of the reader
    /// }
    /// publisher.close();
    /// assert_eq!(reader.await.unwrap(), 500_500);
    /// # }
    /// ```
    pub async fn publish(&mut self, event: T) {
        self.reserve().await.publish(event);
    }

    /// Waits until every live subscriber has fewer than `bound` unread
    /// events and returns a [`Permit`] to publish one event without waiting.
    ///
    /// Room only grows while the permit is held (subscribers read, leave, or
    /// join at the tail), so publishing through it cannot exceed the bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled `reserve` holds nothing and loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(1);
    /// let mut sub = publisher.subscribe();
    /// publisher.reserve().await.publish("first");
    /// // Full until `sub` reads: waiting can be raced against a timeout
    /// // without risking the event.
    /// let waited = tokio::time::timeout(
    ///     std::time::Duration::from_millis(10),
    ///     publisher.reserve(),
    /// )
    /// .await;
    /// assert!(waited.is_err());
    /// assert_eq!(sub.recv().await, Some("first"));
    /// publisher.reserve().await.publish("second");
    /// # }
    /// ```
    pub async fn reserve(&mut self) -> Permit<'_, T> {
        // Counted among the waiting publishers from the first `Pending` until
        // this returns or is dropped (no handle is touched when there is room).
        let mut waiting = None;
        poll_fn(|cx| {
            let polled = self.writer.poll_own_room(cx);
            if polled.is_pending() && waiting.is_none() {
                waiting = Some(GaugeGuard::new(
                    &self.writer.shared.metrics.publishers_waiting,
                ));
            }
            polled
        })
        .await;
        drop(waiting);
        Permit { publisher: self }
    }

    /// Publishes `event` if every live subscriber has fewer than `bound`
    /// unread events, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryPublishError::Full`] with the event if a subscriber has `bound`
    /// unread events. Never [`TryPublishError::Closed`]: an owned publisher
    /// closes by being consumed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(1);
    /// let sub = publisher.subscribe();
    /// assert!(publisher.try_publish(1).is_ok());
    /// assert_eq!(publisher.try_publish(2).unwrap_err().into_inner(), 2);
    /// drop(sub); // the slow subscriber leaves: nobody holds the publisher back
    /// assert!(publisher.try_publish(2).is_ok());
    /// ```
    pub fn try_publish(&mut self, event: T) -> Result<(), TryPublishError<T>> {
        if self.writer.has_room() {
            self.writer.push(event);
            Ok(())
        } else {
            self.writer.shared.metrics.reject_full();
            Err(TryPublishError::Full(event))
        }
    }

    /// A new subscriber at the tail: it receives every event published from
    /// now on. It starts with no unread events, so it never makes the
    /// publisher wait at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(1);
    /// publisher.try_publish("unseen").unwrap(); // no subscriber yet
    /// let mut sub = publisher.subscribe();
    /// publisher.try_publish("seen").unwrap();
    /// assert!(publisher.try_publish("full").is_err()); // `sub` has one unread
    /// assert_eq!(sub.try_recv(), Ok("seen"));
    /// ```
    pub fn subscribe(&self) -> Subscriber<T> {
        Subscriber::at_tail(&self.writer.shared)
    }

    /// A cloneable handle that creates subscribers at the tail, for tasks
    /// that have no access to the publisher. Each subscriber it makes counts
    /// toward the bound like any other; the handle itself holds nothing back.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(1);
    /// let handle = publisher.subscribe_handle();
    /// publisher.try_publish(1).unwrap(); // the handle holds nothing back
    /// publisher.try_publish(2).unwrap();
    /// let sub = handle.subscribe();
    /// assert_eq!(sub.len(), 0);
    /// ```
    pub fn subscribe_handle(&self) -> SubscribeHandle<T> {
        SubscribeHandle::new(&self.writer.shared)
    }

    /// Number of live subscribers: those the publisher may wait for.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let publisher = BoundedPublisher::<u32>::new(4);
    /// let sub = publisher.subscribe();
    /// assert_eq!(publisher.subscriber_count(), 1);
    /// drop(sub);
    /// assert_eq!(publisher.subscriber_count(), 0);
    /// ```
    pub fn subscriber_count(&self) -> usize {
        self.writer.shared.subscriber_count()
    }

    /// Events published so far, through this publisher and its permits.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(4);
    /// publisher.publish(1).await;
    /// publisher.reserve().await.publish(2);
    /// assert_eq!(publisher.published(), 2);
    /// # }
    /// ```
    pub fn published(&self) -> u64 {
        self.writer.published()
    }

    /// Closes the stream. Subscribers receive every event published so far,
    /// then the end of the stream; nothing waits for them any more. Same as
    /// dropping the publisher.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(4);
    /// let mut sub = publisher.subscribe();
    /// publisher.publish(1).await;
    /// publisher.close();
    /// assert_eq!(sub.recv().await, Some(1));
    /// assert_eq!(sub.recv().await, None);
    /// # }
    /// ```
    pub fn close(self) {
        drop(self);
    }

    /// Turns this publisher into a [`SharedPublisher`], which several tasks
    /// can clone and publish through; it keeps the bound, and its
    /// [`publish`](SharedPublisher::publish) waits for room as this one does.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{BoundedPublisher, TryPublishError};
    ///
    /// let publisher = BoundedPublisher::new(1).into_shared();
    /// let _sub = publisher.subscribe();
    /// publisher.try_publish(1).unwrap();
    /// assert!(matches!(publisher.try_publish(2), Err(TryPublishError::Full(2))));
    /// ```
    pub fn into_shared(self) -> SharedPublisher<T> {
        SharedPublisher::from_writer(self.writer)
    }
}

impl<T> fmt::Debug for BoundedPublisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedPublisher")
            .field("writer", &self.writer)
            .finish()
    }
}

/// Room for one event in a bounded stream, from [`BoundedPublisher::reserve`].
#[must_use = "a permit does nothing unless an event is published through it"]
pub struct Permit<'a, T> {
    publisher: &'a mut BoundedPublisher<T>,
}

impl<T> Permit<'_, T> {
    /// Publishes `event`. Never waits and never fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(2);
    /// let mut sub = publisher.subscribe();
    /// let permit = publisher.reserve().await;
    /// permit.publish("event");
    /// assert_eq!(sub.recv().await, Some("event"));
    /// # }
    /// ```
    pub fn publish(self, event: T) {
        self.publisher.writer.push(event);
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}
