//! The sliding window of a [`CircuitBreaker`](super::CircuitBreaker): the
//! last `n` calls, or the calls of the last span of time counted in buckets.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Which recent calls the failure ratio is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window(pub(super) WindowKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum WindowKind {
    Calls(usize),
    Time { span: Duration, buckets: u32 },
}

impl Window {
    /// The last `n` calls (a count-based sliding window).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{CircuitBreaker, Window};
    ///
    /// let breaker = CircuitBreaker::builder().window(Window::last_calls(50)).min_calls(10).build();
    /// assert!(breaker.is_ok());
    /// # let _ = Duration::ZERO;
    /// ```
    pub const fn last_calls(n: usize) -> Window {
        Window(WindowKind::Calls(n))
    }

    /// The calls of the last `span` (a time-based sliding window), counted in
    /// 10 buckets of `span / 10`: a call leaves the window between
    /// `span - span / 10` and `span` after it was recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{CircuitBreaker, Window};
    ///
    /// let breaker = CircuitBreaker::builder().window(Window::last(Duration::from_secs(30))).build();
    /// assert!(breaker.is_ok());
    /// ```
    pub const fn last(span: Duration) -> Window {
        Window::last_bucketed(span, 10)
    }

    /// The calls of the last `span`, counted in `buckets` buckets: more
    /// buckets track time more closely, at the cost of memory (one small
    /// counter pair each).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::{CircuitBreaker, Window};
    ///
    /// let window = Window::last_bucketed(Duration::from_secs(60), 60); // 1 s buckets
    /// assert!(CircuitBreaker::builder().window(window).build().is_ok());
    /// assert!(CircuitBreaker::builder().window(Window::last_bucketed(Duration::from_secs(1), 0)).build().is_err());
    /// ```
    pub const fn last_bucketed(span: Duration, buckets: u32) -> Window {
        Window(WindowKind::Time { span, buckets })
    }
}

/// The outcomes in the sliding window (closed state only).
pub(super) enum Outcomes {
    /// The last `size` outcomes, `true` for a failure.
    Calls {
        ring: VecDeque<bool>,
        size: usize,
        failures: usize,
    },
    /// Per-bucket counts of the last `count` buckets of `width`; a bucket is
    /// `(index since epoch, calls, failures)`.
    Time {
        epoch: Instant,
        width: Duration,
        count: u64,
        buckets: VecDeque<(u64, usize, usize)>,
        calls: usize,
        failures: usize,
    },
}

impl Outcomes {
    /// An empty window of the given shape, its time buckets counted from
    /// `now`.
    pub(super) fn new(window: Window, now: Instant) -> Outcomes {
        match window.0 {
            // Grown as calls come: a window of `usize::MAX` calls allocates
            // no more than it holds.
            WindowKind::Calls(n) => Outcomes::Calls {
                ring: VecDeque::with_capacity(n.min(4096)),
                size: n,
                failures: 0,
            },
            WindowKind::Time { span, buckets } => Outcomes::Time {
                epoch: now,
                width: (span / buckets).max(Duration::from_nanos(1)),
                count: u64::from(buckets),
                buckets: VecDeque::with_capacity(buckets.min(1024) as usize),
                calls: 0,
                failures: 0,
            },
        }
    }

    pub(super) fn record(&mut self, now: Instant, failed: bool) {
        match self {
            Outcomes::Calls {
                ring,
                size,
                failures,
            } => {
                if ring.len() == *size && ring.pop_front() == Some(true) {
                    *failures -= 1;
                }
                ring.push_back(failed);
                *failures += usize::from(failed);
            }
            Outcomes::Time { .. } => {
                self.expire(now);
                let index = self.bucket_index(now);
                if let Outcomes::Time {
                    buckets,
                    calls,
                    failures,
                    ..
                } = self
                {
                    match buckets.back_mut() {
                        Some(bucket) if bucket.0 == index => {
                            bucket.1 += 1;
                            bucket.2 += usize::from(failed);
                        }
                        _ => buckets.push_back((index, 1, usize::from(failed))),
                    }
                    *calls += 1;
                    *failures += usize::from(failed);
                }
            }
        }
    }

    pub(super) fn bucket_index(&self, now: Instant) -> u64 {
        match self {
            Outcomes::Time { epoch, width, .. } => {
                let since = now.saturating_duration_since(*epoch).as_nanos();
                u64::try_from(since / width.as_nanos()).unwrap_or(u64::MAX)
            }
            Outcomes::Calls { .. } => 0,
        }
    }

    /// Drops the buckets that left the time window.
    pub(super) fn expire(&mut self, now: Instant) {
        let index = self.bucket_index(now);
        if let Outcomes::Time {
            count,
            buckets,
            calls,
            failures,
            ..
        } = self
        {
            // Buckets `index - count + 1 ..= index` are in the window.
            while let Some(&(oldest, c, f)) = buckets.front() {
                if oldest.saturating_add(*count) > index {
                    break;
                }
                buckets.pop_front();
                *calls -= c;
                *failures -= f;
            }
        }
    }

    /// `(calls, failures)` in the window now.
    pub(super) fn counts(&mut self, now: Instant) -> (usize, usize) {
        self.expire(now);
        match self {
            Outcomes::Calls { ring, failures, .. } => (ring.len(), *failures),
            Outcomes::Time {
                calls, failures, ..
            } => (*calls, *failures),
        }
    }

    pub(super) fn clear(&mut self) {
        match self {
            Outcomes::Calls { ring, failures, .. } => {
                ring.clear();
                *failures = 0;
            }
            Outcomes::Time {
                buckets,
                calls,
                failures,
                ..
            } => {
                buckets.clear();
                *calls = 0;
                *failures = 0;
            }
        }
    }
}
