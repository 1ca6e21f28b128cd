//! [`rate_limit`](super::PipelineExt::rate_limit): a stream stage that
//! yields items no faster than a [`RateLimiter`] allows.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep_until};

use super::metrics::DebugName;
use super::metrics::{Flow, HELD, Level};
use crate::limit::RateLimiter;
use crate::telemetry::{GaugeGuard, Name};

// ===== impl RateLimit =====

pin_project! {
    /// Stream for [`rate_limit`](super::PipelineExt::rate_limit): yields
    /// items no faster than its [`RateLimiter`] allows.
    #[must_use = "streams do nothing unless polled"]
    pub struct RateLimit<S>
    where
        S: Stream,
    {
        #[pin]
        stream: Fuse<S>,
        limiter: RateLimiter,
        pending: Option<S::Item>,
        // The slot the pending item waits for, while `sleep` runs.
        promised: Option<u64>,
        #[pin]
        sleep: Option<Sleep>,
        // While the pending item waits for a cell: when it began (on the
        // limiter's clock) and its share of the limiter's waiting gauge.
        waiting: Option<(u64, GaugeGuard)>,
        metrics: Metrics,
    }
}

/// The series of a named `rate_limit` stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    held: Level,
}

impl<S: Stream> RateLimit<S> {
    pub(super) fn new(stream: S, limiter: RateLimiter) -> Self {
        RateLimit {
            stream: stream.fuse(),
            limiter,
            pending: None,
            promised: None,
            sleep: None,
            waiting: None,
            metrics: Metrics {
                name: Name::none(),
                flow: Flow::none(),
                held: Level::none(),
            },
        }
    }

    /// The limiter this stage draws from.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::{Rate, RateLimiter};
    /// use flowgate::prelude::*;
    /// use futures_util::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(5));
    /// let stage = stream::iter(0..3).rate_limit(limiter.clone());
    /// assert_eq!(stage.limiter().rate(), limiter.rate());
    /// # }
    /// ```
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`
    /// and `flowgate_pipeline_held` (the item taken from upstream and
    /// waiting for a cell: 0 or 1), with the label `name` (any string, as
    /// given; see [`crate::metrics`]). An unnamed stage records nothing of
    /// its own; the limiter records its own series if it was made with
    /// [`RateLimiter::with_name`] (the stage's waits included).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::limit::Rate;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<u32> = stream::iter([1u32, 2, 3])
    ///     .rate_limit(Rate::per_second(10))
    ///     .name("api")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![1, 2, 3]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.metrics = Metrics {
            flow: Flow::new(&name),
            held: Level::of(name.gauge(HELD)),
            name,
        };
        self
    }
}

impl<S: Stream> Stream for RateLimit<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            // 1. Hold an item before taking a cell, so no cell is wasted on a
            //    slow upstream.
            if this.pending.is_none() {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        *this.pending = Some(item);
                        this.metrics.flow.items_in.inc();
                        this.metrics.held.set(1);
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // 2. Wait out a sleep set by an earlier refusal.
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                if sleep.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep.set(None);
            }
            // 3. Take a cell, or sleep until one frees up. Another user of a
            //    shared limiter may take it first; then we sleep again.
            let now = this.limiter.now();
            match this.limiter.take_at(now, this.promised.take()) {
                Ok(()) => {
                    let since = this.waiting.take().map_or(now, |(since, _)| since);
                    this.limiter.metrics().waited(now.saturating_sub(since));
                    this.metrics.held.set(0);
                    this.metrics.flow.items_out.inc();
                    return Poll::Ready(this.pending.take());
                }
                Err(slot) => {
                    if this.waiting.is_none() {
                        *this.waiting =
                            Some((now, GaugeGuard::new(&this.limiter.metrics().waiting)));
                    }
                    *this.promised = Some(slot);
                    this.sleep
                        .set(Some(sleep_until(this.limiter.slot_instant(slot))));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let pending = usize::from(self.pending.is_some());
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(pending),
            upper.and_then(|upper| upper.checked_add(pending)),
        )
    }
}

impl<S: Stream> FusedStream for RateLimit<S> {
    fn is_terminated(&self) -> bool {
        self.pending.is_none() && self.stream.is_done()
    }
}

impl<S: Stream> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("rate", &self.limiter.rate())
            .field("holding_item", &self.pending.is_some())
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
