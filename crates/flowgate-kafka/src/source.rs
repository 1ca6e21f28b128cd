//! [`KafkaSource`]: the consumer-group source, its [`SourceBuilder`], the
//! reader thread that polls librdkafka, commits and handles rebalances, and
//! the stream that hands messages out in the [`Ordering`] asked for.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use flowgate::source::Watermark;
use futures_core::Stream;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

use crate::delivery::{AckToken, Acker, DeadLetters, Delivery, Message};
use crate::error::{BuildError, SourceError};
use crate::shared::{Busy, Counters, Held, Part, PartKey, Shared};

/// Which messages wait for which before they are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// Every message is handed out as soon as it is read: the most
    /// concurrency; a batch sink may write a partition's messages in any
    /// order (the commit still only passes contiguous acknowledgements).
    #[default]
    Unordered,
    /// A message is handed out only once the message before it with the
    /// same key in the same partition is resolved (acknowledged or
    /// dead-lettered; a nak'd message keeps its place). Messages without a
    /// key are not held back. Kafka's own guarantee, kept through
    /// concurrent processing.
    Key,
    /// One message per partition is out at a time: strict partition order,
    /// at the cost of concurrency (the assigned partitions bound it).
    Partition,
}

/// Settings of a [`KafkaSource`]; from [`KafkaSource::builder`].
#[derive(Debug, Clone)]
pub struct SourceBuilder {
    brokers: String,
    group: String,
    topics: Vec<String>,
    max_in_flight: usize,
    commit_interval: Duration,
    revoke_grace: Duration,
    ordering: Ordering,
    dead_letter_topic: Option<String>,
    dead_letter_timeout: Duration,
    connect_timeout: Duration,
    settings: Vec<(String, String)>,
}

/// librdkafka settings the source sets itself.
const MANAGED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

impl SourceBuilder {
    /// At most this many messages are held at once — handed out (or about
    /// to be) and not yet resolved — over all partitions (default 10,000).
    /// At the bound the reader reads ahead, up to as many more, so that a
    /// resolution finds work waiting; when the read-ahead is full too it
    /// pauses the assigned partitions (it keeps polling, so the group
    /// membership and rebalances go on) until there is room. Memory: up to
    /// twice this many messages, besides librdkafka's own prefetch
    /// (`queued.max.messages.kbytes`, settable with [`set`](Self::set)).
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// How often the acknowledged offsets are committed (default 500 ms):
    /// one commit of every partition whose commit point moved. A crash
    /// loses at most this long of commits, never a message: what was not
    /// committed is read again.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// How long a revocation (a rebalance taking partitions away) waits for
    /// the messages of those partitions that are out to be resolved, so
    /// that their offsets are committed before the new owner reads them
    /// (default 5 s). Zero: commit what is done and let the rest go at
    /// once. Messages resolved later get [`Revoked`](crate::Revoked).
    pub fn revoke_grace(mut self, grace: Duration) -> Self {
        self.revoke_grace = grace;
        self
    }

