use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::pipeline::Pausable;
use flowgate::prelude::*;
use flowgate::resilience::{PauseGuard, PauseHandle};
use futures_util::stream::{self, FusedStream, StreamExt};
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_unpin<T: Unpin>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<PauseHandle>();
    assert_send_sync::<PauseGuard>();
    assert_send_sync::<Pausable<stream::Iter<std::vec::IntoIter<u8>>>>();
    assert_unpin::<Pausable<stream::Iter<std::vec::IntoIter<u8>>>>();
    assert_send(&PauseHandle::new().paused());
}

/// A source counting how many items were pulled from it.
fn counted(n: u32) -> (Arc<AtomicUsize>, impl futures_util::Stream<Item = u32>) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let source = stream::iter(0..n).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (pulled, source)
}

#[tokio::test]
async fn switch_and_holds_combine() {
    let pause = PauseHandle::new();
    assert!(!pause.is_paused());
    pause.pause();
    pause.pause();
    assert!(pause.is_paused());
    pause.resume(); // a switch, not a count
    assert!(!pause.is_paused());

    let a = pause.hold();
    let b = pause.clone().hold();
    pause.resume(); // does not lift holds
    assert!(pause.is_paused());
    drop(a);
    assert!(pause.is_paused());
    drop(b);
    assert!(!pause.is_paused());

    pause.pause();
    let c = pause.hold();
    drop(c); // the switch still holds
    assert!(pause.is_paused());
}

#[tokio::test]
async fn pausable_pulls_nothing_while_paused() {
    let pause = PauseHandle::new();
    let (pulled, source) = counted(5);
    let mut s = task::spawn(source.pausable(&pause));
    assert_eq!(assert_ready!(s.poll_next()), Some(0));
    pause.pause();
    assert_pending!(s.poll_next());
    assert_pending!(s.poll_next());
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        1,
        "nothing pulled while paused"
    );
    assert!(!s.is_woken());
    pause.resume();
    assert!(s.is_woken());
    assert_eq!(assert_ready!(s.poll_next()), Some(1));

    let guard = pause.hold();
    assert_pending!(s.poll_next());
    drop(guard);
    assert!(s.is_woken());
    assert_eq!(assert_ready!(s.poll_next()), Some(2));
    assert_eq!(pulled.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_pause_lifted_and_reapplied_before_the_poll_stays_paused() {
    let pause = PauseHandle::new();
    let mut s = task::spawn(stream::iter(0..3).pausable(&pause));
    pause.pause();
    assert_pending!(s.poll_next());
    pause.resume();
    pause.pause();
    assert!(s.is_woken());
    assert_pending!(s.poll_next());
    pause.resume();
    assert!(s.is_woken());
    assert_eq!(assert_ready!(s.poll_next()), Some(0));
}

#[tokio::test]
async fn dropping_every_handle_lifts_a_manual_pause() {
    let pause = PauseHandle::new();
    let mut s = task::spawn(stream::iter(0..2).pausable(&pause));
    let other = pause.clone();
    pause.pause();
    assert_pending!(s.poll_next());
    drop(pause);
    assert_pending!(s.poll_next()); // `other` could still resume it
    drop(other);
    assert!(s.is_woken(), "nobody is left to resume: lifted");
    assert_eq!(assert_ready!(s.poll_next()), Some(0));
}

#[tokio::test]
async fn guards_outlive_handles() {
    let pause = PauseHandle::new();
    let mut s = task::spawn(stream::iter(0..2).pausable(&pause));
    let guard = pause.hold();
    drop(pause);
    assert_pending!(s.poll_next());
    drop(guard);
    assert!(s.is_woken());
    assert_eq!(assert_ready!(s.poll_next()), Some(0));
}

#[tokio::test(start_paused = true)]
async fn paused_waits_for_resume() {
    let pause = PauseHandle::new();
    // Not paused: resolves at once.
    let mut now = task::spawn(pause.paused());
    assert_ready!(now.poll());
    drop(now);

    pause.pause();
    let resumer = pause.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(3)).await;
        resumer.resume();
    });
    let start = Instant::now();
    pause.paused().await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_hand_written_producer_can_pause() {
    let pause = PauseHandle::new();
    let produced = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (pause, produced) = (pause.clone(), produced.clone());
        tokio::spawn(async move {
            for _ in 0..100 {
                pause.paused().await;
                produced.fetch_add(1, Ordering::SeqCst);
                sleep(Duration::from_millis(10)).await;
            }
        })
    };
    advance(Duration::from_millis(95)).await;
    tokio::task::yield_now().await;
    let before = produced.load(Ordering::SeqCst);
    pause.pause();
    advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert!(produced.load(Ordering::SeqCst) <= before + 1);
    pause.resume();
    producer.await.unwrap();
    assert_eq!(produced.load(Ordering::SeqCst), 100);
}

#[tokio::test]
async fn pausable_ends_with_upstream() {
    let pause = PauseHandle::new();
    let mut s = stream::iter(0..2).pausable(&pause);
    assert_eq!(s.next().await, Some(0));
    assert_eq!(s.next().await, Some(1));
    assert_eq!(s.next().await, None);
    assert!(s.is_terminated());
    assert!(!s.is_paused());
}
