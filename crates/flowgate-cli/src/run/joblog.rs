//! The joblog of `flowgate run` (`--joblog FILE`) and what a rerun skips
//! (`--resume`, `--resume-failed`).
//!
//! ```text
//! Seq  Starttime       JobRuntime  Exitval  Signal  Attempts  Item
//! 1    1764660000.125  0.031       0        0       1         https://example.com/a
//! 2    1764660000.127  30.000      -1       9       3         https://example.com/b\twith a tab
//! ```
//!
//! ## Durability
//!
//! Each finished job is one line, written with one `write(2)` to a file
//! opened with `O_APPEND` before [`JobLog::record`] returns: a SIGKILL of the
//! runner loses no finished job (the kernel has the bytes), and concurrent
//! writers never interleave within a line. A background thread
//! `fdatasync`s the file in groups, at most every [`SYNC_INTERVAL`]
//! (50 ms), so a power loss loses at most the jobs of the last 50 ms plus
//! one sync, at the cost of one sync per interval rather than one per job.
//! [`JobLog::close`] syncs what is left.
//!
//! ## Reading
//!
//! A torn last line (no trailing newline: a power loss in the middle of a
//! write) is ignored, and cut off the file before a resumed run appends to
//! it. Any other malformed line is an error naming the line: a rerun does
//! not guess which jobs were done.

use std::collections::HashSet;
use std::error::Error;
use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The joblog's first line (without its newline).
pub const HEADER: &str = "Seq\tStarttime\tJobRuntime\tExitval\tSignal\tAttempts\tItem";

/// The shortest time between two `fdatasync`s of the joblog.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// Which earlier jobs a rerun skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResumeMode {
    /// Skip nothing: the joblog is created or truncated.
    #[default]
    Fresh,
    /// `--resume`: skip every job in the joblog, failed or not.
    Resume,
    /// `--resume-failed`: skip the jobs that succeeded; rerun the failed ones.
    ResumeFailed,
}

/// One finished job, a line of the joblog.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The item's 1-based position in the input (`Seq`).
    pub seq: u64,
    /// When the first attempt started (`Starttime`, written as Unix seconds
    /// with 3 decimals, truncated to the millisecond).
    pub start: SystemTime,
    /// From the first attempt's start to the last attempt's end (`JobRuntime`,
    /// seconds with 3 decimals, truncated).
    pub runtime: Duration,
    /// The exit code of the last attempt, -1 when it did not exit (`Exitval`).
    pub exit: i32,
    /// The signal that ended the last attempt, 0 if none; 9 for a timeout (`Signal`).
    pub signal: i32,
    /// How many times the job ran (`Attempts`), 1 without retries; with
    /// `--then` stages, the most attempts any one stage took.
    pub attempts: u32,
    /// The input item (`Item`; escaped in the file).
    pub item: String,
}

impl JobRecord {
    /// Whether the job succeeded: exit 0 and no signal (what `--resume-failed` skips).
    pub fn succeeded(&self) -> bool {
        self.exit == 0 && self.signal == 0
    }

    /// The joblog line, newline included.
    fn to_line(&self) -> String {
        let mut line = String::with_capacity(48 + self.item.len());
        let _ = write!(line, "{}\t", self.seq);
        match self.start.duration_since(UNIX_EPOCH) {
            Ok(after) => push_seconds(&mut line, after),
            Err(before) => {
                line.push('-');
                push_seconds(&mut line, before.duration());
            }
        }
        line.push('\t');
        push_seconds(&mut line, self.runtime);
        let _ = write!(
            line,
            "\t{}\t{}\t{}\t",
            self.exit, self.signal, self.attempts
        );
        escape_into(&mut line, &self.item);
        line.push('\n');
        line
    }

