//! Errors of the [`AdaptiveLimit`](super::AdaptiveLimit).

use std::error::Error;
use std::fmt;

/// An [`AdaptiveLimitBuilder`](super::AdaptiveLimitBuilder) configuration
/// that cannot work, reported by
/// [`build`](super::AdaptiveLimitBuilder::build) before anything runs. Each
/// variant names the broken rule.
///
/// # Examples
///
/// ```
/// use flowgate::resilience::AdaptiveLimit;
/// use flowgate::resilience::adaptive::BuildError;
///
/// let err = AdaptiveLimit::builder(0..=8).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroMinLimit);
/// assert_eq!(err.to_string(), "range must start at 1 or more");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// The range's minimum was zero: nothing could ever run.
    ZeroMinLimit,
    /// The range was empty (`min > max`).
    EmptyLimitRange {
        /// The configured minimum.
        min: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The range's maximum exceeded
    /// [`AdaptiveLimit::MAX`](super::AdaptiveLimit::MAX).
    LimitTooLarge(usize),
    /// The initial limit was outside `min..=max`.
    InitialOutOfRange(usize),
    /// The decrease ratio was not in `(0, 1)` (NaN included).
    DecreaseRatio(f64),
    /// The EWMA weight was not in `(0, 1]` (NaN included).
    EwmaAlpha(f64),
    /// The RTT deviation scale was negative or not finite.
    DeviationScale(f64),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMinLimit => f.write_str("range must start at 1 or more"),
            Self::EmptyLimitRange { min, max } => {
                write!(f, "range must not be empty, got {min}..={max}")
            }
            Self::LimitTooLarge(max) => write!(
                f,
                "range must end at most at {}, got {max}",
                super::AdaptiveLimit::MAX
            ),
            Self::InitialOutOfRange(n) => write!(f, "initial must be within the range, got {n}"),
            Self::DecreaseRatio(r) => write!(f, "decrease_ratio must be in (0, 1), got {r}"),
            Self::EwmaAlpha(a) => write!(f, "ewma_alpha must be in (0, 1], got {a}"),
            Self::DeviationScale(s) => {
                write!(
                    f,
                    "rtt_deviation_scale must be finite and at least 0, got {s}"
                )
            }
        }
    }
}

impl Error for BuildError {}
