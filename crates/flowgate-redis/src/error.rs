//! Errors of the Redis Streams source.

use std::error::Error;
use std::fmt;

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

/// Why the source could not connect or stopped reading.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// The configuration was invalid.
    Build(BuildError),
    /// Redis failed. The source retries transient failures (a dropped
    /// connection, a timeout) by itself with backoff; it reports an error as
    /// a stream item and ends only when the failure is permanent (for example
    /// the group was deleted, or the key holds something else than a stream).
    Redis(redis::RedisError),
}

impl SourceError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Build(_) => false,
            Self::Redis(err) => is_transient(err),
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
            Self::Redis(err) => write!(f, "redis: {err}"),
        }
    }
}

impl Error for SourceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Build(err) => Some(err),
            Self::Redis(err) => Some(err),
        }
    }
}

impl From<BuildError> for SourceError {
    fn from(err: BuildError) -> Self {
        Self::Build(err)
    }
}

impl From<redis::RedisError> for SourceError {
    fn from(err: redis::RedisError) -> Self {
        Self::Redis(err)
    }
}
