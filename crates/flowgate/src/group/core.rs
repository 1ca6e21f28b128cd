//! The state shared by a group, its [`Op`](super::Op)s and its completion.
//!
//! One mutex guards everything. An operation takes it twice (to register when
//! added, to record its outcome when finished), the completion once; every
//! critical section is a few stores, and user code (callbacks, the drop of a
//! result nobody wants) always runs after the lock is released.

use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::task::Waker;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::observe::{End, Metrics};
use super::results::Outcome;
use crate::sync::{lock, panic_message};
use crate::telemetry::Name;

/// The recorded outcomes, by position; `None` while the operation runs.
pub(crate) type Outcomes<R, E> = Vec<Option<Outcome<R, E>>>;

/// Hands the outcomes to an [`on_complete`](super::CallGroup::on_complete)
/// callback (it owns the ids and builds the `Results`).
pub(crate) type Deliver<R, E> = Box<dyn FnOnce(Outcomes<R, E>) + Send + 'static>;

pub(crate) struct Core<R, E> {
    inner: Mutex<Inner<R, E>>,
}

struct Inner<R, E> {
    outcomes: Outcomes<R, E>,
    /// Operations added and not yet finished (an abandoned op finishes too).
    running: usize,
    phase: Phase<R, E>,
    /// The deadline timer of a callback group, cancelled on completion.
    timer: Option<AbortHandle>,
    /// The group's series (no-op handles until it is named).
    metrics: Metrics,
    /// When the first operation was added, in a named group that records
    /// (the `metrics` feature on; it feeds the duration histogram only):
    /// the only clock read, one per group.
    started: Option<Instant>,
    /// Operations recorded as abandoned, for the completion's warning.
    abandoned: usize,
}

/// Where the group is in its life. Completion is only possible once the group
/// was sealed (`Waiting` or `Callback`), which is what makes the seed's
/// "starting line" unnecessary.
enum Phase<R, E> {
    /// Operations are still being added.
    Adding,
    /// Sealed by `wait()`: the waker of the `Wait` future, once polled.
    Waiting(Option<Waker>),
    /// Sealed by `on_complete()`.
    Callback(Deliver<R, E>),
    /// Complete; the outcomes wait for the `Wait` future to take them.
    Ready(Outcomes<R, E>),
    /// Delivered, or no one will look: the group or its `Wait` was dropped.
    Closed,
}

/// What to do once the lock is released.
enum Action<R, E> {
    None,
    Wake(Waker),
    Deliver(Deliver<R, E>, Outcomes<R, E>, Name),
}

impl<R, E> Action<R, E> {
    fn run(self) {
        match self {
            Action::None => {}
            Action::Wake(waker) => waker.wake(),
            Action::Deliver(deliver, outcomes, name) => {
                // The callback may run inside an `Op`'s drop during a panic;
                // a second panic there would abort the process.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(move || deliver(outcomes))) {
                    tracing::error!(
                        target: "flowgate::group",
                        name = %name.as_str(),
                        panic = %panic_message(&*payload),
                        "a call group completion callback panicked"
                    );
                }
            }
        }
    }
}

impl<R, E> Inner<R, E> {
    /// A named group's part of registering an operation: out of line, so
    /// that an unnamed group's `register` is the same small function with
    /// the feature on as off (inlined where it was; `BENCHMARKS.md`, "What
    /// the `metrics` feature costs").
    #[cold]
    #[inline(never)]
    fn registered_named(&mut self) {
        self.metrics.added(1);
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// Completes the group if it is sealed and nothing runs any more.
    fn try_complete(&mut self) -> Action<R, E> {
        if self.running != 0 {
            return Action::None;
        }
        match &mut self.phase {
            Phase::Waiting(waker) => {
                let waker = waker.take();
                self.phase = Phase::Ready(mem::take(&mut self.outcomes));
                self.ended(End::Complete);
                waker.map_or(Action::None, Action::Wake)
            }
            Phase::Callback(_) => self.deliver(),
            Phase::Adding | Phase::Ready(_) | Phase::Closed => Action::None,
        }
    }

    /// Hands a callback group's outcomes to its callback, whatever still runs.
    fn deliver(&mut self) -> Action<R, E> {
        match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Callback(deliver) => {
                if let Some(timer) = self.timer.take() {
                    timer.abort();
                }
                self.ended(if self.running == 0 {
                    End::Complete
                } else {
                    End::TimedOut
                });
                let name = self.metrics.name.clone();
                Action::Deliver(deliver, mem::take(&mut self.outcomes), name)
            }
            other => {
                self.phase = other;
                Action::None
            }
        }
    }

