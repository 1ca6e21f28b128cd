//! The Redis ceiling of the end-to-end benchmark: `XREADGROUP COUNT 1000` by
//! one reader task, overlapped with two tasks that each `XACK` a whole batch
//! on their own connection; no sink. See `flowgate_bench::e2e` and
//! `dev/bench-e2e.sh`.
//!
//! ```text
//! e2e-redis-alone --redis redis://127.0.0.1:6379/ --stream s --group g --messages 1000000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flowgate_bench::e2e::{PgMode, RedisLoop, redis_loop};

/// Read and acknowledge a Redis stream, batch by batch, with no sink.
#[derive(Debug, Parser)]
struct Args {
    /// Redis URL.
    #[arg(long)]
    redis: String,
    /// Stream key.
    #[arg(long)]
    stream: String,
    /// Consumer group (created from the stream's start if missing).
    #[arg(long)]
    group: String,
    /// Consumer name.
    #[arg(long, default_value = "ceiling")]
    consumer: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = u64::MAX)]
    messages: u64,
    /// Messages per XREADGROUP and per XACK.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Acknowledging tasks (each with its own connection).
    #[arg(long, default_value_t = 2)]
    ackers: usize,
    /// Stop once nothing arrived for this long (not counted).
    #[arg(long, default_value_t = 1000)]
    exit_when_idle_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = RedisLoop {
        redis: args.redis,
        postgres: None,
        mode: PgMode::Unnest,
        stream: args.stream,
        group: args.group,
        consumer: args.consumer,
        table: String::new(),
        messages: args.messages,
        batch: args.batch,
        writers: args.ackers,
        idle: Duration::from_millis(args.exit_when_idle_ms),
    };
    match redis_loop(config).await {
        Ok(outcome) => {
            println!("{}", outcome.result_line());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("e2e-redis-alone: {err}");
            ExitCode::FAILURE
        }
    }
}
