//! The retry and error-routing stages, and pausing the source on error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::pipeline::{ParMapRetry, RouteErrors};
use flowgate::prelude::*;
use flowgate::resilience::{
    Backoff, DeadLetter, DeadLetterSender, DeadLetters, PauseHandle, Retry, StopReason,
    dead_letters,
};
use futures_util::stream::{self, FusedStream, Stream, StreamExt};
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Iter = stream::Iter<std::vec::IntoIter<u32>>;

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<DeadLetter<u32, String>>();
    assert_send_sync::<DeadLetterSender<u32>>();
    assert_send_sync::<DeadLetters<u32>>();
    assert_send::<
        ParMapRetry<
            Iter,
            fn(&u32) -> std::future::Ready<Result<u32, String>>,
            std::future::Ready<Result<u32, String>>,
            String,
        >,
    >();
    assert_send_sync::<RouteErrors<stream::Iter<std::vec::IntoIter<Result<u32, String>>>, String>>(
    );
}

/// Calls that fail the first `fails[item]` times, then succeed, after 10 ms.
#[derive(Clone, Default)]
struct Flaky {
    fails: Arc<HashMap<u32, usize>>,
    calls: Arc<Mutex<HashMap<u32, usize>>>,
}

impl Flaky {
    fn new(fails: &[(u32, usize)]) -> Self {
        Flaky {
            fails: Arc::new(fails.iter().copied().collect()),
            calls: Arc::default(),
        }
    }

    fn call(&self, item: u32) -> impl Future<Output = Result<u32, String>> + use<> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(item).or_default();
            *n += 1;
            *n
        };
        let fail = n <= self.fails.get(&item).copied().unwrap_or(0);
        async move {
            sleep(ms(10)).await;
            if fail {
                Err(format!("{item} failed (call {n})"))
            } else {
                Ok(item * 10)
            }
        }
    }

    fn calls(&self, item: u32) -> usize {
        self.calls.lock().unwrap().get(&item).copied().unwrap_or(0)
    }
}

