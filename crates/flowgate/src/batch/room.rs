//! Room: how many more items a batcher may hold, counted under the state
//! lock that every submission takes anyway, with a FIFO queue of submitters
//! waiting for room.
//!
//! Counting room in the state (instead of in a separate semaphore) saves one
//! contended atomic operation per item on the fast path. The slow path is a
//! fair queue: room that comes back goes to the longest waiting submitter
//! first, and a new submitter never takes room while others wait ("no
//! barging"), since room is only ever free while the queue is empty.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::keys::BatchKey;
use super::shared::Shared;
use crate::sync::lock;
use crate::telemetry::Gauge;

/// The free room and the queue of submitters waiting for it. `free` comes
/// first (`repr(C)`): it is one of the state's hot fields.
#[repr(C)]
pub(crate) struct Room {
    /// Free units. Zero while anyone waits: released room goes to waiters
    /// first.
    free: usize,
    waiting: VecDeque<Arc<RoomWaiter>>,
    /// `flowgate_batch_submitters_waiting`: the length of `waiting`.
    gauge: Gauge,
}

/// One submitter waiting for room. Its state changes only under the state
/// lock; the waiting future reads it without the lock.
pub(crate) struct RoomWaiter {
    state: AtomicU8,
    waker: AtomicWaker,
}

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const CLOSED: u8 = 2;

/// Waiters whose state changed, to be woken once the state lock is released.
pub(crate) type Woken = Vec<Arc<RoomWaiter>>;

/// Wakes the waiters in `woken`; call after releasing the state lock.
pub(crate) fn wake(woken: Woken) {
    for waiter in woken {
        waiter.waker.wake();
    }
}

impl Room {
    pub(crate) fn new(capacity: usize, gauge: Gauge) -> Self {
        Room {
            free: capacity,
            waiting: VecDeque::new(),
            gauge,
        }
    }

    /// Takes one unit, if one is free.
    #[inline]
    pub(crate) fn try_take(&mut self) -> bool {
        debug_assert!(self.free == 0 || self.waiting.is_empty());
        if self.free > 0 {
            self.free -= 1;
            true
        } else {
            false
        }
    }

    /// Queues a waiter for the next unit that comes back; call after
    /// [`try_take`](Self::try_take) failed.
    pub(crate) fn wait(&mut self) -> Arc<RoomWaiter> {
        let waiter = Arc::new(RoomWaiter {
            state: AtomicU8::new(WAITING),
            waker: AtomicWaker::new(),
        });
        self.waiting.push_back(Arc::clone(&waiter));
        self.gauge.inc();
        waiter
    }

    /// Gives `n` units back: to waiting submitters first, oldest first.
    pub(crate) fn release(&mut self, mut n: usize, woken: &mut Woken) {
        while n > 0 {
            let Some(waiter) = self.waiting.pop_front() else {
                break;
            };
            waiter.state.store(GRANTED, Ordering::Release);
            woken.push(waiter);
            self.gauge.dec();
            n -= 1;
        }
        self.free = self.free.saturating_add(n);
    }

    /// Fails every waiting submitter: the batcher closed.
    pub(crate) fn close(&mut self, woken: &mut Woken) {
        self.gauge.sub(self.waiting.len() as f64);
        for waiter in self.waiting.drain(..) {
            waiter.state.store(CLOSED, Ordering::Release);
            woken.push(waiter);
        }
    }

    /// A waiter gives up: it leaves the queue, or hands on the unit it was
    /// granted.
    fn cancel(&mut self, waiter: &Arc<RoomWaiter>, woken: &mut Woken) {
        match waiter.state.load(Ordering::Relaxed) {
            WAITING => {
                let pos = self
                    .waiting
                    .iter()
                    .position(|queued| Arc::ptr_eq(queued, waiter))
                    .expect("a waiting submitter is queued");
                self.waiting.remove(pos);
                self.gauge.dec();
            }
            GRANTED => self.release(1, woken),
            _ => {}
        }
    }
}

impl fmt::Debug for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Room")
            .field("free", &self.free)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// Waits for a unit of room: `true` once granted (the caller then holds it),
/// `false` if the batcher closed. Dropping it unfinished gives the unit back,
/// or leaves the queue.
pub(crate) struct RoomWait<'a, K: BatchKey, T, O, E> {
    shared: &'a Shared<K, T, O, E>,
    /// `None` once finished.
    waiter: Option<Arc<RoomWaiter>>,
}

impl<'a, K: BatchKey, T, O, E> RoomWait<'a, K, T, O, E> {
    pub(crate) fn new(shared: &'a Shared<K, T, O, E>, waiter: Arc<RoomWaiter>) -> Self {
        RoomWait {
            shared,
            waiter: Some(waiter),
        }
    }
}

impl<K: BatchKey, T, O, E> Future for RoomWait<'_, K, T, O, E> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let waiter = self.waiter.as_ref().expect("polled after completion");
        // Register before looking, so that a grant after our look wakes us.
        waiter.waker.register(cx.waker());
        let granted = match waiter.state.load(Ordering::Acquire) {
            WAITING => return Poll::Pending,
            GRANTED => true,
            _ => false,
        };
        self.waiter = None;
        Poll::Ready(granted)
    }
}

impl<K: BatchKey, T, O, E> Drop for RoomWait<'_, K, T, O, E> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            let mut woken = Woken::new();
            lock(&self.shared.state).room.cancel(&waiter, &mut woken);
            wake(woken);
        }
    }
}

impl<K: BatchKey, T, O, E> fmt::Debug for RoomWait<'_, K, T, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomWait")
            .field("done", &self.waiter.is_none())
            .finish()
    }
}