    /// The [`Ordering`] (default [`Ordering::Unordered`]).
    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
        self
    }

    /// Where dead letters go (default `<first topic>.dead`). The topic must
    /// exist or the brokers must create topics on first write.
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// How long a dead letter may take to be confirmed by the brokers
    /// (default 30 s; librdkafka retries within it).
    pub fn dead_letter_timeout(mut self, timeout: Duration) -> Self {
        self.dead_letter_timeout = timeout;
        self
    }

    /// How long [`connect`](Self::connect) waits for the brokers' metadata
    /// (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Any other librdkafka consumer setting (`session.timeout.ms`,
    /// `auto.offset.reset` — `earliest` by default here, so a new group
    /// reads from the start —, `security.protocol`, …); the producer of
    /// dead letters gets the connection settings too. The settings the
    /// source manages (`bootstrap.servers`, `group.id`,
    /// `enable.auto.commit`, `enable.auto.offset.store`) are refused by
    /// [`connect`](Self::connect).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    fn validate(&self) -> Result<(), BuildError> {
        if self.brokers.trim().is_empty() {
            return Err(BuildError::NoBrokers);
        }
        if self.topics.is_empty() {
            return Err(BuildError::NoTopics);
        }
        if self.group.is_empty() {
            return Err(BuildError::InvalidName {
                what: "group",
                name: self.group.clone(),
            });
        }
        for topic in &self.topics {
            check_topic("topic", topic)?;
        }
        if let Some(topic) = &self.dead_letter_topic {
            check_topic("dead-letter topic", topic)?;
        }
        if self.max_in_flight == 0 {
            return Err(BuildError::ZeroMaxInFlight);
        }
        if self.commit_interval.is_zero() {
            return Err(BuildError::ZeroCommitInterval);
        }
        if self.connect_timeout.is_zero() {
            return Err(BuildError::ZeroConnectTimeout);
        }
        if self.dead_letter_timeout.is_zero() {
            return Err(BuildError::ZeroDeadLetterTimeout);
        }
        for (key, _) in &self.settings {
            if MANAGED.contains(&key.as_str()) {
                return Err(BuildError::Setting {
                    key: key.clone(),
                    reason: "the source sets it itself".into(),
                });
            }
        }
        Ok(())
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("auto.offset.reset", "earliest")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }

    /// Checks the settings, reaches the brokers (their metadata, within
    /// `connect_timeout`), checks that every topic exists, joins the group
    /// and starts the reader thread.
    ///
    /// # Errors
    ///
    /// [`SourceError::Build`] for settings that cannot work,
    /// [`SourceError::Connect`] if no broker answered,
    /// [`SourceError::NoTopic`] for a topic the cluster does not have.
    pub async fn connect(self) -> Result<KafkaSource, SourceError> {
        self.validate()?;
        let builder = self;
        tokio::task::spawn_blocking(move || builder.connect_blocking())
            .await
            .map_err(|_| SourceError::ReaderPanicked)?
    }

    fn connect_blocking(self) -> Result<KafkaSource, SourceError> {
        let connect_error = |err: KafkaError| SourceError::Connect {
            brokers: self.brokers.clone(),
            source: Arc::new(err),
        };
        let topics: Vec<Arc<str>> = self.topics.iter().map(|t| Arc::from(t.as_str())).collect();
        let shared = Arc::new(Shared::new(
            topics,
            self.group.clone(),
            self.brokers.clone(),
            self.ordering,
        ));
        let context = Context_ {
            shared: Arc::clone(&shared),
            revoke_grace: self.revoke_grace,
        };
        let mut config = self.config();
        config
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer<Context_> = config
            .create_with_context(context)
            .map_err(|err| setting_or_connect(err, &self.brokers))?;
        for topic in &self.topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), self.connect_timeout)
                .map_err(connect_error)?;
            let known = metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
            if !known {
                return Err(SourceError::NoTopic {
                    brokers: self.brokers.clone(),
                    topic: topic.clone(),
                });
            }
        }
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(connect_error)?;

        let dead_letter_topic = self
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dead", self.topics[0]));
        let mut producer_config = self.config();
        producer_config
            .remove("auto.offset.reset")
            .set(
                "message.timeout.ms",
                self.dead_letter_timeout.as_millis().max(1).to_string(),
            )
            .set("acks", "all");
        for key in [
            "session.timeout.ms",
            "max.poll.interval.ms",
            "heartbeat.interval.ms",
            "group.instance.id",
            "partition.assignment.strategy",
            "fetch.min.bytes",
            "fetch.wait.max.ms",
            "queued.min.messages",
            "queued.max.messages.kbytes",
        ] {
            producer_config.remove(key);
        }
        let producer: FutureProducer = producer_config
            .create()
            .map_err(|err| setting_or_connect(err, &self.brokers))?;
        let dead_letters = Arc::new(DeadLetters {
            producer,
            topic: dead_letter_topic,
            timeout: self.dead_letter_timeout,
        });

        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(false);
        let reader = Reader {
            consumer,
            shared: Arc::clone(&shared),
            tx,
            max_in_flight: self.max_in_flight,
            commit_interval: self.commit_interval,
        };
        std::thread::Builder::new()
            .name("flowgate-kafka".into())
            .spawn(move || {
                let _done = DoneGuard(done_tx);
                reader.run();
            })
            .map_err(|err| SourceError::Connect {
                brokers: self.brokers.clone(),
                source: Arc::new(err),
            })?;
        Ok(KafkaSource {
            acker: Acker::new(Arc::clone(&shared), done_rx),
            shared,
            dead_letters,
            rx,
            buffer: VecDeque::new(),
            sleep: None,
            ended: false,
            finished: false,
        })
    }
}

