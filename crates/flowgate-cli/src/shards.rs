//! A sharded Redis stream: `N` stream keys `<stream>:{0}` … `<stream>:{N-1}`,
//! one consumer group each, so that a Redis Cluster spreads one logical
//! stream over its nodes (one stream key lives in one slot, on one node).
//!
//! The braces are a hash tag: a shard's dead-letter stream,
//! `<stream>:{i}:dead`, hashes to the same slot as the shard, so the
//! source's atomic dead-letter script (`XADD` + `XACK`) runs on one node.
//! [`locate`] finds the node of each shard: the master serving its slot on a
//! cluster, the server itself otherwise.
//!
//! ```
//! use flowgate_cli::shards;
//!
//! assert_eq!(shards::keys("events", 3), ["events:{0}", "events:{1}", "events:{2}"]);
//! assert_eq!(shards::dead_letter("events:{1}"), "events:{1}:dead");
//! assert_eq!(
//!     shards::with_node("redis://:secret@10.0.0.1:7000/0", "10.0.0.2:7001"),
//!     "redis://:secret@10.0.0.2:7001/0"
//! );
//! ```

use std::fmt;

use redis::Value;

/// The shard keys of `stream`.
pub fn keys(stream: &str, shards: u32) -> Vec<String> {
    (0..shards).map(|i| format!("{stream}:{{{i}}}")).collect()
}

/// The dead-letter stream of shard `key` (same hash tag, same slot).
pub fn dead_letter(key: &str) -> String {
    format!("{key}:dead")
}

/// `url` with its `host:port` replaced by `node`, keeping the scheme, the
/// credentials and the database.
pub fn with_node(url: &str, node: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    match auth {
        Some(auth) => format!("{scheme}://{auth}@{node}{path}"),
        None => format!("{scheme}://{node}{path}"),
    }
}

/// The `host:port` of `url` (no credentials).
fn node_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default()
}

/// Why the shards could not be located.
#[derive(Debug)]
pub struct LocateError {
    /// The server asked (`host:port` of the URL given).
    pub server: String,
    /// The Redis error, or what was wrong with the reply.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot find the nodes of the stream's shards (asked {})",
            self.server
        )
    }
}

impl std::error::Error for LocateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The URL of the node serving each of `keys`: on a Redis Cluster the
/// master of the key's slot (`CLUSTER SLOTS`, `CLUSTER KEYSLOT`), on a
/// server without cluster support `url` for every key.
///
/// # Errors
///
/// If the server cannot be reached, or a slot is served by no node (the
/// cluster is not fully set up).
pub async fn locate(url: &str, keys: &[String]) -> Result<Vec<String>, LocateError> {
    let server = node_of(url).to_owned();
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| LocateError {
        server: server.clone(),
        source,
    };
    let client = redis::Client::open(url).map_err(|e| fail(e.into()))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(10)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| fail(e.into()))?;
    let slots: Value = match redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
    {
        Ok(slots) => slots,
        // A standalone server: every shard is here.
        Err(err) if err.to_string().contains("cluster support disabled") => {
            return Ok(vec![url.to_owned(); keys.len()]);
        }
        Err(err) => return Err(fail(err.into())),
    };
    let ranges = parse_slots(&slots, &server).map_err(|e| fail(e.into()))?;
    let mut urls = Vec::with_capacity(keys.len());
    for key in keys {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| fail(e.into()))?;
        let node = ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, node)| node)
            .ok_or_else(|| fail(format!("slot {slot} of {key:?} is served by no node").into()))?;
        urls.push(with_node(url, node));
    }
    Ok(urls)
}

/// `(first slot, last slot, "host:port" of the master)` of each range of a
/// `CLUSTER SLOTS` reply; an empty host is the one asked.
fn parse_slots(reply: &Value, asked: &str) -> Result<Vec<(i64, i64, String)>, String> {
    let Value::Array(ranges) = reply else {
        return Err(format!("CLUSTER SLOTS: not an array: {reply:?}"));
    };
    let asked_host = asked.rsplit_once(':').map_or(asked, |(host, _)| host);
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let bad = || format!("CLUSTER SLOTS: unexpected range {range:?}");
        let Value::Array(items) = range else {
            return Err(bad());
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (items.first(), items.get(1), items.get(2))
        else {
            return Err(bad());
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => return Err(bad()),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return Err(bad());
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        out.push((*start, *end, format!("{host}:{port}")));
    }
    Ok(out)
}