#[tokio::test(start_paused = true)]
async fn retries_items_and_dead_letters_the_hopeless() {
    let flaky = Flaky::new(&[(2, 1), (4, 2), (6, 99)]);
    let retry = Retry::new(Backoff::constant(ms(100))).max_attempts(3);
    let f = flaky.clone();
    let out: Vec<Result<u32, DeadLetter<u32, String>>> = stream::iter(0..8u32)
        .par_map_retry(8, retry, move |x: &u32| f.call(*x))
        .collect()
        .await;
    let ok: Vec<u32> = out
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(ok, vec![0, 10, 30, 50, 70, 20, 40]); // retried items come later
    let dead: Vec<&DeadLetter<u32, String>> = out.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].item, 6);
    assert_eq!(dead[0].attempts(), 3);
    assert_eq!(dead[0].reason(), StopReason::AttemptsExhausted);
    assert_eq!(dead[0].error.last(), "6 failed (call 3)");
    assert_eq!((flaky.calls(2), flaky.calls(4), flaky.calls(6)), (2, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_dead_lettered_at_once() {
    let retry = Retry::new(Backoff::constant(ms(100)))
        .max_attempts(5)
        .when(|e: &String| !e.starts_with("permanent"));
    let out: Vec<_> = stream::iter([1u32])
        .par_map_retry(1, retry, |_: &u32| async {
            Err::<u32, _>("permanent: no".to_owned())
        })
        .collect()
        .await;
    let dead = out[0].as_ref().unwrap_err();
    assert_eq!(
        (dead.attempts(), dead.reason()),
        (1, StopReason::NotRetryable)
    );
}

#[tokio::test(start_paused = true)]
async fn a_backing_off_item_keeps_its_slot() {
    // Limit 2: item 0 fails once and sleeps 100 ms; item 1 takes 10 ms. The
    // third item may start only when a slot frees: after item 1 (t = 10),
    // not while item 0 sleeps.
    let flaky = Flaky::new(&[(0, 1)]);
    let start = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let (f, log) = (flaky.clone(), starts.clone());
    let retry = Retry::new(Backoff::constant(ms(100)));
    let mut s = Box::pin(
        stream::iter(0..4u32).par_map_retry(2, retry, move |x: &u32| {
            log.lock().unwrap().push((*x, start.elapsed()));
            f.call(*x)
        }),
    );
    let mut out = Vec::new();
    while let Some(r) = s.next().await {
        out.push((r.unwrap(), start.elapsed()));
    }
    assert_eq!(
        *starts.lock().unwrap(),
        [
            (0, ms(0)),
            (1, ms(0)),
            (2, ms(10)),
            (3, ms(20)),
            (0, ms(110))
        ]
    );
    assert_eq!(
        out,
        [(10, ms(10)), (20, ms(20)), (30, ms(30)), (0, ms(120))]
    );
}

#[tokio::test(start_paused = true)]
async fn source_is_paused_while_any_item_backs_off() {
    // The seed: "pause the job on error, and retry after sleep". Every 5th
    // item fails once; while it backs off (200 ms) the source pulls nothing.
    let pause = PauseHandle::new();
    let pulls = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let log = pulls.clone();
    let source =
        stream::iter(0..20u32).inspect(move |x| log.lock().unwrap().push((*x, start.elapsed())));
    let flaky = Flaky::new(&[(4, 1), (9, 1), (14, 1), (19, 1)]);
    let retry = Retry::new(Backoff::constant(ms(200)))
        .max_attempts(2)
        .pause_while_backing_off(&pause);
    let probe = pause.clone();
    let paused_during_pull = Arc::new(AtomicUsize::new(0));
    let seen = paused_during_pull.clone();
    let f = flaky.clone();
    let out: Vec<u32> = source
        .pausable(&pause)
        .inspect(move |_| {
            if probe.is_paused() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })
        .par_map_retry(2, retry, move |x: &u32| f.call(*x))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(out.len(), 20);
    assert_eq!(paused_during_pull.load(Ordering::SeqCst), 0);
    let pulls = pulls.lock().unwrap();
    // When item 4 fails, item 5 is in flight; item 6 is not pulled until the
    // 200 ms backoff is over. The same after 9 and 14; after 19 there is
    // nothing left to pull.
    let gaps: Vec<_> = pulls
        .windows(2)
        .map(|w| (w[1].0, w[1].1 - w[0].1))
        .collect();
    let after_pauses: Vec<u32> = gaps
        .iter()
        .filter(|(_, gap)| *gap >= ms(200))
        .map(|(item, _)| *item)
        .collect();
    assert_eq!(after_pauses, [6, 11, 16], "{gaps:?}");
    assert!(gaps.iter().all(|(_, gap)| *gap <= ms(210)), "{gaps:?}");
    assert!(!pause.is_paused());
}

#[tokio::test(start_paused = true)]
async fn route_errors_keeps_order_and_ends_the_dead_letter_stream() {
    let (dead_tx, dead) = dead_letters(16);
    let flaky = Flaky::new(&[(1, 9), (3, 9)]);
    let retry = Retry::new(Backoff::constant(ms(10))).max_attempts(2);
    let ok = stream::iter(0..5u32)
        .par_map_retry(1, retry, move |x: &u32| flaky.call(*x))
        .route_errors(dead_tx);
    let (ok, dead) = tokio::join!(
        ok.collect::<Vec<u32>>(),
        dead.map(|d: DeadLetter<u32, String>| (d.item, d.attempts()))
            .collect::<Vec<_>>()
    );
    assert_eq!(ok, vec![0, 20, 40]);
    assert_eq!(dead, vec![(1, 2), (3, 2)]);
}

#[tokio::test]
async fn a_full_dead_letter_channel_holds_back_the_stage() {
    let (dead_tx, mut dead) = dead_letters::<&str>(1);
    let items = vec![Err("a"), Err("b"), Ok(1), Err("c"), Ok(2)];
    let mut s = task::spawn(stream::iter(items).route_errors(dead_tx));
    // "a" fills the channel; "b" waits for room, and so does Ok(1) behind it.
    assert_pending!(s.poll_next());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead.next().await, Some("a"));
    assert!(s.is_woken());
    assert_eq!(assert_ready!(s.poll_next()), Some(1));
    assert_pending!(s.poll_next()); // "c" waits behind "b"
    assert_eq!(dead.next().await, Some("b"));
    assert_eq!(assert_ready!(s.poll_next()), Some(2));
    assert_eq!(dead.next().await, Some("c"));
    assert_eq!(assert_ready!(s.poll_next()), None);
    assert!(s.is_terminated());
    assert_eq!(dead.next().await, None, "the stage's sender is gone");
}

#[tokio::test]
async fn dropping_the_dead_letters_discards_errors_but_not_successes() {
    let (dead_tx, dead) = dead_letters::<&str>(4);
    drop(dead);
    let s = stream::iter(vec![Err("a"), Ok(1), Err("b"), Ok(2)]).route_errors(dead_tx);
    let mut s = Box::pin(s);
    let mut ok = Vec::new();
    while let Some(x) = s.next().await {
        ok.push(x);
    }
    assert_eq!(ok, vec![1, 2]);
    assert_eq!(s.dropped(), 2);
}

#[tokio::test]
async fn dead_letters_queued_when_the_receiver_drops_are_counted() {
    let (dead_tx, dead) = dead_letters::<&str>(4);
    let counter = dead_tx.clone();
    let ok: Vec<i32> = stream::iter(vec![Err("a"), Ok(1), Err("b")])
        .route_errors(dead_tx)
        .collect()
        .await;
    assert_eq!(ok, vec![1]);
    drop(dead);
    assert_eq!(counter.dropped(), 2);
    assert!(counter.is_closed());
}

#[tokio::test]
async fn a_long_run_of_errors_yields_to_the_executor() {
    let (dead_tx, mut dead) = dead_letters::<u32>(1000);
    let mut s = task::spawn(stream::iter((0..100u32).map(Err::<u32, u32>)).route_errors(dead_tx));
    assert_pending!(s.poll_next());
    assert!(s.is_woken(), "it asked to be polled again");
    assert!(dead.len() < 100);
    while s.poll_next().is_pending() {}
    assert_eq!(dead.len(), 100);
    assert_eq!(dead.next().await, Some(0));
}

#[tokio::test(start_paused = true)]
async fn retry_stage_size_hint_and_termination() {
    let retry = Retry::new(Backoff::constant(ms(10)));
    let mut s = task::spawn(stream::iter(0..5u32).par_map_retry(2, retry, |x: &u32| {
        let x = *x;
        async move {
            sleep(ms(5)).await;
            Ok::<_, ()>(x)
        }
    }));
    assert_pending!(s.poll_next());
    assert_eq!(s.size_hint(), (5, Some(5)));
    advance(ms(5)).await;
    assert!(matches!(assert_ready!(s.poll_next()), Some(Ok(_))));
    assert!(!s.is_terminated());
}

#[test]
#[should_panic(expected = "par_map_retry: limit must be at least 1")]
fn zero_limit_panics() {
    let retry = Retry::new(Backoff::constant(ms(1)));
    let _ = stream::iter(0..1u32).par_map_retry(0, retry, |_: &u32| async { Ok::<u32, ()>(1) });
}
