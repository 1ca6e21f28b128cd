//! [`par_map_keyed`](super::PipelineExt::par_map_keyed) and
//! [`par_map_keyed_unordered`](super::PipelineExt::par_map_keyed_unordered):
//! calls in parallel across keys, in input order within a key.
//!
//! One core for both. Every item pulled from upstream gets a sequence number
//! and goes to its key's state: started at once when the key has room (fewer
//! than `per_key` calls running) and the stage has room (fewer than `limit`),
//! else queued behind the key's earlier items. When a call finishes, the
//! waiting item with the lowest sequence number whose key has room starts
//! next (a `BTreeMap` of eligible keys by their first waiting item), so items
//! start in input order wherever the limits allow. A key with nothing
//! running, waiting or unyielded is removed: the key map holds only the keys
//! of items in the stage.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use foldhash::fast::RandomState;
use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;

use super::metrics::DebugName;
use super::metrics::{Flow, HELD, IN_FLIGHT, Level};
use crate::telemetry::Name;

type Map<K, V> = std::collections::HashMap<K, V, RandomState>;

pin_project! {
    /// A call in flight: its item's sequence number and key travel with it.
    struct Call<K, Fut> {
        seq: u64,
        key: Option<K>,
        #[pin]
        future: Fut,
    }
}

impl<K, Fut: Future> Future for Call<K, Fut> {
    type Output = (u64, K, Fut::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        let key = this.key.take().expect("Call polled after completion");
        Poll::Ready((*this.seq, key, output))
    }
}

/// One key's items in the stage.
struct KeyState<T, O> {
    /// Calls of this key running now (at most `per_key`).
    running: usize,
    /// Items pulled and not started, in input order.
    waiting: VecDeque<(u64, T)>,
    /// Unordered mode with `per_key > 1` only: the key's started items not
    /// yielded yet, in input order, with the outputs that finished early.
    started: VecDeque<(u64, Option<O>)>,
}

impl<T, O> KeyState<T, O> {
    fn new() -> Self {
        KeyState {
            running: 0,
            waiting: VecDeque::new(),
            started: VecDeque::new(),
        }
    }

    fn is_idle(&self) -> bool {
        self.running == 0 && self.waiting.is_empty() && self.started.is_empty()
    }
}

/// Where finished outputs wait to be yielded.
enum Outputs<O> {
    /// Input order: one slot per item pulled and not yielded, the front
    /// being sequence number `base`.
    InputOrder {
        base: u64,
        slots: VecDeque<Option<O>>,
    },
    /// Per-key order only: outputs ready to yield, in the order they became
    /// ready.
    KeyOrder { ready: VecDeque<O> },
}

impl<O> Outputs<O> {
    /// An output can be yielded now.
    fn has_next(&self) -> bool {
        match self {
            Outputs::InputOrder { slots, .. } => matches!(slots.front(), Some(Some(_))),
            Outputs::KeyOrder { ready } => !ready.is_empty(),
        }
    }
}

pin_project! {
    struct KeyedCore<S, K, KF, F, Fut>
    where
        S: Stream,
        Fut: Future,
    {
        #[pin]
        stream: Fuse<S>,
        key_fn: KF,
        f: F,
        calls: FuturesUnordered<Call<K, Fut>>,
        keys: Map<K, KeyState<S::Item, Fut::Output>>,
        // Keys with a waiting item and room for a call, by the sequence
        // number of that item.
        eligible: BTreeMap<u64, K>,
        outputs: Outputs<Fut::Output>,
        // Items pulled and not yielded.
        held: usize,
        next_seq: u64,
        limit: usize,
        per_key: usize,
        buffer: usize,
        metrics: Metrics,
    }
}

/// The series of a named keyed stage.
#[derive(Debug)]
struct Metrics {
    name: Name,
    flow: Flow,
    in_flight: Level,
    held: Level,
}

impl Metrics {
    fn none() -> Metrics {
        Metrics {
            name: Name::none(),
            flow: Flow::none(),
            in_flight: Level::none(),
            held: Level::none(),
        }
    }

    fn new(name: Name) -> Metrics {
        Metrics {
            flow: Flow::new(&name),
            in_flight: Level::of(name.gauge(IN_FLIGHT)),
            held: Level::of(name.gauge(HELD)),
            name,
        }
    }
}

