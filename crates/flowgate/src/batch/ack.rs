//! The per-item acknowledgement: [`Ack`], and the batch-side [`Completion`]
//! that resolves every ack and callback of one batch.

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::error::AckError;
use crate::sync::{lock, panic_message};

/// A callback given to [`Batcher::submit_with`](super::Batcher::submit_with),
/// called once with the item's outcome.
pub(crate) type Callback<O, E> = Box<dyn FnOnce(Result<O, AckError<E>>) + Send + 'static>;

/// State shared by every [`Ack`] of one batch and the batch's [`Completion`].
///
/// One allocation per batch, not per item: an ack is an `Arc` clone and an
/// index into the outputs.
pub(crate) struct Slot<O, E> {
    inner: Mutex<SlotInner<O, E>>,
}

struct SlotInner<O, E> {
    /// Wakers of acks polled before the batch resolved. An ack remembers its
    /// position so that a re-poll replaces its waker instead of adding one.
    wakers: Vec<Option<Waker>>,
    outcome: Outcome<O, E>,
}

enum Outcome<O, E> {
    Pending,
    /// One output per item, taken by the item's ack or callback.
    Flushed(Vec<Option<O>>),
    Failed(AckError<E>),
}

impl<O, E> Slot<O, E> {
    fn new(expected_items: usize) -> Self {
        Slot {
            inner: Mutex::new(SlotInner {
                wakers: Vec::with_capacity(expected_items),
                outcome: Outcome::Pending,
            }),
        }
    }

    fn resolve(&self, outcome: Outcome<O, E>) {
        let wakers = {
            let mut inner = lock(&self.inner);
            inner.outcome = outcome;
            mem::take(&mut inner.wakers)
        };
        // Wake outside the lock: a woken ack on another thread goes straight
        // for it.
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// Resolves every ack and callback of one batch exactly once.
///
/// Owned by the batch while it waits and while it flushes. If it is dropped
/// unresolved — the worker was dropped mid-flight or before the batch started
/// — every ack and callback resolves with [`AckError::Closed`], so no one
/// waits forever.
pub(crate) struct Completion<O, E> {
    slot: Arc<Slot<O, E>>,
    callbacks: Vec<(usize, Callback<O, E>)>,
    resolved: bool,
}

impl<O, E> Completion<O, E> {
    pub(crate) fn new(expected_items: usize) -> Self {
        Completion {
            slot: Arc::new(Slot::new(expected_items)),
            callbacks: Vec::new(),
            resolved: false,
        }
    }

    /// An ack for the item at `index` of this batch.
    pub(crate) fn ack(&self, index: usize) -> Ack<O, E> {
        Ack {
            slot: Some(Arc::clone(&self.slot)),
            index,
            waker_pos: None,
        }
    }

    /// Registers `callback` for the item at `index` of this batch.
    pub(crate) fn push_callback(&mut self, index: usize, callback: Callback<O, E>) {
        self.callbacks.push((index, callback));
    }

    /// Resolves every ack and callback with `result`.
    pub(crate) fn resolve(mut self, result: Result<Vec<O>, AckError<E>>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<Vec<O>, AckError<E>>) {
        self.resolved = true;
        let callbacks = mem::take(&mut self.callbacks);
        match result {
            Ok(outputs) => {
                let mut outputs: Vec<Option<O>> = outputs.into_iter().map(Some).collect();
                let calls: Vec<_> = callbacks
                    .into_iter()
                    .map(|(index, callback)| (callback, outputs[index].take()))
                    .collect();
                self.slot.resolve(Outcome::Flushed(outputs));
                for (callback, output) in calls {
                    let output = output.expect("each item's output is taken once");
                    call(callback, Ok(output));
                }
            }
            Err(err) => {
                self.slot.resolve(Outcome::Failed(err.clone()));
                for (_, callback) in callbacks {
                    call(callback, Err(err.clone()));
                }
            }
        }
    }
}

/// Runs a user callback on the worker, keeping the worker alive if it panics.
fn call<O, E>(callback: Callback<O, E>, result: Result<O, AckError<E>>) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || callback(result))) {
        tracing::error!(
            panic = %panic_message(&*payload),
            "a batch acknowledgement callback panicked"
        );
    }
}

impl<O, E> Drop for Completion<O, E> {
    fn drop(&mut self) {
        if !self.resolved {
            self.finish(Err(AckError::Closed));
        }
    }
}

impl<O, E> fmt::Debug for Completion<O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("callbacks", &self.callbacks.len())
            .field("resolved", &self.resolved)
            .finish()
    }
}

/// Resolves when the batch holding a submitted item has been flushed.
///
/// Returned by [`Batcher::submit`](super::Batcher::submit). It yields the
/// item's output (`()` for flush functions that return `()`), or an
/// [`AckError`] saying why the item's batch failed.
///
/// # Dropping an `Ack`
///
/// Dropping an ack does **not** withdraw the item: it stays submitted and is
/// flushed with its batch; only the notification is lost. An ack does not keep
/// the batcher alive.
///
/// # Cancel safety
///
/// Awaiting an ack is cancel-safe: it only observes the outcome. A cancelled
/// `ack.await` (for example in `select!`) can be resumed by polling the same
/// `Ack` again.
///
/// # Panics
///
/// Polling an ack again after it returned `Ready` panics.
#[must_use = "an Ack reports the item's outcome only when awaited; dropping it leaves the item submitted"]
pub struct Ack<O, E> {
    /// `None` once the outcome was returned.
    slot: Option<Arc<Slot<O, E>>>,
    index: usize,
    waker_pos: Option<usize>,
}

impl<O, E> Future for Ack<O, E> {
    type Output = Result<O, AckError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = this
            .slot
            .as_ref()
            .expect("`Ack` polled after it returned `Ready`");
        let mut inner = lock(&slot.inner);
        let result = match &mut inner.outcome {
            Outcome::Pending => {
                match this.waker_pos {
                    Some(pos) => match &mut inner.wakers[pos] {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        stored => *stored = Some(cx.waker().clone()),
                    },
                    None => {
                        this.waker_pos = Some(inner.wakers.len());
                        inner.wakers.push(Some(cx.waker().clone()));
                    }
                }
                return Poll::Pending;
            }
            Outcome::Flushed(outputs) => Ok(outputs[this.index]
                .take()
                .expect("each item's output is taken once")),
            Outcome::Failed(err) => Err(err.clone()),
        };
        drop(inner);
        this.slot = None;
        Poll::Ready(result)
    }
}

impl<O, E> fmt::Debug for Ack<O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack")
            .field("index", &self.index)
            .field("done", &self.slot.is_none())
            .finish()
    }
}
