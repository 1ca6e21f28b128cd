//! The straightforward loop that `flowgate ingest` is measured against: read
//! from the Redis stream, and for each message `INSERT` its row, then `XACK`
//! it — one round trip each, one message at a time. Also correct (ack after
//! write), just slow. And [`publish`], to fill a stream.

use std::time::Duration;

use redis::streams::StreamReadReply;
use tokio::time::Instant;

use crate::ingest::generate;
use crate::mapping::Mapping;

/// Fills `stream` with `messages` generated messages (fields `seq` and
/// `body`), pipelined 1000 at a time. Returns how long it took.
///
/// # Errors
///
/// If Redis fails.
pub async fn publish(url: &str, stream: &str, messages: u64) -> redis::RedisResult<Duration> {
    let start = Instant::now();
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&patient())
        .await?;
    let mut i = 0;
    while i < messages {
        let mut pipe = redis::pipe();
        for j in i..(i + 1000).min(messages) {
            let message = generate(j);
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("seq")
                .arg(message.fields.get("seq").unwrap_or_default())
                .arg("body")
                .arg(message.fields.get("body").unwrap_or_default())
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        i = (i + 1000).min(messages);
    }
    Ok(start.elapsed())
}

/// Fills the `shards` shards of the sharded stream `stream` (see
/// [`crate::shards`]) with `messages` generated messages, message `i` to
/// shard `i % shards`, each shard on the node that serves it (a Redis
/// Cluster) and pipelined 1000 at a time. Returns how long it took.
///
/// # Errors
///
/// If Redis fails or the shards cannot be located.
pub async fn publish_sharded(
    url: &str,
    stream: &str,
    shards: u32,
    messages: u64,
) -> Result<Duration, Box<dyn std::error::Error + Send + Sync>> {
    let start = Instant::now();
    let keys = crate::shards::keys(stream, shards);
    let urls = crate::shards::locate(url, &keys).await?;
    let mut conns = Vec::with_capacity(keys.len());
    for url in &urls {
        conns.push(
            redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection_with_config(&patient())
                .await?,
        );
    }
    let shards = u64::from(shards.max(1));
    let mut i = 0;
    while i < messages {
        let end = (i + 1000 * shards).min(messages);
        let mut pipes: Vec<redis::Pipeline> = (0..shards).map(|_| redis::pipe()).collect();
        for j in i..end {
            let message = generate(j);
            pipes[(j % shards) as usize]
                .cmd("XADD")
                .arg(&keys[(j % shards) as usize])
                .arg("*")
                .arg("seq")
                .arg(message.fields.get("seq").unwrap_or_default())
                .arg("body")
                .arg(message.fields.get("body").unwrap_or_default())
                .ignore();
        }
        for (pipe, conn) in pipes.iter().zip(&mut conns) {
            pipe.query_async::<()>(conn).await?;
        }
        i = end;
    }
    Ok(start.elapsed())
}

