//! The `flowgate` command. `flowgate ingest --help` explains every option.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use flowgate_cli::ingest::{
    self, Chain, Control, IngestConfig, RedisConfig, SinkConfig, SourceConfig,
};
use flowgate_cli::logging::{self, LogFormat};
use flowgate_cli::mapping::{Mapping, MappingError};
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
    /// Run source -> map -> batched writes -> ack and print a report.
    ///
    /// By default everything is embedded: generated messages go into a SQLite
    /// file, no server needed. `--redis` reads a Redis stream as one consumer
    /// of a group (run several, on several machines, to scale out);
    /// `--postgres` writes to PostgreSQL. `--column`/`--key` or `--schema`
    /// map fields onto your own table. Every message is acknowledged only
    /// after its row was written (or it was dead-lettered with the reason);
    /// rows are keyed, so a redelivered message is stored once.
    Ingest(Box<IngestArgs>),
    /// Append generated messages (fields `seq` and `body`) to a Redis stream.
    Publish(PublishArgs),
    /// The naive loop `ingest` is measured against: per message, INSERT into
    /// PostgreSQL, then XACK.
    #[command(hide = true)]
    Naive(NaiveArgs),
}

/// A positive integer flag value, at most `max`.
fn positive<T>(max: u64) -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::fmt::Display + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::<T>::new().range(1..=max)
}

const DAY_MS: u64 = 86_400_000;

#[derive(Debug, clap::Args)]
#[command(after_long_help = INGEST_HELP)]
struct IngestArgs {
    /// Embedded source: how many messages to generate.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200_000,
        conflicts_with = "redis",
        help_heading = "Embedded source (the default)"
    )]
    messages: u64,
    /// Embedded source: deliver every n-th message a second time, as a broker
    /// redelivers after a lost ack (0: never). The sink skips the duplicates.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        conflicts_with = "redis",
        help_heading = "Embedded source (the default)"
    )]
    redeliver_every: u64,

    /// Read from a Redis stream instead of generating, e.g. redis://127.0.0.1:6379/.
    #[arg(long, value_name = "URL", requires_all = ["stream", "group"], help_heading = "Redis source")]
    redis: Option<String>,
    /// Redis stream key.
    #[arg(
        long,
        value_name = "KEY",
        requires = "redis",
        help_heading = "Redis source"
    )]
    stream: Option<String>,
    /// Redis consumer group (created, with the stream, if missing).
    #[arg(
        long,
        value_name = "NAME",
        requires = "redis",
        help_heading = "Redis source"
    )]
    group: Option<String>,
    /// This consumer's name in the group (default: host name and process id).
    /// Restart with the same name to resume its pending messages first.
    #[arg(
        long,
        value_name = "NAME",
        requires = "redis",
        help_heading = "Redis source"
    )]
    consumer: Option<String>,
    /// The lease: while running, this consumer renews its claim on the
    /// messages it holds; one that stops renewing for this long (it died or
    /// hangs) loses them to another consumer of the group.
    #[arg(long, value_name = "MS", requires = "redis", value_parser = positive::<u64>(DAY_MS),
          help_heading = "Redis source")]
    claim_idle_ms: Option<u64>,
    /// A consumer still connected to Redis but renewing no lease (hung,
    /// starved, partitioned) loses its messages after this long
    /// [default: 10 × --claim-idle-ms].
    #[arg(long, value_name = "MS", requires = "redis", value_parser = positive::<u64>(DAY_MS),
          help_heading = "Redis source")]
    hung_after_ms: Option<u64>,
    /// Dead-letter a message delivered more often than this to consumers that
    /// died or hung while holding it [default: 5].
    #[arg(long, value_name = "N", requires = "redis", value_parser = positive::<u64>(u64::from(u32::MAX)),
          help_heading = "Redis source")]
    max_deliveries: Option<u64>,
    /// Where bad messages go, with the reason [default: <stream>:dead].
    #[arg(
        long,
        value_name = "KEY",
        requires = "redis",
        help_heading = "Redis source"
    )]
    dead_letter_stream: Option<String>,
    /// Stop once no message arrived for this many milliseconds (default: run
    /// until Ctrl-C). The wait is not counted in the elapsed time.
    #[arg(long, value_name = "MS", requires = "redis", value_parser = positive::<u64>(DAY_MS),
          help_heading = "Redis source")]
    exit_when_idle_ms: Option<u64>,
    /// Stop after this many messages.
    #[arg(long, value_name = "N", requires = "redis", value_parser = positive::<u64>(u64::MAX),
          help_heading = "Redis source")]
    max_messages: Option<u64>,

    /// SQLite file to write to (the default sink) [default: flowgate-ingest.sqlite].
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "postgres",
        help_heading = "Sink"
    )]
    sqlite: Option<PathBuf>,
    /// Write to PostgreSQL instead, e.g. postgres://user@127.0.0.1:5432/db.
    #[arg(long, value_name = "URL", help_heading = "Sink")]
    postgres: Option<String>,
    /// Table to write to; created if missing, checked against the mapping if
    /// it exists [default: flowgate_events].
    #[arg(long, value_name = "NAME", help_heading = "Sink")]
    table: Option<String>,
    /// A column of the table: NAME:TYPE[?][=SOURCE]. TYPE: text, bigint,
    /// double, boolean, bytea, jsonb or timestamptz; '?' makes it nullable (a
    /// missing field stores NULL); SOURCE is a field name (default: NAME) or
    /// @id, the stream entry id. Repeat for every column.
    #[arg(
        long = "column",
        value_name = "SPEC",
        conflicts_with = "schema",
        help_heading = "Sink"
    )]
    columns: Vec<String>,
    /// A key column (repeatable): rows are deduplicated by it [default: the
    /// column taken from @id].
    #[arg(
        long = "key",
        value_name = "NAME",
        requires = "columns",
        help_heading = "Sink"
    )]
    keys: Vec<String>,
    /// The mapping from a TOML file (see `--help`).
    #[arg(long, value_name = "FILE", help_heading = "Sink")]
    schema: Option<PathBuf>,

    /// Rows per batch.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = positive::<usize>(1_000_000),
          help_heading = "Pipeline")]
    batch_size: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = positive::<u64>(DAY_MS),
          help_heading = "Pipeline")]
    batch_delay_ms: u64,
    /// Batches written at once (PostgreSQL: one connection each; three
    /// keep the database busy while a commit waits for its fsync).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = positive::<usize>(64),
          help_heading = "Pipeline")]
    flush_concurrency: usize,
    /// Redis: messages between receipt and ack at once (the source's bound;
    /// the pipeline itself holds at most batch-size × (flush-concurrency + 1)).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = positive::<usize>(10_000_000),
          requires = "redis", help_heading = "Redis source")]
    max_in_flight: usize,

    /// No progress bar.
    #[arg(long, help_heading = "Output")]
    no_progress: bool,
    /// More log detail: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output")]
    verbose: u8,
    /// Log lines as text or JSON objects (on standard error).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, help_heading = "Output")]
    log_format: LogFormat,
}

