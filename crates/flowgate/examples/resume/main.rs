//! A cursor source paging through a SQLite table, interrupted mid-way and
//! resumed from its checkpoint — with every effect happening once.
//!
//! ```text
//! cargo run --example resume
//! ```
//!
//! Run 1 reads `events` 50 rows at a time (keyset pagination), processes
//! rows 8 at a time in whatever order they finish, and crashes after 420
//! rows: the pipeline is dropped mid-flight and the source's driver aborted.
//! Run 2 opens everything again from the file, resumes from the committed
//! cursor, pauses for a moment, and finishes. It prints what it redid: the
//! rows after the checkpoint that run 1 had already processed, whose effects
//! the idempotency store skipped.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::idempotency::{Idempotency, Processed};
use flowgate::prelude::*;
use flowgate::source::{CheckpointStore, CursorSource, Page};
use flowgate_sql::{SqliteCheckpointStore, SqliteIdempotencyStore};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use rusqlite::Connection;

const ROWS: i64 = 1_000;
const PAGE: i64 = 50;
const PAGES_IN_FLIGHT: usize = 3;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("flowgate-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("app.db");
    create_tables(&path)?;
    println!(
        "{ROWS} rows in {}, read {PAGE} at a time, at most {PAGES_IN_FLIGHT} pages in flight",
        path.display()
    );

    // ----- run 1: interrupted -----
    let first = run(&path, Some(420)).await?;
    let checkpoint = SqliteCheckpointStore::open(&path, "events").await?;
    let committed: i64 = CheckpointStore::<i64>::load(&checkpoint)
        .await?
        .unwrap_or(0);
    let beyond: Vec<i64> = first
        .processed
        .iter()
        .copied()
        .filter(|id| *id > committed)
        .collect();
    println!(
        "run 1: processed {} rows, then crashed; checkpoint committed at id {committed}",
        first.processed.len()
    );
    println!(
        "       {} rows past the checkpoint were processed but not yet covered by it: {}",
        beyond.len(),
        ranges(&beyond)
    );

    // ----- run 2: resumed -----
    let second = run(&path, None).await?;
    println!("run 2: resumed from id {}", second.started_from);
    let redone: Vec<i64> = second
        .processed
        .iter()
        .copied()
        .filter(|id| first.processed.contains(id))
        .collect();
    println!(
        "       redid {} rows run 1 had acknowledged past the checkpoint ({})",
        redone.len(),
        ranges(&redone)
    );
    let skipped: Vec<i64> = second.skipped.iter().copied().collect();
    let in_flight = skipped.len().saturating_sub(redone.len());
    println!(
        "       the idempotency store skipped the effects of {} rows ({}){}",
        skipped.len(),
        ranges(&skipped),
        if in_flight > 0 {
            format!(
                ": those, and {in_flight} whose effect run 1 made just before the crash, unacknowledged"
            )
        } else {
            String::new()
        }
    );
    println!(
        "       paused for 50 ms: {} pages fetched before the pause, {} after it",
        second.pages_at_pause, second.pages_after_pause
    );

    // ----- the promises -----
    let all: BTreeSet<i64> = first.processed.union(&second.processed).copied().collect();
    let conn = Connection::open(&path)?;
    let (effects, distinct): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT id) FROM effects",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let done: i64 = CheckpointStore::<i64>::load(&checkpoint)
        .await?
        .unwrap_or(0);
    println!(
        "done: {} of {ROWS} rows processed (none skipped), {effects} effects for {distinct} rows (each once), checkpoint at id {done}",
        all.len()
    );
    assert_eq!(all.len() as i64, ROWS, "no row skipped");
    assert_eq!((effects, distinct), (ROWS, ROWS), "each effect once");
    assert!(
        redone.len() <= PAGES_IN_FLIGHT * PAGE as usize,
        "bounded redo"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// What one run did.
struct Run {
    started_from: i64,
    processed: BTreeSet<i64>,
    /// Rows whose effect the idempotency store skipped.
    skipped: BTreeSet<i64>,
    pages_at_pause: u64,
    pages_after_pause: u64,
}

/// Processes rows until `crash_after` rows are done (then crashes), or to
/// the end.
async fn run(path: &Path, crash_after: Option<usize>) -> Result<Run, Error> {
    let checkpoint = SqliteCheckpointStore::open(path, "events").await?;
    let once = Idempotency::new(SqliteIdempotencyStore::open(path, "effects").await?);
    let effects = Arc::new(Mutex::new(Connection::open(path)?));
    effects
        .lock()
        .unwrap()
        .busy_timeout(Duration::from_secs(5))?;
    let processed = Arc::new(Mutex::new(BTreeSet::new()));

    let (source, driver) = CursorSource::builder(0i64)
        .checkpoint(checkpoint)
        .max_pages_in_flight(PAGES_IN_FLIGHT)
        .build_pair(fetch_page(path.to_path_buf())?)?;
    let control = source.control();
    let driver = tokio::spawn(driver);

    let outcomes = source.par_map_unordered(8, |item| {
        let (once, effects, processed) =
            (once.clone(), Arc::clone(&effects), Arc::clone(&processed));
        async move {
            let (id, ack) = item.expect("reading events");
            // Some work, of uneven length: rows finish out of order.
            tokio::time::sleep(Duration::from_micros((id as u64 * 7919) % 700)).await;
            let outcome = once
                .run(id, || async {
                    // The effect: here a row in `effects`.
                    effects
                        .lock()
                        .unwrap()
                        .execute("INSERT INTO effects (id) VALUES (?1)", [id])
                        .expect("insert");
                    Ok::<_, Infallible>(())
                })
                .await
                .expect("idempotency store");
            processed.lock().unwrap().insert(id);
            ack.ack(); // the checkpoint may pass this row now
            (id, outcome)
        }
    });

    let mut skipped = BTreeSet::new();
    let (mut pages_at_pause, mut pages_after_pause) = (0, 0);
    match crash_after {
        Some(n) => {
            outcomes.take(n).for_each(|_| async {}).await;
            // Crash: the pipeline is dropped mid-flight, the driver aborted.
            driver.abort();
            let _ = driver.await;
            // Let the key records already on the blocking pool land (a real
            // crash could lose one; see the idempotency module's docs).
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None => {
            let mut outcomes = std::pin::pin!(outcomes);
            let mut seen = 0;
            while let Some((id, outcome)) = outcomes.next().await {
                if outcome == Processed::Skipped {
                    skipped.insert(id);
                }
                seen += 1;
                if seen == 100 {
                    control.pause();
                    pages_at_pause = control.stats().pages_fetched;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    pages_after_pause = control.stats().pages_fetched;
                    control.resume();
                }
            }
            control.finished().await;
            driver.await?;
        }
    }
    let processed = std::mem::take(&mut *processed.lock().unwrap());
    Ok(Run {
        started_from: control.started_from().unwrap_or(0),
        processed,
        skipped,
        pages_at_pause,
        pages_after_pause,
    })
}

/// `SELECT id FROM events WHERE id > ? ORDER BY id LIMIT ?`, on the blocking
/// pool: keyset pagination, so a page costs the same wherever it starts.
#[allow(clippy::type_complexity)]
fn fetch_page(
    path: PathBuf,
) -> Result<
    impl FnMut(i64) -> BoxFuture<'static, Result<Page<i64, i64>, Error>> + Send + 'static,
    Error,
> {
    let conn = Arc::new(Mutex::new(Connection::open(path)?));
    Ok(
        move |after: i64| -> BoxFuture<'static, Result<Page<i64, i64>, Error>> {
            let conn = Arc::clone(&conn);
            Box::pin(async move {
                tokio::task::spawn_blocking(move || -> Result<Page<i64, i64>, Error> {
                    let conn = conn.lock().unwrap();
                    let mut select = conn.prepare_cached(
                        "SELECT id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
                    )?;
                    let ids = select
                        .query_map([after, PAGE], |row| row.get(0))?
                        .collect::<Result<Vec<i64>, _>>()?;
                    Ok(Page::keyset(ids, |id| *id))
                })
                .await?
            })
        },
    )
}

fn create_tables(path: &Path) -> Result<(), Error> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let tx = conn.transaction()?;
    tx.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        [],
    )?;
    tx.execute("CREATE TABLE effects (id INTEGER NOT NULL)", [])?;
    for id in 1..=ROWS {
        tx.execute(
            "INSERT INTO events (id, body) VALUES (?1, ?2)",
            rusqlite::params![id, format!("event {id}")],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `[3, 4, 5, 9]` as `3..=5, 9`.
fn ranges(ids: &[i64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    let mut out = Vec::new();
    let mut start = ids[0];
    let mut end = ids[0];
    for &id in &ids[1..] {
        if id == end + 1 {
            end = id;
        } else {
            out.push(if start == end {
                start.to_string()
            } else {
                format!("{start}..={end}")
            });
            start = id;
            end = id;
        }
    }
    out.push(if start == end {
        start.to_string()
    } else {
        format!("{start}..={end}")
    });
    out.join(", ")
}
