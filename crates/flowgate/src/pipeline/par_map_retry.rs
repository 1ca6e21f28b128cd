//! [`par_map_retry`](super::PipelineExt::par_map_retry): a concurrent stage
//! that retries each item's call with backoff and dead-letters the items
//! that fail for good.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};

use super::BUDGET;
use super::metrics::{DebugName, Flow, HELD, IN_FLIGHT, Level, Tally};
use crate::resilience::retry::Attempts;
use crate::resilience::{DeadLetter, PauseGuard, Retry, RetryError};
use crate::telemetry::Name;

#[track_caller]
fn check_limit(limit: usize) {
    assert!(limit > 0, "par_map_retry: limit must be at least 1");
}

/// An item on its way through the retries.
struct Entry<T> {
    item: T,
    attempts: Attempts,
    /// Holds the retry's pause handle paused while this item backs off.
    _pause: Option<PauseGuard>,
}

pin_project! {
    /// One item's current step: an attempt, or the sleep before the next.
    #[project = TaskProj]
    enum Task<T, Fut> {
        Running {
            #[pin]
            fut: Fut,
            entry: Option<Entry<T>>,
        },
        Sleeping {
            #[pin]
            sleep: Sleep,
            entry: Option<Entry<T>>,
        },
    }
}

impl<T, Fut: Future> Future for Task<T, Fut> {
    /// The entry, and the attempt's output (`None` after a sleep).
    type Output = (Entry<T>, Option<Fut::Output>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            TaskProj::Running { fut, entry } => {
                let output = std::task::ready!(fut.poll(cx));
                Poll::Ready((entry.take().expect("polled after completion"), Some(output)))
            }
            TaskProj::Sleeping { sleep, entry } => {
                std::task::ready!(sleep.poll(cx));
                Poll::Ready((entry.take().expect("polled after completion"), None))
            }
        }
    }
}

pin_project! {
    /// Stream for [`par_map_retry`](super::PipelineExt::par_map_retry):
    /// calls `f` on each item with up to `limit` items in progress, retries
    /// failures as its [`Retry`] says, and yields `Ok(output)` or
    /// `Err(`[`DeadLetter`]`)` as items finish.
    #[must_use = "streams do nothing unless polled"]
    pub struct ParMapRetry<S, F, Fut, E>
    where
        S: Stream,
    {
        #[pin]
        stream: Fuse<S>,
        f: F,
        retry: Retry<E>,
        in_progress: FuturesUnordered<Task<S::Item, Fut>>,
        limit: usize,
        metrics: Metrics,
    }
}

/// What the stage yields for one item.
type Outcome<T, O, E> = Result<O, DeadLetter<T, E>>;

/// The series of a named `par_map_retry` stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    in_flight: Level,
    held: Level,
    // Items in `in_progress` that are backing off.
    backing_off: Tally,
}

impl Metrics {
    fn none() -> Metrics {
        Metrics {
            name: Name::none(),
            flow: Flow::none(),
            in_flight: Level::none(),
            held: Level::none(),
            backing_off: Tally::default(),
        }
    }
}

