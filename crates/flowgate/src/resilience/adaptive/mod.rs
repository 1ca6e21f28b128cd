//! [`AdaptiveLimit`]: a concurrency limit that finds the service's capacity
//! by itself (AIMD on observed round-trip times). The algorithm is described
//! on the type.

use std::fmt;
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

mod error;
mod metrics;

pub use self::error::BuildError;
use self::metrics::{AdaptiveMetrics, Waiting};
use crate::sync::lock;
use crate::telemetry::{Gauge, Name};

/// What a finished call tells an [`AdaptiveLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The service handled the call: its round-trip time is a sample.
    Success,
    /// The service pushed back (overloaded, timed out, rate-limited us): the
    /// limit will shrink at the end of the window.
    Overload,
    /// Neither: an error that says nothing about load (a bad request). No
    /// sample.
    Ignore,
}

impl Outcome {
    /// `Ok` is a [`Success`](Self::Success), `Err` an
    /// [`Overload`](Self::Overload): the default classification of
    /// [`AdaptiveLimit::run`] and
    /// [`par_map_adaptive`](crate::pipeline::PipelineExt::par_map_adaptive).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::Outcome;
    ///
    /// assert_eq!(Outcome::of_result(&Ok::<_, ()>(1)), Outcome::Success);
    /// assert_eq!(Outcome::of_result(&Err::<(), _>("busy")), Outcome::Overload);
    /// ```
    pub fn of_result<T, E>(result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Overload,
        }
    }
}

/// Counters and estimates of an [`AdaptiveLimit`], from
/// [`AdaptiveLimit::stats`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AdaptiveStats {
    /// The limit now.
    pub limit: usize,
    /// Calls admitted and not yet finished.
    pub in_flight: usize,
    /// The baseline RTT (EWMA of past windows), once there is one.
    pub baseline_rtt: Option<Duration>,
    /// Times the limit grew.
    pub increases: u64,
    /// Times the limit shrank.
    pub decreases: u64,
    /// Calls finished with [`Outcome::Overload`].
    pub overloads: u64,
}

/// Configures an [`AdaptiveLimit`]; from [`AdaptiveLimit::builder`].
///
/// | setting | default | rule |
/// |---|---|---|
/// | the range `min..=max` | (given) | `1 <= min <= max <=` [`AdaptiveLimit::MAX`] |
/// | [`initial`](Self::initial) | `min` | within the range |
/// | [`decrease_ratio`](Self::decrease_ratio) | 0.9 | in `(0, 1)` |
/// | [`ewma_alpha`](Self::ewma_alpha) | 0.4 | in `(0, 1]` |
/// | [`rtt_deviation_scale`](Self::rtt_deviation_scale) | 2.5 | finite, `>= 0` |
/// | [`name`](Self::name) | none: no metrics | any string |
#[derive(Debug, Clone)]
pub struct AdaptiveLimitBuilder {
    min: usize,
    max: usize,
    initial: Option<usize>,
    decrease_ratio: f64,
    ewma_alpha: f64,
    deviation_scale: f64,
    name: Name,
}

impl AdaptiveLimitBuilder {
    /// The limit to start from (default: the minimum).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// let limit = AdaptiveLimit::builder(1..=64).initial(16).build().unwrap();
    /// assert_eq!(limit.limit(), 16);
    /// ```
    pub fn initial(mut self, initial: usize) -> Self {
        self.initial = Some(initial);
        self
    }

    /// The factor a decrease multiplies the limit by (default 0.9). Lower
    /// backs off harder and recovers slower.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// assert!(AdaptiveLimit::builder(1..=64).decrease_ratio(0.5).build().is_ok());
    /// assert!(AdaptiveLimit::builder(1..=64).decrease_ratio(1.0).build().is_err());
    /// ```
    pub fn decrease_ratio(mut self, ratio: f64) -> Self {
        self.decrease_ratio = ratio;
        self
    }

