//! [`RedisStreamSource`]: the consumer-group reader, its lease renewer, and
//! its builder.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use flowgate::resilience::Retry;
use futures_core::Stream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, RedisError, Value};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::delivery::{Acker, Delivery, InFlight};
use crate::error::{BuildError, SourceError, Target, server_name};
use crate::reply::{self, Content, Entry};
use crate::resp::{ReadReply, RespConnection};
use crate::shared::{self, RENEW, SCRIPT_CHUNK, Shared, TAKE, TAKEOVER};

/// Configures a [`RedisStreamSource`]; created by [`RedisStreamSource::builder`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`batch_size`](Self::batch_size) | 256 | `COUNT` of each `XREADGROUP` and takeover scan |
/// | [`block`](Self::block) | 1 s | `BLOCK` of each `XREADGROUP`; also how long [`StopHandle::stop`] may take |
/// | [`max_in_flight`](Self::max_in_flight) | 10 000 | deliveries handed out and not yet acked or dropped; reading pauses at the bound |
/// | [`claim_idle`](Self::claim_idle) | 30 s | a message whose lease was not renewed for this long is taken over, once its consumer's connection is gone |
/// | [`lease_renewal`](Self::lease_renewal) | `claim_idle / 4` | how often the leases of held deliveries are renewed; must be shorter than `claim_idle` |
/// | [`hung_after`](Self::hung_after) | `10 × claim_idle` | a consumer still connected to Redis loses its messages only after this long without renewing them |
/// | [`claim_interval`](Self::claim_interval) | `claim_idle / 2` | how often to look for messages to take over |
/// | [`max_deliveries`](Self::max_deliveries) | 5 | a message delivered more often goes to the dead-letter stream instead |
/// | [`dead_letter_stream`](Self::dead_letter_stream) | `<stream>:dead` | where poison and rejected messages go |
/// | [`start_id`](Self::start_id) | `0` | where a newly created group starts: `0` for the whole stream, `$` for new messages only |
/// | [`ack_batch`](Self::ack_batch) | 512 ids / 20 ms | how `XACK`s are batched |
/// | [`ack_retry_budget`](Self::ack_retry_budget) | 60 s | how long a failed `XACK` or dead letter is retried |
/// | [`connect_timeout`](Self::connect_timeout) | 2 s | how long the first connection may take |
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
    lease_renewal: Option<Duration>,
    hung_after: Option<Duration>,
    claim_interval: Option<Duration>,
    max_deliveries: u64,
    dead_letter: Option<String>,
    start_id: String,
    ack_max_items: usize,
    ack_max_delay: Duration,
    ack_retry_budget: Duration,
    connect_timeout: Duration,
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

    /// The lease time: a message pending this long without its lease being
    /// renewed is taken over by another consumer of the group (or by this
    /// one) — once its consumer's connection is gone, or after
    /// [`hung_after`](Self::hung_after) if it is still connected.
    ///
    /// A live consumer renews the leases of the deliveries it holds every
    /// [`lease_renewal`](Self::lease_renewal), so it keeps them however long
    /// their processing takes; only a consumer that died (its connection is
    /// gone) loses them after `claim_idle`, and one that is connected but
    /// renews nothing (hung, starved, partitioned) after `hung_after`. Such a consumer's late `XACK` still removes the message
    /// from the group, but the message may have been processed by the new
    /// owner too: the effect may happen twice (at-least-once).
    ///
    /// It is also the delay before a dropped (failed, not acked) delivery is
    /// delivered again.
    pub fn claim_idle(mut self, claim_idle: Duration) -> Self {
        self.claim_idle = claim_idle;
        self
    }

    /// How often the source renews the leases of the deliveries it holds
    /// (one Lua script call per renewal, in chunks of 500 ids, on the
    /// commands connection; a failed renewal is logged and retried at the
    /// next one). Default: `claim_idle / 4`. Must be shorter than
    /// `claim_idle`; leave room for a slow or retried renewal.
    pub fn lease_renewal(mut self, lease_renewal: Duration) -> Self {
        self.lease_renewal = Some(lease_renewal);
        self
    }

    /// How long a consumer that is still *connected* to Redis may go without
    /// renewing its leases before its messages are taken over anyway
    /// (default: 10 × `claim_idle`). Must be at least `claim_idle`.
    ///
    /// A running consumer names its command connection (`CLIENT SETNAME
    /// flowgate:<hex of stream>:<hex of group>:<hex of consumer>`). A
    /// consumer that died — killed, crashed, its machine gone — loses its
    /// connection, and its messages are taken over once their lease
    /// (`claim_idle`) ran out. A consumer whose connection is still there is
    /// alive but slow (a starved CPU, a long pause): its messages are only
    /// taken over after `hung_after`, so a busy machine never makes two live
    /// consumers process the same message. A partitioned consumer's
    /// connection lingers until Redis notices (TCP keepalive): `hung_after`
    /// bounds that too.
    pub fn hung_after(mut self, hung_after: Duration) -> Self {
        self.hung_after = Some(hung_after);
        self
    }

    /// How often to look for messages to take over.
    pub fn claim_interval(mut self, claim_interval: Duration) -> Self {
        self.claim_interval = Some(claim_interval);
        self
    }

    /// A message delivered more than this many times is moved to the
    /// dead-letter stream (and acked) instead of being delivered again.
    ///
    /// What counts as a delivery: the first read, and each time the message
    /// is read again because the consumer that held it died, hung, lost its
    /// connection for `claim_idle`, or dropped the delivery without acking
    /// it. A live consumer keeps what it holds through its leases and
    /// retries the work itself, so a sink outage never burns deliveries;
    /// this consumer's own lease renewals and claims never count either.
    /// The limit therefore catches messages that crash or hang their
    /// consumers.
    pub fn max_deliveries(mut self, max_deliveries: u64) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// The stream poison and rejected messages are moved to; see the
    /// [crate docs](crate#dead-letters) for its fields.
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

    /// How long an `XACK` batch, or a dead letter, is retried when Redis
    /// fails transiently (connection refused or dropped, timeout,
    /// `LOADING`): with backoff from 50 ms doubling to 2 s, each retry
    /// logged. Past the budget the acks fail and the messages stay pending.
    /// Zero: no retry.
    pub fn ack_retry_budget(mut self, budget: Duration) -> Self {
        self.ack_retry_budget = budget;
        self
    }

    /// How long the first connection (TCP connect and handshake) may take
    /// before [`connect`](Self::connect) fails. A refused connection fails
    /// at once.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn check(&self) -> Result<(), BuildError> {
        for (what, name) in [
            ("stream", &self.stream),
            ("group", &self.group),
            ("consumer", &self.consumer),
        ] {
            if name.is_empty() {
                return Err(BuildError::EmptyName(what));
            }
        }
        if self.dead_letter.as_deref() == Some("") {
            return Err(BuildError::EmptyName("dead-letter stream"));
        }
        if self.batch_size == 0 {
            return Err(BuildError::ZeroBatchSize);
        }
        if self.max_in_flight < self.batch_size {
            return Err(BuildError::InFlightBelowBatchSize {
                max_in_flight: self.max_in_flight,
                batch_size: self.batch_size,
            });
        }
        if self.max_deliveries == 0 {
            return Err(BuildError::ZeroMaxDeliveries);
        }
        if self.claim_idle.is_zero() {
            return Err(BuildError::ZeroClaimIdle);
        }
        let lease_renewal = self.effective_lease_renewal();
        if lease_renewal.is_zero() {
            return Err(BuildError::ZeroLeaseRenewal);
        }
        if lease_renewal >= self.claim_idle {
            return Err(BuildError::LeaseRenewalNotBelowClaimIdle {
                lease_renewal,
                claim_idle: self.claim_idle,
            });
        }
        if self.connect_timeout.is_zero() {
            return Err(BuildError::ZeroConnectTimeout);
        }
        if self.effective_hung_after() < self.claim_idle {
            return Err(BuildError::HungAfterBelowClaimIdle {
                hung_after: self.effective_hung_after(),
                claim_idle: self.claim_idle,
            });
        }
        Ok(())
    }

    fn effective_hung_after(&self) -> Duration {
        self.hung_after
            .unwrap_or(self.claim_idle.saturating_mul(10))
    }

    fn effective_lease_renewal(&self) -> Duration {
        self.lease_renewal.unwrap_or(self.claim_idle / 4)
    }

    /// Checks the settings, connects, creates the group (and the stream) if
    /// missing, and starts reading and renewing leases in background tasks.
    ///
    /// One connection attempt is made, bounded by
    /// [`connect_timeout`](Self::connect_timeout): a server that refuses,
    /// does not answer, or rejects the credentials fails the call at once
    /// with [`SourceError::Connect`], naming the server (`host:port/db`,
    /// never the password) and keeping the server's message. Once
    /// connected, later connection losses are retried by the source.
    ///
    /// # Errors
    ///
    /// [`SourceError::Build`] for an invalid setting (checked before
    /// connecting); [`SourceError::Connect`] if Redis cannot be reached;
    /// [`SourceError::Redis`] if the group cannot be created (for example
    /// `WRONGTYPE`: the key holds something else than a stream).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing is read before this returns.
    pub async fn connect(self) -> Result<RedisStreamSource, SourceError> {
        let client = redis::Client::open(self.url.as_str()).map_err(BuildError::InvalidUrl)?;
        self.check()?;
        let server = server_name(client.get_connection_info());
        let connect_error = |source: RedisError| SourceError::Connect {
            server: server.clone(),
            source,
        };

        // One plain attempt first: fails fast, where a connection manager
        // would retry for seconds.
        let mut conn = match tokio::time::timeout(
            self.connect_timeout,
            first_connection(client.get_connection_info(), self.connect_timeout),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => return Err(connect_error(err)),
            Err(_elapsed) => {
                return Err(connect_error(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.connect_timeout),
                ))));
            }
        };

        let dead_letter = self
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("{}:dead", self.stream));
        let target = Target {
            server: server.clone(),
            stream: self.stream.clone(),
            group: self.group.clone(),
            consumer: self.consumer.clone(),
            dead_letter,
        };

        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.start_id)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(err) if err.code() == Some("BUSYGROUP") => {}
            // The URL has no password, the server wants one.
            Err(err) if err.code() == Some("NOAUTH") => return Err(connect_error(err)),
            Err(err) => return Err(target.error("XGROUP CREATE", err)),
        }
        drop(conn);

        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(self.connect_timeout));
        let commands = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(connect_error)?;
        // Blocking reads get a connection of their own, so that they do not
        // hold up acks, claims and renewals: a plain RESP2 connection whose
        // replies are parsed in place (see `resp`), reconnected by the
        // reader after a failure.
        let reads = Reads {
            info: client.get_connection_info().clone(),
            conn: Some(
                RespConnection::connect(client.get_connection_info(), self.connect_timeout)
                    .await
                    .map_err(connect_error)?,
            ),
            connect_timeout: self.connect_timeout,
            reply_timeout: self.block + Duration::from_secs(10),
        };

        let shared = Arc::new(Shared::new(target.clone()));
        let acker = Acker::new(
            commands.clone(),
            Arc::clone(&shared),
            self.ack_max_items,
            self.ack_max_delay,
            self.ack_retry_budget,
        )
        .map_err(BuildError::Ack)?;
        let stop = CancellationToken::new();
        // Whole batches: one send per read, not one per message.
        let (tx, rx) = mpsc::channel(1);
        let claim_interval = self.claim_interval.unwrap_or(self.claim_idle / 2);
        let lease_renewal = self.effective_lease_renewal();
        let reader = Reader {
            reads,
            commands: commands.clone(),
            settings: Settings {
                batch_size: self.batch_size,
                block: self.block,
                claim_idle: self.claim_idle,
                hung_after: self.effective_hung_after(),
                claim_interval,
                max_deliveries: self.max_deliveries,
            },
            dead_letter_retry: shared::retry_policy(&target, "dead letter", self.ack_retry_budget),
            tx,
            permits: Arc::new(Semaphore::new(self.max_in_flight)),
            shared: Arc::clone(&shared),
            acker: acker.clone(),
            stop: stop.clone(),
            recovering: Some("0".to_owned()),
            claim_cursor: "-".to_owned(),
            presence_unknown_logged: false,
            next_claim: Instant::now(),
        };
        // Present from the start: other consumers see this one is alive.
        let presence = shared::presence_name(&target.stream, &target.group, &target.consumer);
        let mut conn = commands.clone();
        set_presence(&mut conn, &presence)
            .await
            .map_err(|err| target.error("CLIENT SETNAME", err))?;
        tokio::spawn(reader.run());
        tokio::spawn(renew_leases(
            Arc::downgrade(&shared),
            commands,
            lease_renewal,
        ));
        Ok(RedisStreamSource {
            rx,
            batch: Vec::new().into_iter(),
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
            acker,
            shared,
        })
    }
}

