//! What the source hands out — [`Delivery`]: a [`Message`] and its
//! [`AckToken`] — and the [`Acker`] that acknowledges a written batch at
//! once and commits at the end.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Revoked, SourceError};
use crate::shared::{Counters, Held, Resolved, Shared};

/// The names of the headers a dead letter carries besides the original's.
pub mod headers {
    /// The topic the message was read from.
    pub const TOPIC: &str = "flowgate-topic";
    /// Its partition, in decimal.
    pub const PARTITION: &str = "flowgate-partition";
    /// Its offset, in decimal.
    pub const OFFSET: &str = "flowgate-offset";
    /// The consumer group that dead-lettered it.
    pub const GROUP: &str = "flowgate-group";
    /// Why: the reason given to [`dead_letter`](crate::Delivery::dead_letter).
    pub const REASON: &str = "flowgate-reason";
}

/// A Kafka record as read: where it came from and what it holds. Cloning is
/// cheap (reference counts).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset in the partition: with the topic and partition, the
    /// record's identity — the same on every delivery.
    pub offset: i64,
    /// The record's key, if it has one.
    pub key: Option<Bytes>,
    /// The record's value (empty for a null value).
    pub payload: Bytes,
    /// The record's headers, in order (a header may have no value).
    pub headers: Arc<[(String, Option<Bytes>)]>,
    /// The record's timestamp, in milliseconds since the Unix epoch, if it
    /// has one.
    pub timestamp_ms: Option<i64>,
}

/// The dead-letter producer, shared by the tokens.
pub(crate) struct DeadLetters {
    pub(crate) producer: FutureProducer,
    pub(crate) topic: String,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// The right and duty to resolve one message: [`ack`](Self::ack) it once
/// its effect is durable, [`nak`](Self::nak) it to have it handed out again,
/// or [`dead_letter`](Self::dead_letter) it. Dropping it unresolved naks it
/// at once: Kafka cannot skip a message, so a message nobody acknowledged is
/// handed out again rather than left to hold the partition's commit point
/// back.
pub struct AckToken {
    held: Option<Held>,
    shared: Arc<Shared>,
    dead_letters: Arc<DeadLetters>,
}

impl AckToken {
    pub(crate) fn new(held: Held, shared: Arc<Shared>, dead_letters: Arc<DeadLetters>) -> Self {
        AckToken {
            held: Some(held),
            shared,
            dead_letters,
        }
    }

    fn held(&self) -> &Held {
        self.held
            .as_ref()
            .expect("an unresolved token holds its message")
    }

    /// The topic of the message.
    pub fn topic(&self) -> &str {
        &self.held().message.topic
    }

    /// The partition of the message.
    pub fn partition(&self) -> i32 {
        self.held().message.partition
    }

    /// The offset of the message.
    pub fn offset(&self) -> i64 {
        self.held().message.offset
    }

    /// Done: the message's effect is durable. Its offset is committed with
    /// the partition's next commit (every `commit_interval`, at a
    /// revocation and at [`Acker::close`]) once every message before it in
    /// the partition is resolved too. Not async: an acknowledgement is a
    /// mark; the commit is the reader's.
    ///
    /// # Errors
    ///
    /// [`Revoked`] if the partition was revoked (a rebalance) or the source
    /// closed before the acknowledgement: the partition's next owner reads
    /// the message again.
    pub fn ack(mut self) -> Result<(), Revoked> {
        let held = self
            .held
            .take()
            .expect("an unresolved token holds its message");
        let outcome = {
            let mut state = self.shared.lock();
            self.shared.resolve_done(&mut state, &held)
        };
        self.shared.notify();
        match outcome {
            Resolved::Done => {
                Counters::add(&self.shared.counters.acked, 1);
                Ok(())
            }
            Resolved::Stale => {
                Counters::add(&self.shared.counters.revoked_acks, 1);
                Err(self.shared.revoked(&held))
            }
        }
    }

    /// Not now: the message is handed out again by the stream after `delay`
    /// (before newer messages of its ordering key, which wait for it). Its
    /// offset stays uncommitted meanwhile. For a sink that failed — not for
    /// bad content, which [`dead_letter`](Self::dead_letter) is for.
    ///
    /// # Errors
    ///
    /// [`Revoked`] if the partition was revoked meanwhile (its new owner
    /// reads the message).
    pub fn nak(mut self, delay: Duration) -> Result<(), Revoked> {
        let held = self
            .held
            .take()
            .expect("an unresolved token holds its message");
        self.again(held, delay)
    }

