//! The hand-written peers of the end-to-end benchmark (`dev/bench-e2e.sh`):
//! what a careful engineer writes **without flowgate**, with plain `redis`,
//! `tokio-postgres` and `rusqlite`, to move a Redis stream into a table and
//! acknowledge each message only after its row is durable.
//!
//! ```text
//!  batch loop      XREADGROUP COUNT 1000 ──> bounded channel ──> writer 1: UNNEST insert ──> XACK ids
//!                  (one reader task)                        └──> writer 2: UNNEST insert ──> XACK ids
//!  Redis alone     XREADGROUP COUNT 1000 ──> bounded channel ──> XACK ids               (no sink)
//!  PostgreSQL alone  rows generated in memory ──> 2 writers: UNNEST insert, 1000 rows   (no Redis)
//!  rusqlite loop   rows generated ──> bounded channel ──> blocking thread: 1 transaction / 1000 rows
//! ```
//!
//! The NATS and Kafka peers ([`nats_loop`], [`kafka_loop`]; `dev/bench-nats.sh`,
//! `dev/bench-kafka.sh`) have the same shape: one reader, two writers, the
//! acknowledgement (Kafka: the offset commit, in batch order) after the insert.
//!
//! The table is the one of `flowgate ingest`'s demo mapping: `id TEXT` (the
//! key: the stream entry id, or `msg-<i>` for generated rows), `seq BIGINT`,
//! `body BYTEA` and `checksum BIGINT`, the FNV-1a hash of `body`; each
//! insert is idempotent (`ON CONFLICT (id) DO NOTHING`), so a redelivered
//! message is stored once.
//!
//! What the peers do not do, and `flowgate ingest` does: dead-letter a
//! message that does not fit (a peer stops with an error), isolate a row the
//! database refuses, retry through outages, renew leases, report per-message
//! outcomes and latencies. The benchmark's messages are all good and the
//! servers stay up, so none of that is exercised; its cost in `flowgate
//! ingest` is what the comparison measures.
//!
//! Every run prints one line for `dev/bench-e2e.sh` to read:
//! `RESULT messages=<acked or stored> secs=<work time> rate=<per second>`,
//! the time running from the first read (or generated batch) to the last
//! acknowledgement (or commit): start-up and the final idle wait are not in
//! it.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Value as RedisValue;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Statement};

/// A boxed error, for the peers' plumbing.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A batch of rows, column by column: the shape an `UNNEST` insert takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    /// The key column: the stream entry id (or `msg-<i>`).
    pub ids: Vec<String>,
    /// The `seq` field, parsed.
    pub seqs: Vec<i64>,
    /// The `body` field, as bytes.
    pub bodies: Vec<Vec<u8>>,
    /// FNV-1a of each body.
    pub checksums: Vec<i64>,
}

impl Rows {
    /// An empty batch with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Rows {
            ids: Vec::with_capacity(n),
            seqs: Vec::with_capacity(n),
            bodies: Vec::with_capacity(n),
            checksums: Vec::with_capacity(n),
        }
    }

    /// Appends a row, computing its checksum.
    pub fn push(&mut self, id: String, seq: i64, body: Vec<u8>) {
        self.checksums.push(fnv1a(&body));
        self.ids.push(id);
        self.seqs.push(seq);
        self.bodies.push(body);
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch has no row.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The generated messages `range` (see [`generated`]) as rows.
    pub fn generated(range: std::ops::Range<u64>) -> Self {
        let mut rows = Rows::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        for i in range {
            let (id, seq, body) = generated(i);
            rows.push(id, seq, body);
        }
        rows
    }
}

/// FNV-1a, 64 bits, as a signed integer: the demo mapping's `checksum`.
pub fn fnv1a(bytes: &[u8]) -> i64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    }) as i64
}

