//! The per-item outcome: [`Flushed`], and the batch-side [`Completion`]
//! that resolves every flushed future and callback of one batch.
//!
//! # Why this module has `unsafe`
//!
//! Every flushed of a batch shares one [`Slot`]. The batch's outcome is written
//! into the slot once, before the slot's `done` flag is set with `Release`;
//! from then on it is only read. Each flushed future then *moves out* its own output, at
//! its own index. Doing that through a mutex cost two contended atomic
//! operations per item on the batcher's hottest path; instead each output
//! sits in its own `UnsafeCell`, which only the one flushed future holding that index
//! ever touches. The invariants:
//!
//! 1. `outcome` is written only by [`Slot::resolve`], which runs once (a
//!    [`Completion`] resolves once), while `done` is false; no flushed future reads
//!    `outcome` before it has observed `done == true` with `Acquire`.
//! 2. Output `i` is moved out only by the flushed future created with index `i`; there is
//!    one such flushed future (flushed futures are not `Clone`), it does so once (it drops its slot
//!    reference right after), and callbacks' outputs are moved out by the
//!    worker before the outcome is published.
//!
//! Both are model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test
//! --release -p flowgate --lib batch::flushed`) and the unit tests below run under
//! miri (`cargo +nightly miri test -p flowgate --lib batch::flushed`).

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use super::error::FlushError;
use crate::loom::{Arc, AtomicBool, Mutex, UnsafeCell, lock};
use crate::sync::panic_message;

/// A callback given to [`Batcher::submit_with`](super::Batcher::submit_with),
/// called once with the item's outcome.
pub(crate) type Callback<O, E> = Box<dyn FnOnce(Result<O, FlushError<E>>) + Send + 'static>;

/// State shared by every [`Flushed`] of one batch and the batch's [`Completion`].
///
/// One allocation per batch, not per item: a flushed future is an `Arc` clone and an
/// index into the outputs.
pub(crate) struct Slot<O, E> {
    /// Set with `Release`, after `outcome` was written, once the batch is
    /// resolved.
    done: AtomicBool,
    /// Written once before `done` is set; see the module docs.
    outcome: UnsafeCell<Outcome<O, E>>,
    /// Wakers of flushed futures polled by another task than the one that submitted
    /// them. A flushed future remembers its position so that a re-poll replaces its
    /// waker instead of adding one.
    late_wakers: Mutex<Vec<Option<Waker>>>,
}

enum Outcome<O, E> {
    Pending,
    /// One output per item; each cell is moved out by the item's flushed only.
    Flushed(Box<[UnsafeCell<Option<O>>]>),
    Failed(FlushError<E>),
}

// SAFETY: `Slot` is shared between the worker (which resolves it) and the
// flushed futures, possibly on other threads. The only non-`Sync` parts are the
// `UnsafeCell`s. `outcome` is written once, before `done` is released, and
// afterwards only read through shared references, which needs
// `FlushError<E>: Sync` (so `E: Send + Sync`, for the `Arc<E>` inside). Each
// output cell is accessed by exactly one flushed future, which moves the `O` to its own
// thread: that needs `O: Send`, not `O: Sync`. See the module docs.
#[allow(unsafe_code)]
unsafe impl<O: Send, E: Send + Sync> Sync for Slot<O, E> {}
// SAFETY: as above; the slot owns `O`s and `FlushError<E>`s, which may be
// dropped on any thread.
#[allow(unsafe_code)]
unsafe impl<O: Send, E: Send + Sync> Send for Slot<O, E> {}

impl<O, E> Slot<O, E> {
    fn new() -> Self {
        Slot {
            done: AtomicBool::new(false),
            outcome: UnsafeCell::new(Outcome::Pending),
            late_wakers: Mutex::new(Vec::new()),
        }
    }

