//! The hand-written JetStream batch loop of the NATS benchmark, without
//! flowgate: pull 1000 messages, store them with one `UNNEST` insert on one
//! of two writer tasks, then `+ACK` each and flush once; without
//! `--postgres`, the NATS-alone ceiling (pull and ack). See
//! `flowgate_bench::e2e::nats_loop` and `dev/bench-nats.sh`.
//!
//! ```text
//! e2e-nats-loop --nats nats://127.0.0.1:4222 --postgres postgres://u@127.0.0.1/db \
//!     --stream EVENTS --consumer peer --table t --messages 1000000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flowgate_bench::e2e::{NatsLoop, nats_loop};

/// JetStream → PostgreSQL, batch by batch, ack after commit.
#[derive(Debug, Parser)]
struct Args {
    /// NATS URL.
    #[arg(long)]
    nats: String,
    /// PostgreSQL URL (none: only pull and ack).
    #[arg(long)]
    postgres: Option<String>,
    /// JetStream stream.
    #[arg(long)]
    stream: String,
    /// Durable consumer (created if missing).
    #[arg(long, default_value = "peer")]
    consumer: String,
    /// Table (the demo layout; created if missing).
    #[arg(long, default_value = "bench_nats_peer")]
    table: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = u64::MAX)]
    messages: u64,
    /// Messages per pull and per insert.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Writer tasks.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Stop once nothing arrived for this long (not counted).
    #[arg(long, default_value_t = 1000)]
    exit_when_idle_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = NatsLoop {
        nats: args.nats,
        postgres: args.postgres,
        stream: args.stream,
        consumer: args.consumer,
        table: args.table,
        messages: args.messages,
        batch: args.batch,
        writers: args.writers,
        idle: Duration::from_millis(args.exit_when_idle_ms),
    };
    match nats_loop(config).await {
        Ok(outcome) => {
            println!("{}", outcome.result_line());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("e2e-nats-loop: {err}");
            ExitCode::FAILURE
        }
    }
}
