//! Behaviour tests of `flowgate::source`: fetching only when there is room,
//! the ack watermark, pause/resume/stop, fetch errors, and a crash/restart
//! simulation (at-least-once with no item skipped; exactly-once effects with
//! an idempotency store). Timed tests run under paused tokio time.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore};
use flowgate::prelude::*;
use flowgate::source::{
    BuildError, CheckpointStore, CursorAck, CursorControl, CursorDriver, CursorError, CursorSource,
    MemoryCheckpointStore, OnFetchError, Page, StoreError,
};
use futures_core::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use proptest::prelude::*;
use tokio::time::sleep;

/// A "table" of rows `1..=rows`, read `page` at a time after a key; counts
/// the fetches and remembers the cursors asked for.
#[derive(Clone)]
struct Table {
    rows: u64,
    page: u64,
    fetches: Arc<Mutex<Vec<u64>>>,
}

impl Table {
    fn new(rows: u64, page: u64) -> Self {
        Table {
            rows,
            page,
            fetches: Arc::default(),
        }
    }

    fn fetcher(
        &self,
    ) -> impl FnMut(u64) -> BoxFuture<'static, Result<Page<u64, u64>, Infallible>> + Send + 'static
    {
        let table = self.clone();
        move |after| {
            table.fetches.lock().unwrap().push(after);
            let rows: Vec<u64> = (after + 1..=table.rows).take(table.page as usize).collect();
            Box::pin(async move { Ok(Page::keyset(rows, |row| *row)) })
        }
    }

    fn fetches(&self) -> Vec<u64> {
        self.fetches.lock().unwrap().clone()
    }
}

/// Lets every spawned task run until all are idle (paused time auto-advances
/// only then).
async fn settle() {
    sleep(Duration::from_millis(1)).await;
}

type Src = CursorSource<u64, u64, Infallible>;

fn build(table: &Table, store: &MemoryCheckpointStore<u64>, pages: usize) -> Src {
    CursorSource::builder(0u64)
        .checkpoint(store.clone())
        .max_pages_in_flight(pages)
        .build(table.fetcher())
        .unwrap()
}

async fn take(source: &mut Src, n: usize) -> Vec<(u64, CursorAck)> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(source.next().await.unwrap().unwrap());
    }
    out
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Src>();
    assert_send_sync::<CursorAck>();
    assert_send_sync::<CursorControl<u64>>();
    assert_send_sync::<MemoryCheckpointStore<u64>>();
    assert_send_sync::<CursorError<std::io::Error>>();
    assert_send_sync::<StoreError>();
    fn assert_send_only<T: Send>() {}
    assert_send_only::<CursorDriver>();
    let control: CursorControl<u64> = {
        let (source, _driver) = CursorSource::builder(0u64)
            .build_pair(Table::new(1, 1).fetcher())
            .unwrap();
        source.control()
    };
    assert_send(&control.finished());
    // The stores are object-safe.
    let _: Arc<dyn CheckpointStore<u64>> = Arc::new(MemoryCheckpointStore::<u64>::new());
}

#[test]
fn zero_pages_in_flight_is_refused() {
    let err = CursorSource::builder(0u64)
        .max_pages_in_flight(0)
        .build_pair(Table::new(1, 1).fetcher())
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroPagesInFlight);
    assert_eq!(err.to_string(), "max_pages_in_flight must be at least 1");
    let outside = CursorSource::builder(0u64).build(Table::new(1, 1).fetcher());
    assert_eq!(outside.unwrap_err(), BuildError::NoRuntime);
}

