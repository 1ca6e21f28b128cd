//! `flowgate ingest`: consume messages, map them onto the rows of a table,
//! write them in batches, and acknowledge each message only after its row is
//! durably written.
//!
//! ```text
//!  source ──> write_chunks (read batches, map fields -> rows) ──> sink.write_batch ──> ack
//!    │ paused while        │ misfit            │ transient error:      │ rejected row
//!    │ the sink is down    ▼                   ▼ retry with backoff    ▼
//!    └──────────────── dead letter (reason) <───────────────────── dead letter
//! ```
//!
//! What happens to a message, and where the report counts it:
//!
//! | what | report line |
//! |---|---|
//! | its row was stored, then the message acked | `written` |
//! | its key was already stored (a redelivery), acked | `duplicates` |
//! | it does not fit the mapping, or the database rejected its row: moved to the dead-letter stream with the reason, acked | `dead-lettered` |
//! | its batch failed for good (the sink failed fatally, or the run was aborted): not acked, left pending | `failed` |
//! | stored, but the acknowledgement failed: left pending, comes back as a duplicate | `unacked` |
//!
//! A sink that fails *transiently* (a refused or dropped connection, a
//! server restarting) is back-pressure, not a fault of the messages: reading
//! pauses, the write is retried with backoff until it succeeds, and nothing
//! is acknowledged before it. Redis leases keep the messages in flight with
//! this consumer meanwhile, so they are neither taken over nor counted as
//! failed deliveries.

use std::error::Error;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flowgate::prelude::*;
use flowgate::resilience::{Backoff, Jitter, PauseHandle, Retry};
use flowgate_redis::{AckToken, FieldsBatchBuilder, FieldsBuilder, Message, RedisStreamSource};
use flowgate_sql::{PostgresOptions, PostgresSink, RowBatch, RowOutcome, SinkError, SqliteSink};
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::mapping::Mapping;

/// Where messages come from.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Generated in process: `messages` messages (fields `seq` and `body`),
    /// every `redeliver_every`-th of which is delivered a second time (as a
    /// broker redelivers after a lost ack), to show the sink's idempotency.
    /// 0 turns redelivery off.
    Embedded {
        /// How many distinct messages.
        messages: u64,
        /// Redeliver every n-th message once more.
        redeliver_every: u64,
    },
    /// A Redis stream, read as one consumer of a group.
    Redis(RedisConfig),
    /// A NATS JetStream stream, read through a durable pull consumer.
    Nats(NatsConfig),
    /// A Kafka topic, read as a member of a consumer group.
    Kafka(KafkaConfig),
}

/// How to read a Kafka topic.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// The bootstrap brokers, `host:port` (several, comma-separated).
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// The consumer group: every instance with the same group splits the
    /// topic's partitions.
    pub group: String,
    /// Where bad messages go; `None`: `<topic>.dead`.
    pub dead_letter_topic: Option<String>,
    /// The group session timeout: a consumer that stops heartbeating (it
    /// died) loses its partitions after this long.
    pub session_timeout: Duration,
    /// As [`RedisConfig::exit_when_idle`].
    pub exit_when_idle: Option<Duration>,
    /// As [`RedisConfig::max_messages`].
    pub max_messages: Option<u64>,
}

impl KafkaConfig {
    /// A configuration with the CLI's defaults: session timeout 10 s, dead
    /// letters to `<topic>.dead`, no stop condition.
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        group: impl Into<String>,
    ) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            group: group.into(),
            dead_letter_topic: None,
            session_timeout: Duration::from_secs(10),
            exit_when_idle: None,
            max_messages: None,
        }
    }
}

/// How to read a JetStream stream.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port` (several, comma-separated).
    pub url: String,
    /// The JetStream stream.
    pub stream: String,
    /// The durable consumer: every instance reading with the same name
    /// shares the stream's messages.
    pub consumer: String,
    /// Create the stream with these subjects if it is missing (empty: it
    /// must exist).
    pub subjects: Vec<String>,
    /// The consumer's ack wait (when the source creates it): a message
    /// neither acked nor signalled in progress for this long is delivered
    /// again.
    pub ack_wait: Duration,
    /// How often held messages are signalled in progress; `None`: a third
    /// of the ack wait.
    pub progress_interval: Option<Duration>,
    /// A message delivered more often than this (its consumers died, hung
    /// or handed it back) goes to the dead-letter subject.
    pub max_deliveries: u64,
    /// Where bad messages go; `None`: `flowgate.dead.<stream>`.
    pub dead_letter_subject: Option<String>,
    /// As [`RedisConfig::exit_when_idle`].
    pub exit_when_idle: Option<Duration>,
    /// As [`RedisConfig::max_messages`].
    pub max_messages: Option<u64>,
}

impl NatsConfig {
    /// A configuration with the CLI's defaults: ack wait 30 s, 5
    /// deliveries, dead letters to `flowgate.dead.<stream>`, no stop
    /// condition.
    pub fn new(
        url: impl Into<String>,
        stream: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Self {
        NatsConfig {
            url: url.into(),
            stream: stream.into(),
            consumer: consumer.into(),
            subjects: Vec::new(),
            ack_wait: Duration::from_secs(30),
            progress_interval: None,
            max_deliveries: 5,
            dead_letter_subject: None,
            exit_when_idle: None,
            max_messages: None,
        }
    }
}

/// How to read a Redis stream.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/`.
    pub url: String,
    /// The stream key.
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// This consumer's name in the group.
    pub consumer: String,
    /// The lease: a consumer that stops renewing its claim on a message for
    /// this long (it died or hangs) loses the message to another consumer.
    pub claim_idle: Duration,
    /// A consumer still connected but renewing nothing loses its messages
    /// after this long (`None`: 10 × `claim_idle`).
    pub hung_after: Option<Duration>,
    /// A message delivered more often than this to consumers that died or
    /// hung while holding it goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// Where bad messages go; `None`: `<stream>:dead`.
    pub dead_letter_stream: Option<String>,
    /// Stop once no message arrived for this long (`None`: run until
    /// interrupted). The wait is not counted in the elapsed time.
    pub exit_when_idle: Option<Duration>,
    /// Stop after this many messages (`None`: no limit).
    pub max_messages: Option<u64>,
    /// Read the `N` shards `<stream>:{0}` … `<stream>:{N-1}` of a sharded
    /// stream (see [`crate::shards`]), each with its own group of this name
    /// and its dead letters in `<shard>:dead`; on a Redis Cluster each from
    /// the node serving it. `None`: the one stream `stream`.
    pub shards: Option<u32>,
}

impl RedisConfig {
    /// A configuration with the CLI's defaults: claim idle 30 s, 5
    /// deliveries, dead letters to `<stream>:dead`, no stop condition.
    pub fn new(
        url: impl Into<String>,
        stream: impl Into<String>,
        group: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Self {
        RedisConfig {
            url: url.into(),
            stream: stream.into(),
            group: group.into(),
            consumer: consumer.into(),
            claim_idle: Duration::from_secs(30),
            hung_after: None,
            max_deliveries: 5,
            dead_letter_stream: None,
            exit_when_idle: None,
            max_messages: None,
            shards: None,
        }
    }

    fn dead_letter_stream(&self) -> String {
        self.dead_letter_stream
            .clone()
            .unwrap_or_else(|| format!("{}:dead", self.stream))
    }
}

/// Where batches go.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// A SQLite file (WAL, one transaction per batch).
    Sqlite(PathBuf),
    /// A PostgreSQL database (one `UNNEST` insert per batch).
    Postgres(String),
}

/// Everything `flowgate ingest` needs.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Where messages come from.
    pub source: SourceConfig,
    /// Where batches go.
    pub sink: SinkConfig,
    /// How messages become rows, and the table they go to.
    pub mapping: Mapping,
    /// Rows per batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub batch_delay: Duration,
    /// Batches written at once (default 3; PostgreSQL: one connection
    /// each).
    pub flush_concurrency: usize,
    /// Redis: deliveries between receipt and ack at once (the source's
    /// bound). The pipeline itself holds at most
    /// `batch_size × (flush_concurrency + 1)` rows.
    pub max_in_flight: usize,
    /// Keep per-key order: rows of messages with the same value of this
    /// field are written in stream order (keys in parallel, on
    /// `flush_concurrency` lanes chosen by the key's hash; a message without
    /// the field has the empty key). `None`: batches are written in
    /// whatever order they finish.
    pub key: Option<String>,
    /// Show a progress bar.
    pub progress: bool,
}