    /// Parses a line (without its newline); the error is the reason.
    fn parse_line(line: &str) -> Result<JobRecord, String> {
        let mut columns = line.splitn(7, '\t');
        let mut next = |name: &str| {
            columns
                .next()
                .ok_or_else(|| format!("the {name} column is missing"))
        };
        fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
            text.parse()
                .map_err(|_| format!("{name} is not a valid number: {text:?}"))
        }
        let seq = number("Seq", next("Seq")?)?;
        let start_text = next("Starttime")?;
        let start = match start_text.strip_prefix('-') {
            Some(before) => parse_seconds(before).and_then(|d| UNIX_EPOCH.checked_sub(d)),
            None => parse_seconds(start_text).and_then(|d| UNIX_EPOCH.checked_add(d)),
        }
        .ok_or_else(|| format!("Starttime is not a valid time: {start_text:?}"))?;
        let runtime_text = next("JobRuntime")?;
        let runtime = parse_seconds(runtime_text)
            .ok_or_else(|| format!("JobRuntime is not a valid duration: {runtime_text:?}"))?;
        let exit = number("Exitval", next("Exitval")?)?;
        let signal = number("Signal", next("Signal")?)?;
        let attempts = number("Attempts", next("Attempts")?)?;
        let item = unescape(next("Item")?)?;
        Ok(JobRecord {
            seq,
            start,
            runtime,
            exit,
            signal,
            attempts,
            item,
        })
    }
}

/// `d` as seconds with 3 decimals, truncated.
fn push_seconds(out: &mut String, d: Duration) {
    let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
}

/// `"S"` or `"S.F"` (1 to 9 decimals), non-negative.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || (text.contains('.') && (!digits(frac) || frac.len() > 9)) {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    Some(Duration::new(secs.parse().ok()?, nanos))
}

fn escape_into(out: &mut String, item: &str) {
    for c in item.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => return Err(format!("unknown escape \\{other} in the Item column")),
            None => return Err("the Item column ends with a lone \\".to_owned()),
        }
    }
    Ok(out)
}

// ===== impl Skip =====

/// Seqs a rerun skips: Resume: every seq in the joblog; ResumeFailed: the seqs whose job succeeded (exit 0, signal 0).
///
/// Empty for [`ResumeMode::Fresh`] (and as its `Default`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skip {
    seqs: HashSet<u64>,
}

impl Skip {
    /// Whether the job of `seq` is skipped.
    pub fn contains(&self, seq: u64) -> bool {
        self.seqs.contains(&seq)
    }

    /// How many distinct seqs are skipped.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Whether nothing is skipped.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
}

// ===== impl JobLogError =====

/// Why the joblog could not be opened, read or written.
#[derive(Debug)]
pub enum JobLogError {
    /// Creating, opening or reading the file failed (or its sync thread
    /// could not start).
    Open {
        /// The joblog.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing, truncating or syncing the file failed.
    Write {
        /// The joblog.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line of an existing joblog is not a joblog line (on resume, or
    /// [`JobLog::read`]).
    Parse {
        /// The joblog.
        path: PathBuf,
        /// The 1-based line number (the header is line 1).
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for JobLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { path, .. } => write!(f, "cannot open the joblog {}", path.display()),
            Self::Write { path, .. } => write!(f, "cannot write the joblog {}", path.display()),
            Self::Parse { path, line, reason } => write!(
                f,
                "the joblog {} is not valid at line {line}: {reason}",
                path.display()
            ),
        }
    }
}

impl Error for JobLogError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Open { source, .. } | Self::Write { source, .. } => Some(source),
            Self::Parse { .. } => None,
        }
    }
}

// ===== impl JobLog =====