/// The `i`-th generated message as `(id, seq, body)`: the same bytes as
/// `flowgate_cli::ingest::generate(i)` (and so as `flowgate publish`), made
/// directly instead of through a field map.
///
/// Written piece by piece as `flowgate_cli::ingest::write_generated_body`
/// and `generated_id` write them (the same code, copied so that the peers
/// use nothing of flowgate's): the same bytes at the same cost.
pub fn generated(i: u64) -> (String, i64, Vec<u8>) {
    let mut body = Vec::with_capacity(112);
    let mut digits = itoa::Buffer::new();
    body.extend_from_slice(br#"{"seq":"#);
    body.extend_from_slice(digits.format(i).as_bytes());
    body.extend_from_slice(br#","kind":"order","customer":"c-"#);
    push_padded(&mut body, i % 10_000, 5);
    body.extend_from_slice(br#"","amount_cents":"#);
    body.extend_from_slice(digits.format(i.wrapping_mul(7919) % 100_000).as_bytes());
    body.extend_from_slice(br#","currency":"EUR"}"#);
    let mut id = Vec::with_capacity(24);
    id.extend_from_slice(b"msg-");
    push_padded(&mut id, i, 10);
    (String::from_utf8(id).expect("ASCII digits"), i as i64, body)
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

/// A reply of `XREADGROUP` that is not what the peers expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply(pub String);

impl fmt::Display for BadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected XREADGROUP reply: {}", self.0)
    }
}

impl Error for BadReply {}

/// Parses an `XREADGROUP` reply (RESP2, one stream) into `rows`, taking the
/// bytes out of the reply without copying them; returns how many entries it
/// added. Nil (a `BLOCK` that timed out) adds none.
///
/// # Errors
///
/// [`BadReply`] if the reply is not an array of `[stream, [[id, [field,
/// value, …]], …]]`, or an entry lacks `seq` or `body`, or `seq` is not an
/// integer.
pub fn parse_read_reply(reply: RedisValue, rows: &mut Rows) -> Result<usize, BadReply> {
    let bad = |what: &str| BadReply(what.to_owned());
    let streams = match reply {
        RedisValue::Nil => return Ok(0),
        RedisValue::Array(streams) => streams,
        _ => return Err(bad("not an array")),
    };
    let mut added = 0;
    for stream in streams {
        let RedisValue::Array(key_entries) = stream else {
            return Err(bad("stream item not an array"));
        };
        let Some(RedisValue::Array(entries)) = key_entries.into_iter().nth(1) else {
            return Err(bad("no entry list"));
        };
        for entry in entries {
            let RedisValue::Array(parts) = entry else {
                return Err(bad("entry not an array"));
            };
            let mut parts = parts.into_iter();
            let (Some(RedisValue::BulkString(id)), Some(RedisValue::Array(fields))) =
                (parts.next(), parts.next())
            else {
                return Err(bad("entry not [id, fields]"));
            };
            let id = String::from_utf8(id).map_err(|_| bad("id not UTF-8"))?;
            let (mut seq, mut body) = (None, None);
            let mut fields = fields.into_iter();
            while let (Some(RedisValue::BulkString(name)), Some(RedisValue::BulkString(value))) =
                (fields.next(), fields.next())
            {
                match name.as_slice() {
                    b"seq" => seq = Some(value),
                    b"body" => body = Some(value),
                    _ => {}
                }
            }
            let seq = seq
                .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<i64>().ok())
                .ok_or_else(|| bad("entry without an integer seq field"))?;
            let body = body.ok_or_else(|| bad("entry without a body field"))?;
            rows.push(id, seq, body);
            added += 1;
        }
    }
    Ok(added)
}

/// A Redis connection whose response timeout allows a `BLOCK`ing read.
///
/// # Errors
///
/// If the URL is invalid or Redis cannot be reached.
///
/// # Cancel safety
///
/// Cancel-safe: nothing is sent before the connection is returned.
pub async fn redis_connection(url: &str) -> Result<MultiplexedConnection, BoxError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_connection_timeout(Some(Duration::from_secs(10)));
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Creates `group` on `stream` from its first entry (and the stream, if
/// missing); an existing group is kept.
///
/// # Errors
///
/// If Redis fails otherwise.
///
/// # Cancel safety
///
/// Cancel-safe: the command either ran or it did not; running it again is
/// harmless.
pub async fn create_group(
    conn: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> Result<(), BoxError> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(err) if err.code() != Some("BUSYGROUP") => Err(err.into()),
        _ => Ok(()),
    }
}

/// How a PostgreSQL writer stores a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgMode {
    /// One prepared `INSERT … SELECT * FROM UNNEST($1::text[], …) ON
    /// CONFLICT (id) DO NOTHING`: one statement, one round trip, its own
    /// transaction.
    Unnest,
    /// In one transaction: `COPY` the batch in the binary format into a
    /// temporary staging table (`ON COMMIT DELETE ROWS`), then `INSERT INTO
    /// table SELECT * FROM stage ON CONFLICT (id) DO NOTHING` (`COPY`
    /// itself cannot skip duplicates).
    Copy,
    /// `COPY` (binary) straight into the table, in its own transaction; a
    /// batch that holds a stored key fails with `unique_violation` and is
    /// then written again as an `UNNEST` insert (`ON CONFLICT (id) DO
    /// NOTHING`). Idempotent, and as cheap as `COPY` while nothing is
    /// redelivered.
    CopyDirect,
}

/// The demo table's definition in PostgreSQL, as `flowgate ingest` creates
/// it.
pub fn postgres_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (id TEXT NOT NULL, seq BIGINT NOT NULL, \
         body BYTEA NOT NULL, checksum BIGINT NOT NULL, PRIMARY KEY (id))"
    )
}

/// One PostgreSQL connection writing batches into the demo table.
#[derive(Debug)]
pub struct PgWriter {
    client: Client,
    insert: Statement,
    mode: PgMode,
    copy: String,
    /// [`PgMode::CopyDirect`]: batches that met a stored key.
    fallbacks: u64,
}

