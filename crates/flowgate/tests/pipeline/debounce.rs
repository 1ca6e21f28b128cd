use std::pin::pin;
use std::time::Duration;

use flowgate::pipeline::Debounce;
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_eq, task};

use crate::common::{collect_timed, timed};

const Q: Duration = Duration::from_millis(50);

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Debounce<stream::Iter<std::vec::IntoIter<u8>>>>();
}

#[tokio::test(start_paused = true)]
async fn yields_after_quiet_period() {
    let events = vec![
        (0, 'a'),
        (20, 'b'),
        (40, 'c'),  // quiet from 40: c at 90
        (200, 'd'), // alone: d at 250
        (300, 'e'),
        (349, 'f'), // 49 ms later: still restarts; f at 399
        (500, 'g'), // upstream ends at 500: g at once
    ];
    let s = pin!(timed(events).debounce(Q));
    let out = collect_timed(s).await;
    assert_eq!(out, vec![(90, 'c'), (250, 'd'), (399, 'f'), (500, 'g')]);
}

#[tokio::test(start_paused = true)]
async fn item_exactly_at_deadline_supersedes() {
    // 'b' arrives at the very instant the quiet period of 'a' ends: items are
    // taken before the timer is looked at, so 'b' wins.
    let s = pin!(timed(vec![(0, 'a'), (50, 'b'), (200, 'c')]).debounce(Q));
    let out = collect_timed(s).await;
    assert_eq!(out, vec![(100, 'b'), (200, 'c')]);
}

#[tokio::test(start_paused = true)]
async fn polled_by_hand() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = task::spawn(Box::pin(tokio_stream_from(rx).debounce(Q)));
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_pending!(s.poll_next());
    assert_eq!(s.dropped(), 1);
    advance(Duration::from_millis(49)).await;
    assert_pending!(s.poll_next());
    tx.send(3).unwrap();
    assert_pending!(s.poll_next());
    advance(Duration::from_millis(49)).await;
    assert_pending!(s.poll_next());
    advance(Duration::from_millis(1)).await;
    assert!(s.is_woken());
    assert_ready_eq!(s.poll_next(), Some(3));
    assert_pending!(s.poll_next());
    drop(tx);
    assert_ready_eq!(s.poll_next(), None);
    assert!(s.is_terminated());
}

/// An mpsc receiver as a stream.
fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[test]
#[should_panic(expected = "greater than zero")]
fn zero_quiet_panics() {
    let _ = stream::iter([1]).debounce(Duration::ZERO);
}