#[tokio::test(start_paused = true)]
async fn reads_every_row_in_order_and_commits_the_last_cursor() {
    let table = Table::new(25, 10);
    let store = MemoryCheckpointStore::new();
    let source = build(&table, &store, 2);
    let control = source.control();
    let rows: Vec<u64> = source
        .map(|item| {
            let (row, ack) = item.unwrap();
            ack.ack();
            row
        })
        .collect()
        .await;
    control.finished().await;
    assert_eq!(rows, (1..=25).collect::<Vec<_>>());
    assert_eq!(store.get(), Some(25));
    // Pages 1..=10, 11..=20, 21..=25, then the empty last page.
    assert_eq!(table.fetches(), vec![0, 10, 20, 25]);
    let stats = control.stats();
    assert_eq!(stats.pages_fetched, 4);
    assert_eq!(stats.items_fetched, 25);
    assert_eq!(stats.items_acked, 25);
    assert_eq!(stats.pages_committed, 4);
    assert_eq!(control.started_from(), Some(0));
    assert!(control.is_finished());
}

#[tokio::test(start_paused = true)]
async fn fetches_only_while_fewer_than_max_pages_are_unacknowledged() {
    let table = Table::new(100, 10);
    let store = MemoryCheckpointStore::new();
    let mut source = build(&table, &store, 2);
    settle().await;
    assert_eq!(table.fetches(), vec![0, 10], "two pages and no more");
    // Taking every fetched item out of the stream does not make room...
    let items = take(&mut source, 20).await;
    settle().await;
    assert_eq!(table.fetches().len(), 2);
    assert!(
        source.next().now_or_never().is_none(),
        "nothing more is fetched"
    );
    // ...acknowledging them does.
    let mut items = items.into_iter();
    for (_, ack) in items.by_ref().take(10) {
        ack.ack();
    }
    settle().await;
    assert_eq!(table.fetches(), vec![0, 10, 20]);
    assert_eq!(store.get(), Some(10));
    drop(items);
}

#[tokio::test(start_paused = true)]
async fn the_checkpoint_waits_for_every_item_of_every_earlier_page() {
    let table = Table::new(30, 10);
    let store = MemoryCheckpointStore::new();
    let mut source = build(&table, &store, 3);
    let control = source.control();
    let mut acks: HashMap<u64, CursorAck> = take(&mut source, 30).await.into_iter().collect();
    // Everything of pages 2 and 3 and all of page 1 but row 4, acked out of
    // order: nothing can be committed.
    for row in (11..=30).rev().chain([1, 2, 3, 5, 6, 7, 8, 9, 10]) {
        acks.remove(&row).unwrap().ack();
    }
    settle().await;
    assert_eq!(store.get(), None);
    assert_eq!(control.committed(), None);
    assert_eq!(control.stats().items_acked, 29);
    // The last item of page 1: the watermark jumps over all three pages.
    acks.remove(&4).unwrap().ack();
    settle().await;
    assert_eq!(store.get(), Some(30));
    assert_eq!(control.committed(), Some(30));
    assert_eq!(store.commits(), 1, "one commit covers the three pages");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_ack_holds_the_watermark_and_stops_the_source() {
    let table = Table::new(100, 10);
    let store = MemoryCheckpointStore::new();
    let mut source = build(&table, &store, 2);
    let control = source.control();
    let mut items = take(&mut source, 20).await.into_iter();
    for (_, ack) in items.by_ref().take(10) {
        ack.ack(); // page 1 done
    }
    let (row, unacked) = items.next().unwrap();
    assert_eq!(row, 11);
    drop(unacked); // page 2 can never complete
    for (_, ack) in items {
        ack.ack();
    }
    // Page 3 was fetched when page 1 completed; then the drop is seen.
    let mut rest = Vec::new();
    let mut errors = Vec::new();
    while let Some(item) = source.next().await {
        match item {
            Ok((row, ack)) => {
                ack.ack();
                rest.push(row);
            }
            Err(err) => errors.push(err),
        }
    }
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_unacked());
    assert!(rest.len() <= 10, "at most the page fetched before the drop");
    control.finished().await;
    assert_eq!(store.get(), Some(10), "never past row 11");
    assert!(table.fetches().len() <= 3);
}