impl<S, K, KF, F, Fut> KeyedCore<S, K, KF, F, Fut>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    #[track_caller]
    fn new(
        op: &str,
        ordered: bool,
        stream: S,
        limit: usize,
        per_key: usize,
        key_fn: KF,
        f: F,
    ) -> Self {
        assert!(limit > 0, "{op}: limit must be at least 1");
        assert!(per_key > 0, "{op}: per_key must be at least 1");
        KeyedCore {
            stream: stream.fuse(),
            key_fn,
            f,
            calls: FuturesUnordered::new(),
            keys: Map::default(),
            eligible: BTreeMap::new(),
            outputs: if ordered {
                Outputs::InputOrder {
                    base: 0,
                    slots: VecDeque::new(),
                }
            } else {
                Outputs::KeyOrder {
                    ready: VecDeque::new(),
                }
            },
            held: 0,
            next_seq: 0,
            limit,
            per_key,
            // The default: as many items may wait as may run.
            buffer: limit,
            metrics: Metrics::none(),
        }
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let before = self.next_seq;
        let next = self.as_mut().poll_items(cx);
        // The series, once per poll: items pulled (every one got a sequence
        // number), the levels (no update when they did not change).
        let this = self.project();
        let metrics = this.metrics;
        metrics
            .flow
            .pulled(usize::try_from(*this.next_seq - before).unwrap_or(usize::MAX));
        let running = this.calls.len();
        metrics.in_flight.set(running);
        metrics.held.set(*this.held - running);
        if let Poll::Ready(Some(_)) = next {
            metrics.flow.items_out.inc();
        }
        next
    }

    fn poll_items(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        let capacity = this.limit.saturating_add(*this.buffer);
        let per_key = *this.per_key;
        let limit = *this.limit;
        let track_started = matches!(this.outputs, Outputs::KeyOrder { .. }) && per_key > 1;

        loop {
            // 1. Start waiting items where a call finished, lowest sequence
            //    number first.
            while this.calls.len() < limit {
                let Some((_, key)) = this.eligible.pop_first() else {
                    break;
                };
                let state = this
                    .keys
                    .get_mut(&key)
                    .expect("an eligible key has a state");
                let (seq, item) = state
                    .waiting
                    .pop_front()
                    .expect("an eligible key has a waiting item");
                state.running += 1;
                if track_started {
                    state.started.push_back((seq, None));
                }
                if state.running < per_key
                    && let Some(&(next, _)) = state.waiting.front()
                {
                    this.eligible.insert(next, key.clone());
                }
                this.calls.push(Call {
                    seq,
                    key: Some(key),
                    future: (this.f)(item),
                });
            }

            // 2. Pull while a call could start and the stage holds fewer
            //    than its capacity: an item whose key is busy waits and the
            //    next is pulled, so the buffer fills only with items that
            //    must wait (nothing is fetched ahead while `limit` calls
            //    run). Bounded by the capacity, so this loop cannot starve
            //    other tasks.
            while this.calls.len() < limit && *this.held < capacity {
                let item = match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => item,
                    Poll::Ready(None) | Poll::Pending => break,
                };
                let key = (this.key_fn)(&item);
                let seq = *this.next_seq;
                *this.next_seq += 1;
                *this.held += 1;
                if let Outputs::InputOrder { slots, .. } = this.outputs {
                    slots.push_back(None);
                }
                let state = this.keys.entry(key.clone()).or_insert_with(KeyState::new);
                if state.waiting.is_empty() && state.running < per_key {
                    state.running += 1;
                    if track_started {
                        state.started.push_back((seq, None));
                    }
                    this.calls.push(Call {
                        seq,
                        key: Some(key),
                        future: (this.f)(item),
                    });
                } else {
                    // The key is busy (the stage has room: see the loop's
                    // condition); the item becomes eligible when its key
                    // has room.
                    state.waiting.push_back((seq, item));
                }
            }

            // 3. Collect finished calls. A panic in a call unwinds out of
            //    this poll, into the consumer: never a lost item.
            let mut finished = false;
            while let Poll::Ready(Some((seq, key, output))) = this.calls.poll_next_unpin(cx) {
                finished = true;
                // One lookup for the update and the removal.
                let Entry::Occupied(mut entry) = this.keys.entry(key) else {
                    unreachable!("a running key has a state");
                };
                let state = entry.get_mut();
                state.running -= 1;
                if state.running + 1 == per_key
                    && let Some(&(next, _)) = state.waiting.front()
                {
                    this.eligible.insert(next, entry.key().clone());
                }
                let state = entry.get_mut();
                match this.outputs {
                    Outputs::InputOrder { base, slots } => {
                        let index = usize::try_from(seq - *base).expect("held items fit in memory");
                        slots[index] = Some(output);
                    }
                    Outputs::KeyOrder { ready } if track_started => {
                        let index = state
                            .started
                            .binary_search_by_key(&seq, |&(started, _)| started)
                            .expect("a finished call was started");
                        state.started[index].1 = Some(output);
                        while let Some((_, Some(_))) = state.started.front() {
                            let (_, output) = state.started.pop_front().expect("front exists");
                            ready.push_back(output.expect("checked above"));
                        }
                    }
                    Outputs::KeyOrder { ready } => ready.push_back(output),
                }
                if state.is_idle() {
                    entry.remove();
                }
                if this.outputs.has_next() {
                    // Yield it now (step 4); the other finished calls are
                    // collected on the next poll, as `FuturesOrdered` does.
                    break;
                }
                if this.calls.len() < limit && !this.eligible.is_empty() {
                    // Room for a waiting item: start it (step 1) before
                    // looking at more finished calls.
                    break;
                }
            }

            // 4. Yield the next output if there is one.
            let next = match this.outputs {
                Outputs::InputOrder { base, slots } => match slots.front() {
                    Some(Some(_)) => {
                        *base += 1;
                        slots.pop_front().expect("front exists")
                    }
                    _ => None,
                },
                Outputs::KeyOrder { ready } => ready.pop_front(),
            };
            if let Some(output) = next {
                *this.held -= 1;
                return Poll::Ready(Some(output));
            }
            if !finished {
                break;
            }
            // A call finished without an output to yield yet (it waits for
            // an earlier one): room may have opened, go round again.
        }

        if this.stream.is_done() && *this.held == 0 {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(self.held),
            upper.and_then(|upper| upper.checked_add(self.held)),
        )
    }

    fn is_terminated(&self) -> bool {
        self.stream.is_done() && self.held == 0
    }
}

