//! The tower layers (feature `tower`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::resilience::{
    AdaptiveLimit, AdaptiveLimitLayer, Backoff, BreakerError, BreakerState, CircuitBreaker,
    CircuitBreakerLayer, Retry, RetryPolicy,
};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CircuitBreakerLayer>();
    assert_send_sync::<AdaptiveLimitLayer>();
    assert_send_sync::<RetryPolicy<std::io::Error>>();
}

#[tokio::test(start_paused = true)]
async fn breaker_layer_rejects_fast_once_open() {
    let breaker = CircuitBreaker::builder()
        .without_failure_ratio()
        .consecutive_failures(2)
        .cooldown(Duration::from_secs(5))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&breaker))
        .service(service_fn(move |_: ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("down") }
        }));
    for _ in 0..2 {
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(err, BreakerError::Inner("down"));
    }
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(
        err,
        BreakerError::Open {
            retry_after: Duration::from_secs(5)
        }
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the rejected request never reached the service"
    );
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn adaptive_layer_limits_and_learns() {
    let limit = AdaptiveLimit::new(1..=8);
    let in_flight = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let (current, top) = (in_flight.clone(), peak.clone());
    let svc = ServiceBuilder::new()
        .layer(AdaptiveLimitLayer::new(&limit))
        .service(service_fn(move |x: u32| {
            let (current, top) = (current.clone(), top.clone());
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                top.fetch_max(now, Ordering::SeqCst);
                sleep(ms(10)).await;
                current.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ()>(x)
            }
        }));
    let mut tasks = Vec::new();
    for x in 0..400 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move { svc.oneshot(x).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst) as usize;
    assert!(peak <= 8);
    assert!(limit.limit() > 4, "grew to {}", limit.limit());
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_policy_follows_the_schedule_and_the_predicate() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let start = Instant::now();
    let retry = Retry::new(Backoff::exponential(ms(100)))
        .max_attempts(4)
        .when(|e: &&str| *e != "permanent");
    let mut svc = ServiceBuilder::new()
        .retry(RetryPolicy::new(retry))
        .service(service_fn(move |kind: &'static str| {
            log.lock().unwrap().push(start.elapsed());
            async move { Err::<(), _>(kind) }
        }));
    let err = svc
        .ready()
        .await
        .unwrap()
        .call("transient")
        .await
        .unwrap_err();
    assert_eq!(err, "transient");
    assert_eq!(*calls.lock().unwrap(), [ms(0), ms(100), ms(300), ms(700)]);

    calls.lock().unwrap().clear();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call("permanent")
        .await
        .unwrap_err();
    assert_eq!(err, "permanent");
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_policy_budget_counts_from_the_first_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let retry = Retry::new(Backoff::constant(ms(100)))
        .max_attempts(100)
        .budget(ms(250));
    let mut svc = ServiceBuilder::new()
        .retry(RetryPolicy::new(retry))
        .service(service_fn(move |_: ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                sleep(ms(20)).await;
                Err::<(), _>(())
            }
        }));
    svc.ready().await.unwrap().call(()).await.unwrap_err();
    // Starts at 0, 120, 240; the next would start at 360 > 250.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // A second request gets a budget of its own.
    sleep(Duration::from_secs(5)).await;
    calls.store(0, Ordering::SeqCst);
    svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
