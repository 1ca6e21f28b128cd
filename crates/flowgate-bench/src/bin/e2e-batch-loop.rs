//! The hand-written batch loop of the end-to-end benchmark, without flowgate:
//! `XREADGROUP COUNT 1000` by one reader task, overlapped with two writer
//! tasks that each store a batch with one `UNNEST` insert (or `COPY`, with
//! `--copy`) on their own PostgreSQL connection, then `XACK` all its ids.
//! See `flowgate_bench::e2e` and `dev/bench-e2e.sh`.
//!
//! ```text
//! e2e-batch-loop --redis redis://127.0.0.1:6379/ --postgres postgres://u@127.0.0.1/db \
//!     --stream s --group g --table t --messages 1000000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flowgate_bench::e2e::{PgMode, RedisLoop, redis_loop};

/// Redis stream → PostgreSQL, batch by batch, ack after commit.
#[derive(Debug, Parser)]
struct Args {
    /// Redis URL.
    #[arg(long)]
    redis: String,
    /// PostgreSQL URL.
    #[arg(long)]
    postgres: String,
    /// Stream key.
    #[arg(long)]
    stream: String,
    /// Consumer group (created from the stream's start if missing).
    #[arg(long)]
    group: String,
    /// Consumer name.
    #[arg(long, default_value = "peer")]
    consumer: String,
    /// Table (the demo layout; created if missing).
    #[arg(long, default_value = "bench_peer")]
    table: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = u64::MAX)]
    messages: u64,
    /// Messages per XREADGROUP and per insert.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Writer tasks (each with its own connections).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Stop once nothing arrived for this long (not counted).
    #[arg(long, default_value_t = 1000)]
    exit_when_idle_ms: u64,
    /// COPY (binary) into a staging table + INSERT … SELECT, instead of UNNEST.
    #[arg(long, conflicts_with = "copy_direct")]
    copy: bool,
    /// COPY (binary) straight into the table; a batch that meets a stored
    /// key is written again with UNNEST … ON CONFLICT DO NOTHING.
    #[arg(long)]
    copy_direct: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = RedisLoop {
        redis: args.redis,
        postgres: Some(args.postgres),
        mode: if args.copy {
            PgMode::Copy
        } else {
            PgMode::Unnest
        },
        stream: args.stream,
        group: args.group,
        consumer: args.consumer,
        table: args.table,
        messages: args.messages,
        batch: args.batch,
        writers: args.writers,
        idle: Duration::from_millis(args.exit_when_idle_ms),
    };
    match redis_loop(config).await {
        Ok(outcome) => {
            println!("{}", outcome.result_line());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("e2e-batch-loop: {err}");
            ExitCode::FAILURE
        }
    }
}
