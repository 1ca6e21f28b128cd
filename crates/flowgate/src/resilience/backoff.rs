//! [`Backoff`]: how long to wait before each retry, and its [`Schedule`].
//!
//! Why not `backon`'s builders: its exponential schedule multiplies in `f32`
//! seconds (100 ms × 2 comes out a few nanoseconds off, which breaks exact
//! assertions under paused time), its only jitter *adds* up to one more
//! delay (so a capped delay can come out at twice the cap), and it has no
//! full, equal or decorrelated jitter. The schedules here compute in integer
//! nanoseconds, keep every jittered delay within the cap, and take a seed so
//! tests are deterministic. A `backon` backoff is an
//! `Iterator<Item = Duration>` and the retry loop only needs the delays, so
//! moving between the two is a matter of a few lines.

use std::fmt;
use std::time::Duration;

/// How the delays of a [`Backoff`] grow before jitter is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Growth {
    /// The same delay every time.
    Constant(Duration),
    /// `initial`, `initial + step`, `initial + 2 × step`, ...
    Linear { initial: Duration, step: Duration },
    /// `initial`, `initial × factor`, `initial × factor²`, ...
    Exponential { initial: Duration, factor: f64 },
    /// AWS's "decorrelated jitter": each delay is drawn between `base` and
    /// three times the previous delay.
    Decorrelated { base: Duration },
}

/// How a delay is randomised, so that many clients that failed together do
/// not retry together.
///
/// Jitter is applied to each delay *after* the cap, so a jittered delay
/// never exceeds [`Backoff::max_delay`]. The names follow the AWS
/// Architecture Blog's "Exponential Backoff And Jitter".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: the delays are exactly the schedule's.
    #[default]
    None,
    /// A delay `d` becomes uniform in `[0, d]`: the widest spread, and the
    /// least total load on a recovering service.
    Full,
    /// A delay `d` becomes uniform in `[d / 2, d]`: some spread, and never
    /// less than half the delay.
    Equal,
}

/// How long to wait before each retry: constant, linear, exponential or
/// decorrelated, optionally capped and jittered.
///
/// A `Backoff` is a small `Copy` value describing the delays; each retry
/// loop draws them from its own [`Schedule`] ([`schedule`](Self::schedule)).
/// Delays are computed in whole nanoseconds and saturate at about 584 years
/// rather than overflow. How *many* delays are used is up to the caller:
/// [`Retry`](super::Retry) stops after its maximum attempts or its time
/// budget.
///
/// | schedule | delay `n` (from 0), before the cap |
/// |---|---|
/// | [`constant(d)`](Self::constant) | `d` |
/// | [`linear(initial, step)`](Self::linear) | `initial + n × step` |
/// | [`exponential(initial)`](Self::exponential) | `initial × factor^n` (factor 2 unless [set](Self::factor)) |
/// | [`decorrelated(base)`](Self::decorrelated) | uniform in `[base, 3 × delay(n-1)]`, with `delay(-1) = base` |
///
/// Every delay is then capped at [`max_delay`](Self::max_delay) (no cap
/// unless set) and randomised by the [`Jitter`] (none unless set).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::resilience::{Backoff, Jitter};
///
/// let ms = Duration::from_millis;
/// let backoff = Backoff::exponential(ms(100)).max_delay(ms(1000));
/// let delays: Vec<Duration> = backoff.schedule().take(6).collect();
/// assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
///
/// // Full jitter: each delay uniform in [0, d]; seeded, so reproducible.
/// let jittered = backoff.jitter(Jitter::Full);
/// let a: Vec<Duration> = jittered.schedule_seeded(7).take(6).collect();
/// let b: Vec<Duration> = jittered.schedule_seeded(7).take(6).collect();
/// assert_eq!(a, b);
/// assert!(a.iter().zip(&delays).all(|(j, d)| j <= d));
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct Backoff {
    growth: Growth,
    max_delay: Option<Duration>,
    jitter: Jitter,
}

impl Backoff {
    /// The same delay before every retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let d: Vec<_> = Backoff::constant(ms(50)).schedule().take(3).collect();
    /// assert_eq!(d, [ms(50), ms(50), ms(50)]);
    /// ```
    pub const fn constant(delay: Duration) -> Backoff {
        Backoff::from_growth(Growth::Constant(delay))
    }

