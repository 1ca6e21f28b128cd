//! [`FairLimit`]: `capacity` permits shared by weighted tenants.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::{NONE, Tenants, store_waker, wake};
use crate::limit::error::BuildError;
use crate::limit::metrics::DebugName;
use crate::limit::metrics::{Kind, LimitMetrics};
use crate::sync::lock;
use crate::telemetry::Name;

/// A limit on work in flight — `capacity` permits in all — shared fairly by
/// tenants (keys `T`) with weights.
///
/// Where an [`InFlightLimit`](super::super::InFlightLimit) serves waiters
/// first come, first served, so a tenant that queues 1,000 calls makes
/// everyone else wait behind them, a `FairLimit` gives each freed permit to
/// the waiting tenant that is **furthest below its weighted share**: the
/// one with the fewest permits held per unit of weight (`in_use / weight`),
/// ties going to the tenant whose oldest waiter has waited longest. Within
/// a tenant, waiters are served in order.
///
/// - **Work-conserving**: a permit is never left free while someone waits,
///   so an idle tenant's share goes to the others, and a tenant alone can
///   hold all `capacity` permits.
/// - **No starvation**: a tenant holding fewer permits per weight than
///   another is served before it, however many calls the other has queued.
///   A tenant holding none gets the next freed permit, unless other
///   tenants holding none were waiting before it.
/// - **Weighted**: with every tenant busy, tenants hold permits in
///   proportion to their weights (to within one permit). Weights are 1
///   unless set, with [`builder`](Self::builder) or
///   [`set_weight`](Self::set_weight).
/// - **Bounded memory**: a tenant that holds no permit and waits for none
///   has no state (weight overrides are kept until removed).
///
/// # Why "permits held per weight"
///
/// A permit is a unit of concurrency, so the share that is fair is a share
/// of the permits held *now*: the rule is max-min fairness of concurrency
/// (each freed permit goes where the weighted concurrency is lowest). It
/// needs no history, so a tenant that was busy an hour ago is not owed or
/// charged anything, and its state can go as soon as it is idle. A tenant
/// whose calls are slow holds its permits longer and gets fewer grants, but
/// the same concurrency; to share *calls* per second, use
/// [`FairRate`](super::FairRate).
///
/// # Dropping
///
/// The limit is a handle: clones share it. [`acquire`](Self::acquire)
/// borrows the handle it is called on, so a waiter cannot outlive every
/// handle; a [`FairPermit`] keeps the shared state alive by itself, and
/// dropping it after every handle is gone is fine.
///
/// # Examples
///
/// ```
/// use flowgate::limit::FairLimit;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limit = FairLimit::new(2);
/// // "bulk" takes both permits and queues ten more calls...
/// let held = [limit.acquire(&"bulk").await, limit.acquire(&"bulk").await];
/// let bulk: Vec<_> = (0..10)
///     .map(|_| {
///         let limit = limit.clone();
///         tokio::spawn(async move { limit.acquire(&"bulk").await })
///     })
///     .collect();
/// tokio::task::yield_now().await;
/// // ...then "web" asks: it gets the next permit that frees up.
/// let web = tokio::spawn({
///     let limit = limit.clone();
///     async move { limit.acquire(&"web").await }
/// });
/// tokio::task::yield_now().await;
/// drop(held);
/// let _web = web.await.unwrap();
/// assert_eq!(limit.in_use_by(&"web"), 1);
/// assert_eq!(limit.in_use_by(&"bulk"), 1);
/// # drop(bulk);
/// # }
/// ```
pub struct FairLimit<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
}

struct State<T> {
    tenants: Tenants<T, Usage>,
    /// The tenants that wait, lowest share first.
    ready: BTreeSet<Share>,
    in_use: usize,
    capacity: usize,
    waiting: usize,
    /// The limit's series (set under the lock, so they are exact).
    metrics: LimitMetrics,
}

#[derive(Default)]
struct Usage {
    in_use: usize,
    /// The tenant's key in `ready`, while it waits.
    ready: Option<Share>,
}

/// A waiting tenant's place: `in_use / weight`, then its oldest waiter.
#[derive(Debug, Clone, Copy)]
struct Share {
    in_use: usize,
    weight: u32,
    seq: u64,
    tenant: usize,
}

