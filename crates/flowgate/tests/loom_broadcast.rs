//! Loom models of the concurrent core of `flowgate::broadcast`: publication
//! of slots, the waiting flag and wakeups, closing, block reclamation and the
//! bounded publisher's wait for its slowest subscriber.
//!
//! Under loom blocks hold 2 events, so three events cross a block boundary.
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p flowgate --test loom_broadcast
//! ```
//!
//! Each model bounds the preemptions it explores (3, or 2 for the models with
//! three threads); `LOOM_MAX_PREEMPTIONS` overrides that for a
//! longer, deeper search.
#![cfg(loom)]

use flowgate::broadcast::{BoundedPublisher, Publisher, Subscriber};
use loom::future::block_on;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(3, f);
}

fn model_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

fn read_all(mut sub: Subscriber<u32>) -> Vec<u32> {
    block_on(async move {
        let mut seen = Vec::new();
        while let Some(event) = sub.recv().await {
            seen.push(event);
        }
        seen
    })
}

#[test]
fn publisher_and_a_subscriber_across_blocks() {
    model(|| {
        let mut publisher = Publisher::new();
        let sub = publisher.subscribe();
        let reader = thread::spawn(move || read_all(sub));
        for i in 0..3 {
            publisher.publish(i);
        }
        drop(publisher);
        assert_eq!(reader.join().unwrap(), [0, 1, 2]);
    });
}

#[test]
fn publisher_and_two_subscribers_see_every_event() {
    // Two events fill the first block: the subscribers follow the link and
    // find the end in the second one.
    model_bounded(2, || {
        let mut publisher = Publisher::new();
        let a = publisher.subscribe();
        let b = publisher.subscribe();
        let ta = thread::spawn(move || read_all(a));
        let tb = thread::spawn(move || read_all(b));
        for i in 0..2 {
            publisher.publish(i);
        }
        drop(publisher);
        assert_eq!(ta.join().unwrap(), [0, 1]);
        assert_eq!(tb.join().unwrap(), [0, 1]);
    });
}

#[test]
fn close_wakes_a_waiting_subscriber() {
    model(|| {
        let mut publisher = Publisher::new();
        let sub = publisher.subscribe();
        let reader = thread::spawn(move || read_all(sub));
        publisher.publish(7);
        publisher.close();
        assert_eq!(reader.join().unwrap(), [7]);
    });
}

#[test]
fn a_subscriber_dropped_while_publishing_frees_its_blocks() {
    model_bounded(2, || {
        let mut publisher = Publisher::new();
        let mut dropped = publisher.subscribe();
        let kept = publisher.subscribe();
        let dropper = thread::spawn(move || {
            let _ = dropped.try_recv();
            drop(dropped);
        });
        let reader = thread::spawn(move || read_all(kept));
        for i in 0..3 {
            publisher.publish(i);
        }
        drop(publisher);
        dropper.join().unwrap();
        assert_eq!(reader.join().unwrap(), [0, 1, 2]);
        // loom fails the model if a block (an `Arc`) leaks.
    });
}

#[test]
fn subscribing_while_publishing_sees_a_consecutive_suffix() {
    model(|| {
        let mut publisher = Publisher::new();
        let handle = publisher.subscribe_handle();
        let late = thread::spawn(move || read_all(handle.subscribe()));
        for i in 0..3 {
            publisher.publish(i);
        }
        drop(publisher);
        let seen = late.join().unwrap();
        let first = 3 - seen.len() as u32;
        assert_eq!(seen, (first..3).collect::<Vec<_>>());
    });
}

#[test]
fn a_forked_subscriber_sees_the_rest() {
    model(|| {
        let mut publisher = Publisher::new();
        let mut sub = publisher.subscribe();
        publisher.publish(0);
        let reader = thread::spawn(move || {
            let first = block_on(sub.recv());
            let fork = sub.clone();
            (first, read_all(sub), read_all(fork))
        });
        publisher.publish(1);
        publisher.publish(2);
        drop(publisher);
        let (first, rest, fork) = reader.join().unwrap();
        assert_eq!(first, Some(0));
        assert_eq!(rest, [1, 2]);
        assert_eq!(fork, [1, 2]);
    });
}

#[test]
fn bounded_publisher_waits_for_its_subscriber() {
    model(|| {
        let mut publisher = BoundedPublisher::new(1);
        let sub = publisher.subscribe();
        let reader = thread::spawn(move || read_all(sub));
        block_on(async {
            for i in 0..3 {
                publisher.publish(i).await;
            }
        });
        drop(publisher);
        assert_eq!(reader.join().unwrap(), [0, 1, 2]);
    });
}

#[test]
fn bounded_publisher_is_released_when_its_slow_subscriber_leaves() {
    model(|| {
        let mut publisher = BoundedPublisher::new(1);
        let mut sub = publisher.subscribe();
        let leaver = thread::spawn(move || {
            let _ = sub.try_recv();
            drop(sub);
        });
        block_on(async {
            for i in 0..3 {
                publisher.publish(i).await;
            }
        });
        leaver.join().unwrap();
    });
}
