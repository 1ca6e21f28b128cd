//! The hand-written rusqlite loop of the end-to-end benchmark: the generated
//! messages of `flowgate ingest`'s embedded source, as rows, into a WAL
//! SQLite file (`synchronous = NORMAL`), one transaction per 1000 rows with a
//! cached prepared `INSERT … ON CONFLICT (id) DO NOTHING`, on a blocking
//! thread fed by an async task. See `flowgate_bench::e2e` and
//! `dev/bench-e2e.sh`.
//!
//! ```text
//! e2e-rusqlite-loop --sqlite /tmp/peer.sqlite --messages 1000000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use flowgate_bench::e2e::rusqlite_loop;

/// Generated rows into SQLite, one transaction per batch.
#[derive(Debug, Parser)]
struct Args {
    /// The SQLite file (created if missing).
    #[arg(long)]
    sqlite: PathBuf,
    /// Table (the demo layout; created if missing).
    #[arg(long, default_value = "flowgate_events")]
    table: String,
    /// Rows to write.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Rows per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match rusqlite_loop(args.sqlite, args.table, args.messages, args.batch).await {
        Ok(outcome) => {
            println!("{}", outcome.result_line());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("e2e-rusqlite-loop: {err}");
            ExitCode::FAILURE
        }
    }
}
