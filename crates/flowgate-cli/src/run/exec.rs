//! Running one job: a process in its own process group, its output captured
//! whole, its stdin fed by a task, a timeout that kills the whole group, and
//! no orphans when the caller gives up.
//!
//! ```text
//!  run_job(spec) ── spawn (own process group) ──┬── stdin task: write spec.stdin, close
//!                                                ├── read stdout to end ─┐
//!                                                ├── read stderr to end ─┼─> JobOutput
//!                                                └── wait for exit ──────┘
//!  timeout: SIGTERM to the group ─ 1 s ─> SIGKILL to the group (if any member is left)
//!  future dropped: SIGKILL to the group at once, the child reaped by tokio
//! ```
//!
//! A job is done when its process has exited *and* both of its output pipes
//! are closed: a background process that keeps the job's stdout open keeps
//! the job running (and a timeout applies to all of it).

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a timed-out job's group has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

/// How long, after SIGKILL, a timed-out job's output pipes may stay open
/// (held by a process that left the job's group) before its output is taken
/// as it is.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// How often the group is probed for members during [`KILL_GRACE`].
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// One process to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// The program and its arguments, program first. The program is looked
    /// up in `PATH` unless it contains a `/`.
    pub argv: Vec<String>,
    /// The bytes written to the job's stdin (then closed). `None`: stdin is
    /// `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// How long the job may take, from its start until it has exited and
    /// closed its output. `None`: no limit. A duration too long for an
    /// [`Instant`] (up to [`Duration::MAX`]) means no limit;
    /// [`Duration::ZERO`] times the job out at once.
    pub timeout: Option<Duration>,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The process exited with this status code.
    Code(i32),
    /// The process was killed by this signal (not by the timeout).
    Signal(i32),
    /// The job ran past its timeout and its process group was killed.
    TimedOut,
}

impl Exit {
    /// Whether the job succeeded: exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, Exit::Code(0))
    }

    /// `(Exitval, Signal)` for the joblog: `Code(c)` → `(c, 0)`,
    /// `Signal(s)` → `(-1, s)`, `TimedOut` → `(-1, 9)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_cli::run::exec::Exit;
    ///
    /// assert_eq!(Exit::Code(3).joblog_fields(), (3, 0));
    /// assert_eq!(Exit::Signal(15).joblog_fields(), (-1, 15));
    /// assert_eq!(Exit::TimedOut.joblog_fields(), (-1, 9));
    /// ```
    pub fn joblog_fields(&self) -> (i32, i32) {
        match *self {
            Exit::Code(code) => (code, 0),
            Exit::Signal(signal) => (-1, signal),
            Exit::TimedOut => (-1, 9),
        }
    }

    /// The exit code, if the process exited by itself.
    pub fn code(&self) -> Option<i32> {
        match *self {
            Exit::Code(code) => Some(code),
            Exit::Signal(_) | Exit::TimedOut => None,
        }
    }

    /// The signal that killed the process, if one did (not the timeout's).
    pub fn signal(&self) -> Option<i32> {
        match *self {
            Exit::Signal(signal) => Some(signal),
            Exit::Code(_) | Exit::TimedOut => None,
        }
    }

    fn from_status(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            // Neither is possible for a waited-for child on Unix; stopped or
            // continued children are not reported by wait.
            (None, None) => Exit::Code(-1),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
            Exit::TimedOut => f.write_str("timed out"),
        }
    }
}

/// A finished job: how it ended and what it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutput {
    /// How the job ended.
    pub exit: Exit,
    /// Everything the job wrote to stdout (for a timed-out job: what it wrote
    /// until it was killed).
    pub stdout: Vec<u8>,
    /// Everything the job wrote to stderr.
    pub stderr: Vec<u8>,
    /// When the job was started (wall clock, for the joblog).
    pub start: SystemTime,
    /// How long the job ran, from spawn until its exit and the end of its
    /// output (for a timed-out job: until its group was killed and reaped).
    pub runtime: Duration,
}

