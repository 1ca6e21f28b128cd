use std::pin::pin;
use std::time::Duration;

use flowgate::pipeline::{Elapsed, IdleElapsed, IdleTimeout, ItemTimeout};
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, StreamExt};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, task};

use crate::common::{collect_timed, timed};

const D: Duration = Duration::from_millis(100);

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    type Iter = stream::Iter<std::vec::IntoIter<u8>>;
    assert_send_sync::<ItemTimeout<Iter>>();
    assert_send_sync::<IdleTimeout<Iter>>();
    assert_send_sync::<Elapsed>();
    assert_send_sync::<IdleElapsed>();
}

#[tokio::test(start_paused = true)]
async fn timeout_reports_each_gap_and_goes_on() {
    let events = vec![(50, 'a'), (120, 'b'), (370, 'c')];
    let s = pin!(
        timed(events)
            .item_timeout(D)
            .map(|r| r.map_err(|e| e.to_string()))
    );
    let out = collect_timed(s).await;
    let elapsed = || Err("no item within the timeout".to_owned());
    assert_eq!(
        out,
        vec![
            (50, Ok('a')),
            (120, Ok('b')),
            // 250 ms of silence from 120: timeouts at 220 and 320.
            (220, elapsed()),
            (320, elapsed()),
            (370, Ok('c')),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_counts_from_first_poll_and_wins_ties_for_items() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let mut s = task::spawn(Box::pin(
        stream::poll_fn(move |cx| rx.poll_recv(cx)).item_timeout(D),
    ));
    advance(Duration::from_secs(1)).await; // not polled yet: no deadline
    assert_pending!(s.poll_next());
    advance(Duration::from_millis(99)).await;
    assert_pending!(s.poll_next());
    advance(Duration::from_millis(1)).await;
    assert!(s.is_woken());
    // The deadline passed, but an item is ready: the item wins.
    tx.send(7).unwrap();
    assert_eq!(assert_ready!(s.poll_next()), Some(Ok(7)));
    assert_pending!(s.poll_next());
    advance(D).await;
    assert!(assert_ready!(s.poll_next()).unwrap().is_err());
    drop(tx);
    assert_eq!(assert_ready!(s.poll_next()), None);
    assert!(s.is_terminated());
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_ends_the_stream_once() {
    let events = vec![(50, 'a'), (140, 'b'), (400, 'c')];
    let mut s = pin!(timed(events).idle_timeout(D));
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item.map_err(|e| e.to_string()));
    }
    assert_eq!(
        out,
        vec![
            Ok('a'),
            Ok('b'),
            Err("stream idle for longer than the timeout".to_owned())
        ]
    );
    assert!(s.timed_out());
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_not_hit_ends_normally() {
    let events = vec![(50, 'a'), (140, 'b')];
    let s = pin!(timed(events).idle_timeout(D));
    let out = collect_timed(s).await;
    assert_eq!(out, vec![(50, Ok('a')), (140, Ok('b'))]);
}

#[test]
#[should_panic(expected = "greater than zero")]
fn zero_timeout_panics() {
    let _ = stream::iter([1]).item_timeout(Duration::ZERO);
}