/// The first connection to the server described by `info`. It
/// authenticates by itself (`AUTH`, then `SELECT`), because the client
/// library replaces the server's message of a failed `AUTH` (`WRONGPASS …`)
/// with its own.
async fn first_connection(
    info: &redis::ConnectionInfo,
    timeout: Duration,
) -> Result<redis::aio::MultiplexedConnection, RedisError> {
    let settings = info.redis_settings();
    let bare = info.clone().set_redis_settings(
        redis::RedisConnectionInfo::default().set_protocol(settings.protocol()),
    );
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = redis::Client::open(bare)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    if let Some(password) = settings.password() {
        let mut auth = redis::cmd("AUTH");
        if let Some(username) = settings.username() {
            auth.arg(username);
        }
        auth.arg(password).query_async::<()>(&mut conn).await?;
    }
    if settings.db() != 0 {
        redis::cmd("SELECT")
            .arg(settings.db())
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(conn)
}

/// Reads a Redis stream as a member of a consumer group, as a
/// [`Stream`] of [`Delivery`]s; see the [crate docs](crate).
///
/// The stream ends after [`StopHandle::stop`] (or when it fails for good,
/// after an `Err` item); dropping the source stops its reader. The leases of
/// the deliveries still held are renewed until they are acked or dropped.
pub struct RedisStreamSource {
    rx: mpsc::Receiver<Result<Vec<Delivery>, SourceError>>,
    /// The rest of the batch being handed out.
    batch: std::vec::IntoIter<Delivery>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    acker: Acker,
    shared: Arc<Shared>,
}

impl RedisStreamSource {
    /// Configures a source reading `stream` as `consumer` of `group`, on the
    /// Redis server at `url` (`redis://[[user]:password@]host:port[/db]`).
    ///
    /// Run several consumers — in one process or on many machines — with
    /// different `consumer` names in the same `group`: Redis splits the
    /// messages between them. Run at most one source per consumer name at a
    /// time.
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
            lease_renewal: None,
            hung_after: None,
            claim_interval: None,
            max_deliveries: 5,
            dead_letter: None,
            start_id: "0".to_owned(),
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

    /// The acker shared by this source's deliveries; close it at the end of a
    /// graceful shutdown to send the last `XACK`s.
    pub fn acker(&self) -> &Acker {
        &self.acker
    }

    /// Counters of what the source read, claimed, renewed and dead-lettered.
    pub fn stats(&self) -> SourceStats {
        let mut stats = *self.shared.stats();
        stats.held = self.shared.held() as u64;
        stats
    }

    /// The server, as `host:port/db` (never with the password).
    pub fn server(&self) -> &str {
        &self.shared.target.server
    }

    /// The dead-letter stream.
    pub fn dead_letter_stream(&self) -> &str {
        &self.shared.target.dead_letter
    }
}

impl Stream for RedisStreamSource {
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

impl fmt::Debug for RedisStreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamSource")
            .field("server", &self.shared.target.server)
            .field("stream", &self.shared.target.stream)
            .field("group", &self.shared.target.group)
            .field("consumer", &self.shared.target.consumer)
            .field("stopped", &self.stop.is_cancelled())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Stops a [`RedisStreamSource`]: no new message is read (a read in progress
/// finishes, within the block time), the messages already read are still
/// delivered, then the stream ends. Messages read but never acked stay pending
/// in the group: a graceful shutdown acks what was written and leaves the rest
/// for a restart or another consumer. The leases of deliveries still held
/// are renewed until they are acked or dropped.
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
///
/// Every entry the source moved to the dead-letter stream is in exactly one
/// of `dead_lettered`, `unreadable`, `deleted` and `rejected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// New messages read and handed out (`XREADGROUP >`).
    pub read: u64,
    /// This consumer's own pending messages read again after a restart and
    /// handed out.
    pub recovered: u64,
    /// Messages taken over from consumers that died or hung,
    /// or dropped by this one, and handed out.
    pub claimed: u64,
    /// Entries of a claim reply that this consumer held or had just acked,
    /// so were not handed out again.
    pub skipped: u64,
    /// Messages delivered more than `max_deliveries` times, moved to the
    /// dead-letter stream instead of being handed out.
    pub dead_lettered: u64,
    /// Entries that could not be read (a field name that is not UTF-8, a
    /// field without a value), moved to the dead-letter stream.
    pub unreadable: u64,
    /// Pending entries found deleted from the stream (`XDEL`, `XTRIM`)
    /// before they were acked; each is recorded in the dead-letter stream
    /// (with no original fields).
    pub deleted: u64,
    /// Messages the caller dead-lettered ([`AckToken::dead_letter`](crate::AckToken::dead_letter)).
    pub rejected: u64,
    /// Lease renewals made (one per renewal tick with held deliveries).
    pub lease_renewals: u64,
    /// Lease renewals that failed (logged; retried at the next tick).
    pub lease_renewal_failures: u64,
    /// Held deliveries found owned by another consumer at a renewal: their
    /// lease had run out (this consumer could not renew it for
    /// `claim_idle`) and they were taken over. Their late ack still removes
    /// them.
    pub leases_lost: u64,
    /// Deliveries held now (handed out, not yet acked or dropped).
    pub held: u64,
    /// Transient Redis errors the reader retried.
    pub retries: u64,
    /// `XACK` attempts retried after a transient error.
    pub ack_retries: u64,
}

impl SourceStats {
    /// Adds `other`'s counts to these: the totals of several sources (the
    /// shards of one sharded stream, say).
    ///
    /// ```
    /// use flowgate_redis::SourceStats;
    ///
    /// let mut total = SourceStats::default();
    /// total.merge(&SourceStats::default());
    /// assert_eq!(total, SourceStats::default());
    /// ```
    pub fn merge(&mut self, other: &SourceStats) {
        let SourceStats {
            read,
            recovered,
            claimed,
            skipped,
            dead_lettered,
            unreadable,
            deleted,
            rejected,
            lease_renewals,
            lease_renewal_failures,
            leases_lost,
            held,
            retries,
            ack_retries,
        } = *other;
        self.read += read;
        self.recovered += recovered;
        self.claimed += claimed;
        self.skipped += skipped;
        self.dead_lettered += dead_lettered;
        self.unreadable += unreadable;
        self.deleted += deleted;
        self.rejected += rejected;
        self.lease_renewals += lease_renewals;
        self.lease_renewal_failures += lease_renewal_failures;
        self.leases_lost += leases_lost;
        self.held += held;
        self.retries += retries;
        self.ack_retries += ack_retries;
    }
}

/// The series [`SourceStats::record`] sets, each `name{name="…"}`: every
/// counter field as `flowgate_redis_source_<field>_total`, and `held` as the
/// gauge `flowgate_redis_source_held`.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub const SOURCE_SERIES: &[&str] = &[
    "flowgate_redis_source_read_total",
    "flowgate_redis_source_recovered_total",
    "flowgate_redis_source_claimed_total",
    "flowgate_redis_source_skipped_total",
    "flowgate_redis_source_dead_lettered_total",
    "flowgate_redis_source_unreadable_total",
    "flowgate_redis_source_deleted_total",
    "flowgate_redis_source_rejected_total",
    "flowgate_redis_source_lease_renewals_total",
    "flowgate_redis_source_lease_renewal_failures_total",
    "flowgate_redis_source_leases_lost_total",
    "flowgate_redis_source_retries_total",
    "flowgate_redis_source_ack_retries_total",
    "flowgate_redis_source_held",
];

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl SourceStats {
    /// Sets the [`SOURCE_SERIES`] to these counts, labelled `name`, through
    /// the `metrics` facade (feature `metrics`): call it on a timer (and once
    /// at the end) with [`RedisStreamSource::stats`] to export the source.
    /// Counters are set to the absolute totals, so calling it twice with
    /// the same stats changes nothing.
    ///
    /// ```
    /// use flowgate_redis::SourceStats;
    ///
    /// // With no recorder installed this records nothing.
    /// SourceStats::default().record("orders");
    /// ```
    pub fn record(&self, name: &str) {
        let counts = [
            self.read,
            self.recovered,
            self.claimed,
            self.skipped,
            self.dead_lettered,
            self.unreadable,
            self.deleted,
            self.rejected,
            self.lease_renewals,
            self.lease_renewal_failures,
            self.leases_lost,
            self.retries,
            self.ack_retries,
        ];
        for (series, count) in SOURCE_SERIES.iter().zip(counts) {
            metrics::counter!(*series, "name" => name.to_owned()).absolute(count);
        }
        metrics::gauge!("flowgate_redis_source_held", "name" => name.to_owned())
            .set(self.held as f64);
    }
}

struct Settings {
    batch_size: usize,
    block: Duration,
    claim_idle: Duration,
    hung_after: Duration,
    claim_interval: Duration,
    max_deliveries: u64,
}

/// The background task that reads and hands out deliveries.
struct Reader {
    reads: Reads,
    commands: ConnectionManager,
    settings: Settings,
    dead_letter_retry: Retry<RedisError>,
    tx: mpsc::Sender<Result<Vec<Delivery>, SourceError>>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
    acker: Acker,
    stop: CancellationToken,
    /// While re-reading this consumer's own pending entries after a restart:
    /// the id to continue after.
    recovering: Option<String>,
    /// Where the next takeover scan starts: `-`, or `(<id>` after `<id>`.
    claim_cursor: String,
    next_claim: Instant,
    /// Whether the failure to list clients (no permission) was logged.
    presence_unknown_logged: bool,
}

/// The reader's connection for `XREADGROUP`, made again after a failure.
struct Reads {
    info: redis::ConnectionInfo,
    /// `None` after a failure: the next request connects.
    conn: Option<RespConnection>,
    connect_timeout: Duration,
    /// How long a reply may take: the block time and a margin.
    reply_timeout: Duration,
}

impl Reads {
    /// Sends one packed command and returns its reply. After an I/O error or
    /// a timeout the connection is dropped (it may be out of step with its
    /// replies); the next request makes a new one.
    async fn request(&mut self, packed: &[u8]) -> Result<bytes::Bytes, RedisError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self
                .conn
                .insert(RespConnection::connect(&self.info, self.connect_timeout).await?),
        };
        let result = match tokio::time::timeout(self.reply_timeout, conn.request(packed)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply within {:?}", self.reply_timeout),
            ))),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// Where a batch of entries came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Origin {
    New,
    Recovered,
    Claimed,
}