/// The joblog: tab-separated, one header line then one line per finished job (after its last attempt):
/// `Seq\tStarttime\tJobRuntime\tExitval\tSignal\tAttempts\tItem` — GNU parallel's column names where they overlap
/// (Starttime: Unix seconds with 3 decimals; JobRuntime: seconds with 3 decimals; Item: tab, newline, CR and
/// backslash escaped as \t \n \r \\). Each line is written with ONE write(2) to a file opened with O_APPEND as soon as
/// the job finishes (so SIGKILL of the runner loses no finished job: the kernel has the bytes), and fdatasync'd in
/// groups by a background thread or task at most every 50 ms (power loss: at most the last 50 ms). A torn last line
/// (no trailing newline) is ignored when reading. Timed-out jobs: Exitval -1, Signal 9.
///
/// The sync runs on its own thread (`flowgate-joblog-sync`), never on the
/// runtime's threads. A failed sync is reported by the next
/// [`record`](JobLog::record) or by [`close`](JobLog::close). Dropping the
/// log without `close` tells the thread to sync what is left and end,
/// without waiting for it.
#[derive(Debug)]
pub struct JobLog {
    path: PathBuf,
    file: Arc<File>,
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<SyncState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Writes so far (the header and truncation count as one).
    written: u64,
    /// `written` when the last sync started: the file is dirty while
    /// `written > started`.
    started: u64,
    /// `written` when the last completed sync started: every write up to it
    /// is on disk.
    synced: u64,
    /// `close` or `Drop`: sync if dirty, then end.
    closing: bool,
    /// The first failed sync not yet reported.
    error: Option<io::Error>,
}

impl SyncState {
    fn dirty(&self) -> bool {
        self.written > self.started
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        // The state stays consistent under panics: every update is one store.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl JobLog {
    /// Fresh: create or truncate, write the header. Resume / ResumeFailed: read the existing file (missing file = empty),
    /// return what to skip, then append (write the header only if the file was empty).
    ///
    /// A torn last line of an existing file is cut off before appending.
    /// When the file is created, its directory is synced too (best effort),
    /// so the file itself survives a power loss.
    ///
    /// # Errors
    ///
    /// [`JobLogError::Open`] when the file cannot be opened or read,
    /// [`JobLogError::Parse`] when an existing file's header or a line is not
    /// a joblog's (nothing is written to it then), [`JobLogError::Write`] when
    /// the header cannot be written.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the work runs on the blocking pool and completes even
    /// if the future is dropped, so the file may be created or truncated; the
    /// log it opened is then dropped (and its sync thread ends).
    pub async fn open(path: &Path, mode: ResumeMode) -> Result<(JobLog, Skip), JobLogError> {
        let owned = path.to_path_buf();
        run_blocking(move || open_blocking(owned, mode))
            .await
            .map_err(|source| JobLogError::Open {
                path: path.to_path_buf(),
                source,
            })?
    }

    /// Every complete record of the joblog at `path`, in file order (a torn
    /// last line is ignored). For tests and tools; a run uses [`JobLog::open`].
    ///
    /// # Errors
    ///
    /// [`JobLogError::Open`] when the file cannot be opened or read (a
    /// missing file too), [`JobLogError::Parse`] for a line that is not a
    /// joblog line.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn read(path: &Path) -> Result<Vec<JobRecord>, JobLogError> {
        let owned = path.to_path_buf();
        run_blocking(move || {
            let file = File::open(&owned).map_err(|source| JobLogError::Open {
                path: owned.clone(),
                source,
            })?;
            let mut records = Vec::new();
            scan(&file, &owned, |record| records.push(record))?;
            Ok(records)
        })
        .await
        .map_err(|source| JobLogError::Open {
            path: path.to_path_buf(),
            source,
        })?
    }