impl PgWriter {
    /// Connects, creates `table` if missing and prepares the insert (and,
    /// for [`PgMode::Copy`], this connection's staging table).
    ///
    /// # Errors
    ///
    /// If PostgreSQL cannot be reached or a statement fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a table created by then stays, and is used next time.
    pub async fn connect(url: &str, table: &str, mode: PgMode) -> Result<PgWriter, BoxError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("postgres connection: {err}");
            }
        });
        client.batch_execute(&postgres_table_sql(table)).await?;
        let unnest = format!(
            "INSERT INTO {table} (id, seq, body, checksum) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::bytea[], $4::int8[]) \
             ON CONFLICT (id) DO NOTHING"
        );
        let (insert, copy) = match mode {
            PgMode::Unnest | PgMode::CopyDirect => {
                (client.prepare(&unnest).await?, table.to_owned())
            }
            PgMode::Copy => {
                client
                    .batch_execute(&format!(
                        "CREATE TEMP TABLE stage (LIKE {table}) ON COMMIT DELETE ROWS"
                    ))
                    .await?;
                let insert = client
                    .prepare(&format!(
                        "INSERT INTO {table} (id, seq, body, checksum) \
                         SELECT id, seq, body, checksum FROM stage ON CONFLICT (id) DO NOTHING"
                    ))
                    .await?;
                (insert, "stage".to_owned())
            }
        };
        Ok(PgWriter {
            client,
            insert,
            mode,
            copy: format!("COPY {copy} (id, seq, body, checksum) FROM STDIN (FORMAT binary)"),
            fallbacks: 0,
        })
    }

    /// Stores `rows` in one transaction; returns how many were inserted
    /// (the others' keys were stored already). Once it returns, the rows are
    /// durable (committed).
    ///
    /// # Errors
    ///
    /// If a statement fails (nothing of the batch is stored then).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a statement already sent may commit the batch
    /// without the caller seeing it (writing it again stores nothing twice),
    /// and a cancelled `COPY` leaves the connection unusable.
    pub async fn write(&mut self, rows: &Rows) -> Result<u64, BoxError> {
        match self.mode {
            PgMode::Unnest => self.unnest(rows).await,
            PgMode::Copy => {
                let tx = self.client.transaction().await?;
                copy_rows(&tx, &self.copy, rows).await?;
                let inserted = tx.execute(&self.insert, &[]).await?;
                tx.commit().await?;
                Ok(inserted)
            }
            PgMode::CopyDirect => {
                let copied = async {
                    let tx = self.client.transaction().await?;
                    let copied = copy_rows(&tx, &self.copy, rows).await?;
                    tx.commit().await?;
                    Ok::<_, tokio_postgres::Error>(copied)
                }
                .await;
                match copied {
                    Ok(copied) => Ok(copied),
                    Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        self.fallbacks += 1;
                        self.unnest(rows).await
                    }
                    Err(err) => Err(err.into()),
                }
            }
        }
    }

    /// Batches written again as `UNNEST` inserts because their `COPY` met a
    /// stored key ([`PgMode::CopyDirect`]).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks
    }

    async fn unnest(&self, rows: &Rows) -> Result<u64, BoxError> {
        Ok(self
            .client
            .execute(
                &self.insert,
                &[&rows.ids, &rows.seqs, &rows.bodies, &rows.checksums],
            )
            .await?)
    }
}

/// `COPY … FROM STDIN (FORMAT binary)` of `rows` within `tx`.
async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    copy: &str,
    rows: &Rows,
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(copy).await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8, Type::BYTEA, Type::INT8]);
    futures_util::pin_mut!(writer);
    for i in 0..rows.len() {
        writer
            .as_mut()
            .write(&[
                &rows.ids[i],
                &rows.seqs[i],
                &rows.bodies[i],
                &rows.checksums[i],
            ])
            .await?;
    }
    writer.finish().await
}

/// What a peer's run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Messages read from Redis (or rows generated).
    pub read: u64,
    /// Messages acknowledged (Redis) or rows committed (PostgreSQL alone,
    /// SQLite).
    pub done: u64,
    /// Rows newly inserted (the rest were duplicates).
    pub inserted: u64,
    /// From the first read to the last acknowledgement or commit.
    pub elapsed: Duration,
}

impl Outcome {
    /// The line `dev/bench-e2e.sh` reads: `RESULT messages=… secs=… rate=…`,
    /// then the details.
    pub fn result_line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        format!(
            "RESULT messages={} secs={secs:.3} rate={rate:.0} read={} inserted={}",
            self.done, self.read, self.inserted
        )
    }
}

/// Settings of the Redis loops ([`redis_loop`]).
#[derive(Debug, Clone)]
pub struct RedisLoop {
    /// `redis://host:port/`.
    pub redis: String,
    /// Write to this PostgreSQL database (`None`: the Redis-alone ceiling,
    /// which only acknowledges).
    pub postgres: Option<String>,
    /// How the writers store a batch.
    pub mode: PgMode,
    /// The stream key.
    pub stream: String,
    /// The consumer group (created from the stream's start if missing).
    pub group: String,
    /// This consumer's name.
    pub consumer: String,
    /// The table.
    pub table: String,
    /// Stop after this many messages.
    pub messages: u64,
    /// `XREADGROUP COUNT`: messages per batch.
    pub batch: usize,
    /// Writer tasks, each with its own PostgreSQL and Redis connection (with
    /// no sink: acknowledging tasks).
    pub writers: usize,
    /// Stop once a read found nothing for this long (not counted in the
    /// elapsed time).
    pub idle: Duration,
}