    /// The weight of a new window's mean RTT in the baseline (default 0.4).
    /// Higher follows the service faster, and forgets its fast past sooner.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// assert!(AdaptiveLimit::builder(1..=64).ewma_alpha(0.2).build().is_ok());
    /// assert!(AdaptiveLimit::builder(1..=64).ewma_alpha(0.0).build().is_err());
    /// ```
    pub fn ewma_alpha(mut self, alpha: f64) -> Self {
        self.ewma_alpha = alpha;
        self
    }

    /// How many standard deviations above the baseline the mean RTT must
    /// rise to count as back-pressure (default 2.5).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// assert!(AdaptiveLimit::builder(1..=64).rtt_deviation_scale(3.0).build().is_ok());
    /// assert!(AdaptiveLimit::builder(1..=64).rtt_deviation_scale(f64::NAN).build().is_err());
    /// ```
    pub fn rtt_deviation_scale(mut self, scale: f64) -> Self {
        self.deviation_scale = scale;
        self
    }

    /// Names the limit: the `name` label of its series (feature `metrics`)
    /// and the `name` field of its events. Any string is accepted as given.
    /// Without a name the limit records no metrics.
    ///
    /// Enables, registered by [`build`](Self::build) with the recorder
    /// current then (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_adaptive_limit` (gauge): the limit now;
    /// - `flowgate_adaptive_in_flight` (gauge): calls admitted and not
    ///   finished, from every user (calls, stages, tower layers, guards);
    /// - `flowgate_adaptive_waiting` (gauge): callers of
    ///   [`acquire`](AdaptiveLimit::acquire) (and so [`run`](AdaptiveLimit::run)
    ///   and [`Guard`](super::Guard)) waiting for room; a stage or a tower
    ///   service waiting in `poll` is not counted;
    /// - `flowgate_adaptive_increases_total`, `flowgate_adaptive_decreases_total`:
    ///   the limit's moves;
    /// - `flowgate_adaptive_overloads_total`: calls finished with
    ///   [`Outcome::Overload`];
    /// - `flowgate_adaptive_rtt_seconds` (histogram): the round-trip time of
    ///   every call finished with [`Outcome::Success`] or
    ///   [`Outcome::Overload`] (the samples the limit adapts on).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// let limit = AdaptiveLimit::builder(1..=64).initial(8).name("search-api").build().unwrap();
    /// // flowgate_adaptive_limit{name="search-api"} is 8.
    /// assert_eq!(limit.limit(), 8);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self
    }

    /// Builds the limit.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first broken rule (see the table above).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    /// use flowgate::resilience::adaptive::BuildError;
    ///
    /// assert!(AdaptiveLimit::builder(1..=8).build().is_ok());
    /// assert_eq!(AdaptiveLimit::builder(1..=8).initial(9).build().unwrap_err(), BuildError::InitialOutOfRange(9));
    /// ```
    pub fn build(self) -> Result<AdaptiveLimit, BuildError> {
        let (min, max) = (self.min, self.max);
        if min == 0 {
            return Err(BuildError::ZeroMinLimit);
        }
        if min > max {
            return Err(BuildError::EmptyLimitRange { min, max });
        }
        if max > AdaptiveLimit::MAX {
            return Err(BuildError::LimitTooLarge(max));
        }
        let initial = self.initial.unwrap_or(min);
        if !(min..=max).contains(&initial) {
            return Err(BuildError::InitialOutOfRange(initial));
        }
        if !(self.decrease_ratio > 0.0 && self.decrease_ratio < 1.0) {
            return Err(BuildError::DecreaseRatio(self.decrease_ratio));
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return Err(BuildError::EwmaAlpha(self.ewma_alpha));
        }
        if !(self.deviation_scale.is_finite() && self.deviation_scale >= 0.0) {
            return Err(BuildError::DeviationScale(self.deviation_scale));
        }
        Ok(AdaptiveLimit {
            shared: Arc::new(Shared {
                semaphore: Arc::new(Semaphore::new(initial)),
                config: Config {
                    min,
                    max,
                    decrease_ratio: self.decrease_ratio,
                    alpha: self.ewma_alpha,
                    deviation_scale: self.deviation_scale,
                },
                waiting: self.name.gauge("flowgate_adaptive_waiting"),
                inner: Mutex::new(Controller {
                    limit: initial,
                    in_flight: 0,
                    debt: 0,
                    baseline: None,
                    window_sum: 0,
                    window_samples: 0,
                    reached_limit: false,
                    overloaded: false,
                    next_update: Instant::now(),
                    last_rtt: Duration::ZERO,
                    increases: 0,
                    decreases: 0,
                    overloads: 0,
                    metrics: AdaptiveMetrics::new(self.name, initial),
                }),
            }),
        })
    }
}

