//! The source: its settings ([`SourceBuilder`]), the stream of deliveries
//! ([`NatsSource`]) and the task that pulls them.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{GetStreamByNameErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream;
use async_nats::jetstream::{self, ErrorCode};
use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::delivery::{self, Acker, Delivery, InFlight, Message};
use crate::error::{self, BuildError, NatsError, SourceError, Target};
use crate::shared::{self, Counters, Shared};

/// The settings of a [`NatsSource`]; from [`NatsSource::builder`].
///
/// | setting | default | bounds |
/// |---|---|---|
/// | [`subjects`](Self::subjects) | none: the stream must exist | valid subjects, wildcards allowed |
/// | [`batch_size`](Self::batch_size) | 256 | at least 1 ([`BuildError::ZeroBatchSize`]) |
/// | [`block`](Self::block) | 1 s | longer than zero ([`BuildError::ZeroBlock`]) |
/// | [`max_in_flight`](Self::max_in_flight) | 10,000 | at least 1 ([`BuildError::ZeroMaxInFlight`]) |
/// | [`ack_wait`](Self::ack_wait) | 30 s | longer than zero ([`BuildError::ZeroAckWait`]) |
/// | [`progress_interval`](Self::progress_interval) | `ack_wait / 3` | in `(0, ack_wait)` ([`BuildError::ProgressInterval`]) |
/// | [`max_deliveries`](Self::max_deliveries) | 5 | at least 1 ([`BuildError::ZeroMaxDeliveries`]) |
/// | [`dead_letter_subject`](Self::dead_letter_subject) | `flowgate.dead.<stream>` | a subject without wildcards |
/// | [`ack_batch`](Self::ack_batch) | 512 acks or 20 ms | at least 1 item ([`BuildError::ZeroAckBatch`]) |
/// | [`ack_retry_budget`](Self::ack_retry_budget) | 60 s | any; zero: no retry |
/// | [`connect_timeout`](Self::connect_timeout) | 2 s | longer than zero ([`BuildError::ZeroConnectTimeout`]) |
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct SourceBuilder {
    url: String,
    stream: String,
    consumer: String,
    subjects: Vec<String>,
    batch_size: usize,
    block: Duration,
    max_in_flight: usize,
    ack_wait: Duration,
    progress_interval: Option<Duration>,
    max_deliveries: u64,
    dead_letter: Option<String>,
    ack_max_items: usize,
    ack_max_delay: Duration,
    ack_retry_budget: Duration,
    connect_timeout: Duration,
}

impl SourceBuilder {
    /// Creates the stream with these subjects if it does not exist (a file
    /// stream with JetStream's defaults otherwise). Without subjects, a
    /// missing stream is [`SourceError::NoStream`].
    pub fn subjects<S: Into<String>>(mut self, subjects: impl IntoIterator<Item = S>) -> Self {
        self.subjects = subjects.into_iter().map(Into::into).collect();
        self
    }

