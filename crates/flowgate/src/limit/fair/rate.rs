//! [`FairRate`]: one [`Rate`] shared by weighted tenants.

use std::collections::BTreeSet;
use std::fmt;
use std::future::poll_fn;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::time::{Sleep, sleep_until};

use super::{Tenants, store_waker, wake};
use crate::limit::error::{BuildError, NotReady};
use crate::limit::metrics::DebugName;
use crate::limit::metrics::{Kind, LimitMetrics};
use crate::limit::rate::{Clock, Params, Rate, gcra_step};
use crate::sync::lock;
use crate::telemetry::Name;

/// One unit of virtual time per grant to a tenant of weight 1: a grant to a
/// tenant of weight `w` costs `SCALE / w`, at least 1 for any `u32` weight.
const SCALE: u128 = 1 << 32;

/// A rate limiter of one [`Rate`] in all, shared fairly by tenants (keys
/// `T`) with weights.
///
/// Each time the rate allows the next call (a GCRA, exactly as in
/// [`RateLimiter`](super::super::RateLimiter)), the cell goes to the
/// waiting tenant with the smallest **virtual finish time**: self-clocked
/// fair queueing (Golestani, 1994). A tenant's oldest waiter is stamped,
/// when it comes to the front of its tenant's queue, with
/// `finish = V + 1 / weight`, where `V` is the finish time of the last
/// grant; the smallest finish is served next (ties: the earlier stamp),
/// and `V` moves to it. Within a tenant, waiters are served in order.
///
/// - **Weighted**: with every tenant busy, tenants get calls in proportion
///   to their weights (a tenant of weight 3 gets three calls to one of
///   weight 1), to within one call each.
/// - **Work-conserving**: a cell is never left unused while someone waits,
///   so an idle tenant's share goes to the others, and a tenant alone gets
///   the whole rate.
/// - **No starvation**: a tenant that comes to the front is stamped from
///   `V`, not behind the queued calls of the others, so however many calls
///   they have queued, a newcomer of weight `w` waits behind each other
///   busy tenant `i` for at most `w_i / w` of its grants (rounded up): one
///   round of the weighted schedule — one grant, between equal weights.
/// - **Bounded memory**: an idle tenant carries no credit or debt (its next
///   stamp is from `V` whatever it did before), so a tenant without waiters
///   has no state at all; weight overrides are kept until removed.
///
/// The limiter is a handle: clones share it. [`acquire`](Self::acquire)
/// borrows the handle it is called on, so no waiter outlives every handle.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::limit::{FairRate, Rate};
/// use tokio::time::{Instant, timeout_at};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // 10 calls per second, shared 3:1 between "gold" and "free".
/// let fair = FairRate::builder(Rate::per_second(10)).weight("gold", 3).build().unwrap();
/// fair.acquire(&"setup").await; // the cell at 0 ms: both wait from here
/// let end = Instant::now() + Duration::from_millis(4050);
/// let count = |tenant| {
///     let fair = &fair;
///     async move {
///         let mut n = 0;
///         while timeout_at(end, fair.acquire(&tenant)).await.is_ok() {
///             n += 1;
///         }
///         n
///     }
/// };
/// let (gold, free) = tokio::join!(count("gold"), count("free"));
/// assert_eq!((gold, free), (30, 10)); // the 40 cells from 100 ms to 4 s, 3:1
/// # }
/// ```
pub struct FairRate<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    clock: Clock,
    rate: Rate,
    params: Params,
    state: Mutex<State<T>>,
}

struct State<T> {
    tenants: Tenants<T, Turn>,
    /// The stamps of the tenants that wait, smallest first.
    ready: BTreeSet<Stamp>,
    /// The virtual time `V`: the finish time of the last grant.
    vtime: u128,
    next_stamp: u64,
    /// The GCRA's theoretical arrival time.
    tat: u64,
    /// The slot the head was told to sleep until.
    promised: Option<u64>,
    waiting: usize,
    /// The limiter's series (set under the lock, so they are exact).
    metrics: LimitMetrics,
}