impl IngestConfig {
    /// The demo configuration (`flowgate ingest` without options) with the
    /// given source and sink: the demo mapping into `flowgate_events`,
    /// batches of 1000 within 20 ms, 2 written at once, 10 000 in flight
    /// (Redis), no progress bar.
    pub fn new(source: SourceConfig, sink: SinkConfig) -> Self {
        IngestConfig {
            source,
            sink,
            mapping: Mapping::demo("flowgate_events").expect("the demo table name is valid"),
            batch_size: 1000,
            batch_delay: Duration::from_millis(20),
            flush_concurrency: 3,
            max_in_flight: 10_000,
            key: None,
            progress: false,
        }
    }
}

/// Stops a run from outside: [`stop`](Self::stop) gracefully (read no more,
/// finish what was read), [`abort`](Self::abort) at once (give up retries;
/// what is not acked stays pending).
#[derive(Debug, Clone, Default)]
pub struct Control {
    stop: CancellationToken,
    abort: CancellationToken,
}

impl Control {
    /// A control that has not stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads no more; what was read is still written and acked.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Stops at once: writes being retried give up, their messages are
    /// reported failed and left pending.
    pub fn abort(&self) {
        self.stop.cancel();
        self.abort.cancel();
    }

    /// Whether [`stop`](Self::stop) or [`abort`](Self::abort) was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Whether [`abort`](Self::abort) was called.
    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }
}

/// What one run did. Every received message is counted in exactly one of
/// `written`, `duplicates`, `dead_lettered`, `failed` and `unacked`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// A description of the source and sink.
    pub route: String,
    /// Where dead letters went (`None` for the embedded source).
    pub dead_letter_stream: Option<String>,
    /// Messages taken from the source.
    pub received: u64,
    /// Rows stored by the sink, their messages acked.
    pub written: u64,
    /// Messages whose row was already stored (redeliveries), skipped, acked.
    pub duplicates: u64,
    /// Messages moved to the dead-letter stream (bad content), acked there.
    pub dead_lettered: u64,
    /// Of `dead_lettered`, those the source moved itself without handing
    /// them out: entries it cannot read, entries deleted while pending, and
    /// messages delivered more than `max_deliveries` times.
    pub dead_lettered_by_source: u64,
    /// Messages not acked because their batch failed for good or the run
    /// was aborted; the source delivers them again.
    pub failed: u64,
    /// Messages stored but whose acknowledgement failed; the source delivers
    /// them again (then as duplicates).
    pub unacked: u64,
    /// Messages the source confirmed (written, duplicates, dead-lettered).
    pub acked: u64,
    /// Sink writes retried after a transient failure.
    pub retries: u64,
    /// From the start to the last message's outcome (a final idle wait is
    /// not counted).
    pub elapsed: Duration,
    /// Time from receipt to acknowledgement, per acked message.
    pub ack_latency: Latency,
    /// Why the run ended early, if the source or the sink failed for good.
    pub failure: Option<Arc<dyn Error + Send + Sync>>,
    /// Whether the run was aborted ([`Control::abort`]).
    pub aborted: bool,
}

/// Percentiles of the ack latency.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Maximum.
    pub max: Duration,
}

impl Report {
    /// Acknowledged messages per second.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.acked as f64 / secs
        } else {
            0.0
        }
    }

    /// Whether every received message was written, a duplicate, or
    /// dead-lettered, and acked — and nothing failed for good.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
            && !self.aborted
            && self.failed == 0
            && self.unacked == 0
            && self.acked == self.received
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dead = match &self.dead_letter_stream {
            Some(stream) if self.dead_lettered_by_source > 0 => format!(
                "(to {stream:?}: bad content, with the reason; {} by the source: unreadable or delivered too often)",
                self.dead_lettered_by_source
            ),
            Some(stream) => format!("(to {stream:?}: bad content, with the reason)"),
            None => "(bad content; the embedded source keeps no dead letters)".to_owned(),
        };
        writeln!(f, "flowgate ingest: {}", self.route)?;
        writeln!(f, "  received      {:>12}", self.received)?;
        writeln!(f, "  written       {:>12}   (stored)", self.written)?;
        writeln!(
            f,
            "  duplicates    {:>12}   (already stored: redeliveries skipped by the sink)",
            self.duplicates
        )?;
        writeln!(f, "  dead-lettered {:>12}   {dead}", self.dead_lettered)?;
        writeln!(
            f,
            "  failed        {:>12}   (not acked: left pending, delivered again later)",
            self.failed
        )?;
        writeln!(
            f,
            "  unacked       {:>12}   (written, but the ack failed: delivered again later as a duplicate)",
            self.unacked
        )?;
        writeln!(
            f,
            "  acked         {:>12}   (each after its row was written or dead-lettered)",
            self.acked
        )?;
        writeln!(
            f,
            "  retries       {:>12}   (sink writes retried after transient failures)",
            self.retries
        )?;
        writeln!(
            f,
            "  elapsed       {:>12.3} s (excluding the final idle wait)",
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "  throughput    {:>12.0} msg/s", self.throughput())?;
        write!(
            f,
            "  ack latency   p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            millis(self.ack_latency.p50),
            millis(self.ack_latency.p99),
            millis(self.ack_latency.max)
        )
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Why a run could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngestError {
    /// A setting is unusable (named in the message).
    Config(String),
    /// The sink could not be opened (connection, or a table that does not
    /// fit the mapping).
    Sink {
        /// The sink, as the report names it.
        sink: String,
        /// Why.
        source: SinkError,
    },
    /// The source could not be opened (a `flowgate_redis::SourceError` or
    /// a `flowgate_nats::SourceError`).
    Source(Box<dyn Error + Send + Sync>),
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(msg) => write!(f, "invalid settings: {msg}"),
            Self::Sink { sink, .. } => write!(f, "cannot open the sink ({sink})"),
            Self::Source(_) => f.write_str("cannot open the source"),
        }
    }
}

impl Error for IngestError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Config(_) => None,
            Self::Sink { source, .. } => Some(source),
            Self::Source(err) => Some(&**err),
        }
    }
}

/// Why a batch failed for good.
#[derive(Debug)]
enum WriteFailure {
    /// The sink failed with an error that retrying does not cure.
    Fatal(SinkError),
    /// The run was aborted while the write was being retried.
    Aborted,
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fatal(_) => f.write_str("the sink failed for good"),
            Self::Aborted => f.write_str("aborted while retrying the write"),
        }
    }
}

impl Error for WriteFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Fatal(err) => Some(err),
            Self::Aborted => None,
        }
    }
}

/// The source failed for good (a permanent broker error).
#[derive(Debug)]
struct SourceFailed(Box<dyn Error + Send + Sync>);

impl fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the source failed for good")
    }
}

impl Error for SourceFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

/// A message as the pipeline sees it.
struct Incoming {
    message: Message,
    ack: Acknowledge,
    received: Instant,
    /// A sharded stream's key: the row id (`@id`) is `<key>/<entry id>`, as
    /// entry ids repeat across shards.
    shard_key: Option<Arc<str>>,
}

/// How a message is acknowledged to its source.
// Every message moves through the pipeline with its token (from the source's
// read batch, through the mapping stage, into a write batch): the NATS and
// Kafka tokens keep the original message for its dead letter, so they are
// boxed, which keeps a message of every source small to move (24 bytes here
// instead of 288).
enum Acknowledge {
    /// Embedded: nothing to tell.
    Embedded,
    /// Redis: a batched `XACK` (by the acker of shard `.0`), or a dead
    /// letter.
    Redis(usize, AckToken),
    /// NATS: a batched `+ACK`, or a dead letter (of the original message).
    Nats(Box<(flowgate_nats::AckToken, flowgate_nats::Message)>),
    /// Kafka: marked in its partition's watermark (committed by the
    /// source), or a dead letter.
    Kafka(Box<(flowgate_kafka::AckToken, flowgate_kafka::Message)>),
}

/// The acker of a broker source.
#[derive(Clone)]
enum SourceAcker {
    /// One per shard (one for an unsharded stream).
    Redis(Vec<flowgate_redis::Acker>),
    Nats(flowgate_nats::Acker),
    Kafka(flowgate_kafka::Acker),
}

impl SourceAcker {
    async fn close(&self) {
        match self {
            SourceAcker::Redis(ackers) => {
                futures_util::future::join_all(ackers.iter().map(|acker| acker.close())).await;
            }
            SourceAcker::Nats(acker) => acker.close().await,
            SourceAcker::Kafka(acker) => acker.close().await,
        }
    }
}

