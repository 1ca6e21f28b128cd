//! `flowgate run`: runs a command once per input item, as GNU parallel and
//! rush do, with flowgate's flow control around every job — a concurrency
//! limit (fixed, or adaptive AIMD), a GCRA rate limit with burst, retries
//! with backoff and jitter, a circuit breaker that pauses dispatch and
//! probes, `--halt`, dedup, per-key serialisation, a durable joblog with
//! `--resume`, ordered output and a pipeline of stages (`--then`,
//! `--on-error`).
//!
//! # How a job runs
//!
//! ```text
//! input ─▶ dedup / resume skip ─▶ per-key queue ─▶ concurrency slot
//!        ─▶ [ breaker permit ─▶ rate token ─▶ process (timeout) ]  × attempts, backoff between
//!        ─▶ --then stages (stdin = the previous stage's stdout) ─▶ --on-error if it failed
//!        ─▶ joblog line (written at once, synced within 50 ms) ─▶ output (whole, in order with -k)
//! ```
//!
//! Every attempt of every stage takes a breaker permit and a rate token, so
//! `--rate 10/s` bounds process starts, retries included, and an open breaker
//! holds every job before it starts a process: dispatch pauses, and once the
//! cooldown has passed one probe job tests recovery.
//!
//! # Memory
//!
//! At most `-j` (or the adaptive maximum) jobs run. Items whose key is busy
//! wait in memory; the input is not read further while more than
//! [`MAX_HELD`] items wait, so a hot key cannot make the runner buffer
//! without bound (the other keys then wait too). With `-k`, the outputs of
//! jobs that finished ahead of an earlier one are held until it finishes.
//!
//! # Accounting
//!
//! Every input item read ends as exactly one of: succeeded, failed, skipped
//! by `--resume`, skipped by `--dedup`, or not run because `--halt`, Ctrl-C
//! or SIGTERM stopped the run (running jobs are then killed, process group
//! and all, and count as not run); the [`Summary`] counts each. After a stop
//! the input is not read further.
//!
//! # Exit code
//!
//! 0 when every job succeeded; else the number of failed jobs, capped at 101
//! (GNU parallel's convention); 130 after Ctrl-C or SIGTERM; 255 for a usage
//! error; 127 when the command cannot be found.

pub mod config;
pub mod exec;
pub mod input;
pub mod joblog;
pub mod output;
pub mod spec;
pub mod summary;

use std::collections::{HashMap, HashSet, VecDeque};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowgate::limit::RateLimiter;
use flowgate::resilience::{AdaptiveLimit, AdaptivePermit, CircuitBreaker, Outcome, Window};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncBufRead, BufReader};

pub use self::config::{BreakerSpec, ConfigError, Halt, HaltOn, HaltWhen, RunConfig};
use self::exec::{ExecError, Exit, JobOutput, JobSpec, run_job};
use self::input::{Item, Template, TemplateError, read_items};
pub use self::joblog::ResumeMode;
use self::joblog::{JobLog, JobLogError, JobRecord, Skip};
use self::output::Output;
use self::summary::ProgressBar;
pub use self::summary::Summary;

/// How many items may wait for their key before the input is read further.
pub const MAX_HELD: usize = 10_000;

/// Why `flowgate run` could not run (a job that fails is not an error: it is
/// counted in the [`Summary`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// A template (the command, a `--then`/`--on-error` command or `--key`)
    /// is malformed.
    Template {
        /// The flag the template came from (`COMMAND`, `--then`, `--key`…).
        flag: &'static str,
        /// What is wrong.
        source: TemplateError,
    },
    /// The input file could not be opened or read.
    Input {
        /// The file, or `-` for stdin.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A command could not be started (not found, not executable): no job
    /// can succeed, so the run stops at the first one.
    Start(ExecError),
    /// The joblog could not be read or written.
    JobLog(JobLogError),
    /// The runner's stdout or stderr failed (a closed pipe).
    Output(std::io::Error),
    /// `--summary-json` could not be written.
    SummaryJson {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether a program could not be found (a shell's exit code 127).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RunError::Start(ExecError::NotFound { .. }))
    }

    /// Whether the invocation itself is wrong (a malformed template): exit
    /// code 255, as for any usage error.
    pub fn is_usage(&self) -> bool {
        matches!(self, RunError::Template { .. })
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Template { flag, .. } => write!(f, "invalid template in {flag}"),
            RunError::Input { path, .. } => write!(f, "cannot read the input {}", path.display()),
            RunError::Start(err) => write!(f, "cannot start `{}`", err.program()),
            RunError::JobLog(_) => f.write_str("joblog failed"),
            RunError::Output(_) => f.write_str("cannot write the jobs' output"),
            RunError::SummaryJson { path, .. } => {
                write!(f, "cannot write the summary to {}", path.display())
            }
        }
    }
}

