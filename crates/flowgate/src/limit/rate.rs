//! [`Rate`] and [`RateLimiter`]: at most `count` calls per period, with or
//! without burst. The stream stage is
//! [`rate_limit`](crate::pipeline::PipelineExt::rate_limit).
//!
//! The limiter is a GCRA (generic cell rate algorithm, the "virtual
//! scheduling" form of ITU-T I.371): one atomic *theoretical arrival time*
//! (TAT), in nanoseconds since the limiter was made, advanced by one
//! compare-and-swap per call, on tokio's clock so paused time drives it.
//!
//! Why not governor's GCRA, which is the same algorithm: governor charges a
//! call at the time it *checks*. A waiter is woken by tokio's timer, which
//! has millisecond resolution and rounds deadlines up, so it checks a little
//! after its slot; with a burst of 1 governor then schedules the next slot
//! from that late time, and the lateness adds up (3 per second over 300
//! calls ran 200 ms slow under paused time, and real timers are later
//! still). Here a waiter that wakes less than one interval late takes the
//! slot it waited for, so the schedule holds and the rate does not drift.
//! Fresh callers are charged at the time they arrive, so an idle limiter
//! still saves up no more than `burst`.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::error::{NotReady, RateError};
use super::metrics::DebugName;
use super::metrics::{Kind, LimitMetrics};
use crate::telemetry::{GaugeGuard, Name};

/// How many calls may pass per period, and how many of them at once.
///
/// A rate of `count` per `period` lets one call through every
/// `period / count` (the *interval*) on average. The *burst* is how many may
/// pass back to back after a quiet spell: with a burst of 1 (the default)
/// calls are spaced by the interval exactly, and an idle limiter does *not*
/// save up a burst; with a burst of `b`, up to `b` pass at once and the
/// allowance then refills at one per interval.
///
/// Intervals below one millisecond: tokio's timer has a resolution of 1 ms,
/// so a waiter passes at most about once per millisecond. Give such rates a
/// burst of at least their cells per millisecond (`Rate::per_second(100_000)
/// .with_burst(100)`) and the limiter keeps the rate on average.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::limit::{Rate, RateError};
///
/// let smooth = Rate::per_second(200); // one every 5 ms
/// assert_eq!(smooth.interval(), Duration::from_millis(5));
/// let bursty = Rate::per_second(200).with_burst(50); // 50 at once, then one every 5 ms
/// assert_eq!(bursty.burst(), 50);
///
/// // From configuration: checked, never a panic.
/// assert_eq!(Rate::new(0, Duration::from_secs(1), 1), Err(RateError::ZeroCount));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
}

impl Rate {
    /// `count` calls per `period`, up to `burst` of them back to back.
    ///
    /// # Errors
    ///
    /// A [`RateError`] naming the broken rule:
    ///
    /// - `count` must be at least 1 ([`RateError::ZeroCount`]);
    /// - `period` must be greater than zero ([`RateError::ZeroPeriod`]);
    /// - `burst` must be at least 1 ([`RateError::ZeroBurst`]);
    /// - `period / count` must be at least 1 ns
    ///   ([`RateError::IntervalTooShort`]) and at most 2^64 ns, about 584
    ///   years ([`RateError::IntervalTooLong`]);
    /// - `period / count × burst` must be at most 2^64 ns
    ///   ([`RateError::BurstTooLong`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{Rate, RateError};
    ///
    /// let rate = Rate::new(100, Duration::from_secs(1), 10).unwrap();
    /// assert_eq!(rate.interval(), Duration::from_millis(10));
    /// assert_eq!(Rate::new(1, Duration::ZERO, 1), Err(RateError::ZeroPeriod));
    /// assert_eq!(Rate::new(u32::MAX, Duration::from_nanos(1), 1), Err(RateError::IntervalTooShort));
    /// assert_eq!(Rate::new(1, Duration::MAX, 1), Err(RateError::IntervalTooLong));
    /// ```
    pub fn new(count: u32, period: Duration, burst: u32) -> Result<Rate, RateError> {
        let count = NonZeroU32::new(count).ok_or(RateError::ZeroCount)?;
        let burst = NonZeroU32::new(burst).ok_or(RateError::ZeroBurst)?;
        if period.is_zero() {
            return Err(RateError::ZeroPeriod);
        }
        let interval = period / count.get();
        if interval.is_zero() {
            return Err(RateError::IntervalTooShort);
        }
        let nanos = u64::try_from(interval.as_nanos()).map_err(|_| RateError::IntervalTooLong)?;
        if nanos.checked_mul(u64::from(burst.get())).is_none() {
            return Err(RateError::BurstTooLong);
        }
        Ok(Rate {
            count,
            period,
            burst,
        })
    }

