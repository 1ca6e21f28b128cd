//! What can go wrong: building the source ([`BuildError`]) and running it
//! ([`SourceError`]), each naming the server, stream and consumer concerned.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An error from the NATS client, kept as the cause of a [`SourceError`].
pub type NatsError = Box<dyn Error + Send + Sync + 'static>;

/// A setting of [`SourceBuilder`](crate::SourceBuilder) that cannot work;
/// returned by [`connect`](crate::SourceBuilder::connect) before anything
/// is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `batch_size(0)`: a pull request must ask for at least one message.
    ZeroBatchSize,
    /// `max_in_flight(0)`: no message could ever be handed out.
    ZeroMaxInFlight,
    /// `ack_wait` zero: every message would be redelivered at once.
    ZeroAckWait,
    /// `block` zero: the server needs a pull request to last for some time.
    ZeroBlock,
    /// `progress_interval` zero, or not shorter than `ack_wait`: the
    /// in-progress signal would come too late to keep a message.
    ProgressInterval {
        /// The interval asked for.
        interval: Duration,
        /// The consumer's ack wait.
        ack_wait: Duration,
    },
    /// `max_deliveries(0)`: every message would be dead-lettered.
    ZeroMaxDeliveries,
    /// `connect_timeout` zero.
    ZeroConnectTimeout,
    /// `ack_batch(0, _)`.
    ZeroAckBatch,
    /// A stream or consumer name JetStream refuses (empty, or with a space,
    /// `.`, `*`, `>`, `/` or `\`).
    InvalidName {
        /// `"stream"` or `"consumer"`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// A subject (of the stream, or the dead-letter subject) that is empty
    /// or has an empty token, or a dead-letter subject with a wildcard.
    InvalidSubject {
        /// What the subject is for.
        what: &'static str,
        /// The subject given.
        subject: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroBatchSize => f.write_str("batch_size must be at least 1"),
            BuildError::ZeroMaxInFlight => f.write_str("max_in_flight must be at least 1"),
            BuildError::ZeroAckWait => f.write_str("ack_wait must be longer than zero"),
            BuildError::ZeroBlock => f.write_str("block must be longer than zero"),
            BuildError::ProgressInterval { interval, ack_wait } => write!(
                f,
                "progress_interval ({interval:?}) must be longer than zero and shorter than \
                 ack_wait ({ack_wait:?})"
            ),
            BuildError::ZeroMaxDeliveries => f.write_str("max_deliveries must be at least 1"),
            BuildError::ZeroConnectTimeout => {
                f.write_str("connect_timeout must be longer than zero")
            }
            BuildError::ZeroAckBatch => f.write_str("ack_batch max_items must be at least 1"),
            BuildError::InvalidName { what, name } => write!(
                f,
                "invalid {what} name {name:?}: it must be non-empty, without spaces, \
                 '.', '*', '>', '/' or '\\'"
            ),
            BuildError::InvalidSubject { what, subject } => {
                write!(f, "invalid {what} subject {subject:?}")
            }
        }
    }
}

impl Error for BuildError {}

/// Which stream, consumer and server an error concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `host:port`, never with credentials.
    pub(crate) server: String,
    pub(crate) stream: String,
    pub(crate) consumer: String,
    pub(crate) dead_letter: String,
}

impl Target {
    pub(crate) fn error(&self, op: &'static str, source: NatsError) -> SourceError {
        SourceError::Nats {
            op,
            server: self.server.clone(),
            stream: self.stream.clone(),
            consumer: self.consumer.clone(),
            source: Arc::from(source),
        }
    }
}

