//! A message handed out ([`Delivery`]), its acknowledgement ([`AckToken`])
//! and the batched acknowledgements of a source ([`Acker`]).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use flowgate::batch::{Batcher, BuildError as BatchBuildError, FlushError};
use flowgate::resilience::Retry;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{NatsError, SourceError};
use crate::shared::{self, Counters, Shared};

/// Headers a dead letter carries besides the original message's own.
pub mod headers {
    /// The stream the message was read from.
    pub const STREAM: &str = "Flowgate-Stream";
    /// The consumer that dead-lettered it.
    pub const CONSUMER: &str = "Flowgate-Consumer";
    /// The message's subject.
    pub const SUBJECT: &str = "Flowgate-Subject";
    /// The message's stream sequence.
    pub const SEQUENCE: &str = "Flowgate-Sequence";
    /// How many times it was delivered, the last time included.
    pub const DELIVERIES: &str = "Flowgate-Deliveries";
    /// Why, in words.
    pub const REASON: &str = "Flowgate-Reason";
}

/// Acknowledges the deliveries of one [`NatsSource`](crate::NatsSource):
/// each `+ACK` is published to the message's reply subject, and a batch of
/// them is confirmed with one flush (a round trip to the server), through a
/// [`Batcher`] — so a thousand acks cost one round trip, not a thousand.
/// An ack resolves when the flush that carried it was answered.
///
/// A failed publish or flush (the connection dropped: the client reconnects
/// by itself) is retried with backoff — 50 ms doubling to 2 s — for up to
/// [`ack_retry_budget`](crate::SourceBuilder::ack_retry_budget) (60 s by
/// default), each retry logged (warn); an ack sent twice is harmless. Past
/// the budget the acks of the batch fail, and their messages are delivered
/// again after the consumer's ack wait.
///
/// JetStream does not answer a plain ack, so an ack written just before the
/// connection broke can be lost although its flush succeeded on the new
/// connection: the message is then delivered again (at-least-once). Make the
/// write idempotent and the effect happens once.
///
/// Cloning is cheap; the clones share the batcher.
#[derive(Clone)]
pub struct Acker {
    inner: Arc<AckerInner>,
}

struct AckerInner {
    batcher: Batcher<Subject, (), SourceError>,
    shared: Arc<Shared>,
    retry: Retry<NatsError>,
}

impl Acker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        max_items: usize,
        max_delay: Duration,
        retry_budget: Duration,
    ) -> Result<Self, BatchBuildError> {
        let retry = shared::retry_policy(&shared.target, "ack", retry_budget);
        let flush_shared = Arc::clone(&shared);
        let flush_retry = retry.clone();
        let batcher = Batcher::builder()
            .max_items(max_items)
            .max_delay(max_delay)
            .flush_concurrency(2)
            .build(move |replies: Vec<Subject>| {
                let shared = Arc::clone(&flush_shared);
                let retry = flush_retry.clone();
                async move {
                    let refs: Vec<&Subject> = replies.iter().collect();
                    send(&shared, &retry, &refs, AckKind::Ack).await?;
                    Counters::add(&shared.counters.acked, replies.len() as u64);
                    Ok(())
                }
            })?;
        Ok(Acker {
            inner: Arc::new(AckerInner {
                batcher,
                shared,
                retry,
            }),
        })
    }

    /// Acknowledges every message of `tokens` at once: their `+ACK`s and one
    /// flush, not through the batcher (no per-message future). Resolves once
    /// the server answered the flush; failures are retried as the batched
    /// acks are. The tokens keep their messages from redelivery (in-progress
    /// signals) until then. An empty `tokens` sends nothing.
    ///
    /// # Errors
    ///
    /// - [`FlushError::Failed`] with [`SourceError::ForeignToken`] if a token
    ///   belongs to another source: nothing is sent and every token is
    ///   dropped (its message nak'd: delivered again).
    /// - [`FlushError::Failed`] with [`SourceError::Nats`] if the acks could
    ///   not be sent within the retry budget: the messages are delivered
    ///   again after the ack wait.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future drops the tokens (their
    /// messages are nak'd) while acks may be on their way, so each message
    /// is either acknowledged or delivered again. Nothing is lost.
    pub async fn ack_all(&self, tokens: Vec<AckToken>) -> Result<(), FlushError<SourceError>> {
        if let Some(foreign) = tokens
            .iter()
            .find(|token| !Arc::ptr_eq(&token.in_flight.shared, &self.inner.shared))
        {
            let theirs = &foreign.in_flight.shared.target;
            let ours = &self.inner.shared.target;
            return Err(FlushError::Failed(Arc::new(SourceError::ForeignToken {
                token_stream: theirs.stream.clone(),
                token_consumer: theirs.consumer.clone(),
                stream: ours.stream.clone(),
                consumer: ours.consumer.clone(),
            })));
        }
        if tokens.is_empty() {
            return Ok(());
        }
        let mut tokens = tokens;
        let refs: Vec<&Subject> = tokens.iter().map(|token| &token.in_flight.reply).collect();
        let result = send(&self.inner.shared, &self.inner.retry, &refs, AckKind::Ack).await;
        let shared = &self.inner.shared;
        if result.is_ok() {
            Counters::add(&shared.counters.acked, tokens.len() as u64);
        }
        // Sent (or given up: the server redelivers after ack_wait), so no
        // nak at drop: one critical section for all.
        shared.resolve_all(tokens.iter().map(|token| token.in_flight.key));
        for token in &mut tokens {
            token.in_flight.resolved = true;
        }
        result.map_err(|err| FlushError::Failed(Arc::new(err)))
    }

    /// Sends the acknowledgements submitted so far and stops accepting new
    /// ones; resolves when every submitted ack was flushed. Part of a
    /// graceful shutdown: close the acker after the last write.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: closing starts at the call; dropping the future only
    /// stops the wait.
    pub fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.batcher.close()
    }

    /// Messages acknowledged so far (their flush succeeded), by the batcher
    /// and by [`ack_all`](Self::ack_all).
    pub fn acked(&self) -> u64 {
        self.inner
            .shared
            .counters
            .acked
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn ack_one(&self, reply: Subject) -> Result<(), FlushError<SourceError>> {
        match self.inner.batcher.submit(reply).await {
            Ok(ack) => ack.await,
            Err(_) => Err(FlushError::Closed),
        }
    }
}

