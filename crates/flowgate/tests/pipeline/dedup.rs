use std::collections::VecDeque;
use std::pin::pin;
use std::time::Duration;

use flowgate::pipeline::Dedup;
use flowgate::prelude::*;
use futures_util::stream::{self, StreamExt};
use proptest::prelude::*;
use tokio_test::{assert_pending, task};

use crate::common::{collect_timed, timed};

const W: Duration = Duration::from_millis(100);

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Dedup<stream::Iter<std::vec::IntoIter<u8>>, fn(&u8) -> u8, u8>>();
}

#[tokio::test(start_paused = true)]
async fn within_time_window() {
    let events = vec![
        (0, 'a'),
        (50, 'a'),  // dup
        (99, 'a'),  // dup
        (100, 'a'), // window of the first 'a' closed exactly now: passes
        (120, 'b'),
        (150, 'a'), // dup of the 'a' at 100
        (190, 'a'), // dup: suppressed items did not extend the window
        (200, 'a'), // passes
    ];
    let mut s = pin!(timed(events).dedup_within(W, |c| *c));
    let mut out = Vec::new();
    let start = tokio::time::Instant::now();
    while let Some(c) = s.next().await {
        out.push((start.elapsed().as_millis() as u64, c));
    }
    assert_eq!(out, vec![(0, 'a'), (100, 'a'), (120, 'b'), (200, 'a')]);
    assert_eq!(s.dropped(), 4);
}

#[tokio::test(start_paused = true)]
async fn expired_keys_are_forgotten() {
    let mut events: Vec<(u64, u32)> = (0..1000).map(|k| (0, k)).collect();
    events.push((500, 5000));
    let mut s = Box::pin(timed(events).dedup_within(W, |k| *k));
    for _ in 0..1000 {
        s.next().await.unwrap();
    }
    assert!(format!("{s:?}").contains("remembered: 1000"), "{s:?}");
    assert_eq!(s.next().await, Some(5000));
    // The 1000 keys expired and were cleared on the next item.
    assert!(format!("{s:?}").contains("remembered: 1,"), "{s:?}");
}

#[tokio::test]
async fn many_duplicates_yield_to_the_executor() {
    let mut s = task::spawn(Box::pin(
        stream::iter(std::iter::repeat_n(1u8, 1000)).dedup_last(4, |x| *x),
    ));
    assert_eq!(s.poll_next(), std::task::Poll::Ready(Some(1)));
    assert_pending!(s.poll_next());
    assert!(s.is_woken());
}

#[tokio::test(start_paused = true)]
async fn fused_and_timed_passthrough() {
    let s = pin!(timed(vec![(10, 1), (20, 2)]).dedup_last(8, |x| *x));
    assert_eq!(collect_timed(s).await, vec![(10, 1), (20, 2)]);
}

#[test]
#[should_panic(expected = "at least 1")]
fn zero_capacity_panics() {
    let _ = stream::iter([1]).dedup_last(0, |x| *x);
}

#[test]
#[should_panic(expected = "greater than zero")]
fn zero_window_panics() {
    let _ = stream::iter([1]).dedup_within(Duration::ZERO, |x| *x);
}

proptest! {
    /// `dedup_last(n)` matches a naive model: drop if the key is among the
    /// last `n` keys that passed.
    #[test]
    fn dedup_last_matches_model(
        items in proptest::collection::vec(0u8..12, 0..300),
        capacity in 1usize..8,
    ) {
        let mut recent: VecDeque<u8> = VecDeque::new();
        let mut expected = Vec::new();
        for &item in &items {
            if recent.contains(&item) {
                continue;
            }
            expected.push(item);
            recent.push_back(item);
            if recent.len() > capacity {
                recent.pop_front();
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let actual: Vec<u8> = rt.block_on(
            stream::iter(items).dedup_last(capacity, |x| *x).collect(),
        );
        prop_assert_eq!(actual, expected);
    }

    /// `dedup_within` matches a naive model over timestamps.
    #[test]
    fn dedup_within_matches_model(
        items in proptest::collection::vec((0u64..40, 0u8..6), 0..150),
        window_ms in 1u64..200,
    ) {
        let mut at = 0;
        let events: Vec<(u64, u8)> = items.iter().map(|(gap, k)| { at += gap; (at, *k) }).collect();
        let mut last_pass = std::collections::HashMap::new();
        let mut expected = Vec::new();
        for &(t, k) in &events {
            match last_pass.get(&k) {
                Some(&p) if p + window_ms > t => {}
                _ => {
                    last_pass.insert(k, t);
                    expected.push((t, k));
                }
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let actual = rt.block_on(async {
            collect_timed(Box::pin(
                timed(events).dedup_within(Duration::from_millis(window_ms), |k| *k),
            ))
            .await
        });
        prop_assert_eq!(actual, expected);
    }
}
