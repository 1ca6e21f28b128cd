//! Deadlines that saturate: a duration too long for an `Instant` (up to
//! `Duration::MAX`) means "never", as `tokio::time::sleep(Duration::MAX)`
//! does, instead of the overflow panic of `Instant + Duration`.

use std::time::Duration;

use tokio::time::Instant;

/// How far "never" is: about 30 years (tokio's own far future).
const NEVER: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 30);

/// `from + after`, or about 30 years from `from` when that is beyond what an
/// `Instant` can hold: a deadline that does not pass in practice.
pub(crate) fn deadline(from: Instant, after: Duration) -> Instant {
    from.checked_add(after)
        .or_else(|| from.checked_add(NEVER))
        .unwrap_or(from)
}

/// Whether `after` from `at` has passed by `now` (never, for a duration too
/// long for an `Instant`).
pub(crate) fn passed(at: Instant, after: Duration, now: Instant) -> bool {
    at.checked_add(after).is_some_and(|end| end <= now)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_duration_too_long_for_an_instant_is_a_far_deadline() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(deadline(now, Duration::ZERO), now);
        assert!(deadline(now, Duration::MAX) >= now + NEVER);
        assert!(passed(now, Duration::ZERO, now));
        assert!(!passed(now, Duration::from_secs(1), now));
        assert!(!passed(now, Duration::MAX, now + NEVER));
    }
}
