//! Errors of the [`limit`](super) module.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// A [`Rate`](super::Rate) that cannot work, reported by
/// [`Rate::new`](super::Rate::new) before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateError {
    /// The count was zero: nothing could ever pass.
    ZeroCount,
    /// The period was zero.
    ZeroPeriod,
    /// The burst was zero: nothing could ever pass.
    ZeroBurst,
    /// `period / count` is below one nanosecond, the resolution of the
    /// limiter.
    IntervalTooShort,
    /// `period / count` does not fit in 2^64 nanoseconds (about 584 years).
    IntervalTooLong,
    /// `period / count × burst` does not fit in 2^64 nanoseconds (about 584
    /// years).
    BurstTooLong,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroCount => "count must be at least 1",
            Self::ZeroPeriod => "period must be greater than zero",
            Self::ZeroBurst => "burst must be at least 1",
            Self::IntervalTooShort => "period / count must be at least 1 ns",
            Self::IntervalTooLong => "period / count must be at most 2^64 ns (about 584 years)",
            Self::BurstTooLong => {
                "period / count * burst must be at most 2^64 ns (about 584 years)"
            }
        })
    }
}

impl Error for RateError {}

/// Returned by the `try_acquire` of a rate limiter
/// ([`RateLimiter`](super::RateLimiter::try_acquire),
/// [`KeyedRateLimiter`](super::KeyedRateLimiter::try_acquire),
/// [`FairRate`](super::FairRate::try_acquire)): no cell is free now.
/// Transient: one is free at [`ready_at`](Self::ready_at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotReady {
    pub(super) ready_at: Instant,
}

impl NotReady {
    /// The earliest instant at which a call may pass.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{Rate, RateLimiter};
    /// use tokio::time::{Duration, Instant};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(1));
    /// limiter.try_acquire().unwrap();
    /// let not_ready = limiter.try_acquire().unwrap_err();
    /// assert_eq!(not_ready.ready_at(), Instant::now() + Duration::from_secs(1));
    /// # }
    /// ```
    pub fn ready_at(&self) -> Instant {
        self.ready_at
    }

    /// How long from now until a call may pass.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{Rate, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(4));
    /// limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.try_acquire().unwrap_err().wait_time(), Duration::from_millis(250));
    /// # }
    /// ```
    pub fn wait_time(&self) -> Duration {
        self.ready_at.saturating_duration_since(Instant::now())
    }

    /// Always `true`: a cell frees up with time.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{Rate, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(1));
    /// limiter.try_acquire().unwrap();
    /// assert!(limiter.try_acquire().unwrap_err().is_transient());
    /// # }
    /// ```
    pub fn is_transient(&self) -> bool {
        true
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limit reached, ready in {:?}", self.wait_time())
    }
}

impl Error for NotReady {}

/// A configuration of a [`KeyedRateLimiterBuilder`](super::KeyedRateLimiterBuilder),
/// [`FairLimitBuilder`](super::FairLimitBuilder) or
/// [`FairRateBuilder`](super::FairRateBuilder) that cannot work, reported by
/// its `build()` before anything runs. Each variant names the broken rule.
///
/// # Examples
///
/// ```
/// use flowgate::limit::{BuildError, KeyedRateLimiter, Rate};
///
/// let err = KeyedRateLimiter::<u64>::builder(Rate::per_second(1))
///     .shards(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err, BuildError::ZeroShards);
/// assert_eq!(err.to_string(), "shards must be at least 1");
/// assert!(!err.is_transient());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// [`shards`](super::KeyedRateLimiterBuilder::shards) was zero: keys
    /// would have nowhere to go.
    ZeroShards,
    /// [`shards`](super::KeyedRateLimiterBuilder::shards) was above
    /// [`KeyedRateLimiter::MAX_SHARDS`](super::KeyedRateLimiter::MAX_SHARDS).
    TooManyShards(usize),
    /// [`sweep_threshold`](super::KeyedRateLimiterBuilder::sweep_threshold)
    /// was zero.
    ZeroSweepThreshold,
    /// The capacity of a [`FairLimitBuilder`](super::FairLimitBuilder) was
    /// zero: nothing could ever run.
    ZeroCapacity,
    /// A tenant's weight was zero: it would never be served.
    ZeroWeight,
}

impl BuildError {
    /// Always `false`: the same configuration fails the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::FairLimit;
    ///
    /// let err = FairLimit::<&str>::builder(0).build().unwrap_err();
    /// assert!(!err.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        false
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroShards => f.write_str("shards must be at least 1"),
            Self::TooManyShards(n) => write!(
                f,
                "shards must be at most {}, got {n}",
                super::KeyedRateLimiter::<()>::MAX_SHARDS
            ),
            Self::ZeroSweepThreshold => f.write_str("sweep_threshold must be at least 1"),
            Self::ZeroCapacity => f.write_str("capacity must be at least 1"),
            Self::ZeroWeight => f.write_str("weight must be at least 1"),
        }
    }
}

impl Error for BuildError {}