impl Ord for Share {
    fn cmp(&self, other: &Share) -> Ordering {
        // in_use / weight < other.in_use / other.weight, without division.
        let mine = self.in_use as u128 * u128::from(other.weight);
        let theirs = other.in_use as u128 * u128::from(self.weight);
        mine.cmp(&theirs)
            .then(self.seq.cmp(&other.seq))
            .then(self.tenant.cmp(&other.tenant))
    }
}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Share) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Share {
    fn eq(&self, other: &Share) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Share {}

impl<T: Hash + Eq + Clone> State<T> {
    /// Puts tenant `t` back in `ready` at its current share (or takes it
    /// out, if it no longer waits).
    fn refresh(&mut self, t: usize) {
        let tenant = &mut self.tenants.slots[t];
        if let Some(old) = tenant.data.ready.take() {
            self.ready.remove(&old);
        }
        if tenant.head != NONE {
            let share = Share {
                in_use: tenant.data.in_use,
                weight: tenant.weight,
                seq: self.tenants.waiters[tenant.head].seq,
                tenant: t,
            };
            self.ready.insert(share);
            tenant.data.ready = Some(share);
        }
    }

    fn take(&mut self, t: usize) {
        self.tenants.slots[t].data.in_use += 1;
        self.in_use += 1;
        self.metrics.granted.inc();
        self.metrics.in_flight.set(self.in_use as f64);
    }

    /// Hands a free permit to the head waiter of the tenant furthest below
    /// its share; its waker.
    fn grant_next(&mut self) -> Option<Waker> {
        if self.in_use >= self.capacity {
            return None;
        }
        let t = self.ready.first()?.tenant;
        let node = self.tenants.slots[t].head;
        self.tenants.unlink(node);
        self.waiting -= 1;
        self.metrics.waiting.set(self.waiting as f64);
        let waiter = &mut self.tenants.waiters[node];
        waiter.granted = true;
        let waker = waiter.waker.take();
        self.take(t);
        self.refresh(t);
        waker
    }

    /// Gives back one of tenant `t`'s permits; the waker of whoever gets it.
    fn release(&mut self, t: usize) -> Option<Waker> {
        self.tenants.slots[t].data.in_use -= 1;
        self.in_use -= 1;
        self.metrics.in_flight.set(self.in_use as f64);
        self.refresh(t);
        let waker = self.grant_next();
        self.remove_if_idle(t);
        waker
    }

    fn remove_if_idle(&mut self, t: usize) {
        let tenant = &self.tenants.slots[t];
        if tenant.data.in_use == 0 && tenant.waiting == 0 {
            self.tenants.remove(t);
        }
    }
}

impl<T> FairLimit<T>
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A limit of `capacity` permits in all, every tenant of weight 1.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero (nothing could ever run). Every other `usize`
    /// works; nothing is allocated per permit.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::<&str>::new(8);
    /// assert_eq!(limit.capacity(), 8);
    /// ```
    #[track_caller]
    pub fn new(capacity: usize) -> FairLimit<T> {
        assert!(capacity > 0, "FairLimit::new: capacity must be at least 1");
        FairLimit::with(capacity, Vec::new(), Name::none())
    }

    /// A builder, for weights given up front (from configuration).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::builder(4).weight("gold", 3).build().unwrap();
    /// assert_eq!(limit.weight(&"gold"), 3);
    /// assert_eq!(limit.weight(&"free"), 1);
    /// ```
    pub fn builder(capacity: usize) -> FairLimitBuilder<T> {
        FairLimitBuilder {
            capacity,
            weights: Vec::new(),
            name: Name::none(),
        }
    }

    fn with(capacity: usize, weights: Vec<(T, u32)>, name: Name) -> FairLimit<T> {
        let state = State {
            tenants: Tenants::new(weights),
            ready: BTreeSet::new(),
            in_use: 0,
            capacity,
            waiting: 0,
            metrics: LimitMetrics::new(name, Kind::InFlight),
        };
        FairLimit {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                capacity,
            }),
        }
    }

    /// Waits for a permit for `tenant`, held until the [`FairPermit`] is
    /// dropped. With a permit free it is taken at once (nobody waits then);
    /// otherwise the caller waits its turn (see [`FairLimit`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled call holds nothing. If a permit had been
    /// handed to it but not yet taken, it goes to the next waiter in line;
    /// the call loses only its place in its tenant's queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = FairLimit::new(1);
    /// let permit = limit.acquire(&"a").await;
    /// assert!(limit.try_acquire(&"b").is_none());
    /// drop(permit);
    /// assert!(limit.try_acquire(&"b").is_some());
    /// # }
    /// ```
    pub async fn acquire(&self, tenant: &T) -> FairPermit {
        let mut waiting = Waiting {
            shared: &self.shared,
            key: tenant,
            node: None,
        };
        poll_fn(|cx| waiting.poll(cx)).await
    }

    /// Takes a permit for `tenant` if one is free now, without waiting.
    /// None is free while anyone waits, so this never overtakes a waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(1);
    /// let permit = limit.try_acquire(&"a").unwrap();
    /// assert!(limit.try_acquire(&"b").is_none());
    /// drop(permit);
    /// assert!(limit.try_acquire(&"b").is_some());
    /// ```
    pub fn try_acquire(&self, tenant: &T) -> Option<FairPermit> {
        let mut state = lock(&self.shared.state);
        if state.in_use >= state.capacity {
            state.metrics.rejected.inc();
            return None;
        }
        let t = state.tenants.find_or_insert(tenant, Usage::default);
        state.take(t);
        drop(state);
        Some(self.permit(t))
    }

    fn permit(&self, t: usize) -> FairPermit {
        FairPermit {
            limit: Arc::clone(&self.shared) as Arc<dyn Release>,
            tenant: t,
        }
    }

    /// The weight of `tenant`: its override, or 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(4);
    /// limit.set_weight("gold", 3);
    /// assert_eq!((limit.weight(&"gold"), limit.weight(&"free")), (3, 1));
    /// ```
    pub fn weight(&self, tenant: &T) -> u32 {
        lock(&self.shared.state).tenants.weight(tenant)
    }

    /// Sets `tenant`'s weight, from the next freed permit on; returns the
    /// override it replaces. A tenant of weight `w` is entitled to `w`
    /// times the permits of a tenant of weight 1.
    ///
    /// # Panics
    ///
    /// If `weight` is zero (the tenant would never be served).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(4);
    /// assert_eq!(limit.set_weight("gold", 3), None);
    /// assert_eq!(limit.set_weight("gold", 5), Some(3));
    /// ```
    #[track_caller]
    pub fn set_weight(&self, tenant: T, weight: u32) -> Option<u32> {
        assert!(
            weight > 0,
            "FairLimit::set_weight: weight must be at least 1"
        );
        let mut state = lock(&self.shared.state);
        let (old, t) = state.tenants.set_weight(tenant, weight);
        if let Some(t) = t {
            state.refresh(t);
        }
        old
    }

    /// Removes `tenant`'s weight override (back to 1); returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(4);
    /// limit.set_weight("gold", 3);
    /// assert_eq!(limit.remove_weight(&"gold"), Some(3));
    /// assert_eq!(limit.weight(&"gold"), 1);
    /// ```
    pub fn remove_weight(&self, tenant: &T) -> Option<u32> {
        let mut state = lock(&self.shared.state);
        let (old, t) = state.tenants.remove_weight(tenant);
        if let Some(t) = t {
            state.refresh(t);
        }
        old
    }

    /// The number of permits in all.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// assert_eq!(FairLimit::<u32>::new(3).capacity(), 3);
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Permits held now, by every tenant.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(3);
    /// let _a = limit.try_acquire(&"a").unwrap();
    /// let _b = limit.try_acquire(&"b").unwrap();
    /// assert_eq!((limit.in_use(), limit.available()), (2, 1));
    /// ```
    pub fn in_use(&self) -> usize {
        lock(&self.shared.state).in_use
    }

    /// Permits free now.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(3);
    /// let _a = limit.try_acquire(&"a").unwrap();
    /// assert_eq!(limit.available(), 2);
    /// ```
    pub fn available(&self) -> usize {
        let state = lock(&self.shared.state);
        state.capacity - state.in_use
    }

    /// Permits `tenant` holds now.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(3);
    /// let _a = limit.try_acquire(&"a").unwrap();
    /// assert_eq!((limit.in_use_by(&"a"), limit.in_use_by(&"b")), (1, 0));
    /// ```
    pub fn in_use_by(&self, tenant: &T) -> usize {
        let state = lock(&self.shared.state);
        state
            .tenants
            .find(tenant)
            .map_or(0, |t| state.tenants.slots[t].data.in_use)
    }

    /// Calls waiting now in [`acquire`](Self::acquire), of every tenant.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = FairLimit::new(1);
    /// let _held = limit.acquire(&"a").await;
    /// let waiter = tokio::spawn({
    ///     let limit = limit.clone();
    ///     async move { drop(limit.acquire(&"b").await) }
    /// });
    /// tokio::task::yield_now().await;
    /// assert_eq!(limit.waiting(), 1);
    /// # drop(waiter);
    /// # }
    /// ```
    pub fn waiting(&self) -> usize {
        lock(&self.shared.state).waiting
    }

    /// Tenants the limit holds state for now: those holding or waiting for
    /// a permit. Every other tenant costs no memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::new(8);
    /// let permits: Vec<_> = (0..5).map(|t| limit.try_acquire(&t).unwrap()).collect();
    /// assert_eq!(limit.tenants(), 5);
    /// drop(permits);
    /// assert_eq!(limit.tenants(), 0);
    /// ```
    pub fn tenants(&self) -> usize {
        lock(&self.shared.state).tenants.slots.len()
    }
}