    /// `count` calls per `period`, spaced evenly (a burst of 1).
    ///
    /// # Panics
    ///
    /// With the rule of [`Rate::new`] that is broken (use it for values from
    /// configuration): if `count` is zero, `period` is zero, or
    /// `period / count` is below 1 ns or above 2^64 ns (about 584 years).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::Rate;
    ///
    /// let rate = Rate::per_period(3, Duration::from_secs(30));
    /// assert_eq!(rate.interval(), Duration::from_secs(10));
    /// ```
    #[track_caller]
    pub fn per_period(count: u32, period: Duration) -> Rate {
        or_panic("Rate::per_period", Rate::new(count, period, 1))
    }

    /// `count` calls per second, spaced evenly (a burst of 1). Up to
    /// `u32::MAX` per second (an interval of 0.23 ns rounds down to 0; the
    /// largest rate is 10^9 per second).
    ///
    /// # Panics
    ///
    /// If `count` is zero, or above 10^9 (an interval below 1 ns).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::Rate;
    ///
    /// assert_eq!(Rate::per_second(200).interval(), Duration::from_millis(5));
    /// assert_eq!(Rate::per_second(1_000_000_000).interval(), Duration::from_nanos(1));
    /// ```
    ///
    /// ```should_panic
    /// flowgate::limit::Rate::per_second(0); // "Rate::per_second: count must be at least 1"
    /// ```
    #[track_caller]
    pub fn per_second(count: u32) -> Rate {
        or_panic(
            "Rate::per_second",
            Rate::new(count, Duration::from_secs(1), 1),
        )
    }

    /// `count` calls per minute, spaced evenly (a burst of 1).
    ///
    /// # Panics
    ///
    /// If `count` is zero (every other `u32` works: `u32::MAX` per minute is
    /// an interval of 13 ns).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::Rate;
    ///
    /// assert_eq!(Rate::per_minute(6).interval(), Duration::from_secs(10));
    /// ```
    #[track_caller]
    pub fn per_minute(count: u32) -> Rate {
        or_panic(
            "Rate::per_minute",
            Rate::new(count, Duration::from_secs(60), 1),
        )
    }

    /// The same rate, letting up to `burst` calls pass back to back.
    ///
    /// # Panics
    ///
    /// If `burst` is zero, or `interval × burst` is above 2^64 ns (about
    /// 584 years).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::Rate;
    ///
    /// let rate = Rate::per_second(100).with_burst(10);
    /// assert_eq!((rate.count(), rate.burst()), (100, 10));
    /// ```
    ///
    /// ```should_panic
    /// flowgate::limit::Rate::per_second(1).with_burst(0); // "Rate::with_burst: burst must be at least 1"
    /// ```
    #[track_caller]
    pub fn with_burst(self, burst: u32) -> Rate {
        or_panic(
            "Rate::with_burst",
            Rate::new(self.count.get(), self.period, burst),
        )
    }

    /// Calls per [`period`](Self::period).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::Rate;
    ///
    /// let rate = Rate::per_minute(30);
    /// assert_eq!((rate.count(), rate.period()), (30, Duration::from_secs(60)));
    /// ```
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// The period `count` calls are spread over.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::Rate;
    ///
    /// let rate = Rate::per_minute(30);
    /// assert_eq!((rate.count(), rate.period()), (30, Duration::from_secs(60)));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How many calls may pass back to back.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::Rate;
    ///
    /// assert_eq!(Rate::per_second(5).burst(), 1);
    /// assert_eq!(Rate::per_second(5).with_burst(5).burst(), 5);
    /// ```
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The average time between calls: `period / count`, rounded down to the
    /// nanosecond.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::Rate;
    ///
    /// assert_eq!(Rate::per_second(3).interval(), Duration::from_nanos(333_333_333));
    /// ```
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

/// The rate, or a panic naming the operation and the broken rule.
#[track_caller]
fn or_panic(op: &str, rate: Result<Rate, RateError>) -> Rate {
    match rate {
        Ok(rate) => rate,
        Err(err) => panic!("{op}: {err}"),
    }
}

// ===== GCRA =====

/// The GCRA parameters of a [`Rate`], in nanoseconds. Shared by every
/// limiter of the module: the direct [`RateLimiter`] keeps one TAT in an
/// atomic, the keyed and fair limiters keep theirs under a lock, and all of
/// them decide with [`gcra_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Params {
    /// `T`: nanoseconds between cells.
    pub(super) interval: u64,
    /// `τ`: how far ahead of the schedule a call may be, `(burst - 1) × T`.
    pub(super) tolerance: u64,
}

