//! A message read from the stream, and the [`Acker`] that acknowledges it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flowgate::batch::{Batcher, BuildError as BatchBuildError, FlushError};
use flowgate::resilience::Retry;
use redis::RedisError;
use redis::aio::ConnectionManager;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::SourceError;
use crate::fields::Fields;
use crate::shared::{self, Key, Shared};

/// At most this many ids go into one `XACK` of [`Acker::ack_all`].
const ACK_ALL_CHUNK: usize = 10_000;

/// Acknowledges messages to the consumer group: `XACK`, in batches, and
/// moves rejected messages to the dead-letter stream.
///
/// Acknowledgements go through a [`flowgate::batch::Batcher`]: many tasks ack
/// one message each, one `XACK stream group id id …` is sent per batch, and
/// each ack resolves once *its* `XACK` was answered.
///
/// A batch whose `XACK` fails with a transient error (connection refused or
/// dropped, a timeout, `LOADING` while a restarted server reads its
/// append-only file) is retried with backoff — 50 ms doubling to 2 s — for up
/// to [`ack_retry_budget`](crate::SourceBuilder::ack_retry_budget) (60 s by
/// default), each retry logged (warn). So a Redis restart during a run does
/// not leave written messages unacknowledged. Past the budget, or on a
/// permanent error, the acks of the batch fail; their messages stay pending.
///
/// A caller that holds a whole batch of tokens (for example the tokens of
/// the rows one sink flush made durable) acks them with
/// [`ack_all`](Self::ack_all) instead: one `XACK` for all, no batcher.
///
/// Cloning is cheap; the clones share the batcher.
#[derive(Clone)]
pub struct Acker {
    // One reference count to bump per delivery, whatever the acker holds.
    inner: Arc<AckerInner>,
}

struct AckerInner {
    batcher: Batcher<String, (), SourceError>,
    shared: Arc<Shared>,
    conn: ConnectionManager,
    retry: Retry<RedisError>,
    ack_retry: Retry<RedisError>,
    acked_all: AtomicU64,
}

impl Acker {
    pub(crate) fn new(
        conn: ConnectionManager,
        shared: Arc<Shared>,
        max_items: usize,
        max_delay: Duration,
        retry_budget: Duration,
    ) -> Result<Self, BatchBuildError> {
        let ack_retry = shared::retry_policy(&shared.target, "XACK", retry_budget);
        let ack_all_retry = ack_retry.clone();
        let flush_conn = conn.clone();
        let flush_shared = Arc::clone(&shared);
        let batcher = Batcher::builder()
            .max_items(max_items)
            .max_delay(max_delay)
            .flush_concurrency(2)
            .build(move |ids: Vec<String>| {
                let conn = flush_conn.clone();
                let shared = Arc::clone(&flush_shared);
                let retry = ack_retry.clone();
                async move {
                    let target = &shared.target;
                    let cmd = redis::cmd("XACK")
                        .arg(&target.stream)
                        .arg(&target.group)
                        .arg(&ids)
                        .to_owned();
                    let mut first = true;
                    let result = retry
                        .run(|| {
                            let mut conn = conn.clone();
                            let cmd = &cmd;
                            if !std::mem::take(&mut first) {
                                shared.stats().ack_retries += 1;
                            }
                            async move { cmd.query_async::<i64>(&mut conn).await }
                        })
                        .await;
                    // Answered (or given up): a claim in progress must not
                    // hand these out again.
                    shared.acked(&ids);
                    match result {
                        Ok(_) => Ok(()),
                        Err(err) => {
                            let err = target.error("XACK", err.into_inner());
                            tracing::error!(
                                error = %err, messages = ids.len(),
                                "XACK failed for good; the messages stay pending"
                            );
                            Err(err)
                        }
                    }
                }
            })?;
        let retry = shared::retry_policy(&shared.target, "dead letter", retry_budget);
        Ok(Acker {
            inner: Arc::new(AckerInner {
                batcher,
                shared,
                conn,
                retry,
                ack_retry: ack_all_retry,
                acked_all: AtomicU64::new(0),
            }),
        })
    }