const INGEST_HELP: &str = "\
Mapping: without --column or --schema, rows go to the demo table: id TEXT (key,
the entry id), seq BIGINT, body BYTEA, checksum BIGINT (FNV-1a of body). A
message that does not fit the mapping (a missing field, a value that does not
parse) goes to the dead-letter stream with the reason, as does a row the
database rejects; the rest flows. A --schema file:

  table = \"orders\"
  [[column]]
  name = \"id\"
  type = \"text\"
  from = \"@id\"
  [[column]]
  name = \"order_id\"
  type = \"bigint\"
  key = true
  [[column]]
  name = \"note\"
  type = \"text\"
  nullable = true

Faults: while the sink fails transiently (down, restarting), reading pauses and
the write is retried with backoff until it succeeds; nothing is acknowledged
before its row is written. Ctrl-C stops reading and finishes what was read; a
second Ctrl-C stops at once (what is not acked stays pending).

Exit status: 0 when every message received was written, a duplicate or
dead-lettered, and acknowledged; 1 when the run could not start or failed (the
reason is printed); 2 for a usage error; 130 after a second Ctrl-C.
";

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
        Command::Ingest(args) => ingest_command(*args).await,
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
    if let Err(err) = logging::init(args.verbose, args.log_format) {
        eprintln!("flowgate ingest: {err}");
        return ExitCode::from(2);
    }
    let config = match ingest_config(args) {
        Ok(config) => config,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    let control = Control::new();
    let signals = tokio::spawn(handle_signals(control.clone()));
    let result = ingest::run(config, control).await;
    signals.abort();
    match result {
        Ok(report) => {
            println!("{report}");
            if let Some(failure) = &report.failure {
                print_error(&**failure);
            }
            if report.aborted {
                ExitCode::from(130)
            } else if report.is_success() {
                ExitCode::SUCCESS
            } else {
                if report.failure.is_none() {
                    eprintln!(
                        "flowgate ingest: {} of {} messages were not acknowledged (left pending: they will be delivered again)",
                        report.failed + report.unacked,
                        report.received
                    );
                }
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            print_error(&err);
            ExitCode::FAILURE
        }
    }
}

/// Checks the flags clap cannot and builds the configuration.
fn ingest_config(args: IngestArgs) -> Result<IngestConfig, MappingError> {
    let mapping = match (&args.schema, args.columns.is_empty()) {
        (Some(path), _) => Mapping::from_file(path, args.table.as_deref())?,
        (None, false) => Mapping::from_flags(
            args.table.as_deref().unwrap_or(DEFAULT_TABLE),
            &args.columns,
            &args.keys,
        )?,
        (None, true) => {
            Mapping::demo(args.table.as_deref().unwrap_or(DEFAULT_TABLE)).map_err(|e| {
                MappingError {
                    message: format!("--table: {}", e.message),
                    source: e.source,
                }
            })?
        }
    };
    let source = match args.redis {
        Some(url) => {
            let mut redis = RedisConfig::new(
                url,
                args.stream.expect("clap requires --stream with --redis"),
                args.group.expect("clap requires --group with --redis"),
                args.consumer.unwrap_or_else(default_consumer),
            );
            if let Some(ms) = args.claim_idle_ms {
                redis.claim_idle = Duration::from_millis(ms);
            }
            redis.hung_after = args.hung_after_ms.map(Duration::from_millis);
            if let Some(n) = args.max_deliveries {
                redis.max_deliveries = n;
            }
            redis.dead_letter_stream = args.dead_letter_stream;
            redis.exit_when_idle = args.exit_when_idle_ms.map(Duration::from_millis);
            redis.max_messages = args.max_messages;
            SourceConfig::Redis(redis)
        }
        None => SourceConfig::Embedded {
            messages: args.messages,
            redeliver_every: args.redeliver_every,
        },
    };
    let sink = match args.postgres {
        Some(url) => SinkConfig::Postgres(url),
        None => SinkConfig::Sqlite(
            args.sqlite
                .unwrap_or_else(|| PathBuf::from("flowgate-ingest.sqlite")),
        ),
    };
    Ok(IngestConfig {
        source,
        sink,
        mapping,
        batch_size: args.batch_size,
        batch_delay: Duration::from_millis(args.batch_delay_ms),
        flush_concurrency: args.flush_concurrency,
        max_in_flight: args.max_in_flight,
        progress: !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    })
}

const DEFAULT_TABLE: &str = "flowgate_events";

/// Ctrl-C or SIGTERM: stop reading and finish what was read; a second one:
/// stop at once.
async fn handle_signals(control: Control) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => Some(term),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM");
            None
        }
    };
    let mut signals = 0;
    loop {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "cannot listen for Ctrl-C");
                    return;
                }
            }
            Some(()) = async { match &mut term { Some(t) => t.recv().await, None => None } } => {}
        }
        signals += 1;
        if signals == 1 {
            eprintln!(
                "flowgate ingest: interrupted: reading no more; finishing the messages in flight (interrupt again to stop at once)"
            );
            control.stop();
        } else {
            eprintln!(
                "flowgate ingest: interrupted again: stopping now; what is not acknowledged stays pending"
            );
            control.abort();
            return;
        }
    }
}

/// Prints `err` and its causes, one per line, as `flowgate ingest: …` then
/// `  caused by: …`, leaving out a cause whose text is already shown.
fn print_error(err: &(dyn std::error::Error + 'static)) {
    let mut shown = err.to_string();
    let mut text = format!("flowgate ingest: {shown}");
    let mut cause = err.source();
    while let Some(err) = cause {
        let line = err.to_string();
        if !shown.contains(&line) {
            text.push_str("\n  caused by: ");
            text.push_str(&line);
            shown = line;
        }
        cause = err.source();
    }
    tracing::debug!(error = %Chain(err), "exiting with an error");
    eprintln!("{text}");
}

fn default_consumer() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{host}-{}", std::process::id())
}