    /// `initial` before the first retry, then `step` more before each
    /// further one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let d: Vec<_> = Backoff::linear(ms(100), ms(50)).schedule().take(3).collect();
    /// assert_eq!(d, [ms(100), ms(150), ms(200)]);
    /// ```
    pub const fn linear(initial: Duration, step: Duration) -> Backoff {
        Backoff::from_growth(Growth::Linear { initial, step })
    }

    /// `initial` before the first retry, then twice as long before each
    /// further one (change the factor with [`factor`](Self::factor)). Set a
    /// [`max_delay`](Self::max_delay): without one the delays double without
    /// bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let d: Vec<_> = Backoff::exponential(ms(100)).schedule().take(3).collect();
    /// assert_eq!(d, [ms(100), ms(200), ms(400)]);
    /// ```
    pub const fn exponential(initial: Duration) -> Backoff {
        Backoff::from_growth(Growth::Exponential {
            initial,
            factor: 2.0,
        })
    }

    /// AWS's decorrelated jitter: each delay is uniform in
    /// `[base, 3 × previous delay]` (the first in `[base, 3 × base]`), then
    /// capped. It grows about like an exponential backoff with factor 2 on
    /// average, while spreading clients more than full jitter does. It is
    /// random by nature; a [`Jitter`] set on it is ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let d: Vec<_> = Backoff::decorrelated(ms(100)).max_delay(ms(1000)).schedule_seeded(3).take(5).collect();
    /// assert!(d.iter().all(|d| (ms(100)..=ms(1000)).contains(d)));
    /// ```
    pub const fn decorrelated(base: Duration) -> Backoff {
        Backoff::from_growth(Growth::Decorrelated { base })
    }

    const fn from_growth(growth: Growth) -> Backoff {
        Backoff {
            growth,
            max_delay: None,
            jitter: Jitter::None,
        }
    }

    /// The growth factor of an [`exponential`](Self::exponential) backoff;
    /// ignored by the other schedules.
    ///
    /// Integer factors are exact; others are rounded to the nanosecond.
    ///
    /// # Panics
    ///
    /// If `factor` is below 1 or not finite: the delays would shrink, or be
    /// meaningless.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let d: Vec<_> = Backoff::exponential(ms(100)).factor(3.0).schedule().take(3).collect();
    /// assert_eq!(d, [ms(100), ms(300), ms(900)]);
    /// ```
    #[track_caller]
    pub fn factor(mut self, factor: f64) -> Backoff {
        assert!(
            factor.is_finite() && factor >= 1.0,
            "Backoff::factor: factor must be finite and at least 1, got {factor}"
        );
        if let Growth::Exponential { factor: f, .. } = &mut self.growth {
            *f = factor;
        }
        self
    }

    /// Caps every delay at `max`, before jitter (so a jittered delay never
    /// exceeds it either).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let d: Vec<_> = Backoff::exponential(ms(400)).max_delay(ms(500)).schedule().take(3).collect();
    /// assert_eq!(d, [ms(400), ms(500), ms(500)]);
    /// ```
    pub const fn max_delay(mut self, max: Duration) -> Backoff {
        self.max_delay = Some(max);
        self
    }

    /// Randomises each delay; see [`Jitter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Jitter};
    ///
    /// let ms = Duration::from_millis;
    /// let d: Vec<_> = Backoff::constant(ms(100)).jitter(Jitter::Equal).schedule().take(10).collect();
    /// assert!(d.iter().all(|d| (ms(50)..=ms(100)).contains(d)));
    /// ```
    pub const fn jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// The cap on every delay, if one was set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// assert_eq!(Backoff::constant(ms(1)).cap(), None);
    /// assert_eq!(Backoff::exponential(ms(1)).max_delay(ms(8)).cap(), Some(ms(8)));
    /// ```
    pub const fn cap(&self) -> Option<Duration> {
        self.max_delay
    }

    /// The delays, with jitter drawn from a random seed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let mut delays = Backoff::linear(ms(10), ms(10)).schedule();
    /// assert_eq!(delays.next(), Some(ms(10)));
    /// assert_eq!(delays.next(), Some(ms(20)));
    /// ```
    pub fn schedule(&self) -> Schedule {
        self.schedule_with(fastrand::Rng::new())
    }