/// The stop handle of a broker source.
#[derive(Clone)]
enum SourceStop {
    /// One per shard.
    Redis(Vec<flowgate_redis::StopHandle>),
    Nats(flowgate_nats::StopHandle),
    Kafka(flowgate_kafka::StopHandle),
}

impl SourceStop {
    fn stop(&self) {
        match self {
            SourceStop::Redis(stops) => stops.iter().for_each(flowgate_redis::StopHandle::stop),
            SourceStop::Nats(stop) => stop.stop(),
            SourceStop::Kafka(stop) => stop.stop(),
        }
    }
}

/// A broker source's counters, for the report and the metrics.
#[derive(Clone, Copy)]
enum SourceTotals {
    Redis(flowgate_redis::SourceStats),
    Nats(flowgate_nats::SourceStats),
    Kafka(flowgate_kafka::SourceStats),
}

impl SourceTotals {
    /// Messages the source dead-lettered itself (never handed out).
    fn by_source(&self) -> u64 {
        match self {
            SourceTotals::Redis(stats) => stats.unreadable + stats.deleted + stats.dead_lettered,
            SourceTotals::Nats(stats) => stats.dead_lettered,
            // Kafka counts no deliveries: only the mapping dead-letters.
            SourceTotals::Kafka(_) => 0,
        }
    }

    fn log(&self) {
        match self {
            SourceTotals::Redis(stats) => tracing::info!(
                read = stats.read,
                recovered = stats.recovered,
                taken_over = stats.claimed,
                unreadable = stats.unreadable,
                deleted = stats.deleted,
                too_many_deliveries = stats.dead_lettered,
                leases_lost = stats.leases_lost,
                lease_renewal_failures = stats.lease_renewal_failures,
                read_retries = stats.retries,
                ack_retries = stats.ack_retries,
                "redis source totals"
            ),
            SourceTotals::Nats(stats) => tracing::info!(
                read = stats.read,
                too_many_deliveries = stats.dead_lettered,
                released = stats.released,
                progress_signals = stats.progress_signals,
                progress_failures = stats.progress_failures,
                read_retries = stats.retries,
                ack_retries = stats.ack_retries,
                "nats source totals"
            ),
            SourceTotals::Kafka(stats) => tracing::info!(
                read = stats.received,
                redelivered = stats.naked,
                partitions_assigned = stats.assigned_partitions,
                partitions_revoked = stats.revoked_partitions,
                acks_after_revocation = stats.revoked_acks,
                commits = stats.commits,
                commit_failures = stats.commit_failures,
                fetch_errors = stats.fetch_errors,
                "kafka source totals"
            ),
        }
    }
}

impl Acknowledge {
    /// Acknowledges a written batch's messages — for Redis with one `XACK`
    /// ([`Acker::ack_all`](flowgate_redis::Acker::ack_all)); returns how many
    /// were left unacknowledged (pending).
    async fn ack_all(acks: Vec<Acknowledge>, acker: Option<&SourceAcker>) -> u64 {
        let total = acks.len() as u64;
        let result = match acker {
            None => return 0,
            Some(SourceAcker::Redis(ackers)) => {
                let mut by_shard: Vec<Vec<AckToken>> =
                    (0..ackers.len()).map(|_| Vec::new()).collect();
                for ack in acks {
                    if let Acknowledge::Redis(shard, token) = ack
                        && let Some(tokens) = by_shard.get_mut(shard)
                    {
                        tokens.push(token);
                    }
                }
                // One XACK per shard that has tokens, all at once.
                let results = futures_util::future::join_all(
                    ackers
                        .iter()
                        .zip(by_shard)
                        .filter(|(_, tokens)| !tokens.is_empty())
                        .map(|(acker, tokens)| async move {
                            let n = tokens.len() as u64;
                            (n, acker.ack_all(tokens).await)
                        }),
                )
                .await;
                let mut unacked = 0;
                for (n, result) in results {
                    if let Err(err) = result {
                        tracing::warn!(messages = n, error = %Chain(&err), "XACK failed; the batch's messages stay pending");
                        unacked += n;
                    }
                }
                return unacked;
            }
            Some(SourceAcker::Nats(acker)) => {
                let tokens: Vec<flowgate_nats::AckToken> = acks
                    .into_iter()
                    .filter_map(|ack| match ack {
                        Acknowledge::Nats(boxed) => Some(boxed.0),
                        _ => None,
                    })
                    .collect();
                if tokens.is_empty() {
                    return 0;
                }
                acker
                    .ack_all(tokens)
                    .await
                    .map_err(|err| Box::new(err) as Box<dyn Error + Send + Sync>)
            }
            Some(SourceAcker::Kafka(acker)) => {
                let tokens = acks.into_iter().filter_map(|ack| match ack {
                    Acknowledge::Kafka(boxed) => Some(boxed.0),
                    _ => None,
                });
                let outcome = acker.ack_all(tokens);
                if outcome.revoked > 0 {
                    tracing::warn!(
                        messages = outcome.revoked,
                        "acknowledged after their partitions moved to another consumer, which reads them again (the table keeps one row each)"
                    );
                }
                return outcome.revoked as u64;
            }
        };
        match result {
            Ok(()) => 0,
            Err(err) => {
                tracing::warn!(messages = total, error = %Chain(&*err), "ack failed; the batch's messages stay pending");
                total
            }
        }
    }

    async fn dead_letter(self, message: &Message, reason: &str) -> bool {
        match self {
            Acknowledge::Embedded => {
                tracing::warn!(id = %message.id, reason, "bad message (the embedded source keeps no dead letters)");
                true
            }
            // flowgate-redis logs the dead letter, with its stream.
            Acknowledge::Redis(_, token) => match token.dead_letter(message, reason).await {
                Ok(()) => true,
                Err(err) => {
                    tracing::error!(id = %message.id, error = %Chain(&err), "dead-lettering failed; the message stays pending");
                    false
                }
            },
            // flowgate-kafka logs the dead letter, with its topic.
            Acknowledge::Kafka(boxed) => {
                let (token, original) = *boxed;
                match token.dead_letter(&original, reason).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::error!(partition = original.partition, offset = original.offset, error = %Chain(&err), "dead-lettering failed; the message is handed out again");
                        false
                    }
                }
            }
            // flowgate-nats logs the dead letter, with its subject.
            Acknowledge::Nats(boxed) => {
                let (token, original) = *boxed;
                match token.dead_letter(&original, reason).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::error!(sequence = original.stream_sequence, error = %Chain(&err), "dead-lettering failed; the message is delivered again");
                        false
                    }
                }
            }
        }
    }
}

/// The sink of a run: it writes [`RowBatch`]es, so it encodes nothing
/// itself (its item type is `()`).
#[derive(Clone)]
enum Sink {
    Sqlite(SqliteSink<()>),
    Postgres(PostgresSink<()>),
}

impl Sink {
    async fn write_batch(&self, rows: Arc<RowBatch>) -> Result<Vec<RowOutcome>, SinkError> {
        match self {
            Sink::Sqlite(sink) => sink.write_batch(rows).await,
            Sink::Postgres(sink) => sink.write_batch(rows).await,
        }
    }
}

/// The sink's health, shared by the concurrent flushes: logs an outage once
/// when it starts and once when it ends.
struct Health {
    failing_since: Mutex<Option<Instant>>,
    retries: Tally,
    /// 1 while failing.
    down: metrics::Gauge,
}

impl Health {
    fn new() -> Self {
        let down = metrics::gauge!("flowgate_ingest_sink_down");
        down.set(0.0);
        Health {
            failing_since: Mutex::new(None),
            retries: Tally::new(
                metrics::counter!("flowgate_ingest_sink_retries_total"),
                false,
            ),
            down,
        }
    }

    fn failed(&self, err: &SinkError, attempt: u32, delay: Duration) {
        self.retries.add(1);
        let mut since = self
            .failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if since.is_none() {
            *since = Some(Instant::now());
            self.down.set(1.0);
            tracing::warn!(error = %Chain(err), "sink unavailable: pausing reads; retrying the write until it succeeds");
        }
        tracing::warn!(error = %Chain(err), attempt, retry_in = ?delay, "batch write failed; retrying");
    }

    fn succeeded(&self) {
        let mut since = self
            .failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(start) = since.take() {
            self.down.set(0.0);
            tracing::info!(outage = ?start.elapsed(), "sink recovered: resuming reads");
        }
    }
}

/// A count of the report and the Prometheus counter that follows it
/// (`--metrics-addr`; a no-op handle without).
struct Tally {
    count: AtomicU64,
    metric: metrics::Counter,
    /// Whether messages counted here were acknowledged.
    acks: bool,
}