    /// Publishes the outcome and returns the late wakers to wake.
    ///
    /// Must be called at most once (see [`Completion::finish`]).
    fn resolve(&self, outcome: Outcome<O, E>) -> Vec<Option<Waker>> {
        // SAFETY: invariant 1 — this is the only write, and it happens before
        // `done` is set, so no flushed future reads `outcome` concurrently.
        #[allow(unsafe_code)]
        self.outcome.with_mut(|ptr| unsafe { *ptr = outcome });
        let mut late = lock(&self.late_wakers);
        // Under the lock: a flushed future registering a late waker either sees `done`
        // or has its waker taken here.
        self.done.store(true, Ordering::Release);
        mem::take(&mut *late)
    }

    /// Moves out the outcome for the item at `index`.
    ///
    /// # Safety
    ///
    /// `done` must have been observed `true` with `Acquire`, and the caller
    /// must be the one flushed future holding `index`, calling this once (invariant 2).
    #[allow(unsafe_code)]
    unsafe fn take(&self, index: usize) -> Result<O, FlushError<E>> {
        // SAFETY: `done` was observed with `Acquire`, so the write of
        // `outcome` happened before; from now on it is only read.
        self.outcome.with(|outcome| match unsafe { &*outcome } {
            Outcome::Flushed(outputs) => {
                // SAFETY: invariant 2 — no one else accesses cell `index`.
                let output = outputs[index].with_mut(|cell| unsafe { (*cell).take() });
                Ok(output.expect("each item's output is taken once"))
            }
            Outcome::Failed(err) => Err(err.clone()),
            Outcome::Pending => unreachable!("`done` is set after the outcome"),
        })
    }
}

/// Identifies a waker without holding a reference to the task, to tell
/// whether a flushed future is polled by the task that submitted it (the waker
/// registered at submission is then still the right one). Comparing data and
/// vtable pointers is what [`Waker::will_wake`] does; the registered clone
/// keeps the task alive, so its address cannot be reused meanwhile.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct WakerId(usize, usize);

impl WakerId {
    /// Equal to no waker's id: a waker's vtable pointer is never null.
    const NONE: WakerId = WakerId(0, 0);

    pub(crate) fn of(waker: &Waker) -> Self {
        WakerId(
            waker.data() as usize,
            std::ptr::from_ref(waker.vtable()) as usize,
        )
    }
}

/// Resolves every flushed future and callback of one batch exactly once.
///
/// Owned by the batch while it waits and while it flushes. If it is dropped
/// unresolved — the worker was dropped mid-flight or before the batch started
/// — every flushed future and callback resolves with [`FlushError::Closed`], so no one
/// waits forever.
pub(crate) struct Completion<O, E> {
    /// Created by the batch's first flushed future.
    slot: Option<Arc<Slot<O, E>>>,
    /// How many items the batch is expected to hold, to size `wakers` once
    /// the first flushed future arrives.
    expected_items: usize,
    /// Wakers of the tasks that submitted the batch's items, registered at
    /// submission so that their first poll of the flushed future needs no lock.
    wakers: Vec<Waker>,
    callbacks: Vec<(usize, Callback<O, E>)>,
    resolved: bool,
}

impl<O, E> Completion<O, E> {
    pub(crate) fn new(expected_items: usize) -> Self {
        Completion {
            slot: None,
            expected_items,
            wakers: Vec::new(),
            callbacks: Vec::new(),
            resolved: false,
        }
    }

    /// A flushed future for the item at `index` of this batch, submitted by the task
    /// that `waker` wakes, if known. There must be one flushed future or callback per
    /// index.
    pub(crate) fn flushed(&mut self, index: usize, waker: Option<&Waker>) -> Flushed<O, E> {
        let registered = waker.map_or(WakerId::NONE, |waker| {
            self.wakers.push(waker.clone());
            WakerId::of(waker)
        });
        let slot = match &self.slot {
            Some(slot) => slot,
            None => self.first_ack(),
        };
        Flushed {
            slot: Some(Arc::clone(slot)),
            index,
            registered,
            late_pos: NO_LATE_POS,
        }
    }