    /// Acknowledges the message `id`; resolves once the `XACK` holding it was
    /// answered (retrying transient errors within the retry budget).
    ///
    /// # Errors
    ///
    /// [`FlushError::Failed`] with a [`SourceError::Redis`] if the `XACK`
    /// failed for good (the message then stays pending and will be delivered
    /// again), or [`FlushError::Closed`] if the acker was closed.
    ///
    /// # Cancel safety
    ///
    /// Once the id is submitted (at the first poll, unless the acker is
    /// full), cancelling does not withdraw it: the message is acknowledged
    /// anyway.
    pub async fn ack(&self, id: String) -> Result<(), FlushError<SourceError>> {
        match self.inner.batcher.submit(id).await {
            Ok(ack) => ack.await,
            Err(_) => Err(FlushError::Closed),
        }
    }

    /// Acknowledges every message of `tokens` with one `XACK stream group
    /// id…` (several if there are more than 10,000), sent at once — not
    /// through the batcher: no per-message future or id copy. Resolves once
    /// Redis answered; transient errors (a dropped or refused connection, a
    /// timeout, `LOADING`) are retried with backoff within the
    /// [`ack_retry_budget`](crate::SourceBuilder::ack_retry_budget), like
    /// the batched acks. The leases of all the messages are kept until
    /// Redis answered, then released together (one critical section).
    ///
    /// An empty `tokens` sends nothing.
    ///
    /// # Errors
    ///
    /// - [`FlushError::Failed`] with [`SourceError::ForeignToken`] if a token
    ///   belongs to another source (another [`Acker`] that is not a clone of
    ///   this one): nothing is sent, and every token is dropped, so the
    ///   messages stay pending and are delivered again after `claim_idle`.
    /// - [`FlushError::Failed`] with [`SourceError::Redis`] if an `XACK` failed
    ///   for good: the messages of that chunk and of the chunks after it
    ///   stay pending and are delivered again later (the chunks before it
    ///   were acknowledged).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future drops the tokens (their leases
    /// end) while an `XACK` may be on its way, so the messages may or may
    /// not be acknowledged; those that are not stay pending and are
    /// delivered again after `claim_idle`. Nothing is lost either way.
    pub async fn ack_all(&self, tokens: Vec<AckToken>) -> Result<(), FlushError<SourceError>> {
        if let Some(foreign) = tokens
            .iter()
            .find(|token| !Arc::ptr_eq(&token.in_flight.shared, &self.inner.shared))
        {
            let other = &foreign.in_flight.shared.target;
            return Err(FlushError::Failed(Arc::new(SourceError::ForeignToken {
                id: foreign.id().to_owned(),
                token_stream: other.stream.clone(),
                token_group: other.group.clone(),
                stream: self.inner.shared.target.stream.clone(),
                group: self.inner.shared.target.group.clone(),
            })));
        }
        let mut tokens = tokens;
        let target = &self.inner.shared.target;
        let mut result = Ok(());
        for chunk in tokens.chunks(ACK_ALL_CHUNK) {
            let mut cmd = redis::cmd("XACK");
            cmd.arg(&target.stream).arg(&target.group);
            for token in chunk {
                cmd.arg(token.in_flight.key.as_str());
            }
            let mut first = true;
            let answer = self
                .inner
                .ack_retry
                .run(|| {
                    let mut conn = self.inner.conn.clone();
                    let cmd = &cmd;
                    if !std::mem::take(&mut first) {
                        self.inner.shared.stats().ack_retries += 1;
                    }
                    async move { cmd.query_async::<i64>(&mut conn).await }
                })
                .await;
            match answer {
                Ok(_) => {
                    self.inner
                        .acked_all
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Err(err) => {
                    let err = target.error("XACK", err.into_inner());
                    tracing::error!(
                        error = %err, messages = chunk.len(),
                        "XACK failed for good; the messages stay pending"
                    );
                    result = Err(FlushError::Failed(Arc::new(err)));
                    break;
                }
            }
        }
        // Answered (or given up, or never sent: released all the same): one
        // critical section for all, and a claim in progress will not hand
        // them out again.
        self.inner
            .shared
            .release_all(tokens.iter().map(|token| &token.in_flight.key));
        for token in &mut tokens {
            token.in_flight.released = true;
        }
        drop(tokens);
        result
    }

    /// Moves `message` to the dead-letter stream because its content was
    /// rejected: one `XADD` to the dead-letter stream (the message's fields,
    /// by name order, then `flowgate-original-id`, `flowgate-deliveries` and
    /// `flowgate-reason` = `reason`) and the `XACK` of the original, in one
    /// atomic script; the `XACK` runs only if the `XADD` succeeded. Transient
    /// errors are retried with backoff within the retry budget.
    ///
    /// If the message is no longer pending (another consumer took it over
    /// and acked it), nothing is written and this returns `Ok`.
    ///
    /// Prefer [`AckToken::dead_letter`], which keeps the delivery's lease
    /// until this is answered.
    ///
    /// # Errors
    ///
    /// [`SourceError::Redis`] if Redis failed for good (the message then
    /// stays pending and will be delivered again).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future may leave the dead-letter entry
    /// written or not; if written, the original was acked with it.
    pub async fn dead_letter(&self, message: &Message, reason: &str) -> Result<(), SourceError> {
        let mut fields: Vec<(&str, &[u8])> = message.fields.iter().collect();
        fields.sort();
        let fields: Vec<(Vec<u8>, Vec<u8>)> = fields
            .into_iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.to_vec()))
            .collect();
        let target = &self.inner.shared.target;
        let letter = shared::DeadLetter {
            id: &message.id,
            fields: &fields,
            deliveries: message.deliveries,
            reason,
            if_pending: true,
        };
        let result =
            shared::dead_letter(&self.inner.conn, &self.inner.retry, target, &letter).await;
        // The XACK ran (or may have): a claim in progress must not hand the
        // message out again.
        self.inner.shared.acked(std::slice::from_ref(&message.id));
        match &result {
            Ok(true) => {
                self.inner.shared.stats().rejected += 1;
                tracing::warn!(
                    id = %message.id, deliveries = message.deliveries, reason,
                    dead_letter = %target.dead_letter, "message rejected: dead-lettered"
                );
            }
            Ok(false) => tracing::info!(
                id = %message.id,
                "message to dead-letter was no longer pending (acked elsewhere); nothing written"
            ),
            Err(err) => tracing::error!(
                error = %err, id = %message.id,
                "dead-lettering failed; the message stays pending"
            ),
        }
        result.map(drop)
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
        self.inner.batcher.close()
    }

    /// Messages acknowledged so far (their `XACK` succeeded), by
    /// [`ack`](Self::ack) and [`ack_all`](Self::ack_all).
    pub fn acked(&self) -> u64 {
        self.inner.batcher.stats().flushed + self.inner.acked_all.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Acker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acker")
            .field("stats", &self.inner.batcher.stats())
            .finish_non_exhaustive()
    }
}