/// Defines a public stream type over [`KeyedCore`].
macro_rules! par_map_keyed_stream {
    ($(#[$doc:meta])* $name:ident, $op:literal, $ordered:literal) => {
        pin_project! {
            $(#[$doc])*
            #[must_use = "streams do nothing unless polled"]
            pub struct $name<S, K, KF, F, Fut>
            where
                S: Stream,
                Fut: Future,
            {
                #[pin]
                core: KeyedCore<S, K, KF, F, Fut>,
            }
        }

        impl<S, K, KF, F, Fut> $name<S, K, KF, F, Fut>
        where
            S: Stream,
            K: Hash + Eq + Clone,
            KF: FnMut(&S::Item) -> K,
            F: FnMut(S::Item) -> Fut,
            Fut: Future,
        {
            #[track_caller]
            pub(super) fn new(stream: S, limit: usize, per_key: usize, key_fn: KF, f: F) -> Self {
                $name {
                    core: KeyedCore::new($op, $ordered, stream, limit, per_key, key_fn, f),
                }
            }

            /// Sets the stage's buffer: how many items it may hold beyond
            /// `limit` — items pulled but not started because their key
            /// already runs `per_key` calls (or the stage runs `limit`), and
            /// outputs finished before an earlier one they must follow. The
            /// default is `limit`.
            ///
            /// The stage holds at most `limit + buffer` items at once and
            /// pulls nothing from upstream while it holds that many (nor
            /// while `limit` calls run). `0` is
            /// allowed (at most `limit` items held); `usize::MAX` means no
            /// bound and allocates nothing up front. A larger buffer looks
            /// further past a hot key for other keys' items.
            ///
            /// Call it before the first poll; it changes nothing already
            /// pulled.
            ///
            /// # Examples
            ///
            /// ```
            /// use flowgate::prelude::*;
            /// use futures_util::{stream, StreamExt};
            ///
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() {
            #[doc = concat!("let out: Vec<u32> = stream::iter([1u32, 2, 3, 4])\n    .", $op, "(2, 1, |x| x % 2, |x| async move { x * 10 })")]
            ///     .buffer(16)
            ///     .collect()
            ///     .await;
            /// assert_eq!(out.len(), 4);
            /// # }
            /// ```
            pub fn buffer(mut self, buffer: usize) -> Self {
                self.core.buffer = buffer;
                self
            }

            /// How many items the stage holds now: running, waiting for
            /// their key, or finished and not yielded yet.
            ///
            /// # Examples
            ///
            /// ```
            /// use flowgate::prelude::*;
            /// use futures_util::{stream, StreamExt};
            ///
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() {
            /// // three items of one key, one at a time, each waiting forever
            #[doc = concat!("let mut stage = stream::iter([1u32, 1, 1])\n    .", $op, "(2, 1, |x| *x, |_| std::future::pending::<()>());")]
            /// assert_eq!(stage.held(), 0); // nothing pulled before the first poll
            /// tokio::select! {
            ///     _ = stage.next() => unreachable!(),
            ///     _ = tokio::task::yield_now() => {}
            /// }
            /// assert_eq!(stage.held(), 3); // one running, two waiting for their key
            /// # }
            /// ```
            pub fn held(&self) -> usize {
                self.core.held
            }

            /// Names the stage: with the `metrics` feature it records
            /// `flowgate_pipeline_items_in_total`,
            /// `flowgate_pipeline_items_out_total`,
            /// `flowgate_pipeline_in_flight` (calls running) and
            /// `flowgate_pipeline_held` (items waiting for their key or the
            /// stage, and outputs finished before an earlier one: the
            /// stage's [`held`](Self::held) minus its calls running), with
            /// the label `name` (any string, as given; see
            /// [`crate::metrics`]). An unnamed stage records nothing.
            ///
            /// The series are registered here, with the recorder current
            /// now. Name the stage before the first poll.
            ///
            /// # Examples
            ///
            /// ```
            /// use flowgate::prelude::*;
            /// use futures_util::{stream, StreamExt};
            ///
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() {
            #[doc = concat!("let out: Vec<u32> = stream::iter([1u32, 2, 3, 4])\n    .", $op, "(2, 1, |x| x % 2, |x| async move { x * 10 })")]
            ///     .name("accounts")
            ///     .collect()
            ///     .await;
            /// assert_eq!(out.len(), 4);
            /// # }
            /// ```
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.core.metrics = Metrics::new(Name::new(name));
                self
            }
        }

        impl<S, K, KF, F, Fut> Stream for $name<S, K, KF, F, Fut>
        where
            S: Stream,
            K: Hash + Eq + Clone,
            KF: FnMut(&S::Item) -> K,
            F: FnMut(S::Item) -> Fut,
            Fut: Future,
        {
            type Item = Fut::Output;

            #[inline]
            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.project().core.poll_next(cx)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.core.size_hint()
            }
        }

        impl<S, K, KF, F, Fut> FusedStream for $name<S, K, KF, F, Fut>
        where
            S: Stream,
            K: Hash + Eq + Clone,
            KF: FnMut(&S::Item) -> K,
            F: FnMut(S::Item) -> Fut,
            Fut: Future,
        {
            fn is_terminated(&self) -> bool {
                self.core.is_terminated()
            }
        }

        impl<S, K, KF, F, Fut> fmt::Debug for $name<S, K, KF, F, Fut>
        where
            S: Stream,
            Fut: Future,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("limit", &self.core.limit)
                    .field("per_key", &self.core.per_key)
                    .field("buffer", &self.core.buffer)
                    .field("held", &self.core.held)
                    .field("running", &self.core.calls.len())
                    .field("keys", &self.core.keys.len())
                    .name_field(&self.core.metrics.name)
                    .finish_non_exhaustive()
            }
        }
    };
}

par_map_keyed_stream! {
    /// Stream for [`par_map_keyed`](super::PipelineExt::par_map_keyed): calls
    /// in parallel across keys, in input order within a key, outputs in
    /// input order.
    ParMapKeyed, "par_map_keyed", true
}

par_map_keyed_stream! {
    /// Stream for
    /// [`par_map_keyed_unordered`](super::PipelineExt::par_map_keyed_unordered):
    /// calls in parallel across keys, in input order within a key, outputs
    /// as they are ready — in input order within a key.
    ParMapKeyedUnordered, "par_map_keyed_unordered", false
}