/// A setting librdkafka refused is the caller's; anything else is reaching
/// the brokers.
fn setting_or_connect(err: KafkaError, brokers: &str) -> SourceError {
    match err {
        KafkaError::ClientConfig(_, ref reason, ref key, _) => {
            SourceError::Build(BuildError::Setting {
                key: key.clone(),
                reason: reason.clone(),
            })
        }
        err => SourceError::Connect {
            brokers: brokers.to_owned(),
            source: Arc::new(err),
        },
    }
}

fn check_topic(what: &'static str, topic: &str) -> Result<(), BuildError> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BuildError::InvalidName {
            what,
            name: topic.to_owned(),
        })
    }
}

/// Sets the done flag however the reader thread ends (a panic included), so
/// that [`Acker::close`] never hangs.
struct DoneGuard(watch::Sender<bool>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// What the reader thread sends the stream.
enum Event {
    Chunk(Vec<Held>),
    Error(SourceError),
    End,
}

/// The consumer context: rebalances, and librdkafka's logs and errors into
/// `tracing`.
struct Context_ {
    shared: Arc<Shared>,
    revoke_grace: Duration,
}

impl ClientContext for Context_ {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(brokers = %self.shared.brokers, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(brokers = %self.shared.brokers, facility = fac, "librdkafka: {log_message}")
            }
            _ => {
                tracing::debug!(brokers = %self.shared.brokers, facility = fac, "librdkafka: {log_message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka retries these itself (brokers down, a coordinator
        // moving): back-pressure, logged.
        tracing::warn!(brokers = %self.shared.brokers, group = %self.shared.group, error = %error, "Kafka client error: {reason}");
    }
}

impl ConsumerContext for Context_ {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.revoke(consumer, tpl),
            Rebalance::Assign(_) => {}
            Rebalance::Error(err) => {
                tracing::error!(brokers = %self.shared.brokers, group = %self.shared.group, error = %err, "Kafka rebalance failed");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut assigned = Vec::new();
            {
                let mut state = self.shared.lock();
                state.generation += 1;
                let generation = state.generation;
                for element in tpl.elements() {
                    let Some(topic) = self.shared.topic_index(element.topic()) else {
                        continue;
                    };
                    state.parts.insert(
                        (topic, element.partition()),
                        Part {
                            generation,
                            watermark: Watermark::new(),
                            held: 0,
                            out: 0,
                            dirty: false,
                            committed: None,
                        },
                    );
                    assigned.push(format!("{}/{}", element.topic(), element.partition()));
                }
            }
            self.shared.paused.store(false, AtomicOrdering::Release);
            Counters::add(
                &self.shared.counters.assigned_partitions,
                assigned.len() as u64,
            );
            tracing::info!(group = %self.shared.group, partitions = ?assigned, "Kafka partitions assigned");
        }
    }
}

impl Context_ {
    /// Partitions go to another consumer: wait (up to the grace) for their
    /// messages that are out, commit what is done, then forget them — the
    /// messages still queued here are dropped (the new owner reads them).
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let keys: Vec<PartKey> = tpl
            .elements()
            .iter()
            .filter_map(|e| Some((self.shared.topic_index(e.topic())?, e.partition())))
            .collect();
        let lost = consumer.assignment_lost();
        let closing = self.shared.closing.load(AtomicOrdering::Acquire);
        let deadline = std::time::Instant::now() + self.revoke_grace;
        let mut state = self.shared.lock();
        // Nothing can be acknowledged once the acker is closed or dropped.
        if !lost && !closing {
            loop {
                let out: usize = keys
                    .iter()
                    .filter_map(|k| state.parts.get(k))
                    .map(|p| p.out)
                    .sum();
                let now = std::time::Instant::now();
                if out == 0 || now >= deadline {
                    if out > 0 {
                        tracing::warn!(group = %self.shared.group, messages = out, grace = ?self.revoke_grace, "partitions revoked with messages still out; their new owner reads them again");
                    }
                    break;
                }
                state = self
                    .shared
                    .resolved
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
        let commits = commit_list(&state, Some(&keys));
        drop(state);
        if lost {
            tracing::warn!(group = %self.shared.group, "the assignment was lost (the session timed out): nothing is committed; the new owners read from the last commit");
        } else {
            commit(consumer, &self.shared, commits);
        }
        let mut state = self.shared.lock();
        self.shared.remove_parts(&mut state, &keys);
        drop(state);
        Counters::add(&self.shared.counters.revoked_partitions, keys.len() as u64);
        self.shared.notify();
        let names: Vec<String> = tpl
            .elements()
            .iter()
            .map(|e| format!("{}/{}", e.topic(), e.partition()))
            .collect();
        tracing::info!(group = %self.shared.group, partitions = ?names, "Kafka partitions revoked");
    }
}

/// The partitions (all, or `only`) whose commit point moved, with it.
fn commit_list(state: &crate::shared::State, only: Option<&[PartKey]>) -> Vec<(PartKey, u64, u64)> {
    state
        .parts
        .iter()
        .filter(|(key, part)| part.dirty && only.is_none_or(|only| only.contains(key)))
        .filter_map(|(key, part)| Some((*key, part.watermark.commit_point()?, part.generation)))
        .collect()
}

/// Commits `commits` synchronously; on success marks them clean (unless
/// they moved again), on failure leaves them for the next commit.
fn commit(consumer: &BaseConsumer<Context_>, shared: &Shared, commits: Vec<(PartKey, u64, u64)>) {
    if commits.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for ((topic, partition), point, _) in &commits {
        let _ = tpl.add_partition_offset(
            &shared.topics[*topic as usize],
            *partition,
            Offset::Offset(*point as i64),
        );
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            Counters::add(&shared.counters.commits, 1);
            let mut state = shared.lock();
            for (key, point, generation) in commits {
                state.last_commits.insert(key, point);
                if let Some(part) = state
                    .parts
                    .get_mut(&key)
                    .filter(|p| p.generation == generation)
                {
                    part.committed = Some(point);
                    if part.watermark.commit_point() == Some(point) {
                        part.dirty = false;
                    }
                }
            }
        }
        Err(err) => {
            Counters::add(&shared.counters.commit_failures, 1);
            tracing::warn!(brokers = %shared.brokers, group = %shared.group, error = %err, partitions = commits.len(), "Kafka commit failed; retried at the next commit");
        }
    }
}

/// The reader thread: polls while there is room, pauses the assignment when
/// there is none, commits every `commit_interval`, and serves rebalances
/// (librdkafka runs them inside `poll`, on this thread).
struct Reader {
    consumer: BaseConsumer<Context_>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Event>,
    max_in_flight: usize,
    commit_interval: Duration,
}

/// The most messages read in one go (one lock, one send).
const CHUNK: usize = 512;
/// How long a poll waits for a message, so that commits and stops are seen.
const POLL: Duration = Duration::from_millis(50);

impl Reader {
    fn run(self) {
        let mut last_commit = std::time::Instant::now();
        let mut last_error: Option<(RDKafkaErrorCode, std::time::Instant)> = None;
        let mut chunk: Vec<Held> = Vec::new();
        let mut ended = false;
        loop {
            if last_commit.elapsed() >= self.commit_interval {
                let commits = commit_list(&self.shared.lock(), None);
                commit(&self.consumer, &self.shared, commits);
                last_commit = std::time::Instant::now();
            }
            if self.shared.closing.load(AtomicOrdering::Acquire) {
                break;
            }
            if self.shared.stopping.load(AtomicOrdering::Acquire) {
                if !ended {
                    ended = true;
                    self.pause(true);
                    let _ = self.tx.send(Event::End);
                }
                // Drained: keep the membership (and the commits) until close.
                self.wait_resolved(POLL);
                let _ = self.consumer.poll(Duration::ZERO);
                continue;
            }
            // Room first goes to the messages read ahead. With no room the
            // reader goes on reading ahead (up to max_in_flight more), so
            // that a resolution finds work waiting; only a full read-ahead
            // pauses the assignment — a pause makes librdkafka drop what it
            // prefetched and fetch it again on resume.
            let (room, ahead) = self.admit(&mut chunk);
            if ahead >= self.max_in_flight {
                self.pause(true);
                self.wait_resolved(POLL);
            } else {
                self.pause(false);
                if room == 0 {
                    self.wait_resolved(Duration::from_millis(5));
                }
            }
            let timeout = if room == 0 || ahead > 0 {
                Duration::ZERO
            } else {
                POLL
            };
            let mut next = self.consumer.poll(timeout);
            while let Some(result) = next {
                match result {
                    Ok(message) => {
                        last_error = None;
                        if let Some(held) = self.held(&message) {
                            chunk.push(held);
                        }
                    }
                    Err(KafkaError::MessageConsumptionFatal(code)) => {
                        let _ = self.tx.send(Event::Error(SourceError::Fatal {
                            brokers: self.shared.brokers.clone(),
                            group: self.shared.group.clone(),
                            source: Arc::new(KafkaError::MessageConsumptionFatal(code)),
                        }));
                        ended = true;
                        self.shared.stopping.store(true, AtomicOrdering::Release);
                        break;
                    }
                    Err(err) => {
                        Counters::add(&self.shared.counters.fetch_errors, 1);
                        let code = err.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                        let repeat = last_error.is_some_and(|(last, at)| {
                            last == code && at.elapsed() < Duration::from_secs(10)
                        });
                        if !repeat {
                            tracing::warn!(brokers = %self.shared.brokers, group = %self.shared.group, error = %err, "Kafka fetch failed; librdkafka retries");
                            last_error = Some((code, std::time::Instant::now()));
                        }
                    }
                }
                // No more than the room and the read-ahead's room.
                let want = (room + self.max_in_flight.saturating_sub(ahead)).clamp(1, CHUNK);
                if chunk.len() >= want {
                    break;
                }
                next = self.consumer.poll(Duration::ZERO);
            }
            if !chunk.is_empty() {
                self.admit(&mut chunk);
            }
        }
        // Close: the last commit, then leave the group (dropping the
        // consumer closes it; the revocation that brings commits nothing
        // new, and waits for nothing).
        let commits = commit_list(&self.shared.lock(), None);
        commit(&self.consumer, &self.shared, commits);
        if !ended {
            let _ = self.tx.send(Event::End);
        }
        drop(self.tx);
        drop(self.consumer);
        let mut state = self.shared.lock();
        let keys: Vec<PartKey> = state.parts.keys().copied().collect();
        self.shared.remove_parts(&mut state, &keys);
        drop(state);
        self.shared.notify();
        tracing::debug!(group = %self.shared.group, "Kafka source closed");
    }

    /// Waits for a resolution (room), at most `timeout`.
    fn wait_resolved(&self, timeout: Duration) {
        let state = self.shared.lock();
        let _ = self.shared.resolved.wait_timeout(state, timeout);
    }

    /// Pauses (or resumes) the whole assignment, once per change.
    fn pause(&self, pause: bool) {
        if self.shared.paused.load(AtomicOrdering::Acquire) == pause {
            return;
        }
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        match result {
            Ok(()) => self.shared.paused.store(pause, AtomicOrdering::Release),
            Err(err) => {
                tracing::warn!(group = %self.shared.group, error = %err, pause, "cannot pause or resume the Kafka assignment")
            }
        }
    }

    fn held(&self, message: &BorrowedMessage<'_>) -> Option<Held> {
        let topic = self.shared.topic_index(message.topic())?;
        let headers: Vec<(String, Option<Bytes>)> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(Bytes::copy_from_slice)))
                    .collect()
            })
            .unwrap_or_default();
        Some(Held {
            message: Message {
                topic: Arc::clone(&self.shared.topics[topic as usize]),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(Bytes::copy_from_slice),
                payload: message
                    .payload()
                    .map(Bytes::copy_from_slice)
                    .unwrap_or_default(),
                headers: headers.into(),
                timestamp_ms: message.timestamp().to_millis(),
            },
            part: (topic, message.partition()),
            generation: 0,
        })
    }

    /// Admits messages into flight while there is room — the read-ahead
    /// first, then `fresh` (which joins the read-ahead when there is none):
    /// tracks their offsets in their partitions' watermarks and sends them
    /// to the stream. Returns the room left and the read-ahead's length.
    fn admit(&self, fresh: &mut Vec<Held>) -> (usize, usize) {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        let mut room = self.max_in_flight.saturating_sub(state.in_flight);
        let mut sent = Vec::new();
        while room > 0
            && let Some(held) = state.read_ahead.pop_front()
        {
            if let Some(held) = track(state, held) {
                sent.push(held);
                room -= 1;
            }
        }
        for held in fresh.drain(..) {
            if room > 0 && state.read_ahead.is_empty() {
                if let Some(held) = track(state, held) {
                    sent.push(held);
                    room -= 1;
                }
            } else {
                state.read_ahead.push_back(held);
            }
        }
        let ahead = state.read_ahead.len();
        drop(guard);
        if !sent.is_empty() {
            Counters::add(&self.shared.counters.received, sent.len() as u64);
            let _ = self.tx.send(Event::Chunk(sent));
        }
        (room, ahead)
    }
}

