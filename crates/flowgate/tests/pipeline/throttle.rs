use std::pin::pin;
use std::time::Duration;

use flowgate::pipeline::{Keep, ThrottleKeep};
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_eq, task};

use crate::common::{collect_timed, timed};

const P: Duration = Duration::from_millis(100);

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ThrottleKeep<stream::Iter<std::vec::IntoIter<u8>>>>();
    assert_send_sync::<Keep>();
}

fn events() -> Vec<(u64, u32)> {
    // A burst, a pause, a lone item, then items exactly a period apart.
    vec![
        (0, 0),
        (10, 1),
        (50, 2),
        (99, 3),
        (250, 4),
        (400, 5),
        (500, 6),
        (600, 7),
    ]
}

#[tokio::test(start_paused = true)]
async fn keep_first_yields_at_once_and_drops_inside_window() {
    let s = pin!(timed(events()).throttle_keep(P, Keep::First));
    let out = collect_timed(s).await;
    // 1..3 fall in [0, 100); 6 arrives exactly at 400 + 100 and passes.
    assert_eq!(out, vec![(0, 0), (250, 4), (400, 5), (500, 6), (600, 7)]);
}

#[tokio::test(start_paused = true)]
async fn keep_last_yields_latest_when_window_closes() {
    let s = pin!(timed(events()).throttle_keep(P, Keep::Last));
    let out = collect_timed(s).await;
    // Window [0, 100) keeps 3; 4 opens [250, 350); 5 opens [400, 500); 6
    // opens [500, 600); 7 opens [600, 700) and is yielded after upstream ends.
    assert_eq!(out, vec![(100, 3), (350, 4), (500, 5), (600, 6), (700, 7)]);
}

#[tokio::test(start_paused = true)]
async fn yields_are_a_period_apart() {
    for keep in [Keep::First, Keep::Last] {
        let events: Vec<(u64, u64)> = (0..200).map(|i| (i * 7, i)).collect();
        let s = pin!(timed(events).throttle_keep(P, keep));
        let out = collect_timed(s).await;
        assert!(out.len() >= 13, "{keep:?}: {}", out.len());
        for pair in out.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= 100, "{keep:?}: {pair:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn counts_dropped_and_fuses() {
    let mut s = task::spawn(Box::pin(stream::iter(0..100).throttle_keep(P, Keep::First)));
    assert_ready_eq!(s.poll_next(), Some(0));
    // 99 ready items, all inside the window: dropped in budgeted rounds.
    assert_pending!(s.poll_next());
    assert!(s.is_woken(), "a full budget wakes itself");
    while s.poll_next().is_pending() {}
    assert_eq!(s.dropped(), 99);
    assert!(s.is_terminated());
}

#[tokio::test(start_paused = true)]
async fn keep_last_polled_by_hand() {
    let mut s = task::spawn(Box::pin(
        stream::iter([1, 2, 3]).throttle_keep(P, Keep::Last),
    ));
    assert_pending!(s.poll_next());
    assert_eq!(s.dropped(), 2);
    assert!(!s.is_terminated());
    advance(Duration::from_millis(99)).await;
    assert_pending!(s.poll_next());
    advance(Duration::from_millis(1)).await;
    assert!(s.is_woken());
    assert_ready_eq!(s.poll_next(), Some(3));
    assert_ready_eq!(s.poll_next(), None);
    assert!(s.is_terminated());
}

#[test]
#[should_panic(expected = "greater than zero")]
fn zero_period_panics() {
    let _ = stream::iter([1]).throttle_keep(Duration::ZERO, Keep::First);
}