    fn again(&self, held: Held, delay: Duration) -> Result<(), Revoked> {
        let due = (!delay.is_zero()).then(|| Instant::now() + delay);
        let outcome = {
            let mut state = self.shared.lock();
            // A message keeps its place: the clone for the error is only
            // taken when it is stale.
            let stale = self.shared.revoked(&held);
            match self.shared.resolve_again(&mut state, held, due) {
                Resolved::Done => Ok(()),
                Resolved::Stale => Err(stale),
            }
        };
        self.shared.notify();
        match &outcome {
            Ok(()) => Counters::add(&self.shared.counters.naked, 1),
            Err(_) => Counters::add(&self.shared.counters.revoked_acks, 1),
        }
        outcome
    }

    /// Bad content: produces `message` (the original, as handed out with
    /// this token) to the dead-letter topic, with its key, value and headers
    /// and the [`headers`] naming where it came from and why, waits for the
    /// brokers to confirm the write, then resolves the message as done.
    ///
    /// Cancel-safe in effect: dropping the future before it resolves naks
    /// the message (it is handed out again; its dead letter may have been
    /// written — dead letters are at-least-once too).
    ///
    /// # Errors
    ///
    /// [`SourceError::DeadLetter`] if the brokers did not confirm within
    /// `dead_letter_timeout`: the message is nak'd for a second and handed
    /// out again. A revocation after the write is not an error (the new
    /// owner writes a second dead letter).
    pub async fn dead_letter(mut self, message: &Message, reason: &str) -> Result<(), SourceError> {
        let partition = message.partition.to_string();
        let offset = message.offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len() + 5);
        for (key, value) in message.headers.iter() {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        headers = headers
            .insert(Header {
                key: headers::TOPIC,
                value: Some(message.topic.as_bytes()),
            })
            .insert(Header {
                key: headers::PARTITION,
                value: Some(partition.as_bytes()),
            })
            .insert(Header {
                key: headers::OFFSET,
                value: Some(offset.as_bytes()),
            })
            .insert(Header {
                key: headers::GROUP,
                value: Some(self.shared.group.as_bytes()),
            })
            .insert(Header {
                key: headers::REASON,
                value: Some(reason.as_bytes()),
            });
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.dead_letters.topic)
            .payload(&message.payload[..])
            .headers(headers);
        if let Some(key) = &message.key {
            record = record.key(&key[..]);
        }
        if let Some(ms) = message.timestamp_ms {
            record = record.timestamp(ms);
        }
        let sent = self
            .dead_letters
            .producer
            .send(record, self.dead_letters.timeout)
            .await;
        let held = self
            .held
            .take()
            .expect("an unresolved token holds its message");
        match sent {
            Ok(_) => {
                tracing::warn!(
                    topic = %message.topic,
                    partition = message.partition,
                    offset = message.offset,
                    dead_letter_topic = %self.dead_letters.topic,
                    reason,
                    "dead-lettered a message"
                );
                let outcome = {
                    let mut state = self.shared.lock();
                    self.shared.resolve_done(&mut state, &held)
                };
                self.shared.notify();
                match outcome {
                    Resolved::Done => Counters::add(&self.shared.counters.dead_lettered, 1),
                    Resolved::Stale => Counters::add(&self.shared.counters.revoked_acks, 1),
                }
                Ok(())
            }
            Err((err, _)) => {
                let error = SourceError::DeadLetter {
                    topic: self.dead_letters.topic.clone(),
                    from_topic: message.topic.to_string(),
                    partition: message.partition,
                    offset: message.offset,
                    source: Arc::new(err),
                };
                let _ = self.again(held, Duration::from_secs(1));
                Err(error)
            }
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let _ = self.again(held, Duration::ZERO);
        }
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.held {
            Some(held) => f
                .debug_struct("AckToken")
                .field("topic", &held.message.topic)
                .field("partition", &held.message.partition)
                .field("offset", &held.message.offset)
                .finish(),
            None => f.write_str("AckToken(resolved)"),
        }
    }
}

/// One message handed out by a [`KafkaSource`](crate::KafkaSource): read
/// it, then resolve it with [`ack`](Self::ack), [`nak`](Self::nak) or
/// [`dead_letter`](Self::dead_letter) — or split it with
/// [`into_parts`](Self::into_parts) to keep the token apart from the data.
/// Dropping it unresolved naks it at once.
pub struct Delivery {
    token: AckToken,
}

impl Delivery {
    pub(crate) fn new(token: AckToken) -> Self {
        Delivery { token }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.token.held().message
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.token.topic()
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.token.partition()
    }