// ===== internals =====

struct Config {
    min: usize,
    max: usize,
    decrease_ratio: f64,
    alpha: f64,
    deviation_scale: f64,
}

struct Shared {
    /// Holds `limit - in_flight - debt` permits (never negative: a decrease
    /// that cannot forget enough available permits records the rest as
    /// debt, paid as permits come back).
    semaphore: Arc<Semaphore>,
    config: Config,
    /// `flowgate_adaptive_waiting`: `acquire` callers waiting for room.
    waiting: Gauge,
    inner: Mutex<Controller>,
}

/// An exponentially weighted moving mean and variance (of nanoseconds).
#[derive(Debug, Clone, Copy)]
struct Ewma {
    mean: f64,
    variance: f64,
}

impl Ewma {
    /// West's / Finch's incremental EWMA of mean and variance.
    fn update(&mut self, x: f64, alpha: f64) {
        let diff = x - self.mean;
        let increment = alpha * diff;
        self.mean += increment;
        self.variance = (1.0 - alpha) * (self.variance + diff * increment);
    }
}

struct Controller {
    limit: usize,
    in_flight: usize,
    /// Permits to forget as they come back, after a decrease below the
    /// number in flight.
    debt: usize,
    /// In nanoseconds.
    baseline: Option<Ewma>,
    /// Sum of the window's RTTs, in nanoseconds: whole numbers, so equal
    /// RTTs average to exactly the baseline they built.
    window_sum: u128,
    window_samples: u64,
    /// The limit was reached during this window: there was demand for more.
    reached_limit: bool,
    /// Back-pressure was signalled during this window.
    overloaded: bool,
    next_update: Instant,
    /// The RTT of the last call that finished with an outcome.
    last_rtt: Duration,
    increases: u64,
    decreases: u64,
    overloads: u64,
    /// Under the lock, so the gauges follow the limit in order.
    metrics: AdaptiveMetrics,
}

impl Controller {
    fn increase(&mut self, semaphore: &Semaphore) {
        self.limit += 1;
        self.increases += 1;
        self.metrics.increased(self.limit);
        tracing::trace!(
            name = self.metrics.name.as_str(),
            limit = self.limit,
            "adaptive limit increased"
        );
        if self.debt > 0 {
            self.debt -= 1;
        } else {
            semaphore.add_permits(1);
        }
    }

    fn decrease(&mut self, config: &Config, semaphore: &Semaphore) {
        let scaled = (self.limit as f64 * config.decrease_ratio) as usize;
        let new = scaled.min(self.limit - 1).max(config.min);
        let cut = self.limit - new;
        if cut == 0 {
            return;
        }
        let mean_rtt = (self.window_samples > 0).then(|| {
            Duration::from_nanos((self.window_sum / u128::from(self.window_samples)) as u64)
        });
        self.metrics.decreased(new);
        tracing::debug!(
            name = self.metrics.name.as_str(),
            from = self.limit,
            limit = new,
            mean_rtt = ?mean_rtt,
            "adaptive limit decreased"
        );
        self.limit = new;
        self.decreases += 1;
        let forgotten = semaphore.forget_permits(cut);
        self.debt += cut - forgotten;
    }