/// The hand-written batch loop (with a sink) or the Redis-alone ceiling
/// (without): one reader task reads `XREADGROUP COUNT batch` and hands each
/// batch through a bounded channel (`writers` batches) to the first free of
/// `writers` tasks, which stores it in one transaction and then sends one
/// `XACK` of all its ids on its own connection. Reading overlaps writing.
///
/// # Errors
///
/// If a server fails or a reply is unexpected: the peer has no retries and
/// no dead letters; what was not acked stays pending.
///
/// # Cancel safety
///
/// Cancelling stops reading; the writer tasks finish what they hold. What
/// was read and not acked stays pending (delivered again to the group).
pub async fn redis_loop(config: RedisLoop) -> Result<Outcome, BoxError> {
    let mut reader = redis_connection(&config.redis).await?;
    create_group(&mut reader, &config.stream, &config.group).await?;
    let mut writers = Vec::with_capacity(config.writers);
    for _ in 0..config.writers.max(1) {
        let pg = match &config.postgres {
            Some(url) => Some(PgWriter::connect(url, &config.table, config.mode).await?),
            None => None,
        };
        writers.push((pg, redis_connection(&config.redis).await?));
    }

    let (tx, rx) = mpsc::channel::<Rows>(config.writers.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(writers.len());
    for (mut pg, mut conn) in writers {
        let rx = Arc::clone(&rx);
        let (stream, group) = (config.stream.clone(), config.group.clone());
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut inserted, mut last) = (0_u64, 0_u64, None);
            loop {
                // The lock is held only while waiting for the next batch.
                let Some(rows) = rx.lock().await.recv().await else {
                    break;
                };
                if let Some(pg) = &mut pg {
                    inserted += pg.write(&rows).await?;
                }
                let n: u64 = redis::cmd("XACK")
                    .arg(&stream)
                    .arg(&group)
                    .arg(&rows.ids)
                    .query_async(&mut conn)
                    .await?;
                acked += n;
                last = Some(Instant::now());
            }
            Ok::<_, BoxError>((acked, inserted, last))
        }));
    }

    let mut read = 0_u64;
    let mut last_read = Instant::now();
    while read < config.messages {
        let count = (config.messages - read).min(config.batch as u64);
        let reply: RedisValue = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&config.group)
            .arg(&config.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(&config.stream)
            .arg(">")
            .query_async(&mut reader)
            .await?;
        let mut rows = Rows::with_capacity(count as usize);
        let n = parse_read_reply(reply, &mut rows)?;
        if n == 0 {
            if last_read.elapsed() >= config.idle {
                break;
            }
            continue;
        }
        read += n as u64;
        last_read = Instant::now();
        if tx.send(rows).await.is_err() {
            break; // a writer failed: its error is reported below
        }
    }
    drop(tx);

    let mut outcome = Outcome {
        read,
        ..Outcome::default()
    };
    let mut end = start;
    for task in tasks {
        let (acked, inserted, last) = task.await??;
        outcome.done += acked;
        outcome.inserted += inserted;
        if let Some(last) = last {
            end = end.max(last);
        }
    }
    outcome.elapsed = end.duration_since(start);
    Ok(outcome)
}

/// The PostgreSQL-alone ceiling: `messages` generated rows ([`generated`]),
/// made in batches of `batch` by one task and handed through a bounded
/// channel to `writers` tasks, each writing on its own connection, one
/// transaction per batch.
///
/// # Errors
///
/// If PostgreSQL fails.
///
/// # Cancel safety
///
/// Cancelling stops generating; the writer tasks finish what they hold.
pub async fn postgres_alone(
    url: &str,
    table: &str,
    mode: PgMode,
    messages: u64,
    batch: usize,
    writers: usize,
) -> Result<Outcome, BoxError> {
    let mut conns = Vec::with_capacity(writers);
    for _ in 0..writers.max(1) {
        conns.push(PgWriter::connect(url, table, mode).await?);
    }
    let (tx, rx) = mpsc::channel::<Rows>(writers.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for mut pg in conns {
        let rx = Arc::clone(&rx);
        tasks.push(tokio::spawn(async move {
            let (mut done, mut inserted, mut last) = (0_u64, 0_u64, None);
            loop {
                let Some(rows) = rx.lock().await.recv().await else {
                    break;
                };
                inserted += pg.write(&rows).await?;
                done += rows.len() as u64;
                last = Some(Instant::now());
            }
            Ok::<_, BoxError>((done, inserted, last))
        }));
    }
    let mut i = 0;
    while i < messages {
        let end = (i + batch as u64).min(messages);
        if tx.send(Rows::generated(i..end)).await.is_err() {
            break;
        }
        i = end;
    }
    drop(tx);
    let mut outcome = Outcome {
        read: i,
        ..Outcome::default()
    };
    let mut end = start;
    for task in tasks {
        let (done, inserted, last) = task.await??;
        outcome.done += done;
        outcome.inserted += inserted;
        if let Some(last) = last {
            end = end.max(last);
        }
    }
    outcome.elapsed = end.duration_since(start);
    Ok(outcome)
}

/// The demo table's definition in SQLite, as `flowgate ingest` creates it.
pub fn sqlite_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (id TEXT NOT NULL, seq INTEGER NOT NULL, \
         body BLOB NOT NULL, checksum INTEGER NOT NULL, PRIMARY KEY (id))"
    )
}