/// Tracks a message in its partition's watermark, or drops it: read just
/// before its partition was revoked (the new owner reads it), or read twice
/// (librdkafka fetched again after an offset reset; it is already held).
fn track(state: &mut crate::shared::State, mut held: Held) -> Option<Held> {
    let part = state.parts.get_mut(&held.part)?;
    if let Err(err) = part.watermark.track(held.message.offset as u64) {
        tracing::debug!(topic = %held.message.topic, partition = held.message.partition, error = %err, "skipped a message read twice");
        return None;
    }
    held.generation = part.generation;
    part.held += 1;
    state.in_flight += 1;
    Some(held)
}

/// A Kafka consumer-group source: a stream of [`Delivery`]s, each resolved
/// by its token; see the [crate documentation](crate).
pub struct KafkaSource {
    shared: Arc<Shared>,
    dead_letters: Arc<DeadLetters>,
    acker: Acker,
    rx: mpsc::UnboundedReceiver<Event>,
    /// Read, not yet handed out (nor held back by the ordering).
    buffer: VecDeque<Held>,
    /// Armed for the next nak'd message due.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The reader said it stopped reading.
    ended: bool,
    /// The stream returned `None` (or its last error).
    finished: bool,
}

impl KafkaSource {
    /// A source reading `topics` as a member of consumer group `group`
    /// through the bootstrap `brokers` (`host:port`, comma-separated).
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate_kafka::{KafkaSource, Ordering};
    ///
    /// let builder = KafkaSource::builder("127.0.0.1:9092", ["events"], "writers")
    ///     .ordering(Ordering::Key)
    ///     .max_in_flight(5_000)
    ///     .commit_interval(Duration::from_millis(200))
    ///     .set("session.timeout.ms", "10000");
    /// # drop(builder);
    /// ```
    pub fn builder<S: Into<String>>(
        brokers: impl Into<String>,
        topics: impl IntoIterator<Item = S>,
        group: impl Into<String>,
    ) -> SourceBuilder {
        SourceBuilder {
            brokers: brokers.into(),
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            max_in_flight: 10_000,
            commit_interval: Duration::from_millis(500),
            revoke_grace: Duration::from_secs(5),
            ordering: Ordering::Unordered,
            dead_letter_topic: None,
            dead_letter_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            settings: Vec::new(),
        }
    }