impl fmt::Debug for Acker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acker")
            .field("acked", &self.acked())
            .field("stats", &self.inner.batcher.stats())
            .finish_non_exhaustive()
    }
}

/// Publishes `kind` to each of `replies` and flushes, retrying within the
/// policy's budget.
async fn send(
    shared: &Shared,
    retry: &Retry<NatsError>,
    replies: &[&Subject],
    kind: AckKind,
) -> Result<(), SourceError> {
    let what = match kind {
        AckKind::Ack => "ack",
        AckKind::Nak(_) => "nak",
        AckKind::Term => "term",
        AckKind::Progress => "in-progress",
        AckKind::Next => "ack next",
    };
    let payload = shared::payload(kind);
    let mut first = true;
    let result = retry
        .run(|| {
            if !std::mem::take(&mut first) {
                Counters::add(&shared.counters.ack_retries, 1);
            }
            shared.send_acks(replies, &payload)
        })
        .await;
    result.map_err(|err| {
        let err = shared.target.error(what, err.into_inner());
        tracing::error!(
            error = %err, messages = replies.len(),
            "NATS {what} failed for good; the messages are delivered again after ack_wait"
        );
        err
    })
}

/// Marks a message as held until it is resolved — the server is told it is
/// in progress meanwhile — and holds its place in the `max_in_flight` bound.
/// Dropped unresolved, the message is nak'd.
pub(crate) struct InFlight {
    pub(crate) key: u64,
    pub(crate) reply: Subject,
    pub(crate) sequence: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _permit: OwnedSemaphorePermit,
    pub(crate) resolved: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.resolved {
            self.shared.release(self.key);
        }
    }
}

/// A message read from the stream by this consumer.
///
/// It stays unacknowledged in the consumer until [`ack`](Self::ack)ed,
/// [`nak`](Self::nak)ed or [`dead_letter`](Self::dead_letter)ed. Ack it only
/// once its effect is durable (for example after the batch holding its row
/// was flushed).
///
/// **Held.** While the delivery (or its [`AckToken`]) is alive, the source
/// sends the server an in-progress signal for it every
/// [`progress_interval`](crate::SourceBuilder::progress_interval), which
/// restarts its ack wait: no redelivery however long the work takes — retry
/// a failed write as long as needed. If the process dies or loses the
/// server for the ack wait, the message is delivered again (to this
/// consumer after a restart, or to another one of the same durable
/// consumer). Dropping a delivery without resolving it naks it: it is
/// delivered again at once, and that counts toward
/// [`max_deliveries`](crate::SourceBuilder::max_deliveries).
pub struct Delivery {
    message: Message,
    token: AckToken,
}