    /// Closes the observation window if it is due, adjusting the limit.
    fn end_window(&mut self, config: &Config, semaphore: &Semaphore, now: Instant) {
        if now < self.next_update {
            return;
        }
        let current = (self.window_samples > 0)
            .then(|| (self.window_sum / u128::from(self.window_samples)) as f64);
        match self.baseline {
            None => {
                // No baseline yet: back-pressure still shrinks the limit;
                // the first samples set the baseline.
                if !self.overloaded && current.is_none() {
                    return;
                }
                if self.overloaded && self.limit > config.min {
                    self.decrease(config, semaphore);
                }
                if let Some(current) = current {
                    self.baseline = Some(Ewma {
                        mean: current,
                        variance: 0.0,
                    });
                }
            }
            Some(mut baseline) => {
                let threshold = baseline.variance.sqrt() * config.deviation_scale;
                let congested =
                    self.overloaded || current.is_some_and(|c| c > baseline.mean + threshold);
                if self.limit < config.max
                    && self.reached_limit
                    && !self.overloaded
                    && current.is_some_and(|c| c <= baseline.mean)
                {
                    self.increase(semaphore);
                } else if self.limit > config.min && congested {
                    self.decrease(config, semaphore);
                }
                if let Some(current) = current {
                    // A congested window moves the baseline at a tenth of the
                    // weight: the baseline tracks the RTT of an unloaded
                    // service, not the one it shows under overload (Vector's
                    // full-weight update lets it drift up with the load, and
                    // the limit with it), yet still follows a service that
                    // slowed down for good.
                    let alpha = if congested {
                        config.alpha * CONGESTED_WEIGHT
                    } else {
                        config.alpha
                    };
                    baseline.update(current, alpha);
                }
                self.baseline = Some(baseline);
            }
        }
        // Windows last one baseline RTT (the last call's RTT until there is
        // a baseline).
        let window = self
            .baseline
            .map_or(self.last_rtt, |b| Duration::from_nanos(b.mean as u64));
        self.next_update = crate::time::deadline(now, window);
        self.window_sum = 0;
        self.window_samples = 0;
        self.reached_limit = self.in_flight >= self.limit;
        self.overloaded = false;
    }
}

/// The weight of a congested window in the baseline, relative to the
/// configured EWMA weight.
const CONGESTED_WEIGHT: f64 = 0.1;

// ===== impl AdaptiveLimit =====