/// The hand-written rusqlite loop: `messages` generated rows ([`generated`]),
/// made in batches of `batch` by an async task and handed through a bounded
/// channel (2 batches) to a blocking thread, which writes each batch in one
/// transaction with a cached prepared `INSERT … ON CONFLICT (id) DO
/// NOTHING`, into `path` in WAL mode with `synchronous = NORMAL` (a
/// committed batch survives a crash of the process, like `flowgate
/// ingest`'s SQLite sink).
///
/// # Errors
///
/// If SQLite fails.
///
/// # Cancel safety
///
/// Cancelling stops generating; the blocking writer finishes the batches it
/// was handed (each committed or not at all).
pub async fn rusqlite_loop(
    path: std::path::PathBuf,
    table: String,
    messages: u64,
    batch: usize,
) -> Result<Outcome, BoxError> {
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(&sqlite_table_sql(&table))?;
    let insert = format!(
        "INSERT INTO {table} (id, seq, body, checksum) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO NOTHING"
    );

    let (tx, mut rx) = mpsc::channel::<Rows>(2);
    let start = Instant::now();
    let writer = tokio::task::spawn_blocking(move || {
        let mut conn = conn;
        let (mut done, mut inserted, mut last) = (0_u64, 0_u64, None);
        while let Some(rows) = rx.blocking_recv() {
            let txn = conn.transaction()?;
            {
                let mut stmt = txn.prepare_cached(&insert)?;
                for i in 0..rows.len() {
                    inserted += stmt.execute(rusqlite::params![
                        rows.ids[i],
                        rows.seqs[i],
                        rows.bodies[i],
                        rows.checksums[i],
                    ])? as u64;
                }
            }
            txn.commit()?;
            done += rows.len() as u64;
            last = Some(Instant::now());
        }
        Ok::<_, BoxError>((done, inserted, last))
    });
    let mut i = 0;
    while i < messages {
        let end = (i + batch as u64).min(messages);
        if tx.send(Rows::generated(i..end)).await.is_err() {
            break;
        }
        i = end;
    }
    drop(tx);
    let (done, inserted, last) = writer.await??;
    Ok(Outcome {
        read: i,
        done,
        inserted,
        elapsed: last.map_or(Duration::ZERO, |last| last.duration_since(start)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rows_are_the_messages_of_flowgate_ingest_and_publish() {
        for i in [0, 1, 99, 12_345, 999_999, 10_000_000_123] {
            let message = flowgate_cli::ingest::generate(i);
            let (id, seq, body) = generated(i);
            assert_eq!(id, message.id);
            assert_eq!(seq.to_string().into_bytes(), message.fields["seq"]);
            assert_eq!(body, message.fields["body"]);
        }
    }

    #[test]
    fn the_checksum_is_fnv1a_64() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a(b"") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar") as u64, 0x8594_4171_f739_67e8);
    }

    fn bulk(s: &str) -> RedisValue {
        RedisValue::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_read_reply_becomes_rows_and_nil_none() {
        let entry = |id: &str, seq: &str, body: &str| {
            RedisValue::Array(vec![
                bulk(id),
                RedisValue::Array(vec![bulk("seq"), bulk(seq), bulk("body"), bulk(body)]),
            ])
        };
        let reply = RedisValue::Array(vec![RedisValue::Array(vec![
            bulk("s"),
            RedisValue::Array(vec![entry("1-0", "7", "x"), entry("1-1", "8", "yz")]),
        ])]);
        let mut rows = Rows::default();
        assert_eq!(parse_read_reply(reply, &mut rows), Ok(2));
        assert_eq!(rows.ids, ["1-0", "1-1"]);
        assert_eq!(rows.seqs, [7, 8]);
        assert_eq!(rows.bodies, [b"x".to_vec(), b"yz".to_vec()]);
        assert_eq!(rows.checksums, [fnv1a(b"x"), fnv1a(b"yz")]);
        assert_eq!(parse_read_reply(RedisValue::Nil, &mut rows), Ok(0));
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn an_entry_without_an_integer_seq_is_a_bad_reply() {
        let reply = RedisValue::Array(vec![RedisValue::Array(vec![
            bulk("s"),
            RedisValue::Array(vec![RedisValue::Array(vec![
                bulk("1-0"),
                RedisValue::Array(vec![bulk("seq"), bulk("seven"), bulk("body"), bulk("x")]),
            ])]),
        ])]);
        let err = parse_read_reply(reply, &mut Rows::default()).unwrap_err();
        assert!(err.to_string().contains("integer seq"), "{err}");
    }
}

/// Settings of the JetStream loops ([`nats_loop`]).
#[derive(Debug, Clone)]
pub struct NatsLoop {
    /// `nats://host:port`.
    pub nats: String,
    /// Write to this PostgreSQL database (`None`: the NATS-alone ceiling,
    /// which only acknowledges).
    pub postgres: Option<String>,
    /// The JetStream stream.
    pub stream: String,
    /// The durable consumer (created from the stream's start, explicit
    /// acks, if missing).
    pub consumer: String,
    /// The table.
    pub table: String,
    /// Stop after this many messages.
    pub messages: u64,
    /// Messages per pull request and per insert.
    pub batch: usize,
    /// Writer tasks, each with its own PostgreSQL connection.
    pub writers: usize,
    /// Stop once a pull found nothing for this long (not counted).
    pub idle: Duration,
}

/// The hand-written JetStream batch loop (with a sink) or the NATS-alone
/// ceiling (without), shaped as [`redis_loop`]: one reader task pulls
/// `batch` messages at a time (rows: id = the stream sequence, `seq` from
/// the header of that name, `body` = the payload, as `flowgate ingest
/// --nats` maps them) and hands each batch to the first free of `writers`
/// tasks, which stores it in one transaction, then publishes `+ACK` to each
/// message's reply subject and flushes once.
///
/// # Errors
///
/// If a server fails: the peer has no retries and no dead letters; what was
/// not acked is delivered again after the ack wait.
///
/// # Cancel safety
///
/// Cancelling stops reading; the writer tasks finish what they hold.
pub async fn nats_loop(config: NatsLoop) -> Result<Outcome, BoxError> {
    use async_nats::jetstream::{self, consumer::pull};
    use futures_util::StreamExt;
    let client = async_nats::connect(&config.nats).await?;
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(&config.stream).await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &config.consumer,
            pull::Config {
                durable_name: Some(config.consumer.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: 100_000,
                ..Default::default()
            },
        )
        .await?;
    let mut writers = Vec::with_capacity(config.writers.max(1));
    for _ in 0..config.writers.max(1) {
        writers.push(match &config.postgres {
            Some(url) => Some(PgWriter::connect(url, &config.table, PgMode::Unnest).await?),
            None => None,
        });
    }
    let (tx, rx) = mpsc::channel::<(Rows, Vec<async_nats::Subject>)>(config.writers.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(writers.len());
    for mut pg in writers {
        let rx = Arc::clone(&rx);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut inserted, mut last) = (0_u64, 0_u64, None);
            let ack = bytes_ack();
            loop {
                let Some((rows, replies)) = rx.lock().await.recv().await else {
                    break;
                };
                if let Some(pg) = &mut pg {
                    inserted += pg.write(&rows).await?;
                }
                for reply in replies {
                    client.publish(reply, ack.clone()).await?;
                }
                client.flush().await?;
                acked += rows.len() as u64;
                last = Some(Instant::now());
            }
            Ok::<_, BoxError>((acked, inserted, last))
        }));
    }

    let mut read = 0_u64;
    let mut last_read = Instant::now();
    while read < config.messages {
        let count = (config.messages - read).min(config.batch as u64) as usize;
        let mut batch = consumer
            .batch()
            .max_messages(count)
            .expires(Duration::from_millis(100))
            .messages()
            .await?;
        let mut rows = Rows::with_capacity(count);
        let mut replies = Vec::with_capacity(count);
        while let Some(message) = batch.next().await {
            let message = message?;
            let sequence = message.info()?.stream_sequence;
            let seq = message
                .headers
                .as_ref()
                .and_then(|h| h.get("seq"))
                .and_then(|v| v.as_str().parse::<i64>().ok())
                .ok_or_else(|| BadReply(format!("message {sequence} has no numeric seq header")))?;
            let jetstream::Message { message, .. } = message;
            rows.push(sequence.to_string(), seq, message.payload.to_vec());
            replies.push(
                message
                    .reply
                    .ok_or("a JetStream message without a reply subject")?,
            );
        }
        if rows.is_empty() {
            if last_read.elapsed() >= config.idle {
                break;
            }
            continue;
        }
        read += rows.len() as u64;
        last_read = Instant::now();
        if tx.send((rows, replies)).await.is_err() {
            break;
        }
    }
    drop(tx);
    let mut outcome = Outcome {
        read,
        ..Outcome::default()
    };
    let mut end = start;
    for task in tasks {
        let (acked, inserted, last) = task.await??;
        outcome.done += acked;
        outcome.inserted += inserted;
        if let Some(last) = last {
            end = end.max(last);
        }
    }
    outcome.elapsed = end.duration_since(start);
    Ok(outcome)
}

/// The `+ACK` payload.
fn bytes_ack() -> bytes::Bytes {
    async_nats::jetstream::AckKind::Ack.into()
}

/// Settings of the Kafka loops ([`kafka_loop`]).
#[derive(Debug, Clone)]
pub struct KafkaLoop {
    /// Bootstrap brokers, `host:port[,…]`.
    pub brokers: String,
    /// Write to this PostgreSQL database (`None`: the Kafka-alone ceiling,
    /// which reads and commits every batch, no sink).
    pub postgres: Option<String>,
    /// The topic.
    pub topic: String,
    /// The consumer group (a fresh one reads the topic from its start).
    pub group: String,
    /// The table.
    pub table: String,
    /// Stop after this many messages.
    pub messages: u64,
    /// Messages per batch (per insert, per commit).
    pub batch: usize,
    /// How long a batch waits for more messages after its first one.
    pub linger: Duration,
    /// Writer tasks, each with its own PostgreSQL connection.
    pub writers: usize,
    /// Stop once no message arrived for this long (not counted).
    pub idle: Duration,
}

/// A batch read from Kafka, numbered in reading order.
#[derive(Debug)]
struct KafkaBatch {
    number: u64,
    rows: Rows,
}

/// The commit order of [`kafka_loop`]: batches stored out of order wait
/// until every earlier one is stored too; `committable` holds, per
/// partition, the offset after the last message of that stored prefix.
#[derive(Debug, Default)]
struct InOrder {
    /// Per batch not yet in the prefix: per partition, its highest offset + 1.
    offsets: std::collections::BTreeMap<u64, Vec<(i32, i64)>>,
    /// Stored batches beyond the prefix.
    stored: std::collections::BTreeSet<u64>,
    /// The first batch not stored.
    next: u64,
    committable: std::collections::HashMap<i32, i64>,
}

impl InOrder {
    /// Batch `number` is stored: returns whether the stored prefix grew
    /// (then `committable` moved on).
    fn stored(&mut self, number: u64) -> bool {
        self.stored.insert(number);
        let before = self.next;
        while self.stored.remove(&self.next) {
            for (partition, offset) in self.offsets.remove(&self.next).unwrap_or_default() {
                self.committable.insert(partition, offset);
            }
            self.next += 1;
        }
        self.next > before
    }
}

/// Counts the failed asynchronous commits (librdkafka reports them through
/// the context, from `poll`).
#[derive(Debug, Default)]
struct CommitCounter {
    failed: std::sync::atomic::AtomicU64,
}

impl flowgate_kafka::rdkafka::ClientContext for CommitCounter {}

impl flowgate_kafka::rdkafka::consumer::ConsumerContext for CommitCounter {
    fn commit_callback(
        &self,
        result: flowgate_kafka::rdkafka::error::KafkaResult<()>,
        _offsets: &flowgate_kafka::rdkafka::TopicPartitionList,
    ) {
        if let Err(err) = result {
            // A later commit carries the same (or higher) offsets.
            if self
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                == 0
            {
                eprintln!("kafka commit failed (a later one covers it): {err}");
            }
        }
    }
}

/// The hand-written Kafka batch loop (with a sink) or the Kafka-alone
/// ceiling (without), shaped as [`nats_loop`]: one reader thread owns a
/// `BaseConsumer` in `group` (auto commit off) and polls up to `batch`
/// messages, or what arrived within `linger` of the first (rows: id =
/// `<partition>-<offset>`, `seq` from the header of that name, `body` = the
/// value, as `flowgate ingest --kafka` maps them); each batch goes through a
/// bounded channel (`writers` batches) to the first free of `writers` tasks,
/// which stores it in one `UNNEST` transaction and reports back. The reader
/// commits (asynchronously) in batch order only: a batch's offsets — per
/// partition, its highest + 1 — once it and every earlier batch are stored,
/// so a crash never commits past a row that is not durable. The last commit
/// is synchronous. Without a sink, the reader commits each batch itself as
/// soon as it is read.
///
/// The time runs from the subscription (so the group join is in it, as in
/// `flowgate ingest`) to the last batch stored, plus the final synchronous
/// commit; a final idle wait is not in it.
///
/// # Errors
///
/// If a server fails or a message has no integer `seq` header: the peer has
/// no retries and no dead letters; what was not committed is read again by
/// the group's next consumer.
///
/// # Cancel safety
///
/// Not cancel-safe: the reader thread runs to its end regardless.
pub async fn kafka_loop(config: KafkaLoop) -> Result<Outcome, BoxError> {
    let writers_n = config.writers.max(1);
    let mut writers = Vec::new();
    if let Some(url) = &config.postgres {
        for _ in 0..writers_n {
            writers.push(PgWriter::connect(url, &config.table, PgMode::Unnest).await?);
        }
    }
    let (tx, rx) = mpsc::channel::<KafkaBatch>(writers_n);
    let rx = Arc::new(Mutex::new(rx));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Stored>();
    let mut tasks = Vec::with_capacity(writers.len());
    for mut pg in writers {
        let rx = Arc::clone(&rx);
        let done_tx = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(batch) = rx.lock().await.recv().await else {
                    break;
                };
                let inserted = pg.write(&batch.rows).await?;
                let stored = Stored {
                    number: batch.number,
                    rows: batch.rows.len() as u64,
                    inserted,
                    at: std::time::Instant::now(),
                };
                if done_tx.send(stored).is_err() {
                    break;
                }
            }
            Ok::<_, BoxError>(())
        }));
    }
    drop(done_tx);
    let sink = !tasks.is_empty();
    let reader = tokio::task::spawn_blocking(move || kafka_reader(&config, sink, &tx, &done_rx));
    let outcome = reader.await?;
    for task in tasks {
        task.await??;
    }
    outcome
}

