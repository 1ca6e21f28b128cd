//! [`RedisStreamSource`]: the consumer-group reader, and its builder.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{RedisError, Value};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::delivery::{Acker, Delivery, InFlight};
use crate::error::{BuildError, SourceError, is_transient};

/// Configures a [`RedisStreamSource`]; created by [`RedisStreamSource::builder`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`batch_size`](Self::batch_size) | 256 | `COUNT` of each `XREADGROUP` / `XAUTOCLAIM` |
/// | [`block`](Self::block) | 1 s | `BLOCK` of each `XREADGROUP`; also how long [`StopHandle::stop`] may take |
/// | [`max_in_flight`](Self::max_in_flight) | 10 000 | deliveries handed out and not yet acked or dropped; reading pauses at the bound |
/// | [`claim_idle`](Self::claim_idle) | 30 s | a message pending this long with another consumer is taken over (`XAUTOCLAIM`) |
/// | [`claim_interval`](Self::claim_interval) | `claim_idle / 2` | how often to look for such messages |
/// | [`max_deliveries`](Self::max_deliveries) | 5 | a message delivered more often goes to the dead-letter stream instead |
/// | [`dead_letter_stream`](Self::dead_letter_stream) | `<stream>:dead` | where poison messages go |
/// | [`start_id`](Self::start_id) | `0` | where a newly created group starts: `0` for the whole stream, `$` for new messages only |
/// | [`ack_batch`](Self::ack_batch) | 512 ids / 20 ms | how `XACK`s are batched |
#[derive(Debug, Clone)]
pub struct SourceBuilder {
    url: String,
    stream: String,
    group: String,
    consumer: String,
    batch_size: usize,
    block: Duration,
    max_in_flight: usize,
    claim_idle: Duration,
    claim_interval: Option<Duration>,
    max_deliveries: u64,
    dead_letter: Option<String>,
    start_id: String,
    ack_max_items: usize,
    ack_max_delay: Duration,
}