impl Params {
    pub(super) fn of(rate: Rate) -> Params {
        let interval = duration_nanos(rate.interval());
        Params {
            interval,
            // Checked by `Rate::new` to fit.
            tolerance: interval * u64::from(rate.burst() - 1),
        }
    }
}

/// One GCRA decision: takes a cell at `now` from the theoretical arrival
/// time `tat` and returns the new TAT, or returns the earliest time at which
/// a cell is free. Times are nanoseconds since the limiter's start; a TAT of
/// 0 (or any TAT at or before `now`) is a limiter with its full burst free.
///
/// `promised` is the slot a waiter was told to come back at. If that slot
/// is still free and the waiter is less than one interval late, it is
/// charged at the slot rather than at `now`, so timer lateness does not
/// push the schedule back.
pub(super) fn gcra_step(tat: u64, now: u64, promised: Option<u64>, p: Params) -> Result<u64, u64> {
    let earliest = tat.saturating_sub(p.tolerance);
    let arrival = match promised {
        // Only a waiter that slept until its slot (never before it) and
        // whose slot nobody took since.
        Some(slot) if slot >= earliest && now >= slot && now - slot < p.interval => slot,
        _ => now,
    };
    if arrival < earliest {
        return Err(earliest);
    }
    Ok(tat.max(arrival).saturating_add(p.interval))
}

/// tokio's clock as nanoseconds since a start: the time base of a GCRA.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    start: Instant,
}

impl Clock {
    pub(super) fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub(super) fn now(&self) -> u64 {
        // As `duration_nanos`, without the u128 of `as_nanos`: this is on
        // every check's path.
        let since = Instant::now().saturating_duration_since(self.start);
        since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()))
    }

    /// The instant `nanos` after the start; "never" (far in the future)
    /// when that is beyond what an `Instant` holds, as a slot of a rate of
    /// one per century may be.
    pub(super) fn instant(&self, nanos: u64) -> Instant {
        crate::time::deadline(self.start, Duration::from_nanos(nanos))
    }
}

/// The GCRA state of the direct limiter: one atomic TAT.
struct Gcra {
    clock: Clock,
    params: Params,
    /// The theoretical arrival time of the next cell.
    tat: AtomicU64,
    metrics: LimitMetrics,
}

impl Gcra {
    fn new(rate: Rate, name: Name) -> Gcra {
        Gcra {
            clock: Clock::new(),
            params: Params::of(rate),
            tat: AtomicU64::new(0),
            metrics: LimitMetrics::new(name, Kind::Rate),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.clock.instant(nanos)
    }

    /// Takes a cell at `now`, or returns when the next one is free (see
    /// [`gcra_step`] for `promised`).
    fn take(&self, now: u64, promised: Option<u64>) -> Result<(), u64> {
        // Relaxed: the TAT is the only shared state and protects no other
        // data; the compare-and-swap alone makes every update count once.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = gcra_step(tat, now, promised, self.params)?;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.metrics.granted.inc();
                    return Ok(());
                }
                Err(actual) => tat = actual,
            }
        }
    }
}

pub(super) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

// ===== impl RateLimiter =====

/// A rate limiter shared by every clone: at most [`Rate`] calls pass, across
/// all of them.
///
/// Use it around any async call with [`acquire`](Self::acquire), poll
/// it without waiting with [`try_acquire`](Self::try_acquire), or put it in a stream with
/// [`rate_limit`](crate::pipeline::PipelineExt::rate_limit). It runs on tokio's clock,
/// so tests with paused time see exact timing.
///
/// Timing is exact and does not drift: the limiter keeps the *theoretical*
/// time of the next free cell (GCRA), a waiter that wakes late still gets
/// the slot it waited for, and a quiet spell saves up at most `burst` calls —
/// unlike a ticker, which drifts and lets a burst through after idle. The
/// price of keeping the schedule: the gap after a late wake-up is shorter by
/// that lateness (less than one interval), never shorter than zero, and over
/// any stretch of time the count stays within the rate.
///
/// Waiters are not queued: when several wait on one limiter, whichever checks
/// first after a cell frees up passes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::limit::{Rate, RateLimiter};
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = RateLimiter::new(Rate::per_second(10));
/// let start = Instant::now();
/// for _ in 0..5 {
///     limiter.acquire().await; // then call the API
/// }
/// assert_eq!(start.elapsed(), Duration::from_millis(400));
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    gcra: Arc<Gcra>,
    rate: Rate,
}

impl RateLimiter {
    /// A limiter letting `rate` calls through.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{Rate, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(10));
    /// assert!(limiter.try_acquire().is_ok());
    /// # }
    /// ```
    pub fn new(rate: Rate) -> RateLimiter {
        RateLimiter::named(rate, Name::none())
    }