impl Tally {
    fn new(metric: metrics::Counter, acks: bool) -> Self {
        Tally {
            count: AtomicU64::new(0),
            metric,
            acks,
        }
    }

    fn outcome(outcome: &'static str, acks: bool) -> Self {
        Tally::new(
            metrics::counter!("flowgate_ingest_messages_total", "outcome" => outcome),
            acks,
        )
    }

    fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
        self.metric.increment(n);
    }

    fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The Redis source's counters as Prometheus series, and the messages it
/// dead-lettered itself (never handed out) added to the ingest series as the
/// report adds them: received, dead-lettered, acked.
struct SourceExport {
    stats: Arc<dyn Fn() -> SourceTotals + Send + Sync>,
    by_source: Mutex<u64>,
    received: metrics::Counter,
    dead_lettered: metrics::Counter,
    acked: metrics::Counter,
}

impl SourceExport {
    fn new(stats: Arc<dyn Fn() -> SourceTotals + Send + Sync>) -> Self {
        SourceExport {
            stats,
            by_source: Mutex::new(0),
            received: metrics::counter!("flowgate_ingest_received_total"),
            dead_lettered: metrics::counter!("flowgate_ingest_messages_total", "outcome" => "dead_lettered"),
            acked: metrics::counter!("flowgate_ingest_acked_total"),
        }
    }

    fn sync(&self) {
        let stats = (self.stats)();
        #[cfg(feature = "metrics")]
        match &stats {
            SourceTotals::Redis(stats) => stats.record("ingest"),
            SourceTotals::Nats(stats) => stats.record("ingest"),
            SourceTotals::Kafka(stats) => stats.record("ingest"),
        }
        let total = stats.by_source();
        let mut seen = self
            .by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = total.saturating_sub(*seen);
        *seen = total;
        for counter in [&self.received, &self.dead_lettered, &self.acked] {
            counter.increment(new);
        }
    }
}

/// What happened to the messages so far: received, and each outcome; the
/// same counts as Prometheus series (see [`crate::metrics::INGEST`]).
struct Progress {
    received: Tally,
    written: Tally,
    duplicates: Tally,
    dead_lettered: Tally,
    failed: Tally,
    unacked: Tally,
    acked: metrics::Counter,
    in_flight: metrics::Gauge,
    ack_latency: metrics::Histogram,
    /// Receipt-to-ack times of the acked messages, in microseconds.
    latencies: Mutex<Vec<u32>>,
    last_outcome: Mutex<Option<Instant>>,
}

impl Progress {
    /// Registers the series with the recorder installed now.
    fn new() -> Self {
        Progress {
            received: Tally::new(metrics::counter!("flowgate_ingest_received_total"), false),
            written: Tally::outcome("written", true),
            duplicates: Tally::outcome("duplicate", true),
            dead_lettered: Tally::outcome("dead_lettered", true),
            failed: Tally::outcome("failed", false),
            unacked: Tally::outcome("unacked", false),
            acked: metrics::counter!("flowgate_ingest_acked_total"),
            in_flight: metrics::gauge!("flowgate_ingest_in_flight"),
            ack_latency: metrics::histogram!("flowgate_ingest_ack_latency_seconds"),
            latencies: Mutex::new(Vec::new()),
            last_outcome: Mutex::new(None),
        }
    }

    /// `n` messages taken from the source.
    fn received(&self, n: usize) {
        self.received.add(n as u64);
        self.in_flight.increment(n as f64);
    }

    /// Messages whose outcome is known.
    fn done(&self) -> u64 {
        [
            &self.written,
            &self.duplicates,
            &self.dead_lettered,
            &self.failed,
            &self.unacked,
        ]
        .iter()
        .map(|c| c.get())
        .sum()
    }