    /// The most messages one pull request asks for (fewer when fewer
    /// deliveries are free under `max_in_flight`).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// How long one pull request waits on the server for messages. It also
    /// bounds how long [`StopHandle::stop`] waits for a read in progress.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// The most deliveries out at once — handed out and not yet acked,
    /// nak'd, dead-lettered or dropped. Reading pauses at the bound, so a
    /// slow sink holds at most this many messages. A new consumer is
    /// created with `max_ack_pending` of at least this.
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// The ack wait of a consumer the source creates: how long the server
    /// waits for an ack (or an in-progress signal) before it delivers a
    /// message again. An existing consumer keeps its own ack wait, which
    /// the source then uses.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// How often the held deliveries are signalled in progress (`+WPI`),
    /// each signal restarting their ack wait; default a third of the ack
    /// wait, so two signals may be lost before a redelivery.
    pub fn progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = Some(interval);
        self
    }

    /// A message delivered more than this many times is dead-lettered by
    /// the source instead of handed out: it keeps crashing, hanging or
    /// being nak'd. (The consumer's own `max_deliver` is left unlimited, so
    /// that the server never drops a message silently.)
    pub fn max_deliveries(mut self, max_deliveries: u64) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// The subject dead letters are published to. If no stream captures
    /// it, the source creates one, `<stream>-dead`, when it connects.
    pub fn dead_letter_subject(mut self, subject: impl Into<String>) -> Self {
        self.dead_letter = Some(subject.into());
        self
    }

    /// Acks are sent in batches of at most `max_items`, waiting at most
    /// `max_delay` for a batch to fill.
    pub fn ack_batch(mut self, max_items: usize, max_delay: Duration) -> Self {
        self.ack_max_items = max_items;
        self.ack_max_delay = max_delay;
        self
    }

    /// How long a failing ack, nak, term or dead letter is retried before
    /// it fails.
    pub fn ack_retry_budget(mut self, budget: Duration) -> Self {
        self.ack_retry_budget = budget;
        self
    }

    /// How long connecting may take; it is tried once.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<(), BuildError> {
        if !error::valid_name(&self.stream) {
            return Err(BuildError::InvalidName {
                what: "stream",
                name: self.stream.clone(),
            });
        }
        if !error::valid_name(&self.consumer) {
            return Err(BuildError::InvalidName {
                what: "consumer",
                name: self.consumer.clone(),
            });
        }
        if let Some(bad) = self
            .subjects
            .iter()
            .find(|s| !error::valid_subject(s, true))
        {
            return Err(BuildError::InvalidSubject {
                what: "stream",
                subject: bad.clone(),
            });
        }
        if let Some(dead) = &self.dead_letter
            && !error::valid_subject(dead, false)
        {
            return Err(BuildError::InvalidSubject {
                what: "dead-letter",
                subject: dead.clone(),
            });
        }
        if self.batch_size == 0 {
            return Err(BuildError::ZeroBatchSize);
        }
        if self.block.is_zero() {
            return Err(BuildError::ZeroBlock);
        }
        if self.max_in_flight == 0 {
            return Err(BuildError::ZeroMaxInFlight);
        }
        if self.ack_wait.is_zero() {
            return Err(BuildError::ZeroAckWait);
        }
        if let Some(interval) = self.progress_interval
            && (interval.is_zero() || interval >= self.ack_wait)
        {
            return Err(BuildError::ProgressInterval {
                interval,
                ack_wait: self.ack_wait,
            });
        }
        if self.max_deliveries == 0 {
            return Err(BuildError::ZeroMaxDeliveries);
        }
        if self.ack_max_items == 0 {
            return Err(BuildError::ZeroAckBatch);
        }
        if self.connect_timeout.is_zero() {
            return Err(BuildError::ZeroConnectTimeout);
        }
        Ok(())
    }

    /// Connects (once, within `connect_timeout`), finds or creates the
    /// stream, the durable pull consumer and the dead-letter stream, and
    /// starts reading.
    ///
    /// # Errors
    ///
    /// [`SourceError::Build`] for a setting that cannot work (nothing is
    /// sent); [`SourceError::Connect`] if the server cannot be reached or
    /// refuses the client; [`SourceError::NoStream`] if the stream is
    /// missing and no subjects were given; [`SourceError::ConsumerConfig`]
    /// if the consumer exists with another ack policy or is a push
    /// consumer; [`SourceError::Nats`] if JetStream refused a request (it
    /// is not enabled on the server, a subject overlaps another stream's).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it resolves leaves at most a
    /// created stream or consumer behind, and no reader running.
    pub async fn connect(self) -> Result<NatsSource, SourceError> {
        self.validate()?;
        let server = error::server_name(&self.url);
        let dead_letter = self
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("flowgate.dead.{}", self.stream));
        let target = Target {
            server: server.clone(),
            stream: self.stream.clone(),
            consumer: self.consumer.clone(),
            dead_letter,
        };
        let connect_error = |source: NatsError| SourceError::Connect {
            server: server.clone(),
            source: Arc::from(source),
        };
        let options = async_nats::ConnectOptions::new()
            .name(format!("flowgate:{}:{}", self.stream, self.consumer))
            .connection_timeout(self.connect_timeout);
        let client =
            match tokio::time::timeout(self.connect_timeout, options.connect(self.url.as_str()))
                .await
            {
                Ok(Ok(client)) => client,
                Ok(Err(err)) => return Err(connect_error(err.into())),
                Err(elapsed) => return Err(connect_error(elapsed.into())),
            };
        let js = jetstream::new(client.clone());
        let stream = self.find_stream(&js, &target).await?;
        let consumer = self.find_consumer(&stream, &target).await?;
        find_dead_letter_stream(&js, &target).await?;

        let ack_wait = consumer.cached_info().config.ack_wait;
        let progress = match self.progress_interval {
            Some(interval) if interval < ack_wait => interval,
            Some(interval) => {
                tracing::warn!(
                    ?interval, ?ack_wait, consumer = %self.consumer,
                    "progress_interval is not shorter than the existing consumer's ack wait; \
                     using a third of the ack wait"
                );
                ack_wait / 3
            }
            None => ack_wait / 3,
        }
        .max(Duration::from_millis(1));

        let (shared, dropped) = Shared::new(target, client);
        tokio::spawn(shared::keep(
            Arc::downgrade(&shared),
            shared.client.clone(),
            dropped,
            progress,
        ));
        let acker = Acker::new(
            Arc::clone(&shared),
            self.ack_max_items,
            self.ack_max_delay,
            self.ack_retry_budget,
        )
        .map_err(|err| {
            // The batcher's own bounds are checked above; this is only the
            // case of a setting this crate does not validate yet.
            SourceError::Nats {
                op: "ack batcher",
                server: shared.target.server.clone(),
                stream: shared.target.stream.clone(),
                consumer: shared.target.consumer.clone(),
                source: Arc::new(err),
            }
        })?;
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(2);
        let reader = Reader {
            shared: Arc::clone(&shared),
            consumer,
            stream,
            acker: acker.clone(),
            room: Arc::new(Semaphore::new(self.max_in_flight)),
            tx,
            stop: stop.clone(),
            batch_size: self.batch_size,
            block: self.block,
            max_deliveries: self.max_deliveries,
            retry: shared::retry_policy(&shared.target, "dead letter", self.ack_retry_budget),
        };
        // A panic in the reader (a bug) ends the stream with an error, not
        // silently: the supervisor holds a sender until the reader is gone.
        let supervisor_tx = reader.tx.clone();
        let reader = tokio::spawn(reader.run());
        tokio::spawn(async move {
            if let Err(err) = reader.await
                && err.is_panic()
            {
                tracing::error!("the JetStream reader task panicked; the stream ends");
                let _ = supervisor_tx.send(Err(SourceError::ReaderPanicked)).await;
            }
        });
        tracing::info!(
            server = %shared.target.server, stream = %shared.target.stream,
            consumer = %shared.target.consumer, ?ack_wait, ?progress,
            "reading JetStream"
        );
        Ok(NatsSource {
            rx,
            batch: Vec::new().into_iter(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            acker,
            shared,
        })
    }

    async fn find_stream(
        &self,
        js: &jetstream::Context,
        target: &Target,
    ) -> Result<stream::Stream, SourceError> {
        let found = js.get_stream(&self.stream).await;
        match found {
            Ok(stream) => Ok(stream),
            Err(err)
                if matches!(
                    err.kind(),
                    GetStreamErrorKind::JetStream(ref js_err)
                        if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                if self.subjects.is_empty() {
                    return Err(SourceError::NoStream {
                        server: target.server.clone(),
                        stream: self.stream.clone(),
                    });
                }
                let config = stream::Config {
                    name: self.stream.clone(),
                    subjects: self.subjects.clone(),
                    ..Default::default()
                };
                let created = js
                    .get_or_create_stream(config)
                    .await
                    .map_err(|err| target.error("create stream", err.into()))?;
                tracing::info!(stream = %self.stream, subjects = ?self.subjects, "created the stream");
                Ok(created)
            }
            Err(err) => Err(target.error("get stream", err.into())),
        }
    }

    async fn find_consumer(
        &self,
        stream: &stream::Stream,
        target: &Target,
    ) -> Result<PullConsumer, SourceError> {
        let config = pull::Config {
            durable_name: Some(self.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: -1,
            max_ack_pending: i64::try_from(self.max_in_flight.max(1000)).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&self.consumer, config)
            .await
            .map_err(|err| {
                if matches!(
                    err.kind(),
                    async_nats::jetstream::stream::ConsumerErrorKind::InvalidConsumerType
                ) {
                    SourceError::ConsumerConfig {
                        stream: self.stream.clone(),
                        consumer: self.consumer.clone(),
                        reason: "it is a push consumer; the source needs a pull consumer".into(),
                    }
                } else {
                    target.error("get or create consumer", err.into())
                }
            })?;
        let info = consumer.cached_info();
        if info.config.ack_policy != AckPolicy::Explicit {
            return Err(SourceError::ConsumerConfig {
                stream: self.stream.clone(),
                consumer: self.consumer.clone(),
                reason: format!(
                    "its ack policy is {:?}; the source acknowledges each message, so it \
                     needs AckPolicy::Explicit",
                    info.config.ack_policy
                ),
            });
        }
        let max_deliver = info.config.max_deliver;
        if max_deliver > 0 && (max_deliver as u64) <= self.max_deliveries {
            tracing::warn!(
                consumer = %self.consumer, max_deliver, max_deliveries = self.max_deliveries,
                "the consumer's max_deliver is not above max_deliveries: the server stops \
                 delivering such messages before the source can dead-letter them"
            );
        }
        Ok(consumer)
    }
}

