//! [`InFlightLimit`]: a cloneable limit on work in flight, shared by any
//! number of tasks, stages and pipelines. The stream stage is
//! [`limit_in_flight`](crate::pipeline::PipelineExt::limit_in_flight).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::metrics::DebugName;
use super::metrics::{Kind, LimitMetrics};
use crate::telemetry::{GaugeGuard, Name};

/// A limit on how much work is in flight at once, shared by every clone.
///
/// Where [`par_map(n, ..)`](crate::pipeline::PipelineExt::par_map) bounds the calls of
/// *one* stage, an `InFlightLimit` is a budget that any number of stages,
/// pipelines or plain tasks draw from: clone it into each of them. Each unit
/// of work holds an [`InFlightPermit`] and gives it back when the permit is
/// dropped. It is backed by a tokio [`Semaphore`], so waiters are served in
/// the order they started waiting.
///
/// Use it around any async call with [`run`](Self::run), hold a permit
/// explicitly with [`acquire`](Self::acquire), or attach permits to the items
/// of a stream with [`limit_in_flight`](crate::pipeline::PipelineExt::limit_in_flight).
///
/// # Examples
///
/// Two pipelines that together never have more than 8 calls in flight:
///
/// ```
/// use flowgate::limit::InFlightLimit;
/// use flowgate::prelude::*;
/// use futures_util::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let limit = InFlightLimit::new(8);
/// let pipeline = |limit: InFlightLimit| {
///     stream::iter(0..100u32).par_map_unordered(16, move |x| {
///         let limit = limit.clone();
///         async move { limit.run(async move { x * 2 }).await }
///     })
/// };
/// let (a, b) = tokio::join!(
///     pipeline(limit.clone()).collect::<Vec<_>>(),
///     pipeline(limit.clone()).collect::<Vec<_>>(),
/// );
/// assert_eq!(a.len() + b.len(), 200);
/// assert_eq!(limit.in_flight(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct InFlightLimit {
    semaphore: Arc<Semaphore>,
    max: usize,
    metrics: Arc<LimitMetrics>,
}

impl InFlightLimit {
    /// The largest limit: [`Semaphore::MAX_PERMITS`].
    pub const MAX: usize = Semaphore::MAX_PERMITS;

    /// A limit of `max` units of work in flight at once.
    ///
    /// # Panics
    ///
    /// If `max` is zero (nothing could ever run) or above [`Self::MAX`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    ///
    /// let limit = InFlightLimit::new(8);
    /// assert_eq!(limit.max(), 8);
    /// ```
    #[track_caller]
    pub fn new(max: usize) -> Self {
        Self::named("InFlightLimit::new", max, Name::none())
    }

    /// A limit of `max` units of work in flight at once, named `name`: with
    /// the `metrics` feature it records, with the label `name` (any string,
    /// as given; see [`crate::metrics`]):
    ///
    /// - `flowgate_limit_granted_total`: permits handed out (by
    ///   [`acquire`](Self::acquire), [`try_acquire`](Self::try_acquire),
    ///   [`run`](Self::run) and the
    ///   [`limit_in_flight`](crate::pipeline::PipelineExt::limit_in_flight)
    ///   stage);
    /// - `flowgate_limit_in_flight`: permits held now;
    /// - `flowgate_limit_waiting`: `acquire` calls (and `limit_in_flight`
    ///   stages holding an item) waiting for room now;
    /// - `flowgate_limit_rejected_total{reason="no_capacity"}`: refused
    ///   `try_acquire` calls.
    ///
    /// No wait histogram: the semaphore does not time its waits, and the
    /// limit reads no clock of its own. Clones share the name and the
    /// series; [`new`](Self::new) records nothing.
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limit = InFlightLimit::with_name(8, "db");
    /// assert_eq!(limit.run(async { 40 + 2 }).await, 42);
    /// # }
    /// ```
    #[track_caller]
    pub fn with_name(max: usize, name: impl Into<String>) -> Self {
        Self::named("InFlightLimit::with_name", max, Name::new(name))
    }

    #[track_caller]
    fn named(op: &str, max: usize, name: Name) -> Self {
        assert!(max > 0, "{op}: max must be at least 1");
        assert!(
            max <= Self::MAX,
            "{op}: max must be at most InFlightLimit::MAX ({})",
            Self::MAX
        );
        InFlightLimit {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
            metrics: Arc::new(LimitMetrics::new(name, Kind::InFlight)),
        }
    }

