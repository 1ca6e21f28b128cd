//! A cursor source paging through a SQLite table, interrupted mid-way and
//! resumed from its checkpoint — with every effect happening once.
//!
//! ```text
//! cargo run -p flowgate-sql --example resume
//! ```
//!
//! Run 1 reads `events` 50 rows at a time (keyset pagination), processes
//! rows 8 at a time in whatever order they finish, and crashes after 420
//! rows: the pipeline is dropped mid-flight and the source's driver aborted.
//! Run 2 opens everything again from the file, resumes from the committed
//! cursor, pauses for a moment, and finishes. It prints what it redid: the
//! rows after the checkpoint that run 1 had already processed, whose effects
//! the idempotency store skipped.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use flowgate::source::CheckpointStore;
use flowgate_sql::SqliteCheckpointStore;

use self::harness::{Error, Scenario, create_tables, effects, run};

const ROWS: i64 = 1_000;
const PAGE: i64 = 50;
const PAGES_IN_FLIGHT: usize = 3;

const SCENARIO: Scenario = Scenario {
    rows: ROWS,
    page: PAGE,
    pages_in_flight: PAGES_IN_FLIGHT,
    concurrency: 8,
    // Some work, of uneven length: rows finish out of order.
    work: |id| Duration::from_micros((id as u64 * 7919) % 700),
    settle: Duration::from_millis(100),
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("flowgate-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("app.db");
    create_tables(&path, &SCENARIO)?;
    println!(
        "{ROWS} rows in {}, read {PAGE} at a time, at most {PAGES_IN_FLIGHT} pages in flight",
        path.display()
    );

    // ----- run 1: interrupted -----
    let first = run(&path, &SCENARIO, Some(420), None).await?;
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
    let second = run(&path, &SCENARIO, None, Some(100)).await?;
    println!(
        "run 2: resumed from id {}",
        second.started_from.unwrap_or(0)
    );
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
    let (effects, distinct) = effects(&path)?;
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