/// Gives a permit back; what a [`FairPermit`] needs of its limit, without
/// the tenant type.
trait Release: Send + Sync {
    fn release(&self, tenant: usize);
}

impl<T: Hash + Eq + Clone + Send + Sync> Release for Shared<T> {
    fn release(&self, tenant: usize) {
        let mut state = lock(&self.state);
        let waker = state.release(tenant);
        drop(state);
        wake(waker);
    }
}

/// One call of [`FairLimit::acquire`]: its place in its tenant's queue,
/// left (or its permit passed on) when dropped.
struct Waiting<'a, T: Hash + Eq + Clone + Send + Sync + 'static> {
    shared: &'a Arc<Shared<T>>,
    key: &'a T,
    node: Option<usize>,
}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> Waiting<'_, T> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<FairPermit> {
        let mut state = lock(&self.shared.state);
        let t = match self.node {
            None if state.in_use < state.capacity => {
                // Nobody waits while a permit is free.
                let t = state.tenants.find_or_insert(self.key, Usage::default);
                state.take(t);
                t
            }
            None => {
                let t = state.tenants.find_or_insert(self.key, Usage::default);
                self.node = Some(state.tenants.push(t, cx.waker()));
                state.waiting += 1;
                state.metrics.waiting.set(state.waiting as f64);
                state.refresh(t);
                return Poll::Pending;
            }
            Some(node) => {
                let waiter = &mut state.tenants.waiters[node];
                if !waiter.granted {
                    store_waker(&mut waiter.waker, cx.waker());
                    return Poll::Pending;
                }
                self.node = None;
                state.tenants.waiters.remove(node).tenant
            }
        };
        drop(state);
        Poll::Ready(FairPermit {
            limit: Arc::clone(self.shared) as Arc<dyn Release>,
            tenant: t,
        })
    }
}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        let Some(node) = self.node else { return };
        let mut state = lock(&self.shared.state);
        let waiter = &state.tenants.waiters[node];
        let (granted, t) = (waiter.granted, waiter.tenant);
        if !granted {
            state.tenants.unlink(node);
        }
        state.tenants.waiters.remove(node);
        let waker = if granted {
            // Handed a permit it never took: pass it on.
            state.release(t)
        } else {
            state.waiting -= 1;
            state.metrics.waiting.set(state.waiting as f64);
            state.refresh(t);
            state.remove_if_idle(t);
            None
        };
        drop(state);
        wake(waker);
    }
}

