//! The `flowgate` command. `flowgate ingest --help` and `flowgate run --help`
//! explain every option.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use flowgate::limit::Rate;
use flowgate::resilience::{Backoff, Jitter};
use flowgate_cli::ingest::{
    self, Chain, Control, IngestConfig, KafkaConfig, NatsConfig, RedisConfig, SinkConfig,
    SourceConfig,
};
use flowgate_cli::logging::{self, LogFormat};
use flowgate_cli::mapping::{Mapping, MappingError};
use flowgate_cli::naive;
use flowgate_cli::run::config::{DEFAULT_BACKOFF, default_jobs};
use flowgate_cli::run::spec;
use flowgate_cli::run::{BreakerSpec, ConfigError, Halt, ResumeMode, RunConfig};

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
    /// of a group, `--nats` a JetStream stream through a durable pull
    /// consumer (run several, on several machines, to scale out);
    /// `--postgres` writes to PostgreSQL. `--column`/`--key` or `--schema`
    /// map fields onto your own table. Every message is acknowledged only
    /// after its row was written (or it was dead-lettered with the reason);
    /// rows are keyed, so a redelivered message is stored once.
    Ingest(Box<IngestArgs>),
    /// Run COMMAND once per input item, GNU-parallel style, with rate
    /// limits, retries, a circuit breaker and resume.
    ///
    /// Items are the lines of standard input (or of --input FILE; with -0,
    /// NUL-separated records). `{}` in COMMAND is the item, `{1}`, `{2}`…
    /// its whitespace-separated (or --delimiter-separated) fields, `{#}` its
    /// position; with no placeholder the item is appended as the last
    /// argument. Exit status: 0 when every job succeeded, else the number of
    /// failed jobs (at most 101); 255 for a usage error; 127 when COMMAND
    /// cannot be found.
    Run(Box<RunArgs>),
    /// Append generated messages (fields `seq` and `body`) to a Redis stream,
    /// or publish them to a JetStream subject (header `seq`, the body as
    /// payload).
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
#[command(group(clap::ArgGroup::new("broker").args(["redis", "nats", "kafka"])))]
struct IngestArgs {
    /// Embedded source: how many messages to generate.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200_000,
        conflicts_with = "broker",
        help_heading = "Embedded source (the default)"
    )]
    messages: u64,
    /// Embedded source: deliver every n-th message a second time, as a broker
    /// redelivers after a lost ack (0: never). The sink skips the duplicates.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        conflicts_with = "broker",
        help_heading = "Embedded source (the default)"
    )]
    redeliver_every: u64,

    /// Read from a Redis stream instead of generating, e.g. redis://127.0.0.1:6379/.
    #[arg(long, value_name = "URL", requires_all = ["stream", "group"], help_heading = "Redis source")]
    redis: Option<String>,
    /// Read from a NATS JetStream stream instead of generating, e.g.
    /// nats://127.0.0.1:4222, through the durable pull consumer --group.
    #[arg(long, value_name = "URL", requires_all = ["stream", "group"], conflicts_with = "redis",
          help_heading = "NATS source")]
    nats: Option<String>,
    /// Read from a Kafka topic instead of generating, through the bootstrap
    /// brokers HOST:PORT[,HOST:PORT…], as a member of consumer group --group.
    #[arg(long, value_name = "BROKERS", requires_all = ["topic", "group"], conflicts_with_all = ["redis", "nats"],
          help_heading = "Kafka source")]
    kafka: Option<String>,
    /// Kafka: the topic to read.
    #[arg(
        long,
        value_name = "TOPIC",
        requires = "kafka",
        help_heading = "Kafka source"
    )]
    topic: Option<String>,
    /// Kafka: where bad messages go, with the reason in headers [default:
    /// <topic>.dead; it must exist or the brokers must create topics].
    #[arg(
        long,
        value_name = "TOPIC",
        requires = "kafka",
        help_heading = "Kafka source"
    )]
    dead_letter_topic: Option<String>,
    /// Kafka: a consumer that stops heartbeating (it died) loses its
    /// partitions to the rest of the group after this long [default: 10000].
    #[arg(long, value_name = "MS", requires = "kafka", value_parser = positive::<u64>(3_600_000),
          help_heading = "Kafka source")]
    session_timeout_ms: Option<u64>,
    /// Redis stream key, or JetStream stream name.
    #[arg(
        long,
        value_name = "KEY",
        requires = "broker",
        conflicts_with = "kafka",
        help_heading = "Redis source"
    )]
    stream: Option<String>,
    /// Redis consumer group (created, with the stream, if missing), or the
    /// JetStream durable consumer (created with explicit acks if missing):
    /// every instance with the same --group shares the messages.
    #[arg(
        long,
        value_name = "NAME",
        requires = "broker",
        help_heading = "Redis source"
    )]
    group: Option<String>,
    /// NATS: create the stream with this subject (repeatable; wildcards
    /// allowed) if it does not exist. Without it the stream must exist.
    #[arg(
        long = "subject",
        value_name = "SUBJECT",
        requires = "nats",
        conflicts_with_all = ["redis", "kafka"],
        help_heading = "NATS source"
    )]
    subjects: Vec<String>,
    /// NATS: the ack wait of the consumer when it is created: a message
    /// neither acked nor signalled in progress for this long (its consumer
    /// died or lost the server) is delivered again. Held messages are
    /// signalled every third of it [default: 30000].
    #[arg(long, value_name = "MS", requires = "nats", conflicts_with_all = ["redis", "kafka"], value_parser = positive::<u64>(DAY_MS),
          help_heading = "NATS source")]
    ack_wait_ms: Option<u64>,
    /// NATS: how often held messages are signalled in progress (each signal
    /// restarts their ack wait); shorter than --ack-wait-ms [default: a
    /// third of it].
    #[arg(long, value_name = "MS", requires = "nats", conflicts_with_all = ["redis", "kafka"], value_parser = positive::<u64>(DAY_MS),
          help_heading = "NATS source")]
    progress_interval_ms: Option<u64>,
    /// NATS: where bad messages go, with the reason in headers [default:
    /// flowgate.dead.<stream>, in a stream <stream>-dead created if none
    /// captures it].
    #[arg(
        long,
        value_name = "SUBJECT",
        requires = "nats",
        conflicts_with_all = ["redis", "kafka"],
        help_heading = "NATS source"
    )]
    dead_letter_subject: Option<String>,
    /// This consumer's name in the group (default: host name and process id).
    /// Restart with the same name to resume its pending messages first.
    #[arg(
        long,
        value_name = "NAME",
        requires = "redis",
        conflicts_with_all = ["nats", "kafka"],
        help_heading = "Redis source"
    )]
    consumer: Option<String>,
    /// The lease: while running, this consumer renews its claim on the
    /// messages it holds; one that stops renewing for this long (it died or
    /// hangs) loses them to another consumer of the group.
    #[arg(long, value_name = "MS", requires = "redis", conflicts_with_all = ["nats", "kafka"], value_parser = positive::<u64>(DAY_MS),
          help_heading = "Redis source")]
    claim_idle_ms: Option<u64>,
    /// A consumer still connected to Redis but renewing no lease (hung,
    /// starved, partitioned) loses its messages after this long
    /// [default: 10 × --claim-idle-ms].
    #[arg(long, value_name = "MS", requires = "redis", conflicts_with_all = ["nats", "kafka"], value_parser = positive::<u64>(DAY_MS),
          help_heading = "Redis source")]
    hung_after_ms: Option<u64>,
    /// Dead-letter a message delivered more often than this to consumers that
    /// died or hung while holding it (NATS: or handed it back) [default: 5].
    #[arg(long, value_name = "N", requires = "broker", conflicts_with = "kafka", value_parser = positive::<u64>(u64::from(u32::MAX)),
          help_heading = "Redis source")]
    max_deliveries: Option<u64>,
    /// Where bad messages go, with the reason [default: <stream>:dead].
    #[arg(
        long,
        value_name = "KEY",
        requires = "redis",
        conflicts_with_all = ["nats", "kafka"],
        help_heading = "Redis source"
    )]
    dead_letter_stream: Option<String>,
    /// Read a sharded stream: the N stream keys <stream>:{0} … <stream>:{N-1},
    /// a group each, dead letters in <shard>:dead; on a Redis Cluster each
    /// from the node serving its slot (--redis is any node). `flowgate
    /// publish --shards N` spreads messages over them.
    #[arg(long, value_name = "N", requires = "redis", conflicts_with_all = ["nats", "kafka", "dead_letter_stream"],
          value_parser = positive::<u32>(16_384), help_heading = "Redis source")]
    shards: Option<u32>,
    /// Stop once no message arrived for this many milliseconds (default: run
    /// until Ctrl-C). The wait is not counted in the elapsed time.
    #[arg(long, value_name = "MS", requires = "broker", value_parser = positive::<u64>(DAY_MS),
          help_heading = "Redis source")]
    exit_when_idle_ms: Option<u64>,
    /// Stop after this many messages.
    #[arg(long, value_name = "N", requires = "broker", value_parser = positive::<u64>(u64::MAX),
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
    /// @id, the message id (Redis: the entry id, <shard key>/<entry id> with
    /// --shards; NATS: the stream sequence; Kafka: <partition>-<offset>).
    /// Repeat for every column.
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
    /// Keep per-key order: rows of messages with the same value of this
    /// field are written in stream order (keys in parallel, on
    /// flush-concurrency lanes by the key's hash; no such field: the empty
    /// key). Without it, batches are written in whatever order they finish.
    #[arg(long, value_name = "FIELD", value_parser = non_empty_field, help_heading = "Pipeline")]
    order_key: Option<String>,
    /// Redis, NATS, Kafka: messages between receipt and ack at once (the
    /// source's bound; the pipeline itself holds at most batch-size ×
    /// (flush-concurrency + 1)). Kafka reads up to as many more ahead.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = positive::<usize>(10_000_000),
          requires_all = ["broker"], help_heading = "Redis source")]
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
    /// Serve Prometheus metrics on IP:PORT (any path), e.g.
    /// 127.0.0.1:9464: the totals of the report as they happen, and every
    /// primitive's series (queue depths, batch sizes, flush latencies).
    #[arg(long, value_name = "IP:PORT", help_heading = "Output")]
    metrics_addr: Option<std::net::SocketAddr>,
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
#[command(after_long_help = RUN_HELP)]
struct RunArgs {
    /// Jobs at once [default: the number of CPUs].
    #[arg(short = 'j', long, visible_short_alias = 'P', value_name = "N",
          value_parser = spec::parse_jobs, conflicts_with = "adaptive", help_heading = "Concurrency")]
    jobs: Option<usize>,
    /// Adapt the jobs at once between MIN and MAX (AIMD: up while jobs
    /// succeed and stay fast, halved on failures and slowdowns), e.g. 2..16.
    #[arg(long, value_name = "MIN..MAX", value_parser = spec::parse_adaptive,
          help_heading = "Concurrency")]
    adaptive: Option<RangeInclusive<usize>>,
    /// Start at most COUNT jobs per PERIOD, spaced evenly (GCRA), e.g. 10/s,
    /// 600/m, 5/500ms, 1/1h.
    #[arg(long, value_name = "COUNT/PERIOD", value_parser = spec::parse_rate,
          help_heading = "Concurrency")]
    rate: Option<Rate>,
    /// With --rate: up to N jobs may start back to back after a quiet spell
    /// [default: 1].
    #[arg(long, value_name = "N", value_parser = spec::parse_burst, requires = "rate",
          help_heading = "Concurrency")]
    burst: Option<u32>,
    /// A job running longer is killed (its whole process group) and fails,
    /// e.g. 30s, 2m, 500ms.
    #[arg(long, value_name = "DURATION", value_parser = spec::parse_duration,
          help_heading = "Failures")]
    timeout: Option<Duration>,
    /// Extra attempts for a failed job (non-zero exit, signal or timeout)
    /// [default: 0].
    #[arg(long, value_name = "N", value_parser = spec::parse_retries, help_heading = "Failures")]
    retries: Option<u32>,
    /// The wait before each retry: exp:MIN..MAX (doubling), linear:MIN..MAX
    /// (steps of MIN), const:D [default: exp:100ms..10s].
    #[arg(long, value_name = "SPEC", value_parser = spec::parse_backoff, requires = "retries",
          help_heading = "Failures")]
    backoff: Option<Backoff>,
    /// Randomise the backoff: full (uniform in [0, d]), equal ([d/2, d]) or
    /// none [default: full].
    #[arg(long, value_name = "KIND", value_parser = spec::parse_jitter, requires = "retries",
          help_heading = "Failures")]
    jitter: Option<Jitter>,
    /// Exit codes that are permanent failures, never retried, e.g. 2,3.
    #[arg(long, value_name = "CODES", value_parser = spec::parse_exit_codes, requires = "retries",
          help_heading = "Failures")]
    no_retry_on: Option<std::vec::Vec<i32>>,
    /// Circuit breaker RATIO%/WINDOW/COOLDOWN, e.g. 50%/20/30s: when 50% of
    /// the last 20 jobs failed, dispatch pauses 30 s, then one probe job
    /// tests recovery (the run goes on unless --halt stops it).
    #[arg(long, value_name = "SPEC", value_parser = spec::parse_breaker, help_heading = "Failures")]
    breaker: Option<BreakerSpec>,
    /// Stop the run on failures: soon (start no new job) or now (kill the
    /// running ones), when fail=N jobs failed or fail=P% of the finished
    /// ones, e.g. soon,fail=10%, now,fail=3.
    #[arg(long, value_name = "WHEN,fail=N|P%", value_parser = spec::parse_halt,
          help_heading = "Failures")]
    halt: Option<Halt>,
    /// Run for each item that failed for good (after its retries); a
    /// template like COMMAND (the item appended when it has no
    /// placeholder), e.g. --on-error 'sh -c "echo {} >> failed.txt"'.
    #[arg(long, value_name = "COMMAND", value_parser = spec::parse_command,
          help_heading = "Failures")]
    on_error: Option<std::vec::Vec<String>>,

    /// Run each distinct item once (later duplicates are skipped).
    #[arg(long, help_heading = "Items")]
    dedup: bool,
    /// At most one job per key at a time (others run in parallel); the key
    /// is a template, e.g. '{1}' (the first field).
    #[arg(long, value_name = "TEMPLATE", value_parser = spec::parse_non_empty,
          help_heading = "Items")]
    key: Option<String>,
    /// Read items from FILE instead of standard input.
    #[arg(
        short = 'a',
        long,
        visible_alias = "arg-file",
        value_name = "FILE",
        help_heading = "Items"
    )]
    input: Option<PathBuf>,
    /// Items are separated by NUL bytes (find -print0) instead of newlines.
    #[arg(short = '0', long, help_heading = "Items")]
    null: bool,
    /// The field separator of {1}, {2}… [default: runs of whitespace].
    #[arg(short = 'd', long, visible_alias = "colsep", value_name = "SEP",
          value_parser = spec::parse_non_empty, help_heading = "Items")]
    delimiter: Option<String>,

    /// Record every finished job in FILE (tab-separated: Seq, Starttime,
    /// JobRuntime, Exitval, Signal, Attempts, Item), durably.
    #[arg(long, value_name = "FILE", help_heading = "Joblog and resume")]
    joblog: Option<PathBuf>,
    /// Skip the items the --joblog records as finished (after a crash or
    /// Ctrl-C, run exactly what is not done).
    #[arg(
        long,
        requires = "joblog",
        conflicts_with = "resume_failed",
        help_heading = "Joblog and resume"
    )]
    resume: bool,
    /// Skip the items the --joblog records as succeeded: run the failed ones
    /// again, and those not run yet.
    #[arg(long, requires = "joblog", help_heading = "Joblog and resume")]
    resume_failed: bool,

    /// Outputs in input order (held back while earlier jobs run) instead of
    /// as jobs finish.
    #[arg(short = 'k', long, help_heading = "Output")]
    keep_order: bool,
    /// Prefix each output line with the item and a tab.
    #[arg(long, help_heading = "Output")]
    tag: bool,
    /// A further stage: COMMAND gets each job's stdout on its stdin, and
    /// its own stdout goes on (repeatable: a pipeline); placeholders as in
    /// COMMAND, the item not appended, e.g. --then 'gzip -c'.
    #[arg(long = "then", value_name = "COMMAND", value_parser = spec::parse_command,
          help_heading = "Output")]
    then: Vec<std::vec::Vec<String>>,
    /// A progress bar with ETA on standard error [default: when it is a
    /// terminal].
    #[arg(long, overrides_with = "no_bar", help_heading = "Output")]
    bar: bool,
    /// No progress bar.
    #[arg(long, overrides_with = "bar", help_heading = "Output")]
    no_bar: bool,
    /// Also write the summary as JSON to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    summary_json: Option<PathBuf>,
    /// More log detail on standard error: -v debug (each retry), -vv trace
    /// (RUST_LOG overrides). Failed jobs, breaker trips and halts are logged
    /// at warn and error.
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output")]
    verbose: u8,
    /// Log lines as text or JSON objects (on standard error).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, help_heading = "Output")]
    log_format: LogFormat,
    /// Serve Prometheus metrics on IP:PORT (any path), e.g.
    /// 127.0.0.1:9464: the totals of the report as they happen, and every
    /// primitive's series (queue depths, batch sizes, flush latencies).
    #[arg(long, value_name = "IP:PORT", help_heading = "Output")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// The command and its arguments, a template: {} the item, {1}, {2}…
    /// its fields, {#} its position, {{ and }} literal braces. Put `--`
    /// before it.
    #[arg(value_name = "COMMAND", required = true, trailing_var_arg = true, num_args = 1..)]
    command: Vec<String>,
}