impl Delivery {
    pub(crate) fn new(message: Message, in_flight: InFlight, acker: Acker) -> Self {
        Delivery {
            message,
            token: AckToken { in_flight, acker },
        }
    }

    /// The subject the message was published to.
    pub fn subject(&self) -> &str {
        &self.message.subject
    }

    /// The message's body.
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// The message's headers, if it has any.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.message.headers.as_ref()
    }

    /// The message's sequence number in the stream: unique in the stream,
    /// the same on every delivery (a key for an idempotent write).
    pub fn stream_sequence(&self) -> u64 {
        self.message.stream_sequence
    }

    /// How many times the message was delivered, this time included: 1 the
    /// first time, more after a nak, a drop, a crash or an ack wait that ran
    /// out. In-progress signals never increase it.
    pub fn deliveries(&self) -> u64 {
        self.message.deliveries
    }

    /// Splits the delivery into its content and the token that acks it, so
    /// that the content can move into a sink while the token waits for the
    /// write.
    pub fn into_parts(self) -> (Message, AckToken) {
        (self.message, self.token)
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

    /// Hands the message back to be delivered again after `delay`; see
    /// [`AckToken::nak`].
    ///
    /// # Errors
    ///
    /// As [`AckToken::nak`].
    ///
    /// # Cancel safety
    ///
    /// As [`AckToken::nak`].
    pub async fn nak(self, delay: Duration) -> Result<(), SourceError> {
        self.token.nak(delay).await
    }

    /// Moves the message to the dead-letter subject with `reason` and
    /// terminates it; see [`AckToken::dead_letter`].
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
            .field("subject", &self.message.subject)
            .field("stream_sequence", &self.message.stream_sequence)
            .field("deliveries", &self.message.deliveries)
            .field("payload_len", &self.message.payload.len())
            .finish()
    }
}

/// The content of a [`Delivery`], from [`Delivery::into_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The subject the message was published to.
    pub subject: Subject,
    /// The body.
    pub payload: Bytes,
    /// The headers, if any.
    pub headers: Option<HeaderMap>,
    /// The message's sequence number in the stream.
    pub stream_sequence: u64,
    /// How many times the message was delivered, this time included.
    pub deliveries: u64,
}

/// Acknowledges one [`Delivery`]; from [`Delivery::into_parts`].
///
/// While the token is alive the message is kept from redelivery (see
/// [`Delivery`]). Dropping it without [`ack`](Self::ack),
/// [`nak`](Self::nak) or [`dead_letter`](Self::dead_letter) naks the
/// message: it is delivered again.
#[must_use = "a message is acknowledged only by AckToken::ack; dropping the token naks it"]
pub struct AckToken {
    in_flight: InFlight,
    acker: Acker,
}

impl AckToken {
    /// The stream sequence of the message this token acknowledges.
    pub fn stream_sequence(&self) -> u64 {
        self.in_flight.sequence
    }

    /// Acknowledges the message (batched, see [`Acker`]); resolves once the
    /// flush carrying the ack was answered. The message is kept from
    /// redelivery until then.
    ///
    /// # Errors
    ///
    /// [`FlushError::Failed`] with [`SourceError::Nats`] if the ack could
    /// not be sent within the retry budget, or [`FlushError::Closed`] if the
    /// acker was closed: either way the message is delivered again after
    /// the ack wait.
    ///
    /// # Cancel safety
    ///
    /// Once submitted (at the first poll, unless the acker is full),
    /// cancelling does not withdraw the ack: it is sent anyway.
    pub async fn ack(self) -> Result<(), FlushError<SourceError>> {
        let AckToken {
            mut in_flight,
            acker,
        } = self;
        let result = acker.ack_one(in_flight.reply.clone()).await;
        // Sent, or given up on (the server redelivers after ack_wait): no
        // nak at drop either way.
        in_flight.shared.resolve(in_flight.key);
        in_flight.resolved = true;
        result
    }

    /// Hands the message back: the server delivers it again after `delay`
    /// (to this consumer or another of the same durable consumer), counted
    /// as one more delivery. For work that cannot be done *now* by this
    /// consumer; a sink that is down is better answered by retrying while
    /// holding the delivery (it is kept from redelivery meanwhile), since
    /// each nak counts toward
    /// [`max_deliveries`](crate::SourceBuilder::max_deliveries).
    /// [`Backoff`](flowgate::resilience::Backoff) gives a delay per
    /// [`deliveries`](Delivery::deliveries) count.
    ///
    /// # Errors
    ///
    /// [`SourceError::Nats`] if the nak could not be sent within the retry
    /// budget: the message is then delivered again after the ack wait.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future naks the message at once
    /// instead of after `delay`.
    pub async fn nak(self, delay: Duration) -> Result<(), SourceError> {
        let AckToken {
            mut in_flight,
            acker,
        } = self;
        let shared = &acker.inner.shared;
        let kind = AckKind::Nak((!delay.is_zero()).then_some(delay));
        let result = send(shared, &acker.inner.retry, &[&in_flight.reply], kind).await;
        if result.is_ok() {
            Counters::add(&shared.counters.naked, 1);
        }
        shared.resolve(in_flight.key);
        in_flight.resolved = true;
        result
    }