#[derive(Default)]
struct Turn {
    /// The stamp of the tenant's oldest waiter.
    stamp: Option<Stamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    finish: u128,
    seq: u64,
    tenant: usize,
}

impl<T: Hash + Eq + Clone> State<T> {
    /// Stamps tenant `t`'s oldest waiter, now at the front.
    fn stamp(&mut self, t: usize) {
        let tenant = &mut self.tenants.slots[t];
        let stamp = Stamp {
            finish: self.vtime + SCALE / u128::from(tenant.weight),
            seq: self.next_stamp,
            tenant: t,
        };
        self.next_stamp += 1;
        self.ready.insert(stamp);
        tenant.data.stamp = Some(stamp);
    }

    /// The waiter served next.
    fn head(&self) -> Option<usize> {
        let stamp = self.ready.first()?;
        Some(self.tenants.slots[stamp.tenant].head)
    }

    /// The waker of the waiter served next, taken so it looks again.
    fn head_waker(&mut self) -> Option<Waker> {
        let stamp = self.ready.first()?;
        self.tenants.head_waker(stamp.tenant)
    }

    /// Takes `node` (the head, just granted a cell) out; the waker of the
    /// next head.
    fn granted(&mut self, node: usize) -> Option<Waker> {
        let t = self.tenants.waiters[node].tenant;
        if let Some(stamp) = self.tenants.slots[t].data.stamp.take() {
            self.ready.remove(&stamp);
            self.vtime = self.vtime.max(stamp.finish);
        }
        self.promised = None;
        self.leave(node);
        if self.tenants.slots[t].waiting > 0 {
            self.stamp(t);
        } else {
            self.tenants.remove(t);
        }
        self.head_waker()
    }

    /// Takes `node` (not granted) out; the waker of the next head, if
    /// `node` was the head.
    fn cancelled(&mut self, node: usize) -> Option<Waker> {
        let was_head = self.head() == Some(node);
        let t = self.tenants.waiters[node].tenant;
        self.leave(node);
        if self.tenants.slots[t].waiting == 0 {
            // The tenant's next waiter would have inherited the stamp.
            if let Some(stamp) = self.tenants.slots[t].data.stamp.take() {
                self.ready.remove(&stamp);
            }
            self.tenants.remove(t);
        }
        if was_head { self.head_waker() } else { None }
    }

    fn leave(&mut self, node: usize) {
        self.tenants.unlink(node);
        self.tenants.waiters.remove(node);
        self.waiting -= 1;
        self.metrics.waiting.set(self.waiting as f64);
    }
}