/// Marks a message as held by this consumer until it is acked or dropped —
/// its lease is renewed meanwhile — and holds its place in the
/// `max_in_flight` bound.
pub(crate) struct InFlight {
    pub(crate) key: Key,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _permit: OwnedSemaphorePermit,
    /// Already released (by [`Acker::ack_all`], in bulk).
    pub(crate) released: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.released {
            self.shared.release(&self.key);
        }
    }
}

/// A message read from the stream by this consumer.
///
/// It stays pending in the consumer group until [`ack`](Self::ack)ed (or
/// [`dead_letter`](Self::dead_letter)ed). Ack it only once its effect is
/// durable (for example after the batch holding its row was flushed).
///
/// **Lease.** While the delivery (or its [`AckToken`]) is alive, the source
/// renews its claim on the message every
/// [`lease_renewal`](crate::SourceBuilder::lease_renewal), so no other
/// consumer takes it over however long it takes — retry a failed write as
/// long as needed. If the process dies, hangs or cannot reach Redis for
/// [`claim_idle`](crate::SourceBuilder::claim_idle), the lease runs out and
/// another consumer (or this one after a restart) gets the message again.
/// Dropping a delivery without acking it ends its lease: the message is
/// delivered again after `claim_idle`, and that delivery counts toward
/// [`max_deliveries`](crate::SourceBuilder::max_deliveries).
pub struct Delivery {
    id: String,
    fields: Fields,
    deliveries: u64,
    token: AckToken,
}