/// Finds the stream that captures the dead-letter subject, or creates
/// `<stream>-dead` for it.
async fn find_dead_letter_stream(
    js: &jetstream::Context,
    target: &Target,
) -> Result<(), SourceError> {
    match js.stream_by_subject(target.dead_letter.as_str()).await {
        Ok(name) if name == target.stream => Err(SourceError::Build(BuildError::InvalidSubject {
            what: "dead-letter (captured by the source's own stream)",
            subject: target.dead_letter.clone(),
        })),
        Ok(_) => Ok(()),
        Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => {
            let config = stream::Config {
                name: format!("{}-dead", target.stream),
                subjects: vec![target.dead_letter.clone()],
                ..Default::default()
            };
            js.get_or_create_stream(config)
                .await
                .map_err(|err| target.error("create dead-letter stream", err.into()))?;
            tracing::info!(
                stream = %format!("{}-dead", target.stream), subject = %target.dead_letter,
                "created the dead-letter stream"
            );
            Ok(())
        }
        Err(err) => Err(target.error("find dead-letter stream", err.into())),
    }
}

/// Reads a JetStream stream through a durable pull consumer, as a
/// [`Stream`] of [`Delivery`]s; see the [crate docs](crate).
///
/// The stream ends after [`StopHandle::stop`] (or when it fails for good,
/// after an `Err` item); dropping the source stops its reader. Deliveries
/// still held are kept from redelivery until they are resolved or dropped.
pub struct NatsSource {
    rx: mpsc::Receiver<Result<Vec<Delivery>, SourceError>>,
    batch: std::vec::IntoIter<Delivery>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    acker: Acker,
    shared: Arc<Shared>,
}