impl<T> FairRate<T>
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A limiter of `rate` calls in all, every tenant of weight 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let fair = FairRate::<&str>::new(Rate::per_second(100));
    /// assert_eq!(fair.rate(), Rate::per_second(100));
    /// ```
    pub fn new(rate: Rate) -> FairRate<T> {
        FairRate::with(rate, Vec::new(), Name::none())
    }

    /// A builder, for weights given up front (from configuration).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let fair = FairRate::builder(Rate::per_second(100)).weight("gold", 3).build().unwrap();
    /// assert_eq!(fair.weight(&"gold"), 3);
    /// ```
    pub fn builder(rate: Rate) -> FairRateBuilder<T> {
        FairRateBuilder {
            rate,
            weights: Vec::new(),
            name: Name::none(),
        }
    }

    fn with(rate: Rate, weights: Vec<(T, u32)>, name: Name) -> FairRate<T> {
        let state = State {
            tenants: Tenants::new(weights),
            ready: BTreeSet::new(),
            vtime: 0,
            next_stamp: 0,
            tat: 0,
            promised: None,
            waiting: 0,
            metrics: LimitMetrics::new(name, Kind::Rate),
        };
        FairRate {
            shared: Arc::new(Shared {
                clock: Clock::new(),
                rate,
                params: Params::of(rate),
                state: Mutex::new(state),
            }),
        }
    }

    /// The rate shared by every tenant.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// assert_eq!(FairRate::<u64>::new(Rate::per_second(5)).rate(), Rate::per_second(5));
    /// ```
    pub fn rate(&self) -> Rate {
        self.shared.rate
    }

    /// Takes a cell now if one is free and no tenant waits, without
    /// waiting. While nobody waits there is nobody to be fair to, so the
    /// tenant is charged nothing beyond the cell (an idle tenant carries no
    /// history).
    ///
    /// # Errors
    ///
    /// [`NotReady`] if no cell is free now, or if calls wait in
    /// [`acquire`](Self::acquire) (they are served first).
    /// [`ready_at`](NotReady::ready_at) is when the next cell frees up —
    /// with calls waiting, when those will have had their turns (if none
    /// gives up).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fair = FairRate::new(Rate::per_second(2));
    /// assert!(fair.try_acquire(&"a").is_ok());
    /// let not_ready = fair.try_acquire(&"b").unwrap_err();
    /// assert_eq!(not_ready.wait_time(), Duration::from_millis(500));
    /// # }
    /// ```
    pub fn try_acquire(&self, tenant: &T) -> Result<(), NotReady> {
        let _ = tenant;
        let shared = &*self.shared;
        let mut state = lock(&shared.state);
        let now = shared.clock.now();
        let p = shared.params;
        let taken = if state.waiting > 0 {
            let waiting = u64::try_from(state.waiting).unwrap_or(u64::MAX);
            Err(state
                .tat
                .max(now)
                .saturating_add(waiting.saturating_mul(p.interval))
                .saturating_sub(p.tolerance)
                .max(now))
        } else {
            gcra_step(state.tat, now, None, p).map(|tat| state.tat = tat)
        };
        match taken {
            Ok(()) => state.metrics.granted.inc(),
            Err(_) => state.metrics.rejected.inc(),
        }
        drop(state);
        taken.map_err(|slot| NotReady {
            ready_at: shared.clock.instant(slot),
        })
    }

    /// Waits for `tenant`'s turn and a free cell, and takes it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cell is taken only in the poll that completes the
    /// future, so a cancelled call takes nothing; it leaves its tenant's
    /// queue at once, and if it was next, the waiter served after it is
    /// woken to take its turn. The tenant keeps its place (its next waiter
    /// inherits the stamp); the call loses only its place in the tenant's
    /// queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{FairRate, Rate};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fair = FairRate::new(Rate::per_second(10));
    /// let start = Instant::now();
    /// for _ in 0..3 {
    ///     fair.acquire(&"a").await;
    /// }
    /// assert_eq!(start.elapsed(), Duration::from_millis(200)); // alone: the whole rate
    /// # }
    /// ```
    pub async fn acquire(&self, tenant: &T) {
        let mut waiting = Waiting {
            shared: &self.shared,
            key: tenant,
            node: None,
            sleep: None,
            since: 0,
        };
        poll_fn(|cx| waiting.poll(cx)).await;
    }

    /// The weight of `tenant`: its override, or 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let fair = FairRate::new(Rate::per_second(10));
    /// fair.set_weight("gold", 3);
    /// assert_eq!((fair.weight(&"gold"), fair.weight(&"free")), (3, 1));
    /// ```
    pub fn weight(&self, tenant: &T) -> u32 {
        lock(&self.shared.state).tenants.weight(tenant)
    }

    /// Sets `tenant`'s weight, from its next stamp on (a waiter already at
    /// the front keeps its stamp); returns the override it replaces.
    ///
    /// # Panics
    ///
    /// If `weight` is zero (the tenant would never be served).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let fair = FairRate::new(Rate::per_second(10));
    /// assert_eq!(fair.set_weight("gold", 3), None);
    /// assert_eq!(fair.set_weight("gold", 4), Some(3));
    /// ```
    #[track_caller]
    pub fn set_weight(&self, tenant: T, weight: u32) -> Option<u32> {
        assert!(
            weight > 0,
            "FairRate::set_weight: weight must be at least 1"
        );
        lock(&self.shared.state)
            .tenants
            .set_weight(tenant, weight)
            .0
    }

    /// Removes `tenant`'s weight override (back to 1); returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let fair = FairRate::new(Rate::per_second(10));
    /// fair.set_weight("gold", 3);
    /// assert_eq!(fair.remove_weight(&"gold"), Some(3));
    /// assert_eq!(fair.weight(&"gold"), 1);
    /// ```
    pub fn remove_weight(&self, tenant: &T) -> Option<u32> {
        lock(&self.shared.state).tenants.remove_weight(tenant).0
    }

    /// Calls waiting now in [`acquire`](Self::acquire), of every tenant.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fair = FairRate::new(Rate::per_second(1));
    /// fair.acquire(&"a").await;
    /// let waiter = tokio::spawn({
    ///     let fair = fair.clone();
    ///     async move { fair.acquire(&"b").await }
    /// });
    /// tokio::task::yield_now().await;
    /// assert_eq!((fair.waiting(), fair.tenants()), (1, 1));
    /// waiter.await.unwrap();
    /// assert_eq!((fair.waiting(), fair.tenants()), (0, 0));
    /// # }
    /// ```
    pub fn waiting(&self) -> usize {
        lock(&self.shared.state).waiting
    }

    /// Tenants the limiter holds state for now: those with calls waiting.
    /// Every other tenant costs no memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fair = FairRate::new(Rate::per_second(1000));
    /// for tenant in 0..100u64 {
    ///     fair.acquire(&tenant).await;
    /// }
    /// assert_eq!(fair.tenants(), 0);
    /// # }
    /// ```
    pub fn tenants(&self) -> usize {
        lock(&self.shared.state).tenants.slots.len()
    }
}