impl Error for RunError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RunError::Template { source, .. } => Some(source),
            RunError::Input { source, .. } => Some(source),
            RunError::Start(err) => Some(err),
            RunError::JobLog(err) => Some(err),
            RunError::Output(err) => Some(err),
            RunError::SummaryJson { source, .. } => Some(source),
        }
    }
}

/// The commands of one job: the main command, then each `--then` stage.
struct Stages {
    main: Template,
    then: Vec<Template>,
    on_error: Option<Template>,
    delimiter: Option<String>,
}

/// What one job ended as, for the dispatcher.
struct Finished {
    item: Item,
    key: Option<String>,
    /// The last stage's output (or the failing stage's), and how it ended.
    exit: Exit,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    start: std::time::SystemTime,
    runtime: Duration,
    /// The most attempts any stage took (1: no retry anywhere).
    attempts: u32,
}

/// Limits shared by every job.
struct Gates {
    rate: Option<RateLimiter>,
    breaker: Option<CircuitBreaker>,
    adaptive: Option<AdaptiveLimit>,
    retries: u32,
    backoff: flowgate::resilience::Backoff,
    no_retry_on: Vec<i32>,
    timeout: Option<Duration>,
    retries_done: AtomicU64,
    /// `flowgate_run_retries_total`, beside `retries_done`.
    retries_metric: metrics::Counter,
    breaker_open: std::sync::atomic::AtomicBool,
}

/// The summary's counts as Prometheus series (`--metrics-addr`; no-op
/// handles without), updated where the summary is: see
/// [`crate::metrics::RUN`].
struct RunMetrics {
    items: metrics::Counter,
    succeeded: metrics::Counter,
    failed: metrics::Counter,
    timed_out: metrics::Counter,
    retried: metrics::Counter,
    skipped_resume: metrics::Counter,
    skipped_dedup: metrics::Counter,
    running: metrics::Gauge,
    waiting: metrics::Gauge,
}

impl RunMetrics {
    fn new() -> Self {
        RunMetrics {
            items: metrics::counter!("flowgate_run_items_total"),
            succeeded: metrics::counter!("flowgate_run_jobs_total", "outcome" => "succeeded"),
            failed: metrics::counter!("flowgate_run_jobs_total", "outcome" => "failed"),
            timed_out: metrics::counter!("flowgate_run_jobs_timed_out_total"),
            retried: metrics::counter!("flowgate_run_jobs_retried_total"),
            skipped_resume: metrics::counter!("flowgate_run_skipped_total", "reason" => "resume"),
            skipped_dedup: metrics::counter!("flowgate_run_skipped_total", "reason" => "dedup"),
            running: metrics::gauge!("flowgate_run_jobs_running"),
            waiting: metrics::gauge!("flowgate_run_jobs_waiting"),
        }
    }
}

