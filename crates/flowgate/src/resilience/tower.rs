//! Tower integration (the `tower` feature): [`CircuitBreakerLayer`],
//! [`AdaptiveLimitLayer`] and [`RetryPolicy`].
//!
//! ```
//! use std::time::Duration;
//! use flowgate::resilience::{
//!     AdaptiveLimit, AdaptiveLimitLayer, Backoff, BreakerError, CircuitBreaker, CircuitBreakerLayer,
//!     Retry, RetryPolicy,
//! };
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let breaker = CircuitBreaker::builder().build().unwrap();
//! let limit = AdaptiveLimit::new(1..=32);
//! let retry = Retry::new(Backoff::exponential(Duration::from_millis(50)))
//!     .max_attempts(3)
//!     .when(|err: &BreakerError<std::io::Error>| !err.is_rejected());
//!
//! let mut service = ServiceBuilder::new()
//!     .retry(RetryPolicy::new(retry))
//!     .layer(CircuitBreakerLayer::new(&breaker))
//!     .layer(AdaptiveLimitLayer::new(&limit))
//!     .service(tower::service_fn(|id: u32| async move { Ok::<_, std::io::Error>(id * 2) }));
//!
//! let out = service.ready().await.unwrap().call(21).await.unwrap();
//! assert_eq!(out, 42);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep, sleep};
use tokio_util::sync::PollSemaphore;
use tower_layer::Layer;
use tower_service::Service;

use super::adaptive::{AdaptiveLimit, AdaptivePermit, Outcome};
use super::breaker::{BreakerError, BreakerPermit, CircuitBreaker, Rejected};
use super::pause::PauseGuard;
use super::retry::{Attempts, Retry};

/// `get_ref`, `get_mut` and `into_inner` of a service wrapping `inner: S`.
macro_rules! wrapper_accessors {
    ($service:ident, $layer:literal, $arg:literal) => {
        impl<S> $service<S> {
            /// The wrapped service.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nuse flowgate::resilience::*;\nuse tower::Layer;\nlet service = ", $layer, "::new(&", $arg, ").layer(7u32);\nassert_eq!(*service.get_ref(), 7);\n```")]
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The wrapped service, mutably.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nuse flowgate::resilience::*;\nuse tower::Layer;\nlet mut service = ", $layer, "::new(&", $arg, ").layer(7u32);\n*service.get_mut() += 1;\nassert_eq!(*service.get_ref(), 8);\n```")]
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// Returns the wrapped service.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nuse flowgate::resilience::*;\nuse tower::Layer;\nlet service = ", $layer, "::new(&", $arg, ").layer(7u32);\nassert_eq!(service.into_inner(), 7);\n```")]
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}

// ===== circuit breaker =====

/// A tower [`Layer`] putting a shared [`CircuitBreaker`] in front of a
/// service: a rejected request fails at once with
/// [`BreakerError::Open`]/[`BreakerError::HalfOpen`] without reaching the
/// service; an `Err` from the service counts as a failure, an `Ok` as a
/// success. The service's errors come out as [`BreakerError::Inner`].
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
}

impl CircuitBreakerLayer {
    /// A layer drawing on `breaker` (shared with its other users).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{CircuitBreaker, CircuitBreakerLayer};
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().build().unwrap();
    /// let mut svc = ServiceBuilder::new()
    ///     .layer(CircuitBreakerLayer::new(&breaker))
    ///     .service(tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
    /// assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 2);
    /// # }
    /// ```
    pub fn new(breaker: &CircuitBreaker) -> Self {
        CircuitBreakerLayer {
            breaker: breaker.clone(),
        }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish()
    }
}

/// The service of a [`CircuitBreakerLayer`].
#[derive(Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

wrapper_accessors!(
    CircuitBreakerService,
    "CircuitBreakerLayer",
    "CircuitBreaker::builder().build().unwrap()"
);

impl<S, Req> Service<Req> for CircuitBreakerService<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = BreakerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the service's: the breaker decides per request, in
        // `call`, so a rejection is an error of that request only.
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => BreakerFuture::called(self.inner.call(req), permit),
            Err(rejected) => BreakerFuture::rejected(rejected),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for CircuitBreakerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish()
    }
}