    fn outcome(&self, tally: &Tally, n: u64) {
        tally.add(n);
        if tally.acks {
            self.acked.increment(n);
        }
        self.in_flight.decrement(n as f64);
        *self
            .last_outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn acked(&self, received: impl IntoIterator<Item = Instant>) {
        let now = Instant::now();
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        latencies.extend(received.into_iter().map(|at| {
            let latency = now.duration_since(at);
            self.ack_latency.record(latency.as_secs_f64());
            u32::try_from(latency.as_micros()).unwrap_or(u32::MAX)
        }));
    }

    /// A dead letter (`true`) or a failed attempt at one (`false`: left
    /// pending).
    fn dead_letter(&self, done: bool, received: Instant) {
        if done {
            self.acked([received]);
            self.outcome(&self.dead_lettered, 1);
        } else {
            self.outcome(&self.failed, 1);
        }
    }

    fn last_outcome(&self) -> Option<Instant> {
        *self
            .last_outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fill(&self, report: &mut Report) {
        report.written = self.written.get();
        report.duplicates = self.duplicates.get();
        report.dead_lettered = self.dead_lettered.get();
        report.failed = self.failed.get();
        report.unacked = self.unacked.get();
        report.acked = report.written + report.duplicates + report.dead_lettered;
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        report.ack_latency = percentiles(&mut latencies);
    }
}

/// A written batch: its messages, in order, and those of them that do not
/// fit the mapping (by index, in order: they have no row, and are
/// dead-lettered with the reason).
struct Written {
    messages: Vec<Incoming>,
    misfits: Vec<(usize, String)>,
}

/// Acknowledges (or dead-letters) one written batch's messages, and counts
/// their outcomes: `result` has one outcome per row, that is per message
/// that is not a misfit.
async fn finish_batch(
    result: Result<Vec<RowOutcome>, WriteFailure>,
    written: Written,
    progress: Arc<Progress>,
    acker: Option<SourceAcker>,
    batch: tracing::Span,
) {
    let Written { messages, misfits } = written;
    let outcomes = match result {
        Ok(outcomes) if outcomes.len() + misfits.len() == messages.len() => outcomes,
        Ok(outcomes) => {
            batch.record("outcome", "failed");
            tracing::error!(
                rows = messages.len() - misfits.len(),
                outcomes = outcomes.len(),
                "the sink reported a different number of outcomes than rows; the batch is not acked"
            );
            progress.outcome(&progress.failed, messages.len() as u64);
            return;
        }
        Err(err) => {
            batch.record("outcome", "failed");
            tracing::warn!(messages = messages.len(), error = %Chain(&err), "batch not acked: left pending");
            progress.outcome(&progress.failed, messages.len() as u64);
            return;
        }
    };
    let mut inserted = 0;
    let mut duplicates = 0;
    let mut dead = 0u64;
    let mut acks = Vec::with_capacity(messages.len());
    let mut received = Vec::with_capacity(messages.len());
    let (mut outcomes, mut misfits) = (outcomes.into_iter(), misfits.into_iter().peekable());
    for (index, incoming) in messages.into_iter().enumerate() {
        let reason = match misfits.next_if(|(at, _)| *at == index) {
            Some((_, misfit)) => Some(misfit),
            None => match outcomes.next() {
                Some(RowOutcome::Inserted) => {
                    inserted += 1;
                    None
                }
                Some(RowOutcome::Duplicate) => {
                    duplicates += 1;
                    None
                }
                Some(RowOutcome::Rejected(rejected)) => {
                    Some(format!("rejected by the database: {}", Chain(&rejected)))
                }
                // Counted above: one outcome per row.
                None => Some("no row was written".to_owned()),
            },
        };
        match reason {
            None => {
                received.push(incoming.received);
                acks.push(incoming.ack);
            }
            Some(reason) => {
                dead += 1;
                let done = incoming.ack.dead_letter(&incoming.message, &reason).await;
                progress.dead_letter(done, incoming.received);
            }
        }
    }
    let total = acks.len() as u64;
    let unacked = Acknowledge::ack_all(acks, acker.as_ref()).await;
    batch.record("outcome", if unacked == 0 { "acked" } else { "unacked" });
    batch.record("written", inserted);
    batch.record("duplicates", duplicates);
    batch.record("dead_lettered", dead);
    if unacked == 0 {
        progress.acked(received);
        progress.outcome(&progress.written, inserted);
        progress.outcome(&progress.duplicates, duplicates);
    } else {
        // Which of them failed is not known per message: count the batch's
        // stored rows as unacked (they come back as duplicates).
        progress.outcome(&progress.unacked, unacked);
        let acked = total - unacked;
        let written = inserted.min(acked);
        progress.outcome(&progress.written, written);
        progress.outcome(&progress.duplicates, acked - written);
    }
}

/// Shared state of a run: the first fatal failure stops it.
struct Run {
    control: Control,
    failure: Mutex<Option<Arc<dyn Error + Send + Sync>>>,
}

impl Run {
    fn fail(&self, err: Arc<dyn Error + Send + Sync>) {
        let mut slot = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            tracing::error!(error = %Chain(&*err), "stopping: no new messages are read");
            *slot = Some(err);
        }
        self.control.stop();
    }
}

/// Runs the pipeline until the source ends (embedded), goes idle, reaches
/// `max_messages`, fails for good, or `control` stops it; then drains: every
/// message received is written and acked, dead-lettered, or reported failed
/// (and left for redelivery).
///
/// # Errors
///
/// [`IngestError`] if the run could not start. Failures during the run are
/// in [`Report::failure`].
pub async fn run(config: IngestConfig, control: Control) -> Result<Report, IngestError> {
    if config.max_in_flight == 0 || config.batch_size == 0 || config.flush_concurrency == 0 {
        return Err(IngestError::Config(
            "max_in_flight, batch_size and flush_concurrency must be at least 1".into(),
        ));
    }
    let mapping = Arc::new(config.mapping.clone());
    let table = mapping.table().clone();
    let encode = |(): &()| Vec::new();
    let (sink, sink_name) = match &config.sink {
        SinkConfig::Sqlite(path) => {
            let name = format!("SQLite {} table {}", path.display(), table.name());
            let sink = SqliteSink::open(path, table, encode)
                .await
                .map_err(|source| IngestError::Sink {
                    sink: name.clone(),
                    source,
                })?;
            (Sink::Sqlite(sink), name)
        }
        SinkConfig::Postgres(url) => {
            let name = format!("PostgreSQL table {}", table.name());
            // One connection per concurrent batch write: a second write does
            // not wait for the first one's commit.
            let options = PostgresOptions::default().connections(config.flush_concurrency);
            let sink = PostgresSink::connect_with(url, table, encode, options)
                .await
                .map_err(|source| IngestError::Sink {
                    sink: name.clone(),
                    source,
                })?;
            (Sink::Postgres(sink), name)
        }
    };

    let run = Arc::new(Run {
        control: control.clone(),
        failure: Mutex::new(None),
    });
    let pause = PauseHandle::new().name("ingest");
    let health = Arc::new(Health::new());
    let retry = Arc::new(
        Retry::new(
            Backoff::exponential(Duration::from_millis(100))
                .max_delay(Duration::from_secs(5))
                .jitter(Jitter::Equal),
        )
        .max_attempts(u32::MAX)
        .when(SinkError::is_transient)
        .on_retry({
            let health = Arc::clone(&health);
            move |err: &SinkError, attempt, delay| health.failed(err, attempt, delay)
        })
        .name("sink"),
    );

    // Read as many entries at once as a batch holds.
    let opened = open_source(&config.source, config.max_in_flight, config.batch_size).await?;
    let route = format!("{} -> {sink_name}", opened.name);

    let bar = progress_bar(config.progress, opened.expected);
    let start = Instant::now();
    let progress = Arc::new(Progress::new());
    let watcher = spawn_stop_conditions(&config.source, &run, &progress, &pause);

    let exporter = opened.stats.clone().map(|stats| {
        let export = Arc::new(SourceExport::new(stats));
        let ticking = Arc::clone(&export);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                ticking.sync();
            }
        });
        (export, task)
    });

    let counted = Arc::clone(&progress);
    let source_run = Arc::clone(&run);
    let stop = control.stop.clone();
    let stopper = opened.stop.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        if let Some(stopper) = stopper {
            stopper.stop();
        }
    });
    // One synchronous stage per read batch (no future per message): count
    // its messages. They are mapped onto rows when their write batch is
    // formed, straight into the batch's columns.
    let mut source = Box::pin(
        opened
            .stream
            // The embedded generator stops at once; a Redis source stops by
            // its stop handle, delivering what it has read.
            .take_until_cancelled(if opened.stop.is_some() {
                control.abort.clone()
            } else {
                control.stop.clone()
            })
            .pausable(&pause),
    );
    let counted_batches = stream::poll_fn(move |cx| {
        loop {
            match std::task::ready!(source.poll_next_unpin(cx)) {
                None => return std::task::Poll::Ready(None),
                Some(Err(err)) => source_run.fail(Arc::new(SourceFailed(err))),
                Some(Ok(batch)) => {
                    counted.received(batch.len());
                    return std::task::Poll::Ready(Some(batch));
                }
            }
        }
    });

    // Write in batches, `flush_concurrency` at once: one future per batch.
    // Each batch comes back with its messages once written; only then are
    // they acknowledged (or, for a row the database rejected, dead-lettered).
    let (write_run, write_health, write_pause, write_retry) = (
        Arc::clone(&run),
        Arc::clone(&health),
        pause.clone(),
        Arc::clone(&retry),
    );
    let write = move |messages: Vec<Incoming>| {
        // Mapped here, as the batch is formed: each message's values go
        // straight into the batch's columns (no row of its own); a misfit
        // goes on with its reason instead of a row, and is dead-lettered
        // when its batch is finished, in order.
        let mut rows = RowBatch::with_capacity(mapping.table(), messages.len());
        let mut misfits = Vec::new();
        for (index, incoming) in messages.iter().enumerate() {
            let message = &incoming.message;
            let sharded_id;
            let id = match &incoming.shard_key {
                None => &message.id,
                Some(key) => {
                    sharded_id = format!("{key}/{}", message.id);
                    &sharded_id
                }
            };
            if let Err(misfit) = mapping.append(&mut rows, id, &message.fields) {
                misfits.push((index, format!("does not fit the mapping: {misfit}")));
            }
        }
        let written = Written { messages, misfits };
        let (sink, run, health, pause, retry) = (
            sink.clone(),
            Arc::clone(&write_run),
            Arc::clone(&write_health),
            write_pause.clone(),
            Arc::clone(&write_retry),
        );
        // One span per batch, from its write to its ack (see `finish_batch`);
        // the sink's attempts run in a `write` span under it.
        let batch = tracing::info_span!(
            "batch",
            rows = rows.len(),
            misfits = written.misfits.len(),
            outcome = tracing::field::Empty,
            written = tracing::field::Empty,
            duplicates = tracing::field::Empty,
            dead_lettered = tracing::field::Empty,
        );
        let write = tracing::info_span!(parent: &batch, "write");
        async move {
            let result = write_batch(&sink, rows, &run, &health, &pause, &retry)
                .instrument(write)
                .await;
            (result, batch, written)
        }
    };
    let written: BoxStream<'static, _> = if let Some(field) = config.key.clone() {
        // Per-key order: a lane per written batch at once, each lane one
        // batch at a time; each message goes to its key's lane.
        let lanes = config.flush_concurrency;
        let by_lane = counted_batches.flat_map(move |batch| {
            let field = field.clone();
            stream::iter(batch.into_iter().map(move |incoming| {
                let key = incoming.message.fields.get(&field).unwrap_or_default();
                let lane = crate::lanes::lane_of(key, lanes);
                (incoming, lane)
            }))
        });
        crate::lanes::write_in_lanes(
            by_lane,
            config.flush_concurrency,
            |lane: &usize| *lane,
            config.batch_size,
            config.batch_delay,
            write,
        )
        .map(|(written, _lanes)| written)
        .boxed()
    } else {
        // The sources' read batches, carried on whole: a read batch as
        // large as a write batch is written as it is.
        counted_batches
            .write_chunks(
                config.batch_size,
                config.batch_delay,
                config.flush_concurrency,
                write,
            )
            .name("ingest")
            .boxed()
    };
    let ack_totals = Arc::clone(&progress);
    let batch_acker = opened.acker.clone();
    let finished = written
        .par_map_unordered(
            config.flush_concurrency.saturating_mul(2),
            move |(result, batch, written): (_, tracing::Span, Written)| {
                let ack = tracing::info_span!(parent: &batch, "ack");
                finish_batch(
                    result,
                    written,
                    Arc::clone(&ack_totals),
                    batch_acker.clone(),
                    batch,
                )
                .instrument(ack)
            },
        )
        .name("ingest-ack");

    let mut report = Report {
        route,
        dead_letter_stream: opened.dead_letter_stream,
        ..Report::default()
    };
    futures_util::pin_mut!(finished);
    while let Some(()) = finished.next().await {
        if let Some(bar) = &bar {
            bar.set_position(progress.done());
        }
    }
    progress.fill(&mut report);
    let last_outcome = progress.last_outcome().unwrap_or(start);
    if let Some(acker) = opened.acker {
        acker.close().await;
    }
    if let Some(watch) = watcher {
        watch.abort();
    }
    report.elapsed = last_outcome.duration_since(start);
    report.received = progress.received.get();
    if let Some((export, task)) = exporter {
        task.abort();
        export.sync();
    }
    if let Some(stats) = &opened.stats {
        let stats = stats();
        // Dead-lettered by the source itself, never handed out: unreadable
        // entries, entries deleted while pending, and messages delivered too
        // often to consumers that died holding them.
        let by_source = stats.by_source();
        report.received += by_source;
        report.dead_lettered += by_source;
        report.acked += by_source;
        report.dead_lettered_by_source = by_source;
        stats.log();
    }
    report.retries = health.retries.get();
    report.failure = run
        .failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    report.aborted = control.is_aborted();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let accounted =
        report.written + report.duplicates + report.dead_lettered + report.failed + report.unacked;
    if accounted != report.received {
        tracing::error!(
            received = report.received,
            accounted,
            "the report does not account for every message (a bug: please report it)"
        );
    }
    Ok(report)
}

