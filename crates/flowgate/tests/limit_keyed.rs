//! `flowgate::limit::KeyedRateLimiter`: exact per key under paused time,
//! FIFO per key, eviction that keeps memory bounded and changes no
//! decision, cancel safety.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::limit::{KeyedRateLimiter, Rate};
use proptest::prelude::*;
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

const MS: Duration = Duration::from_millis(1);

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn auto_traits() {
    assert_send_sync::<KeyedRateLimiter<String>>();
    let limiter = KeyedRateLimiter::<String>::new(Rate::per_second(1));
    let key = "k".to_owned();
    assert_send(&limiter.acquire(&key));
}

/// Offsets from `start` at which `n` acquires on `key`, one after the
/// other, completed.
async fn sequential(
    limiter: KeyedRateLimiter<&'static str>,
    key: &'static str,
    n: usize,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        limiter.acquire(&key).await;
        times.push(start.elapsed());
    }
    times
}

// ===== 1. exact per key, keys independent =====

#[tokio::test(start_paused = true)]
async fn each_key_keeps_its_own_exact_schedule() {
    // A at the default 10/s (100 ms), B at its override 4/s (250 ms), C
    // with a burst of 3 at 20/s: run at once, none disturbs another.
    let limiter = KeyedRateLimiter::builder(Rate::per_second(10))
        .rate_for("B", Rate::per_second(4))
        .rate_for("C", Rate::per_second(20).with_burst(3))
        .build()
        .unwrap();
    let (a, b, c) = tokio::join!(
        sequential(limiter.clone(), "A", 30),
        sequential(limiter.clone(), "B", 12),
        sequential(limiter.clone(), "C", 10),
    );
    let expect = |n: usize, interval: u64| -> Vec<Duration> {
        (0..n as u64).map(|k| MS * (k * interval) as u32).collect()
    };
    assert_eq!(a, expect(30, 100));
    assert_eq!(b, expect(12, 250));
    // C: 3 at once, then one every 50 ms.
    let mut want_c = vec![Duration::ZERO; 3];
    want_c.extend((1..=7).map(|k| MS * (50 * k)));
    assert_eq!(c, want_c);
}

#[tokio::test(start_paused = true)]
async fn many_waiters_on_two_keys_finish_at_the_gcra_instants() {
    // n waiters on A and m on B, all queued at t = 0: the k-th waiter of a
    // key finishes at k intervals of that key's rate.
    let limiter = KeyedRateLimiter::builder(Rate::per_second(8)) // 125 ms
        .rate_for("B", Rate::per_second(5)) // 200 ms
        .build()
        .unwrap();
    let start = Instant::now();
    let spawn = |key: &'static str| {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            limiter.acquire(&key).await;
            start.elapsed()
        })
    };
    let a: Vec<_> = (0..40).map(|_| spawn("A")).collect();
    let b: Vec<_> = (0..25).map(|_| spawn("B")).collect();
    for (k, task) in a.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), MS * (125 * k as u32), "A #{k}");
    }
    for (k, task) in b.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), MS * (200 * k as u32), "B #{k}");
    }
}

#[tokio::test(start_paused = true)]
async fn inexact_interval_does_not_drift_for_queued_waiters() {
    // 3/s: 333.333333 ms, below the timer's resolution: 301 queued waiters
    // end within a millisecond of 300 intervals.
    let rate = Rate::per_second(3);
    let limiter = KeyedRateLimiter::new(rate);
    let start = Instant::now();
    let tasks: Vec<_> = (0..301)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire(&0u8).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let exact = rate.interval() * 300;
    let last = start.elapsed();
    assert!(last >= exact && last - exact <= MS, "{last:?} vs {exact:?}");
}

#[tokio::test(start_paused = true)]
async fn try_acquire_reports_when_each_key_is_ready() {
    let limiter = KeyedRateLimiter::builder(Rate::per_second(2))
        .rate_for(9u32, Rate::per_second(10))
        .build()
        .unwrap();
    limiter.try_acquire(&1).unwrap();
    limiter.try_acquire(&9).unwrap();
    assert_eq!(limiter.try_acquire(&1).unwrap_err().wait_time(), MS * 500);
    assert_eq!(limiter.try_acquire(&9).unwrap_err().wait_time(), MS * 100);
    // Other keys are untouched.
    for key in 2..9 {
        limiter.try_acquire(&key).unwrap();
    }
    advance(MS * 100).await;
    limiter.try_acquire(&9).unwrap();
    assert!(limiter.try_acquire(&1).is_err());
    advance(MS * 400).await;
    limiter.try_acquire(&1).unwrap();
}