    /// Waits for room and takes one unit of it, until the permit is dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled `acquire` holds nothing and loses only its
    /// place among the waiters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::limit::InFlightLimit;
    ///
    /// let limit = InFlightLimit::new(1);
    /// let permit = limit.acquire().await;
    /// assert!(limit.try_acquire().is_none());
    /// drop(permit);
    /// assert!(limit.try_acquire().is_some());
    /// # }
    /// ```
    pub async fn acquire(&self) -> InFlightPermit {
        // Room now: no wait to count. (A semaphore with waiters has no
        // permits available, so this takes nothing from them.)
        if let Ok(permit) = Arc::clone(&self.semaphore).try_acquire_owned() {
            return self.permit(permit);
        }
        let _waiting = GaugeGuard::new(&self.metrics.waiting);
        match Arc::clone(&self.semaphore).acquire_owned().await {
            Ok(permit) => self.permit(permit),
            // The semaphore is private and never closed.
            Err(_) => unreachable!("the in-flight semaphore is never closed"),
        }
    }

    /// Takes one unit of room if there is one now, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = InFlightLimit::new(1);
    /// let permit = limit.try_acquire().unwrap();
    /// assert!(limit.try_acquire().is_none()); // full: never waits
    /// drop(permit);
    /// assert!(limit.try_acquire().is_some());
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Option<InFlightPermit> {
        match Arc::clone(&self.semaphore).try_acquire_owned() {
            Ok(permit) => Some(self.permit(permit)),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                self.metrics.rejected.inc();
                None
            }
        }
    }

    /// Runs `fut` while holding one unit of room: waits for room, then awaits
    /// `fut`, then gives the room back.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe as far as the limit goes: cancelling gives back any room
    /// taken. Whatever `fut` loses when dropped half-way is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::limit::InFlightLimit;
    ///
    /// let limit = InFlightLimit::new(2);
    /// let out = limit.run(async { 40 + 2 }).await;
    /// assert_eq!(out, 42);
    /// # }
    /// ```
    pub async fn run<F: Future>(&self, fut: F) -> F::Output {
        let _permit = self.acquire().await;
        fut.await
    }

    /// The limit this was created with.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    ///
    /// assert_eq!(InFlightLimit::new(3).max(), 3);
    /// ```
    pub fn max(&self) -> usize {
        self.max
    }

    /// Units of work in flight now (permits held).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = InFlightLimit::new(3);
    /// let permit = limit.acquire().await;
    /// assert_eq!((limit.in_flight(), limit.available()), (1, 2));
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.max - self.semaphore.available_permits()
    }

    /// Room left now.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::InFlightLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = InFlightLimit::new(3);
    /// let permit = limit.acquire().await;
    /// assert_eq!((limit.in_flight(), limit.available()), (1, 2));
    /// # }
    /// ```
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

impl InFlightLimit {
    /// The semaphore room is handed out of, for poll-based stages.
    pub(crate) fn semaphore(&self) -> Arc<Semaphore> {
        Arc::clone(&self.semaphore)
    }

    /// Wraps room taken from [`semaphore`](Self::semaphore): counted as
    /// granted and in flight until the permit drops.
    pub(crate) fn permit(&self, permit: OwnedSemaphorePermit) -> InFlightPermit {
        self.metrics.granted.inc();
        InFlightPermit {
            permit,
            _in_flight: GaugeGuard::new(&self.metrics.in_flight),
        }
    }

    /// The limit's series, for stages that wait on it.
    pub(crate) fn metrics(&self) -> &LimitMetrics {
        &self.metrics
    }
}

impl fmt::Debug for InFlightLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlightLimit")
            .field("max", &self.max)
            .field("in_flight", &self.in_flight())
            .name_field(&self.metrics.name)
            .finish()
    }
}

/// One unit of room in an [`InFlightLimit`], given back when dropped.
#[must_use = "the room is given back as soon as the permit is dropped"]
pub struct InFlightPermit {
    permit: OwnedSemaphorePermit,
    // The limit's in-flight gauge, down again when the permit drops.
    _in_flight: GaugeGuard,
}

impl fmt::Debug for InFlightPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlightPermit")
            .field("units", &self.permit.num_permits())
            .finish()
    }
}
