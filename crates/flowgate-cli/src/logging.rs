//! The `flowgate` command's logs: a tracing subscriber writing to standard
//! error, as text or JSON lines, filtered by `RUST_LOG` or `-v`.
//!
//! Without `RUST_LOG`, flowgate's own crates log at `info` (outages,
//! recoveries, takeovers, stops), `debug` with `-v` and `trace` with `-vv`;
//! other crates log warnings only. Lines printed while a progress bar is
//! shown suspend the bar, so the two never mix on one line.

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Routes log lines around `bar` while it is shown (`None`: no bar).
pub fn set_progress_bar(bar: Option<indicatif::ProgressBar>) {
    *BAR.lock().unwrap_or_else(PoisonError::into_inner) = bar;
}

/// The filter used without `RUST_LOG`, for `verbose` times `-v`.
pub fn default_filter(verbose: u8) -> String {
    let ours = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let others = if verbose >= 2 { "debug" } else { "warn" };
    format!(
        "{others},flowgate={ours},flowgate_cli={ours},flowgate_redis={ours},flowgate_sql={ours}"
    )
}

/// Installs the subscriber. `RUST_LOG`, when set, replaces the filter that
/// `verbose` picks.
///
/// # Errors
///
/// If `RUST_LOG` is not a valid filter (the message names it).
pub fn init(verbose: u8, format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| format!("RUST_LOG={spec:?} is not a valid log filter: {e}"))?,
        _ => EnvFilter::new(default_filter(verbose)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .with_target(true);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    result.map_err(|e| format!("cannot install the log subscriber: {e}"))
}

/// Standard error, around the progress bar.
#[derive(Debug, Clone, Copy)]
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One event's text, written out whole when dropped.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let bar = BAR.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let write = || {
            let _ = io::stderr().lock().write_all(&self.0);
        };
        match bar {
            Some(bar) if !bar.is_finished() => bar.suspend(write),
            _ => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_parses_at_every_level() {
        for verbose in 0..4 {
            EnvFilter::try_new(default_filter(verbose)).unwrap();
        }
        assert!(default_filter(0).contains("flowgate_redis=info"));
        assert!(default_filter(1).contains("flowgate_sql=debug"));
    }
}