    /// Appends the line (one write) and returns; the fsync follows within 50 ms.
    ///
    /// The line is in the file (the kernel's page cache) when this returns:
    /// readers see it and a SIGKILL does not lose it. The write is done on
    /// the calling thread, as a log line to stderr would be: one `write(2)`
    /// to the page cache, microseconds; the slow part, the sync, is on the
    /// sync thread.
    ///
    /// # Errors
    ///
    /// [`JobLogError::Write`] when the write fails, or when a background sync
    /// failed since the last call (reported once; this call's line was
    /// written then).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the future does all its work in its first poll and never
    /// waits, so it either wrote the line or did nothing.
    pub async fn record(&self, record: &JobRecord) -> Result<(), JobLogError> {
        let line = record.to_line();
        // `write_all` is one write(2) unless the kernel writes short (disk
        // full mid-line), where the rest follows in more writes.
        (&*self.file)
            .write_all(line.as_bytes())
            .map_err(|source| self.write_error(source))?;
        let failed = {
            let mut state = self.shared.lock();
            // Notify on the clean -> dirty change only: the sync thread
            // waits for that (or `closing`), not for each write.
            if !state.dirty() {
                self.shared.wake.notify_one();
            }
            state.written += 1;
            state.error.take()
        };
        match failed {
            Some(source) => Err(self.write_error(source)),
            None => Ok(()),
        }
    }

    /// Syncs and closes.
    ///
    /// When this returns, every recorded line was `fdatasync`ed (by the sync
    /// thread, which has ended).
    ///
    /// # Errors
    ///
    /// [`JobLogError::Write`] when a sync failed and was not yet reported.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future still syncs (the thread was told to end, and
    /// syncs first), but a sync error is then lost.
    pub async fn close(mut self) -> Result<(), JobLogError> {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        let syncer = self.syncer.take();
        let joined = run_blocking(move || match syncer {
            Some(handle) => handle.join().is_ok(),
            None => true,
        })
        .await;
        let failed = match joined {
            Ok(true) => self.shared.lock().error.take(),
            Ok(false) => Some(io::Error::other("the joblog sync thread panicked")),
            Err(source) => Some(source),
        };
        match failed {
            Some(source) => Err(self.write_error(source)),
            None => Ok(()),
        }
    }

    /// The joblog's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_error(&self, source: io::Error) -> JobLogError {
        JobLogError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

impl Drop for JobLog {
    fn drop(&mut self) {
        if self.syncer.is_some() {
            self.shared.lock().closing = true;
            self.shared.wake.notify_all();
        }
    }
}

/// Runs `f` on tokio's blocking pool; the error is the pool's (runtime
/// shutting down). A panic in `f` is resumed here.
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(io::Error::other(err)),
    }
}

fn open_blocking(path: PathBuf, mode: ResumeMode) -> Result<(JobLog, Skip), JobLogError> {
    let open_error = |source| JobLogError::Open {
        path: path.clone(),
        source,
    };
    let write_error = |source| JobLogError::Write {
        path: path.clone(),
        source,
    };
    let existed = path.try_exists().unwrap_or(true);
    // O_APPEND for every write; `read` for resuming. `append` and
    // `truncate` cannot be combined in one open, so Fresh truncates after.
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .map_err(open_error)?;
    let (skip, keep, len) = match mode {
        ResumeMode::Fresh => (
            Skip::default(),
            0,
            file.metadata().map_err(open_error)?.len(),
        ),
        ResumeMode::Resume | ResumeMode::ResumeFailed => {
            let mut seqs = HashSet::new();
            let (keep, len) = scan(&file, &path, |record| {
                if mode == ResumeMode::Resume || record.succeeded() {
                    seqs.insert(record.seq);
                }
            })?;
            (Skip { seqs }, keep, len)
        }
    };
    let mut dirty = false;
    if keep < len {
        // Fresh: truncate; resume: cut a torn last line, so the next line
        // does not glue onto it.
        file.set_len(keep).map_err(write_error)?;
        dirty = true;
    }
    if keep == 0 {
        (&file)
            .write_all(format!("{HEADER}\n").as_bytes())
            .map_err(write_error)?;
        dirty = true;
    }
    if !existed {
        sync_directory_of(&path);
    }
    let file = Arc::new(file);
    let shared = Arc::new(Shared::default());
    shared.lock().written = u64::from(dirty);
    let syncer = std::thread::Builder::new()
        .name("flowgate-joblog-sync".to_owned())
        .spawn({
            let file = Arc::clone(&file);
            let shared = Arc::clone(&shared);
            move || sync_loop(&file, &shared)
        })
        .map_err(open_error)?;
    let log = JobLog {
        path,
        file,
        shared,
        syncer: Some(syncer),
    };
    Ok((log, skip))
}

