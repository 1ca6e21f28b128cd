//! [`DeadLetter`]: an item that failed for good, with its error; and the
//! bounded dead-letter channel ([`dead_letters`]) that
//! [`route_errors`](crate::pipeline::PipelineExt::route_errors) feeds.

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use tokio::sync::mpsc;

use super::retry::{RetryError, StopReason};
use crate::telemetry::{Counter, Name};

/// An item that failed for good: the item itself, handed back, and the
/// [`RetryError`] saying what went wrong, after how many attempts and why
/// the retries stopped. The error item of
/// [`par_map_retry`](crate::pipeline::PipelineExt::par_map_retry).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::prelude::*;
/// use flowgate::resilience::{Backoff, DeadLetter, Retry};
/// use futures_util::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::new(Backoff::constant(Duration::from_millis(10))).max_attempts(2);
/// let out: Vec<Result<u32, DeadLetter<u32, String>>> = stream::iter([1u32, 2])
///     .par_map_retry(4, retry, |x: &u32| {
///         let x = *x;
///         async move { if x == 2 { Err(format!("{x} is bad")) } else { Ok(x * 10) } }
///     })
///     .collect()
///     .await;
/// assert_eq!(out[0].as_ref().ok(), Some(&10));
/// let dead = out[1].as_ref().unwrap_err();
/// assert_eq!((dead.item, dead.attempts()), (2, 2));
/// assert_eq!(dead.error.last(), "2 is bad");
/// # }
/// ```
pub struct DeadLetter<T, E> {
    /// The item that failed.
    pub item: T,
    /// The last error, the number of attempts and why retrying stopped.
    pub error: RetryError<E>,
}

impl<T, E> DeadLetter<T, E> {
    /// How many attempts were made on the item.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let out: Vec<_> = stream::iter([7u32]).par_map_retry(1, retry, |_: &u32| async { Err::<(), _>("down") }).collect().await;
    /// let dead = out.into_iter().next().unwrap().unwrap_err();
    /// assert_eq!(dead.attempts(), 2);
    /// # }
    /// ```
    pub fn attempts(&self) -> u32 {
        self.error.attempts()
    }

    /// Why retrying stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use futures_util::{stream, StreamExt};
    /// use flowgate::resilience::StopReason;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let out: Vec<_> = stream::iter([7u32]).par_map_retry(1, retry, |_: &u32| async { Err::<(), _>("down") }).collect().await;
    /// let dead = out.into_iter().next().unwrap().unwrap_err();
    /// assert_eq!(dead.reason(), StopReason::AttemptsExhausted);
    /// # }
    /// ```
    pub fn reason(&self) -> StopReason {
        self.error.reason()
    }

    /// The item and the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::{Backoff, Retry};
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::new(Backoff::constant(Duration::from_millis(1))).max_attempts(2);
    /// let out: Vec<_> = stream::iter([7u32]).par_map_retry(1, retry, |_: &u32| async { Err::<(), _>("down") }).collect().await;
    /// let dead = out.into_iter().next().unwrap().unwrap_err();
    /// let (item, error) = dead.into_parts();
    /// assert_eq!((item, error.into_inner()), (7, "down"));
    /// # }
    /// ```
    pub fn into_parts(self) -> (T, RetryError<E>) {
        (self.item, self.error)
    }
}

impl<T, E: fmt::Debug> fmt::Debug for DeadLetter<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T, E: fmt::Display> fmt::Display for DeadLetter<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item dead-lettered: {}", self.error)
    }
}

impl<T, E: Error + 'static> Error for DeadLetter<T, E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

/// A bounded dead-letter channel: the sending half for
/// [`route_errors`](crate::pipeline::PipelineExt::route_errors) stages, and
/// the [`DeadLetters`] stream that receives what they route.
///
/// The channel holds at most `capacity` errors not yet received; a stage
/// routing into a full channel waits (its successes wait too), so a slow
/// dead-letter consumer slows the pipeline rather than losing errors.
/// [`DeadLetters`] ends when every sender, and every stage holding one, is
/// gone.
///
/// A `capacity` above tokio's limit (`usize::MAX >> 3`, up to `usize::MAX`)
/// is taken as that limit: unbounded in practice, and nothing is allocated
/// ahead of use.
///
/// # Panics
///
/// If `capacity` is zero: `"dead_letters: capacity must be at least 1"`.
///
/// # Examples
///
/// ```
/// use flowgate::prelude::*;
/// use flowgate::resilience::dead_letters;
/// use futures_util::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (dead_tx, dead) = dead_letters::<String>(16);
/// let ok: Vec<u32> = stream::iter(["1", "x", "3"])
///     .map(|s| s.parse::<u32>().map_err(|_| format!("bad: {s}")))
///     .route_errors(dead_tx)
///     .collect()
///     .await;
/// assert_eq!(ok, vec![1, 3]);
/// assert_eq!(dead.collect::<Vec<_>>().await, vec!["bad: x".to_owned()]);
/// # }
/// ```
#[track_caller]
pub fn dead_letters<X>(capacity: usize) -> (DeadLetterSender<X>, DeadLetters<X>) {
    assert!(capacity > 0, "dead_letters: capacity must be at least 1");
    // tokio's channel refuses more than its semaphore's maximum; that many
    // queued errors is unbounded in practice (nothing is allocated ahead).
    let (tx, rx) = mpsc::channel(capacity.min(tokio::sync::Semaphore::MAX_PERMITS));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        DeadLetterSender {
            tx,
            dropped: Arc::clone(&dropped),
        },
        DeadLetters {
            rx,
            dropped,
            name: Name::none(),
            received: Counter::noop(),
            discarded: Counter::noop(),
        },
    )
}

