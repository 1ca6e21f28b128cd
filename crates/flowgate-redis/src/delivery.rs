//! A message read from the stream, and the [`Acker`] that acknowledges it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flowgate::batch::{AckError, Batcher, BuildError as BatchBuildError};
use redis::RedisError;
use redis::aio::ConnectionManager;
use tokio::sync::OwnedSemaphorePermit;

/// Acknowledges messages to the consumer group: `XACK`, in batches.
///
/// Acknowledgements go through a [`flowgate::batch::Batcher`]: many tasks ack
/// one message each, one `XACK stream group id id …` is sent per batch, and
/// each ack resolves once *its* `XACK` was answered. Cloning is cheap; the
/// clones share the batcher.
#[derive(Clone)]
pub struct Acker {
    batcher: Batcher<String, (), RedisError>,
}

impl Acker {
    pub(crate) fn new(
        conn: ConnectionManager,
        stream: String,
        group: String,
        max_items: usize,
        max_delay: Duration,
    ) -> Result<Self, BatchBuildError> {
        let batcher = Batcher::builder()
            .max_items(max_items)
            .max_delay(max_delay)
            .flush_concurrency(2)
            .build(move |ids: Vec<String>| {
                let mut conn = conn.clone();
                let cmd = redis::cmd("XACK")
                    .arg(&stream)
                    .arg(&group)
                    .arg(&ids)
                    .to_owned();
                async move { cmd.query_async::<i64>(&mut conn).await.map(drop) }
            })?;
        Ok(Acker { batcher })
    }

    /// Acknowledges the message `id`; resolves once the `XACK` holding it was
    /// answered.
    ///
    /// # Errors
    ///
    /// [`AckError::Flush`] with the Redis error if the `XACK` failed (the
    /// message then stays pending and will be delivered again), or
    /// [`AckError::Closed`] if the acker was closed.
    ///
    /// # Cancel safety
    ///
    /// Once the id is submitted (at the first poll, unless the acker is
    /// full), cancelling does not withdraw it: the message is acknowledged
    /// anyway.
    pub async fn ack(&self, id: String) -> Result<(), AckError<RedisError>> {
        match self.batcher.submit(id).await {
            Ok(ack) => ack.await,
            Err(_) => Err(AckError::Closed),
        }
    }

    /// Sends the acknowledgements submitted so far and stops accepting new
    /// ones; resolves when every submitted `XACK` was answered. Part of a
    /// graceful shutdown: close the acker after the last write was flushed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: closing starts at the call; dropping the future only
    /// stops the wait.
    pub fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        self.batcher.close()
    }

    /// Messages acknowledged so far (their `XACK` succeeded).
    pub fn acked(&self) -> u64 {
        self.batcher.stats().flushed
    }
}

impl fmt::Debug for Acker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acker")
            .field("stats", &self.batcher.stats())
            .finish()
    }
}

/// Marks a message as being processed by this consumer until it is acked or
/// dropped, and holds its place in the `max_in_flight` bound.
pub(crate) struct InFlight {
    pub(crate) id: String,
    pub(crate) set: Arc<Mutex<HashSet<String>>>,
    pub(crate) _permit: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// A message read from the stream by this consumer.
///
/// It stays pending in the consumer group until [`ack`](Self::ack)ed. Ack it
/// only once its effect is durable (for example after the batch holding its
/// row was flushed): if the process dies first, the message is delivered
/// again, to this consumer after a restart or to another one after
/// `claim_idle`. Dropping a delivery without acking it leaves it pending in the
/// same way.
pub struct Delivery {
    id: String,
    fields: HashMap<String, Vec<u8>>,
    deliveries: u64,
    token: AckToken,
}

impl Delivery {
    pub(crate) fn new(
        id: String,
        fields: HashMap<String, Vec<u8>>,
        deliveries: u64,
        in_flight: InFlight,
        acker: Acker,
    ) -> Self {
        Delivery {
            id,
            fields,
            deliveries,
            token: AckToken { in_flight, acker },
        }
    }

    /// The stream entry id, such as `1718000000000-0`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The value of field `name`, if the entry has it.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.get(name).map(Vec::as_slice)
    }

    /// Every field of the entry.
    pub fn fields(&self) -> &HashMap<String, Vec<u8>> {
        &self.fields
    }

    /// How many times the message was delivered, this time included: 1 the
    /// first time, more after a restart or a reclaim.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// Splits the delivery into its content and the token that acks it, so
    /// that the content can move into a sink while the token waits for the
    /// write.
    pub fn into_parts(self) -> (Message, AckToken) {
        (
            Message {
                id: self.id,
                fields: self.fields,
                deliveries: self.deliveries,
            },
            self.token,
        )
    }

    /// Acknowledges the message; see [`AckToken::ack`].
    ///
    /// # Errors
    ///
    /// As [`AckToken::ack`].
    ///
    /// # Cancel safety
    ///
    /// As [`AckToken::ack`].
    pub async fn ack(self) -> Result<(), AckError<RedisError>> {
        self.token.ack().await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("deliveries", &self.deliveries)
            .finish()
    }
}

/// The content of a [`Delivery`], from [`Delivery::into_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The stream entry id.
    pub id: String,
    /// The entry's fields.
    pub fields: HashMap<String, Vec<u8>>,
    /// How many times the message was delivered, this time included.
    pub deliveries: u64,
}

/// Acknowledges one [`Delivery`]; from [`Delivery::into_parts`].
///
/// Dropping it without [`ack`](Self::ack) leaves the message pending.
#[must_use = "a message is acknowledged only by AckToken::ack; dropping the token leaves it pending"]
pub struct AckToken {
    in_flight: InFlight,
    acker: Acker,
}

impl AckToken {
    /// The id of the message this token acknowledges.
    pub fn id(&self) -> &str {
        &self.in_flight.id
    }

    /// Acknowledges the message (batched `XACK`); resolves once Redis answered.
    ///
    /// # Errors
    ///
    /// As [`Acker::ack`]: the message then stays pending and is delivered
    /// again later.
    ///
    /// # Cancel safety
    ///
    /// As [`Acker::ack`]: once submitted, the acknowledgement is sent even if
    /// the future is dropped.
    pub async fn ack(self) -> Result<(), AckError<RedisError>> {
        let AckToken { in_flight, acker } = self;
        let result = acker.ack(in_flight.id.clone()).await;
        // Still "in flight" until the XACK is answered, so that a reclaim in
        // the meantime does not hand the message out again.
        drop(in_flight);
        result
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckToken")
            .field("id", &self.in_flight.id)
            .finish()
    }
}
