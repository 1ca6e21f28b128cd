//! `flowgate run`: runs a command once per input item, GNU-parallel style,
//! with flowgate's rate limits, retries, breaker and resume.
//!
//! TEMPORARY: replaced by the lead at merge. This file only holds the
//! module list and placeholders of the dispatcher's interface, so that the
//! command line (`main.rs`), [`config`] and [`spec`] compile on their own.

pub mod config;
pub mod spec;

pub use self::config::{BreakerSpec, ConfigError, Halt, HaltOn, HaltWhen, ResumeMode, RunConfig};

use std::error::Error;
use std::fmt;

// TEMPORARY: replaced by the lead at merge
/// The run's accounting (placeholder).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Jobs that failed for good.
    pub failed: u64,
}

// TEMPORARY: replaced by the lead at merge
impl Summary {
    /// 0 when no job failed, else the number of failed jobs capped at 101.
    pub fn exit_code(&self) -> u8 {
        self.failed.min(101) as u8
    }

    /// Human summary for stderr.
    pub fn render(&self) -> String {
        format!("failed {}\n", self.failed)
    }
}

// TEMPORARY: replaced by the lead at merge
/// Why a run could not start or went wrong (placeholder).
#[derive(Debug)]
pub struct RunError {
    message: String,
}

// TEMPORARY: replaced by the lead at merge
impl RunError {
    /// The command could not be found (exit 127, like a shell).
    pub fn is_not_found(&self) -> bool {
        false
    }

    /// A usage or start error (exit 255).
    pub fn is_usage(&self) -> bool {
        false
    }
}

// TEMPORARY: replaced by the lead at merge
impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// TEMPORARY: replaced by the lead at merge
impl Error for RunError {}

// TEMPORARY: replaced by the lead at merge
/// Runs `config` (placeholder: the dispatcher is not built yet).
///
/// # Errors
///
/// Always, in this placeholder.
pub async fn run(config: RunConfig) -> Result<Summary, RunError> {
    let _ = config;
    Err(RunError {
        message: "the dispatcher is not built yet (TEMPORARY placeholder)".to_owned(),
    })
}