/// One permit of a [`FairLimit`], held by one tenant and given back when
/// dropped (to the waiting tenant furthest below its share).
///
/// # Examples
///
/// ```
/// use flowgate::limit::FairLimit;
///
/// let limit = FairLimit::new(1);
/// let permit = limit.try_acquire(&"a").unwrap();
/// assert_eq!(limit.in_use_by(&"a"), 1);
/// drop(permit);
/// assert_eq!(limit.in_use_by(&"a"), 0);
/// ```
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct FairPermit {
    limit: Arc<dyn Release>,
    tenant: usize,
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        self.limit.release(self.tenant);
    }
}

impl fmt::Debug for FairPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FairPermit").finish_non_exhaustive()
    }
}

/// A builder of a [`FairLimit`], for weights read from configuration.
/// Setters never panic; [`build`](Self::build) checks the rules.
///
/// # Examples
///
/// ```
/// use flowgate::limit::{BuildError, FairLimit};
///
/// let limit = FairLimit::builder(10).weight("a", 2).weight("b", 1).build().unwrap();
/// assert_eq!(limit.weight(&"a"), 2);
/// let err = FairLimit::builder(10).weight("a", 0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroWeight);
/// ```
pub struct FairLimitBuilder<T> {
    capacity: usize,
    weights: Vec<(T, u32)>,
    name: Name,
}

