//! [`Wait`]: the future of a sealed group.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

use super::core::Core;
use super::results::{IdIndex, Results};

/// A group's deadline and the runtime whose timer enforces it.
#[derive(Clone)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) runtime: Handle,
}

/// Resolves to the [`Results`] of a [`CallGroup`](super::CallGroup) once every
/// operation has finished, or its deadline has passed.
///
/// Returned by [`CallGroup::wait`](super::CallGroup::wait) (and by awaiting the
/// group itself). Creating it seals the group: no operation can be added any
/// more, so the group cannot complete before all its operations were added.
///
/// # Cancel safety
///
/// Polling `&mut wait` again after a cancelled `select!` branch loses nothing.
/// Dropping the `Wait` before it resolves gives up the group: its results are
/// dropped, and [`Op::is_closed`](super::Op::is_closed) turns true for the ops
/// still running.
///
/// # Panics
///
/// Polling a `Wait` again after it returned `Ready` panics.
#[must_use = "futures do nothing unless polled"]
pub struct Wait<Id, R, E> {
    /// `None` once the results were returned.
    core: Option<Arc<Core<R, E>>>,
    ids: Option<IdIndex<Id>>,
    deadline: Option<Deadline>,
    /// Created on the first poll, in the deadline's runtime.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<Id, R, E> Wait<Id, R, E> {
    pub(crate) fn new(core: Arc<Core<R, E>>, ids: IdIndex<Id>, deadline: Option<Deadline>) -> Self {
        core.seal_wait();
        Wait {
            core: Some(core),
            ids: Some(ids),
            deadline,
            sleep: None,
        }
    }

    /// How many operations have not finished yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, u32, ()>::new();
    /// let op = group.add(1, ()).unwrap();
    /// let wait = group.wait();
    /// assert_eq!(wait.remaining(), 1);
    /// op.finish(Ok(5));
    /// assert_eq!(wait.remaining(), 0);
    /// assert!(wait.await.all_ok());
    /// # }
    /// ```
    pub fn remaining(&self) -> usize {
        self.core.as_ref().map_or(0, |core| core.running())
    }

    fn results(&mut self, outcomes: super::core::Outcomes<R, E>) -> Results<Id, R, E> {
        self.core = None;
        let ids = self.ids.take().expect("ids are taken once, with the core");
        Results::new(ids, outcomes)
    }
}

// Nothing of a `Wait` is pinned in place: the sleep is boxed.
impl<Id, R, E> Unpin for Wait<Id, R, E> {}

impl<Id, R, E> Future for Wait<Id, R, E> {
    type Output = Results<Id, R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let core = this
            .core
            .as_ref()
            .expect("`Wait` polled after it returned `Ready`");
        if let Some(outcomes) = core.poll_wait(cx.waker()) {
            return Poll::Ready(this.results(outcomes));
        }
        if let Some(deadline) = &this.deadline {
            let sleep = this.sleep.get_or_insert_with(|| {
                // Entering the runtime lets a `Wait` be polled from anywhere.
                let _runtime = deadline.runtime.enter();
                Box::pin(tokio::time::sleep_until(deadline.at))
            });
            if sleep.as_mut().poll(cx).is_ready() {
                let outcomes = core.expire_wait();
                return Poll::Ready(this.results(outcomes));
            }
        }
        Poll::Pending
    }
}

impl<Id, R, E> Drop for Wait<Id, R, E> {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.detach();
        }
    }
}

impl<Id, R, E> fmt::Debug for Wait<Id, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("remaining", &self.remaining())
            .field("deadline", &self.deadline.as_ref().map(|d| d.at))
            .finish()
    }
}