const RUN_HELP: &str = "\
Examples:

  # fetch URLs, 4 at a time, at most 10 per second, retrying failures with
  # backoff, recording every job; rerun with --resume after a crash
  flowgate run -j 4 --rate 10/s --retries 3 --timeout 30s --joblog fetch.log \\
      -- curl -fsS -o '{#}.html' '{}' < urls.txt

  # the first field is the host: one job per host at a time
  flowgate run --key '{1}' -- ssh '{1}' uptime < hosts.txt

  # pause while the service is down (50% of the last 20 jobs failed: wait
  # 30 s, then probe), stop once 10% of the jobs failed
  flowgate run --breaker 50%/20/30s --halt soon,fail=10% -- ./upload.sh < files.txt

  # a pipeline: each job's output goes through a second stage, failures to a third
  find . -name '*.log' -print0 | flowgate run -0 -k \\
      --then 'gzip -c' --on-error 'sh -c \"echo {} >> failed.txt\"' -- cat

Retries: a job fails on a non-zero exit, a signal or --timeout; it is tried
again up to --retries times, waiting --backoff (with --jitter) between
attempts, unless its exit code is one of --no-retry-on. The joblog records a
job once, after its last attempt, with the attempts it took.

Joblog: written with one append per job as soon as it finishes and synced
within 50 ms, so a kill -9 of the runner loses only the jobs running at that
moment; --resume reruns exactly those and the ones not started.

