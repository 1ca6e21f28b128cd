//! What can go wrong: building the source ([`BuildError`]), running it
//! ([`SourceError`]) and acknowledging after a rebalance ([`Revoked`]), each
//! naming the brokers, topic, partition and group concerned.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A setting of [`SourceBuilder`](crate::SourceBuilder) that cannot work;
/// returned by [`connect`](crate::SourceBuilder::connect) before anything is
/// sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No topic to read.
    NoTopics,
    /// An empty group id, an empty topic, or a topic Kafka refuses (longer
    /// than 249 characters, or with a character other than ASCII letters,
    /// digits, `.`, `_` and `-`).
    InvalidName {
        /// `"group"`, `"topic"` or `"dead-letter topic"`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The brokers list is empty.
    NoBrokers,
    /// `max_in_flight(0)`: no message could ever be handed out.
    ZeroMaxInFlight,
    /// `commit_interval` zero: a commit per acknowledgement is what the
    /// interval exists to avoid.
    ZeroCommitInterval,
    /// `connect_timeout` zero.
    ZeroConnectTimeout,
    /// `dead_letter_timeout` zero.
    ZeroDeadLetterTimeout,
    /// A librdkafka setting ([`SourceBuilder::set`](crate::SourceBuilder::set))
    /// that the source manages itself (`group.id`, `bootstrap.servers`,
    /// `enable.auto.commit`, `enable.auto.offset.store`), or that librdkafka
    /// refused.
    Setting {
        /// The setting.
        key: String,
        /// Why it was refused.
        reason: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoTopics => f.write_str("at least one topic is needed"),
            BuildError::InvalidName { what, name } => write!(
                f,
                "invalid {what} name {name:?}: it must be 1 to 249 ASCII letters, digits, \
                 '.', '_' or '-'"
            ),
            BuildError::NoBrokers => f.write_str("the brokers list is empty"),
            BuildError::ZeroMaxInFlight => f.write_str("max_in_flight must be at least 1"),
            BuildError::ZeroCommitInterval => {
                f.write_str("commit_interval must be longer than zero")
            }
            BuildError::ZeroConnectTimeout => {
                f.write_str("connect_timeout must be longer than zero")
            }
            BuildError::ZeroDeadLetterTimeout => {
                f.write_str("dead_letter_timeout must be longer than zero")
            }
            BuildError::Setting { key, reason } => write!(f, "setting {key:?}: {reason}"),
        }
    }
}

impl Error for BuildError {}

/// An error of a running [`KafkaSource`](crate::KafkaSource) or of a dead
/// letter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SourceError {
    /// The settings cannot work.
    Build(BuildError),
    /// No broker answered within `connect_timeout`, or the client could not
    /// be created.
    Connect {
        /// The bootstrap brokers, as given.
        brokers: String,
        /// librdkafka's error.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// A topic does not exist on the cluster (and the source does not create
    /// topics).
    NoTopic {
        /// The bootstrap brokers.
        brokers: String,
        /// The topic.
        topic: String,
    },
    /// librdkafka reported an error it does not retry: the consumer cannot
    /// go on (for example the group or topic is not authorized, or the
    /// consumer was fenced).
    Fatal {
        /// The bootstrap brokers.
        brokers: String,
        /// The consumer group.
        group: String,
        /// librdkafka's error.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// A dead letter could not be produced within `dead_letter_timeout`; the
    /// message is handed out again (it is not acknowledged).
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
        /// The original message's topic.
        from_topic: String,
        /// The original message's partition.
        partition: i32,
        /// The original message's offset.
        offset: i64,
        /// librdkafka's error.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The message's partition was revoked (a rebalance) before it was
    /// resolved; its new owner reads it again.
    Revoked(Revoked),
    /// The reader thread panicked: a bug; the stream ends.
    ReaderPanicked,
}

impl SourceError {
    /// Whether trying again later can succeed (a broker that did not answer,
    /// a dead letter that timed out) rather than a setting or a fatal state.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Connect { .. } | SourceError::DeadLetter { .. }
        )
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Build(err) => write!(f, "invalid Kafka source settings: {err}"),
            SourceError::Connect { brokers, .. } => {
                write!(f, "cannot reach the Kafka brokers {brokers}")
            }
            SourceError::NoTopic { brokers, topic } => {
                write!(
                    f,
                    "the topic {topic:?} does not exist on the Kafka brokers {brokers}"
                )
            }
            SourceError::Fatal { brokers, group, .. } => write!(
                f,
                "the Kafka consumer of group {group:?} on {brokers} cannot go on"
            ),
            SourceError::DeadLetter {
                topic,
                from_topic,
                partition,
                offset,
                ..
            } => write!(
                f,
                "cannot produce the dead letter of {from_topic}/{partition}@{offset} to \
                 the topic {topic:?}"
            ),
            SourceError::Revoked(revoked) => revoked.fmt(f),
            SourceError::ReaderPanicked => f.write_str("the Kafka reader thread panicked"),
        }
    }
}

impl Error for SourceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SourceError::Build(err) => Some(err),
            SourceError::Connect { source, .. }
            | SourceError::Fatal { source, .. }
            | SourceError::DeadLetter { source, .. } => Some(&**source),
            SourceError::Revoked(revoked) => Some(revoked),
            SourceError::NoTopic { .. } | SourceError::ReaderPanicked => None,
        }
    }
}

impl From<BuildError> for SourceError {
    fn from(err: BuildError) -> Self {
        SourceError::Build(err)
    }
}

impl From<Revoked> for SourceError {
    fn from(err: Revoked) -> Self {
        SourceError::Revoked(err)
    }
}

/// An acknowledgement that came after its partition was revoked by a
/// rebalance (or after [`Acker::close`](crate::Acker::close)): it is not
/// committed here; the partition's new owner reads the message again from
/// the last committed offset. Not a loss: write keyed by
/// (topic, partition, offset) and the second write is a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The message's offset.
    pub offset: i64,
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}@{} was acknowledged after its partition was revoked; its new owner reads \
             it again",
            self.topic, self.partition, self.offset
        )
    }
}

impl Error for Revoked {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_what_they_concern() {
        let err = SourceError::NoTopic {
            brokers: "127.0.0.1:9092".into(),
            topic: "events".into(),
        };
        assert_eq!(
            err.to_string(),
            "the topic \"events\" does not exist on the Kafka brokers 127.0.0.1:9092"
        );
        assert!(!err.is_transient());
        let revoked = Revoked {
            topic: "events".into(),
            partition: 1,
            offset: 7,
        };
        assert!(
            SourceError::from(revoked.clone())
                .to_string()
                .starts_with("events/1@7 ")
        );
        assert_eq!(
            BuildError::InvalidName {
                what: "topic",
                name: "a b".into()
            }
            .to_string(),
            "invalid topic name \"a b\": it must be 1 to 249 ASCII letters, digits, '.', '_' or '-'"
        );
    }
}