/// A job that could not be started. All three are permanent: retrying the
/// same argv fails the same way.
#[derive(Debug)]
pub enum ExecError {
    /// The program does not exist (not in `PATH`, or no such file).
    NotFound {
        /// The program, as given in the argv.
        program: String,
    },
    /// The program exists but may not be executed.
    PermissionDenied {
        /// The program, as given in the argv.
        program: String,
    },
    /// Any other failure to start the process (an empty argv is reported
    /// here with an empty program and [`io::ErrorKind::InvalidInput`]).
    Spawn {
        /// The program, as given in the argv.
        program: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl ExecError {
    /// The program that could not be started.
    pub fn program(&self) -> &str {
        match self {
            ExecError::NotFound { program }
            | ExecError::PermissionDenied { program }
            | ExecError::Spawn { program, .. } => program,
        }
    }

    fn from_spawn(program: &str, source: io::Error) -> ExecError {
        let program = program.to_owned();
        match source.kind() {
            io::ErrorKind::NotFound => ExecError::NotFound { program },
            io::ErrorKind::PermissionDenied => ExecError::PermissionDenied { program },
            _ => ExecError::Spawn { program, source },
        }
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::NotFound { program } => write!(f, "command not found: {program}"),
            ExecError::PermissionDenied { program } => {
                write!(f, "permission denied: cannot execute {program}")
            }
            ExecError::Spawn { program, .. } => write!(f, "cannot start {program}"),
        }
    }
}

impl std::error::Error for ExecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecError::Spawn { source, .. } => Some(source),
            ExecError::NotFound { .. } | ExecError::PermissionDenied { .. } => None,
        }
    }
}

