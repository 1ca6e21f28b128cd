//! `flowgate ingest`: consume messages, transform them concurrently, write
//! them in batches, and acknowledge each message only after its batch is
//! durably written.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flowgate::batch::{AckError, Batcher};
use flowgate::prelude::*;
use flowgate_redis::{AckToken, RedisStreamSource, StopHandle};
use flowgate_sql::{PostgresSink, SinkError, SqliteSink, Table, Value, Written};
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::time::Instant;

/// Where messages come from.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Generated in process: `messages` messages, every `redeliver_every`-th
    /// of which is delivered a second time (as a broker redelivers after a
    /// lost ack), to show the sink's idempotency. 0 turns redelivery off.
    Embedded {
        /// How many distinct messages.
        messages: u64,
        /// Redeliver every n-th message once more.
        redeliver_every: u64,
    },
    /// A Redis stream, read as one consumer of a group.
    Redis {
        /// `redis://host:port/`.
        url: String,
        /// The stream key.
        stream: String,
        /// The consumer group.
        group: String,
        /// This consumer's name in the group.
        consumer: String,
        /// Take over other consumers' messages idle this long.
        claim_idle: Duration,
        /// Stop once no message arrived for this long (`None`: run until
        /// interrupted).
        exit_when_idle: Option<Duration>,
        /// Stop after this many messages (`None`: no limit).
        max_messages: Option<u64>,
    },
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
    /// The table rows are written to.
    pub table: String,
    /// Concurrent transforms (`par_map`).
    pub workers: usize,
    /// Items per batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub batch_delay: Duration,
    /// Batches written at once.
    pub flush_concurrency: usize,
    /// Messages between receipt and ack at once: the pipeline's bound.
    pub max_in_flight: usize,
    /// Show a progress bar.
    pub progress: bool,
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// A description of the source and sink.
    pub route: String,
    /// Messages taken from the source.
    pub received: u64,
    /// Rows stored by the sink.
    pub written: u64,
    /// Messages whose row was already stored (redeliveries), skipped.
    pub duplicates: u64,
    /// Messages acknowledged to the source, after their row was stored.
    pub acked: u64,
    /// Messages whose batch failed; never acknowledged, so the source
    /// delivers them again.
    pub failed: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Time from receipt to acknowledgement, per acked message.
    pub ack_latency: Latency,
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
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "flowgate ingest: {}", self.route)?;
        writeln!(f, "  received      {:>12}", self.received)?;
        writeln!(f, "  written       {:>12}", self.written)?;
        writeln!(
            f,
            "  duplicates    {:>12}   (already stored: redeliveries skipped by the sink)",
            self.duplicates
        )?;
        writeln!(
            f,
            "  acked         {:>12}   (each after its batch was written)",
            self.acked
        )?;
        writeln!(
            f,
            "  failed        {:>12}   (not acked: will be delivered again)",
            self.failed
        )?;
        writeln!(f, "  elapsed       {:>12.3} s", self.elapsed.as_secs_f64())?;
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

/// Why a run could not start or had to stop.
#[derive(Debug)]
pub enum IngestError {
    /// A setting is unusable.
    Config(String),
    /// The sink could not be opened.
    Sink(SinkError),
    /// The source could not be opened, or failed for good.
    Source(flowgate_redis::SourceError),
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(msg) => write!(f, "invalid settings: {msg}"),
            Self::Sink(err) => write!(f, "sink: {err}"),
            Self::Source(err) => write!(f, "source: {err}"),
        }
    }
}

impl std::error::Error for IngestError {}

/// A message as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct Message {
    /// Unique id: the row's key.
    pub id: String,
    /// Sequence number from the producer.
    pub seq: i64,
    /// The payload.
    pub body: Vec<u8>,
}

/// The row written for a message.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    seq: i64,
    body: Vec<u8>,
    checksum: i64,
}

/// How a message is acknowledged to its source.
enum Acknowledge {
    /// Embedded: the generator's commit counter.
    Embedded(Arc<AtomicU64>),
    /// Redis: a batched `XACK`.
    Redis(AckToken),
}

impl Acknowledge {
    async fn ack(self) -> bool {
        match self {
            Acknowledge::Embedded(counter) => {
                counter.fetch_add(1, Ordering::Relaxed);
                true
            }
            Acknowledge::Redis(token) => match token.ack().await {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(error = %err, "XACK failed; the message stays pending");
                    false
                }
            },
        }
    }
}

struct Incoming {
    message: Message,
    ack: Acknowledge,
    received: Instant,
}

/// The table `flowgate ingest` writes: `id` (key), `seq`, `body`, `checksum`.
///
/// # Errors
///
/// If `name` is not a plain SQL identifier.
pub fn table(name: &str) -> Result<Table, flowgate_sql::TableError> {
    Table::builder(name)
        .text("id")
        .integer("seq")
        .blob("body")
        .integer("checksum")
        .key("id")
        .build()
}