impl NatsSource {
    /// Configures a source reading `stream` through the durable pull
    /// consumer `consumer`, on the NATS server at `url` (`nats://host:port`,
    /// `nats://user:password@host:port`, or several, comma-separated).
    ///
    /// Run several sources — in one process or on many machines — with the
    /// same `consumer`: the server splits the messages between them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate_nats::NatsSource;
    ///
    /// let builder = NatsSource::builder("nats://127.0.0.1:4222", "EVENTS", "writers")
    ///     .subjects(["events.>"])
    ///     .max_in_flight(5_000)
    ///     .ack_wait(Duration::from_secs(60));
    /// # drop(builder);
    /// ```
    pub fn builder(
        url: impl Into<String>,
        stream: impl Into<String>,
        consumer: impl Into<String>,
    ) -> SourceBuilder {
        SourceBuilder {
            url: url.into(),
            stream: stream.into(),
            consumer: consumer.into(),
            subjects: Vec::new(),
            batch_size: 256,
            block: Duration::from_secs(1),
            max_in_flight: 10_000,
            ack_wait: Duration::from_secs(30),
            progress_interval: None,
            max_deliveries: 5,
            dead_letter: None,
            ack_max_items: 512,
            ack_max_delay: Duration::from_millis(20),
            ack_retry_budget: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// A handle that stops the source from another task.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: self.stop.clone(),
        }
    }

