//! Errors of the Redis Streams source.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// A setting of [`SourceBuilder`](crate::SourceBuilder) that cannot work,
/// reported before anything connects.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL is not a valid Redis URL.
    InvalidUrl(redis::RedisError),
    /// The stream, group, consumer or dead-letter stream name is empty.
    EmptyName(&'static str),
    /// `batch_size` is zero.
    ZeroBatchSize,
    /// `max_in_flight` is below `batch_size`: a full read could never start.
    InFlightBelowBatchSize {
        /// The configured `max_in_flight`.
        max_in_flight: usize,
        /// The configured `batch_size`.
        batch_size: usize,
    },
    /// `max_deliveries` is zero: every message would be dead-lettered.
    ZeroMaxDeliveries,
    /// `claim_idle` is zero: consumers would steal each other's messages
    /// while they are being processed.
    ZeroClaimIdle,
    /// `lease_renewal` is zero.
    ZeroLeaseRenewal,
    /// `lease_renewal` is not shorter than `claim_idle`: the leases would run
    /// out before they are renewed, and other consumers would take over
    /// messages that are being processed.
    LeaseRenewalNotBelowClaimIdle {
        /// The configured `lease_renewal`.
        lease_renewal: Duration,
        /// The configured `claim_idle`.
        claim_idle: Duration,
    },
    /// `connect_timeout` is zero: no connection could ever be made.
    ZeroConnectTimeout,
    /// `hung_after` is below `claim_idle`: a connected consumer would lose
    /// its messages sooner than a dead one.
    HungAfterBelowClaimIdle {
        /// The configured `hung_after`.
        hung_after: std::time::Duration,
        /// The configured `claim_idle`.
        claim_idle: std::time::Duration,
    },
    /// The acknowledgement batcher's settings are invalid.
    Ack(flowgate::batch::BuildError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(err) => write!(f, "invalid redis url: {err}"),
            Self::EmptyName(what) => write!(f, "the {what} name must not be empty"),
            Self::ZeroBatchSize => f.write_str("batch_size must be at least 1"),
            Self::InFlightBelowBatchSize {
                max_in_flight,
                batch_size,
            } => write!(
                f,
                "max_in_flight ({max_in_flight}) must be at least batch_size ({batch_size})"
            ),
            Self::ZeroMaxDeliveries => f.write_str("max_deliveries must be at least 1"),
            Self::ZeroClaimIdle => f.write_str("claim_idle must be greater than zero"),
            Self::ZeroLeaseRenewal => f.write_str("lease_renewal must be greater than zero"),
            Self::LeaseRenewalNotBelowClaimIdle {
                lease_renewal,
                claim_idle,
            } => write!(
                f,
                "lease_renewal ({lease_renewal:?}) must be shorter than claim_idle ({claim_idle:?})"
            ),
            Self::ZeroConnectTimeout => f.write_str("connect_timeout must be greater than zero"),
            Self::HungAfterBelowClaimIdle {
                hung_after,
                claim_idle,
            } => write!(
                f,
                "hung_after ({hung_after:?}) must be at least claim_idle ({claim_idle:?})"
            ),
            Self::Ack(err) => write!(f, "acknowledgement batcher: {err}"),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::InvalidUrl(err) => Some(err),
            Self::Ack(err) => Some(err),
            _ => None,
        }
    }
}

/// Why the source could not connect, stopped reading, or could not
/// acknowledge or dead-letter a message.
///
/// Every variant that involves the server names it as `host:port/db` (never
/// with the password), and keeps the underlying [`redis::RedisError`] as its
/// [`source`](Error::source).
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// The configuration was invalid.
    Build(BuildError),
    /// The first connection to the server failed: it refused or did not
    /// answer within [`connect_timeout`](crate::SourceBuilder::connect_timeout),
    /// or it rejected the credentials or wants some (the server's message,
    /// such as `WRONGPASS …` or `NOAUTH …`, is kept in `source`).
    Connect {
        /// The server, as `host:port/db`.
        server: String,
        /// What the connection attempt returned.
        source: redis::RedisError,
    },
    /// A Redis command failed. The source retries transient failures (a
    /// dropped connection, a timeout, `LOADING`) by itself with backoff; the
    /// stream reports an error as an item and ends only when the failure is
    /// permanent (for example the group was destroyed, `NOGROUP`, or the key
    /// holds something else than a stream, `WRONGTYPE`).
    Redis {
        /// The command, such as `XREADGROUP` or `XACK`.
        command: &'static str,
        /// The stream read.
        stream: String,
        /// The consumer group.
        group: String,
        /// The server, as `host:port/db`.
        server: String,
        /// The error, with the server's message.
        source: redis::RedisError,
    },
    /// The server answered a command with a reply of an unexpected shape
    /// (not an entry's content, which is dead-lettered instead, but the
    /// reply's structure). Permanent.
    UnexpectedReply {
        /// The command.
        command: &'static str,
        /// The stream read.
        stream: String,
        /// The consumer group.
        group: String,
        /// The server, as `host:port/db`.
        server: String,
        /// What was wrong with the reply.
        detail: String,
    },
    /// [`AckToken::dead_letter`](crate::AckToken::dead_letter) was given the
    /// content of another message than the one the token acknowledges.
    /// Nothing was written; the message stays pending.
    WrongMessage {
        /// The id of the token's message.
        token: String,
        /// The id of the message given.
        message: String,
    },
    /// [`Acker::ack_all`](crate::Acker::ack_all) was given the token of a
    /// message read by another source (another stream, group or
    /// connection). Nothing was sent; the messages stay pending.
    ForeignToken {
        /// The id of the token's message.
        id: String,
        /// The stream the token's source reads.
        token_stream: String,
        /// The group the token's source reads as.
        token_group: String,
        /// The stream of the acker.
        stream: String,
        /// The group of the acker.
        group: String,
    },
}