impl<T> FairLimitBuilder<T>
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Gives `tenant` a weight (the last one given for a tenant wins).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let limit = FairLimit::builder(4).weight(7u64, 3).build().unwrap();
    /// assert_eq!(limit.weight(&7), 3);
    /// ```
    pub fn weight(mut self, tenant: T, weight: u32) -> Self {
        self.weights.push((tenant, weight));
        self
    }

    /// The limit, or the first broken rule.
    ///
    /// # Errors
    ///
    /// - [`BuildError::ZeroCapacity`]: the capacity was 0;
    /// - [`BuildError::ZeroWeight`]: a weight was 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{BuildError, FairLimit};
    ///
    /// assert_eq!(FairLimit::<u64>::builder(0).build().unwrap_err(), BuildError::ZeroCapacity);
    /// assert!(FairLimit::<u64>::builder(usize::MAX).build().is_ok());
    /// ```
    pub fn build(self) -> Result<FairLimit<T>, BuildError> {
        let refusal = if self.capacity == 0 {
            Some(BuildError::ZeroCapacity)
        } else if self.weights.iter().any(|&(_, w)| w == 0) {
            Some(BuildError::ZeroWeight)
        } else {
            None
        };
        if let Some(err) = refusal {
            tracing::warn!(
                name = %self.name.as_str(),
                error = %err,
                "FairLimit configuration refused"
            );
            return Err(err);
        }
        Ok(FairLimit::with(self.capacity, self.weights, self.name))
    }

    /// Names the limit: with the `metrics` feature it records, with the
    /// label `name` (any string, as given; see [`crate::metrics`]):
    ///
    /// - `flowgate_limit_granted_total`: permits handed out (to
    ///   [`acquire`](FairLimit::acquire) and
    ///   [`try_acquire`](FairLimit::try_acquire); a permit handed to a
    ///   waiter that was cancelled before taking it is passed on, and
    ///   counts again);
    /// - `flowgate_limit_in_flight`: permits held now
    ///   ([`in_use`](FairLimit::in_use));
    /// - `flowgate_limit_waiting`: `acquire` calls waiting now
    ///   ([`waiting`](FairLimit::waiting));
    /// - `flowgate_limit_rejected_total{reason="no_capacity"}`: refused
    ///   `try_acquire` calls.
    ///
    /// All tenants together: tenants are an open set (any `T`), so no
    /// series is per tenant. Unnamed, the limit records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let pool = FairLimit::builder(4).weight("api", 3).name("db-pool").build().unwrap();
    /// assert!(pool.try_acquire(&"api").is_some());
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }
}

impl<T> fmt::Debug for FairLimitBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FairLimitBuilder")
            .field("capacity", &self.capacity)
            .field("weights", &self.weights.len())
            .name_field(&self.name)
            .finish()
    }
}

impl<T> Clone for FairLimit<T> {
    fn clone(&self) -> Self {
        FairLimit {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for FairLimit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("FairLimit")
            .field("capacity", &self.shared.capacity)
            .field("in_use", &state.in_use)
            .field("waiting", &state.waiting)
            .name_field(&state.metrics.name)
            .finish()
    }
}