/// A concurrency limit that adapts to the service: it grows by one while
/// round-trip times stay near their baseline and shrinks by a factor on
/// back-pressure or rising latency (AIMD, after Vector's adaptive request
/// concurrency; see [Algorithm](#algorithm)).
///
/// Shared by every clone. Use it around any call with [`run`](Self::run)
/// or [`acquire`](Self::acquire) (report the outcome on the permit), or as a
/// stream stage with
/// [`par_map_adaptive`](crate::pipeline::PipelineExt::par_map_adaptive).
/// Waiters are served in order (it is backed by a tokio [`Semaphore`]).
/// When the limit shrinks below the calls in flight, none is interrupted:
/// the room comes back as they finish.
///
/// # Algorithm
///
/// The design follows Vector's adaptive request concurrency (ARC; Vector's
/// RFC 1858 and `src/sinks/util/adaptive_concurrency/`), written anew here:
///
/// - Every call's round-trip time (RTT) from the moment it was admitted to
///   the moment its outcome was recorded is a sample; calls that failed with
///   back-pressure (overload, a timeout, HTTP 429/503) set a flag instead.
/// - Samples are averaged over an *observation window* of about one
///   baseline RTT. At its end the window's mean RTT is compared with the
///   *baseline*, an exponentially weighted moving average (EWMA) of past
///   window means, with its EWMA variance:
///   - **additive increase**: if the limit was reached during the window
///     (there was demand for more), nothing signalled back-pressure, and the
///     mean RTT was at or below the baseline, the limit grows by one;
///   - **multiplicative decrease**: otherwise, if back-pressure was
///     signalled, or the mean RTT rose above the baseline by more than
///     `rtt_deviation_scale` standard deviations, the limit shrinks to
///     `limit × decrease_ratio` (at least by one);
///   - then the window's mean joins the baseline — with a tenth of the
///     weight if the window was congested (back-pressure, or an RTT above
///     the threshold).
/// - Before there is a baseline, back-pressure still shrinks the limit, and
///   windows last one RTT of the last call.
/// - The limit stays within `min..=max`.
///
/// A service that slows down once more than `K` calls are in flight thus
/// sees the limit climb to about `K`, step over it, meet rising latency, and
/// fall back by ten per cent: it settles in a band around `K` (the tests
/// check `K` = 8 and `K` = 32 under paused time).
///
/// Differences from Vector:
///
/// - Congested windows weigh a tenth in the baseline. Vector folds every
///   window into it at full weight, so under sustained overload the
///   baseline climbs to the overloaded RTT, rising latency stops looking
///   like a rise, and the limit stalls above the capacity (in the test
///   above, at 13 for `K` = 8). Here the baseline tracks the unloaded RTT,
///   yet still follows a service that slows down for good (slowly, while
///   the limit sits at its floor).
/// - A decrease needs an RTT strictly above the threshold: Vector's `>=`
///   also shrinks a limit that was not even used when the RTT merely equals
///   a steady baseline.
/// - RTTs are summed in whole nanoseconds, so equal RTTs average to exactly
///   the baseline they built (in floating point seconds they drift by an
///   ulp and block increases).
/// - It is a library type usable around any call (and a stream stage, and
///   a tower layer), with a floor (`min`) as well as a ceiling.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::resilience::AdaptiveLimit;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limit = AdaptiveLimit::new(1..=50);
/// let out = limit
///     .run(async {
///         tokio::time::sleep(Duration::from_millis(10)).await;
///         Ok::<_, std::io::Error>(42)
///     })
///     .await;
/// assert_eq!(out.unwrap(), 42);
/// assert_eq!(limit.limit(), 1); // one call says little: still at the start
/// # }
/// ```
#[derive(Clone)]
pub struct AdaptiveLimit {
    shared: Arc<Shared>,
}

impl AdaptiveLimit {
    /// The largest maximum: [`Semaphore::MAX_PERMITS`].
    pub const MAX: usize = Semaphore::MAX_PERMITS;

    /// A limit adapting within `range`, starting at its minimum, with the
    /// default tuning (see [`AdaptiveLimitBuilder`]).
    ///
    /// # Panics
    ///
    /// If the range is empty, starts at 0, or ends above [`Self::MAX`]; use
    /// [`builder`](Self::builder) for values from configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// let limit = AdaptiveLimit::new(2..=32);
    /// assert_eq!((limit.limit(), limit.range()), (2, 2..=32));
    /// ```
    #[track_caller]
    pub fn new(range: RangeInclusive<usize>) -> AdaptiveLimit {
        match AdaptiveLimit::builder(range).build() {
            Ok(limit) => limit,
            Err(err) => panic!("AdaptiveLimit::new: {err}"),
        }
    }

    /// Starts configuring a limit adapting within `range`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// let limit = AdaptiveLimit::builder(1..=32).initial(4).build().unwrap();
    /// assert_eq!(limit.limit(), 4);
    /// ```
    pub fn builder(range: RangeInclusive<usize>) -> AdaptiveLimitBuilder {
        AdaptiveLimitBuilder {
            min: *range.start(),
            max: *range.end(),
            initial: None,
            decrease_ratio: 0.9,
            ewma_alpha: 0.4,
            deviation_scale: 2.5,
            name: Name::none(),
        }
    }