/// The sending half of a [`dead_letters`] channel; give it (or a clone) to
/// a [`route_errors`](crate::pipeline::PipelineExt::route_errors) stage.
pub struct DeadLetterSender<X> {
    pub(crate) tx: mpsc::Sender<X>,
    pub(crate) dropped: Arc<AtomicU64>,
}

impl<X> DeadLetterSender<X> {
    /// Errors discarded because the [`DeadLetters`] receiver was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::dead_letters;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, dead) = dead_letters::<&str>(4);
    /// let probe = tx.clone();
    /// drop(dead);
    /// let ok: Vec<u32> = stream::iter([Err("a"), Ok(1)]).route_errors(tx).collect().await;
    /// assert_eq!((ok, probe.dropped()), (vec![1], 1));
    /// # }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the [`DeadLetters`] receiver was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::dead_letters;
    ///
    /// let (tx, dead) = dead_letters::<String>(4);
    /// assert!(!tx.is_closed());
    /// drop(dead);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<X> Clone for DeadLetterSender<X> {
    fn clone(&self) -> Self {
        DeadLetterSender {
            tx: self.tx.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }
}

impl<X> fmt::Debug for DeadLetterSender<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterSender")
            .field("closed", &self.is_closed())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// The receiving half of a [`dead_letters`] channel: a stream of the routed
/// errors, in the order they were routed; it ends when every sender is
/// gone.
///
/// Dropping it is a decision to discard dead letters: stages routing into
/// the channel then drop errors (counting them in
/// [`DeadLetterSender::dropped`]) and keep passing successes.
#[must_use = "streams do nothing unless polled"]
pub struct DeadLetters<X> {
    rx: mpsc::Receiver<X>,
    dropped: Arc<AtomicU64>,
    name: Name,
    /// `flowgate_dead_letter_received_total`.
    received: Counter,
    /// `flowgate_dead_letter_discarded_total`.
    discarded: Counter,
}

impl<X> DeadLetters<X> {
    /// Names the dead-letter stream: the `name` label of its series
    /// (feature `metrics`) and the `name` field of its events. Any string is
    /// accepted as given. The series are registered now, with the recorder
    /// current at this call. Without a name, no metrics.
    ///
    /// Enables (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_dead_letter_received_total`: dead letters taken from the
    ///   stream;
    /// - `flowgate_dead_letter_discarded_total`: dead letters still queued
    ///   when the stream was dropped (also counted by
    ///   [`DeadLetterSender::dropped`]), logged once at `warn`.
    ///
    /// Why items were dead-lettered is counted where they fail: a named
    /// [`Retry`](super::Retry) counts `flowgate_retry_gave_up_total{reason}`
    /// for every item a
    /// [`par_map_retry`](crate::pipeline::PipelineExt::par_map_retry) stage
    /// gives up on.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::dead_letters;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, dead) = dead_letters::<&str>(8);
    /// let dead = dead.name("orders-dlq");
    /// let ok: Vec<u32> = stream::iter([Ok(1), Err("bad")]).route_errors(tx).collect().await;
    /// // flowgate_dead_letter_received_total{name="orders-dlq"} counts as they are read.
    /// assert_eq!((ok, dead.collect::<Vec<_>>().await), (vec![1], vec!["bad"]));
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Name::new(name);
        self.received = self.name.counter("flowgate_dead_letter_received_total");
        self.discarded = self.name.counter("flowgate_dead_letter_discarded_total");
        self
    }

    /// Errors waiting to be received.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use flowgate::resilience::dead_letters;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, dead) = dead_letters::<&str>(4);
    /// let ok: Vec<u32> = stream::iter([Err("a"), Ok(1), Err("b")]).route_errors(tx).collect().await;
    /// assert_eq!((dead.len(), dead.is_empty()), (2, false));
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no error is waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::dead_letters;
    ///
    /// let (tx, dead) = dead_letters::<String>(4);
    /// assert!(dead.is_empty());
    /// assert_eq!(dead.len(), 0);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<X> Stream for DeadLetters<X> {
    type Item = X;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<X>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(_)) = &polled {
            self.received.inc();
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rx.len(), None)
    }
}

impl<X> FusedStream for DeadLetters<X> {
    fn is_terminated(&self) -> bool {
        self.rx.is_closed() && self.rx.is_empty()
    }
}

impl<X> Drop for DeadLetters<X> {
    fn drop(&mut self) {
        // Errors already queued are discarded with the receiver: count them.
        let queued = self.rx.len() as u64;
        if queued > 0 {
            self.dropped.fetch_add(queued, Ordering::Relaxed);
            self.discarded.add(queued);
            tracing::warn!(
                name = self.name.as_str(),
                discarded = queued,
                "dead-letter stream dropped with dead letters queued: they are discarded"
            );
        }
    }
}

impl<X> fmt::Debug for DeadLetters<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("queued", &self.rx.len())
            .finish()
    }
}