    /// The acker shared by this source's deliveries; close it at the end of
    /// a graceful shutdown to send the last acks.
    pub fn acker(&self) -> &Acker {
        &self.acker
    }

    /// Counters of what the source read, acked and dead-lettered.
    pub fn stats(&self) -> SourceStats {
        self.shared.stats()
    }

    /// The server(s), as `host:port` (never with credentials).
    pub fn server(&self) -> &str {
        &self.shared.target.server
    }

    /// The dead-letter subject.
    pub fn dead_letter_subject(&self) -> &str {
        &self.shared.target.dead_letter
    }
}

impl Stream for NatsSource {
    type Item = Result<Delivery, SourceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(delivery) = self.batch.next() {
                return Poll::Ready(Some(Ok(delivery)));
            }
            match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(Ok(batch)) => self.batch = batch.into_iter(),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => return Poll::Ready(None),
            }
        }
    }

    /// At least the messages of the read batch being handed out (they are
    /// delivered even after a stop); no upper bound.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.batch.len(), None)
    }
}

impl fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSource")
            .field("server", &self.shared.target.server)
            .field("stream", &self.shared.target.stream)
            .field("consumer", &self.shared.target.consumer)
            .field("stopped", &self.stop.is_cancelled())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Stops a [`NatsSource`]: no new pull request is made (one in progress
/// finishes, within the block time), the messages already read are still
/// delivered, then the stream ends. Messages never resolved are delivered
/// again (nak'd when dropped).
#[derive(Debug, Clone)]
pub struct StopHandle {
    stop: CancellationToken,
}

impl StopHandle {
    /// Stops the source (idempotent).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether [`stop`](Self::stop) was called (or the source dropped).
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// Counters of a [`NatsSource`], from [`NatsSource::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// Messages read and handed out.
    pub read: u64,
    /// Messages delivered more than `max_deliveries` times, dead-lettered by
    /// the source instead of handed out.
    pub dead_lettered: u64,
    /// Messages the caller dead-lettered ([`AckToken::dead_letter`](crate::AckToken::dead_letter)).
    pub rejected: u64,
    /// Messages the caller nak'd ([`AckToken::nak`](crate::AckToken::nak)).
    pub naked: u64,
    /// Deliveries dropped unresolved (nak'd by the source).
    pub released: u64,
    /// In-progress signals sent (one per held delivery per tick).
    pub progress_signals: u64,
    /// Ticks whose in-progress signals failed (logged; retried at the next).
    pub progress_failures: u64,
    /// Messages acknowledged (their flush succeeded).
    pub acked: u64,
    /// Deliveries held now (handed out, not yet resolved).
    pub held: u64,
    /// Failed pull requests the reader retried.
    pub retries: u64,
    /// Ack, nak, term or dead-letter attempts retried.
    pub ack_retries: u64,
}

/// The series [`SourceStats::record`] sets, each `name{name="…"}`: every
/// counter field as `flowgate_nats_source_<field>_total`, and `held` as the
/// gauge `flowgate_nats_source_held`.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub const SOURCE_SERIES: &[&str] = &[
    "flowgate_nats_source_read_total",
    "flowgate_nats_source_dead_lettered_total",
    "flowgate_nats_source_rejected_total",
    "flowgate_nats_source_naked_total",
    "flowgate_nats_source_released_total",
    "flowgate_nats_source_progress_signals_total",
    "flowgate_nats_source_progress_failures_total",
    "flowgate_nats_source_acked_total",
    "flowgate_nats_source_retries_total",
    "flowgate_nats_source_ack_retries_total",
    "flowgate_nats_source_held",
];

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl SourceStats {
    /// Sets the [`SOURCE_SERIES`] to these counts, labelled `name`, through
    /// the `metrics` facade (feature `metrics`): call it on a timer (and once
    /// at the end) with [`NatsSource::stats`] to export the source. Counters
    /// are set to the absolute totals, so calling it twice with the same
    /// stats changes nothing.
    ///
    /// ```
    /// use flowgate_nats::SourceStats;
    ///
    /// // With no recorder installed this records nothing.
    /// SourceStats::default().record("orders");
    /// ```
    pub fn record(&self, name: &str) {
        let counts = [
            self.read,
            self.dead_lettered,
            self.rejected,
            self.naked,
            self.released,
            self.progress_signals,
            self.progress_failures,
            self.acked,
            self.retries,
            self.ack_retries,
        ];
        for (series, count) in SOURCE_SERIES.iter().zip(counts) {
            metrics::counter!(*series, "name" => name.to_owned()).absolute(count);
        }
        metrics::gauge!("flowgate_nats_source_held", "name" => name.to_owned())
            .set(self.held as f64);
    }
}

