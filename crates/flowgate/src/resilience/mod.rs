//! Resilience: retry with backoff, circuit breaking, adaptive concurrency,
//! error routing and pausing the source on error — around any async call,
//! and as pipeline stages.
//!
//! | type | what it does | as a stage |
//! |---|---|---|
//! | [`Backoff`], [`Jitter`] | constant, linear, exponential or decorrelated delays; capped; full or equal jitter; seedable | — |
//! | [`Retry`] | retries a call: max attempts and/or a time budget, a retryable-error predicate, a retry-after hint, a hook | [`par_map_retry`](crate::pipeline::PipelineExt::par_map_retry) |
//! | [`CircuitBreaker`] | closed / open / half-open on a failure ratio over a sliding window, or consecutive failures; rejects fast | (in a [`Guard`]) |
//! | [`AdaptiveLimit`] | a concurrency limit that grows additively and shrinks multiplicatively (AIMD on RTT, after Vector's ARC) | [`par_map_adaptive`](crate::pipeline::PipelineExt::par_map_adaptive) |
//! | [`DeadLetter`], [`dead_letters`] | failed items with their error and attempt count, on a bounded dead-letter stream | [`route_errors`](crate::pipeline::PipelineExt::route_errors) |
//! | [`PauseHandle`] | a shared pause switch; retries can hold it while backing off | [`pausable`](crate::pipeline::PipelineExt::pausable) |
//! | [`Guard`] | timeout + rate limit + concurrency limit + breaker + retry around one call, in one value | (inside `par_map`) |
//!
//! Everything runs on tokio's clock, so tests under paused time
//! (`#[tokio::test(start_paused = true)]`) see exact delays, cooldowns and
//! windows; jitter takes a seed ([`Retry::jitter_seed`],
//! [`Backoff::schedule_seeded`]) so runs are reproducible.
//!
//! # Modules
//!
//! Each concept is one public module with its type, its configuration, its
//! futures and its errors: [`backoff`], [`retry`], [`breaker`],
//! [`adaptive`], [`dead_letter`], [`pause`], [`guard`]. The main types are
//! re-exported here; the builders' errors are not, as each module has its own
//! `BuildError` ([`breaker::BuildError`], [`adaptive::BuildError`]).
//!
//! # Transient or permanent
//!
//! Retrying and breaking need to know which errors may go away. Every error
//! here says so: [`RetryError::is_transient`] (gave up on attempts or time,
//! versus an error not worth retrying), [`GuardError::is_transient`]
//! (timeouts and rejections, or a call error the policy would retry),
//! [`Rejected`] and the rejections of [`BreakerError`] (transient: the
//! breaker will let calls through later). For your own errors, give the predicate to
//! [`Retry::when`]; flowgate's ends come with theirs:
//! `Retry::new(backoff).when(SinkError::is_transient)` (flowgate-sql),
//! `.when(SourceError::is_transient)` (flowgate-redis).
//!
//! # Around one call
//!
//! ```
//! use std::time::Duration;
//! use flowgate::limit::{Rate, RateLimiter};
//! use flowgate::resilience::{AdaptiveLimit, Backoff, CircuitBreaker, Guard, Jitter, Retry, Window};
//!
//! #[derive(Debug)]
//! enum FetchError { Unavailable, NotFound }
//! impl FetchError {
//!     fn is_transient(&self) -> bool { matches!(self, FetchError::Unavailable) }
//! }
//! async fn fetch(id: u32) -> Result<String, FetchError> {
//!     match id {
//!         0 => Err(FetchError::NotFound),
//!         13 => Err(FetchError::Unavailable),
//!         _ => Ok(format!("user {id}")),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // Shared by every task that calls the service.
//! let breaker = CircuitBreaker::builder()
//!     .failure_ratio(0.5)
//!     .window(Window::last(Duration::from_secs(10)))
//!     .min_calls(20)
//!     .cooldown(Duration::from_secs(5))
//!     .build()
//!     .unwrap();
//! let api_rate = RateLimiter::new(Rate::per_second(100).with_burst(10));
//! let concurrency = AdaptiveLimit::new(1..=64);
//!
//! let guard = Guard::new()
//!     .timeout(Duration::from_millis(500))
//!     .rate_limit(api_rate.clone())
//!     .adaptive(&concurrency)
//!     .breaker(&breaker)
//!     .retry(
//!         Retry::new(Backoff::exponential(Duration::from_millis(100)).max_delay(Duration::from_secs(2)).jitter(Jitter::Full))
//!             .max_attempts(5)
//!             .budget(Duration::from_secs(10))
//!             .when(FetchError::is_transient),
//!     );
//!
//! let user = guard.run(|| fetch(7)).await.unwrap();
//! assert_eq!(user, "user 7");
//! let missing = guard.run(|| fetch(0)).await.unwrap_err();
//! assert_eq!(missing.attempts(), 1); // NotFound is permanent: no retry
//! let down = guard.run(|| fetch(13)).await.unwrap_err();
//! assert_eq!(down.attempts(), 5); // Unavailable is transient: retried
//! assert!(down.is_transient());
//! # }
//! ```
//!
//! Each part also works alone: [`Retry::run`], [`CircuitBreaker::run`],
//! [`AdaptiveLimit::run`], and the pipeline's
//! [`RateLimiter::acquire`](crate::limit::RateLimiter::acquire)
//! and [`InFlightLimit::run`](crate::limit::InFlightLimit::run).
//!
//! # In a pipeline
//!
//! The seed's `generator | fork | task | branch | error: retry success:
//! print`, with the seed's other wish, *pause the job on error, and retry
//! after sleep*: the source is paused while any item backs off, failed
//! items go to a dead-letter stream with their error and attempt count, and
//! the rest goes on.
//!
//! ```
//! use std::time::Duration;
//! use flowgate::prelude::*;
//! use flowgate::resilience::{dead_letters, Backoff, DeadLetter, PauseHandle, Retry};
//! use futures_util::{stream, StreamExt};
//!
//! async fn task(id: u32) -> Result<u32, String> {
//!     if id % 10 == 3 { Err(format!("{id} failed")) } else { Ok(id * 2) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let pause = PauseHandle::new();
//! let retry = Retry::new(Backoff::exponential(Duration::from_millis(50)))
//!     .max_attempts(3)
//!     .pause_while_backing_off(&pause);
//! let (dead_tx, dead) = dead_letters::<DeadLetter<u32, String>>(64);
//!
//! let ok = stream::iter(0..30u32)
//!     .pausable(&pause)                                  // the generator
//!     .par_map_retry(8, retry, |id: &u32| task(*id))     // fork + task + retry
//!     .route_errors(dead_tx);                            // branch: errors aside
//! let (ok, dead) = tokio::join!(ok.collect::<Vec<_>>(), dead.collect::<Vec<_>>());
//!
//! assert_eq!(ok.len(), 27);
//! assert_eq!(dead.len(), 3);
//! assert!(dead.iter().all(|d| d.attempts() == 3));
//! # }
//! ```
//!
//! # Which one should I use?
//!
//! | you want | use |
//! |---|---|
//! | try again after a transient error | [`Retry`] (around a call), [`par_map_retry`](crate::pipeline::PipelineExt::par_map_retry) (per item) |
//! | stop hammering a service that is down, and notice when it is back | [`CircuitBreaker`] |
//! | as many calls in flight as the service handles well, not a fixed guess | [`AdaptiveLimit`], [`par_map_adaptive`](crate::pipeline::PipelineExt::par_map_adaptive) |
//! | a fixed number in flight | [`InFlightLimit`](crate::limit::InFlightLimit), [`par_map`](crate::pipeline::PipelineExt::par_map) |
//! | failures set aside for later, while the rest goes on | [`route_errors`](crate::pipeline::PipelineExt::route_errors) into [`dead_letters`] |
//! | the source to wait while the pipeline recovers | [`PauseHandle`] + [`pausable`](crate::pipeline::PipelineExt::pausable) |
//! | all of the above around one call | [`Guard`] |
//!
//! # Why our own backoff schedules
//!
//! `backon` is the well-kept crate for backoff, and its builders were the
//! starting point. Three things made us write the schedules (about 150
//! lines, property-tested): its exponential schedule multiplies in `f32`
//! seconds, so 100 ms × 2 comes out as 200.000003 ms and exact assertions
//! under paused time fail; its only jitter *adds* up to one more delay, so
//! with a 1 s cap delays of 1.78 s come out; and it has no full, equal or
//! decorrelated jitter. Here delays are whole nanoseconds, jitter stays
//! within the cap, and the RNG is seeded per call ([`Retry::jitter_seed`]).
//! The retry loop needs only a sequence of delays, and a `backon` backoff is
//! one (`Iterator<Item = Duration>`), so moving between the two is easy.
//!
//! # Tower
//!
//! With the `tower` feature, the breaker, the adaptive limit and the retry
//! policy plug into a `tower::ServiceBuilder`: `CircuitBreakerLayer`,
//! `AdaptiveLimitLayer`, and [`Retry`] as a `tower::retry::Policy` through
//! `RetryPolicy` (requests must be `Clone`). Their errors stay typed
//! ([`BreakerError`]); tower's own `TimeoutLayer` and `RateLimitLayer` fit
//! around them. Without tower, a [`Guard`] is the same stack as one value.
//!
//! # Metrics and events
//!
//! With the `metrics` feature, each part records its series once it is
//! named: [`CircuitBreakerBuilder::name`] (state, transitions, calls
//! permitted and rejected, outcomes), [`Retry::name`] (calls, attempts,
//! retries, giving up by reason, backoff delays), [`AdaptiveLimitBuilder::name`]
//! (the limit, in flight, waiting, its moves, overloads, RTTs),
//! [`Guard::name`], [`PauseHandle::name`] and [`DeadLetters::name`]. The
//! stages and the tower layers record into the series of the parts they are
//! given. See [`crate::metrics`] for the table of series and events.
//!
//! Failures log one `tracing` event each, at `warn`: a breaker opening, a
//! retry (or a guarded call) giving up, dead letters discarded with their
//! stream. A breaker closing logs at `info`; retries, half-open breakers,
//! limit decreases and pauses at `debug`. Nothing is logged per call at
//! `info` or above, and rejections by an open breaker log nothing (its
//! opening did).
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`Retry::run`] | yes | the attempt in flight (what the call loses when dropped); any pause it held is released |
//! | [`CircuitBreaker::run`], [`run_with`](CircuitBreaker::run_with) | yes | the call; no outcome is recorded, a probe slot is freed |
//! | [`AdaptiveLimit::acquire`] | yes | its place among the waiters |
//! | [`AdaptiveLimit::run`], [`run_with`](AdaptiveLimit::run_with) | yes | the call; its room is given back, no outcome recorded |
//! | [`Guard::run`] | yes | the attempt in flight; room and probe slots are given back, a rate cell taken stays spent |
//! | [`PauseHandle::paused`] | yes | nothing |
//! | `next()` on the stages | yes | nothing; dropping a stage drops its items in progress |

pub mod adaptive;
pub mod backoff;
pub mod breaker;
pub mod dead_letter;
pub mod guard;
pub mod pause;
pub mod retry;
#[cfg(feature = "tower")]
mod tower;

pub use self::adaptive::{
    AdaptiveLimit, AdaptiveLimitBuilder, AdaptivePermit, AdaptiveStats, Outcome,
};
pub use self::backoff::{Backoff, Jitter, Schedule};
pub use self::breaker::{
    BreakerError, BreakerPermit, BreakerState, BreakerStats, CircuitBreaker, CircuitBreakerBuilder,
    Rejected, StateChange, Window,
};
pub use self::dead_letter::{DeadLetter, DeadLetterSender, DeadLetters, dead_letters};
pub use self::guard::{Guard, GuardError};
pub use self::pause::{PauseGuard, PauseHandle};
pub use self::retry::{Retry, RetryError, StopReason};
#[cfg(feature = "tower")]
pub use self::tower::{
    AdaptiveFuture, AdaptiveLimitLayer, AdaptiveLimitService, BreakerFuture, CircuitBreakerLayer,
    CircuitBreakerService, RetryPolicy, RetryPolicyFuture,
};