Exit status: 0 when every job succeeded (or there was no item); else the
number of failed jobs, at most 101; 127 when COMMAND cannot be found; 255 for
a usage error (a bad value, a flag that does not apply); 1 when the run could
not go on (the reason is printed).
";

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("broker").args(["redis", "nats", "kafka"]).required(true)))]
struct PublishArgs {
    /// Redis URL: append to the stream --stream.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// NATS URL: publish to --subject, stored by the JetStream stream
    /// --stream (created with that subject if missing); the header `seq`
    /// and the body as payload.
    #[arg(long, value_name = "URL", requires = "subject")]
    nats: Option<String>,
    /// NATS: the subject to publish to.
    #[arg(long, requires = "nats")]
    subject: Option<String>,
    /// Kafka bootstrap brokers HOST:PORT[,…]: produce to --topic (the header
    /// `seq`, key = seq, the body as value), each confirmed by all replicas.
    #[arg(
        long,
        value_name = "BROKERS",
        requires = "topic",
        conflicts_with = "stream"
    )]
    kafka: Option<String>,
    /// Kafka: the topic to produce to (it must exist or the brokers must
    /// create topics).
    #[arg(long, requires = "kafka")]
    topic: Option<String>,
    /// Redis: spread the messages over the N shards <stream>:{0} …
    /// <stream>:{N-1} (on a Redis Cluster, each on the node serving it).
    #[arg(long, value_name = "N", requires = "redis", value_parser = positive::<u32>(16_384))]
    shards: Option<u32>,
    /// Stream key (Redis) or name (JetStream).
    #[arg(long, required_unless_present = "kafka")]
    stream: Option<String>,
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    match cli.command {
        Command::Ingest(args) => ingest_command(*args).await,
        Command::Run(args) => run_command(*args).await,
        Command::Publish(args) => {
            let stream = args
                .stream
                .clone()
                .or_else(|| args.topic.clone())
                .unwrap_or_default();
            let published = match (&args.redis, &args.nats, &args.subject) {
                (None, None, _) => {
                    let brokers = args.kafka.as_deref().expect("clap requires a broker");
                    let topic = args
                        .topic
                        .as_deref()
                        .expect("clap requires --topic with --kafka");
                    naive::publish_kafka(brokers, topic, args.messages).await
                }
                (Some(redis), _, _) => match args.shards {
                    Some(shards) => {
                        naive::publish_sharded(redis, &stream, shards, args.messages).await
                    }
                    None => naive::publish(redis, &stream, args.messages)
                        .await
                        .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>),
                },
                (None, Some(nats), Some(subject)) => {
                    naive::publish_nats(nats, &stream, subject, args.messages).await
                }
                _ => {
                    eprintln!("flowgate publish: --nats needs --subject");
                    return ExitCode::from(2);
                }
            };
            match published {
                Ok(took) => {
                    println!(
                        "published {} messages to {:?} in {:.2} s",
                        args.messages,
                        stream,
                        took.as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    print_error("flowgate publish", &*err);
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

/// Prints clap's message (help and version on stdout, errors on stderr) and
/// picks the exit code: 0 for `--help` and `--version`, clap's 2 for a usage
/// error, except that `flowgate run` exits 255 (GNU parallel's convention).
fn usage_error(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    let code = err.exit_code();
    let run = std::env::args_os().nth(1).is_some_and(|a| a == "run");
    if code != 0 && run {
        ExitCode::from(RUN_USAGE)
    } else {
        ExitCode::from(u8::try_from(code).unwrap_or(2))
    }
}

/// The exit code of a usage error of `flowgate run`.
const RUN_USAGE: u8 = 255;

async fn run_command(args: RunArgs) -> ExitCode {
    if let Err(err) = logging::init(args.verbose, args.log_format) {
        eprintln!("flowgate run: {err}");
        return ExitCode::from(RUN_USAGE);
    }
    if let Some(addr) = args.metrics_addr
        && let Err(err) = flowgate_cli::metrics::serve(addr)
    {
        print_error("flowgate run", &err);
        return ExitCode::from(RUN_USAGE);
    }
    let config = match run_config(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("flowgate run: {err}");
            return ExitCode::from(RUN_USAGE);
        }
    };
    match flowgate_cli::run::run(config).await {
        Ok(summary) => {
            eprint!("{}", summary.render());
            ExitCode::from(summary.exit_code())
        }
        Err(err) => {
            print_error("flowgate run", &err);
            ExitCode::from(if err.is_not_found() {
                127
            } else if err.is_usage() {
                RUN_USAGE
            } else {
                1
            })
        }
    }
}

/// Checks what clap cannot (values that depend on each other) and builds
/// the configuration.
fn run_config(args: RunArgs) -> Result<RunConfig, ConfigError> {
    let retries = args.retries.unwrap_or(0);
    if retries == 0 {
        let retry_only = [
            ("--backoff", args.backoff.is_some()),
            ("--jitter", args.jitter.is_some()),
            ("--no-retry-on", args.no_retry_on.is_some()),
        ];
        if let Some((flag, _)) = retry_only.into_iter().find(|(_, given)| *given) {
            return Err(ConfigError::new(
                flag,
                "applies only to retries: give --retries N with N at least 1",
            ));
        }
    }
    let rate = match (args.rate, args.burst) {
        (Some(rate), Some(burst)) => Some(
            spec::with_burst(rate, burst)
                .map_err(|err| ConfigError::new("--burst", &err.to_string()))?,
        ),
        (rate, _) => rate,
    };
    let resume = match (args.resume, args.resume_failed) {
        (true, _) => ResumeMode::Resume,
        (false, true) => ResumeMode::ResumeFailed,
        (false, false) => ResumeMode::Fresh,
    };
    let progress = if args.no_bar {
        false
    } else {
        args.bar || std::io::IsTerminal::is_terminal(&std::io::stderr())
    };
    let config = RunConfig {
        command: args.command,
        jobs: args.jobs.unwrap_or_else(default_jobs),
        adaptive: args.adaptive,
        rate,
        retries,
        backoff: args
            .backoff
            .unwrap_or(DEFAULT_BACKOFF)
            .jitter(args.jitter.unwrap_or(Jitter::Full)),
        no_retry_on: args.no_retry_on.unwrap_or_default(),
        timeout: args.timeout,
        breaker: args.breaker,
        halt: args.halt,
        dedup: args.dedup,
        key: args.key,
        joblog: args.joblog,
        resume,
        keep_order: args.keep_order,
        tag: args.tag,
        then: args.then,
        on_error: args.on_error,
        null: args.null,
        delimiter: args.delimiter,
        input: args.input,
        progress,
        summary_json: args.summary_json,
    };
    config.validate()?;
    Ok(config)
}

async fn ingest_command(args: IngestArgs) -> ExitCode {
    if let Err(err) = logging::init(args.verbose, args.log_format) {
        eprintln!("flowgate ingest: {err}");
        return ExitCode::from(2);
    }
    if let Some(addr) = args.metrics_addr
        && let Err(err) = flowgate_cli::metrics::serve(addr)
    {
        print_error("flowgate ingest", &err);
        return ExitCode::from(2);
    }
    let config = match ingest_config(args) {
        Ok(config) => config,
        Err(err) => {
            print_error("flowgate ingest", &err);
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
                print_error("flowgate ingest", &**failure);
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
            print_error("flowgate ingest", &err);
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
    let source = match (args.redis, args.nats) {
        (None, None) if args.kafka.is_some() => {
            let mut kafka = KafkaConfig::new(
                args.kafka.expect("matched"),
                args.topic.expect("clap requires --topic with --kafka"),
                args.group.expect("clap requires --group with --kafka"),
            );
            kafka.dead_letter_topic = args.dead_letter_topic;
            if let Some(ms) = args.session_timeout_ms {
                kafka.session_timeout = Duration::from_millis(ms);
            }
            kafka.exit_when_idle = args.exit_when_idle_ms.map(Duration::from_millis);
            kafka.max_messages = args.max_messages;
            SourceConfig::Kafka(kafka)
        }
        (None, Some(url)) => {
            let mut nats = NatsConfig::new(
                url,
                args.stream.expect("clap requires --stream with --nats"),
                args.group.expect("clap requires --group with --nats"),
            );
            nats.subjects = args.subjects;
            if let Some(ms) = args.ack_wait_ms {
                nats.ack_wait = Duration::from_millis(ms);
            }
            nats.progress_interval = args.progress_interval_ms.map(Duration::from_millis);
            if let Some(n) = args.max_deliveries {
                nats.max_deliveries = n;
            }
            nats.dead_letter_subject = args.dead_letter_subject;
            nats.exit_when_idle = args.exit_when_idle_ms.map(Duration::from_millis);
            nats.max_messages = args.max_messages;
            SourceConfig::Nats(nats)
        }
        (Some(url), _) => {
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
            redis.shards = args.shards;
            SourceConfig::Redis(redis)
        }
        (None, None) => SourceConfig::Embedded {
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
        key: args.order_key,
        progress: !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    })
}

const DEFAULT_TABLE: &str = "flowgate_events";

/// `--order-key`: a field name, not empty.
fn non_empty_field(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("the key field's name must not be empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

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

/// Prints `err` and its causes, one per line, as `<command>: …` (e.g.
/// `flowgate ingest: …`) then `  caused by: …`, leaving out a cause whose
/// text is already shown.
fn print_error(command: &str, err: &(dyn std::error::Error + 'static)) {
    let mut shown = err.to_string();
    let mut text = format!("{command}: {shown}");
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
