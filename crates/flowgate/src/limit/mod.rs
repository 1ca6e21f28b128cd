//! Limits on how fast and how much: a [`RateLimiter`] (at most `count` calls
//! per period), a [`KeyedRateLimiter`] (that, per key), an [`InFlightLimit`]
//! (at most `max` calls at once), and fair shares of either between weighted
//! tenants ([`FairLimit`], [`FairRate`]) — usable around any async call, in a
//! loop, across tasks, not only in a stream.
//!
//! | type | bounds | waiting form | never waits | as a stage |
//! |---|---|---|---|---|
//! | [`RateLimiter`] (of a [`Rate`]) | calls per period, with or without burst | [`acquire`](RateLimiter::acquire) | [`try_acquire`](RateLimiter::try_acquire) → [`NotReady`] | [`rate_limit`](crate::pipeline::PipelineExt::rate_limit) |
//! | [`KeyedRateLimiter`] | calls per period *per key*, a default rate and per-key overrides; FIFO per key; idle keys evicted | [`acquire(&key)`](KeyedRateLimiter::acquire) | [`try_acquire(&key)`](KeyedRateLimiter::try_acquire) → [`NotReady`] | — |
//! | [`InFlightLimit`] | calls at once | [`acquire`](InFlightLimit::acquire), [`run`](InFlightLimit::run) | [`try_acquire`](InFlightLimit::try_acquire) | [`limit_in_flight`](crate::pipeline::PipelineExt::limit_in_flight) |
//! | [`FairLimit`] | calls at once, shared by tenants by weight (least permits held per weight first) | [`acquire(&tenant)`](FairLimit::acquire) → [`FairPermit`] | [`try_acquire(&tenant)`](FairLimit::try_acquire) | — |
//! | [`FairRate`] | calls per period, shared by tenants by weight (smallest virtual finish time first) | [`acquire(&tenant)`](FairRate::acquire) | [`try_acquire(&tenant)`](FairRate::try_acquire) → [`NotReady`] | — |
//!
//! Both are handles: clones share one limit, so one budget can be split
//! between tasks, stages, pipelines and a [`Guard`](crate::resilience::Guard).
//! Both run on tokio's clock, so tests under paused time
//! (`#[tokio::test(start_paused = true)]`) see exact timing.
//!
//! # Which one should I use?
//!
//! | you want | use |
//! |---|---|
//! | a service's quota ("100 requests per second") | [`RateLimiter`] |
//! | a quota per client, user or API key ("10 per second each, 100 for admins") | [`KeyedRateLimiter`] |
//! | not more than `n` connections or requests open at once | [`InFlightLimit`] |
//! | `n` at once, shared so that one busy tenant cannot crowd out the others | [`FairLimit`] |
//! | one quota shared by tenants, by weight, none starved | [`FairRate`] |
//! | a concurrency that follows the service's latency | [`AdaptiveLimit`](crate::resilience::AdaptiveLimit) |
//! | one stage's own concurrency | [`par_map(n, ..)`](crate::pipeline::PipelineExt::par_map) |
//!
//! # A rate limiter in a loop
//!
//! ```
//! use std::time::Duration;
//! use flowgate::limit::{Rate, RateLimiter};
//! use tokio::time::Instant;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limiter = RateLimiter::new(Rate::per_second(10).with_burst(2));
//! let start = Instant::now();
//! for page in 0..6 {
//!     limiter.acquire().await; // then fetch `page`
//! #   let _ = page;
//! }
//! // 2 at once (the burst), then one every 100 ms.
//! assert_eq!(start.elapsed(), Duration::from_millis(400));
//!
//! // Or ask without waiting, and do something else meanwhile.
//! let not_ready = limiter.try_acquire().unwrap_err();
//! assert_eq!(not_ready.wait_time(), Duration::from_millis(100));
//! # }
//! ```
//!
//! # An in-flight limit across tasks
//!
//! ```
//! use std::time::Duration;
//! use flowgate::limit::InFlightLimit;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limit = InFlightLimit::new(3);
//! let tasks: Vec<_> = (0..10)
//!     .map(|i| {
//!         let limit = limit.clone();
//!         tokio::spawn(async move {
//!             let _permit = limit.acquire().await; // held until the end of the task
//!             assert!(limit.in_flight() <= 3);
//!             tokio::time::sleep(Duration::from_millis(10)).await;
//!             i
//!         })
//!     })
//!     .collect();
//! for task in tasks {
//!     task.await.unwrap();
//! }
//! assert_eq!(limit.in_flight(), 0);
//! # }
//! ```
//!
//! # A rate per key
//!
//! ```
//! use std::time::Duration;
//! use flowgate::limit::{KeyedRateLimiter, Rate};
//! use tokio::time::Instant;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // 5 per second per user; the crawler gets 1 per second.
//! let limiter = KeyedRateLimiter::builder(Rate::per_second(5))
//!     .rate_for("crawler", Rate::per_second(1))
//!     .build()
//!     .unwrap();
//! let start = Instant::now();
//! let (alice, crawler) = tokio::join!(
//!     async {
//!         for _ in 0..5 {
//!             limiter.acquire(&"alice").await;
//!         }
//!         start.elapsed()
//!     },
//!     async {
//!         for _ in 0..3 {
//!             limiter.acquire(&"crawler").await;
//!         }
//!         start.elapsed()
//!     },
//! );
//! assert_eq!(alice, Duration::from_millis(800)); // 0, 200, .., 800 ms
//! assert_eq!(crawler, Duration::from_secs(2)); // 0, 1, 2 s: neither slows the other
//!
//! // Keys that went quiet are forgotten (also by themselves, as new keys come).
//! tokio::time::advance(Duration::from_secs(1)).await;
//! limiter.retain_recent();
//! assert!(limiter.is_empty());
//! # }
//! ```
//!
//! # Fair shares between tenants
//!
//! A [`FairLimit`] hands each freed permit to the waiting tenant holding the
//! fewest permits per unit of weight; a [`FairRate`] hands each cell of its
//! rate to the waiting tenant with the smallest virtual finish time. Both
//! are work-conserving (nothing is left unused while anyone waits, so a
//! tenant alone gets everything) and FIFO within a tenant, and a tenant
//! with nothing held or waiting has no state.
//!
//! ```
//! use std::time::Duration;
//! use flowgate::limit::FairLimit;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // 4 database connections; "reports" weighs 1, "api" weighs 3.
//! let pool = FairLimit::builder(4).weight("api", 3).build().unwrap();
//! let worker = |tenant: &'static str| {
//!     let pool = pool.clone();
//!     tokio::spawn(async move {
//!         loop {
//!             let _conn = pool.acquire(&tenant).await;
//!             tokio::time::sleep(Duration::from_millis(10)).await; // a query
//!         }
//!     })
//! };
//! let workers: Vec<_> = (0..8).flat_map(|_| [worker("reports"), worker("api")]).collect();
//! tokio::time::sleep(Duration::from_millis(55)).await;
//! // Both busy: 3 connections for "api", 1 for "reports".
//! assert_eq!((pool.in_use_by(&"api"), pool.in_use_by(&"reports")), (3, 1));
//! # for w in workers { w.abort(); }
//! # }
//! ```
//!
//! ```
//! use std::time::Duration;
//! use flowgate::limit::{FairRate, Rate};
//! use tokio::time::Instant;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // One API quota of 20 calls per second shared by two tenants: "bulk" has
//! // queued 1,000 calls, "interactive" makes a few — it is not stuck behind.
//! let quota = FairRate::new(Rate::per_second(20));
//! let start = Instant::now();
//! let bulk: Vec<_> = (0..1000)
//!     .map(|_| {
//!         let quota = quota.clone();
//!         tokio::spawn(async move { quota.acquire(&"bulk").await })
//!     })
//!     .collect();
//! tokio::time::sleep(Duration::from_millis(1)).await;
//! for _ in 0..3 {
//!     quota.acquire(&"interactive").await;
//! }
//! // Every other cell (50 ms apart) is its: at 100, 200 and 300 ms.
//! assert_eq!(start.elapsed(), Duration::from_millis(300));
//! assert!(quota.waiting() > 990);
//! # for b in bulk { b.abort(); }
//! # }
//! ```
//!
//! # Edges
//!
//! - A [`Rate`] is checked when it is made: [`Rate::new`] returns a
//!   [`RateError`] naming the broken rule (for values from configuration);
//!   [`Rate::per_second`], [`per_minute`](Rate::per_minute),
//!   [`per_period`](Rate::per_period) and [`with_burst`](Rate::with_burst)
//!   panic with the same rule. The interval `period / count` must be between
//!   1 ns and about 584 years (2^64 ns), and so must `interval × burst`.
//! - A slot too far away for an `Instant` is "never": a limiter of one call
//!   per 500 years lets the first call through and makes the next wait, it
//!   does not overflow.
//! - [`InFlightLimit::new`] panics on 0 and above [`InFlightLimit::MAX`]
//!   (tokio's semaphore's maximum, `usize::MAX >> 3`).
//! - [`FairLimit::new`] panics on 0; any other `usize` works (nothing is
//!   allocated per permit). Weights are `u32`s of at least 1:
//!   `set_weight(_, 0)` panics, a builder refuses it with
//!   [`BuildError::ZeroWeight`].
//! - The builders ([`KeyedRateLimiter::builder`], [`FairLimit::builder`],
//!   [`FairRate::builder`]) never panic; `build()` returns a [`BuildError`].
//!   A [`sweep_threshold`](KeyedRateLimiterBuilder::sweep_threshold) of
//!   `usize::MAX` means "never sweep by itself".
//!
//! # Metrics
//!
//! With the `metrics` feature, a limiter records its series once it is
//! named: [`RateLimiter::with_name`] and [`InFlightLimit::with_name`] (they
//! have no builder), or the builders' `name` setter
//! ([`KeyedRateLimiterBuilder::name`], [`FairLimitBuilder::name`],
//! [`FairRateBuilder::name`]). Every limiter counts what it granted
//! (`flowgate_limit_granted_total`), the callers waiting now
//! (`flowgate_limit_waiting`, back down when a waiting `acquire` is
//! cancelled) and the refused `try_acquire` calls
//! (`flowgate_limit_rejected_total{reason}`: `not_ready` for the rate
//! limiters, `no_capacity` for the in-flight ones). The rate limiters also
//! record each `acquire`'s wait (`flowgate_limit_wait_seconds`, from the
//! times their GCRA reads anyway: no extra clock read), the in-flight ones
//! their permits held (`flowgate_limit_in_flight`), the keyed one its keys
//! (`flowgate_limit_keys`). Keys and tenants are open sets, so no series is
//! per key or per tenant. The table is in [`crate::metrics`]; clones share
//! the series.
//!
//! Tracing: a builder refusing its configuration logs a `warn` event (with
//! the `name` and the `error`) besides returning the [`BuildError`];
//! nothing is logged per call at `info` or above.
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`RateLimiter::acquire`] | yes | nothing; no cell is taken until it completes |
//! | [`KeyedRateLimiter::acquire`] | yes | its place in the key's queue; no cell is taken, the next waiter moves up |
//! | [`InFlightLimit::acquire`] | yes | its place among the waiters |
//! | [`FairLimit::acquire`] | yes | its place in its tenant's queue; a permit handed to it but not taken goes to the next in line |
//! | [`FairRate::acquire`] | yes | its place in its tenant's queue; no cell is taken, the tenant keeps its turn |
//! | [`InFlightLimit::run`] | yes for the limit (the room is given back) | whatever the wrapped future loses when dropped |

mod error;
mod fair;
mod in_flight;
mod keyed;
mod metrics;
mod rate;

pub use self::error::{BuildError, NotReady, RateError};
pub use self::fair::{FairLimit, FairLimitBuilder, FairPermit, FairRate, FairRateBuilder};
pub use self::in_flight::{InFlightLimit, InFlightPermit};
pub use self::keyed::{KeyedRateLimiter, KeyedRateLimiterBuilder};
pub use self::rate::{Rate, RateLimiter};