    /// The offset.
    pub fn offset(&self) -> i64 {
        self.token.offset()
    }

    /// The record's key.
    pub fn key(&self) -> Option<&[u8]> {
        self.message().key.as_deref()
    }

    /// The record's value.
    pub fn payload(&self) -> &[u8] {
        &self.message().payload
    }

    /// The message (a cheap clone) and its token, apart.
    pub fn into_parts(self) -> (Message, AckToken) {
        (self.token.held().message.clone(), self.token)
    }

    /// [`AckToken::ack`].
    ///
    /// # Errors
    ///
    /// [`Revoked`]: see [`AckToken::ack`].
    pub fn ack(self) -> Result<(), Revoked> {
        self.token.ack()
    }

    /// [`AckToken::nak`].
    ///
    /// # Errors
    ///
    /// [`Revoked`]: see [`AckToken::nak`].
    pub fn nak(self, delay: Duration) -> Result<(), Revoked> {
        self.token.nak(delay)
    }

    /// [`AckToken::dead_letter`] of this message.
    ///
    /// # Errors
    ///
    /// See [`AckToken::dead_letter`].
    pub async fn dead_letter(self, reason: &str) -> Result<(), SourceError> {
        let (message, token) = self.into_parts();
        token.dead_letter(&message, reason).await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message();
        f.debug_struct("Delivery")
            .field("topic", &message.topic)
            .field("partition", &message.partition)
            .field("offset", &message.offset)
            .field("key", &message.key)
            .field("payload_len", &message.payload.len())
            .finish()
    }
}

/// What [`Acker::ack_all`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AckAll {
    /// Acknowledged: committed with their partitions' next commits.
    pub acked: usize,
    /// Their partitions were revoked first: their new owners read them
    /// again.
    pub revoked: usize,
}

/// Acknowledges many tokens at once and, at the end, commits and leaves the
/// group ([`close`](Self::close)). Cheap to clone; when the source and every
/// acker are dropped the source closes as `close` would.
#[derive(Clone)]
pub struct Acker {
    inner: Arc<AckerInner>,
}

struct AckerInner {
    shared: Arc<Shared>,
    done: watch::Receiver<bool>,
}

impl Drop for AckerInner {
    fn drop(&mut self) {
        self.shared.stopping.store(true, AtomicOrdering::Release);
        self.shared.closing.store(true, AtomicOrdering::Release);
        self.shared.notify();
    }
}

impl Acker {
    pub(crate) fn new(shared: Arc<Shared>, done: watch::Receiver<bool>) -> Self {
        Acker {
            inner: Arc::new(AckerInner { shared, done }),
        }
    }

    /// Acknowledges every token — a written batch — under one lock.
    pub fn ack_all(&self, tokens: impl IntoIterator<Item = AckToken>) -> AckAll {
        let shared = &self.inner.shared;
        let mut outcome = AckAll::default();
        {
            let mut state = shared.lock();
            for mut token in tokens {
                let Some(held) = token.held.take() else {
                    continue;
                };
                match shared.resolve_done(&mut state, &held) {
                    Resolved::Done => outcome.acked += 1,
                    Resolved::Stale => outcome.revoked += 1,
                }
            }
        }
        shared.notify();
        Counters::add(&shared.counters.acked, outcome.acked as u64);
        Counters::add(&shared.counters.revoked_acks, outcome.revoked as u64);
        outcome
    }

    /// Ends the stream (as [`StopHandle::stop`](crate::StopHandle::stop)
    /// does), commits every acknowledged offset, leaves the consumer group
    /// (its partitions go to the other consumers at once, not after the
    /// session timeout) and resolves when the reader thread is done.
    /// Tokens resolved afterwards get [`Revoked`].
    ///
    /// Cancel-safe: the close goes on without the future.
    pub fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.inner.shared);
        shared.stopping.store(true, AtomicOrdering::Release);
        shared.closing.store(true, AtomicOrdering::Release);
        shared.notify();
        let mut done = self.inner.done.clone();
        async move {
            // An error: the reader is gone (it panicked): nothing to wait for.
            let _ = done.wait_for(|done| *done).await;
        }
    }

    /// Messages acknowledged so far (not counting dead letters).
    pub fn acked(&self) -> u64 {
        self.inner
            .shared
            .counters
            .acked
            .load(AtomicOrdering::Relaxed)
    }
}

impl fmt::Debug for Acker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acker")
            .field("group", &self.inner.shared.group)
            .field("acked", &self.acked())
            .finish()
    }
}