pin_project! {
    /// The response future of a [`CircuitBreakerService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct BreakerFuture<F> {
        #[pin]
        state: BreakerState<F>,
    }
}

pin_project! {
    #[project = BreakerStateProj]
    enum BreakerState<F> {
        // Admitted: the service's future, and the permit to report on.
        Called {
            #[pin]
            fut: F,
            permit: Option<BreakerPermit>,
        },
        // Rejected by the breaker.
        Rejected {
            rejected: Option<Rejected>,
        },
    }
}

impl<F> BreakerFuture<F> {
    fn called(fut: F, permit: BreakerPermit) -> Self {
        BreakerFuture {
            state: BreakerState::Called {
                fut,
                permit: Some(permit),
            },
        }
    }

    fn rejected(rejected: Rejected) -> Self {
        BreakerFuture {
            state: BreakerState::Rejected {
                rejected: Some(rejected),
            },
        }
    }
}

impl<F, T, E> Future for BreakerFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, BreakerError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            BreakerStateProj::Called { fut, permit } => {
                let result = ready!(fut.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(result.is_err());
                }
                Poll::Ready(result.map_err(BreakerError::Inner))
            }
            BreakerStateProj::Rejected { rejected } => {
                let rejected = rejected.take().expect("polled after completion");
                Poll::Ready(Err(rejected.into()))
            }
        }
    }
}

impl<F> fmt::Debug for BreakerFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = match &self.state {
            BreakerState::Called { .. } => None,
            BreakerState::Rejected { rejected } => *rejected,
        };
        f.debug_struct("BreakerFuture")
            .field("rejected", &rejected)
            .finish_non_exhaustive()
    }
}

// ===== adaptive limit =====

/// A tower [`Layer`] running requests under a shared [`AdaptiveLimit`],
/// like tower's `ConcurrencyLimitLayer` with a limit that adapts: the
/// service is not ready until there is room; an `Ok` response is a success
/// (its RTT a sample), an `Err` back-pressure.
#[derive(Clone)]
pub struct AdaptiveLimitLayer {
    limit: AdaptiveLimit,
}

impl AdaptiveLimitLayer {
    /// A layer drawing on `limit` (shared with its other users).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{AdaptiveLimit, AdaptiveLimitLayer};
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(1..=8);
    /// let mut svc = ServiceBuilder::new()
    ///     .layer(AdaptiveLimitLayer::new(&limit))
    ///     .service(tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
    /// assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 2);
    /// assert_eq!(limit.in_flight(), 0);
    /// # }
    /// ```
    pub fn new(limit: &AdaptiveLimit) -> Self {
        AdaptiveLimitLayer {
            limit: limit.clone(),
        }
    }
}

impl<S> Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimitService::new(inner, self.limit.clone())
    }
}

impl fmt::Debug for AdaptiveLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimitLayer")
            .field("limit", &self.limit)
            .finish()
    }
}

/// The service of an [`AdaptiveLimitLayer`].
pub struct AdaptiveLimitService<S> {
    inner: S,
    limit: AdaptiveLimit,
    semaphore: PollSemaphore,
    /// Room taken by `poll_ready`, spent by `call`.
    room: Option<OwnedSemaphorePermit>,
}

impl<S> AdaptiveLimitService<S> {
    fn new(inner: S, limit: AdaptiveLimit) -> Self {
        AdaptiveLimitService {
            inner,
            semaphore: PollSemaphore::new(limit.semaphore()),
            limit,
            room: None,
        }
    }
}

wrapper_accessors!(
    AdaptiveLimitService,
    "AdaptiveLimitLayer",
    "AdaptiveLimit::new(1..=4)"
);

impl<S: Clone> Clone for AdaptiveLimitService<S> {
    fn clone(&self) -> Self {
        // Room reserved by `poll_ready` belongs to this handle, not the
        // clone (as with tower's `ConcurrencyLimit`).
        AdaptiveLimitService::new(self.inner.clone(), self.limit.clone())
    }
}