impl SourceBuilder {
    /// `COUNT` of each read.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// How long one `XREADGROUP` waits for new messages.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// At most this many deliveries are out (handed to the caller and not yet
    /// acked or dropped); reading pauses at the bound. This is the source's
    /// backpressure.
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Messages pending this long with another consumer (a crashed or stuck
    /// one) are claimed by this consumer. Must exceed the longest time a
    /// message may legitimately take from read to ack.
    pub fn claim_idle(mut self, claim_idle: Duration) -> Self {
        self.claim_idle = claim_idle;
        self
    }

    /// How often to look for messages to claim.
    pub fn claim_interval(mut self, claim_interval: Duration) -> Self {
        self.claim_interval = Some(claim_interval);
        self
    }

    /// A message delivered more than this many times (it keeps failing or
    /// crashing consumers) is moved to the dead-letter stream and acked
    /// instead of being delivered again.
    pub fn max_deliveries(mut self, max_deliveries: u64) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// The stream poison messages are moved to, with their fields plus
    /// `flowgate-original-id` and `flowgate-deliveries`.
    pub fn dead_letter_stream(mut self, stream: impl Into<String>) -> Self {
        self.dead_letter = Some(stream.into());
        self
    }

    /// Where the group starts if this source creates it.
    pub fn start_id(mut self, start_id: impl Into<String>) -> Self {
        self.start_id = start_id.into();
        self
    }

    /// How acknowledgements are batched: one `XACK` per `max_items` ids, or
    /// after `max_delay`.
    pub fn ack_batch(mut self, max_items: usize, max_delay: Duration) -> Self {
        self.ack_max_items = max_items;
        self.ack_max_delay = max_delay;
        self
    }

    /// Checks the settings, connects, creates the group (and the stream) if
    /// missing, and starts reading in a background task.
    ///
    /// # Errors
    ///
    /// [`SourceError::Build`] for an invalid setting (checked before
    /// connecting); [`SourceError::Redis`] if Redis cannot be reached or the
    /// group cannot be created.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing is read before this returns.
    pub async fn connect(self) -> Result<RedisStreamSource, SourceError> {
        let client = redis::Client::open(self.url.as_str()).map_err(BuildError::InvalidUrl)?;
        for (what, name) in [
            ("stream", &self.stream),
            ("group", &self.group),
            ("consumer", &self.consumer),
        ] {
            if name.is_empty() {
                return Err(BuildError::EmptyName(what).into());
            }
        }
        if self.dead_letter.as_deref() == Some("") {
            return Err(BuildError::EmptyName("dead-letter stream").into());
        }
        if self.batch_size == 0 {
            return Err(BuildError::ZeroBatchSize.into());
        }
        if self.max_in_flight < self.batch_size {
            return Err(BuildError::InFlightBelowBatchSize {
                max_in_flight: self.max_in_flight,
                batch_size: self.batch_size,
            }
            .into());
        }
        if self.max_deliveries == 0 {
            return Err(BuildError::ZeroMaxDeliveries.into());
        }
        if self.claim_idle.is_zero() {
            return Err(BuildError::ZeroClaimIdle.into());
        }

        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let mut commands = client.get_connection_manager_with_config(config).await?;
        // Blocking reads get a connection of their own, so that they do not
        // hold up acks and claims, with a timeout beyond the block time.
        let read_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.block + Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let reads = client
            .get_connection_manager_with_config(read_config)
            .await?;

        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.start_id)
            .arg("MKSTREAM")
            .query_async(&mut commands)
            .await;
        match created {
            Ok(()) => {}
            Err(err) if err.code() == Some("BUSYGROUP") => {}
            Err(err) => return Err(err.into()),
        }

        let acker = Acker::new(
            commands.clone(),
            self.stream.clone(),
            self.group.clone(),
            self.ack_max_items,
            self.ack_max_delay,
        )
        .map_err(BuildError::Ack)?;
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(self.batch_size);
        let claim_interval = self.claim_interval.unwrap_or(self.claim_idle / 2);
        let dead_letter = self
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("{}:dead", self.stream));
        let reader = Reader {
            reads,
            commands,
            settings: Settings {
                stream: self.stream,
                group: self.group,
                consumer: self.consumer,
                batch_size: self.batch_size,
                block: self.block,
                claim_idle: self.claim_idle,
                claim_interval,
                max_deliveries: self.max_deliveries,
                dead_letter,
            },
            tx,
            permits: Arc::new(Semaphore::new(self.max_in_flight)),
            in_flight: Arc::default(),
            acker: acker.clone(),
            stop: stop.clone(),
            stats: Arc::default(),
            recovering: Some("0".to_owned()),
            claim_cursor: "0-0".to_owned(),
            next_claim: Instant::now(),
        };
        let stats = Arc::clone(&reader.stats);
        tokio::spawn(reader.run());
        Ok(RedisStreamSource {
            rx,
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
            acker,
            stats,
        })
    }
}

/// Reads a Redis stream as a member of a consumer group, as a
/// [`Stream`] of [`Delivery`]s; see the [crate docs](crate).
///
/// The stream ends after [`StopHandle::stop`] (or when it fails for good);
/// dropping the source stops its reader.
pub struct RedisStreamSource {
    rx: mpsc::Receiver<Result<Delivery, SourceError>>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    acker: Acker,
    stats: Arc<Mutex<SourceStats>>,
}

impl RedisStreamSource {
    /// Configures a source reading `stream` as `consumer` of `group`, on the
    /// Redis server at `url` (`redis://[:password@]host:port[/db]`).
    ///
    /// Run several consumers — in one process or on many machines — with
    /// different `consumer` names in the same `group`: Redis splits the
    /// messages between them.
    pub fn builder(
        url: impl Into<String>,
        stream: impl Into<String>,
        group: impl Into<String>,
        consumer: impl Into<String>,
    ) -> SourceBuilder {
        SourceBuilder {
            url: url.into(),
            stream: stream.into(),
            group: group.into(),
            consumer: consumer.into(),
            batch_size: 256,
            block: Duration::from_secs(1),
            max_in_flight: 10_000,
            claim_idle: Duration::from_secs(30),
            claim_interval: None,
            max_deliveries: 5,
            dead_letter: None,
            start_id: "0".to_owned(),
            ack_max_items: 512,
            ack_max_delay: Duration::from_millis(20),
        }
    }

