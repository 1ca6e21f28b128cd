//! `flowgate::batch::KeyedBatcher`: a batch never mixes keys, each key's
//! triggers are its own, `one_flush_per_key` keeps one batch of a key in
//! flight and a key's batches in order, `max_open_keys` is never exceeded
//! and loses or reorders nothing, and every submitter's outcome resolves.
//!
//! Everything runs under paused tokio time: instants are exact, and a hang
//! shows up as a timeout of a virtual day, not as a stuck test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::batch::{FlushError, KeyedBatcher, SubmitAndWaitError, TrySubmitError};
use futures_util::FutureExt;
use proptest::prelude::*;
use tokio::time::Instant;

/// A year, for "never" under paused time.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Lets the spawned worker run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

type Log<K, T> = Arc<Mutex<Vec<(Instant, K, Vec<T>)>>>;

/// A flush function that logs `(when, key, items)` and succeeds.
fn logging<K, T>(
    log: &Log<K, T>,
) -> impl FnMut(K, Vec<T>) -> std::future::Ready<Result<(), String>> + use<K, T>
where
    K: Send + 'static,
    T: Clone + Send + 'static,
{
    let log = Arc::clone(log);
    move |key, items| {
        log.lock().unwrap().push((Instant::now(), key, items));
        std::future::ready(Ok(()))
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ===== per-key triggers =====

#[tokio::test(start_paused = true)]
async fn a_key_reaching_max_items_flushes_only_that_key() {
    let log: Log<char, u32> = Arc::default();
    let batcher = KeyedBatcher::builder()
        .max_items(3)
        .max_delay(YEAR)
        .build(logging(&log))
        .unwrap();
    let b = batcher.submit('b', 100).await.unwrap();
    let mut a = Vec::new();
    for i in 0..3 {
        a.push(batcher.submit('a', i).await.unwrap());
    }
    settle().await;
    {
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 1, "only 'a' is full");
        assert_eq!((log[0].1, log[0].2.clone()), ('a', vec![0, 1, 2]));
    }
    for flushed in a {
        flushed.await.unwrap();
    }
    let stats = batcher.stats();
    assert_eq!((stats.open_keys, stats.pending, stats.batches), (1, 1, 1));
    let mut b = Box::pin(b);
    assert!((&mut b).now_or_never().is_none(), "'b' is still open");
    batcher.flush().await;
    b.await.unwrap();
    assert_eq!(log.lock().unwrap()[1].1, 'b');
}

#[tokio::test(start_paused = true)]
async fn each_key_delay_counts_from_its_own_first_item() {
    let log: Log<&str, u32> = Arc::default();
    let batcher = KeyedBatcher::builder()
        .max_delay(ms(10))
        .build(logging(&log))
        .unwrap();
    let start = Instant::now();
    let a1 = batcher.submit("a", 1).await.unwrap();
    tokio::time::sleep(ms(3)).await;
    let b1 = batcher.submit("b", 2).await.unwrap();
    tokio::time::sleep(ms(4)).await;
    // A later item of "a" does not move its deadline.
    let a2 = batcher.submit("a", 3).await.unwrap();
    a1.await.unwrap();
    a2.await.unwrap();
    b1.await.unwrap();
    // "a" again: a new batch, with a deadline of its own.
    tokio::time::sleep(ms(5)).await;
    let opened = Instant::now();
    batcher.submit_and_wait("a", 4).await.unwrap();
    assert_eq!(opened - start, ms(18));
    let log = log.lock().unwrap();
    let got: Vec<_> = log
        .iter()
        .map(|(at, key, items)| (*at - start, *key, items.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (ms(10), "a", vec![1, 3]),
            (ms(13), "b", vec![2]),
            (ms(28), "a", vec![4]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn max_bytes_bounds_each_key_on_its_own() {
    let log: Log<char, String> = Arc::default();
    let batcher = KeyedBatcher::builder()
        .max_bytes(10, |row: &String| row.len())
        .max_delay(YEAR)
        .build(logging(&log))
        .unwrap();
    let mut pending = Vec::new();
    // 6 bytes of 'a' and 6 of 'b': neither full, though together 12.
    pending.push(batcher.submit('a', "aaaaaa".into()).await.unwrap());
    pending.push(batcher.submit('b', "bbbbbb".into()).await.unwrap());
    settle().await;
    assert!(log.lock().unwrap().is_empty());
    // 6 more of 'a' would overshoot: 'a' flushes its first six, the new
    // item starts its next batch.
    pending.push(batcher.submit('a', "AAAAAA".into()).await.unwrap());
    settle().await;
    assert_eq!(log.lock().unwrap().len(), 1);
    // 4 more of 'b' reach exactly 10: full.
    pending.push(batcher.submit('b', "BBBB".into()).await.unwrap());
    settle().await;
    batcher.close().await;
    for flushed in pending {
        flushed.await.unwrap();
    }
    let log = log.lock().unwrap();
    let got: Vec<_> = log.iter().map(|(_, k, v)| (*k, v.clone())).collect();
    assert_eq!(
        got,
        [
            ('a', vec!["aaaaaa".to_owned()]),
            ('b', vec!["bbbbbb".to_owned(), "BBBB".to_owned()]),
            ('a', vec!["AAAAAA".to_owned()]),
        ]
    );
}

// ===== one flush per key =====

/// A flush function that sleeps `items[0]` ms and logs when each flush
/// started and finished.
type Spans = Arc<Mutex<Vec<(char, Vec<u64>, Duration, Duration)>>>;

fn sleeping(
    spans: &Spans,
    start: Instant,
) -> impl FnMut(char, Vec<u64>) -> futures_util::future::BoxFuture<'static, Result<(), String>> + use<>
{
    let spans = Arc::clone(spans);
    move |key, items| {
        let spans = Arc::clone(&spans);
        Box::pin(async move {
            let began = start.elapsed();
            tokio::time::sleep(ms(items[0])).await;
            spans
                .lock()
                .unwrap()
                .push((key, items, began, start.elapsed()));
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn one_flush_per_key_holds_a_keys_next_batch_while_others_flush() {
    let spans: Spans = Arc::default();
    let start = Instant::now();
    let batcher = KeyedBatcher::builder()
        .max_items(2)
        .max_delay(ms(5))
        .flush_concurrency(4)
        .one_flush_per_key(true)
        .build(sleeping(&spans, start))
        .unwrap();
    let mut pending = Vec::new();
    // 'a' fills at t=0 and flushes for 30 ms.
    pending.push(batcher.submit('a', 30).await.unwrap());
    pending.push(batcher.submit('a', 1).await.unwrap());
    settle().await;
    // Meanwhile 'a' keeps accumulating, bounded by its triggers: a full
    // batch at once, then a batch sealed by its delay at t=15.
    tokio::time::sleep(ms(10)).await;
    for item in [2, 3, 4] {
        pending.push(batcher.submit('a', item).await.unwrap());
    }
    // 'b' flushes while 'a' waits.
    pending.push(batcher.submit('b', 7).await.unwrap());
    for flushed in pending {
        flushed.await.unwrap();
    }
    batcher.close().await;
    let spans = spans.lock().unwrap();
    assert_eq!(
        *spans,
        [
            ('b', vec![7], ms(15), ms(22)),
            ('a', vec![30, 1], ms(0), ms(30)),
            ('a', vec![2, 3], ms(30), ms(32)),
            ('a', vec![4], ms(32), ms(36)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn without_one_flush_per_key_batches_of_a_key_overlap() {
    let spans: Spans = Arc::default();
    let start = Instant::now();
    let batcher = KeyedBatcher::builder()
        .max_items(1)
        .flush_concurrency(4)
        .build(sleeping(&spans, start))
        .unwrap();
    let a = batcher.submit('a', 30).await.unwrap();
    let b = batcher.submit('a', 10).await.unwrap();
    batcher.close().await;
    a.await.unwrap();
    b.await.unwrap();
    let spans = spans.lock().unwrap();
    assert_eq!(
        *spans,
        [
            ('a', vec![10], ms(0), ms(10)),
            ('a', vec![30], ms(0), ms(30)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn one_flush_per_key_resolves_a_keys_items_in_order() {
    let batcher = KeyedBatcher::builder()
        .max_items(1)
        .flush_concurrency(8)
        .one_flush_per_key(true)
        .build(|_: u8, items: Vec<u64>| async move {
            // Later items flush faster: without the lanes they would
            // resolve first.
            tokio::time::sleep(ms(100 - items[0])).await;
            Ok::<_, String>(items)
        })
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20u64 {
        let order = Arc::clone(&order);
        batcher
            .submit_with((i % 2) as u8, i, move |out| {
                order.lock().unwrap().push(out.unwrap());
            })
            .await
            .unwrap();
    }
    batcher.close().await;
    let order = order.lock().unwrap();
    for key in 0..2 {
        let of_key: Vec<u64> = order.iter().copied().filter(|i| i % 2 == key).collect();
        let mut sorted = of_key.clone();
        sorted.sort_unstable();
        assert_eq!(of_key, sorted, "key {key} resolved in submission order");
        assert_eq!(of_key.len(), 10);
    }
}

// ===== max_open_keys =====

#[tokio::test(start_paused = true)]
async fn max_open_keys_flushes_the_oldest_batch_early() {
    let log: Log<u32, u32> = Arc::default();
    let batcher = KeyedBatcher::builder()
        .max_delay(YEAR)
        .max_open_keys(3)
        .build(logging(&log))
        .unwrap();
    let mut pending = Vec::new();
    for (key, item) in [
        (1, 10),
        (2, 20),
        (3, 30),
        (1, 11),
        (4, 40),
        (5, 50),
        (2, 21),
    ] {
        pending.push(batcher.submit(key, item).await.unwrap());
        assert!(batcher.stats().open_keys <= 3);
    }
    settle().await;
    {
        // 4 evicted 1 (the oldest, although it had a later item), 5 evicted
        // 2, and 2 came back and evicted 3.
        let log = log.lock().unwrap();
        let got: Vec<_> = log.iter().map(|(_, k, v)| (*k, v.clone())).collect();
        assert_eq!(got, [(1, vec![10, 11]), (2, vec![20]), (3, vec![30])]);
    }
    let stats = batcher.stats();
    assert_eq!((stats.open_keys, stats.early_batches), (3, 3));
    batcher.close().await;
    for flushed in pending {
        flushed.await.unwrap();
    }
    let log = log.lock().unwrap();
    let got: Vec<_> = log
        .iter()
        .skip(3)
        .map(|(_, k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(got, [(4, vec![40]), (5, vec![50]), (2, vec![21])]);
    assert_eq!(batcher.stats().early_batches, 3, "close is not early");
}

#[tokio::test(start_paused = true)]
async fn max_open_keys_one_batches_runs_of_a_key() {
    let log: Log<char, u32> = Arc::default();
    let batcher = KeyedBatcher::builder()
        .max_delay(YEAR)
        .max_open_keys(1)
        .build(logging(&log))
        .unwrap();
    for (i, key) in "aaabbaaac".chars().enumerate() {
        drop(batcher.submit(key, i as u32).await.unwrap());
    }
    batcher.close().await;
    let log = log.lock().unwrap();
    let got: Vec<_> = log.iter().map(|(_, k, v)| (*k, v.clone())).collect();
    assert_eq!(
        got,
        [
            ('a', vec![0, 1, 2]),
            ('b', vec![3, 4]),
            ('a', vec![5, 6, 7]),
            ('c', vec![8])
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_batcher_of_open_keys_flushes_the_oldest_instead_of_waiting() {
    // Two open keys hold all the room, neither full, with no delay to flush
    // them: a third submitter must not wait forever.
    let log: Log<char, u32> = Arc::default();
    let batcher = KeyedBatcher::builder()
        .max_items(2)
        .capacity(2)
        .max_delay(Duration::MAX)
        .build(logging(&log))
        .unwrap();
    let a = batcher.submit('a', 1).await.unwrap();
    let b = batcher.submit('b', 2).await.unwrap();
    assert!(matches!(
        batcher.try_submit('c', 3),
        Err(TrySubmitError::Full(('c', 3)))
    ));
    // The refusal flushed the oldest open batch, so room comes back.
    a.await.unwrap();
    let c = tokio::time::timeout(ms(1), batcher.submit('c', 3))
        .await
        .expect("room came back without any delay passing")
        .unwrap();
    // Full again: a waiting submitter flushes 'b', the oldest now.
    let d = tokio::time::timeout(ms(1), batcher.submit('d', 4))
        .await
        .expect("a waiting submitter is not stuck behind open batches")
        .unwrap();
    b.await.unwrap();
    assert_eq!(batcher.stats().early_batches, 2);
    batcher.close().await;
    c.await.unwrap();
    d.await.unwrap();
    let log = log.lock().unwrap();
    let got: Vec<_> = log.iter().map(|(_, k, v)| (*k, v.clone())).collect();
    assert_eq!(
        got,
        [
            ('a', vec![1]),
            ('b', vec![2]),
            ('c', vec![3]),
            ('d', vec![4])
        ]
    );
}

// ===== outcomes =====

#[tokio::test(start_paused = true)]
async fn errors_and_panics_fail_only_their_batch() {
    let batcher = KeyedBatcher::builder()
        .max_delay(ms(1))
        .flush_concurrency(3)
        .build(|key: &str, items: Vec<u32>| async move {
            match key {
                "bad" => Err(format!("{} rows refused", items.len())),
                "boom" => panic!("boom"),
                _ => Ok(items.iter().map(|i| i * 10).collect::<Vec<_>>()),
            }
        })
        .unwrap();
    let (good, bad1, bad2, boom, good2) = tokio::join!(
        batcher.submit_and_wait("good", 1),
        batcher.submit_and_wait("bad", 2),
        batcher.submit_and_wait("bad", 3),
        batcher.submit_and_wait("boom", 4),
        batcher.submit_and_wait("good", 5),
    );
    assert_eq!((good.unwrap(), good2.unwrap()), (10, 50));
    for bad in [bad1, bad2] {
        match bad {
            Err(SubmitAndWaitError::Flush(FlushError::Failed(err))) => {
                assert_eq!(*err, "2 rows refused");
            }
            other => panic!("{other:?}"),
        }
    }
    match boom {
        Err(SubmitAndWaitError::Flush(FlushError::Panicked(msg))) => assert_eq!(&*msg, "boom"),
        other => panic!("{other:?}"),
    }
    // The batcher goes on, for every key.
    assert!(batcher.submit_and_wait("good", 6).await.is_ok());
    let stats = batcher.stats();
    assert_eq!(
        (stats.failed, stats.failed_batches, stats.flushed),
        (3, 2, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_flush_function_panicking_when_called_fails_that_batch() {
    let batcher = KeyedBatcher::builder()
        .max_items(1)
        .build(|key: u8, _: Vec<u32>| {
            assert_ne!(key, 0, "key zero");
            async { Ok::<(), String>(()) }
        })
        .unwrap();
    let err = batcher.submit(0, 1).await.unwrap().await.unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    batcher.submit(1, 2).await.unwrap().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn close_and_dropping_every_handle_flush_every_key() {
    for close in [true, false] {
        let log: Log<u32, u32> = Arc::default();
        let batcher = KeyedBatcher::builder()
            .max_delay(YEAR)
            .build(logging(&log))
            .unwrap();
        let mut pending = Vec::new();
        for i in 0..30u32 {
            pending.push(batcher.submit(i % 7, i).await.unwrap());
        }
        if close {
            batcher.close().await;
        } else {
            drop(batcher);
        }
        for flushed in pending {
            assert_eq!(flushed.await, Ok(()));
        }
        assert_eq!(log.lock().unwrap().len(), 7);
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_worker_resolves_every_item_as_closed() {
    // Open, ready and parked batches, with flushed futures, callbacks and
    // `submit_and_wait` waiters, and a flush cut short.
    let (batcher, worker) = KeyedBatcher::builder()
        .max_items(2)
        .max_delay(YEAR)
        .one_flush_per_key(true)
        .build_pair(|_: char, _: Vec<u32>| async {
            tokio::time::sleep(YEAR).await;
            Ok::<(), String>(())
        })
        .unwrap();
    let worker = tokio::spawn(worker);
    let batcher = &batcher;
    let callbacks = Arc::new(AtomicUsize::new(0));
    let mut flushed = Vec::new();
    for i in 0..2 {
        // 'a' [0, 1] starts flushing (forever).
        flushed.push(batcher.submit('a', i).await.unwrap());
    }
    settle().await;
    for i in 2..4 {
        // 'a' [2, 3] is parked behind it.
        let callbacks = Arc::clone(&callbacks);
        batcher
            .submit_with('a', i, move |out| {
                assert_eq!(out, Err(FlushError::Closed));
                callbacks.fetch_add(1, Ordering::SeqCst);
            })
            .await
            .unwrap();
    }
    // 'b' open, with a waiter; 'a' [4] open, with a waiter.
    let waiters = async {
        tokio::join!(
            batcher.submit_and_wait('b', 5),
            batcher.submit_and_wait('a', 6)
        )
    };
    let abort = async {
        settle().await;
        let stats = batcher.stats();
        assert_eq!((stats.submitted, stats.open_keys), (6, 2));
        worker.abort();
    };
    let ((b, a), ()) = tokio::join!(waiters, abort);
    assert!(matches!(
        b,
        Err(SubmitAndWaitError::Flush(FlushError::Closed))
    ));
    assert!(matches!(
        a,
        Err(SubmitAndWaitError::Flush(FlushError::Closed))
    ));
    for flushed in flushed {
        assert_eq!(flushed.await, Err(FlushError::Closed));
    }
    assert_eq!(callbacks.load(Ordering::SeqCst), 2);
    let stats = batcher.stats();
    assert_eq!((stats.failed, stats.pending), (6, 0));
    // Closed: the key and the item come back.
    assert_eq!(
        batcher.submit('z', 9).await.unwrap_err().into_inner(),
        ('z', 9)
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_while_its_batch_is_parked_leaves_the_rest_resolving() {
    let batcher = KeyedBatcher::builder()
        .max_items(2)
        .one_flush_per_key(true)
        .build(|_: char, items: Vec<u32>| async move {
            tokio::time::sleep(ms(10)).await;
            Ok::<_, String>(items)
        })
        .unwrap();
    let first = batcher.submit('a', 0).await.unwrap();
    let second = batcher.submit('a', 1).await.unwrap();
    settle().await; // [0, 1] flushing
    let mut dropped = Box::pin(batcher.submit_and_wait('a', 2));
    assert!((&mut dropped).now_or_never().is_none());
    let mut kept = Box::pin(batcher.submit_and_wait('a', 3));
    assert!((&mut kept).now_or_never().is_none()); // [2, 3] sealed, parked
    assert_eq!(batcher.stats().open_keys, 0);
    // Its table is with the sealed batches': the waiter leaves it there.
    drop(dropped);
    // Polled by this task now, not the no-op waker's: the waker is
    // replaced there too.
    assert_eq!(kept.await.unwrap(), 3);
    assert_eq!((first.await, second.await), (Ok(0), Ok(1)));
    assert_eq!(batcher.stats().flushed, 4, "the dropped item was flushed");
}

#[tokio::test(start_paused = true)]
async fn flush_waits_for_every_key_and_reserve_permits_work() {
    let log: Log<u8, u32> = Arc::default();
    let batcher = KeyedBatcher::builder()
        .max_delay(YEAR)
        .max_items(10)
        .capacity(10)
        .build(logging(&log))
        .unwrap();
    let permit = batcher.reserve().await.unwrap();
    let via_permit = permit.submit(9, 99).unwrap();
    let mut pending = vec![via_permit];
    for i in 0..5 {
        pending.push(batcher.submit(i, u32::from(i)).await.unwrap());
    }
    batcher.flush().await;
    for flushed in pending {
        flushed.now_or_never().expect("resolved by flush").unwrap();
    }
    assert_eq!(log.lock().unwrap().len(), 6);
    batcher.close().await;
    assert!(batcher.reserve().await.is_err());
}

// ===== properties =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fine,
    Fails,
    Panics,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    /// The key it is submitted under.
    key: u8,
    submitter: usize,
    /// Position in its submitter's sequence.
    n: usize,
    id: u32,
    kind: Kind,
    /// How many ms the flush sleeps (the longest of the batch), to
    /// interleave concurrent flushes.
    sleep: u8,
    /// Weight for `max_bytes`.
    weight: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Handles,
    Callbacks,
    Fused,
    Try,
}

#[derive(Debug, Clone)]
struct Submitter {
    /// (key, kind, sleep, weight, gap in ms before submitting)
    items: Vec<(u8, Kind, u8, u8, u8)>,
    mode: Mode,
    flush_after: Option<usize>,
}

#[derive(Debug, Clone)]
struct Config {
    max_items: usize,
    extra_capacity: usize,
    concurrency: usize,
    delay_ms: u64,
    max_bytes: Option<usize>,
    max_open_keys: Option<usize>,
    one_flush_per_key: bool,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![10 => Just(Kind::Fine), 1 => Just(Kind::Fails), 1 => Just(Kind::Panics)]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Handles),
        Just(Mode::Callbacks),
        Just(Mode::Fused),
        Just(Mode::Try)
    ]
}

fn submitter(keys: u8) -> impl Strategy<Value = Submitter> {
    (
        prop::collection::vec((0..keys, kind(), 0u8..8, 1u8..5, 0u8..4), 0..30),
        mode(),
        prop::option::of(0usize..30),
    )
        .prop_map(|(items, mode, flush_after)| Submitter {
            items,
            mode,
            flush_after,
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..6,
        0usize..6,
        1usize..5,
        1u64..30,
        prop::option::of(1usize..12),
        prop::option::of(1usize..5),
        any::<bool>(),
    )
        .prop_map(
            |(
                max_items,
                extra_capacity,
                concurrency,
                delay_ms,
                max_bytes,
                max_open_keys,
                one_flush_per_key,
            )| Config {
                max_items,
                extra_capacity,
                concurrency,
                delay_ms,
                max_bytes,
                max_open_keys,
                one_flush_per_key,
            },
        )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Ok(u32),
    Failed,
    Panicked,
}

fn seen(result: Result<u32, FlushError<String>>) -> Seen {
    match result {
        Ok(out) => Seen::Ok(out),
        Err(FlushError::Failed(_)) => Seen::Failed,
        Err(FlushError::Panicked(_)) => Seen::Panicked,
        Err(other) => panic!("unexpected outcome {other:?}"),
    }
}

/// What the instrumented flush function saw.
#[derive(Default)]
struct Observed {
    /// Every call, in call order.
    calls: Vec<(u8, Vec<Item>)>,
    /// Batches of each key flushing right now.
    in_flight: HashMap<u8, usize>,
    /// Flushes running right now, over all keys.
    running: usize,
    max_running: usize,
    /// A key seen with two batches flushing at once.
    overlapped: Option<u8>,
    /// The most open keys seen by a flush or a submitter.
    max_open_keys: usize,
}

/// Decrements the in-flight counts when a flush ends (or is dropped after a
/// panic).
struct Flying {
    observed: Arc<Mutex<Observed>>,
    key: u8,
}

impl Drop for Flying {
    fn drop(&mut self) {
        let mut observed = self.observed.lock().unwrap();
        *observed.in_flight.get_mut(&self.key).unwrap() -= 1;
        observed.running -= 1;
    }
}

fn run(config: Config, submitters: Vec<Submitter>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let observed: Arc<Mutex<Observed>> = Arc::default();
    let outcomes: Arc<Mutex<HashMap<u32, Vec<Seen>>>> = Arc::default();
    let task_observed = Arc::clone(&observed);
    let task_outcomes = Arc::clone(&outcomes);
    let cfg = config.clone();
    let finished = runtime.block_on(async move {
        tokio::time::timeout(Duration::from_secs(24 * 3600), async move {
            let flush_observed = Arc::clone(&task_observed);
            let mut builder = KeyedBatcher::builder()
                .max_items(cfg.max_items)
                .capacity(cfg.max_items + cfg.extra_capacity)
                .flush_concurrency(cfg.concurrency)
                .max_delay(Duration::from_millis(cfg.delay_ms))
                .one_flush_per_key(cfg.one_flush_per_key);
            if let Some(max_bytes) = cfg.max_bytes {
                builder = builder.max_bytes(max_bytes, |item: &Item| usize::from(item.weight));
            }
            if let Some(max_open_keys) = cfg.max_open_keys {
                builder = builder.max_open_keys(max_open_keys);
            }
            let batcher = builder
                .build(move |key: u8, items: Vec<Item>| {
                    let flying = {
                        let mut observed = flush_observed.lock().unwrap();
                        observed.calls.push((key, items.clone()));
                        let in_flight = observed.in_flight.entry(key).or_default();
                        *in_flight += 1;
                        if *in_flight > 1 && observed.overlapped.is_none() {
                            observed.overlapped = Some(key);
                        }
                        observed.running += 1;
                        observed.max_running = observed.max_running.max(observed.running);
                        Flying {
                            observed: Arc::clone(&flush_observed),
                            key,
                        }
                    };
                    async move {
                        let _flying = flying;
                        let sleep = items.iter().map(|i| i.sleep).max().unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(u64::from(sleep))).await;
                        if items.iter().any(|i| i.kind == Kind::Panics) {
                            panic!("flush panicked");
                        }
                        if items.iter().any(|i| i.kind == Kind::Fails) {
                            return Err("flush failed".to_owned());
                        }
                        Ok(items.iter().map(|i| i.id * 2).collect::<Vec<_>>())
                    }
                })
                .unwrap();

            let mut next_id = 0u32;
            let mut tasks = Vec::new();
            for (s, submitter) in submitters.into_iter().enumerate() {
                let items: Vec<(u8, u8, Item)> = submitter
                    .items
                    .iter()
                    .enumerate()
                    .map(|(n, &(key, kind, sleep, weight, gap))| {
                        next_id += 1;
                        let item = Item {
                            key,
                            submitter: s,
                            n,
                            id: next_id,
                            kind,
                            sleep,
                            weight,
                        };
                        (key, gap, item)
                    })
                    .collect();
                let batcher = batcher.clone();
                let outcomes = Arc::clone(&task_outcomes);
                let observed = Arc::clone(&task_observed);
                tasks.push(tokio::spawn(async move {
                    let mut pending = Vec::new();
                    for (n, (key, gap, item)) in items.into_iter().enumerate() {
                        if gap > 0 {
                            tokio::time::sleep(Duration::from_millis(u64::from(gap))).await;
                        }
                        if submitter.flush_after == Some(n) {
                            batcher.flush().await;
                        }
                        let record = Arc::clone(&outcomes);
                        // Each item is accepted before the next one is
                        // submitted: the submitter's order is defined.
                        match submitter.mode {
                            Mode::Handles => {
                                pending.push((item.id, batcher.submit(key, item).await.unwrap()));
                            }
                            Mode::Try => {
                                let mut back = (key, item);
                                let flushed = loop {
                                    match batcher.try_submit(back.0, back.1) {
                                        Ok(flushed) => break flushed,
                                        Err(TrySubmitError::Full(again)) => {
                                            back = again;
                                            // Not a busy loop: paused time
                                            // must be able to advance.
                                            tokio::time::sleep(Duration::from_millis(1)).await;
                                        }
                                        Err(TrySubmitError::Closed(_)) => panic!("closed"),
                                    }
                                };
                                pending.push((item.id, flushed));
                            }
                            Mode::Callbacks => {
                                batcher
                                    .submit_with(key, item, move |result| {
                                        record
                                            .lock()
                                            .unwrap()
                                            .entry(item.id)
                                            .or_default()
                                            .push(seen(result));
                                    })
                                    .await
                                    .unwrap();
                            }
                            Mode::Fused => {
                                let result = match batcher.submit_and_wait(key, item).await {
                                    Ok(out) => Seen::Ok(out),
                                    Err(SubmitAndWaitError::Flush(err)) => seen(Err(err)),
                                    Err(SubmitAndWaitError::Closed(_)) => panic!("refused"),
                                };
                                record
                                    .lock()
                                    .unwrap()
                                    .entry(item.id)
                                    .or_default()
                                    .push(result);
                            }
                        }
                        let open = batcher.stats().open_keys;
                        let mut observed = observed.lock().unwrap();
                        observed.max_open_keys = observed.max_open_keys.max(open);
                    }
                    for (id, flushed) in pending {
                        let result = seen(flushed.await);
                        outcomes.lock().unwrap().entry(id).or_default().push(result);
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            batcher.close().await;
            let stats = batcher.stats();
            assert_eq!(stats.submitted, u64::from(next_id));
            assert_eq!(stats.pending, 0);
            assert_eq!(stats.open_keys, 0);
            next_id
        })
        .await
    });
    let Ok(total) = finished else {
        return Err(TestCaseError::fail("a flushed or a submit never resolved"));
    };

    let observed = observed.lock().unwrap();
    let outcomes = outcomes.lock().unwrap();
    let mut flush_count: HashMap<u32, usize> = HashMap::new();
    // Per (key, submitter), the positions flushed so far, in call order.
    let mut last: HashMap<(u8, usize), usize> = HashMap::new();
    for (key, batch) in &observed.calls {
        prop_assert!(!batch.is_empty() && batch.len() <= config.max_items);
        if let Some(max_bytes) = config.max_bytes {
            let bytes: usize = batch.iter().map(|i| usize::from(i.weight)).sum();
            prop_assert!(batch.len() == 1 || bytes <= max_bytes, "{bytes} bytes");
        }
        let expected = if batch.iter().any(|i| i.kind == Kind::Panics) {
            None
        } else if batch.iter().any(|i| i.kind == Kind::Fails) {
            Some(Seen::Failed)
        } else {
            Some(Seen::Ok(0))
        };
        for item in batch {
            // 1. A batch never mixes keys: each item was submitted under
            //    the batch's key.
            prop_assert_eq!(item.key, *key, "item {} in a batch of another key", item.id);
            // 3. Per key, a submitter's items are flushed in its order.
            if let Some(&prev) = last.get(&(*key, item.submitter)) {
                prop_assert!(prev < item.n, "key {} reordered", key);
            }
            last.insert((*key, item.submitter), item.n);
            *flush_count.entry(item.id).or_default() += 1;
            // 5. Every outcome resolves once, with the batch's outcome.
            let got = outcomes
                .get(&item.id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            prop_assert_eq!(
                got.len(),
                1,
                "item {} resolved {} times",
                item.id,
                got.len()
            );
            let want = match expected {
                None => Seen::Panicked,
                Some(Seen::Ok(_)) => Seen::Ok(item.id * 2),
                Some(ref other) => other.clone(),
            };
            prop_assert_eq!(&got[0], &want);
        }
    }
    prop_assert_eq!(outcomes.len(), total as usize, "every item resolved");
    prop_assert_eq!(flush_count.len(), total as usize, "every item was flushed");
    prop_assert!(flush_count.values().all(|&n| n == 1), "flushed once");
    prop_assert!(observed.max_running <= config.concurrency);
    // 3. One batch of a key in flight at a time.
    if config.one_flush_per_key {
        prop_assert_eq!(
            observed.overlapped,
            None,
            "two batches of a key flushed at once"
        );
    }
    // 4. The open-keys bound.
    if let Some(max_open_keys) = config.max_open_keys {
        prop_assert!(observed.max_open_keys <= max_open_keys);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Keys shared by concurrent submitters.
    #[test]
    fn batches_never_mix_keys_and_every_item_resolves_once(
        config in config(),
        submitters in prop::collection::vec(submitter(6), 1..5),
    ) {
        run(config, submitters)?;
    }

    /// With one flush per key, under concurrency, and few keys so that a
    /// key's batches queue up behind each other.
    #[test]
    fn one_flush_per_key_keeps_one_batch_of_a_key_in_flight_and_in_order(
        mut config in config(),
        submitters in prop::collection::vec(submitter(3), 1..5),
    ) {
        config.one_flush_per_key = true;
        config.concurrency = config.concurrency.max(2);
        run(config, submitters)?;
    }

    /// The open-keys bound with many keys.
    #[test]
    fn open_keys_never_exceed_the_bound_and_nothing_is_lost(
        mut config in config(),
        bound in 1usize..4,
        submitters in prop::collection::vec(submitter(12), 1..5),
    ) {
        config.max_open_keys = Some(bound);
        run(config, submitters)?;
    }
}
