//! Limits on how fast and how much: a [`RateLimiter`] (at most `count` calls
//! per period) and an [`InFlightLimit`] (at most `max` calls at once), usable
//! around any async call, in a loop, across tasks — not only in a stream.
//!
//! | type | bounds | waiting form | never waits | as a stage |
//! |---|---|---|---|---|
//! | [`RateLimiter`] (of a [`Rate`]) | calls per period, with or without burst | [`acquire`](RateLimiter::acquire) | [`try_acquire`](RateLimiter::try_acquire) → [`NotReady`] | [`rate_limit`](crate::pipeline::PipelineExt::rate_limit) |
//! | [`InFlightLimit`] | calls at once | [`acquire`](InFlightLimit::acquire), [`run`](InFlightLimit::run) | [`try_acquire`](InFlightLimit::try_acquire) | [`limit_in_flight`](crate::pipeline::PipelineExt::limit_in_flight) |
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
//! | not more than `n` connections or requests open at once | [`InFlightLimit`] |
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
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`RateLimiter::acquire`] | yes | nothing; no cell is taken until it completes |
//! | [`InFlightLimit::acquire`] | yes | its place among the waiters |
//! | [`InFlightLimit::run`] | yes for the limit (the room is given back) | whatever the wrapped future loses when dropped |

mod error;
mod fair;
mod in_flight;
mod keyed;
mod rate;

pub use self::error::{BuildError, NotReady, RateError};
pub use self::fair::{FairLimit, FairLimitBuilder, FairPermit, FairRate, FairRateBuilder};
pub use self::in_flight::{InFlightLimit, InFlightPermit};
pub use self::keyed::{KeyedRateLimiter, KeyedRateLimiterBuilder};
pub use self::rate::{Rate, RateLimiter};