impl<S, Req, T, E> Service<Req> for AdaptiveLimitService<S>
where
    S: Service<Req, Response = T, Error = E>,
{
    type Response = T;
    type Error = E;
    type Future = AdaptiveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        if self.room.is_none() {
            match ready!(self.semaphore.poll_acquire(cx)) {
                Some(room) => self.room = Some(room),
                None => unreachable!("the adaptive semaphore is never closed"),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let room = self
            .room
            .take()
            .expect("poll_ready must return Ready before call");
        // Admitted now, so the RTT starts with the call, not the wait.
        let permit = self.limit.admit(room);
        AdaptiveFuture {
            fut: self.inner.call(req),
            permit: Some(permit),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for AdaptiveLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimitService")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("ready", &self.room.is_some())
            .finish()
    }
}

pin_project! {
    /// The response future of an [`AdaptiveLimitService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct AdaptiveFuture<F> {
        #[pin]
        fut: F,
        permit: Option<AdaptivePermit>,
    }
}

impl<F, T, E> Future for AdaptiveFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.fut.poll(cx));
        if let Some(permit) = this.permit.take() {
            permit.record(Outcome::of_result(&result));
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for AdaptiveFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveFuture").finish_non_exhaustive()
    }
}

// ===== retry =====

/// A [`Retry`] as a `tower::retry::Policy`, for
/// `ServiceBuilder::retry(RetryPolicy::new(retry))` (requests must be
/// `Clone`).
///
/// The policy's predicate, hint, hook, attempts, budget, jitter and pause
/// all apply; the final error is the service's own (tower's retry does not
/// wrap it), so the attempt count and the stop reason are not reported.
/// Use [`Retry::run`] or a [`Guard`](super::Guard) when you need them.
pub struct RetryPolicy<E> {
    retry: Retry<E>,
    /// When the first attempt of the request started (set by
    /// `clone_request` on the service's own policy, just before tower clones
    /// it into the request's future).
    first_start: Option<Instant>,
    /// This request's loop, from its first failure on.
    attempts: Option<Attempts>,
}

impl<E> RetryPolicy<E> {
    /// A tower policy following `retry`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry, RetryPolicy};
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let policy = RetryPolicy::new(Retry::new(Backoff::constant(Duration::from_millis(1))));
    /// let mut svc = ServiceBuilder::new()
    ///     .retry(policy)
    ///     .service(tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
    /// assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 5);
    /// # }
    /// ```
    pub fn new(retry: Retry<E>) -> Self {
        RetryPolicy {
            retry,
            first_start: None,
            attempts: None,
        }
    }

    /// The retry policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Retry, RetryPolicy};
    ///
    /// let policy = RetryPolicy::<()>::new(Retry::new(Backoff::constant(Duration::ZERO)).max_attempts(4));
    /// assert_eq!(policy.get_ref().attempts_limit(), 4);
    /// ```
    pub fn get_ref(&self) -> &Retry<E> {
        &self.retry
    }
}

impl<E> Clone for RetryPolicy<E> {
    fn clone(&self) -> Self {
        // Tower clones the policy for every request: the clone starts a
        // fresh loop, keeping only when the request's first attempt began.
        RetryPolicy {
            retry: self.retry.clone(),
            first_start: self.first_start,
            attempts: None,
        }
    }
}

impl<E> fmt::Debug for RetryPolicy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for RetryPolicy<E> {
    type Future = RetryPolicyFuture;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        let err = result.as_ref().err()?;
        let (retry, first_start) = (&self.retry, self.first_start);
        let attempts = self.attempts.get_or_insert_with(|| {
            let mut attempts = retry.start_at(first_start.unwrap_or_else(Instant::now));
            attempts.start_attempt();
            attempts
        });
        let delay = self.retry.next_delay(attempts, err).ok()?;
        Some(RetryPolicyFuture {
            sleep: sleep(delay),
            _pause: self.retry.hold_pause(),
        })
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        match &mut self.attempts {
            // Before a retry, within the request's future.
            Some(attempts) => attempts.start_attempt(),
            // Before the first attempt, on the service's own policy.
            None => self.first_start = Some(Instant::now()),
        }
        Some(req.clone())
    }
}

pin_project! {
    /// The backoff of a [`RetryPolicy`]: a sleep, holding the policy's pause
    /// handle paused if it has one.
    #[must_use = "futures do nothing unless polled"]
    pub struct RetryPolicyFuture {
        #[pin]
        sleep: Sleep,
        _pause: Option<PauseGuard>,
    }
}

impl Future for RetryPolicyFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().sleep.poll(cx)
    }
}

impl fmt::Debug for RetryPolicyFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicyFuture")
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}