impl SourceError {
    /// Whether retrying later may succeed: the server was unreachable, timed
    /// out, dropped the connection, or answered `LOADING`, `BUSY`,
    /// `TRYAGAIN` or `MASTERDOWN`.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Build(_)
            | Self::UnexpectedReply { .. }
            | Self::WrongMessage { .. }
            | Self::ForeignToken { .. } => false,
            Self::Connect { source, .. } | Self::Redis { source, .. } => is_transient(source),
        }
    }

    /// The underlying Redis error, if there is one.
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match self {
            Self::Connect { source, .. } | Self::Redis { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(crate) fn is_transient(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN")
        )
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(err) => write!(f, "invalid source configuration: {err}"),
            Self::Connect { server, source } => {
                write!(f, "cannot connect to Redis at {server}: {source}")
            }
            Self::Redis {
                command,
                stream,
                group,
                server,
                source,
            } => write!(
                f,
                "{command} failed on stream {stream:?}, group {group:?}, at Redis {server}: {source}"
            ),
            Self::UnexpectedReply {
                command,
                stream,
                group,
                server,
                detail,
            } => write!(
                f,
                "unexpected {command} reply on stream {stream:?}, group {group:?}, at Redis {server}: {detail}"
            ),
            Self::WrongMessage { token, message } => write!(
                f,
                "cannot dead-letter message {message:?} with the ack token of message {token:?}"
            ),
            Self::ForeignToken {
                id,
                token_stream,
                token_group,
                stream,
                group,
            } => write!(
                f,
                "cannot ack message {id:?} of stream {token_stream:?}, group {token_group:?} \
                 with the acker of another source (stream {stream:?}, group {group:?}); nothing sent"
            ),
        }
    }
}

impl Error for SourceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Build(err) => Some(err),
            Self::Connect { source, .. } | Self::Redis { source, .. } => Some(source),
            Self::UnexpectedReply { .. }
            | Self::WrongMessage { .. }
            | Self::ForeignToken { .. } => None,
        }
    }
}

impl From<BuildError> for SourceError {
    fn from(err: BuildError) -> Self {
        Self::Build(err)
    }
}

/// Where the source works: what its errors and logs name.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) server: String,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) dead_letter: String,
}

impl Target {
    /// `err` from `command`, with where it happened.
    pub(crate) fn error(&self, command: &'static str, err: redis::RedisError) -> SourceError {
        SourceError::Redis {
            command,
            stream: self.stream.clone(),
            group: self.group.clone(),
            server: self.server.clone(),
            source: err,
        }
    }

    /// A reply of `command` that could not be understood.
    pub(crate) fn unexpected(&self, command: &'static str, detail: String) -> SourceError {
        SourceError::UnexpectedReply {
            command,
            stream: self.stream.clone(),
            group: self.group.clone(),
            server: self.server.clone(),
            detail,
        }
    }
}

/// The server of `info` as `host:port/db`, without credentials.
pub(crate) fn server_name(info: &redis::ConnectionInfo) -> String {
    let db = info.redis_settings().db();
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}/{db}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}/{db} (TLS)"),
        redis::ConnectionAddr::Unix(path) => format!("unix:{}/{db}", path.display()),
        // ConnectionAddr is non-exhaustive.
        #[allow(unreachable_patterns)]
        other => format!("{other}/{db}"),
    }
}