    /// Moves the message to the dead-letter subject because its content was
    /// rejected (it cannot be parsed or mapped, or the sink refuses it for
    /// good), then terminates it (`+TERM`: never delivered again). The dead
    /// letter is published through JetStream and stored before the term is
    /// sent; it carries the original body and headers plus the
    /// [`headers`] `Flowgate-Stream`, `Flowgate-Consumer`,
    /// `Flowgate-Subject`, `Flowgate-Sequence`, `Flowgate-Deliveries` and
    /// `Flowgate-Reason` = `reason`. Transient failures are retried with
    /// backoff; the message is held until then.
    ///
    /// `message` must be this token's message (from the same
    /// [`Delivery::into_parts`]).
    ///
    /// Use it for bad *content* only: a sink that is down is no reason to
    /// dead-letter — retry the write.
    ///
    /// # Errors
    ///
    /// [`SourceError::WrongMessage`] if `message` is another message
    /// (nothing is sent); [`SourceError::Nats`] if the dead letter or the
    /// term failed for good. The message is then delivered again (a dead
    /// letter stored without its term may be stored twice).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future may leave the dead letter
    /// stored or not; the message is then nak'd and delivered again.
    pub async fn dead_letter(self, message: &Message, reason: &str) -> Result<(), SourceError> {
        let AckToken {
            mut in_flight,
            acker,
        } = self;
        if message.stream_sequence != in_flight.sequence {
            return Err(SourceError::WrongMessage {
                token: in_flight.sequence,
                message: message.stream_sequence,
            });
        }
        let shared = &acker.inner.shared;
        let result = dead_letter(
            shared,
            &acker.inner.retry,
            message,
            &in_flight.reply,
            reason,
        )
        .await;
        if result.is_ok() {
            Counters::add(&shared.counters.rejected, 1);
            shared.resolve(in_flight.key);
            in_flight.resolved = true;
        }
        result
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckToken")
            .field("stream_sequence", &self.in_flight.sequence)
            .finish()
    }
}

/// Publishes `message` to the dead-letter subject through JetStream (stored
/// when this returns), then terminates the original at `reply`.
pub(crate) async fn dead_letter(
    shared: &Shared,
    retry: &Retry<NatsError>,
    message: &Message,
    reply: &Subject,
    reason: &str,
) -> Result<(), SourceError> {
    let target = &shared.target;
    let mut headers = message.headers.clone().unwrap_or_default();
    // Header values are one line.
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    headers.insert(headers::STREAM, one_line(&target.stream).as_str());
    headers.insert(headers::CONSUMER, one_line(&target.consumer).as_str());
    headers.insert(headers::SUBJECT, message.subject.as_str());
    headers.insert(
        headers::SEQUENCE,
        message.stream_sequence.to_string().as_str(),
    );
    headers.insert(headers::DELIVERIES, message.deliveries.to_string().as_str());
    headers.insert(headers::REASON, one_line(reason).as_str());
    let jetstream = async_nats::jetstream::new(shared.client.clone());
    let stored = retry
        .run(|| {
            let jetstream = &jetstream;
            let headers = headers.clone();
            let payload = message.payload.clone();
            async move {
                jetstream
                    .publish_with_headers(target.dead_letter.clone(), headers, payload)
                    .await
                    .map_err(NatsError::from)?
                    .await
                    .map_err(NatsError::from)
            }
        })
        .await;
    if let Err(err) = stored {
        let err = target.error("dead letter", err.into_inner());
        tracing::error!(
            error = %err, sequence = message.stream_sequence, dead_letter = %target.dead_letter,
            "dead-lettering failed; the message is delivered again"
        );
        return Err(err);
    }
    send(shared, retry, &[reply], AckKind::Term).await?;
    tracing::warn!(
        sequence = message.stream_sequence, subject = %message.subject,
        deliveries = message.deliveries, reason, dead_letter = %target.dead_letter,
        "message dead-lettered"
    );
    Ok(())
}