impl Gates {
    /// Waits until the breaker admits a process start (open: the rest of the
    /// cooldown; half-open with its probe out: until the probe decides).
    async fn breaker_permit(
        &self,
        bar: &ProgressBar,
    ) -> Option<flowgate::resilience::BreakerPermit> {
        let breaker = self.breaker.as_ref()?;
        loop {
            match breaker.try_acquire() {
                Ok(permit) => {
                    if self.breaker_open.swap(false, Ordering::Relaxed) {
                        bar.set_message("");
                    }
                    return Some(permit);
                }
                Err(rejected) => {
                    if !self.breaker_open.swap(true, Ordering::Relaxed) {
                        bar.set_message("breaker open: dispatch paused");
                        tracing::warn!("breaker open: dispatch paused until a probe job succeeds");
                    }
                    let wait = rejected
                        .retry_after()
                        .unwrap_or(Duration::from_millis(20))
                        .max(Duration::from_millis(1));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Runs one command with the attempts, backoff, breaker, rate limit and
    /// timeout of the run. `Err` only when the program cannot be started.
    async fn attempts(
        &self,
        argv: Vec<String>,
        stdin: Option<Vec<u8>>,
        bar: &ProgressBar,
    ) -> Result<(JobOutput, u32), ExecError> {
        let mut delays = self.backoff.schedule();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = self.breaker_permit(bar).await;
            if let Some(rate) = &self.rate {
                rate.acquire().await;
            }
            let adaptive: Option<AdaptivePermit> = match &self.adaptive {
                Some(limit) => Some(limit.acquire().await),
                None => None,
            };
            let result = run_job(JobSpec {
                argv: argv.clone(),
                stdin: stdin.clone(),
                timeout: self.timeout,
            })
            .await;
            let output = match result {
                Ok(output) => output,
                Err(err) => {
                    // Not the service's fault: says nothing to the breaker.
                    drop(permit);
                    if let Some(adaptive) = adaptive {
                        adaptive.record(Outcome::Ignore);
                    }
                    return Err(err);
                }
            };
            let ok = output.exit.success();
            if let Some(permit) = permit {
                permit.record(!ok);
            }
            if let Some(adaptive) = adaptive {
                adaptive.record(if ok {
                    Outcome::Success
                } else {
                    Outcome::Overload
                });
            }
            let permanent = output
                .exit
                .code()
                .is_some_and(|code| self.no_retry_on.contains(&code));
            if ok || permanent || attempt > self.retries {
                return Ok((output, attempt));
            }
            self.retries_done.fetch_add(1, Ordering::Relaxed);
            self.retries_metric.increment(1);
            let delay = delays.next().unwrap_or(Duration::ZERO);
            tracing::debug!(attempt, ?delay, exit = ?output.exit, "job failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

type JobFuture = Pin<Box<dyn Future<Output = Result<Finished, ExecError>> + Send>>;

/// One job: the main command and its `--then` stages, each with the run's
/// attempts; `--on-error` when it failed.
fn job(
    item: Item,
    key: Option<String>,
    stages: Arc<Stages>,
    gates: Arc<Gates>,
    bar: Arc<ProgressBar>,
) -> JobFuture {
    Box::pin(async move {
        let delimiter = stages.delimiter.as_deref();
        let argv = stages.main.render(&item, delimiter);
        let (mut output, mut attempts) = gates.attempts(argv, None, &bar).await?;
        let start = output.start;
        let mut runtime = output.runtime;
        let mut stderr = std::mem::take(&mut output.stderr);
        for stage in &stages.then {
            if !output.exit.success() {
                break;
            }
            let argv = stage.render(&item, delimiter);
            let stdin = std::mem::take(&mut output.stdout);
            let (mut next, n) = gates.attempts(argv, Some(stdin), &bar).await?;
            attempts = attempts.max(n);
            runtime += next.runtime;
            stderr.append(&mut next.stderr);
            output = next;
        }
        let mut stdout = std::mem::take(&mut output.stdout);
        if !output.exit.success()
            && let Some(on_error) = &stages.on_error
        {
            // The failed item's last stderr is the handler's stdin; its
            // output joins the job's. Its own failure changes nothing.
            let spec = JobSpec {
                argv: on_error.render(&item, delimiter),
                stdin: Some(stderr.clone()),
                timeout: gates.timeout,
            };
            match run_job(spec).await {
                Ok(mut handled) => {
                    stdout.append(&mut handled.stdout);
                    stderr.append(&mut handled.stderr);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Finished {
            item,
            key,
            exit: output.exit,
            stdout,
            stderr,
            start,
            runtime,
            attempts,
        })
    })
}

/// Resolves at the first SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        // No signal handling (no runtime signal driver): never.
        _ => std::future::pending().await,
    }
}

/// Whether the halt rule is met after `failed` of `finished` jobs
/// (`total`: the number of items, once the input has ended).
fn halt_reached(halt: &Halt, failed: u64, finished: u64, total: Option<u64>) -> bool {
    match halt.on {
        HaltOn::Failures(n) => failed >= n,
        // A percentage of the whole input once it is known, else of the
        // jobs finished so far, and not before 3 jobs have finished (one
        // early failure is not 100% of a run).
        HaltOn::FailurePercent(percent) => {
            let base = total.unwrap_or(finished).max(finished);
            finished >= 3 && failed as f64 * 100.0 >= percent * base as f64
        }
    }
}

/// Runs `config`: reads the items, runs the jobs, writes the joblog, the
/// output, the summary; returns the [`Summary`].
///
/// # Errors
///
/// [`RunError`] when the run cannot go on: a malformed template, an input
/// that cannot be read, a program that cannot be started, a joblog or an
/// output that cannot be written. Failed jobs are not errors.
///
/// # Cancel safety
///
/// Dropping the future kills every running job's process group; the joblog
/// holds every job that finished.
pub async fn run(config: RunConfig) -> Result<Summary, RunError> {
    let template = |flag: &'static str, argv: &[String]| {
        let parsed = if flag == "COMMAND" {
            Template::parse(argv)
        } else {
            Template::parse_stage(argv)
        };
        parsed.map_err(|source| RunError::Template { flag, source })
    };
    let stages = Arc::new(Stages {
        main: template("COMMAND", &config.command)?,
        then: config
            .then
            .iter()
            .map(|argv| template("--then", argv))
            .collect::<Result<_, _>>()?,
        on_error: config
            .on_error
            .as_deref()
            .map(|argv| template("--on-error", argv))
            .transpose()?,
        delimiter: config.delimiter.clone(),
    });
    let key_template = config
        .key
        .as_deref()
        .map(|key| {
            Template::parse_key(key).map_err(|source| RunError::Template {
                flag: "--key",
                source,
            })
        })
        .transpose()?;

    let (joblog, skip) = match &config.joblog {
        Some(path) => {
            let (log, skip) = JobLog::open(path, config.resume)
                .await
                .map_err(RunError::JobLog)?;
            (Some(log), skip)
        }
        None => (None, Skip::default()),
    };

    let reader: Box<dyn AsyncBufRead + Unpin + Send> = match &config.input {
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|source| RunError::Input {
                    path: path.clone(),
                    source,
                })?;
            Box::new(BufReader::new(file))
        }
        None => Box::new(BufReader::new(tokio::io::stdin())),
    };
    let input_path = config.input.clone().unwrap_or_else(|| PathBuf::from("-"));
    let mut items = Box::pin(read_items(reader, config.null));

    let breaker = config.breaker.map(|spec| {
        CircuitBreaker::builder()
            .failure_ratio(spec.failure_ratio)
            .window(Window::last_calls(spec.window))
            .min_calls(spec.window)
            .cooldown(spec.cooldown)
            .half_open_probes(1)
            .name("run")
            .build()
            .expect("validated by the flag parser")
    });
    let adaptive = config.adaptive.clone().map(|range| {
        AdaptiveLimit::builder(range)
            .name("run")
            .build()
            .expect("validated by the flag parser")
    });
    let gates = Arc::new(Gates {
        rate: config.rate.map(|rate| RateLimiter::with_name(rate, "run")),
        breaker,
        adaptive,
        retries: config.retries,
        backoff: config.backoff,
        no_retry_on: config.no_retry_on.clone(),
        timeout: config.timeout,
        retries_done: AtomicU64::new(0),
        retries_metric: metrics::counter!("flowgate_run_retries_total"),
        breaker_open: std::sync::atomic::AtomicBool::new(false),
    });
    // With --adaptive, the AIMD limit decides how many run; the dispatcher
    // only keeps its maximum of jobs ready.
    let slots = match &config.adaptive {
        Some(range) => *range.end(),
        None => config.jobs,
    };

    let bar = Arc::new(ProgressBar::new(config.progress));
    let mut out = Output::new(
        std::io::stdout(),
        std::io::stderr(),
        config.keep_order,
        config.tag,
    );
    let mut summary = Summary::default();
    let meters = RunMetrics::new();
    let started = Instant::now();

    let mut running: FuturesUnordered<JobFuture> = FuturesUnordered::new();
    // Items whose key has a job running, in input order, per key.
    let mut held: HashMap<String, VecDeque<Item>> = HashMap::new();
    let mut held_count = 0usize;
    // Items ready to start (a key just freed), before new input.
    let mut ready: VecDeque<(Item, Option<String>)> = VecDeque::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut input_done = false;
    let mut halting: Option<HaltWhen> = None;
    let mut finished = 0u64;

    // Ctrl-C or SIGTERM: stop at once, as `--halt now` does — the running
    // jobs' process groups are killed (they are not in the terminal's
    // foreground group, so they would not see the Ctrl-C themselves) — and
    // finish the joblog and the summary; a rerun with `--resume` runs the
    // rest.
    let mut interrupt = Box::pin(interrupted());

    loop {
        // Start what may start.
        while halting.is_none() && running.len() < slots {
            let Some((item, key)) = ready.pop_front() else {
                break;
            };
            running.push(job(
                item,
                key,
                Arc::clone(&stages),
                Arc::clone(&gates),
                Arc::clone(&bar),
            ));
        }
        let can_read =
            halting.is_none() && !input_done && running.len() < slots && held_count < MAX_HELD;
        let stopped = halting.is_some();
        meters.running.set(running.len() as f64);
        meters.waiting.set((ready.len() + held_count) as f64);
        if running.is_empty() && (ready.is_empty() || stopped) && (input_done || stopped) {
            break; // nothing runs, and nothing more may start
        }
        tokio::select! {
            biased;
            Some(done) = running.next(), if !running.is_empty() => {
                let done = done.map_err(RunError::Start)?;
                finished += 1;
                let ok = done.exit.success();
                if ok {
                    summary.succeeded += 1;
                    meters.succeeded.increment(1);
                } else {
                    summary.failed += 1;
                    meters.failed.increment(1);
                    if done.exit == Exit::TimedOut {
                        summary.timed_out += 1;
                        meters.timed_out.increment(1);
                    }
                    tracing::warn!(seq = done.item.seq, item = %done.item.text, exit = ?done.exit, attempts = done.attempts, "job failed");
                }
                if done.attempts > 1 {
                    summary.retried += 1;
                    meters.retried.increment(1);
                }
                bar.job_finished(ok);
                if let Some(log) = &joblog {
                    let (exit, signal) = done.exit.joblog_fields();
                    log.record(&JobRecord {
                        seq: done.item.seq,
                        start: done.start,
                        runtime: done.runtime,
                        exit,
                        signal,
                        attempts: done.attempts,
                        item: done.item.text.clone(),
                    })
                    .await
                    .map_err(RunError::JobLog)?;
                }
                out.job(done.item.seq, &done.item.text, &done.stdout, &done.stderr)
                    .map_err(RunError::Output)?;
                if let Some(key) = done.key {
                    let next = held.get_mut(&key).and_then(VecDeque::pop_front);
                    match next {
                        Some(item) => {
                            held_count -= 1;
                            ready.push_back((item, Some(key)));
                        }
                        None => {
                            held.remove(&key);
                        }
                    }
                }
                if halting.is_none()
                    && let Some(halt) = &config.halt
                    && halt_reached(halt, summary.failed, finished, input_done.then_some(summary.items))
                {
                    tracing::error!(failed = summary.failed, finished, "halt: {:?}", halt);
                    halting = Some(halt.when);
                    summary.halted = true;
                    if halt.when == HaltWhen::Now {
                        // Dropping the jobs kills their process groups.
                        running.clear();
                    }
                }
            }
            () = &mut interrupt, if halting != Some(HaltWhen::Now) => {
                tracing::warn!(running = running.len(), "interrupted: killing the running jobs");
                halting = Some(HaltWhen::Now);
                summary.interrupted = true;
                running.clear();
            }
            next = items.next(), if can_read => {
                match next {
                    None => {
                        input_done = true;
                        bar.set_total(summary.items);
                    }
                    Some(Err(source)) => {
                        return Err(RunError::Input { path: input_path, source });
                    }
                    Some(Ok(item)) => {
                        summary.items += 1;
                        meters.items.increment(1);
                        if skip.contains(item.seq) {
                            summary.skipped_resume += 1;
                            meters.skipped_resume.increment(1);
                            bar.job_finished(true);
                            out.skip(item.seq).map_err(RunError::Output)?;
                            continue;
                        }
                        if config.dedup && !seen.insert(item.text.clone()) {
                            summary.skipped_dedup += 1;
                            meters.skipped_dedup.increment(1);
                            bar.job_finished(true);
                            out.skip(item.seq).map_err(RunError::Output)?;
                            continue;
                        }
                        let key = key_template
                            .as_ref()
                            .map(|t| t.render_key(&item, config.delimiter.as_deref()));
                        match key {
                            Some(key) => match held.get_mut(&key) {
                                // The key has a job running: wait behind it.
                                Some(queue) => {
                                    queue.push_back(item);
                                    held_count += 1;
                                }
                                None => {
                                    held.insert(key.clone(), VecDeque::new());
                                    ready.push_back((item, Some(key)));
                                }
                            },
                            None => ready.push_back((item, None)),
                        }
                    }
                }
            }
            else => {
                if input_done || halting.is_some() {
                    break;
                }
            }
        }
    }

    meters.running.set(running.len() as f64);
    meters.waiting.set(0.0);
    // After a halt: what never ran, in order.
    let mut not_run: Vec<u64> = ready.iter().map(|(item, _)| item.seq).collect();
    not_run.extend(held.values().flatten().map(|item| item.seq));
    // Jobs killed by `--halt now` (dropped above) count as not run too; the
    // output's `finish` writes whatever it holds without waiting for them.
    // The input is not read further after a halt or an interrupt (it may be
    // a pipe that never ends): `items` and `not_run` count what was read.
    not_run.sort_unstable();
    summary.not_run = summary.items
        - summary.succeeded
        - summary.failed
        - summary.skipped_resume
        - summary.skipped_dedup;
    // Announce every seq that produced no job, so ordered output flushes.
    for seq in not_run {
        out.skip(seq).map_err(RunError::Output)?;
    }
    out.finish().map_err(RunError::Output)?;
    if let Some(log) = joblog {
        log.close().await.map_err(RunError::JobLog)?;
    }
    bar.finish();

    summary.retries = gates.retries_done.load(Ordering::Relaxed);
    summary.breaker_trips = gates.breaker.as_ref().map_or(0, |b| b.stats().trips);
    summary.set_elapsed(started.elapsed());
    if let Some(path) = &config.summary_json {
        std::fs::write(path, summary.to_json()).map_err(|source| RunError::SummaryJson {
            path: path.clone(),
            source,
        })?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halt(on: HaltOn) -> Halt {
        Halt {
            when: HaltWhen::Soon,
            on,
        }
    }

    #[test]
    fn a_failure_count_halts_at_that_count() {
        let rule = halt(HaltOn::Failures(3));
        assert!(!halt_reached(&rule, 2, 100, None));
        assert!(halt_reached(&rule, 3, 3, None));
    }

    #[test]
    fn a_percentage_waits_for_three_jobs_and_uses_the_whole_input_once_known() {
        let rule = halt(HaltOn::FailurePercent(10.0));
        assert!(
            !halt_reached(&rule, 1, 1, None),
            "one early failure is not 100%"
        );
        assert!(!halt_reached(&rule, 2, 2, None));
        assert!(halt_reached(&rule, 3, 3, None), "3 of 3 finished");
        // 5 of 30 finished failed, of 100 items: 5% of the input.
        assert!(!halt_reached(&rule, 5, 30, Some(100)));
        assert!(halt_reached(&rule, 10, 30, Some(100)), "10% of the input");
        // Input not known yet: 5 of 30 finished is 16.7%.
        assert!(halt_reached(&rule, 5, 30, None));
    }
}