    /// A handle to stop reading: the stream ends after the messages already
    /// read; acknowledge what was written, then [`Acker::close`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The acker: [`Acker::ack_all`] for a written batch, [`Acker::close`]
    /// at the end.
    pub fn acker(&self) -> &Acker {
        &self.acker
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> &str {
        &self.dead_letters.topic
    }

    /// The bootstrap brokers, as given.
    pub fn brokers(&self) -> &str {
        &self.shared.brokers
    }

    /// Counters so far.
    pub fn stats(&self) -> SourceStats {
        let c = &self.shared.counters;
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(AtomicOrdering::Relaxed);
        let state = self.shared.lock();
        SourceStats {
            received: load(&c.received),
            acked: load(&c.acked),
            naked: load(&c.naked),
            dead_lettered: load(&c.dead_lettered),
            revoked_acks: load(&c.revoked_acks),
            assigned_partitions: load(&c.assigned_partitions),
            revoked_partitions: load(&c.revoked_partitions),
            commits: load(&c.commits),
            commit_failures: load(&c.commit_failures),
            fetch_errors: load(&c.fetch_errors),
            in_flight: state.in_flight as u64,
            read_ahead: state.read_ahead.len() as u64,
            partitions: state.parts.len() as u64,
        }
    }

    /// The offsets this source committed last, per (topic, partition) —
    /// Kafka's "next offset to read" — including partitions it no longer
    /// holds.
    pub fn committed(&self) -> BTreeMap<(String, i32), i64> {
        let state = self.shared.lock();
        state
            .last_commits
            .iter()
            .map(|((topic, partition), offset)| {
                (
                    (self.shared.topics[*topic as usize].to_string(), *partition),
                    *offset as i64,
                )
            })
            .collect()
    }

    fn token(&self, held: Held) -> Delivery {
        Delivery::new(AckToken::new(
            held,
            Arc::clone(&self.shared),
            Arc::clone(&self.dead_letters),
        ))
    }

    /// Hands out one message from the ready queue or the due nak'd ones;
    /// arms the timer for the next one due.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Option<Held> {
        let mut state = self.shared.lock();
        let now = Instant::now();
        while state.delayed.peek().is_some_and(|d| d.0.due <= now) {
            let due = state.delayed.pop().expect("peeked").0;
            state.ready.push_back(due.held);
        }
        if let Some(held) = state.ready.pop_front()
            && let Some(part) = state
                .parts
                .get_mut(&held.part)
                .filter(|p| p.generation == held.generation)
        {
            part.out += 1;
            return Some(held);
        }
        let next_due = state.delayed.peek().map(|d| d.0.due);
        drop(state);
        match next_due {
            Some(due) => {
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if sleep.deadline() != due {
                    sleep.as_mut().reset(due);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
            }
            None => self.sleep = None,
        }
        None
    }

    /// Hands out the next buffered message its ordering lets go, holding
    /// back the others.
    fn poll_buffer(&mut self) -> Option<Held> {
        while let Some(held) = self.buffer.pop_front() {
            let mut state = self.shared.lock();
            let state = &mut *state;
            let Some(part) = state
                .parts
                .get_mut(&held.part)
                .filter(|p| p.generation == held.generation)
            else {
                // Its partition was revoked (and accounted for) meanwhile.
                continue;
            };
            if let Some(key) = self.shared.order_key(&held) {
                if let Some(busy) = state.busy.get_mut(&key) {
                    busy.waiting.push_back(held);
                    continue;
                }
                state.busy.insert(
                    key,
                    Busy {
                        part: held.part,
                        generation: held.generation,
                        waiting: VecDeque::new(),
                    },
                );
            }
            part.out += 1;
            return Some(held);
        }
        None
    }
}

impl Stream for KafkaSource {
    type Item = Result<Delivery, SourceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        this.shared.waker.register(cx.waker());
        loop {
            if let Some(held) = this.poll_ready(cx) {
                return Poll::Ready(Some(Ok(this.token(held))));
            }
            if let Some(held) = this.poll_buffer() {
                return Poll::Ready(Some(Ok(this.token(held))));
            }
            if this.ended {
                this.finished = true;
                return Poll::Ready(None);
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Event::Chunk(chunk))) => this.buffer.extend(chunk),
                Poll::Ready(Some(Event::Error(err))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(Some(Event::End)) => this.ended = true,
                Poll::Ready(None) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(SourceError::ReaderPanicked)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.shared.brokers)
            .field("topics", &self.shared.topics)
            .field("group", &self.shared.group)
            .field("dead_letter_topic", &self.dead_letters.topic)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Stops a [`KafkaSource`] from reading: the messages already read are
/// still handed out, then the stream ends; the consumer stays in its group
/// (and commits) until [`Acker::close`]. Messages read ahead, held back by
/// the ordering, or nak'd and not yet due are left uncommitted: the next
/// owner reads them.
#[derive(Debug, Clone)]
pub struct StopHandle {
    shared: Arc<Shared>,
}

impl StopHandle {
    /// Stops reading (idempotent).
    pub fn stop(&self) {
        self.shared.stopping.store(true, AtomicOrdering::Release);
        self.shared.notify();
    }