/// Why the reader dead-letters an entry.
enum Poison {
    Unreadable(String),
    Deleted,
    TooManyDeliveries,
}

impl Reader {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        while !self.stop.is_cancelled() && !self.tx.is_closed() {
            match self.step().await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(err) if err.is_transient() => {
                    tracing::warn!(error = %err, ?backoff, "redis stream read failed; retrying");
                    self.shared.stats().retries += 1;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    tracing::error!(error = %err, "redis stream read failed for good; the stream ends");
                    let _ = self.tx.send(Err(err)).await;
                    return;
                }
            }
        }
    }

    /// One read: recover, claim or read new entries, and hand them out.
    async fn step(&mut self) -> Result<(), SourceError> {
        let batch = self.settings.batch_size;
        // Room for a full batch first: this is the max_in_flight bound.
        let mut room = tokio::select! {
            room = Arc::clone(&self.permits).acquire_many_owned(batch as u32) => {
                room.expect("the semaphore is never closed")
            }
            () = self.stop.cancelled() => return Ok(()),
        };

        // Recovery first, alone: what it returns was never handed out in
        // this run, and no claim bumps the delivery counters meanwhile.
        let (origin, entries) = if let Some(after) = self.recovering.clone() {
            let entries = self.recover(&after).await?;
            (Origin::Recovered, entries)
        } else if Instant::now() >= self.next_claim {
            (Origin::Claimed, self.claim().await?)
        } else {
            let entries = self.read(">", true).await?;
            (
                Origin::New,
                entries.into_iter().map(|entry| (entry, 1)).collect(),
            )
        };
        if entries.is_empty() {
            return Ok(());
        }

        // Every deliverable entry is held (so its lease is renewed) before
        // any is sent: sending waits for the caller, and what waits must
        // not be taken over meanwhile.
        let mut deliverable = Vec::with_capacity(entries.len());
        let mut poison = Vec::new();
        for (entry, deliveries) in entries {
            match entry.content {
                Content::Fields(fields) if deliveries <= self.settings.max_deliveries => {
                    deliverable.push((entry.id, fields, deliveries));
                }
                Content::Fields(fields) => {
                    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = fields
                        .iter()
                        .map(|(name, value)| (name.as_bytes().to_vec(), value.to_vec()))
                        .collect();
                    raw.sort();
                    poison.push((entry.id, raw, deliveries, Poison::TooManyDeliveries));
                }
                Content::Unreadable { raw, reason } => {
                    poison.push((entry.id, raw, deliveries, Poison::Unreadable(reason)));
                }
                Content::Deleted => {
                    poison.push((entry.id, Vec::new(), deliveries, Poison::Deleted));
                }
            }
        }
        // One critical section for the whole batch. Never twice: claim and
        // recovery replies were filtered already.
        let held = self.shared.hold_all(deliverable, |(id, _, _)| id);
        let mut deliveries_out = Vec::with_capacity(held.len());
        for ((id, fields, deliveries), key) in held {
            let Some(key) = key else { continue };
            let permit = room.split(1).expect("one permit per entry of the batch");
            deliveries_out.push(Delivery::new(
                id,
                fields,
                deliveries,
                InFlight {
                    key,
                    shared: Arc::clone(&self.shared),
                    _permit: permit,
                    released: false,
                },
                self.acker.clone(),
            ));
        }
        for (id, raw, deliveries, why) in poison {
            self.dead_letter(&id, &raw, deliveries, why).await;
        }
        let handed = deliveries_out.len() as u64;
        if handed > 0 && self.tx.send(Ok(deliveries_out)).await.is_err() {
            // The source was dropped: what was read stays pending.
            return Ok(());
        }
        let mut stats = self.shared.stats();
        match origin {
            Origin::New => stats.read += handed,
            Origin::Recovered => stats.recovered += handed,
            Origin::Claimed => stats.claimed += handed,
        }
        Ok(())
    }

    /// `XREADGROUP` from `id` (`>` for new messages, blocking).
    async fn read(&mut self, id: &str, block: bool) -> Result<Vec<Entry>, SourceError> {
        let target = &self.shared.target;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&target.group)
            .arg(&target.consumer)
            .arg("COUNT")
            .arg(self.settings.batch_size);
        if block {
            cmd.arg("BLOCK").arg(self.settings.block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&target.stream).arg(id);
        let reply = self
            .reads
            .request(&cmd.get_packed_command())
            .await
            .map_err(|err| target.error("XREADGROUP", err))?;
        match crate::resp::read_reply(&reply) {
            Ok(ReadReply::Entries(entries)) => Ok(entries),
            Ok(ReadReply::Error(err)) => Err(target.error("XREADGROUP", err)),
            Err(bad) => Err(target.unexpected("XREADGROUP", bad.0)),
        }
    }

    /// This consumer's own pending entries after `after`, with their
    /// delivery counts; at the end of them, recovery is over.
    async fn recover(&mut self, after: &str) -> Result<Vec<(Entry, u64)>, SourceError> {
        let shared = Arc::clone(&self.shared);
        let guard = shared.begin_claim();
        let entries = self.read(after, false).await?;
        self.recovering = entries.last().map(|entry| entry.id.clone());
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (entries, skipped) = guard.keep(entries, |entry| &entry.id);
        self.skipped(skipped);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let counts = self.delivery_counts(&entries).await?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                let deliveries = counts.get(&entry.id).copied().unwrap_or(1);
                (entry, deliveries)
            })
            .collect())
    }

    fn skipped(&self, skipped: usize) {
        if skipped > 0 {
            tracing::debug!(
                skipped,
                "claim reply carried messages this consumer holds or just acked; not handed out again"
            );
            self.shared.stats().skipped += skipped as u64;
        }
    }

    /// Takes over entries whose lease ran out: pending and idle for
    /// `claim_idle` with a consumer that is gone (no connection of that name,
    /// see [`SourceBuilder::hung_after`]) or with this one (dropped
    /// deliveries), or idle for `hung_after` with any consumer. Scans the
    /// pending list with `XPENDING … IDLE`, continuing where the last call
    /// stopped; moves the entries with the takeover script (which re-checks
    /// the idle time, so a lease renewed meanwhile holds); leaves out those
    /// this consumer holds or has just acked; and fetches the others,
    /// counting a delivery (the take script).
    async fn claim(&mut self) -> Result<Vec<(Entry, u64)>, SourceError> {
        let shared = Arc::clone(&self.shared);
        let target = &shared.target;
        let guard = shared.begin_claim();
        let live = self.live_consumers().await?;
        let claim_idle = self.settings.claim_idle.as_millis() as u64;
        let hung_after = self.settings.hung_after.as_millis() as u64;
        let reply: Value = redis::cmd("XPENDING")
            .arg(&target.stream)
            .arg(&target.group)
            .arg("IDLE")
            .arg(claim_idle)
            .arg(&self.claim_cursor)
            .arg("+")
            .arg(self.settings.batch_size)
            .query_async(&mut self.commands)
            .await
            .map_err(|err| target.error("XPENDING (takeover scan)", err))?;
        let rows =
            reply::pending_rows(reply).map_err(|bad| target.unexpected("XPENDING", bad.0))?;
        match rows.last() {
            Some(last) if rows.len() >= self.settings.batch_size => {
                self.claim_cursor = format!("({}", last.id);
            }
            _ => {
                // The scan went round: rest until the next interval.
                self.claim_cursor = "-".to_owned();
                self.next_claim = Instant::now() + self.settings.claim_interval;
            }
        }
        let mut from: Vec<String> = Vec::new();
        let candidates: Vec<String> = rows
            .into_iter()
            .filter(|row| {
                let gone = row.consumer == target.consumer
                    || live.as_ref().is_none_or(|live| {
                        !live.contains(&shared::presence_name(
                            &target.stream,
                            &target.group,
                            &row.consumer,
                        ))
                    })
                    || row.idle_ms >= hung_after;
                if gone && row.consumer != target.consumer && !from.contains(&row.consumer) {
                    from.push(row.consumer.clone());
                }
                gone
            })
            .map(|row| row.id)
            .collect();
        let mut claimed = Vec::new();
        let mut deleted = Vec::new();
        for chunk in candidates.chunks(SCRIPT_CHUNK) {
            let mut call = TAKEOVER.key(&target.stream);
            call.arg(&target.group)
                .arg(&target.consumer)
                .arg(claim_idle)
                .arg(chunk);
            let reply: Value = call
                .invoke_async(&mut self.commands)
                .await
                .map_err(|err| target.error("XCLAIM (takeover script)", err))?;
            let (c, d) = reply::takeover(reply)
                .map_err(|bad| target.unexpected("XCLAIM (takeover script)", bad.0))?;
            claimed.extend(c);
            deleted.extend(d);
        }
        let (ids, skipped) = guard.keep(claimed, |id| id);
        self.skipped(skipped);

        // Already removed from the pending list by the takeover script.
        let mut out: Vec<(Entry, u64)> = deleted
            .into_iter()
            .map(|id| {
                (
                    Entry {
                        id,
                        content: Content::Deleted,
                    },
                    0,
                )
            })
            .collect();
        for chunk in ids.chunks(SCRIPT_CHUNK) {
            let mut call = TAKE.key(&target.stream);
            call.arg(&target.group).arg(&target.consumer).arg(chunk);
            let reply: Value = call
                .invoke_async(&mut self.commands)
                .await
                .map_err(|err| target.error("XCLAIM (take script)", err))?;
            let taken = reply::taken(reply)
                .map_err(|bad| target.unexpected("XCLAIM (take script)", bad.0))?;
            out.extend(taken);
        }
        if !out.is_empty() {
            tracing::warn!(
                messages = out.len(),
                from = ?from,
                claim_idle = ?self.settings.claim_idle,
                "took over messages whose lease ran out (their consumer is gone, hung, or dropped them)"
            );
        }
        Ok(out)
    }

    /// The presence names of the consumers connected now (`CLIENT LIST`), or
    /// `None` when Redis does not let this client list them (an ACL without
    /// `CLIENT`): then every consumer's lease is judged by time alone.
    async fn live_consumers(&mut self) -> Result<Option<HashSet<String>>, SourceError> {
        let target = &self.shared.target;
        let reply: Result<Value, RedisError> = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("normal")
            .query_async(&mut self.commands)
            .await;
        match reply {
            Ok(reply) => reply::client_names(reply)
                .map(Some)
                .map_err(|bad| target.unexpected("CLIENT LIST", bad.0)),
            Err(err) if err.code() == Some("NOPERM") => {
                if !self.presence_unknown_logged {
                    self.presence_unknown_logged = true;
                    tracing::warn!(
                        error = %err,
                        "cannot list Redis clients: leases are judged by time alone (claim_idle), \
                         so a live but slow consumer may lose its messages"
                    );
                }
                Ok(None)
            }
            Err(err) => Err(target.error("CLIENT LIST", err)),
        }
    }

    /// Delivery counts of `entries`, all pending with this consumer.
    async fn delivery_counts(
        &mut self,
        entries: &[Entry],
    ) -> Result<HashMap<String, u64>, SourceError> {
        let target = &self.shared.target;
        let (first, last) = (&entries[0].id, &entries[entries.len() - 1].id);
        let reply: Value = redis::cmd("XPENDING")
            .arg(&target.stream)
            .arg(&target.group)
            .arg(first)
            .arg(last)
            .arg(entries.len())
            .arg(&target.consumer)
            .query_async(&mut self.commands)
            .await
            .map_err(|err| target.error("XPENDING", err))?;
        reply::pending_counts(reply).map_err(|bad| target.unexpected("XPENDING", bad.0))
    }

    /// Moves an entry to the dead-letter stream and acks it, atomically,
    /// retrying transient errors. If that fails for good the entry stays
    /// pending (it is claimed again after `claim_idle`); the rest of the
    /// batch goes on either way.
    async fn dead_letter(
        &mut self,
        id: &str,
        raw: &[(Vec<u8>, Vec<u8>)],
        deliveries: u64,
        poison: Poison,
    ) {
        let target = &self.shared.target;
        let (reason, if_pending) = match &poison {
            Poison::Unreadable(reason) => (format!("unreadable entry: {reason}"), true),
            Poison::Deleted => (
                "deleted from the stream (XDEL or XTRIM) while pending: its content is lost"
                    .to_owned(),
                false,
            ),
            Poison::TooManyDeliveries => (
                format!(
                    "delivered {deliveries} times, more than max_deliveries {}: its consumers died or hung while processing it",
                    self.settings.max_deliveries
                ),
                true,
            ),
        };
        let letter = shared::DeadLetter {
            id,
            fields: raw,
            deliveries,
            reason: &reason,
            if_pending,
        };
        let written = tokio::select! {
            written = shared::dead_letter(&self.commands, &self.dead_letter_retry, target, &letter) => written,
            () = self.stop.cancelled() => {
                tracing::warn!(id, reason, "stopped before the entry was dead-lettered; it stays pending");
                return;
            }
        };
        match written {
            Ok(false) => tracing::info!(
                id,
                reason,
                "entry to dead-letter was no longer pending (acked elsewhere); nothing written"
            ),
            Ok(true) => {
                tracing::warn!(
                    id, deliveries, reason, dead_letter = %target.dead_letter,
                    "entry dead-lettered"
                );
                let mut stats = self.shared.stats();
                match poison {
                    Poison::Unreadable(_) => stats.unreadable += 1,
                    Poison::Deleted => stats.deleted += 1,
                    Poison::TooManyDeliveries => stats.dead_lettered += 1,
                }
            }
            Err(err) => tracing::error!(
                error = %err, id, reason,
                "dead-lettering failed; the entry stays pending"
            ),
        }
    }
}