    /// Records how the group ended (once per group), and warns if that lost
    /// work: operations abandoned, or still running at the deadline.
    fn ended(&mut self, end: End) {
        let elapsed = self.started.map(|started| started.elapsed());
        self.metrics.ended(end, self.running, elapsed);
        let name = self.metrics.name.as_str();
        match end {
            End::TimedOut => tracing::warn!(
                target: "flowgate::group",
                name,
                timed_out = self.running,
                abandoned = self.abandoned,
                ops = self.outcomes.len(),
                "call group deadline passed with operations still running"
            ),
            End::Complete if self.abandoned > 0 => tracing::warn!(
                target: "flowgate::group",
                name,
                abandoned = self.abandoned,
                ops = self.outcomes.len(),
                "call group completed with abandoned operations"
            ),
            End::Dropped if self.running > 0 => tracing::debug!(
                target: "flowgate::group",
                name,
                running = self.running,
                "call group dropped with operations running; their results will be dropped"
            ),
            End::Complete | End::Dropped => {}
        }
    }
}

impl<R, E> Core<R, E> {
    pub(crate) fn new(capacity: usize) -> Self {
        // A hint: room that cannot be had (`usize::MAX`) is not taken, and
        // the group grows as operations are added.
        let mut outcomes = Vec::new();
        let _ = outcomes.try_reserve(capacity);
        Core {
            inner: Mutex::new(Inner {
                outcomes,
                running: 0,
                phase: Phase::Adding,
                timer: None,
                metrics: Metrics::new(Name::none()),
                started: None,
                abandoned: 0,
            }),
        }
    }

    /// Records the group's metrics under `name` from now on; operations
    /// already added are counted as added now.
    pub(crate) fn set_name(&self, name: Name) {
        let metrics = Metrics::new(name);
        let mut inner = lock(&self.inner);
        metrics.added(inner.running);
        inner.metrics = metrics;
        if inner.started.is_none() && !inner.outcomes.is_empty() {
            inner.started = Some(Instant::now());
        }
    }

    /// Registers a new operation; returns its position. Kept out of line
    /// (LLVM's choice without the `metrics` feature; with it, inlining it
    /// made `CallGroup::add` too big to inline into its caller: +28
    /// instructions per op).
    #[inline(never)]
    pub(crate) fn register(&self) -> usize {
        let mut inner = lock(&self.inner);
        if inner.metrics.recording() {
            inner.registered_named();
        }
        inner.running += 1;
        inner.outcomes.push(None);
        inner.outcomes.len() - 1
    }

    /// Records the outcome of the operation at `pos`, completing the group if
    /// it was the last one running.
    pub(crate) fn finish(&self, pos: usize, outcome: Outcome<R, E>) {
        let mut inner = lock(&self.inner);
        if matches!(inner.phase, Phase::Ready(_) | Phase::Closed) {
            // Too late (deadline) or no one will look: drop the outcome, which
            // is user code, after unlocking.
            inner.metrics.finished(&outcome, false);
            drop(inner);
            drop(outcome);
            return;
        }
        inner.metrics.finished(&outcome, true);
        if matches!(outcome, Outcome::Abandoned) {
            inner.abandoned += 1;
        }
        inner.outcomes[pos] = Some(outcome);
        inner.running -= 1;
        let action = inner.try_complete();
        drop(inner);
        action.run();
    }