    /// Waits for room under the current limit and takes it. Report the
    /// call's outcome on the permit with [`record`](AdaptivePermit::record);
    /// the RTT runs from now until then.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled `acquire` holds nothing and loses only its
    /// place among the waiters.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{AdaptiveLimit, Outcome};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(1..=10);
    /// let permit = limit.acquire().await;
    /// assert!(limit.try_acquire().is_none()); // starts at 1
    /// permit.record(Outcome::Success);
    /// assert_eq!(limit.in_flight(), 0);
    /// # }
    /// ```
    pub async fn acquire(&self) -> AdaptivePermit {
        // Room now, or a wait counted in the waiting gauge (until it ends or
        // is cancelled). Room is handed to waiters first, so the attempt
        // never jumps the queue.
        if let Some(permit) = self.try_acquire() {
            return permit;
        }
        let _waiting = Waiting::new(&self.shared.waiting);
        match Arc::clone(&self.shared.semaphore).acquire_owned().await {
            Ok(permit) => self.admit(permit),
            Err(_) => unreachable!("the adaptive semaphore is never closed"),
        }
    }

    /// Takes room under the current limit if there is some now.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// let limit = AdaptiveLimit::new(1..=4);
    /// let permit = limit.try_acquire().unwrap();
    /// assert!(limit.try_acquire().is_none()); // starts at 1; never waits
    /// ```
    pub fn try_acquire(&self) -> Option<AdaptivePermit> {
        match Arc::clone(&self.shared.semaphore).try_acquire_owned() {
            Ok(permit) => Some(self.admit(permit)),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => None,
        }
    }

    /// Runs `fut` under the limit, counting `Ok` as a success (its RTT a
    /// sample) and `Err` as back-pressure.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe for the limit: a cancelled call gives its room back and
    /// records nothing. Whatever `fut` loses when dropped is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(1..=4);
    /// assert_eq!(limit.run(async { Err::<(), _>("busy") }).await, Err("busy"));
    /// assert_eq!(limit.stats().overloads, 1);
    /// # }
    /// ```
    pub async fn run<Fut, T, E>(&self, fut: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_with(Outcome::of_result, fut).await
    }

    /// Runs `fut` under the limit, reporting what `classify` makes of its
    /// output.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{AdaptiveLimit, Outcome};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(1..=10);
    /// // HTTP-like statuses: 429 and 503 are back-pressure, 404 is not.
    /// let classify = |status: &u16| match status {
    ///     429 | 503 => Outcome::Overload,
    ///     200..=299 => Outcome::Success,
    ///     _ => Outcome::Ignore,
    /// };
    /// assert_eq!(limit.run_with(classify, async { 404 }).await, 404);
    /// assert_eq!(limit.stats().overloads, 0);
    /// # }
    /// ```
    pub async fn run_with<C, Fut>(&self, classify: C, fut: Fut) -> Fut::Output
    where
        C: FnOnce(&Fut::Output) -> Outcome,
        Fut: Future,
    {
        let permit = self.acquire().await;
        let output = fut.await;
        permit.record(classify(&output));
        output
    }

    /// The limit now.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// assert_eq!(AdaptiveLimit::new(3..=9).limit(), 3);
    /// ```
    pub fn limit(&self) -> usize {
        lock(&self.shared.inner).limit
    }

    /// Calls admitted and not yet finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// let limit = AdaptiveLimit::new(1..=4);
    /// let permit = limit.try_acquire().unwrap();
    /// assert_eq!(limit.in_flight(), 1);
    /// ```
    pub fn in_flight(&self) -> usize {
        lock(&self.shared.inner).in_flight
    }

    /// The range the limit adapts within.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// assert_eq!(AdaptiveLimit::new(3..=9).range(), 3..=9);
    /// ```
    pub fn range(&self) -> RangeInclusive<usize> {
        self.shared.config.min..=self.shared.config.max
    }