fn encode(row: &Row) -> Vec<Value> {
    vec![
        Value::from(row.id.as_str()),
        Value::from(row.seq),
        Value::from(row.body.as_slice()),
        Value::from(row.checksum),
    ]
}

/// The transform stage: validate and enrich (here: an FNV-1a checksum).
fn transform(message: Message) -> Row {
    let checksum = message
        .body
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
    Row {
        id: message.id,
        seq: message.seq,
        body: message.body,
        checksum: checksum as i64,
    }
}

#[derive(Clone)]
enum Sink {
    Sqlite(SqliteSink<Row>),
    Postgres(PostgresSink<Row>),
}

impl Sink {
    async fn write(&self, rows: Vec<Row>) -> Result<Vec<Written>, SinkError> {
        match self {
            Sink::Sqlite(sink) => sink.write(rows).await,
            Sink::Postgres(sink) => sink.write(rows).await,
        }
    }
}

enum Outcome {
    Acked {
        written: Written,
        latency: Duration,
    },
    /// Written, but the ack to the source failed.
    Unacked(Written),
    Failed,
}

/// Runs the pipeline until the source ends (embedded), goes idle, reaches
/// `max_messages`, or Ctrl-C is pressed; then drains: every message received
/// is written and acked, or reported failed (and left for redelivery).
///
/// # Errors
///
/// [`IngestError`] if a setting is unusable, or the sink or the source
/// cannot be opened or fails for good.
pub async fn run(config: IngestConfig) -> Result<Report, IngestError> {
    if config.workers == 0 || config.max_in_flight == 0 {
        return Err(IngestError::Config(
            "workers and max_in_flight must be at least 1".into(),
        ));
    }
    let table = table(&config.table).map_err(|e| IngestError::Config(e.to_string()))?;
    let (sink, sink_name) = match &config.sink {
        SinkConfig::Sqlite(path) => (
            Sink::Sqlite(
                SqliteSink::open(path, table, encode)
                    .await
                    .map_err(IngestError::Sink)?,
            ),
            format!("SQLite {}", path.display()),
        ),
        SinkConfig::Postgres(url) => (
            Sink::Postgres(
                PostgresSink::connect(url, table, encode)
                    .await
                    .map_err(IngestError::Sink)?,
            ),
            "PostgreSQL".to_owned(),
        ),
    };

    let writer = sink.clone();
    let batcher = Batcher::builder()
        .max_items(config.batch_size)
        .max_delay(config.batch_delay)
        .flush_concurrency(config.flush_concurrency)
        .capacity(config.batch_size * (config.flush_concurrency + 1))
        .build(move |rows: Vec<Row>| {
            let sink = writer.clone();
            async move { sink.write(rows).await }
        })
        .map_err(|e| IngestError::Config(e.to_string()))?;

    let (incoming, expected, source_name, stop, acker) =
        open_source(&config.source, config.max_in_flight).await?;
    let route = format!("{source_name} -> {sink_name}");

    let bar = progress_bar(config.progress, expected);
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let last_seen = Arc::new(AtomicU64::new(0));
    let idle_watch =
        spawn_stop_conditions(&config.source, stop.clone(), &received, &last_seen, start);

    let counted = Arc::clone(&received);
    let seen = Arc::clone(&last_seen);
    let outcomes = incoming
        .map(move |incoming| {
            counted.fetch_add(1, Ordering::Relaxed);
            seen.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            incoming
        })
        // Fan out: transform concurrently.
        .par_map_unordered(config.workers, |incoming: Incoming| async move {
            let row = transform(incoming.message);
            (row, incoming.ack, incoming.received)
        })
        // Fan in: submit to the batcher and wait, concurrently, for each
        // row's batch to be written; only then acknowledge the message.
        .par_map_unordered(config.max_in_flight, |(row, ack, received)| {
            let batcher = batcher.clone();
            async move {
                let result = match batcher.submit(row).await {
                    Ok(flushed) => flushed.await,
                    Err(_) => Err(AckError::Closed),
                };
                match result {
                    Ok(written) => {
                        if ack.ack().await {
                            Outcome::Acked {
                                written,
                                latency: received.elapsed(),
                            }
                        } else {
                            Outcome::Unacked(written)
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "batch failed; its messages are not acked");
                        Outcome::Failed
                    }
                }
            }
        });

    let mut report = Report {
        route,
        ..Report::default()
    };
    let mut latencies: Vec<u32> = Vec::new();
    futures_util::pin_mut!(outcomes);
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Acked { written, latency } => {
                count_written(&mut report, written);
                report.acked += 1;
                latencies.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            }
            Outcome::Unacked(written) => count_written(&mut report, written),
            Outcome::Failed => report.failed += 1,
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    batcher.close().await;
    if let Some(acker) = acker {
        acker.close().await;
    }
    if let Some(watch) = idle_watch {
        watch.abort();
    }
    report.elapsed = start.elapsed();
    report.received = received.load(Ordering::Relaxed);
    report.ack_latency = percentiles(&mut latencies);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

fn count_written(report: &mut Report, written: Written) {
    match written {
        Written::Inserted => report.written += 1,
        Written::Duplicate => report.duplicates += 1,
    }
}

type Opened = (
    BoxStream<'static, Incoming>,
    Option<u64>,
    String,
    Option<StopHandle>,
    Option<flowgate_redis::Acker>,
);

async fn open_source(source: &SourceConfig, max_in_flight: usize) -> Result<Opened, IngestError> {
    match source {
        SourceConfig::Embedded {
            messages,
            redeliver_every,
        } => {
            let committed = Arc::new(AtomicU64::new(0));
            let redeliver_every = *redeliver_every;
            let total = messages + messages.checked_div(redeliver_every).unwrap_or(0);
            let generated = stream::iter(0..*messages).flat_map(move |i| {
                let message = generate(i);
                // A broker redelivers a message whose ack it did not see.
                let again = (redeliver_every > 0 && i % redeliver_every == redeliver_every - 1)
                    .then(|| message.clone());
                stream::iter(std::iter::once(message).chain(again))
            });
            let incoming = generated
                .map(move |message| Incoming {
                    message,
                    ack: Acknowledge::Embedded(Arc::clone(&committed)),
                    received: Instant::now(),
                })
                .boxed();
            let name = if redeliver_every > 0 {
                format!(
                    "embedded generator ({messages} messages, every {redeliver_every}th delivered twice)"
                )
            } else {
                format!("embedded generator ({messages} messages)")
            };
            Ok((incoming, Some(total), name, None, None))
        }
        SourceConfig::Redis {
            url,
            stream,
            group,
            consumer,
            claim_idle,
            ..
        } => {
            let source = RedisStreamSource::builder(url, stream, group, consumer)
                .max_in_flight(max_in_flight.max(256))
                .claim_idle(*claim_idle)
                .block(Duration::from_millis(500))
                .connect()
                .await
                .map_err(IngestError::Source)?;
            let stop = source.stop_handle();
            let acker = source.acker().clone();
            let incoming = source
                .filter_map(|delivery| async move {
                    match delivery {
                        Ok(delivery) => {
                            let (message, token) = delivery.into_parts();
                            let seq = message
                                .fields
                                .get("seq")
                                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                                .unwrap_or(0);
                            let body = message.fields.get("body").cloned().unwrap_or_default();
                            Some(Incoming {
                                message: Message {
                                    id: message.id,
                                    seq,
                                    body,
                                },
                                ack: Acknowledge::Redis(token),
                                received: Instant::now(),
                            })
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "the redis source failed");
                            None
                        }
                    }
                })
                .boxed();
            let name = format!("Redis stream {stream:?} (group {group:?}, consumer {consumer:?})");
            Ok((incoming, None, name, Some(stop), Some(acker)))
        }
    }
}