/// A writer's report to the reader of [`kafka_loop`].
#[derive(Debug, Clone, Copy)]
struct Stored {
    number: u64,
    rows: u64,
    inserted: u64,
    at: std::time::Instant,
}

/// The reader thread of [`kafka_loop`].
fn kafka_reader(
    config: &KafkaLoop,
    sink: bool,
    tx: &mpsc::Sender<KafkaBatch>,
    done_rx: &std::sync::mpsc::Receiver<Stored>,
) -> Result<Outcome, BoxError> {
    use flowgate_kafka::rdkafka::config::ClientConfig;
    use flowgate_kafka::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use flowgate_kafka::rdkafka::message::{Headers, Message};
    use flowgate_kafka::rdkafka::{Offset, TopicPartitionList};
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Instant;

    let consumer: BaseConsumer<CommitCounter> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(CommitCounter::default())?;
    consumer.subscribe(&[&config.topic])?;
    let start = Instant::now();

    let commit = |order: &InOrder, mode: CommitMode| -> Result<(), BoxError> {
        if order.committable.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(order.committable.len());
        for (&partition, &offset) in &order.committable {
            tpl.add_partition_offset(&config.topic, partition, Offset::Offset(offset))?;
        }
        consumer.commit(&tpl, mode)?;
        Ok(())
    };
    let mut order = InOrder::default();
    let mut outcome = Outcome::default();
    let last_done = std::cell::Cell::new(start);
    // A writer stored a batch: commit the prefix it completes, if any.
    let on_stored = |stored: Stored, order: &mut InOrder, outcome: &mut Outcome| {
        outcome.done += stored.rows;
        outcome.inserted += stored.inserted;
        last_done.set(last_done.get().max(stored.at));
        if order.stored(stored.number) {
            commit(order, CommitMode::Async)?;
        }
        Ok::<_, BoxError>(())
    };

    let mut number = 0_u64;
    let mut last_read = Instant::now();
    let mut idled = false;
    while outcome.read < config.messages {
        while let Ok(stored) = done_rx.try_recv() {
            on_stored(stored, &mut order, &mut outcome)?;
        }
        let want = (config.messages - outcome.read).min(config.batch as u64) as usize;
        let mut rows = Rows::with_capacity(want);
        let mut offsets: Vec<(i32, i64)> = Vec::with_capacity(8);
        let mut deadline: Option<Instant> = None;
        while rows.len() < want {
            let timeout = deadline.map_or(Duration::from_millis(100), |deadline| {
                deadline.saturating_duration_since(Instant::now())
            });
            // None: nothing within the timeout.
            let Some(message) = consumer.poll(timeout) else {
                break;
            };
            let message = message?;
            let (partition, offset) = (message.partition(), message.offset());
            let seq = message
                .headers()
                .and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == "seq")
                        .and_then(|h| h.value)
                })
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
                .ok_or_else(|| {
                    BadReply(format!(
                        "message {partition}-{offset} has no numeric seq header"
                    ))
                })?;
            rows.push(
                format!("{partition}-{offset}"),
                seq,
                message.payload().unwrap_or_default().to_vec(),
            );
            match offsets.iter_mut().find(|(p, _)| *p == partition) {
                Some((_, next)) => *next = (*next).max(offset + 1),
                None => offsets.push((partition, offset + 1)),
            }
            deadline.get_or_insert_with(|| Instant::now() + config.linger);
        }
        if rows.is_empty() {
            if last_read.elapsed() >= config.idle {
                idled = true;
                break;
            }
            continue;
        }
        last_read = Instant::now();
        outcome.read += rows.len() as u64;
        if !sink {
            // The ceiling: commit what was read, no sink.
            outcome.done += rows.len() as u64;
            order.committable.extend(offsets);
            commit(&order, CommitMode::Async)?;
            last_done.set(Instant::now());
            continue;
        }
        order.offsets.insert(number, offsets);
        let mut batch = KafkaBatch { number, rows };
        number += 1;
        // Hand it over; while every writer is busy, commit what they finish.
        loop {
            match tx.try_send(batch) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    batch = back;
                    match done_rx.recv_timeout(Duration::from_millis(10)) {
                        Ok(stored) => on_stored(stored, &mut order, &mut outcome)?,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return Err("a writer failed".into()),
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err("a writer failed".into()),
            }
        }
    }
    // The writers' last batches, then the last commit, synchronous.
    while order.next < number {
        match done_rx.recv() {
            Ok(stored) => on_stored(stored, &mut order, &mut outcome)?,
            Err(_) => return Err("a writer failed".into()),
        }
    }
    let committing = Instant::now();
    commit(&order, CommitMode::Sync)?;
    let end = if idled {
        last_done.get() + committing.elapsed()
    } else {
        Instant::now()
    };
    outcome.elapsed = end.duration_since(start);
    // Serve the callbacks of asynchronous commits still pending.
    let _ = consumer.poll(Duration::ZERO);
    let failed = consumer
        .context()
        .failed
        .load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        eprintln!("kafka commits that failed (covered by later ones): {failed}");
    }
    Ok(outcome)
}

#[cfg(test)]
mod kafka_tests {
    use super::InOrder;

    #[test]
    fn offsets_are_committable_only_for_a_stored_prefix_of_batches() {
        let mut order = InOrder::default();
        order.offsets.insert(0, vec![(0, 10), (1, 5)]);
        order.offsets.insert(1, vec![(0, 20)]);
        order.offsets.insert(2, vec![(1, 9), (2, 3)]);
        // Batch 1 stored first: batch 0 is not, so nothing moves.
        assert!(!order.stored(1));
        assert!(order.committable.is_empty());
        // Batch 0 completes the prefix 0..=1.
        assert!(order.stored(0));
        assert_eq!(order.next, 2);
        assert_eq!(order.committable.get(&0), Some(&20));
        assert_eq!(order.committable.get(&1), Some(&5));
        assert_eq!(order.committable.get(&2), None);
        assert!(order.stored(2));
        assert_eq!(order.committable.get(&1), Some(&9));
        assert_eq!(order.committable.get(&2), Some(&3));
        assert!(order.offsets.is_empty() && order.stored.is_empty());
    }
}