    /// Whether [`stop`](Self::stop) was called (or the source closed).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopping.load(AtomicOrdering::Acquire)
    }
}

/// Counters of a [`KafkaSource`], from [`KafkaSource::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// Messages read (and tracked).
    pub received: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages nak'd or dropped unresolved (handed out again).
    pub naked: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Resolutions that came after their partition was revoked.
    pub revoked_acks: u64,
    /// Partitions assigned to this consumer, over all rebalances.
    pub assigned_partitions: u64,
    /// Partitions revoked from it.
    pub revoked_partitions: u64,
    /// Successful commits (each of every partition that moved).
    pub commits: u64,
    /// Failed commits (retried at the next).
    pub commit_failures: u64,
    /// Fetch errors librdkafka reported (and retried).
    pub fetch_errors: u64,
    /// Messages held now: read and not yet resolved.
    pub in_flight: u64,
    /// Messages read ahead now: read while `max_in_flight` were held,
    /// waiting for room (not yet tracked nor handed out).
    pub read_ahead: u64,
    /// Partitions assigned now.
    pub partitions: u64,
}

/// The series [`SourceStats::record`] sets, each `name{name="…"}`: every
/// counter field as `flowgate_kafka_source_<field>_total`; `in_flight`,
/// `read_ahead` and `partitions` as the gauges
/// `flowgate_kafka_source_in_flight`, `flowgate_kafka_source_read_ahead` and
/// `flowgate_kafka_source_partitions`.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub const SOURCE_SERIES: &[&str] = &[
    "flowgate_kafka_source_received_total",
    "flowgate_kafka_source_acked_total",
    "flowgate_kafka_source_naked_total",
    "flowgate_kafka_source_dead_lettered_total",
    "flowgate_kafka_source_revoked_acks_total",
    "flowgate_kafka_source_assigned_partitions_total",
    "flowgate_kafka_source_revoked_partitions_total",
    "flowgate_kafka_source_commits_total",
    "flowgate_kafka_source_commit_failures_total",
    "flowgate_kafka_source_fetch_errors_total",
    "flowgate_kafka_source_in_flight",
    "flowgate_kafka_source_read_ahead",
    "flowgate_kafka_source_partitions",
];

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl SourceStats {
    /// Sets the [`SOURCE_SERIES`] to these counts, labelled `name`, through
    /// the `metrics` facade (feature `metrics`): call it on a timer (and once
    /// at the end) with [`KafkaSource::stats`]. Counters are set to the
    /// absolute totals, so calling it twice with the same stats changes
    /// nothing.
    ///
    /// ```
    /// use flowgate_kafka::SourceStats;
    ///
    /// // With no recorder installed this records nothing.
    /// SourceStats::default().record("orders");
    /// ```
    pub fn record(&self, name: &str) {
        let counts = [
            self.received,
            self.acked,
            self.naked,
            self.dead_lettered,
            self.revoked_acks,
            self.assigned_partitions,
            self.revoked_partitions,
            self.commits,
            self.commit_failures,
            self.fetch_errors,
        ];
        for (series, count) in SOURCE_SERIES.iter().zip(counts) {
            metrics::counter!(*series, "name" => name.to_owned()).absolute(count);
        }
        metrics::gauge!("flowgate_kafka_source_in_flight", "name" => name.to_owned())
            .set(self.in_flight as f64);
        metrics::gauge!("flowgate_kafka_source_read_ahead", "name" => name.to_owned())
            .set(self.read_ahead as f64);
        metrics::gauge!("flowgate_kafka_source_partitions", "name" => name.to_owned())
            .set(self.partitions as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_before_anything_is_sent() {
        let builder = || KafkaSource::builder("127.0.0.1:9092", ["events"], "writers");
        assert_eq!(
            builder().max_in_flight(0).validate(),
            Err(BuildError::ZeroMaxInFlight)
        );
        assert_eq!(
            builder().commit_interval(Duration::ZERO).validate(),
            Err(BuildError::ZeroCommitInterval)
        );
        assert_eq!(
            builder().connect_timeout(Duration::ZERO).validate(),
            Err(BuildError::ZeroConnectTimeout)
        );
        assert_eq!(
            builder().dead_letter_timeout(Duration::ZERO).validate(),
            Err(BuildError::ZeroDeadLetterTimeout)
        );
        assert!(matches!(
            builder().set("group.id", "x").validate(),
            Err(BuildError::Setting { .. })
        ));
        assert!(matches!(
            builder().dead_letter_topic("a b").validate(),
            Err(BuildError::InvalidName {
                what: "dead-letter topic",
                ..
            })
        ));
        assert_eq!(
            KafkaSource::builder(" ", ["events"], "g").validate(),
            Err(BuildError::NoBrokers)
        );
        assert_eq!(
            KafkaSource::builder("h:1", Vec::<String>::new(), "g").validate(),
            Err(BuildError::NoTopics)
        );
        assert!(matches!(
            KafkaSource::builder("h:1", ["e"], "").validate(),
            Err(BuildError::InvalidName { what: "group", .. })
        ));
        assert!(matches!(
            KafkaSource::builder("h:1", [".."], "g").validate(),
            Err(BuildError::InvalidName { what: "topic", .. })
        ));
        assert_eq!(builder().revoke_grace(Duration::ZERO).validate(), Ok(()));
    }
}