/// The embedded generator's `i`-th message: about 100 bytes of JSON.
pub fn generate(i: u64) -> Message {
    Message {
        id: format!("msg-{i:010}"),
        seq: i as i64,
        body: format!(
            r#"{{"seq":{i},"kind":"order","customer":"c-{:05}","amount_cents":{},"currency":"EUR"}}"#,
            i % 10_000,
            (i * 7919) % 100_000
        )
        .into_bytes(),
    }
}

/// Stops a Redis run on Ctrl-C, when idle, or after `max_messages`.
fn spawn_stop_conditions(
    source: &SourceConfig,
    stop: Option<StopHandle>,
    received: &Arc<AtomicU64>,
    last_seen_ms: &Arc<AtomicU64>,
    start: Instant,
) -> Option<tokio::task::JoinHandle<()>> {
    let stop = stop?;
    let SourceConfig::Redis {
        exit_when_idle,
        max_messages,
        ..
    } = source
    else {
        return None;
    };
    let (exit_when_idle, max_messages) = (*exit_when_idle, *max_messages);
    let received = Arc::clone(received);
    let last_seen_ms = Arc::clone(last_seen_ms);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        // One listener for the whole run: a signal between two polls of a
        // fresh listener would be lost.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => {
                    eprintln!("interrupted: finishing the messages in flight, then stopping");
                    stop.stop();
                    return;
                }
                _ = tick.tick() => {}
            }
            let count = received.load(Ordering::Relaxed);
            if max_messages.is_some_and(|max| count >= max) {
                stop.stop();
                return;
            }
            if let Some(idle) = exit_when_idle {
                let last = Duration::from_millis(last_seen_ms.load(Ordering::Relaxed));
                if start.elapsed().saturating_sub(last) >= idle {
                    stop.stop();
                    return;
                }
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
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} acked ({per_sec}, eta {eta})"
    } else {
        "{spinner} [{elapsed_precise}] {pos} acked ({per_sec})"
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
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