    /// Whether no one will look at outcomes any more: the group completed
    /// (or timed out), or it was dropped.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(lock(&self.inner).phase, Phase::Ready(_) | Phase::Closed)
    }

    /// Operations still running.
    pub(crate) fn running(&self) -> usize {
        lock(&self.inner).running
    }

    /// Seals the group for a `Wait` future.
    pub(crate) fn seal_wait(&self) {
        lock(&self.inner).phase = Phase::Waiting(None);
    }

    /// Polled by the `Wait` future: the outcomes if the group is complete,
    /// otherwise `waker` is kept for the last operation to wake.
    pub(crate) fn poll_wait(&self, waker: &Waker) -> Option<Outcomes<R, E>> {
        let mut inner = lock(&self.inner);
        if inner.running == 0 {
            // A group sealed after its last op finished completes here.
            let _ = inner.try_complete();
        }
        match &mut inner.phase {
            Phase::Ready(outcomes) => {
                let outcomes = mem::take(outcomes);
                inner.phase = Phase::Closed;
                Some(outcomes)
            }
            Phase::Waiting(stored) => {
                match stored {
                    Some(stored) if stored.will_wake(waker) => {}
                    stored => *stored = Some(waker.clone()),
                }
                None
            }
            Phase::Adding | Phase::Callback(_) | Phase::Closed => {
                unreachable!("a Wait future polls a group it sealed and has not completed")
            }
        }
    }

    /// The deadline of a `Wait` future passed: takes the outcomes as they are;
    /// operations still running become `TimedOut`.
    pub(crate) fn expire_wait(&self) -> Outcomes<R, E> {
        let mut inner = lock(&self.inner);
        match mem::replace(&mut inner.phase, Phase::Closed) {
            Phase::Ready(outcomes) => outcomes,
            _ => {
                inner.ended(End::TimedOut);
                mem::take(&mut inner.outcomes)
            }
        }
    }

    /// Seals the group with a completion callback; delivers at once if
    /// nothing runs. Returns whether the group is still waiting for
    /// operations (and so needs its deadline timer).
    pub(crate) fn seal_callback(&self, deliver: Deliver<R, E>) -> bool {
        let mut inner = lock(&self.inner);
        inner.phase = Phase::Callback(deliver);
        let action = inner.try_complete();
        let waiting = matches!(inner.phase, Phase::Callback(_));
        drop(inner);
        action.run();
        waiting
    }

    /// Keeps the deadline timer of a callback group so that completion can
    /// cancel it; cancels it at once if the group already completed.
    pub(crate) fn set_timer(&self, timer: AbortHandle) {
        let mut inner = lock(&self.inner);
        if matches!(inner.phase, Phase::Callback(_)) {
            inner.timer = Some(timer);
        } else {
            drop(inner);
            timer.abort();
        }
    }

    /// The deadline of a callback group passed: delivers the outcomes as they
    /// are; operations still running become `TimedOut`.
    pub(crate) fn expire_callback(&self) {
        let mut inner = lock(&self.inner);
        // The timer is the running task: it must not abort itself.
        inner.timer = None;
        let action = inner.deliver();
        drop(inner);
        action.run();
    }

    /// No one will ever look at the outcomes: the group was dropped unsealed,
    /// or its `Wait` future was dropped.
    pub(crate) fn detach(&self) {
        let mut inner = lock(&self.inner);
        let phase = mem::replace(&mut inner.phase, Phase::Closed);
        if matches!(phase, Phase::Adding | Phase::Waiting(_)) {
            inner.ended(End::Dropped);
        }
        let outcomes = mem::take(&mut inner.outcomes);
        drop(inner);
        // User values (outcomes, a waker), dropped after unlocking.
        drop(phase);
        drop(outcomes);
    }
}
