use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::limit::{InFlightLimit, InFlightPermit};
use flowgate::pipeline::LimitInFlight;
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, Stream, StreamExt};
use tokio::time::sleep;
use tokio_test::{assert_pending, assert_ready, task};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn auto_traits() {
    assert_send_sync::<InFlightLimit>();
    assert_send_sync::<InFlightPermit>();
    assert_send_sync::<LimitInFlight<stream::Iter<std::vec::IntoIter<u8>>>>();
    let limit = InFlightLimit::new(1);
    assert_send(&limit.acquire());
    assert_send(&limit.run(async {}));
}

#[tokio::test(start_paused = true)]
async fn shared_limit_bounds_two_pipelines() {
    let limit = InFlightLimit::new(3);
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let pipeline = |limit: InFlightLimit| {
        let (current, peak) = (current.clone(), peak.clone());
        stream::iter(0..20u32).par_map_unordered(10, move |x| {
            let (limit, current, peak) = (limit.clone(), current.clone(), peak.clone());
            async move {
                limit
                    .run(async {
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        sleep(Duration::from_millis(10)).await;
                        current.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await;
                x
            }
        })
    };
    let (a, b) = tokio::join!(
        pipeline(limit.clone()).collect::<Vec<_>>(),
        pipeline(limit.clone()).collect::<Vec<_>>()
    );
    assert_eq!(a.len(), 20);
    assert_eq!(b.len(), 20);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.available(), 3);
}

#[tokio::test(start_paused = true)]
async fn stage_waits_for_room_and_permit_travels_with_item() {
    let limit = InFlightLimit::new(2);
    let mut s = task::spawn(stream::iter(0..5u32).limit_in_flight(&limit));
    let (a, pa) = assert_ready!(s.poll_next()).unwrap();
    let (b, _pb) = assert_ready!(s.poll_next()).unwrap();
    assert_eq!((a, b), (0, 1));
    assert_eq!(limit.in_flight(), 2);
    // Item 2 is taken from upstream and held while waiting for room.
    assert_pending!(s.poll_next());
    assert_eq!(s.size_hint(), (3, Some(3)));
    drop(pa);
    assert!(s.is_woken());
    let (c, _pc) = assert_ready!(s.poll_next()).unwrap();
    assert_eq!(c, 2);
    assert!(!s.is_terminated());
}

#[tokio::test]
async fn stage_ends_with_upstream() {
    let limit = InFlightLimit::new(1);
    let out: Vec<u32> = stream::iter(0..4u32)
        .limit_in_flight(&limit)
        .map(|(x, _permit)| x)
        .collect()
        .await;
    assert_eq!(out, vec![0, 1, 2, 3]);
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test]
async fn acquire_try_acquire_and_counts() {
    let limit = InFlightLimit::new(2);
    assert_eq!(limit.max(), 2);
    let p1 = limit.acquire().await;
    let p2 = limit.try_acquire().expect("room for a second");
    assert!(limit.try_acquire().is_none());
    assert_eq!(limit.in_flight(), 2);
    let mut waiting = task::spawn(limit.acquire());
    assert_pending!(waiting.poll());
    drop(p1);
    assert!(waiting.is_woken());
    let _p3 = assert_ready!(waiting.poll());
    drop(p2);
    assert_eq!(limit.in_flight(), 1);
    assert_eq!(
        format!("{limit:?}"),
        "InFlightLimit { max: 2, in_flight: 1 }"
    );
}

#[tokio::test]
async fn cancelled_acquire_takes_nothing() {
    let limit = InFlightLimit::new(1);
    let held = limit.acquire().await;
    let mut waiting = task::spawn(limit.acquire());
    assert_pending!(waiting.poll());
    drop(waiting);
    drop(held);
    assert_eq!(limit.available(), 1);
}

#[test]
#[should_panic(expected = "at least 1")]
fn zero_limit_panics() {
    let _ = InFlightLimit::new(0);
}