#[tokio::test(start_paused = true)]
async fn overrides_change_at_run_time() {
    let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    limiter.try_acquire(&"k").unwrap();
    // A burst of 2 at the same interval: the second cell is free at once.
    assert_eq!(
        limiter.set_rate_for("k", Rate::per_second(1).with_burst(2)),
        None
    );
    limiter.try_acquire(&"k").unwrap();
    assert!(limiter.try_acquire(&"k").is_err());
    assert_eq!(
        limiter.remove_rate_for(&"k"),
        Some(Rate::per_second(1).with_burst(2))
    );
    assert_eq!(limiter.rate_for(&"k"), Rate::per_second(1));
    // The TAT carries over: two cells taken, the next one at 2 s.
    assert_eq!(
        limiter.try_acquire(&"k").unwrap_err().wait_time(),
        MS * 2000
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_sees_an_override_at_once() {
    // One per 10 s; the waiter's slot is at 10 s. An override with a burst
    // of 2 frees a cell now, and the waiter takes it without waiting for
    // its old timer.
    let ten = Duration::from_secs(10);
    let limiter = KeyedRateLimiter::new(Rate::per_period(1, ten));
    let start = Instant::now();
    limiter.acquire(&1u8).await;
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move {
            limiter.acquire(&1u8).await;
            start.elapsed()
        }
    });
    sleep(Duration::from_secs(1)).await;
    limiter.set_rate_for(1, Rate::per_period(1, ten).with_burst(2));
    assert_eq!(waiter.await.unwrap(), Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_never_exceed_the_burst() {
    // 1 per hour with a burst of 5, 16 keys, 4 threads hammering: exactly
    // 5 cells per key pass, whatever the interleaving.
    let limiter =
        KeyedRateLimiter::new(Rate::per_period(1, Duration::from_secs(3600)).with_burst(5));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut passed = [0u32; 16];
                for round in 0..10_000u64 {
                    let key = round % 16;
                    if limiter.try_acquire(&key).is_ok() {
                        passed[key as usize] += 1;
                    }
                }
                passed
            })
        })
        .collect();
    let mut total = [0u32; 16];
    for task in tasks {
        for (t, p) in total.iter_mut().zip(task.await.unwrap()) {
            *t += p;
        }
    }
    assert_eq!(total, [5; 16]);
}

// ===== 2. FIFO per key =====

