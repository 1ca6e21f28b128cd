//! The crash-and-resume harness of the `resume` example, shared with
//! flowgate-sql's test of the same scenario (`tests/stores.rs` includes this
//! file): a cursor source pages through a SQLite table `events` into a
//! pipeline whose effect (a row in `effects`) is guarded by a SQLite
//! idempotency store, and its cursor is committed to a SQLite checkpoint
//! store, all in one file.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::idempotency::{Idempotency, Processed};
use flowgate::prelude::*;
use flowgate::source::{CursorSource, Page};
use flowgate_sql::{SqliteCheckpointStore, SqliteIdempotencyStore};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use rusqlite::Connection;

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The shape of a scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Rows in `events`, ids `1..=rows`.
    pub(crate) rows: i64,
    /// Rows per page.
    pub(crate) page: i64,
    /// The source's `max_pages_in_flight`.
    pub(crate) pages_in_flight: usize,
    /// How many rows are processed at once (`par_map_unordered`).
    pub(crate) concurrency: usize,
    /// The work of row `id`, of uneven length: rows finish out of order.
    pub(crate) work: fn(i64) -> Duration,
    /// How long a crashed run waits at its end for the key records already
    /// on the blocking pool to land (a real crash could lose one; see the
    /// idempotency module's docs). Under paused time this waits for the
    /// blocking pool to be idle.
    pub(crate) settle: Duration,
}

/// What one run did.
#[derive(Debug)]
pub(crate) struct Run {
    /// Where the source started: the committed checkpoint, if there was one.
    pub(crate) started_from: Option<i64>,
    /// The rows processed and acknowledged.
    pub(crate) processed: BTreeSet<i64>,
    /// Rows whose effect the idempotency store skipped.
    pub(crate) skipped: BTreeSet<i64>,
    /// With a pause: the pages fetched when it began and when it ended.
    pub(crate) pages_at_pause: u64,
    pub(crate) pages_after_pause: u64,
}

/// Creates `events` (with `scenario.rows` rows) and an empty `effects`.
pub(crate) fn create_tables(path: &Path, scenario: &Scenario) -> Result<(), Error> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let tx = conn.transaction()?;
    tx.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        [],
    )?;
    tx.execute("CREATE TABLE effects (id INTEGER NOT NULL)", [])?;
    for id in 1..=scenario.rows {
        tx.execute(
            "INSERT INTO events (id, body) VALUES (?1, ?2)",
            rusqlite::params![id, format!("event {id}")],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `(effects, distinct ids)` in `effects`.
pub(crate) fn effects(path: &Path) -> Result<(i64, i64), Error> {
    let conn = Connection::open(path)?;
    Ok(conn.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT id) FROM effects",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}

/// One run of the consumer: until `crash_after` rows are done (then a crash:
/// the pipeline is dropped mid-flight and the source's driver aborted), or
/// to the end. With `pause_after`, the source is paused for 50 ms after that
/// many rows.
pub(crate) async fn run(
    path: &Path,
    scenario: &Scenario,
    crash_after: Option<usize>,
    pause_after: Option<usize>,
) -> Result<Run, Error> {
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
        .max_pages_in_flight(scenario.pages_in_flight)
        .build_pair(fetch_page(path.to_path_buf(), scenario.page)?)?;
    let control = source.control();
    let driver = tokio::spawn(driver);

    let work = scenario.work;
    let outcomes = source.par_map_unordered(scenario.concurrency, |item| {
        let (once, effects, processed) =
            (once.clone(), Arc::clone(&effects), Arc::clone(&processed));
        async move {
            let (id, ack) = item.expect("reading events");
            tokio::time::sleep(work(id)).await;
            let outcome = once
                .run(id, || async {
                    // The effect, a row in `effects`, runs synchronously: a
                    // crash lands before it or after it (and its record is
                    // then on its way).
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
            let done = outcomes.take(n).count().await;
            assert_eq!(done, n, "{n} rows before the crash");
            // Crash: the pipeline is dropped mid-flight, the driver aborted.
            driver.abort();
            let _ = driver.await;
            tokio::time::sleep(scenario.settle).await;
        }
        None => {
            let mut outcomes = std::pin::pin!(outcomes);
            let mut seen = 0;
            while let Some((id, outcome)) = outcomes.next().await {
                if outcome == Processed::Skipped {
                    skipped.insert(id);
                }
                seen += 1;
                if Some(seen) == pause_after {
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
        started_from: control.started_from(),
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
    page: i64,
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
                        .query_map([after, page], |row| row.get(0))?
                        .collect::<Result<Vec<i64>, _>>()?;
                    Ok(Page::keyset(ids, |id| *id))
                })
                .await?
            })
        },
    )
}