    /// Sets up for the batch's first flushed future: the slot, and room for the flushed futures'
    /// wakers. Out of line, as it runs once per batch.
    #[cold]
    #[inline(never)]
    fn first_ack(&mut self) -> &Arc<Slot<O, E>> {
        self.wakers.reserve(self.expected_items);
        self.slot.insert(Arc::new(Slot::new()))
    }

    /// Registers `callback` for the item at `index` of this batch.
    pub(crate) fn push_callback(&mut self, index: usize, callback: Callback<O, E>) {
        self.callbacks.push((index, callback));
    }

    /// Resolves every flushed future and callback with `result`: the batch's error, or
    /// one output per item, where the outputs of items submitted otherwise
    /// (with [`submit_and_wait`](super::Batcher::submit_and_wait)) were
    /// already taken.
    pub(crate) fn resolve(mut self, result: Result<Vec<Option<O>>, FlushError<E>>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<Vec<Option<O>>, FlushError<E>>) {
        debug_assert!(!self.resolved, "a batch resolves once");
        self.resolved = true;
        let callbacks = mem::take(&mut self.callbacks);
        let wakers = mem::take(&mut self.wakers);
        match result {
            Ok(mut outputs) => {
                // Callbacks' outputs leave before the outcome is published
                // (invariant 2).
                let calls: Vec<_> = callbacks
                    .into_iter()
                    .map(|(index, callback)| (callback, outputs[index].take()))
                    .collect();
                if let Some(slot) = &self.slot {
                    let cells = outputs.into_iter().map(UnsafeCell::new).collect();
                    wake(wakers, slot.resolve(Outcome::Flushed(cells)));
                }
                for (callback, output) in calls {
                    let output = output.expect("each item's output is taken once");
                    call(callback, Ok(output));
                }
            }
            Err(err) => {
                if let Some(slot) = &self.slot {
                    wake(wakers, slot.resolve(Outcome::Failed(err.clone())));
                }
                for (_, callback) in callbacks {
                    call(callback, Err(err.clone()));
                }
            }
        }
    }
}

/// Wakes the flushed futures' tasks, outside any lock.
fn wake(submitted: Vec<Waker>, late: Vec<Option<Waker>>) {
    for waker in submitted.into_iter().chain(late.into_iter().flatten()) {
        waker.wake();
    }
}

/// Runs a user callback on the worker, keeping the worker alive if it panics.
fn call<O, E>(callback: Callback<O, E>, result: Result<O, FlushError<E>>) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || callback(result))) {
        tracing::error!(
            target: super::observe::TARGET,
            panic = %panic_message(&*payload),
            "a batch outcome callback panicked"
        );
    }
}