    /// The delays, with jitter drawn from `seed`: the same seed gives the
    /// same delays, for tests and reproducible runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{Backoff, Jitter};
    ///
    /// let b = Backoff::exponential(Duration::from_millis(10)).jitter(Jitter::Full);
    /// let a: Vec<_> = b.schedule_seeded(42).take(4).collect();
    /// assert_eq!(a, b.schedule_seeded(42).take(4).collect::<Vec<_>>());
    /// ```
    pub fn schedule_seeded(&self, seed: u64) -> Schedule {
        self.schedule_with(fastrand::Rng::with_seed(seed))
    }

    fn schedule_with(&self, rng: fastrand::Rng) -> Schedule {
        Schedule {
            backoff: *self,
            next: 0,
            previous: None,
            rng,
        }
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Backoff");
        match self.growth {
            Growth::Constant(delay) => d.field("constant", &delay),
            Growth::Linear { initial, step } => d.field("linear", &initial).field("step", &step),
            Growth::Exponential { initial, factor } => {
                d.field("exponential", &initial).field("factor", &factor)
            }
            Growth::Decorrelated { base } => d.field("decorrelated", &base),
        };
        d.field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .finish()
    }
}

/// The delays of a [`Backoff`], one per retry: an endless iterator (the
/// retry loop decides when to stop), made by [`Backoff::schedule`].
pub struct Schedule {
    backoff: Backoff,
    /// Index of the next delay.
    next: u32,
    /// The previous delay before jitter (the raw growth), in nanoseconds;
    /// for the decorrelated schedule, the previous delay drawn.
    previous: Option<u64>,
    rng: fastrand::Rng,
}

impl Schedule {
    /// The raw (uncapped, unjittered) delay that follows `previous`.
    fn grow(&mut self) -> u64 {
        match self.backoff.growth {
            Growth::Constant(delay) => nanos(delay),
            Growth::Linear { initial, step } => match self.previous {
                None => nanos(initial),
                Some(previous) => previous.saturating_add(nanos(step)),
            },
            Growth::Exponential { initial, factor } => match self.previous {
                None => nanos(initial),
                Some(previous) => multiply(previous, factor),
            },
            Growth::Decorrelated { base } => {
                let base = nanos(base);
                let previous = self.previous.unwrap_or(base);
                let high = previous.saturating_mul(3).max(base);
                self.rng.u64(base..=high)
            }
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let raw = self.grow();
        let cap = self.backoff.max_delay.map_or(u64::MAX, nanos);
        let capped = raw.min(cap);
        let delay = match self.backoff.growth {
            // Random already; the next draw starts from what was drawn
            // (capped, as in the AWS formulation).
            Growth::Decorrelated { .. } => {
                self.previous = Some(capped);
                capped
            }
            // The growth continues from the raw delay, so the cap and the
            // jitter never slow it down.
            _ => {
                self.previous = Some(raw);
                match self.backoff.jitter {
                    Jitter::None => capped,
                    Jitter::Full => self.rng.u64(0..=capped),
                    Jitter::Equal => {
                        let half = capped / 2;
                        half + self.rng.u64(0..=capped - half)
                    }
                }
            }
        };
        self.next = self.next.saturating_add(1);
        Some(Duration::from_nanos(delay))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("backoff", &self.backoff)
            .field("delays_taken", &self.next)
            .finish_non_exhaustive()
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `value × factor`, exact for integer factors, saturating.
fn multiply(value: u64, factor: f64) -> u64 {
    if factor.fract() == 0.0 && factor <= u64::MAX as f64 {
        value.saturating_mul(factor as u64)
    } else {
        let product = (value as f64 * factor).round();
        if product >= u64::MAX as f64 {
            u64::MAX
        } else {
            product as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiply_saturates_and_rounds() {
        assert_eq!(multiply(3, 2.0), 6);
        assert_eq!(multiply(u64::MAX / 2 + 1, 2.0), u64::MAX);
        assert_eq!(multiply(100, 1.5), 150);
        assert_eq!(multiply(u64::MAX, 1.5), u64::MAX);
    }
}
