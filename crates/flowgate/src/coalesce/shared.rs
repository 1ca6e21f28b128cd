//! What the [`OpQueue`](super::OpQueue) and [`Consumer`](super::Consumer)
//! handles share, and the polling logic of their futures.
//!
//! One mutex guards the whole queue, its parked consumers and its parked
//! producers, so that checking for work and parking happen atomically and no
//! wake-up is lost. Wakers are always called after the lock is released.
//!
//! Wake-ups are targeted: a new ready entry wakes one parked consumer (none if
//! every consumer is busy, which is how a fast producer and a busy consumer
//! avoid a wake-up per item); a consumer that takes an entry while more remain
//! and other consumers are parked wakes the next one, so work never sits
//! unseen. Producers parked in `enqueue` are all woken when room is made:
//! they wait on different conditions (depth, or width of one key) and each
//! re-checks its own.

use foldhash::fast::RandomState;
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

use super::error::TryEnqueueError;
use super::observe::{Metrics, Reason};
use super::state::{Added, Config, Refused, State};
use crate::sync::lock;

pub(crate) struct Shared<K, T, A> {
    pub(crate) state: Mutex<State<K, A>>,
    pub(crate) config: Config<T, A>,
    pub(crate) hasher: RandomState,
    /// Windowed mode: the runtime whose timer closes windows.
    pub(crate) runtime: Option<Handle>,
    /// Live `OpQueue` handles; the queue closes when the last one goes.
    pub(crate) producers: AtomicUsize,
    /// Live `Consumer` handles; the queue closes and empties when the last
    /// one goes.
    pub(crate) consumers: AtomicUsize,
    /// The queue's series (no-op handles when it has no name).
    pub(crate) metrics: Metrics,
}

/// The parking state of one waiting consumer (a `dequeue` future, or a
/// `Consumer` used as a stream).
#[derive(Default)]
pub(crate) struct ConsumerWait {
    waiter: Option<u64>,
    /// Windowed mode: wakes the consumer when the oldest window closes.
    sleep: Option<Pin<Box<Sleep>>>,
}