impl<O, E> Drop for Completion<O, E> {
    fn drop(&mut self) {
        if !self.resolved {
            self.finish(Err(FlushError::Closed));
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
/// Returned by [`Batcher::submit`](super::Batcher::submit) and
/// [`KeyedBatcher::submit`](super::KeyedBatcher::submit). It yields the
/// item's output (`()` for flush functions that return `()`), or an
/// [`FlushError`] saying why the item's batch failed.
///
/// # Dropping a `Flushed`
///
/// Dropping a flushed future does **not** withdraw the item: it stays submitted and is
/// flushed with its batch; only the notification is lost. A flushed future does not keep
/// the batcher alive.
///
/// # Cancel safety
///
/// Awaiting a flushed future is cancel-safe: it only observes the outcome. A cancelled
/// `flushed.await` (for example in `select!`) can be resumed by polling the same
/// `Flushed` again.
///
/// # Panics
///
/// Polling a flushed future again after it returned `Ready` panics.
#[must_use = "an Flushed reports the item's outcome only when awaited; dropping it leaves the item submitted"]
pub struct Flushed<O, E> {
    /// `None` once the outcome was returned.
    slot: Option<Arc<Slot<O, E>>>,
    index: usize,
    /// The waker that will be woken when the batch resolves: the submitting
    /// task's, or the one registered by the last slow-path poll
    /// ([`WakerId::NONE`] if neither).
    registered: WakerId,
    /// Position of this flushed future's waker among the slot's late wakers, or
    /// [`NO_LATE_POS`]. (No `Option`s: a flushed future is moved through the submit
    /// future into the caller's, and every byte of it is copied each time.)
    late_pos: usize,
}

/// [`Flushed::late_pos`] before the flushed future registered a late waker.
const NO_LATE_POS: usize = usize::MAX;

impl<O, E> Future for Flushed<O, E> {
    type Output = Result<O, FlushError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = this
            .slot
            .as_ref()
            .expect("`Flushed` polled after it returned `Ready`");
        if !slot.done.load(Ordering::Acquire) {
            // Fast path: polled by the task whose waker is already
            // registered; it is woken after `done` is set.
            let id = WakerId::of(cx.waker());
            if this.registered == id {
                return Poll::Pending;
            }
            let mut late = lock(&slot.late_wakers);
            if !slot.done.load(Ordering::Acquire) {
                let waker = Some(cx.waker().clone());
                if this.late_pos == NO_LATE_POS {
                    this.late_pos = late.len();
                    late.push(waker);
                } else {
                    late[this.late_pos] = waker;
                }
                this.registered = id;
                return Poll::Pending;
            }
        }
        // SAFETY: `done` was observed with `Acquire` just above, and this flushed future
        // is the only holder of `index`; it takes its output once, since it
        // drops its slot reference right after (invariant 2).
        #[allow(unsafe_code)]
        let result = unsafe { slot.take(this.index) };
        this.slot = None;
        Poll::Ready(result)
    }
}

impl<O, E> fmt::Debug for Flushed<O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flushed")
            .field("index", &self.index)
            .field("done", &self.slot.is_none())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! Exercises the unsafe parts directly; run under miri with
    //! `cargo +nightly miri test -p flowgate --lib batch::flushed`.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::thread;

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<O, E>(flushed: &mut Flushed<O, E>, waker: &Waker) -> Poll<Result<O, FlushError<E>>> {
        Pin::new(flushed).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn outputs_move_to_their_own_acks_across_threads() {
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(std::sync::Arc::clone(&counter));
        let mut completion = Completion::<String, ()>::new(4);
        let pending: Vec<_> = (0..4)
            .map(|i| completion.flushed(i, Some(&waker)))
            .collect();
        let threads: Vec<_> = pending
            .into_iter()
            .enumerate()
            .map(|(i, mut flushed)| {
                let waker = waker.clone();
                thread::spawn(move || {
                    loop {
                        if let Poll::Ready(out) = poll(&mut flushed, &waker) {
                            assert_eq!(out, Ok(format!("out {i}")));
                            return;
                        }
                        thread::yield_now();
                    }
                })
            })
            .collect();
        completion.resolve(Ok((0..4).map(|i| Some(format!("out {i}"))).collect()));
        for thread in threads {
            thread.join().unwrap();
        }
        // Each submitter is woken at least once; more where a vtable
        // comparison gives a false negative (as it may under miri) and a flushed future
        // registered a late waker too.
        assert!(counter.0.load(Ordering::SeqCst) >= 4);
    }

    #[test]
    fn untaken_outputs_are_dropped_with_the_slot() {
        let mut completion = Completion::<Box<u32>, ()>::new(4);
        let mut taken = completion.flushed(0, None);
        let dropped = completion.flushed(1, None);
        let never_polled = completion.flushed(2, None);
        drop(dropped);
        completion.resolve(Ok(vec![
            Some(Box::new(0)),
            Some(Box::new(1)),
            Some(Box::new(2)),
        ]));
        let waker = Waker::noop();
        assert_eq!(poll(&mut taken, waker), Poll::Ready(Ok(Box::new(0))));
        drop(never_polled); // the last reference frees outputs 1 and 2
    }

    #[test]
    fn a_late_waker_is_woken_and_errors_are_shared() {
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let late = Waker::from(std::sync::Arc::clone(&counter));
        let mut completion = Completion::<u8, String>::new(4);
        let mut a = completion.flushed(0, None);
        let mut b = completion.flushed(1, Some(Waker::noop()));
        assert!(poll(&mut a, &late).is_pending());
        assert!(
            poll(&mut a, &late).is_pending(),
            "re-poll replaces the waker"
        );
        assert!(poll(&mut b, &late).is_pending());
        let handle = thread::spawn(move || {
            completion.resolve(Err(FlushError::Failed(std::sync::Arc::new("no".into()))))
        });
        handle.join().unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        let (Poll::Ready(Err(FlushError::Failed(ea))), Poll::Ready(Err(FlushError::Failed(eb)))) =
            (poll(&mut a, &late), poll(&mut b, &late))
        else {
            panic!("both fail with the flush error");
        };
        assert!(std::sync::Arc::ptr_eq(&ea, &eb));
    }

    #[test]
    fn dropping_an_unresolved_completion_closes_its_acks() {
        let mut completion = Completion::<u8, ()>::new(4);
        let mut flushed = completion.flushed(0, None);
        let (tx, rx) = std::sync::mpsc::channel();
        completion.push_callback(1, Box::new(move |out| tx.send(out).unwrap()));
        drop(completion);
        assert_eq!(
            poll(&mut flushed, Waker::noop()),
            Poll::Ready(Err(FlushError::Closed))
        );
        assert_eq!(rx.recv().unwrap(), Err(FlushError::Closed));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model-checks the slot protocol: `RUSTFLAGS="--cfg loom" cargo test
    //! --release -p flowgate --lib batch::flushed`.

    use super::*;
    use loom::future::block_on;
    use loom::thread;

    #[test]
    fn outputs_reach_their_acks_under_every_interleaving() {
        loom::model(|| {
            let mut completion = Completion::<Box<u8>, ()>::new(4);
            let a = completion.flushed(0, None);
            let b = completion.flushed(1, None);
            let ta = thread::spawn(move || block_on(a));
            let tb = thread::spawn(move || drop(b));
            completion.resolve(Ok(vec![Some(Box::new(10)), Some(Box::new(11))]));
            assert_eq!(ta.join().unwrap(), Ok(Box::new(10)));
            tb.join().unwrap();
        });
    }

    #[test]
    fn a_late_waker_is_never_lost() {
        loom::model(|| {
            let mut completion = Completion::<u8, ()>::new(4);
            // Registered with no submitting waker: the first poll takes the
            // late-waker path, racing with `resolve`.
            let flushed = completion.flushed(0, None);
            let waiter = thread::spawn(move || block_on(flushed));
            let resolver = thread::spawn(move || completion.resolve(Ok(vec![Some(7)])));
            resolver.join().unwrap();
            assert_eq!(waiter.join().unwrap(), Ok(7));
        });
    }

    #[test]
    fn failure_is_shared_by_acks_on_two_threads() {
        loom::model(|| {
            let mut completion = Completion::<u8, u8>::new(4);
            let a = completion.flushed(0, None);
            let b = completion.flushed(1, None);
            let ta = thread::spawn(move || block_on(a));
            let tb = thread::spawn(move || block_on(b));
            completion.resolve(Err(FlushError::Failed(std::sync::Arc::new(3))));
            assert!(matches!(ta.join().unwrap(), Err(FlushError::Failed(_))));
            assert!(matches!(tb.join().unwrap(), Err(FlushError::Failed(_))));
        });
    }
}