/// The task that pulls messages while there is room and hands them out.
struct Reader {
    shared: Arc<Shared>,
    consumer: PullConsumer,
    stream: stream::Stream,
    acker: Acker,
    room: Arc<Semaphore>,
    tx: mpsc::Sender<Result<Vec<Delivery>, SourceError>>,
    stop: CancellationToken,
    batch_size: usize,
    block: Duration,
    max_deliveries: u64,
    retry: flowgate::resilience::Retry<NatsError>,
}

impl Reader {
    async fn run(self) {
        let mut failures = 0u32;
        loop {
            // Room for at least one delivery, and as many as are free up to
            // a batch: nothing is pulled that could not be handed out.
            let want = self.room.available_permits().clamp(1, self.batch_size);
            let permits = tokio::select! {
                _ = self.stop.cancelled() => break,
                permits = Arc::clone(&self.room).acquire_many_owned(want as u32) => permits,
            };
            let Ok(mut permits) = permits else { break };
            let request = self
                .consumer
                .batch()
                .max_messages(want)
                .expires(self.block)
                .messages();
            let batch = tokio::select! {
                _ = self.stop.cancelled() => break,
                batch = request => batch,
            };
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    if !self.failed(err.into(), &mut failures).await {
                        return;
                    }
                    continue;
                }
            };
            let mut failed = None;
            let mut got = 0usize;
            // Wait for the first message (or the end of the request), then
            // take whatever else has arrived, and hand that out at once: a
            // slow trickle is not held back until the batch fills.
            'request: while let Some(first) = batch.next().await {
                let mut out = Vec::new();
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    match item {
                        Ok(message) => {
                            got += 1;
                            if let Some(delivery) = self.deliver(message, &mut permits).await {
                                out.push(delivery);
                            }
                        }
                        Err(err) => {
                            failed = Some(err);
                            break;
                        }
                    }
                    next = batch.next().now_or_never().flatten();
                }
                if !out.is_empty() {
                    Counters::add(&self.shared.counters.read, out.len() as u64);
                    if self.tx.send(Ok(out)).await.is_err() {
                        return; // the source was dropped
                    }
                }
                if failed.is_some() {
                    break 'request;
                }
            }
            match failed {
                Some(err) => {
                    if !self.failed(err, &mut failures).await {
                        return;
                    }
                }
                None => {
                    failures = 0;
                    // An empty request: idle, or the consumer is gone (the
                    // server does not answer a pull for a deleted consumer).
                    // One info request per idle `block`.
                    if got == 0 && !self.stop.is_cancelled() && self.consumer_gone().await {
                        return;
                    }
                }
            }
            if self.stop.is_cancelled() {
                break;
            }
        }
        tracing::info!(
            stream = %self.shared.target.stream, consumer = %self.shared.target.consumer,
            "source stopped"
        );
    }

    /// Turns a pulled message into a delivery, or dead-letters it (too many
    /// deliveries) or terminates it (not a JetStream message).
    async fn deliver(
        &self,
        message: jetstream::Message,
        permits: &mut tokio::sync::OwnedSemaphorePermit,
    ) -> Option<Delivery> {
        let (deliveries, sequence) = match message.info() {
            Ok(info) => (info.delivered.max(1) as u64, info.stream_sequence),
            Err(err) => {
                tracing::error!(
                    error = %err, subject = %message.subject,
                    "a pulled message has no JetStream reply subject; skipped"
                );
                return None;
            }
        };
        let jetstream::Message { message, .. } = message;
        let Some(reply) = message.reply else {
            return None; // info() succeeded, so it has one
        };
        let content = Message {
            subject: message.subject,
            payload: message.payload,
            headers: message.headers,
            stream_sequence: sequence,
            deliveries,
        };
        if deliveries > self.max_deliveries {
            let reason = format!(
                "delivered {deliveries} times, more than max_deliveries {}: its consumers \
                 crashed, hung or nak'd it",
                self.max_deliveries
            );
            // On failure the message stays with the server and comes back
            // after the ack wait, to be tried again.
            if delivery::dead_letter(&self.shared, &self.retry, &content, &reply, &reason)
                .await
                .is_ok()
            {
                Counters::add(&self.shared.counters.dead_lettered, 1);
            }
            return None;
        }
        let Some(permit) = permits.split(1) else {
            // More messages than asked for: cannot happen with a pull
            // request of `want`; hand it back rather than exceed the bound.
            tracing::error!(
                sequence,
                "the server sent more messages than requested; nak'd"
            );
            let _ = self
                .shared
                .send_acks(&[&reply], &shared::payload(jetstream::AckKind::Nak(None)))
                .await;
            return None;
        };
        let key = self.shared.hold(reply.clone());
        let in_flight = InFlight {
            key,
            reply,
            sequence,
            shared: Arc::clone(&self.shared),
            _permit: permit,
            resolved: false,
        };
        Some(Delivery::new(content, in_flight, self.acker.clone()))
    }

    /// Whether the consumer (or its stream) was deleted; if so the error is
    /// sent as the last item. Only its absence is permanent.
    async fn consumer_gone(&self) -> bool {
        let target = &self.shared.target;
        let Err(info) = self.stream.consumer_info(&target.consumer).await else {
            return false;
        };
        use async_nats::jetstream::context::ConsumerInfoErrorKind as Kind;
        if !matches!(info.kind(), Kind::NotFound | Kind::StreamNotFound) {
            return false;
        }
        let err = SourceError::ConsumerGone {
            server: target.server.clone(),
            stream: target.stream.clone(),
            consumer: target.consumer.clone(),
        };
        tracing::error!(error = %err, "the source stops");
        let _ = self.tx.send(Err(err)).await;
        true
    }

    /// A pull failed: whether to go on (after a backoff), or stop because
    /// the consumer is gone (after sending the error as the last item).
    async fn failed(&self, err: NatsError, failures: &mut u32) -> bool {
        if self.consumer_gone().await {
            return false;
        }
        let target = &self.shared.target;
        Counters::add(&self.shared.counters.retries, 1);
        *failures = failures.saturating_add(1);
        let delay = Duration::from_millis(50)
            .saturating_mul(1 << (*failures - 1).min(6))
            .min(Duration::from_secs(2));
        tracing::warn!(
            error = %err, attempt = *failures, ?delay, stream = %target.stream,
            server = %target.server, "pull request failed; retrying"
        );
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
        true
    }
}
