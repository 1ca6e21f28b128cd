//! The accounting of a `flowgate run` ([`Summary`]: the exit code, the
//! stderr summary, `--summary-json`) and its live view ([`ProgressBar`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The run's accounting; every input item is exactly one of succeeded / failed / skipped_* / not_run (halt).
///
/// `retried`, `retries`, `timed_out` and `breaker_trips` are sub-counts and
/// events, not outcomes: a job that timed out on its last attempt is in
/// `failed` and in `timed_out`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Input items read.
    pub items: u64,
    /// Jobs that succeeded (on any attempt).
    pub succeeded: u64,
    /// Jobs that failed on their last attempt.
    pub failed: u64,
    /// Jobs needing more than one attempt.
    pub retried: u64,
    /// Extra attempts in all (attempts beyond each job's first).
    pub retries: u64,
    /// Of the failed jobs, those whose last attempt timed out.
    pub timed_out: u64,
    /// Items skipped because the joblog shows them done (`--resume`, `--resume-failed`).
    pub skipped_resume: u64,
    /// Items skipped as duplicates of an earlier item (`--dedup`).
    pub skipped_dedup: u64,
    /// Items left when a --halt stopped the run.
    pub not_run: u64,
    /// How many times the circuit breaker opened.
    pub breaker_trips: u64,
    /// Whether a `--halt` rule stopped the run.
    pub halted: bool,
    /// Whether Ctrl-C (SIGINT) or SIGTERM stopped the run: the running jobs
    /// were killed (their process groups) and count as not run.
    pub interrupted: bool,
    /// Wall-clock time of the run, in seconds.
    pub elapsed_secs: f64,
    /// Jobs (succeeded + failed) per second of `elapsed_secs`; 0 when no time passed.
    pub jobs_per_sec: f64,
}

impl Summary {
    /// 0 when no job failed, else the number of failed jobs capped at 101 (GNU parallel's convention).
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            // 128 + SIGINT, as a shell reports an interrupted command.
            return 130;
        }
        // 101 fits a u8, so the conversion cannot fail.
        u8::try_from(self.failed.min(101)).unwrap_or(101)
    }

    /// Jobs that ran: succeeded + failed.
    pub fn jobs(&self) -> u64 {
        self.succeeded.saturating_add(self.failed)
    }

    /// The items accounted for: succeeded + failed + skipped_* + not_run.
    /// Equal to `items` at the end of a run.
    pub fn accounted(&self) -> u64 {
        [
            self.failed,
            self.skipped_resume,
            self.skipped_dedup,
            self.not_run,
        ]
        .iter()
        .fold(self.succeeded, |sum, n| sum.saturating_add(*n))
    }

    /// Sets `elapsed_secs`, and `jobs_per_sec` from it and [`Summary::jobs`].
    pub fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed_secs = elapsed.as_secs_f64();
        self.jobs_per_sec = if self.elapsed_secs > 0.0 {
            self.jobs() as f64 / self.elapsed_secs
        } else {
            0.0
        };
    }

    /// Human summary for stderr, a few lines.
    ///
    /// ```text
    /// flowgate run: 1000 items: 990 succeeded, 7 failed (2 timed out), 3 skipped
    ///   retries: 12 extra attempts for 9 jobs
    ///   skipped: 2 done before (resume), 1 duplicate
    ///   breaker: opened 1 time
    ///   elapsed 12.345 s, 80.8 jobs/s
    /// ```
    ///
    /// Lines with nothing to say (no retries, no skips, no trips) are left out;
    /// a halted run says so with the number of items not run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "flowgate run: {} {}: {} succeeded, {} failed",
            self.items,
            plural(self.items, "item", "items"),
            self.succeeded,
            self.failed
        );
        if self.timed_out > 0 {
            let _ = write!(out, " ({} timed out)", self.timed_out);
        }
        let skipped = self.skipped_resume.saturating_add(self.skipped_dedup);
        if skipped > 0 {
            let _ = write!(out, ", {skipped} skipped");
        }
        if self.not_run > 0 {
            let _ = write!(out, ", {} not run", self.not_run);
        }
        out.push('\n');
        if self.retries > 0 || self.retried > 0 {
            let _ = writeln!(
                out,
                "  retries: {} extra {} for {} {}",
                self.retries,
                plural(self.retries, "attempt", "attempts"),
                self.retried,
                plural(self.retried, "job", "jobs")
            );
        }
        if skipped > 0 {
            let _ = writeln!(
                out,
                "  skipped: {} done before (resume), {} {}",
                self.skipped_resume,
                self.skipped_dedup,
                plural(self.skipped_dedup, "duplicate", "duplicates")
            );
        }
        if self.breaker_trips > 0 {
            let _ = writeln!(
                out,
                "  breaker: opened {} {}",
                self.breaker_trips,
                plural(self.breaker_trips, "time", "times")
            );
        }
        if self.interrupted {
            let _ = writeln!(
                out,
                "  interrupted (Ctrl-C or SIGTERM): {} {} not run; rerun with --resume to run them",
                self.not_run,
                plural(self.not_run, "item", "items")
            );
        } else if self.halted {
            let _ = writeln!(
                out,
                "  halted by --halt: {} {} not run",
                self.not_run,
                plural(self.not_run, "item", "items")
            );
        }
        let _ = writeln!(
            out,
            "  elapsed {:.3} s, {:.1} jobs/s",
            self.elapsed_secs, self.jobs_per_sec
        );
        out
    }

    /// The summary as pretty-printed JSON (`--summary-json`): one field per
    /// struct field, same names. Non-finite floats are written as `null`.
    pub fn to_json(&self) -> String {
        // A struct of numbers and a bool: serde_json cannot fail on it.
        serde_json::to_string_pretty(self).expect("a Summary serializes to JSON")
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

// ===== impl ProgressBar =====

/// A progress bar with ETA on stderr when it is a terminal (indicatif); hidden otherwise. The total is unknown until
/// the input ends (set_total), so it starts as a spinner with counts.
///
/// `enabled` is the caller's decision (`--bar`, `--no-bar`, or whether
/// stderr is a terminal); even when enabled, indicatif draws nothing when
/// stderr is not a terminal. While shown, log lines suspend it (see
/// [`crate::logging::set_progress_bar`]). The counts are kept either way.
#[derive(Debug)]
pub struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
    done: AtomicU64,
    failed: AtomicU64,
}