impl Delivery {
    pub(crate) fn new(
        id: String,
        fields: Fields,
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
        self.fields.get(name)
    }

    /// Every field of the entry. Field names are UTF-8 (an entry with a
    /// field name that is not is dead-lettered by the source, never
    /// delivered); values are any bytes. If a name repeats in the entry,
    /// [`Fields::get`] returns its last value.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// How many times the message was delivered, this time included: 1 the
    /// first time, more after its consumer died, hung or dropped it (a
    /// restart or a takeover). This consumer's own lease renewals and claims
    /// never increase it.
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
    pub async fn ack(self) -> Result<(), FlushError<SourceError>> {
        self.token.ack().await
    }

    /// Moves the message to the dead-letter stream with `reason`, and acks
    /// it; see [`AckToken::dead_letter`].
    ///
    /// # Errors
    ///
    /// As [`AckToken::dead_letter`].
    ///
    /// # Cancel safety
    ///
    /// As [`AckToken::dead_letter`].
    pub async fn dead_letter(self, reason: &str) -> Result<(), SourceError> {
        let (message, token) = self.into_parts();
        token.dead_letter(&message, reason).await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field(
                "fields",
                &self.fields.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("deliveries", &self.deliveries)
            .finish()
    }
}

/// The content of a [`Delivery`], from [`Delivery::into_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The stream entry id.
    pub id: String,
    /// The entry's fields (see [`Fields`] on the buffer they share).
    pub fields: Fields,
    /// How many times the message was delivered, this time included.
    pub deliveries: u64,
}

/// Acknowledges one [`Delivery`]; from [`Delivery::into_parts`].
///
/// While the token is alive the message's lease is renewed (see
/// [`Delivery`]). Dropping it without [`ack`](Self::ack) or
/// [`dead_letter`](Self::dead_letter) leaves the message pending; it is
/// delivered again after `claim_idle`.
#[must_use = "a message is acknowledged only by AckToken::ack; dropping the token leaves it pending"]
pub struct AckToken {
    in_flight: InFlight,
    acker: Acker,
}

impl AckToken {
    /// The id of the message this token acknowledges.
    pub fn id(&self) -> &str {
        self.in_flight.key.as_str()
    }

    /// Acknowledges the message (batched `XACK`); resolves once Redis
    /// answered. The lease is kept until then.
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
    pub async fn ack(self) -> Result<(), FlushError<SourceError>> {
        let AckToken { in_flight, acker } = self;
        let result = acker.ack(in_flight.key.as_str().to_owned()).await;
        // Still held until the XACK is answered, so that a claim in the
        // meantime does not hand the message out again.
        drop(in_flight);
        result
    }

    /// Moves the message to the dead-letter stream because its content was
    /// rejected (it cannot be parsed or mapped, or the sink refuses it for
    /// good), and acks it: one `XADD` to the dead-letter stream with the
    /// message's fields plus `flowgate-original-id`, `flowgate-deliveries`
    /// and `flowgate-reason` = `reason`, and the `XACK`, atomically (see
    /// [`Acker::dead_letter`]). Transient Redis errors are retried with
    /// backoff; the lease is kept until the dead letter is answered.
    ///
    /// `message` must be this token's message (from the same
    /// [`Delivery::into_parts`]).
    ///
    /// Use it for bad *content* only: a sink that is down is no reason to
    /// dead-letter, retry the write instead (the lease keeps the message).
    ///
    /// # Errors
    ///
    /// [`SourceError::WrongMessage`] if `message` is another message (nothing
    /// is written); [`SourceError::Redis`] if Redis failed for good. Either
    /// way the message stays pending and is delivered again later.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future may leave the dead-letter entry
    /// written or not; if written, the original was acked with it.
    pub async fn dead_letter(self, message: &Message, reason: &str) -> Result<(), SourceError> {
        let AckToken { in_flight, acker } = self;
        if message.id != in_flight.key.as_str() {
            return Err(SourceError::WrongMessage {
                token: in_flight.key.as_str().to_owned(),
                message: message.id.clone(),
            });
        }
        let result = acker.dead_letter(message, reason).await;
        drop(in_flight);
        result
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckToken")
            .field("id", &self.in_flight.key)
            .finish()
    }
}