/// Renews the leases of the deliveries held, every `every`, for as long as
/// the source or any of its deliveries or ackers is alive.
///
/// Each renewal also names the command connection again (`CLIENT SETNAME`,
/// see [`SourceBuilder::hung_after`]), since a reconnect loses the name; the
/// name is removed when renewing ends.
async fn renew_leases(shared: Weak<Shared>, mut conn: ConnectionManager, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let presence = match shared.upgrade() {
        Some(shared) => shared::presence_name(
            &shared.target.stream,
            &shared.target.group,
            &shared.target.consumer,
        ),
        None => return,
    };
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            let _ = set_presence(&mut conn, "").await;
            return;
        };
        if let Err(err) = set_presence(&mut conn, &presence).await {
            tracing::warn!(error = %shared.target.error("CLIENT SETNAME", err), "cannot name the connection; retrying at the next renewal");
        }
        let ids = shared.leased();
        if ids.is_empty() {
            continue;
        }
        let target = &shared.target;
        let mut lost = Vec::new();
        let mut failure = None;
        for chunk in ids.chunks(SCRIPT_CHUNK) {
            let mut call = RENEW.key(&target.stream);
            call.arg(&target.group).arg(&target.consumer).arg(chunk);
            let result = match call.invoke_async::<Value>(&mut conn).await {
                Ok(reply) => reply::ids(reply)
                    .map_err(|bad| target.unexpected("XCLAIM JUSTID (lease renewal)", bad.0)),
                Err(err) => Err(target.error("XCLAIM JUSTID (lease renewal)", err)),
            };
            match result {
                Ok(ids) => lost.extend(ids),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        let lost_now = shared.lost(&lost);
        let mut stats = shared.stats();
        stats.leases_lost += lost_now;
        match failure {
            None => stats.lease_renewals += 1,
            Some(err) => {
                stats.lease_renewal_failures += 1;
                drop(stats);
                tracing::warn!(
                    error = %err, held = ids.len(),
                    "lease renewal failed; retrying at the next renewal"
                );
            }
        }
        if lost_now > 0 {
            tracing::warn!(
                lost = lost_now,
                "leases lost: held messages were taken over by another consumer (this one could not renew them for claim_idle); their effect may happen twice"
            );
        }
    }
}

/// Names the connection (`CLIENT SETNAME`; an empty name removes it).
async fn set_presence(conn: &mut ConnectionManager, name: &str) -> Result<(), RedisError> {
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .query_async::<()>(conn)
        .await
}