/// An error of a running [`NatsSource`](crate::NatsSource) or of its
/// acknowledgements.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SourceError {
    /// The settings cannot work.
    Build(BuildError),
    /// The server could not be reached within `connect_timeout`, refused the
    /// connection or the credentials.
    Connect {
        /// `host:port` (never with credentials).
        server: String,
        /// The client's error.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The stream does not exist and no subjects were given to create it
    /// ([`SourceBuilder::subjects`](crate::SourceBuilder::subjects)).
    NoStream {
        /// `host:port`.
        server: String,
        /// The stream.
        stream: String,
    },
    /// The durable consumer exists with settings the source cannot keep its
    /// promises with (an ack policy other than explicit, or a push
    /// consumer).
    ConsumerConfig {
        /// The stream.
        stream: String,
        /// The consumer.
        consumer: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// The reader task panicked (a bug); the stream ends after this error.
    ReaderPanicked,
    /// The consumer was deleted while the source read it; the source stops.
    ConsumerGone {
        /// `host:port`.
        server: String,
        /// The stream.
        stream: String,
        /// The consumer.
        consumer: String,
    },
    /// A request to NATS failed for good (after the retries a transient
    /// failure gets).
    Nats {
        /// What was being done: `"fetch"`, `"ack"`, `"dead letter"`, ….
        op: &'static str,
        /// `host:port`.
        server: String,
        /// The stream.
        stream: String,
        /// The consumer.
        consumer: String,
        /// The client's error.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// A token from another source was passed to this source's
    /// [`Acker`](crate::Acker).
    ForeignToken {
        /// The stream of the token's source.
        token_stream: String,
        /// The consumer of the token's source.
        token_consumer: String,
        /// This acker's stream.
        stream: String,
        /// This acker's consumer.
        consumer: String,
    },
    /// [`AckToken::dead_letter`](crate::AckToken::dead_letter) was given
    /// another message than the token's.
    WrongMessage {
        /// The stream sequence of the token's message.
        token: u64,
        /// The stream sequence of the message given.
        message: u64,
    },
}

impl SourceError {
    /// Whether retrying later may succeed: the server was unreachable or a
    /// request timed out. A wrong setting, a missing stream, a deleted
    /// consumer or a misused token will not change by waiting.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Connect { .. } | SourceError::Nats { .. })
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Build(err) => write!(f, "invalid NATS source settings: {err}"),
            SourceError::Connect { server, .. } => {
                write!(f, "cannot connect to NATS at {server}")
            }
            SourceError::NoStream { server, stream } => write!(
                f,
                "JetStream stream {stream:?} does not exist on {server} (give its subjects \
                 to create it)"
            ),
            SourceError::ConsumerConfig {
                stream,
                consumer,
                reason,
            } => write!(f, "consumer {consumer:?} of stream {stream:?}: {reason}"),
            SourceError::ConsumerGone {
                server,
                stream,
                consumer,
            } => write!(
                f,
                "consumer {consumer:?} of stream {stream:?} on {server} was deleted while \
                 reading"
            ),
            SourceError::Nats {
                op,
                server,
                stream,
                consumer,
                ..
            } => write!(
                f,
                "NATS {op} failed (stream {stream:?}, consumer {consumer:?}, server {server})"
            ),
            SourceError::ForeignToken {
                token_stream,
                token_consumer,
                stream,
                consumer,
            } => write!(
                f,
                "an ack token of stream {token_stream:?} consumer {token_consumer:?} was \
                 passed to the acker of stream {stream:?} consumer {consumer:?}"
            ),
            SourceError::WrongMessage { token, message } => write!(
                f,
                "the ack token of stream sequence {token} was given message {message}"
            ),
            SourceError::ReaderPanicked => f.write_str("the JetStream reader task panicked"),
        }
    }
}

impl Error for SourceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SourceError::Build(err) => Some(err),
            SourceError::Connect { source, .. } | SourceError::Nats { source, .. } => {
                Some(&**source)
            }
            _ => None,
        }
    }
}

impl From<BuildError> for SourceError {
    fn from(err: BuildError) -> Self {
        SourceError::Build(err)
    }
}

/// `host:port[,host:port…]` of a NATS URL list, without user or password.
pub(crate) fn server_name(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            let rest = one.split_once("://").map_or(one, |(_, rest)| rest);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            rest.trim_end_matches('/').to_owned()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether JetStream accepts `name` as a stream or consumer name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}

/// Whether `subject` is a valid subject; wildcards only if `wildcards`.
pub(crate) fn valid_subject(subject: &str, wildcards: bool) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|token| {
            !token.is_empty()
                && !token.chars().any(char::is_whitespace)
                && (wildcards || (token != "*" && token != ">"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_hide_credentials() {
        assert_eq!(server_name("nats://u:secret@h:4222"), "h:4222");
        assert_eq!(server_name("127.0.0.1:4222"), "127.0.0.1:4222");
        assert_eq!(server_name("nats://a:1, tls://tok@b:2/"), "a:1,b:2");
    }

    #[test]
    fn names_and_subjects() {
        assert!(valid_name("EVENTS"));
        assert!(valid_name("ev-ents_1"));
        for bad in ["", "a b", "a.b", "a*", "a>", "a/b", "a\\b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_subject("a.b.c", false));
        assert!(valid_subject("a.*.>", true));
        assert!(!valid_subject("a.*", false));
        assert!(!valid_subject("a..b", true));
        assert!(!valid_subject("", true));
        assert!(!valid_subject("a b", true));
    }
}
