//! [`RunConfig`]: everything `flowgate run` was asked to do, validated.
//!
//! `main.rs` builds it from the command line (the flag values are parsed by
//! [`spec`](super::spec)); code that runs jobs without a command line builds
//! it with [`RunConfig::new`] and checks it with [`RunConfig::validate`].

use std::error::Error;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use flowgate::limit::Rate;
use flowgate::resilience::{Backoff, Jitter};

pub use super::joblog::ResumeMode;

/// Everything `flowgate run` was asked to do, validated.
///
/// The rules [`validate`](Self::validate) checks (the command line refuses
/// the same, naming the flag):
///
/// - `command` is not empty and its program is not empty;
/// - `jobs` is at least 1; an `adaptive` range has `1 <= MIN < MAX`;
/// - `resume` other than [`ResumeMode::Fresh`] needs a `joblog`;
/// - `backoff` and `no_retry_on` only matter with `retries >= 1` (not
///   checked: the defaults are always there);
/// - `no_retry_on` codes are 1 to 255;
/// - a `timeout`, if any, is above zero;
/// - a `breaker` has a failure ratio in (0, 1], a window of at least 1 and a
///   cooldown above zero; a `halt` percent is in (0, 100] and a count at
///   least 1;
/// - `then` stages and `on_error` are non-empty argvs; `key` and
///   `delimiter`, if any, are not empty.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// COMMAND [ARGS…] after `--`: the program first, then its arguments, a
    /// template with `{}`, `{1}`, `{#}`… placeholders.
    pub command: Vec<String>,
    /// `-j N`: jobs at once (default: the number of CPUs). Ignored when
    /// `adaptive` is set.
    pub jobs: usize,
    /// `--adaptive MIN..MAX`: an AIMD concurrency limit between MIN and MAX,
    /// driven by job latency and failures, instead of a fixed `-j`.
    pub adaptive: Option<RangeInclusive<usize>>,
    /// `--rate 10/s` (with `--burst N`, default 1): job starts per period,
    /// GCRA.
    pub rate: Option<Rate>,
    /// `--retries N`: extra attempts after the first (default 0).
    pub retries: u32,
    /// `--backoff` with `--jitter`: the delay before each retry (default
    /// `exp:100ms..10s`, full jitter).
    pub backoff: Backoff,
    /// `--no-retry-on 2,3`: exit codes that are permanent (never retried).
    pub no_retry_on: Vec<i32>,
    /// `--timeout 30s`: a job running longer is killed (its process group)
    /// and counts as failed (retried like one).
    pub timeout: Option<Duration>,
    /// `--breaker 50%/20/30s`: a circuit breaker over the last jobs.
    pub breaker: Option<BreakerSpec>,
    /// `--halt soon,fail=10%` | `now,fail=3`: when failures stop the run.
    pub halt: Option<Halt>,
    /// `--dedup`: run each distinct item once.
    pub dedup: bool,
    /// `--key '{1}'`: a template; at most one job per rendered key runs at a
    /// time.
    pub key: Option<String>,
    /// `--joblog FILE`.
    pub joblog: Option<PathBuf>,
    /// `--resume` | `--resume-failed` (both need `joblog`).
    pub resume: ResumeMode,
    /// `-k` / `--keep-order`: outputs in input order.
    pub keep_order: bool,
    /// `--tag`: each output line prefixed by the item and a tab.
    pub tag: bool,
    /// `--then COMMAND` (repeatable): stages fed each job's stdout, in
    /// order; each an argv (split with shell-words rules).
    pub then: Vec<Vec<String>>,
    /// `--on-error COMMAND`: run for each item that failed for good.
    pub on_error: Option<Vec<String>>,
    /// `-0` / `--null`: items are NUL-separated instead of lines.
    pub null: bool,
    /// `-d` / `--delimiter`: the field separator for `{1}`, `{2}`…
    /// (default: runs of whitespace).
    pub delimiter: Option<String>,
    /// `-a` / `--input FILE` (default: standard input).
    pub input: Option<PathBuf>,
    /// `--bar` / `--no-bar` (default: whether standard error is a terminal).
    pub progress: bool,
    /// `--summary-json FILE`: the summary, as JSON.
    pub summary_json: Option<PathBuf>,
}

