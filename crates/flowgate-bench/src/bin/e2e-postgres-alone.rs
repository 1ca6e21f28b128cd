//! The PostgreSQL ceiling of the end-to-end benchmark: the generated messages
//! of `flowgate publish` as rows, made in memory in batches of 1000 and
//! stored by two writer tasks, each on its own connection, one `UNNEST`
//! insert (or `COPY`, with `--copy`) per batch in its own transaction; no
//! Redis. See `flowgate_bench::e2e` and `dev/bench-e2e.sh`.
//!
//! ```text
//! e2e-postgres-alone --postgres postgres://u@127.0.0.1/db --table t --messages 1000000
//! ```

use std::process::ExitCode;

use clap::Parser;
use flowgate_bench::e2e::{PgMode, postgres_alone};

/// Generated rows into PostgreSQL, batch by batch.
#[derive(Debug, Parser)]
struct Args {
    /// PostgreSQL URL.
    #[arg(long)]
    postgres: String,
    /// Table (the demo layout; created if missing).
    #[arg(long, default_value = "bench_pg_alone")]
    table: String,
    /// Rows to write.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Rows per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Writer tasks (each with its own connection).
    #[arg(long, default_value_t = 2)]
    writers: usize,
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
    let mode = if args.copy {
        PgMode::Copy
    } else {
        PgMode::Unnest
    };
    match postgres_alone(
        &args.postgres,
        &args.table,
        mode,
        args.messages,
        args.batch,
        args.writers,
    )
    .await
    {
        Ok(outcome) => {
            println!("{}", outcome.result_line());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("e2e-postgres-alone: {err}");
            ExitCode::FAILURE
        }
    }
}