#[tokio::test(start_paused = true)]
async fn pause_stops_fetching_and_resume_goes_on() {
    let table = Table::new(100, 10);
    let store = MemoryCheckpointStore::new();
    let mut source = build(&table, &store, 1);
    let control = source.control();
    settle().await;
    control.pause();
    assert!(control.is_paused());
    // The page already fetched still flows.
    for (_, ack) in take(&mut source, 10).await {
        ack.ack();
    }
    settle().await;
    assert_eq!(table.fetches(), vec![0], "paused: no new page");
    assert_eq!(store.get(), Some(10), "but the acked page is committed");
    let mut next = tokio_test::task::spawn(source.next());
    assert!(
        next.poll().is_pending(),
        "the stream waits, it does not end"
    );
    control.resume();
    settle().await;
    assert!(next.is_woken());
    let Poll::Ready(Some(Ok((row, ack)))) = next.poll() else {
        panic!("an item after resume");
    };
    assert_eq!(row, 11);
    ack.ack();
    assert_eq!(table.fetches(), vec![0, 10]);
}

#[tokio::test(start_paused = true)]
async fn stop_yields_what_was_fetched_then_ends() {
    let table = Table::new(100, 10);
    let store = MemoryCheckpointStore::new();
    let mut source = build(&table, &store, 2);
    let control = source.control();
    let first = take(&mut source, 1).await;
    control.stop();
    assert!(control.is_stopped());
    let mut rows = vec![first[0].0];
    for (_, ack) in first {
        ack.ack();
    }
    while let Some(item) = source.next().await {
        let (row, ack) = item.unwrap();
        rows.push(row);
        ack.ack();
    }
    assert_eq!(rows, (1..=20).collect::<Vec<_>>(), "both fetched pages");
    control.finished().await;
    assert_eq!(store.get(), Some(20));
    assert_eq!(table.fetches(), vec![0, 10]);
}

