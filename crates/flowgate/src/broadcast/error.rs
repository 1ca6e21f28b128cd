//! Errors of the event stream.

use std::error::Error;
use std::fmt;

/// Returned by [`SharedPublisher::publish`](super::SharedPublisher::publish)
/// when the stream is closed; the event is handed back. This is permanent.
#[derive(Clone, PartialEq, Eq)]
pub struct PublishError<T>(pub T);

impl<T> PublishError<T> {
    /// Returns the event that could not be published.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::new().into_shared();
    /// publisher.close();
    /// let err = publisher.publish("lost?").await.unwrap_err();
    /// assert_eq!(err.into_inner(), "lost?");
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublishError").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("event stream is closed")
    }
}

impl<T> Error for PublishError<T> {}

/// Returned by `try_publish` on a [`BoundedPublisher`](super::BoundedPublisher)
/// or a [`SharedPublisher`](super::SharedPublisher): the event is handed back,
/// with the reason it was not published.
#[derive(Clone, PartialEq, Eq)]
pub enum TryPublishError<T> {
    /// The stream is bounded and its slowest subscriber is `bound` events
    /// behind. This is transient: room is made as that subscriber reads or is
    /// dropped. Never returned for an unbounded stream.
    Full(T),
    /// The stream is closed. This is permanent. Only a
    /// [`SharedPublisher`](super::SharedPublisher) can see it: an owned
    /// publisher closes by being consumed.
    Closed(T),
}

impl<T> TryPublishError<T> {
    /// Returns the event that could not be published.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(1);
    /// let _sub = publisher.subscribe();
    /// publisher.try_publish(1).unwrap();
    /// assert_eq!(publisher.try_publish(2).unwrap_err().into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(event) | Self::Closed(event) => event,
        }
    }

    /// Whether the stream was full (transient) rather than closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::BoundedPublisher;
    ///
    /// let mut publisher = BoundedPublisher::new(1);
    /// let _sub = publisher.subscribe();
    /// publisher.try_publish(1).unwrap();
    /// let err = publisher.try_publish(2).unwrap_err();
    /// assert!(err.is_full() && !err.is_closed());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the stream was closed (permanent).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::new().into_shared();
    /// publisher.close();
    /// let err = publisher.try_publish(1).unwrap_err();
    /// assert!(err.is_closed() && !err.is_full());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for TryPublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryPublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("event stream is full"),
            Self::Closed(_) => f.write_str("event stream is closed"),
        }
    }
}

impl<T> Error for TryPublishError<T> {}

impl<T> From<PublishError<T>> for TryPublishError<T> {
    fn from(err: PublishError<T>) -> Self {
        Self::Closed(err.0)
    }
}

/// Returned by [`Subscriber::try_recv`](super::Subscriber::try_recv) when no
/// event can be received right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Every event published so far was received. This is transient: wait
    /// with [`recv`](super::Subscriber::recv) for the next one.
    Empty,
    /// The stream is closed and every event was received. This is permanent.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no event is ready"),
            Self::Closed => f.write_str("event stream is closed"),
        }
    }
}

impl Error for TryRecvError {}