/// `--breaker RATIO%/WINDOW/COOLDOWN`: the breaker opens when at least
/// `failure_ratio` of the last `window` jobs failed; while open, dispatch
/// pauses for `cooldown`, then one probe job tests recovery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSpec {
    /// In (0, 1]: `50%` is 0.5.
    pub failure_ratio: f64,
    /// The last N jobs the ratio is taken over, at least 1.
    pub window: usize,
    /// How long dispatch pauses before a probe, above zero.
    pub cooldown: Duration,
}

/// When a `--halt` stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltWhen {
    /// `soon`: start no new job, let the running ones finish.
    Soon,
    /// `now`: kill the running jobs and stop.
    Now,
}

/// What makes a `--halt` stop the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HaltOn {
    /// `fail=N`: N jobs failed (N at least 1).
    Failures(u64),
    /// `fail=P%`: P percent of the jobs finished so far failed (P in
    /// (0, 100]).
    FailurePercent(f64),
}

/// `--halt WHEN,fail=N|P%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Halt {
    /// `soon` or `now`.
    pub when: HaltWhen,
    /// The failure count or percent.
    pub on: HaltOn,
}

/// The default `--backoff`: `exp:100ms..10s` with full jitter.
pub const DEFAULT_BACKOFF: Backoff = Backoff::exponential(Duration::from_millis(100))
    .max_delay(Duration::from_secs(10))
    .jitter(Jitter::Full);

impl RunConfig {
    /// Runs `command` with the defaults of the command line: `-j` the number
    /// of CPUs, no rate, no retries (backoff [`DEFAULT_BACKOFF`]), no
    /// timeout, breaker or halt, lines from standard input, outputs as jobs
    /// finish, no joblog, no progress bar.
    pub fn new(command: Vec<String>) -> RunConfig {
        RunConfig {
            command,
            jobs: default_jobs(),
            adaptive: None,
            rate: None,
            retries: 0,
            backoff: DEFAULT_BACKOFF,
            no_retry_on: Vec::new(),
            timeout: None,
            breaker: None,
            halt: None,
            dedup: false,
            key: None,
            joblog: None,
            resume: ResumeMode::Fresh,
            keep_order: false,
            tag: false,
            then: Vec::new(),
            on_error: None,
            null: false,
            delimiter: None,
            input: None,
            progress: false,
            summary_json: None,
        }
    }

    /// Checks the rules listed on [`RunConfig`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the flag and the rule of the first broken
    /// one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let refuse = |flag: &'static str, rule: &str| Err(ConfigError::new(flag, rule));
        if self.command.first().is_none_or(|p| p.is_empty()) {
            return refuse("COMMAND", "a command to run is required (after `--`)");
        }
        if self.jobs == 0 {
            return refuse("--jobs", "must be at least 1");
        }
        if self
            .adaptive
            .as_ref()
            .is_some_and(|range| *range.start() == 0 || range.start() >= range.end())
        {
            return refuse("--adaptive", "MIN..MAX must have 1 <= MIN < MAX");
        }
        if self.resume != ResumeMode::Fresh && self.joblog.is_none() {
            let flag = match self.resume {
                ResumeMode::ResumeFailed => "--resume-failed",
                _ => "--resume",
            };
            return refuse(
                flag,
                "needs --joblog FILE (the joblog of the run to resume)",
            );
        }
        if let Some(code) = self.no_retry_on.iter().find(|c| !(1..=255).contains(*c)) {
            return refuse(
                "--no-retry-on",
                &format!("exit codes must be 1 to 255, got {code}"),
            );
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return refuse("--timeout", "must be above zero");
        }
        if let Some(b) = &self.breaker {
            if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0) {
                return refuse(
                    "--breaker",
                    "the failure ratio must be above 0% and at most 100%",
                );
            }
            if b.window == 0 {
                return refuse("--breaker", "the window must be at least 1 job");
            }
            if b.cooldown.is_zero() {
                return refuse("--breaker", "the cooldown must be above zero");
            }
        }
        match self.halt.map(|h| h.on) {
            Some(HaltOn::Failures(0)) => return refuse("--halt", "fail=N must have N >= 1"),
            Some(HaltOn::FailurePercent(p)) if !(p > 0.0 && p <= 100.0) => {
                return refuse("--halt", "fail=P% must have P above 0 and at most 100");
            }
            _ => {}
        }
        if self
            .then
            .iter()
            .any(|argv| argv.first().is_none_or(|p| p.is_empty()))
        {
            return refuse("--then", "the command must not be empty");
        }
        if self
            .on_error
            .as_ref()
            .is_some_and(|argv| argv.first().is_none_or(|p| p.is_empty()))
        {
            return refuse("--on-error", "the command must not be empty");
        }
        if self.key.as_deref().is_some_and(str::is_empty) {
            return refuse("--key", "the key template must not be empty");
        }
        if self.delimiter.as_deref().is_some_and(str::is_empty) {
            return refuse("--delimiter", "the delimiter must not be empty");
        }
        Ok(())
    }
}