const SPINNER: &str = "{spinner} [{elapsed_precise}] {pos} done, {prefix} failed ({per_sec}) {msg}";
const BAR: &str = "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} done, {prefix} failed ({per_sec}, eta {eta}) {msg}";

impl ProgressBar {
    /// A bar on stderr when `enabled`, else counts only.
    pub fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(style(SPINNER));
            bar.set_prefix("0");
            bar.enable_steady_tick(Duration::from_millis(100));
            crate::logging::set_progress_bar(Some(bar.clone()));
            bar
        });
        Self {
            bar,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// The input ended with `n` items to run: the spinner becomes a bar with an ETA.
    pub fn set_total(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(n);
            bar.set_style(style(BAR));
        }
    }

    /// One job finished (after its last attempt), successfully or not.
    pub fn job_finished(&self, ok: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !ok {
            let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(bar) = &self.bar {
                bar.set_prefix(failed.to_string());
            }
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// A state shown after the counts, e.g. "breaker open"; `""` clears it.
    pub fn set_message(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_owned());
        }
    }

    /// Removes the bar from the terminal (the summary follows) and stops
    /// routing log lines around it. Idempotent.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.finish_and_clear();
            crate::logging::set_progress_bar(None);
        }
    }

    /// Jobs finished so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Jobs failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether a bar is drawn (`enabled` in [`ProgressBar::new`]).
    pub fn is_enabled(&self) -> bool {
        self.bar.is_some()
    }
}

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(succeeded: u64, failed: u64) -> Summary {
        Summary {
            items: succeeded.saturating_add(failed),
            succeeded,
            failed,
            ..Summary::default()
        }
    }

    #[test]
    fn exit_code_is_zero_then_the_failures_capped_at_101() {
        assert_eq!(Summary::default().exit_code(), 0);
        assert_eq!(summary(10, 0).exit_code(), 0);
        assert_eq!(summary(10, 1).exit_code(), 1);
        assert_eq!(summary(0, 7).exit_code(), 7);
        assert_eq!(summary(0, 100).exit_code(), 100);
        assert_eq!(summary(0, 101).exit_code(), 101);
        assert_eq!(summary(0, 102).exit_code(), 101);
        assert_eq!(summary(0, u64::MAX).exit_code(), 101);
        // Skipped and not-run items are not failures.
        let halted = Summary {
            items: 10,
            succeeded: 3,
            skipped_resume: 2,
            not_run: 5,
            halted: true,
            interrupted: false,
            ..Summary::default()
        };
        assert_eq!(halted.exit_code(), 0);
        assert_eq!(halted.accounted(), halted.items);
    }

    #[test]
    fn set_elapsed_computes_the_rate() {
        let mut s = summary(150, 50);
        s.set_elapsed(Duration::from_secs(4));
        assert_eq!((s.elapsed_secs, s.jobs_per_sec), (4.0, 50.0));
        s.set_elapsed(Duration::ZERO);
        assert_eq!((s.elapsed_secs, s.jobs_per_sec), (0.0, 0.0));
        let mut max = summary(u64::MAX, u64::MAX);
        max.set_elapsed(Duration::MAX);
        assert!(max.jobs_per_sec.is_finite());
        assert_eq!(max.accounted(), u64::MAX);
    }

    #[test]
    fn an_interrupted_run_exits_130() {
        let s = Summary {
            failed: 3,
            interrupted: true,
            ..Summary::default()
        };
        assert_eq!(s.exit_code(), 130);
    }

    #[test]
    fn json_has_every_field() {
        let s = Summary {
            items: 12,
            succeeded: 8,
            failed: 2,
            retried: 3,
            retries: 4,
            timed_out: 1,
            skipped_resume: 1,
            skipped_dedup: 1,
            not_run: 0,
            breaker_trips: 2,
            halted: false,
            interrupted: false,
            elapsed_secs: 1.5,
            jobs_per_sec: 6.25,
        };
        let json = s.to_json();
        assert!(json.contains('\n'), "pretty: {json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let expected = serde_json::json!({
            "items": 12, "succeeded": 8, "failed": 2, "retried": 3, "retries": 4,
            "timed_out": 1, "skipped_resume": 1, "skipped_dedup": 1, "not_run": 0,
            "breaker_trips": 2, "halted": false, "interrupted": false, "elapsed_secs": 1.5, "jobs_per_sec": 6.25
        });
        assert_eq!(value, expected);
        let nan = Summary {
            jobs_per_sec: f64::NAN,
            ..Summary::default()
        };
        assert!(nan.to_json().contains("\"jobs_per_sec\": null"));
    }

    #[test]
    fn render_a_clean_run() {
        let mut s = summary(1000, 0);
        s.set_elapsed(Duration::from_millis(12_500));
        assert_eq!(
            s.render(),
            "flowgate run: 1000 items: 1000 succeeded, 0 failed\n  elapsed 12.500 s, 80.0 jobs/s\n"
        );
    }

    #[test]
    fn render_everything() {
        let s = Summary {
            items: 20,
            succeeded: 10,
            failed: 3,
            retried: 1,
            retries: 2,
            timed_out: 1,
            skipped_resume: 2,
            skipped_dedup: 1,
            not_run: 4,
            breaker_trips: 1,
            halted: true,
            interrupted: false,
            elapsed_secs: 2.0,
            jobs_per_sec: 6.5,
        };
        assert_eq!(
            s.render(),
            "flowgate run: 20 items: 10 succeeded, 3 failed (1 timed out), 3 skipped, 4 not run\n\
             \x20 retries: 2 extra attempts for 1 job\n\
             \x20 skipped: 2 done before (resume), 1 duplicate\n\
             \x20 breaker: opened 1 time\n\
             \x20 halted by --halt: 4 items not run\n\
             \x20 elapsed 2.000 s, 6.5 jobs/s\n"
        );
        assert_eq!(
            Summary::default().render().lines().next().unwrap(),
            "flowgate run: 0 items: 0 succeeded, 0 failed"
        );
    }

    #[test]
    fn progress_bar_counts_enabled_or_not() {
        for enabled in [false, true] {
            let bar = ProgressBar::new(enabled);
            assert_eq!(bar.is_enabled(), enabled);
            bar.job_finished(true);
            bar.set_message("breaker open");
            bar.job_finished(false);
            bar.set_total(3);
            bar.set_message("");
            bar.job_finished(true);
            assert_eq!((bar.done(), bar.failed()), (3, 1));
            bar.finish();
            bar.finish();
        }
    }
}
