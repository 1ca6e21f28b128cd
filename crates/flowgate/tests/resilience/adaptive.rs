use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::pipeline::ParMapAdaptive;
use flowgate::prelude::*;
use flowgate::resilience::adaptive::BuildError;
use flowgate::resilience::{AdaptiveLimit, AdaptivePermit, Outcome};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::time::{advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<AdaptiveLimit>();
    assert_send_sync::<AdaptivePermit>();
    type Stage = ParMapAdaptive<
        stream::Iter<std::vec::IntoIter<u8>>,
        fn(u8) -> std::future::Ready<Result<u8, ()>>,
        std::future::Ready<Result<u8, ()>>,
        fn(&Result<u8, ()>) -> Outcome,
    >;
    assert_send_sync::<Stage>();
    let limit = AdaptiveLimit::new(1..=4);
    assert_send(&limit.acquire());
    assert_send(&limit.run(async { Ok::<(), ()>(()) }));
}

/// A simulated service: its latency is `base` while at most `capacity`
/// calls are in flight, and grows by `base / 2` for every call beyond.
#[derive(Clone)]
struct Service {
    capacity: usize,
    base: Duration,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Service {
    fn new(capacity: usize) -> Self {
        Service {
            capacity,
            base: ms(20),
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn call(&self) -> Result<(), ()> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let over = now.saturating_sub(self.capacity) as u32;
        sleep(self.base + self.base / 2 * over).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Runs `items` calls through `par_map_adaptive(1..=200)` against a service
/// of capacity `k`; returns the limit seen after each output.
async fn limits_against(k: usize, items: u32) -> (Vec<usize>, Service) {
    let service = Service::new(k);
    let svc = service.clone();
    let stage = stream::iter(0..items).par_map_adaptive(1..=200, move |_| {
        let svc = svc.clone();
        async move { svc.call().await }
    });
    let limit = stage.limit().clone();
    let limits = stage.map(move |_| limit.limit()).collect().await;
    (limits, service)
}

async fn assert_converges_near(k: usize) {
    let (limits, service) = limits_against(k, 20_000).await;
    // Once settled (the second half of the run), the limit stays in a band
    // around the capacity: it steps over K, meets rising latency, backs off
    // by 10 % (twice at most, while calls admitted above K drain).
    let tail = &limits[limits.len() / 2..];
    let (low, high) = (*tail.iter().min().unwrap(), *tail.iter().max().unwrap());
    let mean = tail.iter().sum::<usize>() as f64 / tail.len() as f64;
    let band = (k as f64 * 0.75).floor() as usize..=(k as f64 * 1.25).ceil() as usize;
    assert!(
        band.contains(&low) && band.contains(&high),
        "K = {k}: limit ranged {low}..={high}, outside {band:?}"
    );
    assert!(
        mean >= k as f64 * 0.8 && mean <= k as f64 * 1.1,
        "K = {k}: mean limit {mean:.1}"
    );
    // And it does reach past K (it probes), without running away.
    assert!(high > k, "K = {k}: never probed above capacity ({high})");
    assert!(service.peak.load(Ordering::SeqCst) <= (k as f64 * 1.25).ceil() as usize + 1);
}

#[tokio::test(start_paused = true)]
async fn converges_near_capacity_8() {
    assert_converges_near(8).await;
}

#[tokio::test(start_paused = true)]
async fn converges_near_capacity_32() {
    assert_converges_near(32).await;
}

#[tokio::test(start_paused = true)]
async fn grows_to_the_maximum_when_latency_never_rises() {
    let stage = stream::iter(0..3000u32).par_map_adaptive(2..=24, |x| async move {
        sleep(ms(10)).await;
        Ok::<_, ()>(x)
    });
    let limit = stage.limit().clone();
    assert_eq!(limit.limit(), 2); // starts at the minimum
    assert_eq!(stage.count().await, 3000);
    assert_eq!(limit.limit(), 24);
    assert_eq!(limit.stats().decreases, 0);
}

#[tokio::test(start_paused = true)]
async fn back_pressure_shrinks_multiplicatively_down_to_the_minimum() {
    let limit = AdaptiveLimit::builder(3..=100).initial(50).build().unwrap();
    // Every call is an overload: each window shrinks the limit by 10 %.
    let mut seen = vec![limit.limit()];
    for _ in 0..60 {
        let _ = limit
            .run(async {
                sleep(ms(10)).await;
                Err::<(), _>("overloaded")
            })
            .await;
        if *seen.last().unwrap() != limit.limit() {
            seen.push(limit.limit());
        }
    }
    // 50 -> 45 -> 40 -> 36 -> ... each a tenth less (at least one), never
    // below 3.
    assert_eq!(&seen[..4], [50, 45, 40, 36]);
    assert_eq!(*seen.last().unwrap(), 3);
    for w in seen.windows(2) {
        assert_eq!(w[1], ((w[0] as f64 * 0.9) as usize).min(w[0] - 1).max(3));
    }
}

#[tokio::test(start_paused = true)]
async fn a_decrease_below_in_flight_interrupts_nothing() {
    let limit = AdaptiveLimit::builder(1..=10).initial(10).build().unwrap();
    let permits: Vec<_> = (0..10).map(|_| limit.try_acquire().unwrap()).collect();
    assert!(limit.try_acquire().is_none());
    // A baseline, then back-pressure at the end of the next window.
    let mut permits = permits.into_iter();
    permits.next().unwrap().record(Outcome::Success); // sets the baseline (0 s RTT)
    permits.next().unwrap().record(Outcome::Overload); // window due at once: 10 -> 9
    assert_eq!(limit.limit(), 9);
    assert_eq!(limit.in_flight(), 8);
    // 8 in flight under a limit of 9: one free slot.
    let extra = limit.try_acquire().expect("room for one");
    assert!(limit.try_acquire().is_none());
    drop(extra);
    drop(permits);
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.stats().limit, 9);
    let all: Vec<_> = (0..9).map(|_| limit.try_acquire().unwrap()).collect();
    assert!(
        limit.try_acquire().is_none(),
        "room matches the limit after a decrease"
    );
    drop(all);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_as_room_comes_back() {
    let limit = AdaptiveLimit::new(1..=4);
    let held = limit.acquire().await;
    let mut waiter = task::spawn(limit.acquire());
    assert_pending!(waiter.poll());
    advance(ms(5)).await;
    held.record(Outcome::Ignore);
    assert!(waiter.is_woken());
    let permit = assert_ready!(waiter.poll());
    assert_eq!(limit.in_flight(), 1);
    drop(permit);
}

#[tokio::test(start_paused = true)]
async fn stage_holds_one_item_beyond_its_calls() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let source = stream::iter(0..10u32).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let mut stage = task::spawn(source.par_map_adaptive(1..=4, |x| async move {
        sleep(ms(10)).await;
        Ok::<_, ()>(x)
    }));
    assert_pending!(stage.poll_next());
    // Limit 1: one call in flight, one item held waiting for room.
    assert_eq!(pulled.load(Ordering::SeqCst), 2);
    assert_eq!(stage.size_hint(), (10, Some(10)));
}

#[test]
fn configuration_is_validated() {
    let b = AdaptiveLimit::builder;
    assert_eq!(b(0..=4).build().unwrap_err(), BuildError::ZeroMinLimit);
    #[allow(clippy::reversed_empty_ranges)]
    let empty = b(5..=4).build().unwrap_err();
    assert_eq!(empty, BuildError::EmptyLimitRange { min: 5, max: 4 });
    assert_eq!(
        b(1..=usize::MAX).build().unwrap_err(),
        BuildError::LimitTooLarge(usize::MAX)
    );
    assert_eq!(
        b(2..=4).initial(5).build().unwrap_err(),
        BuildError::InitialOutOfRange(5)
    );
    assert_eq!(
        b(1..=4).decrease_ratio(1.0).build().unwrap_err(),
        BuildError::DecreaseRatio(1.0)
    );
    assert_eq!(
        b(1..=4).ewma_alpha(0.0).build().unwrap_err(),
        BuildError::EwmaAlpha(0.0)
    );
    assert_eq!(
        b(1..=4).rtt_deviation_scale(-1.0).build().unwrap_err(),
        BuildError::DeviationScale(-1.0)
    );
}

#[test]
#[should_panic(expected = "AdaptiveLimit::new: range must start at 1 or more")]
fn new_panics_on_an_empty_range() {
    let _ = AdaptiveLimit::new(0..=0);
}
