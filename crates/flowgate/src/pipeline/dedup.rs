//! [`dedup_within`](super::PipelineExt::dedup_within) and
//! [`dedup_last`](super::PipelineExt::dedup_last): drop items whose key was
//! seen recently.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::BUDGET;
use super::metrics::DebugName;
use super::metrics::{DROPPED, Flow, REASON_DUPLICATE};
use crate::telemetry::{Counter, Name};

/// What "recently" means.
enum Window<K> {
    /// Keys that passed within `window`; `order` lists them by pass time for
    /// expiry, `passed` holds each key's latest pass.
    Time {
        window: Duration,
        passed: HashMap<K, Instant>,
        order: VecDeque<(Instant, K)>,
    },
    /// The last `capacity` keys that passed, oldest first.
    Last {
        capacity: usize,
        keys: HashSet<K>,
        order: VecDeque<K>,
    },
}

impl<K: Hash + Eq + Clone> Window<K> {
    /// Whether `key` passes now (and remember it if so).
    fn admit(&mut self, key: K) -> bool {
        match self {
            Window::Time {
                window,
                passed,
                order,
            } => {
                let now = Instant::now();
                // Expire keys whose window has closed, oldest first. An entry
                // is stale if its key passed again later.
                while let Some((at, _)) = order.front() {
                    if !crate::time::passed(*at, *window, now) {
                        break;
                    }
                    let (at, key) = order.pop_front().expect("front exists");
                    if passed.get(&key) == Some(&at) {
                        passed.remove(&key);
                    }
                }
                match passed.entry(key) {
                    // Seen within the window: a duplicate. Suppressed items do
                    // not extend the window.
                    Entry::Occupied(_) => false,
                    Entry::Vacant(entry) => {
                        order.push_back((now, entry.key().clone()));
                        entry.insert(now);
                        true
                    }
                }
            }
            Window::Last {
                capacity,
                keys,
                order,
            } => {
                if keys.contains(&key) {
                    return false;
                }
                if order.len() == *capacity {
                    let oldest = order.pop_front().expect("capacity is at least 1");
                    keys.remove(&oldest);
                }
                keys.insert(key.clone());
                order.push_back(key);
                true
            }
        }
    }
}

pin_project! {
    /// Stream for [`dedup_within`](super::PipelineExt::dedup_within) and
    /// [`dedup_last`](super::PipelineExt::dedup_last).
    #[must_use = "streams do nothing unless polled"]
    pub struct Dedup<S, F, K> {
        #[pin]
        stream: Fuse<S>,
        key: F,
        window: Window<K>,
        dropped: u64,
        metrics: Metrics,
    }
}

/// The series of a named dedup stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    duplicates: Counter,
}

impl Metrics {
    fn none() -> Metrics {
        Metrics {
            name: Name::none(),
            flow: Flow::none(),
            duplicates: Counter::noop(),
        }
    }
}

impl<S, F, K> Dedup<S, F, K>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq + Clone,
{
    #[track_caller]
    pub(super) fn within(stream: S, window: Duration, key: F) -> Self {
        assert!(
            !window.is_zero(),
            "dedup_within: window must be greater than zero"
        );
        Dedup {
            stream: stream.fuse(),
            key,
            window: Window::Time {
                window,
                passed: HashMap::new(),
                order: VecDeque::new(),
            },
            dropped: 0,
            metrics: Metrics::none(),
        }
    }

    #[track_caller]
    pub(super) fn last(stream: S, capacity: usize, key: F) -> Self {
        assert!(capacity > 0, "dedup_last: capacity must be at least 1");
        Dedup {
            stream: stream.fuse(),
            key,
            window: Window::Last {
                capacity,
                keys: HashSet::with_capacity(capacity.min(1024)),
                order: VecDeque::with_capacity(capacity.min(1024)),
            },
            dropped: 0,
            metrics: Metrics::none(),
        }
    }
}

impl<S, F, K> Dedup<S, F, K> {
    /// How many items were dropped as duplicates so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut unique = Box::pin(stream::iter([1, 1, 2, 1]).dedup_last(10, |x: &u32| *x));
    /// assert_eq!(unique.next().await, Some(1));
    /// assert_eq!(unique.next().await, Some(2));
    /// assert_eq!(unique.next().await, None);
    /// assert_eq!(unique.dropped(), 2);
    /// # }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Names the stage: with the `metrics` feature it records
    /// `flowgate_pipeline_items_in_total`, `flowgate_pipeline_items_out_total`
    /// and `flowgate_pipeline_items_dropped_total{reason="duplicate"}` (the
    /// [`dropped`](Self::dropped) items), with the label `name` (any string, as given; see
    /// [`crate::metrics`]). An unnamed stage records nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<u32> = stream::iter([1u32, 1, 2])
    ///     .dedup_last(8, |x| *x)
    ///     .name("events")
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, vec![1, 2]);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = Name::new(name);
        self.metrics = Metrics {
            flow: Flow::new(&name),
            duplicates: name.counter_with(DROPPED, &[("reason", REASON_DUPLICATE)]),
            name,
        };
        self
    }
}

impl<S, F, K> Stream for Dedup<S, F, K>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq + Clone,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        for _ in 0..BUDGET {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.metrics.flow.items_in.inc();
                    if this.window.admit((this.key)(&item)) {
                        this.metrics.flow.items_out.inc();
                        return Poll::Ready(Some(item));
                    }
                    *this.dropped += 1;
                    this.metrics.duplicates.inc();
                }
                other => return other,
            }
        }
        // Many duplicates in a row: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.stream.size_hint();
        (usize::from(lower > 0), upper)
    }
}

impl<S, F, K> FusedStream for Dedup<S, F, K>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq + Clone,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_done()
    }
}

impl<S, F, K> fmt::Debug for Dedup<S, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, remembered) = match &self.window {
            Window::Time { window, passed, .. } => (format!("within {window:?}"), passed.len()),
            Window::Last { capacity, keys, .. } => (format!("last {capacity}"), keys.len()),
        };
        f.debug_struct("Dedup")
            .field("window", &kind)
            .field("remembered", &remembered)
            .field("dropped", &self.dropped)
            .name_field(&self.metrics.name)
            .finish_non_exhaustive()
    }
}