/// Runs the process in its own process group, stdout and stderr captured
/// whole, stdin from `spec.stdin` (written by a separate task, so a job that
/// does not read it cannot deadlock; a job that exits without reading it all
/// is not an error) or `/dev/null`.
///
/// On timeout: SIGTERM to the group, then SIGKILL to the group
/// [`KILL_GRACE`] (1 s) later if any member is still there (a member that
/// already died but was not yet reaped by its parent counts; it is harmless
/// to SIGKILL); the result is [`Exit::TimedOut`] with the output written
/// until then. A process that moved itself out of the group (`setsid`) is
/// not reached.
///
/// A job that exits normally is not killed: background processes it left in
/// its group keep running (but a job is only done once its output pipes are
/// closed, see the [module docs](self)).
///
/// # Errors
///
/// [`ExecError`] if the process could not be started: [`ExecError::NotFound`]
/// naming the program when it does not exist, [`ExecError::PermissionDenied`],
/// or [`ExecError::Spawn`] (also for an empty argv). A job that starts and
/// fails is `Ok` with its [`Exit`].
///
/// # Panics
///
/// Outside a tokio runtime with IO and time enabled.
///
/// # Cancel safety
///
/// Not resumable, but clean: dropping the future SIGKILLs the whole process
/// group at once (a drop guard) and hands the child to tokio, which reaps it
/// in the background — no orphans, no zombies left behind; the job's output
/// is lost. The stdin task is aborted.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use flowgate_cli::run::exec::{ExecError, Exit, JobSpec, run_job};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let argv = ["sh", "-c", "read x; echo got $x"].map(String::from).to_vec();
/// let spec = JobSpec { argv, stdin: Some(b"it\n".to_vec()), timeout: Some(Duration::from_secs(60)) };
/// let out = run_job(spec).await.unwrap();
/// assert_eq!(out.exit, Exit::Code(0));
/// assert_eq!(out.stdout, b"got it\n");
///
/// let spec = JobSpec { argv: vec!["no-such-program-here".into()], stdin: None, timeout: None };
/// let err = run_job(spec).await.unwrap_err();
/// assert!(matches!(err, ExecError::NotFound { .. }));
/// assert_eq!(err.to_string(), "command not found: no-such-program-here");
/// # }
/// ```
pub async fn run_job(spec: JobSpec) -> Result<JobOutput, ExecError> {
    let JobSpec {
        argv,
        stdin,
        timeout,
    } = spec;
    let Some((program, args)) = argv.split_first() else {
        return Err(ExecError::Spawn {
            program: String::new(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let start = SystemTime::now();
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|source| ExecError::from_spawn(program, source))?;
    let mut guard = GroupGuard::new(&child);
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        guard.stdin_task = Some(tokio::spawn(async move {
            // A job that exits (or closes stdin) without reading it all makes
            // this fail with EPIPE; that is the job's business, not an error.
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        }));
    }
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();

    let deadline = timeout.and_then(|timeout| started.checked_add(timeout));
    let mut timed_out = false;
    let status = {
        let done = async {
            let (status, (), ()) = tokio::join!(
                child.wait(),
                read_all(stdout_pipe.as_mut(), &mut stdout),
                read_all(stderr_pipe.as_mut(), &mut stderr),
            );
            status
        };
        tokio::pin!(done);
        let finished = match deadline {
            None => Some(done.as_mut().await),
            Some(deadline) => tokio::time::timeout_at(deadline, done.as_mut()).await.ok(),
        };
        match finished {
            Some(status) => Some(status),
            None => {
                timed_out = true;
                guard.terminate(done.as_mut()).await
            }
        }
    };
    // Whatever the pipes still hold after PIPE_GRACE is not waited for.
    drop((stdout_pipe, stderr_pipe));
    let status = match status {
        Some(status) => status,
        // Only after a timeout whose SIGKILL did not end the output: the
        // child itself was SIGKILLed, so this wait is short.
        None => child.wait().await,
    };
    guard.disarm();
    let exit = match status {
        _ if timed_out => Exit::TimedOut,
        Ok(status) => Exit::from_status(status),
        // wait(2) failing on our own child is not expected; report it as a
        // failed job rather than losing the record.
        Err(_) => Exit::Code(-1),
    };
    Ok(JobOutput {
        exit,
        stdout,
        stderr,
        start,
        runtime: started.elapsed(),
    })
}

/// Reads `pipe` to its end into `buf`, keeping what was read if the future
/// is dropped. A read error ends the reading (the output is what was read).
async fn read_all<R: AsyncRead + Unpin>(pipe: Option<&mut R>, buf: &mut Vec<u8>) {
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(buf).await;
    }
}

/// Kills the job's process group when dropped while armed, and aborts the
/// stdin task.
struct GroupGuard {
    pgid: Option<Pid>,
    stdin_task: Option<JoinHandle<()>>,
}

impl GroupGuard {
    fn new(child: &Child) -> GroupGuard {
        // The child was just spawned and not waited for, so it has an id; it
        // leads its own group (process_group(0)), so its pid is the pgid.
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        GroupGuard {
            pgid,
            stdin_task: None,
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH: the group is already gone.
            let _ = killpg(pgid, signal);
        }
    }

    /// Whether the group still has a member (zombies included).
    fn group_alive(&self) -> bool {
        self.pgid
            .is_some_and(|pgid| killpg(pgid, None) != Err(Errno::ESRCH))
    }

    /// SIGTERM, up to [`KILL_GRACE`] for the job to end and its group to
    /// empty, then SIGKILL and up to [`PIPE_GRACE`] more for the job's end.
    /// Returns the exit status if `done` finished.
    async fn terminate<F>(&self, mut done: std::pin::Pin<&mut F>) -> Option<F::Output>
    where
        F: Future,
    {
        self.signal(Signal::SIGTERM);
        let grace = Instant::now() + KILL_GRACE;
        let mut status = tokio::time::timeout_at(grace, done.as_mut()).await.ok();
        while status.is_some() && self.group_alive() && Instant::now() < grace {
            tokio::time::sleep(PROBE_EVERY).await;
        }
        if status.is_none() || self.group_alive() {
            self.signal(Signal::SIGKILL);
        }
        if status.is_none() {
            status = tokio::time::timeout(PIPE_GRACE, done).await.ok();
        }
        status
    }

    /// The job ended normally: its group is left alone from now on.
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Some(task) = self.stdin_task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str]) -> JobSpec {
        JobSpec {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            stdin: None,
            timeout: None,
        }
    }

    fn sh(script: &str) -> JobSpec {
        spec(&["sh", "-c", script])
    }

    /// Polls until the process group `pgid` has no member (its zombies
    /// reaped too), for at most `limit`. The limit is generous: a reaper that
    /// is slow (PID 1 in some containers reaps orphans every second or two)
    /// must not fail the test; only a group that stays alive does.
    async fn group_gone(pgid: i32, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if killpg(Pid::from_raw(pgid), None) == Err(Errno::ESRCH) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn exit_codes_and_output_are_captured() {
        let ok = run_job(sh("printf out; printf err >&2")).await.unwrap();
        assert_eq!(ok.exit, Exit::Code(0));
        assert!(ok.exit.success());
        assert_eq!(
            (ok.stdout.as_slice(), ok.stderr.as_slice()),
            (&b"out"[..], &b"err"[..])
        );

        let failed = run_job(spec(&["false"])).await.unwrap();
        assert_eq!(failed.exit, Exit::Code(1));
        assert!(!failed.exit.success());
        assert_eq!(failed.exit.joblog_fields(), (1, 0));

        let seven = run_job(sh("exit 7")).await.unwrap();
        assert_eq!(seven.exit.code(), Some(7));
    }

    #[tokio::test]
    async fn exit_by_signal_is_reported() {
        let out = run_job(sh("kill -9 $$")).await.unwrap();
        assert_eq!(out.exit, Exit::Signal(9));
        assert_eq!(out.exit.signal(), Some(9));
        assert_eq!(out.exit.code(), None);
        assert_eq!(out.exit.joblog_fields(), (-1, 9));
        assert!(!out.exit.success());
    }

    #[tokio::test]
    async fn a_missing_program_is_not_found_naming_it() {
        let err = run_job(spec(&["flowgate-no-such-program-xyz", "a"]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::NotFound { program } if program == "flowgate-no-such-program-xyz")
        );
        assert_eq!(err.program(), "flowgate-no-such-program-xyz");
        assert!(
            err.to_string().contains("flowgate-no-such-program-xyz"),
            "{err}"
        );

        let err = run_job(spec(&["/nonexistent/dir/prog"])).await.unwrap_err();
        assert!(matches!(err, ExecError::NotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_program_that_may_not_run_is_permission_denied() {
        // A directory is found but cannot be executed (EACCES), even as root.
        let err = run_job(spec(&["/"])).await.unwrap_err();
        assert!(
            matches!(&err, ExecError::PermissionDenied { program } if program == "/"),
            "{err:?}"
        );
        assert!(err.to_string().contains('/'), "{err}");
    }

    #[tokio::test]
    async fn an_empty_argv_is_a_spawn_error() {
        let err = run_job(JobSpec {
            argv: vec![],
            stdin: None,
            timeout: None,
        })
        .await
        .unwrap_err();
        match &err {
            ExecError::Spawn { program, source } => {
                assert_eq!(program, "");
                assert_eq!(source.kind(), io::ErrorKind::InvalidInput);
            }
            other => panic!("expected Spawn, got {other:?}"),
        }
        assert!(std::error::Error::source(&err).is_some());
    }

    #[tokio::test]
    async fn stdin_is_fed_and_defaults_to_dev_null() {
        let mut job = spec(&["cat"]);
        job.stdin = Some(b"hello\nworld\n".to_vec());
        let out = run_job(job).await.unwrap();
        assert_eq!(out.stdout, b"hello\nworld\n");

        // No stdin: cat reads /dev/null and ends at once.
        let out = run_job(spec(&["cat"])).await.unwrap();
        assert_eq!((out.exit, out.stdout.len()), (Exit::Code(0), 0));
    }

    #[tokio::test]
    async fn a_job_that_does_not_read_a_big_stdin_does_not_deadlock() {
        // 4 MiB is far more than a pipe buffer; the job writes a lot too.
        let mut job = sh("head -c 1000000 /dev/zero; exit 3");
        job.stdin = Some(vec![b'x'; 4 << 20]);
        job.timeout = Some(Duration::from_secs(60));
        let out = run_job(job).await.unwrap();
        assert_eq!(out.exit, Exit::Code(3));
        assert_eq!(out.stdout.len(), 1_000_000);
    }

    #[tokio::test]
    async fn a_job_past_its_timeout_is_timed_out() {
        let mut job = spec(&["sleep", "100"]);
        job.timeout = Some(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let out = run_job(job).await.unwrap();
        assert_eq!(out.exit, Exit::TimedOut);
        assert_eq!(out.exit.joblog_fields(), (-1, 9));
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "{:?}",
            started.elapsed()
        );
        assert!(out.runtime >= Duration::from_millis(200));
    }

    /// Runs `script` (which prints its pid, the group's id, first) with a
    /// 200 ms timeout and asserts it timed out and its whole group is gone.
    async fn assert_timeout_kills_the_group(script: &str) {
        let mut job = sh(script);
        job.timeout = Some(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let out = run_job(job).await.unwrap();
        assert_eq!(out.exit, Exit::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "{:?}",
            started.elapsed()
        );
        // sh leads the group: its pid is the pgid; the output written before
        // the timeout is kept.
        let pgid: i32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            group_gone(pgid, Duration::from_secs(30)).await,
            "a member of group {pgid} survived"
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        assert_timeout_kills_the_group("echo $$; sleep 100 & sleep 100").await;
    }

    #[tokio::test]
    async fn a_job_ignoring_sigterm_gets_sigkill() {
        assert_timeout_kills_the_group(
            "trap '' TERM; echo $$; sleep 100 & while :; do sleep 1; done",
        )
        .await;
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_whole_process_group() {
        let dir = std::env::temp_dir().join(format!("flowgate-exec-drop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let script = format!(
            "echo $$ > {}.tmp && mv {0}.tmp {0}; sleep 100 & sleep 100",
            pid_file.display()
        );
        let job = tokio::spawn(run_job(sh(&script)));
        // Wait (generously) until the job has started and told its pid.
        let until = Instant::now() + Duration::from_secs(30);
        let pgid = loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file) {
                break text.trim().parse::<i32>().unwrap();
            }
            assert!(Instant::now() < until, "the job never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        job.abort();
        assert!(job.await.unwrap_err().is_cancelled());
        assert!(
            group_gone(pgid, Duration::from_secs(30)).await,
            "a member of group {pgid} survived"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_huge_timeout_means_no_limit() {
        let mut job = spec(&["true"]);
        job.timeout = Some(Duration::MAX);
        assert_eq!(run_job(job).await.unwrap().exit, Exit::Code(0));
    }

    #[tokio::test]
    async fn a_zero_timeout_times_out_at_once() {
        let mut job = spec(&["sleep", "100"]);
        job.timeout = Some(Duration::ZERO);
        assert_eq!(run_job(job).await.unwrap().exit, Exit::TimedOut);
    }

    #[test]
    fn the_job_future_can_be_spawned() {
        fn assert_send<T: Send + 'static>(_: &T) {}
        let future = run_job(spec(&["true"]));
        assert_send(&future);
    }

    #[test]
    fn exit_accessors() {
        assert_eq!(Exit::Code(0).joblog_fields(), (0, 0));
        assert_eq!(Exit::Code(2).code(), Some(2));
        assert_eq!(Exit::TimedOut.code(), None);
        assert_eq!(Exit::TimedOut.signal(), None);
        assert!(!Exit::TimedOut.success());
        assert_eq!(Exit::Signal(15).to_string(), "killed by signal 15");
    }
}
