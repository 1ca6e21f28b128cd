//! The Kafka ceiling of the Kafka benchmark: the reader of `e2e-kafka-loop`
//! with no sink — a `BaseConsumer` in a consumer group (auto commit off)
//! polls up to 1000 messages, builds their rows (as the loop does) and
//! commits the batch's offsets at once. See
//! `flowgate_bench::e2e::kafka_loop` and `dev/bench-kafka.sh`.
//!
//! ```text
//! e2e-kafka-alone --kafka 127.0.0.1:9092 --topic BENCH --group alone --messages 1000000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flowgate_bench::e2e::{KafkaLoop, kafka_loop};

/// Kafka alone: read and commit, batch by batch.
#[derive(Debug, Parser)]
struct Args {
    /// Bootstrap brokers, HOST:PORT[,…].
    #[arg(long)]
    kafka: String,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The consumer group (a new one reads the topic from its start).
    #[arg(long, default_value = "alone")]
    group: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = u64::MAX)]
    messages: u64,
    /// Messages per batch (per commit).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// How long a batch waits for more after its first message.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Stop once nothing arrived for this long (not counted).
    #[arg(long, default_value_t = 1000)]
    exit_when_idle_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = KafkaLoop {
        brokers: args.kafka,
        postgres: None,
        topic: args.topic,
        group: args.group,
        table: String::new(),
        messages: args.messages,
        batch: args.batch,
        linger: Duration::from_millis(args.linger_ms),
        writers: 0,
        idle: Duration::from_millis(args.exit_when_idle_ms),
    };
    match kafka_loop(config).await {
        Ok(outcome) => {
            println!("{}", outcome.result_line());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("e2e-kafka-alone: {err}");
            ExitCode::FAILURE
        }
    }
}