/// One call of [`FairRate::acquire`]: its place in its tenant's queue, left
/// when dropped.
struct Waiting<'a, T: Hash + Eq + Clone> {
    shared: &'a Shared<T>,
    key: &'a T,
    node: Option<usize>,
    /// The head's timer, until the next cell.
    sleep: Option<Pin<Box<Sleep>>>,
    /// When it started waiting, on the limiter's clock (while `node` is
    /// set).
    since: u64,
}

impl<T: Hash + Eq + Clone> Waiting<'_, T> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared;
        loop {
            let mut state = lock(&shared.state);
            let now = shared.clock.now();
            let node = match self.node {
                Some(node) => node,
                None => {
                    if state.waiting == 0
                        && let Ok(tat) = gcra_step(state.tat, now, None, shared.params)
                    {
                        state.tat = tat;
                        state.metrics.granted.inc();
                        state.metrics.waited(0);
                        return Poll::Ready(());
                    }
                    let t = state.tenants.find_or_insert(self.key, Turn::default);
                    let node = state.tenants.push(t, cx.waker());
                    state.waiting += 1;
                    state.metrics.waiting.set(state.waiting as f64);
                    self.since = now;
                    if state.tenants.slots[t].data.stamp.is_none() {
                        state.stamp(t);
                    }
                    self.node = Some(node);
                    node
                }
            };
            if state.head() != Some(node) {
                store_waker(&mut state.tenants.waiters[node].waker, cx.waker());
                self.sleep = None;
                return Poll::Pending;
            }
            let slot = match gcra_step(state.tat, now, state.promised, shared.params) {
                Ok(tat) => {
                    state.tat = tat;
                    self.node = None;
                    state.metrics.granted.inc();
                    state.metrics.waited(now.saturating_sub(self.since));
                    let next = state.granted(node);
                    drop(state);
                    wake(next);
                    return Poll::Ready(());
                }
                Err(slot) => slot,
            };
            state.promised = Some(slot);
            store_waker(&mut state.tenants.waiters[node].waker, cx.waker());
            drop(state);
            let deadline = shared.clock.instant(slot);
            let sleep = match &mut self.sleep {
                Some(sleep) => {
                    sleep.as_mut().reset(deadline);
                    sleep
                }
                None => self.sleep.insert(Box::pin(sleep_until(deadline))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<T: Hash + Eq + Clone> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        let Some(node) = self.node else { return };
        let mut state = lock(&self.shared.state);
        let next = state.cancelled(node);
        drop(state);
        wake(next);
    }
}

/// A builder of a [`FairRate`], for weights read from configuration.
/// Setters never panic; [`build`](Self::build) checks the rules.
///
/// # Examples
///
/// ```
/// use flowgate::limit::{BuildError, FairRate, Rate};
///
/// let err = FairRate::builder(Rate::per_second(1)).weight("a", 0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroWeight);
/// ```
pub struct FairRateBuilder<T> {
    rate: Rate,
    weights: Vec<(T, u32)>,
    name: Name,
}

impl<T> FairRateBuilder<T>
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Gives `tenant` a weight (the last one given for a tenant wins).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let fair = FairRate::builder(Rate::per_second(1)).weight(7u64, 3).build().unwrap();
    /// assert_eq!(fair.weight(&7), 3);
    /// ```
    pub fn weight(mut self, tenant: T, weight: u32) -> Self {
        self.weights.push((tenant, weight));
        self
    }

    /// The limiter, or the first broken rule.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroWeight`]: a weight was 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let fair = FairRate::builder(Rate::per_second(1)).weight("a", u32::MAX).build().unwrap();
    /// assert_eq!(fair.weight(&"a"), u32::MAX);
    /// ```
    pub fn build(self) -> Result<FairRate<T>, BuildError> {
        if self.weights.iter().any(|&(_, w)| w == 0) {
            let err = BuildError::ZeroWeight;
            tracing::warn!(
                name = %self.name.as_str(),
                error = %err,
                "FairRate configuration refused"
            );
            return Err(err);
        }
        Ok(FairRate::with(self.rate, self.weights, self.name))
    }

    /// Names the limiter: with the `metrics` feature it records, with the
    /// label `name` (any string, as given; see [`crate::metrics`]):
    ///
    /// - `flowgate_limit_granted_total`: cells taken (by
    ///   [`acquire`](FairRate::acquire) and
    ///   [`try_acquire`](FairRate::try_acquire));
    /// - `flowgate_limit_rejected_total{reason="not_ready"}`: refused
    ///   `try_acquire` calls;
    /// - `flowgate_limit_waiting`: `acquire` calls waiting now
    ///   ([`waiting`](FairRate::waiting));
    /// - `flowgate_limit_wait_seconds`: how long each `acquire` waited, 0
    ///   for those that did not, from the times the limiter reads anyway.
    ///
    /// All tenants together: tenants are an open set (any `T`), so no
    /// series is per tenant. Unnamed, the limiter records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{FairRate, Rate};
    ///
    /// let rate = FairRate::builder(Rate::per_second(100))
    ///     .weight("api", 3)
    ///     .name("vendor-api")
    ///     .build()
    ///     .unwrap();
    /// # let _: FairRate<&str> = rate;
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }
}

impl<T> fmt::Debug for FairRateBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FairRateBuilder")
            .field("rate", &self.rate)
            .field("weights", &self.weights.len())
            .name_field(&self.name)
            .finish()
    }
}

impl<T> Clone for FairRate<T> {
    fn clone(&self) -> Self {
        FairRate {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for FairRate<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("FairRate")
            .field("rate", &self.shared.rate)
            .field("waiting", &state.waiting)
            .name_field(&state.metrics.name)
            .finish()
    }
}