    /// A limiter letting `rate` calls through, named `name`: with the
    /// `metrics` feature it records, with the label `name` (any string, as
    /// given; see [`crate::metrics`]):
    ///
    /// - `flowgate_limit_granted_total`: cells taken (by
    ///   [`acquire`](Self::acquire), [`try_acquire`](Self::try_acquire) and
    ///   the [`rate_limit`](crate::pipeline::PipelineExt::rate_limit) stage);
    /// - `flowgate_limit_rejected_total{reason="not_ready"}`: refused
    ///   `try_acquire` calls;
    /// - `flowgate_limit_waiting`: `acquire` calls (and `rate_limit` stages
    ///   holding an item) waiting for a cell now;
    /// - `flowgate_limit_wait_seconds`: how long each `acquire` (and each
    ///   item of a `rate_limit` stage) waited, 0 for those that did not,
    ///   from the times the limiter reads anyway.
    ///
    /// Clones share the name and the series. [`new`](Self::new) records
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{Rate, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::with_name(Rate::per_second(10), "api");
    /// limiter.acquire().await;
    /// assert!(limiter.try_acquire().is_err());
    /// # }
    /// ```
    pub fn with_name(rate: Rate, name: impl Into<String>) -> RateLimiter {
        RateLimiter::named(rate, Name::new(name))
    }

    fn named(rate: Rate, name: Name) -> RateLimiter {
        RateLimiter {
            gcra: Arc::new(Gcra::new(rate, name)),
            rate,
        }
    }

    /// The rate this limiter enforces.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{Rate, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(10));
    /// assert_eq!(limiter.rate(), Rate::per_second(10));
    /// # }
    /// ```
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes one cell if one is free now, without waiting.
    ///
    /// # Errors
    ///
    /// [`NotReady`], saying when a cell frees up, if none is free now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::limit::{Rate, RateLimiter};
    ///
    /// let limiter = RateLimiter::new(Rate::per_second(2));
    /// assert!(limiter.try_acquire().is_ok());
    /// let not_ready = limiter.try_acquire().unwrap_err();
    /// assert_eq!(not_ready.wait_time(), Duration::from_millis(500));
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<(), NotReady> {
        self.gcra.take(self.gcra.now(), None).map_err(|slot| {
            self.gcra.metrics.rejected.inc();
            NotReady {
                ready_at: self.gcra.instant(slot),
            }
        })
    }

    /// Waits until a cell is free and takes it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cell is taken only in the poll that completes the
    /// future, so a cancelled call takes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::limit::{Rate, RateLimiter};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(2));
    /// let start = Instant::now();
    /// limiter.acquire().await;
    /// limiter.acquire().await;
    /// assert_eq!(start.elapsed(), Duration::from_millis(500));
    /// # }
    /// ```
    pub async fn acquire(&self) {
        let metrics = &self.gcra.metrics;
        let mut promised = None;
        // Set at the first refusal: when the wait began, and the waiting
        // gauge's share (given back on return and on cancellation).
        let mut waiting: Option<(u64, GaugeGuard)> = None;
        loop {
            let now = self.gcra.now();
            match self.gcra.take(now, promised) {
                Ok(()) => {
                    metrics.waited(waiting.map_or(0, |(since, _)| now.saturating_sub(since)));
                    return;
                }
                Err(slot) => {
                    promised = Some(slot);
                    if waiting.is_none() {
                        waiting = Some((now, GaugeGuard::new(&metrics.waiting)));
                    }
                    sleep_until(self.gcra.instant(slot)).await;
                }
            }
        }
    }
}

impl RateLimiter {
    /// The limiter's clock: nanoseconds since its start.
    pub(crate) fn now(&self) -> u64 {
        self.gcra.now()
    }

    /// Takes a cell at `now` (from [`now`](Self::now)), or returns the slot
    /// (nanoseconds since the start) at which one frees up; `promised` is
    /// the slot a waiter slept until.
    pub(crate) fn take_at(&self, now: u64, promised: Option<u64>) -> Result<(), u64> {
        self.gcra.take(now, promised)
    }

    /// The limiter's series, for stages that wait on it.
    pub(crate) fn metrics(&self) -> &LimitMetrics {
        &self.gcra.metrics
    }

    /// The instant of a slot returned by [`take`](Self::take).
    pub(crate) fn slot_instant(&self, slot: u64) -> Instant {
        self.gcra.instant(slot)
    }
}

impl From<Rate> for RateLimiter {
    fn from(rate: Rate) -> RateLimiter {
        RateLimiter::new(rate)
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .name_field(&self.gcra.metrics.name)
            .finish_non_exhaustive()
    }
}
