//! Checkpoints of a SQLite database in WAL mode, on a thread of their own.
//!
//! By default SQLite checkpoints from the writing connection: every ~1000
//! pages a commit also copies the write-ahead log into the database file
//! and waits for two `fsync`s. On a sink that writes batch after batch,
//! that is the writer standing still (measured: 370k rows/s with, 520k
//! without). So the sink's writer does not checkpoint
//! (`wal_autocheckpoint = 0`); a second connection does, on this thread:
//! after commits, at most every [`INTERVAL`], a `PASSIVE` checkpoint — it
//! copies what is committed without blocking the writer — and, once the log
//! has grown past [`RESTART_FRAMES`] (8 MiB; the writer never leaves a gap for the
//! log to start over), a `RESTART` checkpoint, which waits for the current
//! transaction, copies the little left and makes the next one write the log
//! from its start. Durability is SQLite's in WAL mode with `synchronous =
//! NORMAL`, as before: a commit is in the log; the log survives a crash of
//! the process and is replayed when the database is opened next.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The least time between two checkpoints.
pub(crate) const INTERVAL: Duration = Duration::from_millis(50);

/// A log this long (in pages: 8 MiB at 4 KiB) is restarted. A `RESTART`
/// holds the writer for its final copy and `fsync`, but a log that keeps
/// growing costs more: every page of it is a new page of the file, which
/// the kernel allocates, charges, zeroes and writes back (on the embedded
/// 1M-message run, about 190 MB of log, the sys time of the process
/// doubled). A restarted log is written over pages already cached.
/// Measured on 2 cores (`flowgate ingest --messages 1000000 --sqlite F`,
/// five runs each, interleaved; BENCHMARKS.md): quiet, at 2,048 pages
/// 1.12–1.75 M rows/s at 0.93–1.26 s of CPU, at 65,536 pages 1.16–1.33 M
/// at 1.13–1.33 s; beside a CPU hog, 0.58–0.77 M at 1.28–1.74 s against
/// 0.68–0.90 M at 1.24–1.66 s. The log may grow past this size while a
/// checkpoint runs.
pub(crate) const RESTART_FRAMES: i64 = 2048;

/// Runs checkpoints for one database until dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    signal: Arc<Signal>,
}

#[derive(Debug, Default)]
struct Signal {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Commits since the last checkpoint started.
    commits: u64,
    stop: bool,
}

impl Checkpointer {
    /// Opens a second connection to the database at `path` and starts the
    /// checkpoint thread; `database` names it in the log.
    pub(crate) fn start(path: &Path, database: String) -> rusqlite::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let signal = Arc::new(Signal::default());
        let thread_signal = Arc::clone(&signal);
        std::thread::Builder::new()
            .name("flowgate-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &thread_signal, &database))
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
        Ok(Checkpointer { signal })
    }

    /// A transaction was committed: checkpoint it soon.
    pub(crate) fn committed(&self) {
        let mut state = self.signal.lock();
        state.commits += 1;
        self.signal.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.signal.lock().stop = true;
        self.signal.wake.notify_one();
    }
}

impl Signal {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn run(conn: &Connection, signal: &Signal, database: &str) {
    let mut last = Instant::now() - INTERVAL;
    loop {
        let stop = {
            let mut state = signal.lock();
            while state.commits == 0 && !state.stop {
                state = signal
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.commits = 0;
            state.stop
        };
        if !stop {
            // Let commits gather: one checkpoint copies them all.
            std::thread::sleep(INTERVAL.saturating_sub(last.elapsed()));
        }
        last = Instant::now();
        match checkpoint(conn, "PASSIVE") {
            Ok(log) if log >= RESTART_FRAMES => {
                if let Err(err) = checkpoint(conn, "RESTART") {
                    tracing::warn!(database, error = %err, "SQLite checkpoint (RESTART) failed; retrying later");
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(database, error = %err, "SQLite checkpoint failed; retrying later");
            }
        }
        if stop {
            return;
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`; returns the log's length in pages.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(1)
    })
}
