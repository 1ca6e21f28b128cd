//! The memory bound of `flowgate::broadcast`, measured with a counting
//! global allocator: memory is reclaimed once every live subscriber has
//! passed an event, and a dropped subscriber pins nothing.
//!
//! The allocator counts every allocation of this test binary, so this binary
//! has no test harness (`harness = false` in Cargo.toml): `main` runs the
//! tests one after another on one thread, and nothing else allocates
//! meanwhile — not even libtest's output capture, which made the counts flaky
//! under parallel test threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowgate::broadcast::{BoundedPublisher, Publisher, TryRecvError};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counters are plain
// atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated and not freed.
fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts measuring the peak from the current live bytes.
fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Events per block of the stream (see "Memory" in the module docs).
const BLOCK: usize = 128;

/// What the stream may hold for a subscriber that keeps up within a
/// thousand events: a dozen blocks of 128 `u64`s (about 1.1 KB each).
const SMALL_BOUND: usize = 64 * 1024;

fn ten_million_events_through_an_active_subscriber_stay_within_a_small_bound() {
    const EVENTS: u64 = 10_000_000;
    let mut publisher = Publisher::new();
    let mut sub = publisher.subscribe();
    let baseline = reset_peak();
    let mut expected = 0;
    for i in 0..EVENTS {
        publisher.publish(i);
        if i % 1000 == 999 {
            while let Ok(event) = sub.try_recv() {
                assert_eq!(event, expected);
                expected += 1;
            }
        }
    }
    assert_eq!(expected, EVENTS, "every event was received");
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    assert!(
        peak < SMALL_BOUND,
        "peak of {peak} bytes above the start for {EVENTS} events"
    );
    // Ten million u64 events held at once would be 80 MB and more.
    assert!(live() - baseline < SMALL_BOUND);
    drop((publisher, sub));
}

fn ten_million_events_through_a_bounded_stream_with_a_concurrent_subscriber() {
    const EVENTS: u64 = 10_000_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let baseline = reset_peak();
    let received = rt.block_on(async {
        let mut publisher = BoundedPublisher::new(1024);
        let mut sub = publisher.subscribe();
        let reader = tokio::spawn(async move {
            let mut expected = 0;
            while let Some(event) = sub.recv().await {
                assert_eq!(event, expected);
                expected += 1;
            }
            expected
        });
        for i in 0..EVENTS {
            publisher.publish(i).await;
        }
        drop(publisher);
        reader.await.unwrap()
    });
    assert_eq!(received, EVENTS);
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    // 1024 events of lag, in whole blocks, plus the runtime's own needs.
    assert!(peak < SMALL_BOUND + 256 * 1024, "peak of {peak} bytes");
    drop(rt);
}

fn a_dropped_subscriber_pins_nothing() {
    const EVENTS: u64 = 200_000;
    let mut publisher = Publisher::new();
    let mut active = publisher.subscribe();
    let baseline = live();
    let lagging = publisher.subscribe();
    let fork = lagging.clone();
    for i in 0..EVENTS {
        publisher.publish(i);
        if i % 100 == 99 {
            while active.try_recv().is_ok() {}
        }
    }
    let held = live() - baseline;
    assert!(
        held > 8 * EVENTS as usize,
        "the lagging subscribers hold every event: {held} bytes"
    );
    drop(lagging);
    assert!(
        live() - baseline > 8 * EVENTS as usize,
        "the fork still holds them"
    );
    drop(fork);
    let left = live().saturating_sub(baseline);
    assert!(
        left < 8 * 1024,
        "{left} bytes left after the lagging subscribers left"
    );
    drop((publisher, active));
}

fn events_are_freed_once_every_subscriber_passed_them() {
    let event = Arc::new([0u8; 1024]);
    let mut publisher = Publisher::new();
    let mut a = publisher.subscribe();
    let mut b = publisher.subscribe();
    for _ in 0..1000 {
        publisher.publish(Arc::clone(&event));
    }
    while a.try_recv().is_ok() {}
    assert_eq!(Arc::strong_count(&event), 1001, "b still needs every event");
    for _ in 0..500 {
        b.try_recv().unwrap();
    }
    // Reclaimed a block at a time: at most one block of the events b has
    // read is still held.
    let held = Arc::strong_count(&event) - 1;
    assert!((500..500 + BLOCK).contains(&held), "{held} events held");
    while b.try_recv().is_ok() {}
    // Only the publisher's current, partly written block remains.
    assert!(Arc::strong_count(&event) - 1 < BLOCK);
    drop(publisher);
    assert_eq!(b.try_recv(), Err(TryRecvError::Closed));
    drop((a, b));
    assert_eq!(Arc::strong_count(&event), 1, "every event was dropped");
}

fn with_no_subscribers_published_events_are_freed_as_blocks_fill() {
    let mut publisher = Publisher::new();
    let baseline = reset_peak();
    for i in 0..1_000_000u64 {
        publisher.publish(i);
    }
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    assert!(peak < 8 * 1024, "peak of {peak} bytes");
    drop(publisher);
}

fn main() {
    let tests: [(&str, fn()); 5] = [
        (
            "ten_million_events_through_an_active_subscriber_stay_within_a_small_bound",
            ten_million_events_through_an_active_subscriber_stay_within_a_small_bound,
        ),
        (
            "ten_million_events_through_a_bounded_stream_with_a_concurrent_subscriber",
            ten_million_events_through_a_bounded_stream_with_a_concurrent_subscriber,
        ),
        (
            "a_dropped_subscriber_pins_nothing",
            a_dropped_subscriber_pins_nothing,
        ),
        (
            "events_are_freed_once_every_subscriber_passed_them",
            events_are_freed_once_every_subscriber_passed_them,
        ),
        (
            "with_no_subscribers_published_events_are_freed_as_blocks_fill",
            with_no_subscribers_published_events_are_freed_as_blocks_fill,
        ),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
}