/// Writes one batch: transient failures are retried with backoff while the
/// source is paused, until the write succeeds or the run is aborted; a fatal
/// failure stops the run.
async fn write_batch(
    sink: &Sink,
    rows: RowBatch,
    run: &Run,
    health: &Health,
    pause: &PauseHandle,
    retry: &Retry<SinkError>,
) -> Result<Vec<RowOutcome>, WriteFailure> {
    // Held from the first failure until the write succeeds: the source reads
    // nothing new while the sink is down.
    let hold = Mutex::new(None);
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Every attempt shares the same rows (no copy per retry).
    let rows = Arc::new(rows);
    let attempt = retry.run(|| {
        let rows = Arc::clone(&rows);
        let hold = &hold;
        async move {
            let result = sink.write_batch(rows).await;
            if let Err(err) = &result
                && err.is_transient()
            {
                hold.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert_with(|| pause.hold());
            }
            result
        }
    });
    let result = tokio::select! {
        result = attempt => result,
        () = run.control.abort.cancelled() => return Err(WriteFailure::Aborted),
    };
    match result {
        Ok(outcomes) => {
            health.succeeded();
            Ok(outcomes)
        }
        Err(err) => {
            let err = err.into_inner();
            let failure = Arc::new(FatalSink(Chain(&err).to_string()));
            run.fail(failure);
            Err(WriteFailure::Fatal(err))
        }
    }
}

/// A fatal sink error, kept for the report (the error itself goes to the
/// batch's acks).
#[derive(Debug)]
struct FatalSink(String);

impl fmt::Display for FatalSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the sink failed for good: {}", self.0)
    }
}

impl Error for FatalSink {}

/// Prints an error with its whole cause chain on one line: `a: b: c`,
/// leaving out a cause whose text the previous one already shows.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            let text = err.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            cause = err.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

struct Opened {
    /// The messages, a read batch at a time.
    stream: BoxStream<'static, Result<Vec<Incoming>, Box<dyn Error + Send + Sync>>>,
    expected: Option<u64>,
    name: String,
    stop: Option<SourceStop>,
    acker: Option<SourceAcker>,
    dead_letter_stream: Option<String>,
    /// The broker source's counters.
    stats: Option<Arc<dyn Fn() -> SourceTotals + Send + Sync>>,
}

async fn open_source(
    source: &SourceConfig,
    max_in_flight: usize,
    read_count: usize,
) -> Result<Opened, IngestError> {
    match source {
        SourceConfig::Embedded {
            messages,
            redeliver_every,
        } => {
            let redeliver_every = *redeliver_every;
            let total = messages + messages.checked_div(redeliver_every).unwrap_or(0);
            // A producer task of its own, as a broker client has: it
            // generates the messages a batch at a time, on another thread
            // than the pipeline, and stops when the pipeline drops the
            // stream.
            let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Incoming>>(2);
            let (messages, chunk) = (*messages, read_count.max(1) as u64);
            tokio::spawn(async move {
                let mut next = 0;
                while next < messages {
                    let end = messages.min(next.saturating_add(chunk));
                    let mut batch = Vec::with_capacity((end - next) as usize + 16);
                    let received = Instant::now();
                    let incoming = |message| Incoming {
                        message,
                        ack: Acknowledge::Embedded,
                        received,
                        shard_key: None,
                    };
                    generate_batch_with(next..end, |i, message| {
                        // A broker redelivers a message whose ack it did not see.
                        let again = (redeliver_every > 0
                            && i % redeliver_every == redeliver_every - 1)
                            .then(|| message.clone());
                        batch.push(incoming(message));
                        if let Some(again) = again {
                            batch.push(incoming(again));
                        }
                    });
                    if tx.send(batch).await.is_err() {
                        return;
                    }
                    next = end;
                }
            });
            let mut rx = rx;
            let stream =
                stream::poll_fn(move |cx| rx.poll_recv(cx).map(|batch| batch.map(Ok))).boxed();
            let name = if redeliver_every > 0 {
                format!(
                    "embedded generator ({messages} messages, every {redeliver_every}th delivered twice)"
                )
            } else {
                format!("embedded generator ({messages} messages)")
            };
            Ok(Opened {
                stream,
                expected: Some(total),
                name,
                stop: None,
                acker: None,
                dead_letter_stream: None,
                stats: None,
            })
        }
        SourceConfig::Redis(redis) => {
            // One stream, or the shards of a sharded one, each read from the
            // node that serves it.
            let (keys, urls) = match redis.shards {
                None => (vec![redis.stream.clone()], vec![redis.url.clone()]),
                Some(n) => {
                    let keys = crate::shards::keys(&redis.stream, n);
                    let urls = crate::shards::locate(&redis.url, &keys)
                        .await
                        .map_err(|err| IngestError::Source(Box::new(err)))?;
                    (keys, urls)
                }
            };
            let mut streams = Vec::with_capacity(keys.len());
            let mut stops = Vec::with_capacity(keys.len());
            let mut ackers = Vec::with_capacity(keys.len());
            let mut sources = Vec::with_capacity(keys.len());
            for (shard, (key, url)) in keys.iter().zip(&urls).enumerate() {
                let dead_letter = match redis.shards {
                    Some(_) => crate::shards::dead_letter(key),
                    None => redis.dead_letter_stream(),
                };
                let shard_key: Option<Arc<str>> = redis.shards.map(|_| Arc::from(key.as_str()));
                let source = RedisStreamSource::builder(url, key, &redis.group, &redis.consumer)
                    .max_in_flight(max_in_flight)
                    .batch_size(max_in_flight.min(read_count))
                    .claim_idle(redis.claim_idle)
                    .hung_after(
                        redis
                            .hung_after
                            .unwrap_or(redis.claim_idle.saturating_mul(10)),
                    )
                    .max_deliveries(redis.max_deliveries)
                    .dead_letter_stream(dead_letter)
                    .block(Duration::from_millis(500))
                    .connect()
                    .await
                    .map_err(|err| IngestError::Source(Box::new(err)))?;
                stops.push(source.stop_handle());
                ackers.push(source.acker().clone());
                let source = Arc::new(Mutex::new(source));
                sources.push(Arc::clone(&source));
                streams.push(shared_stream(
                    source,
                    read_count,
                    move |delivery: flowgate_redis::Delivery, received| {
                        let (message, token) = delivery.into_parts();
                        Incoming {
                            message,
                            ack: Acknowledge::Redis(shard, token),
                            received,
                            shard_key: shard_key.clone(),
                        }
                    },
                ));
            }
            let stream = if streams.len() == 1 {
                streams.pop().expect("one stream")
            } else {
                stream::select_all(streams).boxed()
            };
            let (name, dead_letter) = match redis.shards {
                None => (
                    format!(
                        "Redis stream {:?} (group {:?}, consumer {:?})",
                        redis.stream, redis.group, redis.consumer
                    ),
                    redis.dead_letter_stream(),
                ),
                Some(n) => {
                    let mut nodes: Vec<&String> = urls.iter().collect();
                    nodes.sort();
                    nodes.dedup();
                    (
                        format!(
                            "Redis streams \"{}:{{0..{}}}\" ({n} shards on {} node{}, group {:?}, consumer {:?})",
                            redis.stream,
                            n - 1,
                            nodes.len(),
                            if nodes.len() == 1 { "" } else { "s" },
                            redis.group,
                            redis.consumer
                        ),
                        format!("{}:{{0..{}}}:dead", redis.stream, n - 1),
                    )
                }
            };
            Ok(Opened {
                stream,
                expected: None,
                name,
                stop: Some(SourceStop::Redis(stops)),
                acker: Some(SourceAcker::Redis(ackers)),
                dead_letter_stream: Some(dead_letter),
                stats: Some(Arc::new(move || {
                    let mut total = flowgate_redis::SourceStats::default();
                    for source in &sources {
                        total.merge(
                            &source
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .stats(),
                        );
                    }
                    SourceTotals::Redis(total)
                })),
            })
        }
        SourceConfig::Nats(nats) => {
            let mut builder =
                flowgate_nats::NatsSource::builder(&nats.url, &nats.stream, &nats.consumer)
                    .subjects(nats.subjects.iter().cloned())
                    .max_in_flight(max_in_flight)
                    .batch_size(max_in_flight.min(read_count))
                    .ack_wait(nats.ack_wait)
                    .max_deliveries(nats.max_deliveries)
                    .block(Duration::from_millis(500));
            if let Some(subject) = &nats.dead_letter_subject {
                builder = builder.dead_letter_subject(subject.clone());
            }
            if let Some(interval) = nats.progress_interval {
                builder = builder.progress_interval(interval);
            }
            let source = builder
                .connect()
                .await
                .map_err(|err| IngestError::Source(Box::new(err)))?;
            let dead_letter = source.dead_letter_subject().to_owned();
            let stop = SourceStop::Nats(source.stop_handle());
            let acker = SourceAcker::Nats(source.acker().clone());
            let source = Arc::new(Mutex::new(source));
            let stats = Arc::clone(&source);
            let stream = shared_stream(
                source,
                read_count,
                |delivery: flowgate_nats::Delivery, received| {
                    let (original, token) = delivery.into_parts();
                    Incoming {
                        message: nats_message(&original),
                        ack: Acknowledge::Nats(Box::new((token, original))),
                        received,
                        shard_key: None,
                    }
                },
            );
            let name = format!(
                "NATS stream {:?} (consumer {:?})",
                nats.stream, nats.consumer
            );
            Ok(Opened {
                stream,
                expected: None,
                name,
                stop: Some(stop),
                acker: Some(acker),
                dead_letter_stream: Some(dead_letter),
                stats: Some(Arc::new(move || {
                    SourceTotals::Nats(stats.lock().unwrap_or_else(PoisonError::into_inner).stats())
                })),
            })
        }
        SourceConfig::Kafka(kafka) => {
            let mut builder =
                flowgate_kafka::KafkaSource::builder(&kafka.brokers, [&kafka.topic], &kafka.group)
                    .max_in_flight(max_in_flight)
                    .set(
                        "session.timeout.ms",
                        kafka.session_timeout.as_millis().to_string(),
                    )
                    .set(
                        "heartbeat.interval.ms",
                        (kafka.session_timeout.as_millis() / 3).max(1).to_string(),
                    );
            if let Some(topic) = &kafka.dead_letter_topic {
                builder = builder.dead_letter_topic(topic.clone());
            }
            let source = builder
                .connect()
                .await
                .map_err(|err| IngestError::Source(Box::new(err)))?;
            let dead_letter = source.dead_letter_topic().to_owned();
            let stop = SourceStop::Kafka(source.stop_handle());
            let acker = SourceAcker::Kafka(source.acker().clone());
            let source = Arc::new(Mutex::new(source));
            let stats = Arc::clone(&source);
            let stream = shared_stream(
                source,
                read_count,
                |delivery: flowgate_kafka::Delivery, received| {
                    let (original, token) = delivery.into_parts();
                    Incoming {
                        message: kafka_message(&original),
                        ack: Acknowledge::Kafka(Box::new((token, original))),
                        received,
                        shard_key: None,
                    }
                },
            );
            let name = format!("Kafka topic {:?} (group {:?})", kafka.topic, kafka.group);
            Ok(Opened {
                stream,
                expected: None,
                name,
                stop: Some(stop),
                acker: Some(acker),
                dead_letter_stream: Some(dead_letter),
                stats: Some(Arc::new(move || {
                    SourceTotals::Kafka(
                        stats.lock().unwrap_or_else(PoisonError::into_inner).stats(),
                    )
                })),
            })
        }
    }
}

