//! The hand-written Kafka → PostgreSQL batch loop of the Kafka benchmark,
//! without flowgate: a `BaseConsumer` in a consumer group (auto commit off)
//! polls up to 1000 messages (or what came within `--linger-ms` of the
//! first), one of two writer tasks stores them with one `UNNEST` insert,
//! then the offsets are committed in batch order (per partition, the
//! highest + 1). Without `--postgres`, the Kafka-alone ceiling (read and
//! commit every batch; this is what `e2e-kafka-alone` runs). See
//! `flowgate_bench::e2e::kafka_loop` and `dev/bench-kafka.sh`.
//!
//! ```text
//! e2e-kafka-loop --kafka 127.0.0.1:9092 --postgres postgres://u@127.0.0.1/db \
//!     --topic BENCH --group peer --table t --messages 1000000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flowgate_bench::e2e::{KafkaLoop, kafka_loop};

/// Kafka → PostgreSQL, batch by batch, commit after the rows are durable.
#[derive(Debug, Parser)]
struct Args {
    /// Bootstrap brokers, HOST:PORT[,…].
    #[arg(long)]
    kafka: String,
    /// PostgreSQL URL (none: only read and commit).
    #[arg(long)]
    postgres: Option<String>,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The consumer group (a new one reads the topic from its start).
    #[arg(long, default_value = "peer")]
    group: String,
    /// Table (the demo layout; created if missing).
    #[arg(long, default_value = "bench_kafka_peer")]
    table: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = u64::MAX)]
    messages: u64,
    /// Messages per batch (per insert).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// How long a batch waits for more after its first message.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Writer tasks (each with its own connection).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Stop once nothing arrived for this long (not counted).
    #[arg(long, default_value_t = 1000)]
    exit_when_idle_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = KafkaLoop {
        brokers: args.kafka,
        postgres: args.postgres,
        topic: args.topic,
        group: args.group,
        table: args.table,
        messages: args.messages,
        batch: args.batch,
        linger: Duration::from_millis(args.linger_ms),
        writers: args.writers,
        idle: Duration::from_millis(args.exit_when_idle_ms),
    };
    match kafka_loop(config).await {
        Ok(outcome) => {
            println!("{}", outcome.result_line());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("e2e-kafka-loop: {err}");
            ExitCode::FAILURE
        }
    }
}
