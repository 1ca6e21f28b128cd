//! `flowgate::limit::FairLimit` and `FairRate`: weighted shares between
//! busy tenants, work conservation, no starvation, FIFO within a tenant,
//! cancel safety, bounded state; a model check of `FairLimit`'s rule and a
//! property check that `FairRate` only reorders who is served, never when.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::limit::{FairLimit, FairPermit, FairRate, KeyedRateLimiter, Rate};
use proptest::prelude::*;
use tokio::time::{Instant, advance, sleep, sleep_until};
use tokio_test::{assert_pending, assert_ready, task};

const MS: Duration = Duration::from_millis(1);

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn auto_traits() {
    assert_send_sync::<FairLimit<String>>();
    assert_send_sync::<FairPermit>();
    assert_send_sync::<FairRate<String>>();
    let limit = FairLimit::<String>::new(1);
    let rate = FairRate::<String>::new(Rate::per_second(1));
    let key = "k".to_owned();
    assert_send(&limit.acquire(&key));
    assert_send(&rate.acquire(&key));
}

/// Lets spawned tasks run (without moving paused time) until `done`.
async fn settle(done: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

type Counts = Arc<Mutex<HashMap<&'static str, u64>>>;

fn count(counts: &Counts, tenant: &'static str) {
    *counts.lock().unwrap().entry(tenant).or_default() += 1;
}

fn counts_of(counts: &Counts, tenant: &'static str) -> u64 {
    counts.lock().unwrap().get(tenant).copied().unwrap_or(0)
}

// ===== FairLimit: shares =====

/// `workers` tasks per tenant, each looping "acquire, hold for `hold`,
/// release", for `run_for` (not a multiple of `hold`, so no grant falls on
/// the instant the counts are read). Every tenant is waiting before the
/// first permit is handed out: a "setup" tenant holds them all until then.
async fn run_limit(
    limit: &FairLimit<&'static str>,
    tenants: &[&'static str],
    hold: Duration,
    run_for: Duration,
) -> Counts {
    let counts = Counts::default();
    let setup: Vec<_> = (0..limit.capacity())
        .map(|_| limit.try_acquire(&"setup").unwrap())
        .collect();
    let end = Instant::now() + run_for;
    for &tenant in tenants {
        for _ in 0..8 {
            let (limit, counts) = (limit.clone(), Arc::clone(&counts));
            tokio::spawn(async move {
                while Instant::now() < end {
                    let permit = limit.acquire(&tenant).await;
                    count(&counts, tenant);
                    sleep(hold).await;
                    drop(permit);
                }
            });
        }
    }
    settle(|| limit.waiting() == 8 * tenants.len()).await;
    assert_eq!(limit.waiting(), 8 * tenants.len());
    drop(setup);
    sleep_until(end).await;
    counts
}

#[tokio::test(start_paused = true)]
async fn limit_equal_weights_split_the_grants_in_half() {
    let limit = FairLimit::new(4);
    let counts = run_limit(&limit, &["heavy", "light"], MS * 10, MS * 10_005).await;
    let (heavy, light) = (counts_of(&counts, "heavy"), counts_of(&counts, "light"));
    // 1001 rounds of 4 permits: the whole capacity, half each.
    assert_eq!(heavy + light, 4004);
    assert!(heavy.abs_diff(light) <= 1, "{heavy} vs {light}");
}

#[tokio::test(start_paused = true)]
async fn limit_weights_three_to_one_give_three_to_one() {
    let limit = FairLimit::builder(4).weight("heavy", 3).build().unwrap();
    let counts = run_limit(&limit, &["heavy", "light"], MS * 10, MS * 10_005).await;
    let (heavy, light) = (counts_of(&counts, "heavy"), counts_of(&counts, "light"));
    assert_eq!(heavy + light, 4004);
    assert!(heavy.abs_diff(3 * light) <= 3, "{heavy} vs {light}");
    assert_eq!((heavy, light), (3003, 1001));
}

#[tokio::test(start_paused = true)]
async fn limit_three_tenants_share_by_weight() {
    // Weights 1:2:3 on 6 permits: 1, 2 and 3 permits each, all the time.
    let limit = FairLimit::builder(6)
        .weight("b", 2)
        .weight("c", 3)
        .build()
        .unwrap();
    let counts = run_limit(&limit, &["a", "b", "c"], MS * 10, MS * 1_005).await;
    let got = ["a", "b", "c"].map(|t| counts_of(&counts, t));
    assert_eq!(got, [101, 202, 303]);
}

#[tokio::test(start_paused = true)]
async fn limit_an_idle_tenant_leaves_everything_to_the_busy_one() {
    let limit = FairLimit::new(4);
    let counts = run_limit(&limit, &["heavy"], MS * 10, MS * 10_005).await;
    // The whole capacity: 4 permits in every one of the 1001 rounds.
    assert_eq!(counts_of(&counts, "heavy"), 4004);
    assert_eq!(limit.in_use_by(&"heavy"), 4);
}

#[tokio::test(start_paused = true)]
async fn limit_a_light_tenant_gets_the_next_freed_permit_despite_a_thousand_queued() {
    let limit = FairLimit::new(4);
    let start = Instant::now();
    let heavy: Vec<_> = (0..1004)
        .map(|_| {
            let limit = limit.clone();
            tokio::spawn(async move {
                let _permit = limit.acquire(&"heavy").await;
                sleep(MS * 10).await;
            })
        })
        .collect();
    settle(|| limit.waiting() == 1000).await;
    assert_eq!((limit.in_use_by(&"heavy"), limit.waiting()), (4, 1000));
    sleep(MS).await;
    let light = tokio::spawn({
        let limit = limit.clone();
        async move {
            let _permit = limit.acquire(&"light").await;
            start.elapsed()
        }
    });
    // The first permit freed after it came (at 10 ms) is the light one's.
    assert_eq!(light.await.unwrap(), MS * 10);
    for task in heavy {
        task.await.unwrap();
    }
    assert_eq!((limit.in_use(), limit.tenants()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn limit_serves_a_tenant_fifo() {
    let limit = FairLimit::new(1);
    let held = limit.try_acquire(&"t").unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (limit, order) = (limit.clone(), Arc::clone(&order));
            tokio::spawn(async move {
                let _permit = limit.acquire(&"t").await;
                order.lock().unwrap().push(i);
                sleep(MS).await;
            })
        })
        .collect();
    tokio::task::yield_now().await;
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn limit_try_acquire_never_overtakes_a_waiter() {
    let limit = FairLimit::new(2);
    let a = limit.try_acquire(&"a").unwrap();
    let _b = limit.try_acquire(&"a").unwrap();
    let mut waiter = task::spawn(limit.acquire(&"b"));
    assert_pending!(waiter.poll());
    drop(a);
    // The freed permit went to the waiter, not to the next caller.
    assert!(limit.try_acquire(&"c").is_none());
    let permit = assert_ready!(waiter.poll());
    assert_eq!(limit.in_use_by(&"b"), 1);
    drop(permit);
    assert!(limit.try_acquire(&"c").is_some());
}

// ===== FairLimit: cancel safety =====

#[tokio::test(start_paused = true)]
async fn limit_a_cancelled_waiter_leaks_nothing_and_blocks_nobody() {
    let limit = FairLimit::new(1);
    let held = limit.try_acquire(&"x").unwrap();
    let mut first = task::spawn(limit.acquire(&"x"));
    let mut second = task::spawn(limit.acquire(&"y"));
    let mut third = task::spawn(limit.acquire(&"y"));
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    assert_pending!(third.poll());
    // Cancelled while waiting.
    drop(first);
    assert_eq!(limit.waiting(), 2);
    // Handed a permit, then cancelled before taking it: the permit goes on.
    drop(held);
    assert!(second.is_woken());
    drop(second);
    assert!(third.is_woken());
    let permit = assert_ready!(third.poll());
    assert_eq!(
        (limit.in_use(), limit.in_use_by(&"y"), limit.waiting()),
        (1, 1, 0)
    );
    drop(permit);
    assert_eq!(
        (limit.in_use(), limit.available(), limit.tenants()),
        (0, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn limit_permits_outlive_the_limit() {
    let limit = FairLimit::new(2);
    let permit = limit.try_acquire(&"a").unwrap();
    drop(limit);
    drop(permit); // gives back to shared state that the permit kept alive
}

// ===== FairLimit: model check =====

#[derive(Debug, Clone)]
enum LimitOp {
    Acquire(u8),
    Release(usize),
    Cancel(usize),
    SetWeight(u8, u32),
    PollAll,
}

fn limit_op() -> impl Strategy<Value = LimitOp> {
    prop_oneof![
        5 => (0..4u8).prop_map(LimitOp::Acquire),
        3 => any::<usize>().prop_map(LimitOp::Release),
        2 => any::<usize>().prop_map(LimitOp::Cancel),
        1 => (0..4u8, 1..5u32).prop_map(|(t, w)| LimitOp::SetWeight(t, w)),
        3 => Just(LimitOp::PollAll),
    ]
}

/// The rule of `FairLimit`, written plainly: a freed permit goes to the
/// waiting tenant with the least `in_use / weight`, ties to the one whose
/// oldest waiter came first.
#[derive(Default)]
struct Model {
    capacity: usize,
    in_use: [usize; 4],
    weights: [u32; 4],
    /// Waiting: (waiter id, arrival).
    queues: [VecDeque<(usize, u64)>; 4],
    /// Handed a permit, not yet polled.
    granted: Vec<usize>,
    next_seq: u64,
}

impl Model {
    fn total(&self) -> usize {
        self.in_use.iter().sum()
    }

    fn acquire(&mut self, id: usize, t: usize) -> bool {
        if self.total() < self.capacity {
            self.in_use[t] += 1;
            return true;
        }
        self.queues[t].push_back((id, self.next_seq));
        self.next_seq += 1;
        false
    }

    fn release(&mut self, t: usize) {
        self.in_use[t] -= 1;
        let best = (0..4)
            .filter(|&t| !self.queues[t].is_empty())
            .min_by(|&a, &b| {
                let (ua, ub) = (self.in_use[a] as u64, self.in_use[b] as u64);
                let (wa, wb) = (u64::from(self.weights[a]), u64::from(self.weights[b]));
                (ua * wb)
                    .cmp(&(ub * wa))
                    .then(self.queues[a][0].1.cmp(&self.queues[b][0].1))
            });
        if let Some(t) = best {
            let (id, _) = self.queues[t].pop_front().unwrap();
            self.in_use[t] += 1;
            self.granted.push(id);
        }
    }

    fn cancel(&mut self, id: usize, t: usize) {
        if let Some(i) = self.granted.iter().position(|&g| g == id) {
            self.granted.remove(i);
            self.release(t);
        } else {
            self.queues[t].retain(|&(w, _)| w != id);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn limit_follows_the_model(capacity in 1..4usize, ops in prop::collection::vec(limit_op(), 1..120)) {
        let tenants: [u8; 4] = [0, 1, 2, 3];
        let limit = FairLimit::<u8>::new(capacity);
        let mut model = Model { capacity, weights: [1; 4], ..Model::default() };
        let mut held: Vec<(u8, FairPermit)> = Vec::new();
        let mut pending = Vec::new();
        let mut next_id = 0;
        for op in ops {
            match op {
                LimitOp::Acquire(t) => {
                    let id = next_id;
                    next_id += 1;
                    let mut fut = task::spawn(limit.acquire(&tenants[t as usize]));
                    let now = model.acquire(id, t as usize);
                    match fut.poll() {
                        std::task::Poll::Ready(permit) => {
                            prop_assert!(now, "granted at once only with a permit free");
                            held.push((t, permit));
                        }
                        std::task::Poll::Pending => {
                            prop_assert!(!now);
                            pending.push((id, t, fut));
                        }
                    }
                }
                LimitOp::Release(i) if !held.is_empty() => {
                    let (t, permit) = held.remove(i % held.len());
                    drop(permit);
                    model.release(t as usize);
                }
                LimitOp::Cancel(i) if !pending.is_empty() => {
                    let (id, t, fut) = pending.remove(i % pending.len());
                    drop(fut);
                    model.cancel(id, t as usize);
                }
                LimitOp::SetWeight(t, w) => {
                    limit.set_weight(t, w);
                    model.weights[t as usize] = w;
                }
                LimitOp::PollAll => {
                    let mut still = Vec::new();
                    for (id, t, mut fut) in pending {
                        let granted = model.granted.contains(&id);
                        match fut.poll() {
                            std::task::Poll::Ready(permit) => {
                                prop_assert!(granted, "waiter {} was not the model's pick", id);
                                model.granted.retain(|&g| g != id);
                                held.push((t, permit));
                            }
                            std::task::Poll::Pending => {
                                prop_assert!(!granted, "waiter {} was the model's pick", id);
                                still.push((id, t, fut));
                            }
                        }
                    }
                    pending = still;
                }
                _ => {}
            }
            // The counters agree with the model at every step.
            prop_assert_eq!(limit.in_use(), model.total());
            for t in 0..4u8 {
                prop_assert_eq!(limit.in_use_by(&t), model.in_use[t as usize]);
            }
            let queued: usize = model.queues.iter().map(VecDeque::len).sum();
            prop_assert_eq!(limit.waiting(), queued);
            // Work-conserving: no permit is free while anyone waits.
            prop_assert!(limit.available() == 0 || limit.waiting() == 0);
            let live = (0..4).filter(|&t| model.in_use[t] > 0 || !model.queues[t].is_empty()).count();
            prop_assert_eq!(limit.tenants(), live);
        }
        drop(pending);
        drop(held);
        prop_assert_eq!((limit.in_use(), limit.waiting(), limit.tenants()), (0, 0, 0));
    }
}

// ===== FairRate: shares =====

/// `workers` tasks per tenant, each calling `acquire` in a loop until
/// `run_for` has passed; every tenant is waiting before the first cell
/// (the one at 0 ms is taken beforehand).
async fn run_rate(
    fair: &FairRate<&'static str>,
    tenants: &[&'static str],
    run_for: Duration,
) -> Counts {
    let counts = Counts::default();
    fair.try_acquire(&"setup").unwrap();
    let end = Instant::now() + run_for;
    for &tenant in tenants {
        for _ in 0..4 {
            let (fair, counts) = (fair.clone(), Arc::clone(&counts));
            tokio::spawn(async move {
                while tokio::time::timeout_at(end, fair.acquire(&tenant))
                    .await
                    .is_ok()
                {
                    count(&counts, tenant);
                }
            });
        }
    }
    sleep_until(end).await;
    counts
}

#[tokio::test(start_paused = true)]
async fn rate_equal_weights_split_the_grants_in_half() {
    let fair = FairRate::new(Rate::per_second(100));
    let counts = run_rate(&fair, &["heavy", "light"], MS * 10_005).await;
    let (heavy, light) = (counts_of(&counts, "heavy"), counts_of(&counts, "light"));
    // The cells at 10, 20, ..., 10 000 ms: the whole rate, half each.
    assert_eq!(heavy + light, 1000);
    assert!(heavy.abs_diff(light) <= 1, "{heavy} vs {light}");
}

#[tokio::test(start_paused = true)]
async fn rate_weights_three_to_one_give_three_to_one() {
    let fair = FairRate::builder(Rate::per_second(100))
        .weight("heavy", 3)
        .build()
        .unwrap();
    let counts = run_rate(&fair, &["heavy", "light"], MS * 10_005).await;
    let (heavy, light) = (counts_of(&counts, "heavy"), counts_of(&counts, "light"));
    assert_eq!(heavy + light, 1000);
    assert_eq!((heavy, light), (750, 250));
}

#[tokio::test(start_paused = true)]
async fn rate_three_tenants_share_by_weight() {
    let fair = FairRate::builder(Rate::per_second(60))
        .weight("b", 2)
        .weight("c", 3)
        .build()
        .unwrap();
    let counts = run_rate(&fair, &["a", "b", "c"], Duration::from_millis(10_008)).await;
    let got = ["a", "b", "c"].map(|t| counts_of(&counts, t));
    assert_eq!(got.iter().sum::<u64>(), 600);
    for (share, want) in got.iter().zip([100, 200, 300]) {
        assert!(share.abs_diff(want) <= 1, "{got:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn rate_an_idle_tenant_leaves_the_whole_rate_to_the_busy_one() {
    let fair = FairRate::new(Rate::per_second(100));
    let counts = run_rate(&fair, &["heavy"], MS * 10_005).await;
    assert_eq!(counts_of(&counts, "heavy"), 1000);
}

#[tokio::test(start_paused = true)]
async fn rate_a_light_tenant_waits_one_grant_despite_a_thousand_queued() {
    let fair = FairRate::new(Rate::per_second(10));
    let start = Instant::now();
    let heavy: Vec<_> = (0..1001)
        .map(|_| {
            let fair = fair.clone();
            tokio::spawn(async move { fair.acquire(&"heavy").await })
        })
        .collect();
    settle(|| fair.waiting() == 1000).await;
    assert_eq!(fair.waiting(), 1000); // the first took the cell at 0 ms
    sleep(MS).await;
    let light = tokio::spawn({
        let fair = fair.clone();
        async move {
            fair.acquire(&"light").await;
            start.elapsed()
        }
    });
    // The heavy tenant's front waiter was stamped first and goes at 100 ms;
    // the light one is next, at 200 ms — not after the other 999.
    assert_eq!(light.await.unwrap(), MS * 200);
    for task in heavy {
        task.await.unwrap();
    }
    assert_eq!((fair.waiting(), fair.tenants()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn rate_is_exact_for_one_tenant() {
    let fair = FairRate::new(Rate::per_second(8).with_burst(2));
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..10 {
        fair.acquire(&"a").await;
        times.push(start.elapsed());
    }
    let want: Vec<_> = [0, 0, 125, 250, 375, 500, 625, 750, 875, 1000]
        .map(|ms| MS * ms)
        .to_vec();
    assert_eq!(times, want);
}

#[tokio::test(start_paused = true)]
async fn rate_serves_a_tenant_fifo_and_refuses_try_acquire_while_waiting() {
    let fair = FairRate::new(Rate::per_second(100));
    fair.try_acquire(&"t").unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (fair, order) = (fair.clone(), Arc::clone(&order));
            tokio::spawn(async move {
                fair.acquire(&"t").await;
                order.lock().unwrap().push(i);
            })
        })
        .collect();
    tokio::task::yield_now().await;
    let refused = fair.try_acquire(&"other").unwrap_err();
    // After the ten waiters: the cells at 10..=100 ms, then 110 ms.
    assert_eq!(refused.wait_time(), MS * 110);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

// ===== FairRate: cancel safety =====

#[tokio::test(start_paused = true)]
async fn rate_a_cancelled_head_gives_its_turn_to_the_next() {
    let fair = FairRate::new(Rate::per_second(1));
    let start = Instant::now();
    fair.try_acquire(&"x").unwrap();
    let mut first = task::spawn(fair.acquire(&"x"));
    let mut second = task::spawn(fair.acquire(&"y"));
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    advance(MS * 500).await;
    drop(first);
    assert!(second.is_woken(), "the next in line is told");
    assert_pending!(second.poll());
    advance(MS * 500).await;
    // The cell at 1 s, which the cancelled head took nothing of.
    assert_ready!(second.poll());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    drop(second);
    assert_eq!((fair.waiting(), fair.tenants()), (0, 0));
    assert_eq!(
        fair.try_acquire(&"z").unwrap_err().wait_time(),
        Duration::from_secs(1)
    );
}

#[tokio::test(start_paused = true)]
async fn rate_a_cancelled_waiter_behind_the_head_changes_nothing() {
    let fair = FairRate::new(Rate::per_second(10));
    fair.try_acquire(&"x").unwrap();
    let mut head = task::spawn(fair.acquire(&"x"));
    let mut behind = task::spawn(fair.acquire(&"x"));
    let mut other = task::spawn(fair.acquire(&"y"));
    assert_pending!(head.poll());
    assert_pending!(behind.poll());
    assert_pending!(other.poll());
    drop(behind);
    assert!(!other.is_woken());
    advance(MS * 100).await;
    assert_ready!(head.poll());
    assert!(other.is_woken());
    assert_pending!(other.poll());
    advance(MS * 100).await;
    assert_ready!(other.poll());
}

// ===== FairRate: only who, never when =====

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs the arrivals (tenant, delay after the previous one) against
/// `acquire`; returns, per arrival, when it was served and its rank in the
/// order of service.
fn serve<F, Fut>(arrivals: &[(u8, u16)], acquire: F) -> Vec<(Duration, usize)>
where
    F: Fn(u8) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let arrivals = arrivals.to_vec();
    paused_runtime().block_on(async move {
        let start = Instant::now();
        let rank = Arc::new(Mutex::new(0usize));
        let mut tasks = Vec::new();
        for (tenant, delay) in arrivals {
            sleep(MS * u32::from(delay)).await;
            let (acquire, rank) = (acquire.clone(), Arc::clone(&rank));
            tasks.push(tokio::spawn(async move {
                acquire(tenant).await;
                let mut rank = rank.lock().unwrap();
                *rank += 1;
                (start.elapsed(), *rank)
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn rate_serves_at_the_instants_of_one_fifo_queue(
        arrivals in prop::collection::vec((0..4u8, 0..60u16), 1..60),
        weights in prop::array::uniform4(1..5u32),
        burst in 1..4u32,
    ) {
        let rate = Rate::per_second(20).with_burst(burst);
        let mut builder = FairRate::builder(rate);
        for (t, w) in weights.iter().enumerate() {
            builder = builder.weight(t as u8, *w);
        }
        let fair = builder.build().unwrap();
        let fifo = KeyedRateLimiter::new(rate);
        let fair_out = serve(&arrivals, {
            let fair = fair.clone();
            move |t| { let fair = fair.clone(); async move { fair.acquire(&t).await } }
        });
        let fifo_out = serve(&arrivals, move |_| { let fifo = fifo.clone(); async move { fifo.acquire(&()).await } });
        // Work-conserving: the same instants as one FIFO queue of all calls.
        let mut fair_times: Vec<_> = fair_out.iter().map(|&(t, _)| t).collect();
        let mut fifo_times: Vec<_> = fifo_out.iter().map(|&(t, _)| t).collect();
        fair_times.sort();
        fifo_times.sort();
        prop_assert_eq!(fair_times, fifo_times);
        // FIFO within each tenant.
        for t in 0..4u8 {
            let ranks: Vec<_> = arrivals.iter().zip(&fair_out).filter(|((a, _), _)| *a == t).map(|(_, &(_, r))| r).collect();
            prop_assert!(ranks.windows(2).all(|w| w[0] < w[1]), "tenant {} served out of order: {:?}", t, ranks);
        }
        prop_assert_eq!((fair.waiting(), fair.tenants()), (0, 0));
    }
}
