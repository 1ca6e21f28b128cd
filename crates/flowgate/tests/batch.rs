//! Behaviour of `flowgate::batch`. Everything timed runs on paused tokio time.
#![allow(clippy::type_complexity)]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use flowgate::batch::{
    BatchStats, Batcher, BuildError, FlushError, Flushed, Permit, SubmitAndWait,
    SubmitAndWaitError, SubmitError, TrySubmitError, Worker,
};
use futures_util::task::noop_waker_ref;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::{Instant, advance};

type Log<T> = Arc<Mutex<Vec<Vec<T>>>>;
type Ready = std::future::Ready<Result<(), String>>;
type BoxFlush = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A flush function that records every batch and succeeds.
fn recording<T: Send + 'static>() -> (Log<T>, impl FnMut(Vec<T>) -> Ready + Send + 'static) {
    let log: Log<T> = Arc::default();
    let sink = Arc::clone(&log);
    (log, move |items| {
        sink.lock().unwrap().push(items);
        std::future::ready(Ok(()))
    })
}

fn batches<T: Clone>(log: &Log<T>) -> Vec<Vec<T>> {
    log.lock().unwrap().clone()
}

/// Polls `future` once without a runtime waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(future).poll(&mut Context::from_waker(noop_waker_ref()))
}

/// Lets spawned tasks (the worker) run until they are all idle.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

// ===== flush triggers =====

#[tokio::test(start_paused = true)]
async fn flushes_when_max_items_is_reached() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder()
        .max_items(3)
        .max_delay(Duration::from_secs(60))
        .build(flush)
        .unwrap();
    let start = Instant::now();
    let a = batcher.submit(1).await.unwrap();
    let b = batcher.submit(2).await.unwrap();
    settle().await;
    assert!(batches(&log).is_empty(), "two items do not fill the batch");
    let c = batcher.submit(3).await.unwrap();
    assert_eq!(a.await, Ok(()));
    assert_eq!(b.await, Ok(()));
    assert_eq!(c.await, Ok(()));
    assert_eq!(batches(&log), vec![vec![1, 2, 3]]);
    assert_eq!(start.elapsed(), Duration::ZERO, "size flush does not wait");
}