#[tokio::test(start_paused = true)]
async fn stop_now_ends_at_once_and_a_restart_redoes_the_rest() {
    let table = Table::new(100, 10);
    let store = MemoryCheckpointStore::new();
    let mut source = build(&table, &store, 2);
    let control = source.control();
    let mut items = take(&mut source, 15).await.into_iter();
    control.stop_now();
    assert!(
        source.next().await.is_none(),
        "ends at once, rows 16..=20 dropped"
    );
    for (_, ack) in items.by_ref() {
        ack.ack();
    }
    control.finished().await;
    assert_eq!(store.get(), Some(10), "page 2 was not fully delivered");
    // Restart: rows 11..=20 are redone, nothing is skipped.
    let restarted = build(&table, &store, 2);
    assert_eq!(restarted.control().started_from(), None);
    let rows: Vec<u64> = restarted
        .take(10)
        .map(|item| {
            let (row, ack) = item.unwrap();
            ack.ack();
            row
        })
        .collect()
        .await;
    assert_eq!(rows, (11..=20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_stops_the_source() {
    let table = Table::new(100, 10);
    let store = MemoryCheckpointStore::new();
    let mut source = build(&table, &store, 2);
    let control = source.control();
    let items = take(&mut source, 10).await;
    drop(source);
    settle().await;
    assert!(!control.is_finished(), "yielded items can still be acked");
    for (_, ack) in items {
        ack.ack();
    }
    control.finished().await;
    assert_eq!(store.get(), Some(10));
    assert_eq!(table.fetches(), vec![0, 10]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_driver_ends_the_stream_and_releases_waiters() {
    let table = Table::new(100, 10);
    let (mut source, driver) = CursorSource::builder(0u64)
        .build_pair(table.fetcher())
        .unwrap();
    let control = source.control();
    let mut finished = tokio_test::task::spawn(control.finished());
    let mut next = tokio_test::task::spawn(source.next());
    assert!(next.poll().is_pending(), "nothing before the driver runs");
    drop(driver);
    assert!(next.is_woken());
    assert!(matches!(next.poll(), Poll::Ready(None)));
    assert!(finished.poll().is_ready());
    drop(next);
    assert!(source.next().await.is_none());
}

#[derive(Debug, PartialEq)]
struct Flaky;

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flaky")
    }
}

impl std::error::Error for Flaky {}

/// Fails the fetch of cursor 10 the first `failures` times.
fn flaky_fetcher(
    failures: usize,
) -> impl FnMut(u64) -> BoxFuture<'static, Result<Page<u64, u64>, Flaky>> + Send + 'static {
    let left = Arc::new(AtomicUsize::new(failures));
    move |after| {
        let left = Arc::clone(&left);
        Box::pin(async move {
            if after == 10 && left.fetch_sub(1, Ordering::Relaxed) > 0 {
                return Err(Flaky);
            }
            let rows: Vec<u64> = (after + 1..=30).take(10).collect();
            Ok(Page::keyset(rows, |row| *row))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_fetch_error_stops_the_source_by_default() {
    let store = MemoryCheckpointStore::new();
    let source = CursorSource::builder(0u64)
        .checkpoint(store.clone())
        .build(flaky_fetcher(1))
        .unwrap();
    let control = source.control();
    let items: Vec<_> = source.collect().await;
    assert_eq!(items.len(), 11);
    assert!(items[..10].iter().all(Result::is_ok));
    let err = items[10].as_ref().unwrap_err();
    assert_eq!(err.fetch_error(), Some(&Flaky));
    assert_eq!(err.to_string(), "fetching a page failed: flaky");
    for item in items.into_iter().take(10) {
        item.unwrap().1.ack();
    }
    control.finished().await;
    assert_eq!(store.get(), Some(10), "a restart fetches the failed page");
    assert_eq!(control.stats().fetch_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_error_pauses_and_resume_retries_the_same_cursor() {
    let source = CursorSource::builder(0u64)
        .on_fetch_error(OnFetchError::Pause)
        .build(flaky_fetcher(2))
        .unwrap();
    let control = source.control();
    let mut source = std::pin::pin!(source);
    let mut rows = Vec::new();
    let mut errors = 0;
    while let Some(item) = source.next().await {
        match item {
            Ok((row, ack)) => {
                ack.ack();
                rows.push(row);
            }
            Err(err) => {
                assert_eq!(err.fetch_error(), Some(&Flaky));
                errors += 1;
                assert!(control.is_paused(), "paused by the error");
                sleep(Duration::from_secs(1)).await; // back off
                control.resume();
            }
        }
    }
    assert_eq!(errors, 2);
    assert_eq!(
        rows,
        (1..=30).collect::<Vec<_>>(),
        "nothing lost or repeated"
    );
}

/// A store that fails its `n`-th commit, and loads what a memory store holds.
struct FailingStore {
    inner: MemoryCheckpointStore<u64>,
    fail_load: bool,
    fail_commit: usize,
    commits: AtomicUsize,
}

impl CheckpointStore<u64> for FailingStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<u64>, StoreError>> {
        if self.fail_load {
            return Box::pin(async { Err(StoreError::transient("no database")) });
        }
        self.inner.load()
    }

    fn commit(&self, cursor: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        if self.commits.fetch_add(1, Ordering::Relaxed) + 1 == self.fail_commit {
            return Box::pin(async { Err(StoreError::new("disk full")) });
        }
        self.inner.commit(cursor)
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_load_ends_the_stream_with_a_checkpoint_error() {
    let table = Table::new(100, 10);
    let store = FailingStore {
        inner: MemoryCheckpointStore::new(),
        fail_load: true,
        fail_commit: 0,
        commits: AtomicUsize::new(0),
    };
    let source = CursorSource::builder(0u64)
        .checkpoint(store)
        .build(table.fetcher())
        .unwrap();
    let control = source.control();
    let items: Vec<_> = source.collect().await;
    assert_eq!(items.len(), 1);
    let err = items.into_iter().next().unwrap().unwrap_err();
    assert!(err.is_checkpoint());
    let CursorError::Checkpoint(store_err) = err else {
        unreachable!()
    };
    assert!(store_err.is_transient());
    control.finished().await;
    assert!(
        table.fetches().is_empty(),
        "nothing fetched without a start"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_stops_the_source() {
    let table = Table::new(100, 10);
    let memory = MemoryCheckpointStore::new();
    let store = FailingStore {
        inner: memory.clone(),
        fail_load: false,
        fail_commit: 2,
        commits: AtomicUsize::new(0),
    };
    let source = CursorSource::builder(0u64)
        .checkpoint(store)
        .max_pages_in_flight(1)
        .build(table.fetcher())
        .unwrap();
    let control = source.control();
    let mut errors = Vec::new();
    let mut rows = 0;
    let mut source = std::pin::pin!(source);
    while let Some(item) = source.next().await {
        match item {
            Ok((_, ack)) => {
                rows += 1;
                ack.ack();
            }
            Err(err) => errors.push(err),
        }
    }
    control.finished().await;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_checkpoint());
    assert_eq!(rows, 20, "page 2 was fetched after commit 1; nothing after");
    assert_eq!(memory.get(), Some(10));
}

#[tokio::test(start_paused = true)]
async fn without_a_store_the_watermark_is_still_tracked() {
    let table = Table::new(20, 10);
    let source = CursorSource::builder(0u64).build(table.fetcher()).unwrap();
    let control = source.control();
    let n = source
        .par_map_unordered(4, |item| async move {
            let (row, ack) = item.unwrap();
            sleep(Duration::from_millis(25 - row)).await; // reverse order
            ack.ack();
        })
        .count()
        .await;
    control.finished().await;
    assert_eq!(n, 20);
    assert_eq!(control.committed(), Some(20));
    assert_eq!(control.stats().commits, 0, "no store, no commits");
}

#[tokio::test(start_paused = true)]
async fn resumes_from_the_stored_cursor() {
    let table = Table::new(30, 10);
    let store = MemoryCheckpointStore::with_cursor(20);
    let source = build(&table, &store, 2);
    let rows: Vec<u64> = source
        .map(|item| {
            let (row, ack) = item.unwrap();
            ack.ack();
            row
        })
        .collect()
        .await;
    assert_eq!(rows, (21..=30).collect::<Vec<_>>());
    assert_eq!(table.fetches(), vec![20, 30]);
}

// ===== crash and restart =====

/// What one run of the simulated consumer saw.
#[derive(Default)]
struct Log {
    /// Rows yielded to the consumer, per run.
    yielded: Vec<Vec<u64>>,
    /// Rows whose ack was called, over all runs.
    acked: BTreeSet<u64>,
    /// Rows whose effect happened (guarded by the idempotency store), with
    /// repeats.
    effects: Vec<u64>,
}

/// Runs the consumer — `par_map_unordered(8)` with per-row delays, so acks
/// come out of order — until `crash_after` (the driver task is aborted and
/// the pipeline dropped wherever it is) or to the end.
async fn run_consumer(
    table: &Table,
    store: &MemoryCheckpointStore<u64>,
    once: &Idempotency<u64>,
    log: &Arc<Mutex<Log>>,
    pages: usize,
    delays: &Arc<Vec<u64>>,
    crash_after: Option<Duration>,
) {
    let (source, driver) = CursorSource::builder(0u64)
        .checkpoint(store.clone())
        .max_pages_in_flight(pages)
        .build_pair(table.fetcher())
        .unwrap();
    let control = source.control();
    let driver = tokio::spawn(driver);
    log.lock().unwrap().yielded.push(Vec::new());
    let work = source
        .par_map_unordered(8, |item| {
            let log = Arc::clone(log);
            let once = once.clone();
            let delays = Arc::clone(delays);
            async move {
                let (row, ack) = item.expect("no fetch error");
                log.lock().unwrap().yielded.last_mut().unwrap().push(row);
                let delay = delays[row as usize % delays.len()];
                sleep(Duration::from_millis(delay)).await;
                let effect_log = Arc::clone(&log);
                once.run(row, || async move {
                    sleep(Duration::from_millis(delay / 2)).await;
                    // The effect and its record are not separated by an
                    // await point here (the memory store records at once), so
                    // a crash lands before or after both.
                    effect_log.lock().unwrap().effects.push(row);
                    Ok::<_, Infallible>(())
                })
                .await
                .expect("memory store");
                log.lock().unwrap().acked.insert(row);
                ack.ack();
            }
        })
        .for_each(|()| async {});
    match crash_after {
        Some(after) => {
            let _ = tokio::time::timeout(after, work).await;
            driver.abort();
            let _ = driver.await;
        }
        None => {
            work.await;
            control.finished().await;
            driver.await.unwrap();
        }
    }
}

/// Simulates `crashes`, then a run to the end, and checks every promise.
async fn crash_and_restart(
    rows: u64,
    page: u64,
    pages: usize,
    delays: Vec<u64>,
    crashes: Vec<u64>,
) {
    let table = Table::new(rows, page);
    let store = MemoryCheckpointStore::new();
    // The idempotency store and the checkpoint store stand for a database:
    // they survive the simulated crashes.
    let once = Idempotency::new(MemoryIdempotencyStore::new(
        100_000,
        Duration::from_secs(3600),
    ));
    let log = Arc::new(Mutex::new(Log::default()));
    let delays = Arc::new(delays);
    for crash in crashes.iter().copied().map(Some).chain([None]) {
        run_consumer(
            &table,
            &store,
            &once,
            &log,
            pages,
            &delays,
            crash.map(Duration::from_millis),
        )
        .await;
        let log = log.lock().unwrap();
        // The checkpoint never passes an unacknowledged row.
        if let Some(committed) = store.get() {
            assert!(
                (1..=committed).all(|row| log.acked.contains(&row)),
                "committed {committed} past an unacknowledged row"
            );
        }
    }
    let log = log.lock().unwrap();
    let all: BTreeSet<u64> = (1..=rows).collect();
    // At least once, none skipped: every row was acknowledged.
    assert_eq!(log.acked, all);
    // Exactly-once effects through the idempotency store.
    let mut effects = log.effects.clone();
    effects.sort_unstable();
    assert_eq!(effects, all.iter().copied().collect::<Vec<_>>());
    // Bounded redo: a run yields again at most `pages` pages of rows that an
    // earlier run had already acknowledged.
    let mut acked_before: BTreeSet<u64> = BTreeSet::new();
    for run in &log.yielded {
        let redone = run.iter().filter(|row| acked_before.contains(row)).count();
        assert!(
            redone <= pages * page as usize,
            "redid {redone} rows, more than {pages} pages of {page}"
        );
        // Each run starts right after the checkpoint: in order, no gaps.
        for pair in run.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "a run yields rows in order");
        }
        acked_before.extend(run.iter().filter(|row| log.acked.contains(row)));
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_stream_resumes_with_nothing_skipped_and_effects_once() {
    let delays: Vec<u64> = (0..17).map(|i| (i * 7) % 13 + 1).collect();
    crash_and_restart(200, 10, 3, delays, vec![37, 5, 90, 61]).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn crash_restart_property(
        rows in 1u64..120,
        page in 1u64..15,
        pages in 1usize..4,
        delays in proptest::collection::vec(0u64..20, 1..16),
        crashes in proptest::collection::vec(0u64..80, 0..5),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(crash_and_restart(rows, page, pages, delays, crashes));
    }
}
