//! Fetching through a flaky service with timeout, retry, a circuit breaker
//! and adaptive concurrency.
//!
//! The service lives in this process: 30 % of its calls fail, 5 % take
//! 400 ms (a latency spike), it slows down when more than 24 calls are in
//! flight, and it is down for half a second (an outage). The pipeline:
//!
//! ```text
//! ids ─> par_map_adaptive(1..=64, guard.run(fetch)) ─> route_errors ─> successes
//!                                                          └──> dead letters
//! guard = timeout 200 ms + circuit breaker + retry (exponential, full jitter, 4 attempts)
//! ```
//!
//! Run it with `cargo run --example resilient_fetch`. It takes several
//! seconds, nearly all of them waiting on the simulated service.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::prelude::*;
use flowgate::resilience::{
    AdaptiveLimit, Backoff, CircuitBreaker, Guard, GuardError, Jitter, Outcome, Retry, StateChange,
    Window, dead_letters,
};
use futures_util::StreamExt;
use futures_util::stream;
use tokio::time::{Instant, sleep};

const REQUESTS: u32 = 2000;
const CAPACITY: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq)]
enum FetchError {
    /// A 503: try again later.
    Unavailable,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("service unavailable")
    }
}

/// The flaky service, seeded so that every run tells the same story.
#[derive(Clone)]
struct FlakyService {
    rng: Arc<Mutex<fastrand::Rng>>,
    in_flight: Arc<AtomicUsize>,
    calls: Arc<AtomicU64>,
    start: Instant,
}

impl FlakyService {
    fn new(start: Instant) -> Self {
        FlakyService {
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(2024))),
            in_flight: Arc::new(AtomicUsize::new(0)),
            calls: Arc::new(AtomicU64::new(0)),
            start,
        }
    }

    async fn fetch(&self, id: u32) -> Result<String, FetchError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        // Counted out even when the caller times out and drops this call.
        let _in_flight = InFlight(&self.in_flight);
        let (fails, spike) = {
            let mut rng = self.rng.lock().unwrap();
            (rng.f64() < 0.30, rng.f64() < 0.05)
        };
        let elapsed = self.start.elapsed();
        let outage = elapsed >= Duration::from_millis(800) && elapsed < Duration::from_millis(1300);
        let overload = in_flight.saturating_sub(CAPACITY) as u32;
        let latency = if spike {
            Duration::from_millis(400)
        } else {
            Duration::from_millis(20) + Duration::from_millis(4) * overload
        };
        sleep(if outage {
            Duration::from_millis(5)
        } else {
            latency
        })
        .await;
        if fails || outage {
            Err(FetchError::Unavailable)
        } else {
            Ok(format!("user {id}"))
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let service = FlakyService::new(start);

    // Counters for the report.
    let retries = Arc::new(AtomicU64::new(0));
    let timeouts = Arc::new(AtomicU64::new(0));
    let rejections = Arc::new(AtomicU64::new(0));
    let changes: Arc<Mutex<Vec<(Duration, StateChange)>>> = Arc::default();

    let breaker = {
        let changes = changes.clone();
        CircuitBreaker::builder()
            .failure_ratio(0.6)
            .window(Window::last(Duration::from_secs(1)))
            .min_calls(20)
            .consecutive_failures(10)
            .cooldown(Duration::from_millis(250))
            .half_open_probes(2)
            .on_state_change(move |change| {
                changes.lock().unwrap().push((start.elapsed(), change));
            })
            .build()
            .expect("valid breaker")
    };
    let guard = {
        let (retries, timeouts, rejections) =
            (retries.clone(), timeouts.clone(), rejections.clone());
        Guard::new()
            .timeout(Duration::from_millis(200))
            .breaker(&breaker)
            .retry(
                Retry::new(
                    Backoff::exponential(Duration::from_millis(20))
                        .max_delay(Duration::from_millis(300))
                        .jitter(Jitter::Full),
                )
                .max_attempts(4)
                .jitter_seed(7),
            )
            .on_retry(move |err: &GuardError<FetchError>, _attempt, _delay| {
                retries.fetch_add(1, Ordering::Relaxed);
                if err.is_timeout() {
                    timeouts.fetch_add(1, Ordering::Relaxed);
                }
                if err.is_rejected() {
                    rejections.fetch_add(1, Ordering::Relaxed);
                }
            })
    };

    // What the adaptive stage learns from a request: a success at the
    // first attempt is a clean RTT sample; a success after retries says
    // nothing (its time includes backoff); a request that gave up is
    // back-pressure.
    let limit = AdaptiveLimit::new(1..=64);
    let (dead_tx, dead) = dead_letters::<(u32, GuardError<FetchError>)>(256);
    let svc = service.clone();
    let successes = stream::iter(0..REQUESTS)
        .par_map_adaptive_with(
            &limit,
            |(attempts, result): &(u32, Result<String, _>)| match result {
                Ok(_) if *attempts == 1 => Outcome::Success,
                Ok(_) => Outcome::Ignore,
                Err(_) => Outcome::Overload,
            },
            move |id| {
                let (guard, svc) = (guard.clone(), svc.clone());
                async move {
                    let mut attempts = 0;
                    let result = guard
                        .run(|| {
                            attempts += 1;
                            svc.fetch(id)
                        })
                        .await
                        .map_err(|err| (id, err));
                    (attempts, result)
                }
            },
        )
        .map(|(_attempts, result)| result)
        .route_errors(dead_tx);

    let (ok, dead) = tokio::join!(successes.collect::<Vec<String>>(), dead.collect::<Vec<_>>());
    let elapsed = start.elapsed();

    let stats = limit.stats();
    let breaker_stats = breaker.stats();
    println!(
        "resilient_fetch: {REQUESTS} requests to a flaky service (30 % failures, 5 % latency spikes of 400 ms, capacity {CAPACITY}, down from 0.8 s to 1.3 s)"
    );
    println!("  successes        {:>5}", ok.len());
    println!("  dead letters     {:>5}", dead.len());
    if let Some((id, err)) = dead.first() {
        println!("    e.g. request {id}: {err}");
    }
    println!(
        "  service calls    {:>5}",
        service.calls.load(Ordering::Relaxed)
    );
    println!(
        "  retries          {:>5}   ({} after a timeout, {} after the breaker rejected)",
        retries.load(Ordering::Relaxed),
        timeouts.load(Ordering::Relaxed),
        rejections.load(Ordering::Relaxed),
    );
    println!(
        "  breaker trips    {:>5}   ({} attempts rejected without calling the service)",
        breaker_stats.trips, breaker_stats.rejected
    );
    for (at, change) in changes.lock().unwrap().iter() {
        println!(
            "    {:>6.3} s  {} -> {}",
            at.as_secs_f64(),
            change.from,
            change.to
        );
    }
    println!(
        "  adaptive limit   {:>5}   (final; range {:?}, {} increases, {} decreases, baseline RTT {:?})",
        stats.limit,
        limit.range(),
        stats.increases,
        stats.decreases,
        stats.baseline_rtt.unwrap_or_default(),
    );
    println!("  elapsed          {:>5.2} s", elapsed.as_secs_f64());
    assert_eq!(
        ok.len() + dead.len(),
        REQUESTS as usize,
        "every request accounted for"
    );
}