    /// The limit, the calls in flight, the baseline RTT and counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    ///
    /// let stats = AdaptiveLimit::new(1..=4).stats();
    /// assert_eq!((stats.limit, stats.in_flight, stats.baseline_rtt), (1, 0, None));
    /// ```
    pub fn stats(&self) -> AdaptiveStats {
        let inner = lock(&self.shared.inner);
        AdaptiveStats {
            limit: inner.limit,
            in_flight: inner.in_flight,
            baseline_rtt: inner.baseline.map(|b| Duration::from_nanos(b.mean as u64)),
            increases: inner.increases,
            decreases: inner.decreases,
            overloads: inner.overloads,
        }
    }

    /// The semaphore the limit hands room out of, for poll-based stages.
    pub(crate) fn semaphore(&self) -> Arc<Semaphore> {
        Arc::clone(&self.shared.semaphore)
    }

    /// Wraps room taken from the semaphore into a permit, counting the call
    /// in flight.
    pub(crate) fn admit(&self, permit: OwnedSemaphorePermit) -> AdaptivePermit {
        let now = Instant::now();
        {
            let mut inner = lock(&self.shared.inner);
            inner.in_flight += 1;
            inner.metrics.in_flight.inc();
            if inner.in_flight >= inner.limit {
                inner.reached_limit = true;
            }
        }
        AdaptivePermit {
            shared: Arc::clone(&self.shared),
            permit: Some(permit),
            started: now,
        }
    }
}

impl fmt::Debug for AdaptiveLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = lock(&self.shared.inner);
        f.debug_struct("AdaptiveLimit")
            .field("range", &(self.shared.config.min..=self.shared.config.max))
            .field("limit", &inner.limit)
            .field("in_flight", &inner.in_flight)
            .finish_non_exhaustive()
    }
}

/// Room for one call under an [`AdaptiveLimit`]. Report the call's outcome
/// with [`record`](Self::record); dropping the permit gives the room back
/// and reports nothing (as [`Outcome::Ignore`]).
#[must_use = "report the call's outcome with record()"]
pub struct AdaptivePermit {
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
    started: Instant,
}

impl AdaptivePermit {
    /// Reports the call's outcome, its RTT running from the permit's
    /// admission until now, and gives the room back.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::{AdaptiveLimit, Outcome};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(1..=4);
    /// limit.acquire().await.record(Outcome::Overload);
    /// assert_eq!((limit.in_flight(), limit.stats().overloads), (0, 1));
    /// # }
    /// ```
    pub fn record(self, outcome: Outcome) {
        self.record_at(outcome, Instant::now());
    }

    /// Reports the outcome of a call that finished at `finished`.
    pub(crate) fn record_at(mut self, outcome: Outcome, finished: Instant) {
        self.finish(outcome, finished);
    }

    /// When the permit was admitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::AdaptiveLimit;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limit = AdaptiveLimit::new(1..=4);
    /// let permit = limit.acquire().await;
    /// assert_eq!(permit.started(), Instant::now());
    /// # }
    /// ```
    pub fn started(&self) -> Instant {
        self.started
    }

    fn finish(&mut self, outcome: Outcome, finished: Instant) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        inner.in_flight -= 1;
        inner.metrics.in_flight.dec();
        let rtt = finished.saturating_duration_since(self.started);
        match outcome {
            Outcome::Success => {
                inner.window_sum = inner.window_sum.saturating_add(rtt.as_nanos());
                inner.window_samples += 1;
                inner.last_rtt = rtt;
                inner.metrics.rtt.record_duration(rtt);
            }
            Outcome::Overload => {
                inner.overloaded = true;
                inner.overloads += 1;
                inner.last_rtt = rtt;
                inner.metrics.rtt.record_duration(rtt);
                inner.metrics.overloads.inc();
            }
            Outcome::Ignore => {}
        }
        if inner.debt > 0 {
            // The limit shrank below what was in flight: this room is gone.
            inner.debt -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
        inner.end_window(&shared.config, &shared.semaphore, Instant::now());
    }
}

impl Drop for AdaptivePermit {
    fn drop(&mut self) {
        self.finish(Outcome::Ignore, Instant::now());
    }
}

impl fmt::Debug for AdaptivePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptivePermit")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}