#[tokio::test(start_paused = true)]
async fn waiters_on_one_key_finish_in_arrival_order() {
    let limiter = KeyedRateLimiter::new(Rate::per_second(100).with_burst(3));
    let order = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (limiter, order) = (limiter.clone(), Arc::clone(&order));
            tokio::spawn(async move {
                limiter.acquire(&"k").await;
                order.lock().unwrap().push(i);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn try_acquire_is_refused_while_someone_waits_even_with_a_free_cell() {
    let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    let start = Instant::now();
    limiter.try_acquire(&"k").unwrap();
    let mut waiter = task::spawn(limiter.acquire(&"k"));
    assert_pending!(waiter.poll());
    // The waiter's slot (1 s) has come, but it has not run yet: the cell
    // is its, not a later caller's.
    advance(Duration::from_secs(1)).await;
    assert!(waiter.is_woken());
    let refused = limiter.try_acquire(&"k").unwrap_err();
    // After the one waiter: its cell at 1 s, the next at 2 s.
    assert_eq!(refused.ready_at(), start + Duration::from_secs(2));
    // Other keys are not held up.
    limiter.try_acquire(&"other").unwrap();
    assert_ready!(waiter.poll());
    drop(waiter);
    advance(Duration::from_secs(1)).await;
    limiter.try_acquire(&"k").unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_late_waiter_keeps_its_place_behind_the_queue() {
    // A waiter arriving while others wait goes behind them even if, at
    // that instant, a cell happens to be free (the head was woken but has
    // not run).
    let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    limiter.try_acquire(&"k").unwrap();
    let mut first = task::spawn(limiter.acquire(&"k"));
    assert_pending!(first.poll());
    advance(Duration::from_secs(1)).await;
    let mut second = task::spawn(limiter.acquire(&"k"));
    assert_pending!(second.poll());
    assert_ready!(first.poll());
    assert!(second.is_woken(), "the head passed: the next one looks");
    assert_pending!(second.poll());
    advance(Duration::from_secs(1)).await;
    assert_ready!(second.poll());
}

// ===== 3. eviction =====

#[tokio::test(start_paused = true)]
async fn a_million_one_off_keys_are_evicted() {
    let limiter = KeyedRateLimiter::new(Rate::per_second(10));
    for key in 0..1_000_000u64 {
        limiter.try_acquire(&key).unwrap();
    }
    // All live (each TAT is 100 ms ahead): nothing may go yet.
    assert_eq!(limiter.len(), 1_000_000);
    limiter.retain_recent();
    assert_eq!(limiter.len(), 1_000_000);
    advance(MS * 100).await;
    limiter.retain_recent();
    // Every key is back at "full burst": none carries information.
    assert_eq!(limiter.len(), 0);
    // And each behaves as new.
    for key in (0..1_000_000u64).step_by(1000) {
        limiter.try_acquire(&key).unwrap();
    }
    assert_eq!(limiter.len(), 1000);
}

#[tokio::test(start_paused = true)]
async fn amortised_eviction_bounds_len_by_the_live_keys() {
    // 1,000,000 distinct keys at 10,000 per second, each at 1 per second:
    // at any time about 10,000 keys are live. Without any call to
    // `retain_recent`, `len()` stays below 2 × live + sweep_threshold
    // (the bound in the docs), with 10 % for uneven shards.
    let limiter = KeyedRateLimiter::builder(Rate::per_second(1))
        .shards(8)
        .sweep_threshold(1024)
        .build()
        .unwrap();
    let live = 10_000;
    let bound = 2 * live * 11 / 10 + 1024;
    let mut peak = 0;
    for batch in 0..10_000u64 {
        for key in batch * 100..(batch + 1) * 100 {
            limiter.try_acquire(&key).unwrap();
        }
        let len = limiter.len();
        assert!(len <= bound, "len {len} > {bound} after batch {batch}");
        peak = peak.max(len);
        advance(MS * 10).await;
    }
    // It does keep the live keys: at least those of the last second.
    assert!(limiter.len() >= live, "{}", limiter.len());
    assert!(peak > live, "the bound is not trivially met: {peak}");
}

#[tokio::test(start_paused = true)]
async fn keys_with_waiters_or_overrides_survive_eviction() {
    let limiter = KeyedRateLimiter::builder(Rate::per_second(1).with_burst(2))
        .sweep_threshold(1)
        .build()
        .unwrap();
    limiter.set_rate_for("slow", Rate::per_period(1, Duration::from_secs(10)));
    limiter.try_acquire(&"slow").unwrap();
    limiter.try_acquire(&"busy").unwrap();
    limiter.try_acquire(&"busy").unwrap();
    let mut waiter = task::spawn(limiter.acquire(&"busy"));
    assert_pending!(waiter.poll());
    advance(Duration::from_secs(11)).await;
    // "busy" would be idle, but its waiter has not taken its cell yet.
    limiter.retain_recent();
    assert_eq!(limiter.len(), 1);
    assert_ready!(waiter.poll());
    // The override outlives the eviction of its key's state.
    advance(Duration::from_secs(10)).await;
    limiter.retain_recent();
    assert_eq!(limiter.len(), 0);
    assert_eq!(
        limiter.rate_for(&"slow"),
        Rate::per_period(1, Duration::from_secs(10))
    );
    limiter.try_acquire(&"slow").unwrap();
    assert_eq!(
        limiter.try_acquire(&"slow").unwrap_err().wait_time(),
        Duration::from_secs(10)
    );
}

#[derive(Debug, Clone)]
enum Op {
    Try(u8),
    Acquire(u8),
    Advance(u16),
    SetRate(u8, u8),
    RemoveRate(u8),
    Retain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6u8).prop_map(Op::Try),
        2 => (0..6u8).prop_map(Op::Acquire),
        3 => (0..400u16).prop_map(Op::Advance),
        1 => (0..6u8, 0..4u8).prop_map(|(k, r)| Op::SetRate(k, r)),
        1 => (0..6u8).prop_map(Op::RemoveRate),
        1 => Just(Op::Retain),
    ]
}

fn rate_choice(r: u8) -> Rate {
    match r {
        0 => Rate::per_second(10),
        1 => Rate::per_second(3).with_burst(2),
        2 => Rate::per_period(1, Duration::from_millis(750)),
        _ => Rate::per_second(20).with_burst(5),
    }
}

/// What one limiter decided on a schedule: every `try_acquire` result (as
/// an offset of its `ready_at`), and when each `acquire` finished.
async fn decisions(
    limiter: KeyedRateLimiter<u8>,
    ops: &[Op],
) -> (Vec<Result<(), Duration>>, Vec<Duration>) {
    let start = Instant::now();
    let mut tries = Vec::new();
    let mut waiters = Vec::new();
    for op in ops {
        match *op {
            Op::Try(k) => tries.push(
                limiter
                    .try_acquire(&k)
                    .map_err(|e| e.ready_at().duration_since(start)),
            ),
            Op::Acquire(k) => {
                let limiter = limiter.clone();
                waiters.push(tokio::spawn(async move {
                    limiter.acquire(&k).await;
                    start.elapsed()
                }));
            }
            Op::Advance(ms) => advance(MS * u32::from(ms)).await,
            Op::SetRate(k, r) => {
                limiter.set_rate_for(k, rate_choice(r));
            }
            Op::RemoveRate(k) => {
                limiter.remove_rate_for(&k);
            }
            Op::Retain => limiter.retain_recent(),
        }
        // Let woken waiters run before the next step.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }
    let mut done = Vec::new();
    for waiter in waiters {
        done.push(waiter.await.unwrap());
    }
    (tries, done)
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn eviction_never_changes_a_decision(ops in prop::collection::vec(op(), 1..80)) {
        let evicting = |retain: bool| {
            let ops: Vec<Op> = ops
                .iter()
                .filter(|op| retain || !matches!(op, Op::Retain))
                .cloned()
                .collect();
            let limiter = if retain {
                // Sweeps at nearly every new key, and on every `Retain`.
                KeyedRateLimiter::builder(Rate::per_second(4)).shards(2).sweep_threshold(1).build().unwrap()
            } else {
                KeyedRateLimiter::builder(Rate::per_second(4)).sweep_threshold(usize::MAX).build().unwrap()
            };
            paused_runtime().block_on(async move {
                let got = decisions(limiter.clone(), &ops).await;
                (got, limiter.len())
            })
        };
        let (with, with_len) = evicting(true);
        let (without, without_len) = evicting(false);
        prop_assert_eq!(with, without);
        prop_assert!(with_len <= without_len);
    }
}

// ===== 5. cancel safety =====

#[tokio::test(start_paused = true)]
async fn a_cancelled_head_gives_its_slot_to_the_next() {
    let limiter = KeyedRateLimiter::new(Rate::per_second(1));
    let start = Instant::now();
    limiter.try_acquire(&"k").unwrap();
    let first = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire(&"k").await }
    });
    let second = tokio::spawn({
        let limiter = limiter.clone();
        async move {
            limiter.acquire(&"k").await;
            start.elapsed()
        }
    });
    sleep(MS * 500).await;
    first.abort();
    // The second waiter takes the slot the first one left: 1 s, not 2 s.
    assert_eq!(second.await.unwrap(), Duration::from_secs(1));
    assert_eq!(
        limiter.try_acquire(&"k").unwrap_err().wait_time(),
        Duration::from_secs(1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_takes_no_cell_and_blocks_nobody() {
    let limiter = KeyedRateLimiter::new(Rate::per_second(10));
    limiter.try_acquire(&"k").unwrap();
    // Cancelled in the middle of the queue and at its head.
    let mut head = task::spawn(limiter.acquire(&"k"));
    let mut middle = task::spawn(limiter.acquire(&"k"));
    let mut tail = task::spawn(limiter.acquire(&"k"));
    assert_pending!(head.poll());
    assert_pending!(middle.poll());
    assert_pending!(tail.poll());
    drop(middle);
    drop(head);
    assert!(tail.is_woken(), "the new head is told");
    advance(MS * 100).await;
    assert_ready!(tail.poll());
    drop(tail);
    // Two cancelled calls took nothing: the next cell is 100 ms after the
    // tail's.
    assert_eq!(limiter.try_acquire(&"k").unwrap_err().wait_time(), MS * 100);
    // And a timeout that gives up leaves nothing behind.
    let given_up = tokio::time::timeout(MS * 50, limiter.acquire(&"k")).await;
    assert!(given_up.is_err());
    advance(MS * 50).await;
    limiter.try_acquire(&"k").unwrap();
}
