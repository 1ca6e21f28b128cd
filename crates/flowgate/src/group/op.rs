//! [`Op`]: one operation of a group, finished exactly once.

use std::fmt;
use std::sync::Arc;

use super::core::Core;
use super::results::Outcome;

/// One operation of a [`CallGroup`](super::CallGroup): its message, and the
/// right to record its outcome.
///
/// Move it into the task that does the work and call [`finish`](Self::finish)
/// there. `finish` consumes the op, so an operation is finished at most once by
/// construction; if the op is dropped without being finished — the task
/// returned early, was cancelled or panicked — the operation is recorded as
/// [`Outcome::Abandoned`]. Either way it is finished exactly once, and the
/// group never waits for an op that no longer exists.
///
/// `M` is the message, `R` the result and `E` the error of the operation.
#[must_use = "an Op dropped without `finish` is recorded as abandoned"]
pub struct Op<M, R, E> {
    msg: M,
    handle: Handle<R, E>,
}

/// The finishing half of an [`Op`], which records `Abandoned` when dropped
/// unused. Kept apart from the message so that an op can be taken apart.
struct Handle<R, E> {
    /// `None` once the outcome was recorded.
    core: Option<Arc<Core<R, E>>>,
    pos: usize,
}

impl<R, E> Handle<R, E> {
    fn record(&mut self, outcome: Outcome<R, E>) {
        if let Some(core) = self.core.take() {
            core.finish(self.pos, outcome);
        }
    }
}

impl<R, E> Drop for Handle<R, E> {
    fn drop(&mut self) {
        self.record(Outcome::Abandoned);
    }
}

impl<M, R, E> Op<M, R, E> {
    pub(crate) fn new(msg: M, core: Arc<Core<R, E>>, pos: usize) -> Self {
        Op {
            msg,
            handle: Handle {
                core: Some(core),
                pos,
            },
        }
    }

    /// The operation's message.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// let op = group.add(1, "fetch /users/1").unwrap();
    /// assert_eq!(*op.msg(), "fetch /users/1");
    /// # op.finish(Ok(()));
    /// ```
    pub fn msg(&self) -> &M {
        &self.msg
    }

    /// The operation's message, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// let mut op = group.add(1, vec![1, 2]).unwrap();
    /// op.msg_mut().push(3);
    /// assert_eq!(op.msg(), &[1, 2, 3]);
    /// # op.finish(Ok(()));
    /// ```
    pub fn msg_mut(&mut self) -> &mut M {
        &mut self.msg
    }

    /// The operation's position in the group: `0` for the first op added, and
    /// the index of its outcome in [`Results::outcomes`](super::Results::outcomes).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<&str, (), ()>::new();
    /// let a = group.add("a", ()).unwrap();
    /// let b = group.add("b", ()).unwrap();
    /// assert_eq!((a.index(), b.index()), (0, 1));
    /// # a.finish(Ok(()));
    /// # b.finish(Ok(()));
    /// ```
    pub fn index(&self) -> usize {
        self.handle.pos
    }

    /// Takes the message out, leaving an op that can still be finished.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, usize, ()>::new();
    /// let op = group.add(1, String::from("hello")).unwrap();
    /// let (msg, op) = op.into_msg();
    /// op.finish(Ok(msg.len()));
    /// assert_eq!(group.wait().await.get(&1).unwrap().clone().ok(), Some(5));
    /// # }
    /// ```
    pub fn into_msg(self) -> (M, Op<(), R, E>) {
        let Op { msg, handle } = self;
        (msg, Op { msg: (), handle })
    }

    /// Records the operation's result or error, consuming the op.
    ///
    /// If this was the last operation running and the group is sealed, the
    /// group completes here: an [`on_complete`](super::CallGroup::on_complete)
    /// callback runs on this thread, before `finish` returns. If the group
    /// already timed out or was dropped, the result is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, u32, String>::new();
    /// let op = group.add(7, 20).unwrap();
    /// tokio::spawn(async move {
    ///     let doubled = op.msg() * 2;
    ///     op.finish(Ok(doubled));
    /// });
    /// assert_eq!(group.wait().await.get(&7), Some(&Outcome::Ok(40)));
    /// # }
    /// ```
    pub fn finish(self, result: Result<R, E>) {
        let Op { msg, mut handle } = self;
        // The message is the caller's: drop it before completion may run the
        // group's callback, so a completion never waits on it.
        drop(msg);
        handle.record(result.into());
    }

    /// Whether no one will look at this operation's outcome any more: the
    /// group's deadline passed, or the group (or the future waiting for it)
    /// was dropped. A long operation can check this to stop early.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// let op = group.add(1, ()).unwrap();
    /// assert!(!op.is_closed());
    /// drop(group); // no one will look at the outcome
    /// assert!(op.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.handle
            .core
            .as_ref()
            .is_none_or(|core| core.is_closed())
    }
}

impl<M: fmt::Debug, R, E> fmt::Debug for Op<M, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("index", &self.handle.pos)
            .field("msg", &self.msg)
            .finish()
    }
}
