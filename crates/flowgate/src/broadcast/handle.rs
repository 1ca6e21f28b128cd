//! [`SubscribeHandle`]: subscribes at the tail without the publisher.

use std::fmt;

use super::shared::Shared;
use super::subscriber::Subscriber;
use crate::loom::sync::Arc;

/// Creates subscribers at the tail of an event stream, from any task; see the
/// [module documentation](super).
///
/// Get one from the publisher with `subscribe_handle`. It is cheap to clone,
/// reads no events and holds none back: unlike a
/// [`Subscriber`] kept around only to be cloned, it pins no memory (beyond
/// the block the publisher is writing). It does not keep the stream open.
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
/// publisher.publish("before"); // nobody subscribed yet
/// let client = tokio::spawn({
///     let mut sub = handle.subscribe();
///     async move { sub.recv().await }
/// });
/// publisher.publish("after");
/// assert_eq!(client.await.unwrap(), Some("after"));
/// # }
/// ```
pub struct SubscribeHandle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> SubscribeHandle<T> {
    pub(crate) fn new(shared: &Arc<Shared<T>>) -> Self {
        SubscribeHandle {
            shared: Arc::clone(shared),
        }
    }

    /// A new subscriber at the tail: it receives every event published from
    /// now on. If the stream is closed, the subscriber's stream is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::{Publisher, TryRecvError};
    ///
    /// let mut publisher = Publisher::new();
    /// let handle = publisher.subscribe_handle();
    /// let mut sub = handle.subscribe();
    /// publisher.publish(1);
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// drop(publisher);
    /// let mut late = handle.subscribe();
    /// assert_eq!(late.try_recv(), Err(TryRecvError::Closed));
    /// ```
    pub fn subscribe(&self) -> Subscriber<T> {
        Subscriber::at_tail(&self.shared)
    }

    /// Number of live subscribers.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::<u32>::new();
    /// let handle = publisher.subscribe_handle();
    /// assert_eq!(handle.subscriber_count(), 0);
    /// let _sub = handle.subscribe();
    /// assert_eq!(handle.subscriber_count(), 1);
    /// ```
    pub fn subscriber_count(&self) -> usize {
        self.shared.subscriber_count()
    }

    /// Whether the stream is closed: its publisher was closed or dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::broadcast::Publisher;
    ///
    /// let publisher = Publisher::<u32>::new();
    /// let handle = publisher.subscribe_handle();
    /// assert!(!handle.is_closed());
    /// drop(publisher);
    /// assert!(handle.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<T> Clone for SubscribeHandle<T> {
    fn clone(&self) -> Self {
        SubscribeHandle::new(&self.shared)
    }
}

impl<T> fmt::Debug for SubscribeHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscribeHandle")
            .field("shared", &self.shared)
            .finish()
    }
}