impl<S, F, Fut, O, E> ParMapRetry<S, F, Fut, E>
where
    S: Stream,
    F: FnMut(&S::Item) -> Fut,
    Fut: Future<Output = Result<O, E>>,
{
    #[track_caller]
    pub(super) fn new(stream: S, limit: usize, retry: Retry<E>, f: F) -> Self {
        check_limit(limit);
        ParMapRetry {
            stream: stream.fuse(),
            f,
            retry,
            in_progress: FuturesUnordered::new(),
            limit,
            metrics: Metrics::none(),
        }
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`
    /// (outputs and dead letters alike), `flowgate_pipeline_in_flight` (attempts
    /// running) and `flowgate_pipeline_held` (items backing off before their
    /// next attempt), with the label `name` (any string, as given; see
    /// [`crate::metrics`]). Retries and give-ups are the [`Retry`]'s to
    /// report. An unnamed stage records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(std::time::Duration::from_millis(10))).max_attempts(3);
    /// let out: Vec<_> = stream::iter([1u32, 2])
    ///     .par_map_retry(2, retry, |x: &u32| {
    ///         let x = *x;
    ///         async move { Ok::<_, &str>(x * 10) }
    ///     })
    ///     .name("deliver")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out.len(), 2);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.metrics = Metrics {
            flow: Flow::new(&name),
            in_flight: Level::of(name.gauge(IN_FLIGHT)),
            held: Level::of(name.gauge(HELD)),
            backing_off: Tally::default(),
            name,
        };
        self
    }

    /// The retry policy of this stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use futures_util::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(4);
    /// let stage = stream::iter([1u32]).par_map_retry(2, retry, |x: &u32| {
    ///     let x = *x;
    ///     async move { Ok::<_, ()>(x) }
    /// });
    /// assert_eq!(stage.retry().attempts_limit(), 4);
    /// # }
    /// ```
    pub fn retry(&self) -> &Retry<E> {
        &self.retry
    }
}

impl<S, F, Fut, O, E> Stream for ParMapRetry<S, F, Fut, E>
where
    S: Stream,
    F: FnMut(&S::Item) -> Fut,
    Fut: Future<Output = Result<O, E>>,
{
    type Item = Result<O, DeadLetter<S::Item, E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.as_mut().poll_items(cx);
        // The levels, once per poll.
        let this = self.project();
        let metrics = this.metrics;
        let backing_off = metrics.backing_off.get();
        metrics.in_flight.set(this.in_progress.len() - backing_off);
        metrics.held.set(backing_off);
        if let Poll::Ready(Some(_)) = next {
            metrics.flow.items_out.inc();
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.size_hint_of()
    }
}

impl<S, F, Fut, O, E> ParMapRetry<S, F, Fut, E>
where
    S: Stream,
    F: FnMut(&S::Item) -> Fut,
    Fut: Future<Output = Result<O, E>>,
{
    fn poll_items(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Outcome<S::Item, O, E>>> {
        let mut this = self.project();

        // 1. Start new items while there is room. An item backing off holds
        //    its slot, so a retry never waits behind new items.
        while this.in_progress.len() < *this.limit {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.metrics.flow.items_in.inc();
                    let mut attempts = this.retry.start();
                    attempts.start_attempt();
                    let fut = (this.f)(&item);
                    this.in_progress.push(Task::Running {
                        fut,
                        entry: Some(Entry {
                            item,
                            attempts,
                            _pause: None,
                        }),
                    });
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }

        // 2. Drive attempts and sleeps. A failed attempt becomes a sleep, a
        //    finished sleep a new attempt, each pushed back into the set and
        //    polled on the next turn; bounded for fairness.
        for _ in 0..BUDGET {
            match this.in_progress.poll_next_unpin(cx) {
                Poll::Ready(Some((entry, Some(Ok(output))))) => {
                    drop(entry);
                    return Poll::Ready(Some(Ok(output)));
                }
                Poll::Ready(Some((mut entry, Some(Err(err))))) => {
                    match this.retry.next_delay(&mut entry.attempts, &err) {
                        Ok(delay) => {
                            drop(err);
                            entry._pause = this.retry.hold_pause();
                            this.metrics.backing_off.inc();
                            this.in_progress.push(Task::Sleeping {
                                sleep: sleep(delay),
                                entry: Some(entry),
                            });
                        }
                        Err(reason) => {
                            let attempts = entry.attempts.made();
                            return Poll::Ready(Some(Err(DeadLetter {
                                item: entry.item,
                                error: RetryError::new(err, attempts, reason),
                            })));
                        }
                    }
                }
                Poll::Ready(Some((mut entry, None))) => {
                    this.metrics.backing_off.dec();
                    entry._pause = None;
                    entry.attempts.start_attempt();
                    let fut = (this.f)(&entry.item);
                    this.in_progress.push(Task::Running {
                        fut,
                        entry: Some(entry),
                    });
                }
                Poll::Ready(None) => {
                    // Nothing in progress: done only when upstream is.
                    return if this.stream.is_done() {
                        Poll::Ready(None)
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint_of(&self) -> (usize, Option<usize>) {
        let in_progress = self.in_progress.len();
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(in_progress),
            upper.and_then(|upper| upper.checked_add(in_progress)),
        )
    }
}

impl<S, F, Fut, O, E> FusedStream for ParMapRetry<S, F, Fut, E>
where
    S: Stream,
    F: FnMut(&S::Item) -> Fut,
    Fut: Future<Output = Result<O, E>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_done() && self.in_progress.is_empty()
    }
}

impl<S: Stream, F, Fut, E> fmt::Debug for ParMapRetry<S, F, Fut, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMapRetry")
            .field("limit", &self.limit)
            .field("in_progress", &self.in_progress.len())
            .field("retry", &self.retry)
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
