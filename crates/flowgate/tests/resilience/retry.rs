use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::resilience::{Backoff, PauseHandle, Retry, RetryError, StopReason};
use tokio::time::{Instant, sleep};
use tokio_test::{assert_pending, assert_ready, task};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, PartialEq)]
enum Error {
    Transient,
    Permanent,
    Throttled(Duration),
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Retry<Error>>();
    assert_send_sync::<RetryError<Error>>();
    let retry = Retry::<Error>::new(Backoff::constant(ms(1)));
    assert_send(&retry.run(|| async { Ok::<_, Error>(()) }));
}

/// A call failing with `errors` in turn, then succeeding; counts calls.
fn scripted(
    errors: Vec<Error>,
) -> (
    Arc<AtomicU32>,
    impl FnMut() -> std::future::Ready<Result<u32, Error>>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let f = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(match errors.get(n as usize) {
            Some(err) => Err(err.clone()),
            None => Ok(n + 1),
        })
    };
    (calls, f)
}

#[tokio::test(start_paused = true)]
async fn succeeds_after_transient_failures() {
    let retry = Retry::new(Backoff::constant(ms(100))).max_attempts(3);
    let (calls, f) = scripted(vec![Error::Transient, Error::Transient]);
    let start = Instant::now();
    assert_eq!(retry.run(f).await, Ok(3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts() {
    let retry = Retry::new(Backoff::constant(ms(100))).max_attempts(4);
    let (calls, f) = scripted(vec![Error::Transient; 10]);
    let start = Instant::now();
    let err = retry.run(f).await.unwrap_err();
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.reason(), StopReason::AttemptsExhausted);
    assert_eq!(err.last(), &Error::Transient);
    assert!(err.is_transient());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // No sleep after the last attempt.
    assert_eq!(start.elapsed(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn permanent_error_is_not_retried() {
    let retry = Retry::new(Backoff::constant(ms(100)))
        .max_attempts(5)
        .when(|e: &Error| *e != Error::Permanent);
    let (calls, f) = scripted(vec![Error::Transient, Error::Permanent]);
    let start = Instant::now();
    let err = retry.run(f).await.unwrap_err();
    assert_eq!(err.reason(), StopReason::NotRetryable);
    assert_eq!(err.attempts(), 2);
    assert!(!err.is_transient());
    assert_eq!(err.into_inner(), Error::Permanent);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), ms(100));
}

#[tokio::test(start_paused = true)]
async fn time_budget_stops_before_sleeping_past_it() {
    // Attempts take 30 ms each; delays 100, 200, 400, ...; budget 1 s.
    let retry = Retry::new(Backoff::exponential(ms(100)))
        .max_attempts(100)
        .budget(Duration::from_secs(1));
    let start = Instant::now();
    let mut starts = Vec::new();
    let err = retry
        .run(|| {
            starts.push(start.elapsed());
            async {
                sleep(ms(30)).await;
                Err::<(), _>(Error::Transient)
            }
        })
        .await
        .unwrap_err();
    // 0, 130 (30 + 100), 360 (160 + 200), 790 (390 + 400); the next would
    // start at 820 + 800 = 1620 > 1000: give up at 820, without sleeping.
    assert_eq!(starts, [ms(0), ms(130), ms(360), ms(790)]);
    assert_eq!(err.reason(), StopReason::BudgetExhausted);
    assert_eq!(err.attempts(), 4);
    assert_eq!(start.elapsed(), ms(820));
}

#[tokio::test(start_paused = true)]
async fn budget_allows_a_retry_that_starts_exactly_at_the_deadline() {
    let retry = Retry::new(Backoff::constant(ms(500)))
        .max_attempts(10)
        .budget(ms(1000));
    let (calls, f) = scripted(vec![Error::Transient; 10]);
    let start = Instant::now();
    let err = retry.run(f).await.unwrap_err();
    // Attempts at 0, 500 and 1000 (the deadline itself); 1500 is past it.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(err.reason(), StopReason::BudgetExhausted);
    assert_eq!(start.elapsed(), ms(1000));
}

#[tokio::test(start_paused = true)]
async fn budget_counts_from_the_first_attempt_of_each_call() {
    let retry = Retry::new(Backoff::constant(ms(400)))
        .max_attempts(10)
        .budget(ms(1000));
    for _ in 0..3 {
        let (calls, f) = scripted(vec![Error::Transient; 10]);
        let _ = retry.run(f).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "0, 400, 800 each time");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_hint_raises_the_delay() {
    let retry = Retry::new(Backoff::constant(ms(100)))
        .max_attempts(3)
        .retry_after(|e: &Error| match e {
            Error::Throttled(after) => Some(*after),
            _ => None,
        });
    let (_, f) = scripted(vec![Error::Throttled(ms(700)), Error::Throttled(ms(50))]);
    let start = Instant::now();
    assert_eq!(retry.run(f).await, Ok(3));
    // max(100, 700) then max(100, 50).
    assert_eq!(start.elapsed(), ms(800));
}

#[tokio::test(start_paused = true)]
async fn hook_sees_each_retry() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let retry = Retry::new(Backoff::exponential(ms(10)))
        .max_attempts(3)
        .on_retry(move |err: &Error, attempt, delay| {
            log.lock().unwrap().push((err.clone(), attempt, delay));
        });
    let (_, f) = scripted(vec![Error::Transient; 5]);
    let _ = retry.run(f).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [(Error::Transient, 1, ms(10)), (Error::Transient, 2, ms(20))]
    );
}

#[tokio::test(start_paused = true)]
async fn holds_the_pause_only_while_backing_off() {
    let pause = PauseHandle::new();
    let retry = Retry::new(Backoff::constant(ms(100)))
        .max_attempts(3)
        .pause_while_backing_off(&pause);
    let observer = pause.clone();
    let mut fut = task::spawn(retry.run(move || {
        // Never paused while an attempt runs.
        assert!(!observer.is_paused());
        async {
            sleep(ms(10)).await;
            Err::<(), _>(Error::Transient)
        }
    }));
    assert_pending!(fut.poll());
    assert!(!pause.is_paused());
    tokio::time::advance(ms(10)).await;
    assert_pending!(fut.poll()); // failed, now backing off
    assert!(pause.is_paused());
    tokio::time::advance(ms(99)).await;
    assert_pending!(fut.poll());
    assert!(pause.is_paused());
    tokio::time::advance(ms(1)).await;
    assert_pending!(fut.poll()); // second attempt running
    assert!(!pause.is_paused());
    // Cancelling during a backoff releases the pause.
    tokio::time::advance(ms(10)).await;
    assert_pending!(fut.poll());
    assert!(pause.is_paused());
    drop(fut);
    assert!(!pause.is_paused());
}

#[tokio::test(start_paused = true)]
async fn one_attempt_policy_never_sleeps() {
    let retry = Retry::new(Backoff::constant(Duration::from_secs(3600))).max_attempts(1);
    let mut fut = task::spawn(retry.run(|| async { Err::<(), _>(Error::Transient) }));
    let err = assert_ready!(fut.poll()).unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.reason(), StopReason::AttemptsExhausted);
}

#[test]
#[should_panic(expected = "Retry::max_attempts: attempts must be at least 1")]
fn zero_attempts_panics() {
    let _ = Retry::<Error>::new(Backoff::constant(ms(1))).max_attempts(0);
}

#[test]
fn error_display_and_source() {
    use std::error::Error as _;
    let err = RetryError::<std::io::Error>::clone_free_example();
    assert_eq!(
        err.to_string(),
        "gave up after 3 attempts (attempts exhausted): down"
    );
    assert!(err.source().is_some());
}

/// Builds a `RetryError` through the public API only.
trait Example {
    fn clone_free_example() -> Self;
}

impl Example for RetryError<std::io::Error> {
    fn clone_free_example() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(
            Retry::new(Backoff::constant(ms(1)))
                .run(|| async { Err::<(), _>(std::io::Error::other("down")) }),
        )
        .unwrap_err()
    }
}