/// Best effort: makes a new file's directory entry durable. Errors are
/// ignored (some file systems cannot sync a directory).
fn sync_directory_of(path: &Path) {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Reads the joblog from the start, calling `each` for every complete record;
/// returns (the length of the complete lines, the file's length).
fn scan(
    file: &File,
    path: &Path,
    mut each: impl FnMut(JobRecord),
) -> Result<(u64, u64), JobLogError> {
    let parse_error = |line, reason| JobLogError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut complete = 0u64;
    let mut number = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| JobLogError::Open {
                path: path.to_path_buf(),
                source,
            })? as u64;
        if n == 0 {
            return Ok((complete, complete));
        }
        if buf.last() != Some(&b'\n') {
            // A torn last line: read_until stops short only at the end.
            return Ok((complete, complete + n));
        }
        number += 1;
        complete += n;
        buf.pop();
        let line = std::str::from_utf8(&buf)
            .map_err(|_| parse_error(number, "the line is not valid UTF-8".to_owned()))?;
        if number == 1 {
            if line != HEADER {
                return Err(parse_error(
                    number,
                    format!("expected the header {HEADER:?}, found {line:?}"),
                ));
            }
            continue;
        }
        each(JobRecord::parse_line(line).map_err(|reason| parse_error(number, reason))?);
    }
}