#[tokio::test(start_paused = true)]
async fn flushes_when_max_delay_has_passed_since_the_first_item() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder()
        .max_items(100)
        .max_delay(Duration::from_millis(100))
        .build(flush)
        .unwrap();
    let mut first = batcher.submit(1).await.unwrap();
    advance(Duration::from_millis(60)).await;
    // A later item does not extend the first item's deadline.
    let mut second = batcher.submit(2).await.unwrap();
    advance(Duration::from_millis(39)).await;
    settle().await;
    assert!(poll_once(&mut first).is_pending());
    assert!(batches(&log).is_empty());
    advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(poll_once(&mut first), Poll::Ready(Ok(())));
    assert_eq!(poll_once(&mut second), Poll::Ready(Ok(())));
    assert_eq!(batches(&log), vec![vec![1, 2]]);

    // The next batch gets a fresh deadline from its own first item.
    let start = Instant::now();
    let third = batcher.submit(3).await.unwrap();
    third.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(batches(&log), vec![vec![1, 2], vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn quiet_batcher_holds_no_timer() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder()
        .max_items(10)
        .max_delay(Duration::from_millis(10))
        .build(flush)
        .unwrap();
    advance(Duration::from_secs(5)).await;
    settle().await;
    assert!(batches(&log).is_empty());
    let start = Instant::now();
    batcher.submit(1).await.unwrap().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn flushes_when_max_bytes_is_reached() {
    let (log, flush) = recording::<String>();
    let batcher = Batcher::builder()
        .max_items(100)
        .max_delay(Duration::from_secs(60))
        .max_bytes(10, |s: &String| s.len())
        .build(flush)
        .unwrap();
    let mut pending = Vec::new();
    // 4 + 4 = 8; a third 4 would make 12 > 10, so it starts the next batch.
    for s in ["aaaa", "bbbb", "cccc"] {
        pending.push(batcher.submit(s.to_owned()).await.unwrap());
    }
    // 4 + 6 = 10 reaches the bound exactly: flushed at once.
    pending.push(batcher.submit("dddddd".to_owned()).await.unwrap());
    // An item heavier than the bound is flushed alone.
    pending.push(batcher.submit("x".repeat(25)).await.unwrap());
    for flushed in pending {
        flushed.await.unwrap();
    }
    assert_eq!(
        batches(&log),
        vec![
            vec!["aaaa".to_owned(), "bbbb".to_owned()],
            vec!["cccc".to_owned(), "dddddd".to_owned()],
            vec!["x".repeat(25)],
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn explicit_flush_flushes_now_and_waits() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder()
        .max_items(100)
        .max_delay(Duration::from_secs(60))
        .build(flush)
        .unwrap();
    // Nothing submitted: resolves at once.
    batcher.flush().await;
    let flushed = batcher.submit(1).await.unwrap();
    let _not_awaited = batcher.submit(2).await.unwrap();
    let start = Instant::now();
    batcher.flush().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(batches(&log), vec![vec![1, 2]]);
    assert_eq!(flushed.await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn flush_waits_for_every_earlier_batch() {
    // Two flushes run at once; the first is slow. flush() returns only when
    // both batches submitted before it are done.
    let gate = Arc::new(Semaphore::new(0));
    let flushes = Arc::new(AtomicUsize::new(0));
    let (g, f) = (Arc::clone(&gate), Arc::clone(&flushes));
    let batcher = Batcher::builder()
        .max_items(1)
        .max_delay(Duration::from_secs(60))
        .flush_concurrency(2)
        .build(move |items: Vec<u32>| {
            let gate = Arc::clone(&g);
            let flushes = Arc::clone(&f);
            async move {
                if items == [1] {
                    let _ = gate.acquire().await.unwrap();
                }
                flushes.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        })
        .unwrap();
    let _a = batcher.submit(1).await.unwrap();
    let b = batcher.submit(2).await.unwrap();
    b.await.unwrap(); // the second batch finished first
    let mut flushed = pin!(batcher.flush());
    settle().await;
    assert!(futures_util::poll!(flushed.as_mut()).is_pending());
    gate.add_permits(1);
    flushed.await;
    assert_eq!(flushes.load(Ordering::SeqCst), 2);
}

// ===== outcomes =====

#[tokio::test(start_paused = true)]
async fn each_item_gets_its_own_output() {
    let batcher = Batcher::builder()
        .max_items(4)
        .build(|items: Vec<u32>| async move {
            Ok::<_, String>(items.into_iter().map(|x| x * 10).collect::<Vec<_>>())
        })
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..10 {
        pending.push(batcher.submit(i).await.unwrap());
    }
    batcher.flush().await;
    for (i, flushed) in pending.into_iter().enumerate() {
        assert_eq!(flushed.await, Ok(i as u32 * 10));
    }
}

#[tokio::test(start_paused = true)]
async fn wrong_number_of_outputs_fails_the_batch() {
    let batcher = Batcher::builder()
        .max_items(3)
        .build(|items: Vec<u32>| async move { Ok::<_, String>(vec![0u32; items.len() - 1]) })
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..3 {
        pending.push(batcher.submit(i).await.unwrap());
    }
    for flushed in pending {
        assert_eq!(
            flushed.await,
            Err(FlushError::OutputMismatch {
                expected: 3,
                actual: 2
            })
        );
    }
}

#[tokio::test(start_paused = true)]
async fn flush_error_is_shared_by_every_item_of_the_batch() {
    let batcher = Batcher::builder()
        .max_items(3)
        .build(|items: Vec<u32>| async move {
            if items.contains(&2) {
                Err(format!("disk full at {items:?}"))
            } else {
                Ok(())
            }
        })
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..6 {
        pending.push(batcher.submit(i).await.unwrap());
    }
    let mut outcomes = Vec::new();
    for flushed in pending {
        outcomes.push(flushed.await);
    }
    let errors: Vec<_> = outcomes[..3]
        .iter()
        .map(|o| match o {
            Err(FlushError::Failed(e)) => Arc::clone(e),
            other => panic!("expected a flush error, got {other:?}"),
        })
        .collect();
    assert_eq!(*errors[0], "disk full at [0, 1, 2]");
    assert!(Arc::ptr_eq(&errors[0], &errors[1]) && Arc::ptr_eq(&errors[0], &errors[2]));
    assert!(
        outcomes[3..].iter().all(|o| o.is_ok()),
        "the next batch is unaffected"
    );
    let stats = batcher.stats();
    assert_eq!(
        (stats.failed, stats.failed_batches, stats.flushed),
        (3, 1, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn panic_while_flushing_fails_only_that_batch() {
    let batcher = Batcher::builder()
        .max_items(2)
        .build(|items: Vec<u32>| async move {
            tokio::task::yield_now().await;
            assert!(!items.contains(&1), "poisoned item");
            Ok::<(), String>(())
        })
        .unwrap();
    let a = batcher.submit(0).await.unwrap();
    let b = batcher.submit(1).await.unwrap();
    let c = batcher.submit(2).await.unwrap();
    let d = batcher.submit(3).await.unwrap();
    match a.await {
        Err(FlushError::Panicked(msg)) => assert!(msg.contains("poisoned item"), "{msg}"),
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(b.await.unwrap_err().is_panic());
    assert_eq!(c.await, Ok(()));
    assert_eq!(d.await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn panic_when_calling_the_flush_fn_fails_only_that_batch() {
    let batcher = Batcher::builder()
        .max_items(1)
        .build(|items: Vec<u32>| {
            assert_ne!(items[0], 7, "refused before returning a future");
            std::future::ready(Ok::<(), String>(()))
        })
        .unwrap();
    let bad = batcher.submit(7).await.unwrap();
    let good = batcher.submit(8).await.unwrap();
    assert!(bad.await.unwrap_err().is_panic());
    assert_eq!(good.await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn dropping_an_ack_leaves_the_item_submitted() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder().max_items(2).build(flush).unwrap();
    drop(batcher.submit(1).await.unwrap());
    batcher.submit(2).await.unwrap().await.unwrap();
    assert_eq!(batches(&log), vec![vec![1, 2]]);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_ack_can_be_polled_again() {
    let batcher = Batcher::builder()
        .max_items(10)
        .max_delay(Duration::from_millis(50))
        .build(|_: Vec<u32>| async { Ok::<(), String>(()) })
        .unwrap();
    let mut flushed = batcher.submit(1).await.unwrap();
    tokio::select! {
        _ = &mut flushed => panic!("not flushed yet"),
        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    assert_eq!(flushed.await, Ok(()));
}

// ===== callbacks =====

#[tokio::test(start_paused = true)]
async fn callbacks_receive_the_outcome() {
    let batcher = Batcher::builder()
        .max_items(2)
        .build(|items: Vec<u32>| async move {
            if items[0] == 0 {
                Ok(items.iter().map(|x| x + 100).collect::<Vec<_>>())
            } else {
                Err("boom")
            }
        })
        .unwrap();
    type Seen = Vec<(u32, Result<u32, String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    for i in 0..4 {
        let seen = Arc::clone(&seen);
        batcher
            .submit_with(i, move |outcome| {
                let outcome = outcome.map_err(|e| e.to_string());
                seen.lock().unwrap().push((i, outcome));
            })
            .await
            .unwrap();
    }
    batcher.close().await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(i, _)| *i);
    assert_eq!(
        seen,
        vec![
            (0, Ok(100)),
            (1, Ok(101)),
            (2, Err("batch flush failed: boom".to_owned())),
            (3, Err("batch flush failed: boom".to_owned())),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_callback_does_not_stop_the_worker() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder().max_items(1).build(flush).unwrap();
    batcher
        .submit_with(1, |_| panic!("callback bug"))
        .await
        .unwrap();
    let (tx, rx) = oneshot::channel();
    batcher
        .try_submit_with(2, move |outcome| {
            tx.send(outcome).unwrap();
        })
        .unwrap();
    assert_eq!(rx.await.unwrap(), Ok(()));
    assert_eq!(batches(&log), vec![vec![1], vec![2]]);
}

// ===== backpressure and concurrency =====

/// A flush function that waits for one permit of `gate` per batch and counts
/// the flushes running at once.
fn gated(
    gate: &Arc<Semaphore>,
    running: &Arc<AtomicUsize>,
    peak: &Arc<AtomicUsize>,
    log: &Log<u32>,
) -> impl FnMut(Vec<u32>) -> BoxFlush + Send + 'static {
    let (gate, running, peak, log) = (
        Arc::clone(gate),
        Arc::clone(running),
        Arc::clone(peak),
        Arc::clone(log),
    );
    move |items| {
        let (gate, running, peak, log) = (
            Arc::clone(&gate),
            Arc::clone(&running),
            Arc::clone(&peak),
            Arc::clone(&log),
        );
        Box::pin(async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            gate.acquire().await.unwrap().forget();
            log.lock().unwrap().push(items);
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn submit_waits_for_room_and_try_submit_reports_full() {
    let gate = Arc::new(Semaphore::new(0));
    let (running, peak, log) = (Arc::default(), Arc::default(), Log::default());
    let batcher = Batcher::builder()
        .max_items(2)
        .capacity(2)
        .max_delay(Duration::from_secs(60))
        .build(gated(&gate, &running, &peak, &log))
        .unwrap();
    // Batch [0, 1] is handed to the (stuck) flush, which frees its room.
    let _a = batcher.submit(0).await.unwrap();
    let _b = batcher.submit(1).await.unwrap();
    settle().await;
    assert_eq!(running.load(Ordering::SeqCst), 1);
    // Batch [2, 3] waits for the flush slot and fills the capacity.
    let _c = batcher.submit(2).await.unwrap();
    let _d = batcher.submit(3).await.unwrap();
    settle().await;
    assert!(matches!(
        batcher.try_submit(4),
        Err(TrySubmitError::Full(4))
    ));
    let mut blocked = pin!(batcher.submit(4));
    assert!(futures_util::poll!(blocked.as_mut()).is_pending());
    assert_eq!(batcher.stats().pending, 4);

    // Finishing the first flush starts the second, which makes room.
    gate.add_permits(1);
    settle().await;
    let e = blocked.await.unwrap();
    gate.add_permits(2);
    batcher.flush().await;
    assert_eq!(e.await, Ok(()));
    assert_eq!(batches(&log), vec![vec![0, 1], vec![2, 3], vec![4]]);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "one flush at a time by default"
    );
}

#[tokio::test(start_paused = true)]
async fn flush_concurrency_runs_batches_at_once_and_bounds_them() {
    let gate = Arc::new(Semaphore::new(0));
    let (running, peak, log) = (Arc::default(), Arc::default(), Log::default());
    let batcher = Batcher::builder()
        .max_items(1)
        .flush_concurrency(3)
        .build(gated(&gate, &running, &peak, &log))
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..5 {
        pending.push(batcher.submit(i).await.unwrap());
    }
    settle().await;
    assert_eq!(
        running.load(Ordering::SeqCst),
        3,
        "three flushes run at once"
    );
    gate.add_permits(5);
    for flushed in pending {
        flushed.await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3, "never more than three");
}

#[tokio::test(start_paused = true)]
async fn one_flush_at_a_time_keeps_batch_order() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder().max_items(3).build(flush).unwrap();
    let mut pending = Vec::new();
    for i in 0..10 {
        pending.push(batcher.submit(i).await.unwrap());
    }
    batcher.close().await;
    for flushed in pending {
        flushed.await.unwrap();
    }
    assert_eq!(
        batches(&log),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]
    );
}

#[tokio::test(start_paused = true)]
async fn reserve_holds_room_and_gives_it_back_when_dropped() {
    let (log, flush) = recording::<u32>();
    // The worker is never polled, so nothing frees room.
    let (batcher, _worker) = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build_pair(flush)
        .unwrap();
    let permit: Permit<'_, u32, (), String> = batcher.reserve().await.unwrap();
    assert!(batcher.try_submit(1).unwrap_err().is_full());
    let mut second = pin!(batcher.reserve());
    assert!(futures_util::poll!(second.as_mut()).is_pending());
    drop(permit);
    let permit = second.await.unwrap();
    let _ack = permit.submit(5).unwrap();
    assert_eq!(batcher.stats().submitted, 1);
    assert!(batches(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_reserve_takes_no_room() {
    let (_log, flush) = recording::<u32>();
    let (batcher, _worker) = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build_pair(flush)
        .unwrap();
    let held = batcher.reserve().await.unwrap();
    {
        let mut waiting = pin!(batcher.reserve());
        assert!(futures_util::poll!(waiting.as_mut()).is_pending());
    } // cancelled
    drop(held);
    assert!(
        batcher.try_submit(1).is_ok(),
        "the cancelled reserve took nothing"
    );
}

// ===== shutdown =====

#[tokio::test(start_paused = true)]
async fn close_flushes_everything_and_refuses_new_items() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder()
        .max_items(100)
        .max_delay(Duration::from_secs(3600))
        .build(flush)
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..5 {
        pending.push(batcher.submit(i).await.unwrap());
    }
    let start = Instant::now();
    batcher.close().await;
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "close does not wait for the delay"
    );
    assert!(batcher.is_closed());
    for flushed in pending {
        assert_eq!(flushed.await, Ok(()));
    }
    assert_eq!(batches(&log), vec![vec![0, 1, 2, 3, 4]]);
    assert_eq!(batcher.submit(9).await.unwrap_err(), SubmitError(9));
    assert!(matches!(
        batcher.try_submit(9),
        Err(TrySubmitError::Closed(9))
    ));
    assert!(batcher.reserve().await.is_err());
    batcher.close().await; // closing twice is fine
}

#[tokio::test(start_paused = true)]
async fn close_hands_waiting_submitters_their_items_back() {
    let gate = Arc::new(Semaphore::new(0));
    let (running, peak, log) = (Arc::default(), Arc::default(), Log::default());
    let batcher = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build(gated(&gate, &running, &peak, &log))
        .unwrap();
    let first = batcher.submit(1).await.unwrap(); // being flushed
    settle().await;
    let second = batcher.submit(2).await.unwrap(); // waits for the flush slot
    let mut blocked = pin!(batcher.submit(3)); // waits for room
    assert!(futures_util::poll!(blocked.as_mut()).is_pending());
    let closing = batcher.close();
    assert_eq!(blocked.await.unwrap_err().into_inner(), 3);
    gate.add_permits(2);
    closing.await;
    assert_eq!(first.await, Ok(()));
    assert_eq!(second.await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_flushes_and_stops_the_worker() {
    let (log, flush) = recording::<u32>();
    let (batcher, worker) = Batcher::builder()
        .max_items(100)
        .max_delay(Duration::from_secs(3600))
        .build_pair(flush)
        .unwrap();
    let worker = tokio::spawn(worker);
    let other = batcher.clone();
    let a = batcher.submit(1).await.unwrap();
    let b = other.submit(2).await.unwrap();
    drop(batcher);
    settle().await;
    assert!(!worker.is_finished(), "one handle is still alive");
    drop(other);
    worker.await.unwrap();
    assert_eq!(a.await, Ok(()));
    assert_eq!(b.await, Ok(()));
    assert_eq!(batches(&log), vec![vec![1, 2]]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_worker_resolves_every_ack_as_closed() {
    let (batcher, worker) = Batcher::builder()
        .max_items(2)
        .flush_concurrency(1)
        .build_pair(|_items: Vec<u32>| std::future::pending::<Result<(), String>>())
        .unwrap();
    let worker = tokio::spawn(worker);
    let in_flight = batcher.submit(1).await.unwrap();
    drop(batcher.submit(2).await.unwrap());
    settle().await; // [1, 2] is being flushed, forever
    let sealed = {
        let a = batcher.submit(3).await.unwrap();
        drop(batcher.submit(4).await.unwrap());
        a
    }; // [3, 4] waits for the flush slot
    let open = batcher.submit(5).await.unwrap(); // [5] is still open
    let (tx, rx) = oneshot::channel();
    batcher
        .submit_with(6, move |o| tx.send(o).unwrap())
        .await
        .unwrap();
    worker.abort();
    let _ = worker.await;
    assert_eq!(in_flight.await, Err(FlushError::Closed));
    assert_eq!(sealed.await, Err(FlushError::Closed));
    assert_eq!(open.await, Err(FlushError::Closed));
    assert_eq!(rx.await.unwrap(), Err(FlushError::Closed));
    assert!(batcher.is_closed());
    assert_eq!(batcher.submit(7).await.unwrap_err().into_inner(), 7);
    // Waiting on the stopped batcher never hangs.
    batcher.flush().await;
    batcher.close().await;
}

#[test]
fn acks_resolve_when_the_runtime_shuts_down() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (batcher, flushed) = runtime.block_on(async {
        let batcher = Batcher::builder()
            .max_items(10)
            .max_delay(Duration::from_secs(3600))
            .build(|_: Vec<u32>| async { Ok::<(), String>(()) })
            .unwrap();
        let flushed = batcher.submit(1).await.unwrap();
        (batcher, flushed)
    });
    drop(runtime); // drops the spawned worker
    assert_eq!(
        futures_util::FutureExt::now_or_never(flushed),
        Some(Err(FlushError::Closed))
    );
    assert!(batcher.try_submit(2).unwrap_err().is_closed());
}

// ===== submit_and_wait =====

#[tokio::test(start_paused = true)]
async fn submit_and_wait_returns_each_items_own_output() {
    let (log, _) = recording::<u32>();
    let sink = Arc::clone(&log);
    let batcher = Batcher::builder()
        .max_items(3)
        .max_delay(Duration::from_secs(60))
        .build(move |items: Vec<u32>| {
            sink.lock().unwrap().push(items.clone());
            async move { Ok::<_, String>(items.iter().map(|x| x * 10).collect::<Vec<_>>()) }
        })
        .unwrap();
    let start = Instant::now();
    let outputs = futures_util::future::join_all((0..6).map(|i| batcher.submit_and_wait(i))).await;
    let outputs: Vec<_> = outputs.into_iter().map(Result::unwrap).collect();
    assert_eq!(outputs, [0, 10, 20, 30, 40, 50]);
    assert_eq!(batches(&log), vec![vec![0, 1, 2], vec![3, 4, 5]]);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "full batches flush at once"
    );
    // A lone item waits for the delay.
    assert_eq!(batcher.submit_and_wait(7).await.unwrap(), 70);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert_eq!(batcher.stats().flushed, 7);
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_shares_an_items_batch_with_acks_and_callbacks() {
    let batcher = Batcher::builder()
        .max_items(4)
        .build(|items: Vec<u32>| async move {
            Ok::<_, String>(items.iter().map(|x| x + 100).collect::<Vec<_>>())
        })
        .unwrap();
    let flushed = batcher.submit(0).await.unwrap();
    let (tx, rx) = oneshot::channel();
    batcher
        .submit_with(1, move |out| tx.send(out).unwrap())
        .await
        .unwrap();
    let (a, b) = tokio::join!(batcher.submit_and_wait(2), batcher.submit_and_wait(3));
    assert_eq!((a.unwrap(), b.unwrap()), (102, 103));
    assert_eq!(flushed.await, Ok(100));
    assert_eq!(rx.await.unwrap(), Ok(101));
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_reports_flush_errors_and_panics_per_batch() {
    let batcher = Batcher::builder()
        .max_items(2)
        .build(|items: Vec<u32>| async move {
            assert!(!items.contains(&9), "poisoned item");
            if items.contains(&4) {
                Err(format!("refused {items:?}"))
            } else {
                Ok(())
            }
        })
        .unwrap();
    let (a, b) = tokio::join!(batcher.submit_and_wait(4), batcher.submit_and_wait(5));
    let (
        Err(SubmitAndWaitError::Flush(FlushError::Failed(ea))),
        Err(SubmitAndWaitError::Flush(eb)),
    ) = (a, b)
    else {
        panic!("both items of the failed batch fail");
    };
    assert_eq!(*ea, "refused [4, 5]");
    assert_eq!(eb.flush_error().map(String::as_str), Some("refused [4, 5]"));
    let (c, d) = tokio::join!(batcher.submit_and_wait(9), batcher.submit_and_wait(1));
    match c {
        Err(SubmitAndWaitError::Flush(FlushError::Panicked(msg))) => {
            assert!(msg.contains("poisoned item"), "{msg}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(d.unwrap_err().flush_error().unwrap().is_panic());
    // The batcher keeps working.
    let (e, f) = tokio::join!(batcher.submit_and_wait(2), batcher.submit_and_wait(3));
    assert_eq!((e, f), (Ok(()), Ok(())));
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_on_a_closed_batcher_hands_the_item_back() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder().build(flush).unwrap();
    batcher.close().await;
    match batcher.submit_and_wait(5).await {
        Err(SubmitAndWaitError::Closed(item)) => assert_eq!(item, 5),
        other => panic!("expected the item back, got {other:?}"),
    }
    assert!(batches(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn close_flushes_items_whose_submitters_wait_and_fails_those_waiting_for_room() {
    let (log, flush) = recording::<u32>();
    let (batcher, worker) = Batcher::builder()
        .max_items(2)
        .capacity(2)
        .max_delay(Duration::from_secs(3600))
        .build_pair(flush)
        .unwrap();
    // Not spawned yet: nothing frees room.
    let mut a = pin!(batcher.submit_and_wait(1));
    let mut b = pin!(batcher.submit_and_wait(2));
    let mut c = pin!(batcher.submit_and_wait(3));
    assert!(futures_util::poll!(a.as_mut()).is_pending());
    assert!(futures_util::poll!(b.as_mut()).is_pending());
    assert!(
        futures_util::poll!(c.as_mut()).is_pending(),
        "waits for room"
    );
    let closing = batcher.close();
    match c.await {
        Err(SubmitAndWaitError::Closed(item)) => assert_eq!(item, 3),
        other => panic!("expected the item back, got {other:?}"),
    }
    tokio::spawn(worker);
    closing.await;
    assert_eq!(a.await, Ok(()));
    assert_eq!(b.await, Ok(()));
    assert_eq!(batches(&log), vec![vec![1, 2]]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_worker_resolves_submit_and_wait_as_closed() {
    let (batcher, worker) = Batcher::builder()
        .max_items(2)
        .build_pair(|_items: Vec<u32>| std::future::pending::<Result<(), String>>())
        .unwrap();
    let worker = tokio::spawn(worker);
    let mut in_flight = pin!(batcher.submit_and_wait(1));
    let mut in_flight_too = pin!(batcher.submit_and_wait(2));
    assert!(futures_util::poll!(in_flight.as_mut()).is_pending());
    assert!(futures_util::poll!(in_flight_too.as_mut()).is_pending());
    settle().await; // [1, 2] is being flushed, forever
    let mut open = pin!(batcher.submit_and_wait(3));
    assert!(futures_util::poll!(open.as_mut()).is_pending());
    worker.abort();
    let _ = worker.await;
    for result in [in_flight.await, in_flight_too.await, open.await] {
        assert!(
            matches!(result, Err(SubmitAndWaitError::Flush(FlushError::Closed))),
            "{result:?}"
        );
    }
    assert!(matches!(
        batcher.submit_and_wait(4).await,
        Err(SubmitAndWaitError::Closed(4))
    ));
}

#[test]
fn submit_and_wait_resolves_when_the_runtime_shuts_down() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let batcher = runtime.block_on(async {
        Batcher::builder()
            .max_items(10)
            .max_delay(Duration::from_secs(3600))
            .build(|_: Vec<u32>| async { Ok::<(), String>(()) })
            .unwrap()
    });
    let mut waiting = Box::pin(batcher.submit_and_wait(1));
    assert!(poll_once(&mut waiting).is_pending(), "entered, not flushed");
    drop(runtime); // drops the spawned worker
    assert!(matches!(
        poll_once(&mut waiting),
        Poll::Ready(Err(SubmitAndWaitError::Flush(FlushError::Closed)))
    ));
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_cancelled_after_entry_leaves_the_item_submitted() {
    let (log, flush) = recording::<u32>();
    let batcher = Batcher::builder()
        .max_items(10)
        .max_delay(Duration::from_millis(50))
        .build(flush)
        .unwrap();
    {
        let mut waiting = pin!(batcher.submit_and_wait(1));
        assert!(futures_util::poll!(waiting.as_mut()).is_pending());
    } // cancelled: the item stays
    tokio::select! {
        _ = batcher.submit_and_wait(2) => panic!("not flushed yet"),
        () = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    assert_eq!(batcher.submit_and_wait(3).await, Ok(()));
    assert_eq!(batches(&log), vec![vec![1, 2, 3]]);
    assert_eq!(batcher.stats().flushed, 3);
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_cancelled_in_flushing_sealed_and_open_batches() {
    let gate = Arc::new(Semaphore::new(0));
    let (running, peak, log) = (Arc::default(), Arc::default(), Log::default());
    let batcher = Batcher::builder()
        .max_items(2)
        .max_delay(Duration::from_secs(60))
        .build(gated(&gate, &running, &peak, &log))
        .unwrap();
    let mut flushing = Box::pin(batcher.submit_and_wait(0));
    let mut flushing_kept = Box::pin(batcher.submit_and_wait(1));
    assert!(poll_once(&mut flushing).is_pending());
    assert!(poll_once(&mut flushing_kept).is_pending());
    settle().await; // [0, 1] is being flushed
    assert_eq!(running.load(Ordering::SeqCst), 1);
    let mut sealed = Box::pin(batcher.submit_and_wait(2));
    let mut sealed_kept = Box::pin(batcher.submit_and_wait(3));
    assert!(poll_once(&mut sealed).is_pending());
    assert!(poll_once(&mut sealed_kept).is_pending());
    let mut open = Box::pin(batcher.submit_and_wait(4));
    assert!(poll_once(&mut open).is_pending());
    // Cancelled in each place a batch can be: the items stay submitted.
    drop(flushing);
    drop(sealed);
    drop(open);
    gate.add_permits(3);
    assert_eq!(flushing_kept.await, Ok(()));
    assert_eq!(sealed_kept.await, Ok(()));
    batcher.close().await;
    assert_eq!(batches(&log), vec![vec![0, 1], vec![2, 3], vec![4]]);
    assert_eq!(batcher.stats().flushed, 5);
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_cancelled_while_waiting_for_room_loses_only_the_item() {
    let (log, flush) = recording::<u32>();
    let (batcher, worker) = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build_pair(flush)
        .unwrap();
    let permit = batcher.reserve().await.unwrap(); // fills the capacity
    {
        let mut waiting = pin!(batcher.submit_and_wait(1));
        assert!(futures_util::poll!(waiting.as_mut()).is_pending());
        assert!(batcher.try_submit(2).unwrap_err().is_full());
    } // cancelled: the item is dropped with it
    drop(permit);
    // The cancelled submitter took no room.
    let flushed = batcher.try_submit(3).unwrap();
    tokio::spawn(worker);
    assert_eq!(flushed.await, Ok(()));
    batcher.close().await;
    assert_eq!(batches(&log), vec![vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_waits_for_room_in_fifo_order() {
    let gate = Arc::new(Semaphore::new(0));
    let (running, peak, log) = (Arc::default(), Arc::default(), Log::default());
    let batcher = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build(gated(&gate, &running, &peak, &log))
        .unwrap();
    let first = batcher.submit(0).await.unwrap(); // being flushed
    settle().await;
    let second = batcher.submit(1).await.unwrap(); // waits for the flush slot
    let mut third = pin!(batcher.submit_and_wait(2));
    let mut fourth = pin!(batcher.submit(3));
    assert!(futures_util::poll!(third.as_mut()).is_pending());
    assert!(futures_util::poll!(fourth.as_mut()).is_pending());
    // No barging: room goes to the waiters first.
    assert!(batcher.try_submit(9).unwrap_err().is_full());
    assert_eq!(batcher.stats().submitted, 2);
    gate.add_permits(1); // [0] finishes, [1] starts and frees its room
    settle().await;
    // The room was granted to `third`, which enters when it is polled.
    assert!(
        futures_util::poll!(fourth.as_mut()).is_pending(),
        "third is first"
    );
    assert_eq!(batcher.stats().submitted, 2);
    assert!(futures_util::poll!(third.as_mut()).is_pending());
    assert_eq!(batcher.stats().submitted, 3);
    gate.add_permits(3);
    assert_eq!(third.await, Ok(()));
    fourth.await.unwrap().await.unwrap();
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(batches(&log), vec![vec![0], vec![1], vec![2], vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn granted_room_is_handed_on_when_its_waiter_is_cancelled() {
    let (_log, flush) = recording::<u32>();
    let (batcher, _worker) = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build_pair(flush)
        .unwrap();
    let held = batcher.reserve().await.unwrap();
    let mut first = Box::pin(batcher.reserve());
    let mut second = pin!(batcher.submit_and_wait(7));
    assert!(poll_once(&mut first).is_pending());
    assert!(futures_util::poll!(second.as_mut()).is_pending());
    drop(held); // granted to `first`, which is never polled again
    drop(first);
    assert!(futures_util::poll!(second.as_mut()).is_pending(), "entered");
    assert_eq!(batcher.stats().submitted, 1);
}

#[tokio::test(start_paused = true)]
async fn submit_and_wait_polled_by_another_task_wakes_that_task() {
    let batcher = Batcher::builder()
        .max_items(10)
        .max_delay(Duration::from_millis(20))
        .build(|items: Vec<u32>| async move { Ok::<_, String>(items) })
        .unwrap();
    let mut waiting = Box::pin(batcher.submit_and_wait(5));
    // Entered with a waker that is never woken usefully...
    assert!(poll_once(&mut waiting).is_pending());
    // ...then awaited by this task, which must be the one woken.
    assert_eq!(waiting.await, Ok(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_submit_and_wait_submitters_on_many_threads() {
    let batcher = Batcher::builder()
        .max_items(64)
        .capacity(100)
        .max_delay(Duration::from_millis(1))
        .flush_concurrency(2)
        .build(|items: Vec<u64>| async move {
            Ok::<_, String>(items.iter().map(|x| x * 2).collect::<Vec<_>>())
        })
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..50u64 {
        let batcher = batcher.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200u64 {
                let item = t * 1000 + i;
                assert_eq!(batcher.submit_and_wait(item).await, Ok(item * 2));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    batcher.close().await;
    let stats = batcher.stats();
    assert_eq!((stats.flushed, stats.pending), (10_000, 0));
}

#[test]
fn submit_and_wait_error_hands_back_the_item_or_the_ack_error() {
    let closed: SubmitAndWaitError<u32, std::io::Error> = SubmitAndWaitError::Closed(3);
    assert_eq!(closed.to_string(), "batcher is closed");
    assert_eq!(format!("{closed:?}"), "Closed(..)");
    assert!(closed.flush_error().is_none());
    assert!(std::error::Error::source(&closed).is_none());
    assert_eq!(closed.into_item(), Some(3));
    let failed: SubmitAndWaitError<u32, std::io::Error> =
        FlushError::Failed(Arc::new(std::io::Error::other("disk"))).into();
    assert_eq!(failed.to_string(), "batch flush failed: disk");
    assert!(std::error::Error::source(&failed).is_some());
    assert!(failed.flush_error().is_some());
    assert!(failed.into_item().is_none());
    let from_submit: SubmitAndWaitError<u32, ()> = SubmitError(4).into();
    assert_eq!(from_submit, SubmitAndWaitError::Closed(4));
}

// ===== stats and configuration =====

#[tokio::test(start_paused = true)]
async fn stats_count_items_and_batches() {
    let batcher = Batcher::builder()
        .max_items(2)
        .build(|items: Vec<u32>| async move {
            if items.contains(&4) {
                Err("no")
            } else {
                Ok(())
            }
        })
        .unwrap();
    assert_eq!(batcher.stats(), BatchStats::default());
    let mut pending = Vec::new();
    for i in 0..5 {
        pending.push(batcher.submit(i).await.unwrap());
    }
    let before = batcher.stats();
    assert_eq!(before.submitted, 5);
    batcher.close().await;
    let stats = batcher.stats();
    assert_eq!(stats.submitted, 5);
    assert_eq!(stats.flushed, 4);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.batches, 3);
    assert_eq!(stats.failed_batches, 1);
    assert_eq!(stats.pending, 0);
}

#[tokio::test]
async fn invalid_configuration_is_refused_at_build() {
    fn build(b: flowgate::batch::BatcherBuilder<u32>) -> Result<(), BuildError> {
        b.build(|_: Vec<u32>| async { Ok::<(), String>(()) })
            .map(drop)
    }
    assert_eq!(
        build(Batcher::builder().max_items(0)),
        Err(BuildError::ZeroMaxItems)
    );
    assert_eq!(
        build(Batcher::builder().max_delay(Duration::ZERO)),
        Err(BuildError::ZeroMaxDelay)
    );
    assert_eq!(
        build(Batcher::builder().max_bytes(0, |_| 1)),
        Err(BuildError::ZeroMaxBytes)
    );
    assert_eq!(
        build(Batcher::builder().flush_concurrency(0)),
        Err(BuildError::ZeroFlushConcurrency)
    );
    assert_eq!(
        build(Batcher::builder().max_items(10).capacity(9)),
        Err(BuildError::CapacityBelowMaxItems {
            capacity: 9,
            max_items: 10
        })
    );
    assert_eq!(
        build(Batcher::builder().capacity(0).max_items(1)),
        Err(BuildError::CapacityBelowMaxItems {
            capacity: 0,
            max_items: 1
        })
    );
    assert!(build(Batcher::builder().max_delay(Duration::MAX)).is_ok());
    assert_eq!(
        BuildError::ZeroMaxItems.to_string(),
        "max_items must be at least 1"
    );
}

#[test]
fn build_outside_a_runtime_is_an_error() {
    let err = Batcher::builder()
        .build(|_: Vec<u32>| async { Ok::<(), String>(()) })
        .unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    // build_pair needs no runtime until the worker runs.
    assert!(
        Batcher::builder()
            .build_pair(|_: Vec<u32>| async { Ok::<(), String>(()) })
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_submitters_on_many_threads_each_see_their_own_output() {
    let batcher = Batcher::builder()
        .max_items(64)
        .max_delay(Duration::from_millis(1))
        .flush_concurrency(2)
        .build(|items: Vec<u64>| async move {
            Ok::<_, String>(items.iter().map(|x| x * 2).collect::<Vec<_>>())
        })
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..50u64 {
        let batcher = batcher.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200u64 {
                let item = t * 1000 + i;
                assert_eq!(batcher.submit(item).await.unwrap().await, Ok(item * 2));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    batcher.close().await;
    let stats = batcher.stats();
    assert_eq!(
        (stats.submitted, stats.flushed, stats.pending),
        (10_000, 10_000, 0)
    );
}

// ===== auto traits =====

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Batcher<u32, u64, std::io::Error>>();
    send_sync::<Flushed<u64, std::io::Error>>();
    send_sync::<FlushError<std::io::Error>>();
    fn send_only<T: Send>() {}
    send_only::<Worker<u32, u64, std::io::Error>>();
    send_sync::<Permit<'static, u32, u64, std::io::Error>>();
    send_only::<SubmitAndWait<'static, u32, u64, std::io::Error>>();
    send_sync::<SubmitAndWaitError<u32, std::io::Error>>();
    send_sync::<SubmitError<u32>>();
    send_sync::<TrySubmitError<u32>>();
    send_sync::<BuildError>();
    fn unpin<T: Unpin>() {}
    unpin::<Flushed<u64, std::io::Error>>();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let batcher: Batcher<u32, (), std::io::Error> = Batcher::builder()
            .build(|_: Vec<u32>| async { Ok(()) })
            .unwrap();
        send(&batcher.submit(1));
        send(&batcher.submit_and_wait(1));
        send(&batcher.submit_with(1, |_| {}));
        send(&batcher.reserve());
        send(&batcher.flush());
        send(&batcher.close());
    });
}

// ===== resolve_in_order =====

/// Each item is its own batch (`max_items(1)`), three flush at once, and the
/// flush of item `ms` takes `ms` milliseconds: 30 fails, 40 panics, the
/// others succeed with `ms`. Returns the batcher, its worker and the log of
/// flush starts (item, ms since `t0`).
fn timed(
    in_order: bool,
) -> (
    Batcher<u64, u64, String>,
    Worker<u64, u64, String>,
    Arc<Mutex<Vec<(u64, u64)>>>,
) {
    let t0 = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    let (batcher, worker) = Batcher::builder()
        .max_items(1)
        .flush_concurrency(3)
        .resolve_in_order(in_order)
        .build_pair(move |items: Vec<u64>| {
            let ms = items[0];
            log.lock()
                .unwrap()
                .push((ms, t0.elapsed().as_millis() as u64));
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                match ms {
                    30 => Err(format!("{ms} failed")),
                    40 => panic!("{ms} panicked"),
                    _ => Ok(vec![ms]),
                }
            }
        })
        .unwrap();
    (batcher, worker, starts)
}

type Resolved = Arc<Mutex<Vec<(usize, u64, Result<u64, FlushError<String>>)>>>;

/// Submits `items` in order and records, as each resolves, (its index, ms
/// since the start, its outcome). With `mixed`, items are submitted in turn
/// with `submit`, `submit_and_wait` and `submit_with`; otherwise all with
/// `submit_with`, whose callbacks run on the worker as each item resolves,
/// so that the log's order is the exact order of resolution.
async fn submit_all(batcher: &Batcher<u64, u64, String>, items: &[u64], mixed: bool) -> Resolved {
    let t0 = Instant::now();
    let resolved: Resolved = Arc::default();
    for (index, &item) in items.iter().enumerate() {
        let log = Arc::clone(&resolved);
        let record = move |outcome| {
            log.lock()
                .unwrap()
                .push((index, t0.elapsed().as_millis() as u64, outcome));
        };
        match if mixed { index % 3 } else { 2 } {
            0 => {
                let flushed = batcher.submit(item).await.unwrap();
                tokio::spawn(async move { record(flushed.await) });
            }
            1 => {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    record(
                        batcher
                            .submit_and_wait(item)
                            .await
                            .map_err(|err| match err {
                                SubmitAndWaitError::Flush(err) => err,
                                SubmitAndWaitError::Closed(_) => panic!("accepted"),
                            }),
                    )
                });
            }
            _ => batcher.submit_with(item, record).await.unwrap(),
        }
        settle().await;
    }
    resolved
}

fn order(resolved: &Resolved) -> Vec<usize> {
    resolved.lock().unwrap().iter().map(|r| r.0).collect()
}

/// The records by index: (ms when resolved, outcome).
fn by_index(resolved: &Resolved) -> Vec<(u64, Result<u64, FlushError<String>>)> {
    let mut records = resolved.lock().unwrap().clone();
    records.sort_by_key(|r| r.0);
    records.into_iter().map(|r| (r.1, r.2)).collect()
}

/// Submits `items` to a fresh `timed(in_order)` batcher (see
/// [`submit_all`]), closes it and returns the records.
async fn run(in_order: bool, items: &[u64], mixed: bool) -> Resolved {
    let (batcher, worker, _) = timed(in_order);
    tokio::spawn(worker);
    let resolved = submit_all(&batcher, items, mixed).await;
    batcher.close().await;
    settle().await; // the tasks awaiting `Flushed` and `submit_and_wait`
    resolved
}

#[tokio::test(start_paused = true)]
async fn concurrent_flushes_resolve_as_they_finish_by_default() {
    let resolved = run(false, &[25, 5, 15], false).await;
    assert_eq!(order(&resolved), [1, 2, 0]);
    let resolved = run(false, &[25, 5, 15], true).await;
    assert_eq!(
        by_index(&resolved),
        [(25, Ok(25)), (5, Ok(5)), (15, Ok(15))]
    );
}

#[tokio::test(start_paused = true)]
async fn resolve_in_order_holds_a_later_batch_for_an_earlier_one() {
    let (batcher, worker, _) = timed(true);
    tokio::spawn(worker);
    let resolved = submit_all(&batcher, &[25, 5, 15], false).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(order(&resolved).is_empty(), "5 and 15 wait for 25");
    batcher.close().await;
    assert_eq!(order(&resolved), [0, 1, 2]);

    // The same through `Flushed` and `submit_and_wait`: all at 25 ms, each
    // with its own output.
    let resolved = run(true, &[25, 5, 15], true).await;
    assert_eq!(
        by_index(&resolved),
        [(25, Ok(25)), (25, Ok(5)), (25, Ok(15))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_or_panicked_earlier_batch_resolves_with_its_error_and_releases_later_ones() {
    let resolved = run(true, &[30, 5, 40, 10], false).await;
    assert_eq!(order(&resolved), [0, 1, 2, 3]);
    // 30 fails at 30 ms and releases 5 (held since 5 ms); 10 starts then,
    // in the slot 30 gave back, and finishes at 40 ms, when 40 panics.
    assert_eq!(
        by_index(&resolved),
        [
            (30, Err(FlushError::Failed(Arc::new("30 failed".into())))),
            (30, Ok(5)),
            (40, Err(FlushError::Panicked("40 panicked".into()))),
            (40, Ok(10)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_batch_keeps_its_flush_slot() {
    let (batcher, worker, starts) = timed(true);
    tokio::spawn(worker);
    let resolved = submit_all(&batcher, &[25, 1, 2, 3], false).await;
    batcher.close().await;
    // 1 and 2 finish early but hold their slots until 25 resolves: 3 starts
    // at 25 ms, not at 1 ms.
    assert_eq!(*starts.lock().unwrap(), [(25, 0), (1, 0), (2, 0), (3, 25)]);
    assert_eq!(order(&resolved), [0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_worker_with_held_batches_resolves_everything_in_order() {
    let (batcher, worker, _) = timed(true);
    let worker = tokio::spawn(worker);
    let resolved = submit_all(&batcher, &[25, 5, 15, 7], false).await;
    // 5 finished and is held for 25; 15 and 25 are flushing; 7 waits for a
    // slot.
    tokio::time::sleep(Duration::from_millis(10)).await;
    worker.abort();
    let _ = worker.await;
    settle().await;
    assert_eq!(order(&resolved), [0, 1, 2, 3]);
    assert_eq!(
        by_index(&resolved),
        [
            (10, Err(FlushError::Closed)),
            (10, Ok(5)), // flushed, so reported as flushed
            (10, Err(FlushError::Closed)),
            (10, Err(FlushError::Closed)),
        ]
    );
    assert_eq!(batcher.stats().pending, 0);

    // Flushed futures and `submit_and_wait` never hang either.
    let (batcher, worker, _) = timed(true);
    let worker = tokio::spawn(worker);
    let resolved = submit_all(&batcher, &[25, 5, 15, 7], true).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    worker.abort();
    let _ = worker.await;
    settle().await;
    assert_eq!(by_index(&resolved).len(), 4);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_with_held_batches_flushes_and_resolves_in_order() {
    let (batcher, worker, _) = timed(true);
    let worker = tokio::spawn(worker);
    let resolved = submit_all(&batcher, &[25, 5, 15, 7], false).await;
    drop(batcher);
    worker.await.unwrap();
    assert_eq!(order(&resolved), [0, 1, 2, 3]);
    assert_eq!(
        by_index(&resolved),
        [(25, Ok(25)), (25, Ok(5)), (25, Ok(15)), (32, Ok(7))]
    );
}