/// What a poll of `enqueue` came to.
pub(crate) enum Enqueued<K, T> {
    Done,
    Closed(K, T),
    /// Full: parked, try again when woken.
    Parked(K, T),
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

impl<K, T, A> Shared<K, T, A>
where
    K: Hash + Eq,
{
    /// After an item was added: records it, releases the lock, then wakes
    /// one parked consumer if the addition made something ready, and drops
    /// the spare key (the caller's) outside the lock.
    #[inline]
    fn wake_for(&self, mut state: MutexGuard<'_, State<K, A>>, added: Added<K>) {
        self.metrics.enqueued(added.merged(), &state);
        let consumer = if added.wake {
            state.consumers.pop()
        } else {
            None
        };
        drop(state);
        drop(added.spare_key);
        if let Some(consumer) = consumer {
            consumer.wake();
        }
    }

    pub(crate) fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    pub(crate) fn try_enqueue(&self, key: K, item: T) -> Result<(), TryEnqueueError<K, T>> {
        // Hash before taking the lock: it is the costliest part for most keys.
        let hash = self.hash(&key);
        let mut state = lock(&self.state);
        match state.enqueue(&self.config, hash, key, item) {
            Ok(added) => {
                self.wake_for(state, added);
                Ok(())
            }
            Err((refused, key, item)) => {
                drop(state);
                Err(match refused {
                    Refused::DepthFull => {
                        self.metrics.rejected(Reason::DepthFull);
                        TryEnqueueError::DepthFull(key, item)
                    }
                    Refused::WidthFull => {
                        self.metrics.rejected(Reason::WidthFull);
                        TryEnqueueError::WidthFull(key, item)
                    }
                    Refused::Closed => {
                        self.metrics.rejected(Reason::Closed);
                        TryEnqueueError::Closed(key, item)
                    }
                })
            }
        }
    }

    pub(crate) fn poll_enqueue(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut Option<u64>,
        hash: u64,
        key: K,
        item: T,
    ) -> Enqueued<K, T> {
        let mut state = lock(&self.state);
        match state.enqueue(&self.config, hash, key, item) {
            Ok(added) => {
                if let Some(id) = waiter.take() {
                    state.producers.remove(id);
                    self.metrics.wait_ended();
                }
                self.wake_for(state, added);
                Enqueued::Done
            }
            Err((Refused::Closed, key, item)) => {
                if let Some(id) = waiter.take() {
                    state.producers.remove(id);
                    self.metrics.wait_ended();
                }
                drop(state);
                self.metrics.rejected(Reason::Closed);
                Enqueued::Closed(key, item)
            }
            Err((Refused::DepthFull | Refused::WidthFull, key, item)) => {
                if waiter.is_none() {
                    self.metrics.wait_started();
                }
                state.producers.register(waiter, cx.waker());
                Enqueued::Parked(key, item)
            }
        }
    }
}

impl<K, T, A> Shared<K, T, A> {
    // ===== accessors of both handles =====

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.state).len()
    }

    pub(crate) fn item_count(&self) -> usize {
        lock(&self.state).items()
    }

    pub(crate) fn count_for<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        lock(&self.state).count(hash, key)
    }

    /// Unparks a producer whose `enqueue` was dropped. Producers are
    /// woken all at once, so a consumed wake-up needs no passing on.
    pub(crate) fn cancel_producer(&self, waiter: Option<u64>) {
        if let Some(id) = waiter {
            lock(&self.state).producers.remove(id);
            self.metrics.wait_ended();
        }
    }

    /// Polls for entries with `take`, parking `wait` if there are none.
    /// `Ready(None)` once the queue is closed and drained.
    pub(crate) fn poll_take<R>(
        &self,
        cx: &mut Context<'_>,
        wait: &mut ConsumerWait,
        mut take: impl FnMut(&mut State<K, A>) -> Option<R>,
    ) -> Poll<Option<R>> {
        loop {
            let mut state = lock(&self.state);
            if self.config.window.is_some() {
                state.release_expired(Instant::now());
            }
            let before = state.items();
            if let Some(taken) = take(&mut state) {
                self.metrics.dequeued(before - state.items(), &state);
                if let Some(id) = wait.waiter.take() {
                    state.consumers.remove(id);
                }
                let producers = if state.producers.is_empty() {
                    Vec::new()
                } else {
                    state.producers.take_all()
                };
                // More work, and consumers parked: pass the baton so the
                // next one takes it (or arms the next window's timer).
                let next = if state.has_entries() {
                    state.consumers.pop()
                } else {
                    None
                };
                drop(state);
                wake_all(producers);
                if let Some(next) = next {
                    next.wake();
                }
                return Poll::Ready(Some(taken));
            }
            if state.closed && !state.has_entries() {
                if let Some(id) = wait.waiter.take() {
                    state.consumers.remove(id);
                }
                return Poll::Ready(None);
            }
            state.consumers.register(&mut wait.waiter, cx.waker());
            let deadline = state.next_deadline();
            drop(state);

            let Some(deadline) = deadline else {
                return Poll::Pending;
            };
            let sleep = match &mut wait.sleep {
                Some(sleep) => {
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    sleep
                }
                None => {
                    let runtime = self
                        .runtime
                        .as_ref()
                        .expect("a windowed queue keeps its runtime");
                    let _runtime = runtime.enter();
                    wait.sleep
                        .insert(Box::pin(tokio::time::sleep_until(deadline)))
                }
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The window closed meanwhile: go round and release it.
        }
    }

    /// Unparks a consumer that stops waiting. If it had been woken, the
    /// wake-up is passed on, so that it is not lost with it.
    pub(crate) fn cancel_consumer(&self, wait: &mut ConsumerWait) {
        let Some(id) = wait.waiter.take() else {
            return;
        };
        let mut state = lock(&self.state);
        if state.consumers.remove(id) {
            return;
        }
        let next = if state.has_entries() || state.closed {
            state.consumers.pop()
        } else {
            None
        };
        drop(state);
        if let Some(next) = next {
            next.wake();
        }
    }

    /// Closes the queue: enqueues fail, open windows are released, and every
    /// parked task is woken to see it.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.close();
        let consumers = state.consumers.take_all();
        let producers = state.producers.take_all();
        drop(state);
        wake_all(consumers);
        wake_all(producers);
    }

    /// Closes and empties the queue: no consumer is left to take anything.
    pub(crate) fn close_and_clear(&self) {
        let mut state = lock(&self.state);
        state.close();
        let items = state.items();
        let drained = state.clear();
        let consumers = state.consumers.take_all();
        let producers = state.producers.take_all();
        drop(state);
        self.metrics.dropped(drained.len(), items);
        // Items are the caller's: dropped outside the lock.
        drop(drained);
        wake_all(consumers);
        wake_all(producers);
    }
}
