//! The `flowgate` command. `flowgate ingest --help` explains every option.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use flowgate_cli::ingest::{self, IngestConfig, SinkConfig, SourceConfig};
use flowgate_cli::naive;

/// Flow-control primitives at work: consume, transform, batch-write, and
/// acknowledge each message only after its batch is durably written.
#[derive(Debug, Parser)]
#[command(name = "flowgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run source -> par_map -> batcher -> sink -> ack and print a report.
    ///
    /// By default everything is embedded: generated messages go into a SQLite
    /// file, no server needed. `--redis` reads a Redis stream as one consumer
    /// of a group (run several, on several machines, to scale out);
    /// `--postgres` writes to PostgreSQL. Every message is acknowledged only
    /// after its row was written; rows are keyed by message id, so a
    /// redelivered message is stored once.
    Ingest(IngestArgs),
    /// Append generated messages (fields `seq` and `body`) to a Redis stream.
    Publish(PublishArgs),
    /// The naive loop `ingest` is measured against: per message, INSERT into
    /// PostgreSQL, then XACK.
    #[command(hide = true)]
    Naive(NaiveArgs),
}

#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// Embedded source: how many messages to generate.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Embedded source: deliver every n-th message a second time, as a broker
    /// redelivers after a lost ack (0: never). The sink skips the duplicates.
    #[arg(long, default_value_t = 100)]
    redeliver_every: u64,
    /// SQLite file to write to (the default sink).
    #[arg(long, default_value = "flowgate-ingest.sqlite")]
    sqlite: PathBuf,
    /// Write to PostgreSQL instead, e.g. postgres://user@127.0.0.1:5432/db.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Read from Redis instead of generating, e.g. redis://127.0.0.1:6379/.
    #[arg(long, value_name = "URL", requires_all = ["stream", "group"])]
    redis: Option<String>,
    /// Redis stream key.
    #[arg(long)]
    stream: Option<String>,
    /// Redis consumer group (created, with the stream, if missing).
    #[arg(long)]
    group: Option<String>,
    /// This consumer's name in the group (default: host name and process id).
    #[arg(long)]
    consumer: Option<String>,
    /// Take over another consumer's messages after they were pending this many
    /// milliseconds (it crashed or hangs).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    claim_idle_ms: u64,
    /// Redis: stop once no message arrived for this many milliseconds
    /// (default: run until Ctrl-C).
    #[arg(long, value_name = "MS")]
    exit_when_idle_ms: Option<u64>,
    /// Redis: stop after this many messages.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Table to write to (created if missing): id (key), seq, body, checksum.
    #[arg(long, default_value = "flowgate_events")]
    table: String,
    /// Concurrent transforms (the par_map stage).
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    #[arg(long, default_value_t = 20, value_name = "MS")]
    batch_delay_ms: u64,
    /// Batches written at once.
    #[arg(long, default_value_t = 2)]
    flush_concurrency: usize,
    /// Messages between receipt and ack at once (the pipeline's bound).
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// Redis URL.
    #[arg(long, value_name = "URL")]
    redis: String,
    /// Stream key.
    #[arg(long)]
    stream: String,
    /// How many messages.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
}

#[derive(Debug, clap::Args)]
struct NaiveArgs {
    #[arg(long)]
    redis: String,
    #[arg(long)]
    postgres: String,
    #[arg(long)]
    stream: String,
    #[arg(long)]
    group: String,
    #[arg(long, default_value = "flowgate_naive")]
    table: String,
    #[arg(long, default_value_t = u64::MAX)]
    messages: u64,
    #[arg(long, default_value_t = 2000)]
    exit_when_idle_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Ingest(args) => ingest_command(args).await,
        Command::Publish(args) => {
            match naive::publish(&args.redis, &args.stream, args.messages).await {
                Ok(took) => {
                    println!(
                        "published {} messages to {:?} in {:.2} s",
                        args.messages,
                        args.stream,
                        took.as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("flowgate publish: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Naive(args) => {
            match naive::naive_redis_to_postgres(
                &args.redis,
                &args.postgres,
                &args.stream,
                &args.group,
                &args.table,
                args.messages,
                Duration::from_millis(args.exit_when_idle_ms),
            )
            .await
            {
                Ok((handled, took)) => {
                    println!(
                        "naive: {handled} messages in {:.3} s = {:.0} msg/s",
                        took.as_secs_f64(),
                        handled as f64 / took.as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("flowgate naive: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn ingest_command(args: IngestArgs) -> ExitCode {
    let source = match args.redis {
        Some(url) => SourceConfig::Redis {
            url,
            stream: args.stream.expect("clap requires --stream with --redis"),
            group: args.group.expect("clap requires --group with --redis"),
            consumer: args.consumer.unwrap_or_else(default_consumer),
            claim_idle: Duration::from_millis(args.claim_idle_ms),
            exit_when_idle: args.exit_when_idle_ms.map(Duration::from_millis),
            max_messages: args.max_messages,
        },
        None => SourceConfig::Embedded {
            messages: args.messages,
            redeliver_every: args.redeliver_every,
        },
    };
    let sink = match args.postgres {
        Some(url) => SinkConfig::Postgres(url),
        None => SinkConfig::Sqlite(args.sqlite),
    };
    let config = IngestConfig {
        source,
        sink,
        table: args.table,
        workers: args.workers,
        batch_size: args.batch_size,
        batch_delay: Duration::from_millis(args.batch_delay_ms),
        flush_concurrency: args.flush_concurrency,
        max_in_flight: args.max_in_flight,
        progress: !args.no_progress,
    };
    match ingest::run(config).await {
        Ok(report) => {
            println!("{report}");
            if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("flowgate ingest: {err}");
            ExitCode::FAILURE
        }
    }
}

fn default_consumer() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{host}-{}", std::process::id())
}
