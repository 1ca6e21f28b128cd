use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::pipeline::{CancelMode, Cancellable, CancellationToken};
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, Stream, StreamExt};
use tokio::time::{Instant, sleep};
use tokio_test::{assert_pending, assert_ready_eq, task};

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cancellable<stream::Iter<std::vec::IntoIter<u8>>>>();
    assert_send_sync::<CancelMode>();
}

/// Counts calls started, finished and dropped unfinished.
#[derive(Default)]
struct Calls {
    started: AtomicUsize,
    finished: AtomicUsize,
    dropped: AtomicUsize,
}

struct DropGuard(Arc<Calls>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn pipeline(
    token: CancellationToken,
    mode: CancelMode,
    calls: Arc<Calls>,
) -> impl Stream<Item = (u64, u64)> {
    let start = Instant::now();
    stream::iter(0..100u64)
        .cancellable(token, mode, move |source| {
            source.par_map(5, move |i| {
                let calls = calls.clone();
                async move {
                    calls.started.fetch_add(1, Ordering::SeqCst);
                    let mut guard = DropGuard(calls.clone(), false);
                    sleep(Duration::from_millis(100)).await;
                    guard.1 = true;
                    calls.finished.fetch_add(1, Ordering::SeqCst);
                    i
                }
            })
        })
        .map(move |i| (start.elapsed().as_millis() as u64, i))
}

fn cancel_at(token: &CancellationToken, ms: u64) {
    let token = token.clone();
    tokio::spawn(async move {
        sleep(Duration::from_millis(ms)).await;
        token.cancel();
    });
}

#[tokio::test(start_paused = true)]
async fn drain_finishes_and_yields_work_in_flight() {
    let token = CancellationToken::new();
    let calls = Arc::new(Calls::default());
    cancel_at(&token, 150);
    let out: Vec<(u64, u64)> = pipeline(token, CancelMode::Drain, calls.clone())
        .collect()
        .await;
    let expected: Vec<(u64, u64)> = (0..10)
        .map(|i| (if i < 5 { 100 } else { 200 }, i))
        .collect();
    assert_eq!(out, expected);
    assert_eq!(
        calls.started.load(Ordering::SeqCst),
        10,
        "no new work after the cancel"
    );
    assert_eq!(calls.finished.load(Ordering::SeqCst), 10);
    assert_eq!(calls.dropped.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn drop_ends_at_once_and_drops_work_in_flight() {
    let token = CancellationToken::new();
    let calls = Arc::new(Calls::default());
    cancel_at(&token, 150);
    let start = Instant::now();
    let mut s = Box::pin(pipeline(token, CancelMode::Drop, calls.clone()));
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(150),
        "ended at the cancel"
    );
    assert_eq!(out, (0..5).map(|i| (100, i)).collect::<Vec<_>>());
    assert_eq!(calls.started.load(Ordering::SeqCst), 10);
    drop(s);
    assert_eq!(
        calls.dropped.load(Ordering::SeqCst),
        5,
        "in-flight calls dropped"
    );
}

#[tokio::test]
async fn take_until_cancelled_checks_token_before_a_busy_upstream() {
    let token = CancellationToken::new();
    let mut s = task::spawn(Box::pin(
        stream::iter(0..).take_until_cancelled(token.clone()),
    ));
    assert_ready_eq!(s.poll_next(), Some(0));
    assert!(!s.is_cancelled());
    token.cancel();
    assert_ready_eq!(s.poll_next(), None);
    assert!(s.is_terminated());
    assert!(s.is_cancelled());
    assert_ready_eq!(s.poll_next(), None);
}

#[tokio::test]
async fn cancelling_wakes_a_waiting_stream() {
    let token = CancellationToken::new();
    let mut s = task::spawn(Box::pin(
        stream::pending::<u8>().take_until_cancelled(token.clone()),
    ));
    assert_pending!(s.poll_next());
    token.cancel();
    assert!(s.is_woken());
    assert_ready_eq!(s.poll_next(), None);
}

#[tokio::test]
async fn upstream_end_is_not_a_cancel() {
    let token = CancellationToken::new();
    let mut s = Box::pin(stream::iter([1]).take_until_cancelled(token));
    assert_eq!(s.next().await, Some(1));
    assert_eq!(s.next().await, None);
    assert!(!s.is_cancelled());
}