/// The sync thread: waits for a write, syncs, then waits out the rest of
/// the interval (so syncs are at least SYNC_INTERVAL apart, and a write
/// waits at most one interval plus one sync). On `closing`: one last sync if
/// needed, then it ends.
fn sync_loop(file: &File, shared: &Shared) {
    let mut last_sync: Option<Instant> = None;
    let mut state = shared.lock();
    loop {
        while !state.dirty() && !state.closing {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.dirty() {
            return; // closing, all synced
        }
        if let Some(last) = last_sync {
            // `record` notifies only on a clean → dirty change, so this wait
            // is woken early by `closing` alone.
            while !state.closing {
                let left = SYNC_INTERVAL.saturating_sub(last.elapsed());
                if left.is_zero() {
                    break;
                }
                state = shared
                    .wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        // Marked before the sync starts: a write during the sync leaves the
        // file dirty and gets the next sync.
        let covers = state.written;
        state.started = covers;
        drop(state);
        last_sync = Some(Instant::now());
        let result = file.sync_data();
        state = shared.lock();
        state.synced = covers;
        if let Err(err) = result {
            state.error.get_or_insert(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("flowgate-joblog-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join("joblog.tsv")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(seq: u64, exit: i32, signal: i32, item: &str) -> JobRecord {
        JobRecord {
            seq,
            start: UNIX_EPOCH + Duration::from_millis(1_764_660_000_125 + seq),
            runtime: Duration::from_millis(31),
            exit,
            signal,
            attempts: 1,
            item: item.to_owned(),
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    async fn write_log(path: &Path, records: &[JobRecord]) {
        let (log, _) = JobLog::open(path, ResumeMode::Fresh).await.unwrap();
        for r in records {
            log.record(r).await.unwrap();
        }
        log.close().await.unwrap();
    }

    #[test]
    fn line_format() {
        let mut r = record(3, -1, 9, "a\tb");
        r.start = UNIX_EPOCH + Duration::new(1_764_660_000, 125_999_999);
        r.runtime = Duration::new(30, 5_000_000);
        r.attempts = 4;
        assert_eq!(r.to_line(), "3\t1764660000.125\t30.005\t-1\t9\t4\ta\\tb\n");
        let before = JobRecord {
            start: UNIX_EPOCH - Duration::from_millis(1500),
            ..record(1, 0, 0, "")
        };
        assert!(before.to_line().starts_with("1\t-1.500\t0.031\t"));
        assert_eq!(
            JobRecord::parse_line(before.to_line().trim_end_matches('\n')).unwrap(),
            before
        );
    }

    #[test]
    fn escaping_round_trips() {
        for item in [
            "plain",
            "",
            "tab\there",
            "new\nline",
            "cr\rlf\r\n",
            "back\\slash",
            "\\t literally",
            "\\",
            "\t\n\r\\\\n",
            "ünïcødé ✓",
        ] {
            let r = record(1, 0, 0, item);
            let line = r.to_line();
            assert_eq!(line.matches('\t').count(), 6, "{line:?}");
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert!(!line.contains('\r'), "{line:?}");
            assert_eq!(
                JobRecord::parse_line(line.trim_end_matches('\n')).unwrap(),
                r
            );
        }
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        for (line, reason) in [
            ("x\t1.000\t0.000\t0\t0\t1\ti", "Seq"),
            ("1\t1.000\t0.000\t0\t0\t1", "Item column is missing"),
            ("1\tnow\t0.000\t0\t0\t1\ti", "Starttime"),
            ("1\t1.000\t-1.000\t0\t0\t1\ti", "JobRuntime"),
            ("1\t1.\t0.000\t0\t0\t1\ti", "Starttime"),
            ("1\t1.000\t0.000\t0\t0\t1\ta\\x", "unknown escape \\x"),
            ("1\t1.000\t0.000\t0\t0\t1\ta\\", "lone \\"),
            ("1\t1.000\t0.000\t0\t0\t-1\ti", "Attempts"),
        ] {
            let err = JobRecord::parse_line(line).unwrap_err();
            assert!(err.contains(reason), "{line:?}: {err}");
        }
    }

    #[tokio::test]
    async fn fresh_writes_the_header_and_truncates() {
        let dir = TempDir::new("fresh");
        let path = dir.file();
        std::fs::write(&path, "old content\nmore\n").unwrap();
        let (log, skip) = JobLog::open(&path, ResumeMode::Fresh).await.unwrap();
        assert!(skip.is_empty());
        assert_eq!(lines(&path), [HEADER]);
        log.record(&record(1, 0, 0, "a")).await.unwrap();
        log.close().await.unwrap();
        assert_eq!(
            lines(&path),
            [HEADER, "1\t1764660000.126\t0.031\t0\t0\t1\ta"]
        );
    }

    #[tokio::test]
    async fn a_record_is_in_the_file_when_record_returns() {
        let dir = TempDir::new("visible");
        let path = dir.file();
        let (log, _) = JobLog::open(&path, ResumeMode::Fresh).await.unwrap();
        for seq in 1..=3 {
            let r = record(seq, 0, 0, "x\ty");
            log.record(&r).await.unwrap();
            // Read back without closing, and without waiting.
            let got = lines(&path);
            assert_eq!(got.len(), 1 + seq as usize);
            assert_eq!(JobRecord::parse_line(got.last().unwrap()).unwrap(), r);
        }
        log.close().await.unwrap();
    }

    #[tokio::test]
    async fn records_round_trip_through_the_file() {
        let dir = TempDir::new("roundtrip");
        let path = dir.file();
        let records = vec![
            record(1, 0, 0, "a\tb\nc\\d\re"),
            record(2, 3, 0, "\\n"),
            JobRecord {
                attempts: 3,
                ..record(3, -1, 9, "timed out")
            },
        ];
        write_log(&path, &records).await;
        assert_eq!(JobLog::read(&path).await.unwrap(), records);
    }

    #[tokio::test]
    async fn resume_skips_every_seq_and_resume_failed_the_successes() {
        let dir = TempDir::new("skip");
        let path = dir.file();
        write_log(
            &path,
            &[
                record(1, 0, 0, "ok"),
                record(2, 1, 0, "failed"),
                record(3, -1, 9, "timed out"),
                record(4, -1, 15, "killed"),
                record(5, 0, 0, "ok"),
            ],
        )
        .await;

        let (log, skip) = JobLog::open(&path, ResumeMode::Resume).await.unwrap();
        log.close().await.unwrap();
        assert_eq!(skip.len(), 5);
        assert!((1..=5).all(|seq| skip.contains(seq)));
        assert!(!skip.contains(6) && !skip.contains(0));

        let (log, skip) = JobLog::open(&path, ResumeMode::ResumeFailed).await.unwrap();
        // A rerun of seq 2 that succeeds: now it is skipped too.
        log.record(&record(2, 0, 0, "failed")).await.unwrap();
        log.close().await.unwrap();
        assert_eq!(skip.len(), 2);
        assert!(skip.contains(1) && skip.contains(5));
        assert!(!skip.contains(2) && !skip.contains(3) && !skip.contains(4));

        let (log, skip) = JobLog::open(&path, ResumeMode::ResumeFailed).await.unwrap();
        log.close().await.unwrap();
        assert_eq!(skip.len(), 3);
        assert!(skip.contains(2));
    }

    #[tokio::test]
    async fn appending_after_resume_writes_no_second_header() {
        let dir = TempDir::new("append");
        let path = dir.file();
        write_log(&path, &[record(1, 0, 0, "a")]).await;
        let (log, _) = JobLog::open(&path, ResumeMode::Resume).await.unwrap();
        log.record(&record(2, 0, 0, "b")).await.unwrap();
        log.close().await.unwrap();
        let got = lines(&path);
        assert_eq!(got.len(), 3);
        assert_eq!(got.iter().filter(|l| *l == HEADER).count(), 1);
        assert_eq!(got[0], HEADER);
        assert_eq!(JobLog::read(&path).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_missing_file_on_resume_is_empty_and_gets_a_header() {
        for mode in [ResumeMode::Resume, ResumeMode::ResumeFailed] {
            let dir = TempDir::new("missing");
            let path = dir.file();
            let (log, skip) = JobLog::open(&path, mode).await.unwrap();
            assert!(skip.is_empty());
            log.close().await.unwrap();
            assert_eq!(lines(&path), [HEADER]);
        }
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_cut_before_appending() {
        let dir = TempDir::new("torn");
        let path = dir.file();
        write_log(&path, &[record(1, 0, 0, "a")]).await;
        let mut content = std::fs::read_to_string(&path).unwrap();
        content.push_str("2\t1764660000.127\t0.0"); // a power loss mid-line
        std::fs::write(&path, &content).unwrap();

        assert_eq!(JobLog::read(&path).await.unwrap(), [record(1, 0, 0, "a")]);
        let (log, skip) = JobLog::open(&path, ResumeMode::Resume).await.unwrap();
        assert_eq!(skip.len(), 1);
        assert!(!skip.contains(2));
        log.record(&record(2, 0, 0, "b")).await.unwrap();
        log.close().await.unwrap();
        assert_eq!(
            JobLog::read(&path).await.unwrap(),
            [record(1, 0, 0, "a"), record(2, 0, 0, "b")]
        );
    }

    #[tokio::test]
    async fn a_torn_header_is_replaced() {
        let dir = TempDir::new("tornheader");
        let path = dir.file();
        std::fs::write(&path, "Seq\tStart").unwrap();
        let (log, skip) = JobLog::open(&path, ResumeMode::Resume).await.unwrap();
        assert!(skip.is_empty());
        log.close().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n")
        );
    }

    #[tokio::test]
    async fn a_foreign_file_is_refused_on_resume_and_left_alone() {
        let dir = TempDir::new("foreign");
        let path = dir.file();
        std::fs::write(&path, "url1\nurl2\n").unwrap();
        match JobLog::open(&path, ResumeMode::Resume).await {
            Err(JobLogError::Parse {
                line: 1, reason, ..
            }) => {
                assert!(reason.contains("header"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "url1\nurl2\n");

        let mut content = format!("{HEADER}\n");
        content.push_str(&record(1, 0, 0, "a").to_line());
        content.push_str("garbage\n");
        std::fs::write(&path, &content).unwrap();
        let err = JobLog::open(&path, ResumeMode::ResumeFailed)
            .await
            .unwrap_err();
        assert!(matches!(err, JobLogError::Parse { line: 3, .. }), "{err:?}");
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[tokio::test]
    async fn open_errors_name_the_file() {
        let dir = TempDir::new("openerr");
        let path = dir.0.join("no-such-dir").join("joblog.tsv");
        let err = JobLog::open(&path, ResumeMode::Fresh).await.unwrap_err();
        assert!(matches!(err, JobLogError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
        assert!(err.source().is_some());
        let err = JobLog::read(&path).await.unwrap_err();
        assert!(matches!(err, JobLogError::Open { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn close_syncs_and_ends_the_sync_thread() {
        let dir = TempDir::new("close");
        let path = dir.file();
        let (log, _) = JobLog::open(&path, ResumeMode::Fresh).await.unwrap();
        let shared = Arc::clone(&log.shared);
        let file = Arc::clone(&log.file);
        log.record(&record(1, 0, 0, "a")).await.unwrap();
        log.close().await.unwrap();
        let state = shared.lock();
        assert_eq!(state.written, 2, "the header and one record");
        assert_eq!(state.synced, state.written, "everything written was synced");
        drop(state);
        // The log and the thread dropped their handles: only ours are left.
        assert_eq!(Arc::strong_count(&shared), 1);
        assert_eq!(Arc::strong_count(&file), 1);
    }

    #[tokio::test]
    async fn a_record_is_synced_without_close() {
        let dir = TempDir::new("groupsync");
        let path = dir.file();
        let (log, _) = JobLog::open(&path, ResumeMode::Fresh).await.unwrap();
        log.record(&record(1, 0, 0, "a")).await.unwrap();
        let mine = log.shared.lock().written;
        // Wait (without a deadline: no timing margin) until a sync that
        // started after the write has completed.
        while log.shared.lock().synced < mine {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        log.close().await.unwrap();
    }

    #[tokio::test]
    async fn dropping_without_close_ends_the_sync_thread() {
        let dir = TempDir::new("drop");
        let path = dir.file();
        let (log, _) = JobLog::open(&path, ResumeMode::Fresh).await.unwrap();
        let shared = Arc::clone(&log.shared);
        log.record(&record(1, 0, 0, "a")).await.unwrap();
        drop(log);
        while Arc::strong_count(&shared) > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let state = shared.lock();
        assert_eq!(
            state.synced, state.written,
            "the thread synced before ending"
        );
        drop(state);
        assert_eq!(lines(&path).len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_never_interleave() {
        let dir = TempDir::new("concurrent");
        let path = dir.file();
        let (log, _) = JobLog::open(&path, ResumeMode::Fresh).await.unwrap();
        let log = Arc::new(log);
        let long = "x".repeat(10_000);
        let tasks: Vec<_> = (1..=200u64)
            .map(|seq| {
                let log = Arc::clone(&log);
                let item = format!("{seq}{long}");
                tokio::spawn(async move {
                    let result = log.record(&record(seq, 0, 0, &item)).await;
                    drop(log);
                    result
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        Arc::into_inner(log).unwrap().close().await.unwrap();
        let mut seqs: Vec<u64> = JobLog::read(&path)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r.item, format!("{}{long}", r.seq));
                r.seq
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    }
}