/// A broker source shared with the report (its stats) as a stream of read
/// batches of [`Incoming`]: what the source has ready, up to `max` messages,
/// each delivery through `incoming` with the time its batch was taken. A
/// broker client hands its read batch out a message at a time; the pipeline
/// carries it on whole (`write_chunks`), so a message is moved once here
/// instead of once per stage. An error ends the batch before it and comes
/// next, boxed, on its own.
fn shared_stream<S, D, E>(
    source: Arc<Mutex<S>>,
    max: usize,
    incoming: impl Fn(D, Instant) -> Incoming + Send + 'static,
) -> BoxStream<'static, Result<Vec<Incoming>, Box<dyn Error + Send + Sync>>>
where
    S: futures_util::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    E: Error + Send + Sync + 'static,
{
    use std::task::Poll;
    let max = max.max(1);
    let (mut failed, mut ended): (Option<E>, bool) = (None, false);
    stream::poll_fn(move |cx| {
        if let Some(err) = failed.take() {
            return Poll::Ready(Some(Err(Box::new(err) as Box<dyn Error + Send + Sync>)));
        }
        if ended {
            return Poll::Ready(None);
        }
        let mut source = source.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = Vec::new();
        let received = Instant::now();
        while batch.len() < max {
            match source.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(delivery))) => {
                    if batch.capacity() == 0 {
                        // The rest of the source's read batch, at least.
                        let ready = source.size_hint().0.saturating_add(1);
                        batch.reserve_exact(ready.max(16).min(max));
                    }
                    batch.push(incoming(delivery, received));
                }
                Poll::Ready(Some(Err(err))) if batch.is_empty() => {
                    return Poll::Ready(Some(Err(Box::new(err) as Box<dyn Error + Send + Sync>)));
                }
                Poll::Ready(Some(Err(err))) => {
                    failed = Some(err);
                    break;
                }
                Poll::Ready(None) => {
                    ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        match (batch.is_empty(), ended) {
            (false, _) => Poll::Ready(Some(Ok(batch))),
            (true, true) => Poll::Ready(None),
            (true, false) => Poll::Pending,
        }
    })
    .boxed()
}

/// A Kafka record as the mapping sees it: its id is `<partition>-<offset>`
/// (the same on every delivery); its fields are its headers (those with a
/// value), `key` (when it has one), `topic` and `body` (the value) — a
/// header of those names is shadowed.
fn kafka_message(message: &flowgate_kafka::Message) -> Message {
    let key_len = message.key.as_ref().map_or(0, |k| k.len());
    let mut fields = FieldsBuilder::with_capacity(
        message.payload.len() + key_len + message.topic.len() + 64,
        message.headers.len() + 3,
    );
    for (name, value) in message.headers.iter() {
        if matches!(name.as_str(), "body" | "key" | "topic") {
            continue;
        }
        if let Some(value) = value {
            fields.field(name, value);
        }
    }
    if let Some(key) = &message.key {
        fields.field("key", key);
    }
    fields.field("topic", message.topic.as_bytes());
    fields.field("body", &message.payload);
    Message {
        id: format!("{}-{}", message.partition, message.offset),
        fields: fields.build(),
        deliveries: 1,
    }
}

/// A JetStream message as the mapping sees it: its id is the stream
/// sequence; its fields are its headers (the first value of each), `body`
/// (the payload) and `subject` — a header of either name is shadowed.
fn nats_message(message: &flowgate_nats::Message) -> Message {
    let headers = message.headers.as_ref();
    let count = headers.map_or(0, |h| h.iter().count());
    let mut fields = FieldsBuilder::with_capacity(
        message.payload.len() + message.subject.len() + 64,
        count + 2,
    );
    if let Some(headers) = headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if name == "body" || name == "subject" {
                continue;
            }
            if let Some(value) = values.first() {
                fields.field(name, value.as_str().as_bytes());
            }
        }
    }
    fields.field("subject", message.subject.as_bytes());
    fields.field("body", &message.payload);
    Message {
        id: message.stream_sequence.to_string(),
        fields: fields.build(),
        deliveries: message.deliveries,
    }
}