    /// A handle that stops the source from another task.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: self.stop.clone(),
        }
    }

    /// The acker shared by this source's deliveries; close it at the end of a
    /// graceful shutdown to send the last `XACK`s.
    pub fn acker(&self) -> &Acker {
        &self.acker
    }

    /// Counters of what the source read, claimed and dead-lettered.
    pub fn stats(&self) -> SourceStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Stream for RedisStreamSource {
    type Item = Result<Delivery, SourceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl fmt::Debug for RedisStreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamSource")
            .field("stopped", &self.stop.is_cancelled())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Stops a [`RedisStreamSource`]: no new message is read (a read in progress
/// finishes, within the block time), the messages already read are still
/// delivered, then the stream ends. Messages read but never acked stay pending
/// in the group: a graceful shutdown acks what was written and leaves the rest
/// for a restart or another consumer.
#[derive(Debug, Clone)]
pub struct StopHandle {
    stop: CancellationToken,
}

impl StopHandle {
    /// Stops the source.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// Counters of a [`RedisStreamSource`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// New messages read (`XREADGROUP >`).
    pub read: u64,
    /// This consumer's own pending messages read again after a restart.
    pub recovered: u64,
    /// Messages taken over from idle consumers (`XAUTOCLAIM`).
    pub claimed: u64,
    /// Messages moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Transient Redis errors the reader retried.
    pub retries: u64,
}

struct Settings {
    stream: String,
    group: String,
    consumer: String,
    batch_size: usize,
    block: Duration,
    claim_idle: Duration,
    claim_interval: Duration,
    max_deliveries: u64,
    dead_letter: String,
}

/// The background task that reads and hands out deliveries.
struct Reader {
    reads: ConnectionManager,
    commands: ConnectionManager,
    settings: Settings,
    tx: mpsc::Sender<Result<Delivery, SourceError>>,
    permits: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    acker: Acker,
    stop: CancellationToken,
    stats: Arc<Mutex<SourceStats>>,
    /// While re-reading this consumer's own pending entries after a restart:
    /// the id to continue after.
    recovering: Option<String>,
    claim_cursor: String,
    next_claim: Instant,
}

/// Where a batch of entries came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    New,
    Recovered,
    Claimed,
}

impl Reader {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        while !self.stop.is_cancelled() && !self.tx.is_closed() {
            match self.step().await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(err) if is_transient(&err) => {
                    tracing::warn!(error = %err, "redis stream read failed; retrying");
                    self.stats().retries += 1;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    tracing::error!(error = %err, "redis stream read failed for good");
                    let _ = self.tx.send(Err(err.into())).await;
                    return;
                }
            }
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, SourceStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One read: claim, recover or read new entries, and hand them out.
    async fn step(&mut self) -> Result<(), RedisError> {
        let batch = self.settings.batch_size;
        // Room for a full batch first: this is the max_in_flight bound.
        let mut room = tokio::select! {
            room = Arc::clone(&self.permits).acquire_many_owned(batch as u32) => {
                room.expect("the semaphore is never closed")
            }
            () = self.stop.cancelled() => return Ok(()),
        };

        let (origin, entries) = if Instant::now() >= self.next_claim {
            (Origin::Claimed, self.claim().await?)
        } else if let Some(after) = self.recovering.clone() {
            let entries = self.read(&after, false).await?;
            match entries.last() {
                Some(last) => self.recovering = Some(last.id.clone()),
                None => self.recovering = None,
            }
            (Origin::Recovered, entries)
        } else {
            (Origin::New, self.read(">", true).await?)
        };
        if entries.is_empty() {
            return Ok(());
        }

        // Messages seen again (recovered or claimed) may be poison: look up
        // how often each was delivered.
        let counts = match origin {
            Origin::New => HashMap::new(),
            Origin::Recovered | Origin::Claimed => self.delivery_counts(&entries).await?,
        };
        let mut handed = 0;
        for entry in entries {
            let deliveries = counts.get(&entry.id).copied().unwrap_or(1);
            if deliveries > self.settings.max_deliveries {
                self.dead_letter(&entry, deliveries).await?;
                continue;
            }
            {
                let mut in_flight = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                // Claimed back while still being processed here (slower than
                // claim_idle): it is already out, do not hand it out twice.
                if !in_flight.insert(entry.id.clone()) {
                    continue;
                }
            }
            let permit = room.split(1).expect("one permit per entry of the batch");
            let delivery = Delivery::new(
                entry.id.clone(),
                fields(entry.map),
                deliveries,
                InFlight {
                    id: entry.id,
                    set: Arc::clone(&self.in_flight),
                    _permit: permit,
                },
                self.acker.clone(),
            );
            handed += 1;
            if self.tx.send(Ok(delivery)).await.is_err() {
                // The source was dropped: what was read stays pending.
                return Ok(());
            }
        }
        let mut stats = self.stats();
        match origin {
            Origin::New => stats.read += handed,
            Origin::Recovered => stats.recovered += handed,
            Origin::Claimed => stats.claimed += handed,
        }
        Ok(())
    }

    /// `XREADGROUP` from `id` (`>` for new messages, blocking).
    async fn read(&mut self, id: &str, block: bool) -> Result<Vec<StreamId>, RedisError> {
        let s = &self.settings;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&s.group)
            .arg(&s.consumer)
            .arg("COUNT")
            .arg(s.batch_size);
        if block {
            cmd.arg("BLOCK").arg(s.block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&s.stream).arg(id);
        let reply: Option<StreamReadReply> = cmd.query_async(&mut self.reads).await?;
        Ok(reply
            .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
            .unwrap_or_default())
    }

    /// `XAUTOCLAIM`: takes over entries idle for `claim_idle` with any
    /// consumer, continuing the scan where the last call stopped.
    async fn claim(&mut self) -> Result<Vec<StreamId>, RedisError> {
        let s = &self.settings;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&s.stream)
            .arg(&s.group)
            .arg(&s.consumer)
            .arg(s.claim_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(s.batch_size)
            .query_async(&mut self.commands)
            .await?;
        if reply.next_stream_id == "0-0" {
            // The scan went round: rest until the next interval.
            self.next_claim = Instant::now() + s.claim_interval;
        }
        self.claim_cursor = reply.next_stream_id;
        Ok(reply.claimed)
    }

    /// Delivery counts of `entries`, all pending with this consumer.
    async fn delivery_counts(
        &mut self,
        entries: &[StreamId],
    ) -> Result<HashMap<String, u64>, RedisError> {
        let s = &self.settings;
        let (first, last) = (&entries[0].id, &entries[entries.len() - 1].id);
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&s.stream)
            .arg(&s.group)
            .arg(first)
            .arg(last)
            .arg(entries.len())
            .arg(&s.consumer)
            .query_async(&mut self.commands)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|pending| (pending.id, pending.times_delivered as u64))
            .collect())
    }

    /// Moves a poison entry to the dead-letter stream and acks it, atomically.
    async fn dead_letter(&mut self, entry: &StreamId, deliveries: u64) -> Result<(), RedisError> {
        let s = &self.settings;
        let mut add = redis::cmd("XADD");
        add.arg(&s.dead_letter).arg("*");
        for (field, value) in &entry.map {
            add.arg(field).arg(value_bytes(value));
        }
        add.arg("flowgate-original-id")
            .arg(&entry.id)
            .arg("flowgate-deliveries")
            .arg(deliveries);
        redis::pipe()
            .atomic()
            .add_command(add)
            .ignore()
            .cmd("XACK")
            .arg(&s.stream)
            .arg(&s.group)
            .arg(&entry.id)
            .ignore()
            .query_async::<()>(&mut self.commands)
            .await?;
        tracing::warn!(id = %entry.id, deliveries, dead_letter = %s.dead_letter, "poison message dead-lettered");
        self.stats().dead_lettered += 1;
        Ok(())
    }
}

fn fields(map: HashMap<String, Value>) -> HashMap<String, Vec<u8>> {
    map.into_iter()
        .map(|(field, value)| (field, value_bytes(&value)))
        .collect()
}

fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}