/// Fills the JetStream stream `stream` (created with `subject` if missing)
/// with `messages` generated messages published to `subject`: header `seq`
/// and the body as payload — the fields `seq` and `body` the demo mapping
/// reads. Each is stored before this returns; up to 1000 are in flight at
/// once. Returns how long it took.
///
/// # Errors
///
/// If NATS fails (unreachable, JetStream off, the subject belongs to
/// another stream).
pub async fn publish_nats(
    url: &str,
    stream: &str,
    subject: &str,
    messages: u64,
) -> Result<Duration, Box<dyn std::error::Error + Send + Sync>> {
    use async_nats::jetstream;
    let start = Instant::now();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await?;
    let js = jetstream::new(client);
    match js.get_stream(stream).await {
        Ok(_) => {}
        Err(_) => {
            js.create_stream(jetstream::stream::Config {
                name: stream.to_owned(),
                subjects: vec![subject.to_owned()],
                ..Default::default()
            })
            .await?;
        }
    }
    let mut i = 0;
    while i < messages {
        let end = (i + 1000).min(messages);
        let mut acks = Vec::with_capacity((end - i) as usize);
        for j in i..end {
            let message = generate(j);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("seq", j.to_string().as_str());
            let body =
                bytes::Bytes::copy_from_slice(message.fields.get("body").unwrap_or_default());
            acks.push(
                js.publish_with_headers(subject.to_owned(), headers, body)
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
        i = end;
    }
    Ok(start.elapsed())
}

/// Produces `messages` generated messages to the Kafka `topic` (header
/// `seq`, key = seq, the body as value), 1,000 in flight, each confirmed by
/// all in-sync replicas. Returns how long it took.
///
/// # Errors
///
/// If a message is not confirmed within 30 s (librdkafka retries within
/// that), naming the brokers and topic.
pub async fn publish_kafka(
    brokers: &str,
    topic: &str,
    messages: u64,
) -> Result<Duration, Box<dyn std::error::Error + Send + Sync>> {
    use flowgate_kafka::rdkafka::ClientConfig;
    use flowgate_kafka::rdkafka::message::{Header, OwnedHeaders};
    use flowgate_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
    let start = Instant::now();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()?;
    let mut i = 0;
    while i < messages {
        let end = (i + 1000).min(messages);
        let sends = (i..end).map(|j| {
            let producer = &producer;
            async move {
                let message = generate(j);
                let seq = j.to_string();
                let headers = OwnedHeaders::new().insert(Header {
                    key: "seq",
                    value: Some(&seq),
                });
                let body = message.fields.get("body").unwrap_or_default();
                let record = FutureRecord::to(topic)
                    .key(&seq)
                    .payload(body)
                    .headers(headers);
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|(err, _)| {
                        format!("producing to the topic {topic:?} on {brokers}: {err}")
                    })
            }
        });
        for sent in futures_util::future::join_all(sends).await {
            sent?;
        }
        i = end;
    }
    Ok(start.elapsed())
}

/// Reads `stream` as `consumer` of `group` and, per message, inserts its row
/// into PostgreSQL then acks it, until `messages` were handled or none
/// arrived for `idle`. Returns how many were handled and how long it took.
///
/// # Errors
///
/// If Redis or PostgreSQL fails.
pub async fn naive_redis_to_postgres(
    redis_url: &str,
    postgres_url: &str,
    stream: &str,
    group: &str,
    table_name: &str,
    messages: u64,
    idle: Duration,
) -> Result<(u64, Duration), Box<dyn std::error::Error + Send + Sync>> {
    let mut redis = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection_with_config(&patient())
        .await?;
    let (pg, connection) = tokio_postgres::connect(postgres_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mapping = Mapping::demo(table_name)?;
    let table = mapping.table();
    pg.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (id TEXT NOT NULL PRIMARY KEY, seq BIGINT, body BYTEA, checksum BIGINT)",
        table.name()
    ))
    .await?;
    let insert = pg
        .prepare(&format!(
            "INSERT INTO {} (id, seq, body, checksum) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            table.name()
        ))
        .await?;
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await;
    if let Err(err) = created
        && err.code() != Some("BUSYGROUP")
    {
        return Err(err.into());
    }

    let start = Instant::now();
    let mut handled = 0;
    let mut last = Instant::now();
    while handled < messages && last.elapsed() < idle {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg("naive")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut redis)
            .await?;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let seq: i64 = entry.get("seq").unwrap_or(0);
            let body: Vec<u8> = entry.get("body").unwrap_or_default();
            let checksum = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            }) as i64;
            pg.execute(&insert, &[&entry.id, &seq, &body, &checksum])
                .await?;
            redis::cmd("XACK")
                .arg(stream)
                .arg(group)
                .arg(&entry.id)
                .query_async::<i64>(&mut redis)
                .await?;
            handled += 1;
            last = Instant::now();
        }
    }
    Ok((handled, start.elapsed()))
}

/// A connection configuration whose response timeout suits pipelines of a
/// thousand commands (the default is half a second).
fn patient() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)))
}