/// The number of CPUs, the default of `-j` (1 when it cannot be told).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A [`RunConfig`] rule that is broken, or a flag that does not apply: the
/// flag and the rule. A usage error (`flowgate run` exits 255).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    flag: &'static str,
    rule: String,
}

impl ConfigError {
    /// `flag` (e.g. `"--rate"`) breaks `rule` (lowercase, no period).
    pub fn new(flag: &'static str, rule: &str) -> ConfigError {
        ConfigError {
            flag,
            rule: rule.to_owned(),
        }
    }

    /// The flag, e.g. `"--resume"`.
    pub fn flag(&self) -> &'static str {
        self.flag
    }

    /// The rule it breaks.
    pub fn rule(&self) -> &str {
        &self.rule
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.rule)
    }
}

impl Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        RunConfig::new(vec!["echo".to_owned(), "{}".to_owned()])
    }

    fn refused(config: &RunConfig, flag: &str) -> String {
        let err = config.validate().expect_err("refused");
        assert_eq!(err.flag(), flag, "{err}");
        err.to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        let config = config();
        config.validate().unwrap();
        assert!(config.jobs >= 1);
        assert_eq!(config.resume, ResumeMode::Fresh);
        assert_eq!(config.backoff, DEFAULT_BACKOFF);
        assert_eq!(config.retries, 0);
    }

    #[test]
    fn an_empty_command_is_refused() {
        let mut c = config();
        c.command.clear();
        assert!(refused(&c, "COMMAND").contains("required"));
        c.command = vec![String::new()];
        refused(&c, "COMMAND");
    }

    #[test]
    fn zero_jobs_and_bad_adaptive_ranges_are_refused() {
        let mut c = config();
        c.jobs = 0;
        refused(&c, "--jobs");
        let mut c = config();
        c.adaptive = Some(0..=4);
        refused(&c, "--adaptive");
        c.adaptive = Some(4..=4);
        refused(&c, "--adaptive");
        c.adaptive = Some(1..=4);
        c.validate().unwrap();
    }

    #[test]
    fn resume_needs_a_joblog() {
        let mut c = config();
        c.resume = ResumeMode::Resume;
        assert!(refused(&c, "--resume").contains("--joblog"));
        c.resume = ResumeMode::ResumeFailed;
        refused(&c, "--resume-failed");
        c.joblog = Some(PathBuf::from("log"));
        c.validate().unwrap();
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut c = config();
        c.no_retry_on = vec![2, 0];
        refused(&c, "--no-retry-on");
        let mut c = config();
        c.timeout = Some(Duration::ZERO);
        refused(&c, "--timeout");
        let breaker = BreakerSpec {
            failure_ratio: 0.5,
            window: 20,
            cooldown: Duration::from_secs(30),
        };
        for bad in [
            BreakerSpec {
                failure_ratio: f64::NAN,
                ..breaker
            },
            BreakerSpec {
                failure_ratio: 1.5,
                ..breaker
            },
            BreakerSpec {
                window: 0,
                ..breaker
            },
            BreakerSpec {
                cooldown: Duration::ZERO,
                ..breaker
            },
        ] {
            let mut c = config();
            c.breaker = Some(bad);
            refused(&c, "--breaker");
        }
        for on in [
            HaltOn::Failures(0),
            HaltOn::FailurePercent(0.0),
            HaltOn::FailurePercent(f64::NAN),
        ] {
            let mut c = config();
            c.halt = Some(Halt {
                when: HaltWhen::Soon,
                on,
            });
            refused(&c, "--halt");
        }
    }

    #[test]
    fn empty_stage_commands_key_and_delimiter_are_refused() {
        let mut c = config();
        c.then = vec![vec![]];
        refused(&c, "--then");
        let mut c = config();
        c.on_error = Some(vec![]);
        refused(&c, "--on-error");
        let mut c = config();
        c.key = Some(String::new());
        refused(&c, "--key");
        let mut c = config();
        c.delimiter = Some(String::new());
        refused(&c, "--delimiter");
    }
}