/// The embedded generator's `i`-th message: fields `seq` and `body` (about
/// 100 bytes of JSON, [`write_generated_body`]), id `msg-<i>`
/// ([`generated_id`]).
pub fn generate(i: u64) -> Message {
    let mut fields = FieldsBuilder::with_capacity(128, 2);
    fields
        .field("seq", itoa::Buffer::new().format(i).as_bytes())
        .field_with("body", |out| write_generated_body(i, out));
    Message {
        id: generated_id(i),
        fields: fields.build(),
        deliveries: 1,
    }
}

/// The embedded generator's messages `range`, as [`generate`] makes them,
/// with the fields of all of them in one buffer they share (one allocation
/// for the batch instead of one per message).
pub fn generate_batch(range: std::ops::Range<u64>) -> Vec<Message> {
    let mut messages =
        Vec::with_capacity(usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0));
    generate_batch_with(range, |_, message| messages.push(message));
    messages
}

/// [`generate_batch`], handing each message (and its number) to `each`
/// instead of collecting them: the embedded source puts them straight into
/// its read batch.
fn generate_batch_with(range: std::ops::Range<u64>, mut each: impl FnMut(u64, Message)) {
    let n = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0);
    let mut fields = FieldsBatchBuilder::with_capacity(n.saturating_mul(128), n);
    for i in range.clone() {
        fields
            .field("seq", itoa::Buffer::new().format(i).as_bytes())
            .field_with("body", |out| write_generated_body(i, out))
            .end_entry();
    }
    for (i, fields) in range.zip(fields.build()) {
        each(
            i,
            Message {
                id: generated_id(i),
                fields,
                deliveries: 1,
            },
        );
    }
}

/// The id of the embedded generator's `i`-th message: `msg-` and `i` in at
/// least 10 digits.
pub fn generated_id(i: u64) -> String {
    let mut id = Vec::with_capacity(24);
    id.extend_from_slice(b"msg-");
    push_padded(&mut id, i, 10);
    String::from_utf8(id).expect("ASCII digits")
}

/// Appends the body of the embedded generator's `i`-th message to `out`:
/// `{"seq":<i>,"kind":"order","customer":"c-<i % 10000, 5 digits>",
/// "amount_cents":<i × 7919 % 100000>,"currency":"EUR"}`. Written piece by
/// piece (no formatting machinery); the hand-written peers of the
/// benchmarks make their rows with the same function.
pub fn write_generated_body(i: u64, out: &mut Vec<u8>) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(br#"{"seq":"#);
    out.extend_from_slice(digits.format(i).as_bytes());
    out.extend_from_slice(br#","kind":"order","customer":"c-"#);
    push_padded(out, i % 10_000, 5);
    out.extend_from_slice(br#"","amount_cents":"#);
    out.extend_from_slice(digits.format(i.wrapping_mul(7919) % 100_000).as_bytes());
    out.extend_from_slice(br#","currency":"EUR"}"#);
}

/// Appends `n` in decimal, with leading zeros to at least `width` digits.
fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

/// Stops a Redis run when idle or after `max_messages`.
///
/// Idle means: no message arrived, none was in flight and the source was not
/// paused (by a sink outage) for `exit_when_idle`.
fn spawn_stop_conditions(
    source: &SourceConfig,
    run: &Arc<Run>,
    progress: &Arc<Progress>,
    pause: &PauseHandle,
) -> Option<tokio::task::JoinHandle<()>> {
    let (exit_when_idle, max_messages) = match source {
        SourceConfig::Embedded { .. } => return None,
        SourceConfig::Redis(redis) => (redis.exit_when_idle, redis.max_messages),
        SourceConfig::Nats(nats) => (nats.exit_when_idle, nats.max_messages),
        SourceConfig::Kafka(kafka) => (kafka.exit_when_idle, kafka.max_messages),
    };
    if exit_when_idle.is_none() && max_messages.is_none() {
        return None;
    }
    let (run, progress, pause) = (Arc::clone(run), Arc::clone(progress), pause.clone());
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut idle_since = Instant::now();
        let mut seen = 0;
        loop {
            tick.tick().await;
            let received = progress.received.get();
            if max_messages.is_some_and(|max| received >= max) {
                tracing::info!("stopping: --max-messages reached");
                run.control.stop();
                return;
            }
            let busy = received != seen || progress.done() != received || pause.is_paused();
            seen = received;
            if busy {
                idle_since = Instant::now();
            }
            if let Some(idle) = exit_when_idle
                && idle_since.elapsed() >= idle
            {
                tracing::info!(idle = ?idle, "stopping: no message arrived for --exit-when-idle-ms");
                run.control.stop();
                return;
            }
        }
    }))
}

fn progress_bar(enabled: bool, expected: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = match expected {
        Some(total) => indicatif::ProgressBar::new(total),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if expected.is_some() {
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} done ({per_sec}, eta {eta})"
    } else {
        "{spinner} [{elapsed_precise}] {pos} done ({per_sec})"
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    crate::logging::set_progress_bar(Some(bar.clone()));
    Some(bar)
}

fn percentiles(micros: &mut [u32]) -> Latency {
    if micros.is_empty() {
        return Latency::default();
    }
    micros.sort_unstable();
    let at = |q: f64| {
        let index = ((micros.len() - 1) as f64 * q).round() as usize;
        Duration::from_micros(u64::from(micros[index]))
    };
    Latency {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message moves through several stream stages and batch buffers
    /// by value: keeping it small is worth half the CPU of an embedded
    /// SQLite run (`Acknowledge` was 288 bytes with the NATS and Kafka
    /// tokens and their messages inline; see BENCHMARKS.md).
    #[test]
    fn generated_messages_are_the_documented_bytes() {
        for i in [0, 7, 12_345, 9_999_999_999, 123_456_789_012] {
            let message = generate(i);
            assert_eq!(message.id, format!("msg-{i:010}"));
            assert_eq!(message.fields.get("seq"), Some(i.to_string().as_bytes()));
            let body = format!(
                r#"{{"seq":{i},"kind":"order","customer":"c-{:05}","amount_cents":{},"currency":"EUR"}}"#,
                i % 10_000,
                (i * 7919) % 100_000
            );
            assert_eq!(message.fields.get("body"), Some(body.as_bytes()));
            serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
    }

    #[test]
    fn a_generated_batch_is_the_generated_messages() {
        let batch = generate_batch(95..105);
        assert_eq!(batch.len(), 10);
        for (i, message) in (95..105).zip(&batch) {
            let one = generate(i);
            assert_eq!(message.id, one.id);
            assert_eq!(message.deliveries, one.deliveries);
            let pairs = |m: &Message| {
                m.fields
                    .iter()
                    .map(|(n, v)| (n.to_owned(), v.to_vec()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(pairs(message), pairs(&one));
        }
        assert!(generate_batch(7..7).is_empty());
    }

    /// A per-message source becomes read batches of what it has ready, at
    /// most `max` each; an error ends the batch before it and comes on its
    /// own, and the stream goes on after it.
    #[tokio::test]
    async fn a_shared_source_is_read_a_batch_at_a_time() {
        use futures_util::stream::StreamExt as _;
        let read = |max| {
            let deliveries: Vec<Result<u64, std::io::Error>> = vec![
                Ok(0),
                Ok(1),
                Ok(2),
                Err(std::io::Error::other("lost the connection")),
                Ok(3),
            ];
            let source = Arc::new(Mutex::new(stream::iter(deliveries)));
            shared_stream(source, max, |i: u64, received| Incoming {
                message: generate(i),
                ack: Acknowledge::Embedded,
                received,
                shard_key: None,
            })
            .map(|batch| match batch {
                Ok(batch) => Ok(batch
                    .iter()
                    .map(|incoming| incoming.message.id.clone())
                    .collect::<Vec<_>>()),
                Err(err) => Err(err.to_string()),
            })
            .collect::<Vec<_>>()
        };
        let ids = |range: std::ops::Range<u64>| range.map(generated_id).collect::<Vec<_>>();
        assert_eq!(
            read(10).await,
            vec![
                Ok(ids(0..3)),
                Err("lost the connection".to_owned()),
                Ok(ids(3..4))
            ]
        );
        assert_eq!(
            read(2).await,
            vec![
                Ok(ids(0..2)),
                Ok(ids(2..3)),
                Err("lost the connection".to_owned()),
                Ok(ids(3..4))
            ]
        );
    }

    #[test]
    fn a_message_in_flight_stays_small() {
        assert!(
            size_of::<Acknowledge>() <= 96,
            "Acknowledge is {} bytes",
            size_of::<Acknowledge>()
        );
        assert!(
            size_of::<Incoming>() <= 272,
            "Incoming is {} bytes",
            size_of::<Incoming>()
        );
    }
}
