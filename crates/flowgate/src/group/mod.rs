//! Scatter/gather with a completion: add operations to a group, finish each
//! one from wherever it runs, and get every result by id once the last one is
//! done.
//!
//! ```text
//!             add(id 0, msg) ──> Op ──> task ──finish(Ok(r))──┐
//!  CallGroup  add(id 1, msg) ──> Op ──> task ──finish(Err(e))─┼──> Results { 0: Ok, 1: Err,
//!             add(id 2, msg) ──> Op ──> task ──(dropped)──────┘               2: Abandoned }
//!     │                                                            │
//!     └── wait().await / on_complete(f) ── seals the group ────────┘ completes once
//! ```
//!
//! A [`CallGroup`] is a map/reduce in miniature: [`add`](CallGroup::add) maps
//! out operations as [`Op`] handles that you move into tasks (or send to
//! workers), and the completion — [`wait`](CallGroup::wait) or
//! [`on_complete`](CallGroup::on_complete) — is the reduce step, receiving
//! [`Results`] with the [`Outcome`] of every operation.
//!
//! # Example
//!
//! ```
//! use flowgate::group::CallGroup;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut group = CallGroup::new();
//! for (id, text) in ["1:2", "5:6:7"].into_iter().enumerate() {
//!     let op = group.add(id, text).expect("ids are unique");
//!     tokio::spawn(async move {
//!         let sum: Result<u32, std::num::ParseIntError> =
//!             op.msg().split(':').map(str::parse::<u32>).sum();
//!         op.finish(sum);
//!     });
//! }
//! // Work may already be finishing while we add; the group completes only
//! // once it is sealed, here by `wait`.
//! let results = group.wait().await;
//! let total: u32 = results.into_iter().filter_map(|(_, o)| o.ok()).sum();
//! assert_eq!(total, 21);
//! # }
//! ```
//!
//! # Exactly once, and no starting line
//!
//! - Every operation is finished exactly once. [`Op::finish`] consumes the op,
//!   so it cannot be called twice; an op dropped unfinished (its task returned
//!   early, was cancelled or panicked) is recorded as [`Outcome::Abandoned`].
//!   No group ever waits for an op that no longer exists.
//! - The completion runs once, after every operation added has finished. It
//!   can only be asked for by consuming the group ([`wait`](CallGroup::wait),
//!   `.await` on the group, or [`on_complete`](CallGroup::on_complete)), and
//!   that seals it. The seed needed a "starting line" so that fast operations
//!   could not complete the group while the loop was still adding; here that
//!   race cannot be written: while you can still call `add`, nothing can
//!   complete.
//! - Ids are unique within a group: adding an id twice is an [`AddError`] that
//!   hands the id and message back. Ids are kept once, in add order, with a
//!   [foldhash](https://docs.rs/foldhash) index for lookups by id.
//!
//! # Deadline
//!
//! A group given a deadline with [`set_timeout`](CallGroup::set_timeout) or
//! [`set_deadline`](CallGroup::set_deadline) completes at the deadline at
//! the latest: the operations still running get [`Outcome::TimedOut`], their
//! later `finish` is ignored, and [`Op::is_closed`] tells them to stop. This is
//! the "wait for multiple results, but not forever" of the pipeline notes,
//! without a global map and a sweeper. The deadline is measured with tokio's
//! clock, so tests can pause time.
//!
//! # Dropping
//!
//! Dropping a group before sealing it, or dropping its [`Wait`] before it
//! resolves, gives up the group: results are dropped as they arrive and
//! [`Op::is_closed`] returns true. Running operations are not cancelled — they
//! are yours.
//!
//! # Metrics
//!
//! A group named with [`CallGroup::name`] records, with the `metrics`
//! feature, the `flowgate_group_*` series listed in [`crate::metrics`]:
//! operations added, finished by `outcome`, finished too late, in flight;
//! groups finished by `outcome`; and how long a group took. Each operation
//! costs two handle updates when added and two when finished. A group that
//! times out, or completes with abandoned operations, is logged once at
//! `warn`; a panicking completion callback at `error`.
//!
//! # Which one should I use?
//!
//! | you want | use |
//! |---|---|
//! | results by id of work you hand out, finished from anywhere (tasks, worker pools, callbacks, other processes' replies), with abandoned/timed-out detection | [`CallGroup`] |
//! | to spawn futures and collect their outputs in completion order | [`tokio::task::JoinSet`] |
//! | to run many futures concurrently in one task | `futures::stream::FuturesUnordered` |
//! | to write many items in batches and acknowledge each one | [`Batcher`](crate::batch::Batcher) |
//!
//! A `CallGroup` does not spawn anything: an [`Op`] is a plain value, so it can
//! travel through a channel to a long-lived worker, be finished by a callback,
//! or be finished synchronously. That is also why it is cheap: see
//! `BENCHMARKS.md` for it against `JoinSet`.
//!
//! What it costs, measured (1,000,000 ops in groups of 100 on a 2-worker
//! runtime, the gathering code in a task): the group's own bookkeeping is
//! 40–50 ns per op; with a task spawned per op it is 1.21–1.38× as fast as
//! a `JoinSet`, whose extra work per spawn is all the margin there is; with
//! the ops handed to long-lived workers, 3.5–4× (7.5–8× with each worker
//! sent its share as one `Vec`). One case goes the other way: gathering
//! small spawned ops on the thread that called `block_on` (the body of
//! `#[tokio::main]`) rather than in a task. That thread sleeps until the
//! group's last op wakes it, and every spawn from it wakes a parked worker;
//! a `JoinSet`, woken per finished task, was 1.04–1.28× faster there. Spawn
//! the gathering code as a task when ops are small.
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`wait`](CallGroup::wait) / `group.await` ([`Wait`]) | re-polling `&mut wait`: yes | dropping the `Wait` gives up the group's results |

mod core;
mod error;
mod observe;
mod op;
mod results;
mod wait;

use std::borrow::Borrow;
use std::fmt;
use std::future::IntoFuture;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use self::error::{AddError, OpError, SetDeadlineError};
pub use self::op::Op;
pub use self::results::{IntoIter, Iter, Outcome, Results};
pub use self::wait::Wait;

use self::core::Core;
use self::results::IdIndex;
use self::wait::Deadline;
use crate::telemetry::Name;

/// A group of operations whose completion runs once, with every result by
/// id, after the last one finished; see the [module documentation](self).
///
/// `Id` identifies an operation within the group, `R` is its result and `E` its
/// error. Messages are chosen per [`add`](Self::add) call.
pub struct CallGroup<Id, R, E> {
    ids: IdIndex<Id>,
    core: Detach<R, E>,
    deadline: Option<Deadline>,
}

/// Gives the group up when the `CallGroup` is dropped unsealed.
struct Detach<R, E>(Option<Arc<Core<R, E>>>);

impl<R, E> Detach<R, E> {
    fn core(&self) -> &Arc<Core<R, E>> {
        self.0
            .as_ref()
            .expect("a CallGroup's core is taken only when sealed")
    }

    fn into_core(mut self) -> Arc<Core<R, E>> {
        self.0
            .take()
            .expect("a CallGroup's core is taken only when sealed")
    }
}

impl<R, E> Drop for Detach<R, E> {
    fn drop(&mut self) {
        if let Some(core) = self.0.take() {
            core.detach();
        }
    }
}

impl<Id, R, E> CallGroup<Id, R, E>
where
    Id: Hash + Eq,
{
    /// Creates an empty group with no deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let group = CallGroup::<u64, String, std::io::Error>::new();
    /// assert!(group.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Creates an empty group with room for `capacity` operations before it
    /// reallocates.
    ///
    /// `capacity` is a hint: room that cannot be allocated (as for
    /// `usize::MAX`) is not taken, and the group grows as operations are
    /// added. It never bounds the number of operations.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u64, (), ()>::with_capacity(100);
    /// for id in 0..100 {
    ///     group.add(id, ()).unwrap().finish(Ok(()));
    /// }
    /// assert_eq!(group.len(), 100);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        CallGroup {
            ids: IdIndex::with_capacity(capacity),
            core: Detach(Some(Arc::new(Core::new(capacity)))),
            deadline: None,
        }
    }

    /// Names the group: with the `metrics` feature, its series are recorded
    /// with the label `name="…"` (any string is accepted as given). Groups
    /// made per request can share one name; their series add up. An unnamed
    /// group records nothing and reads no clock.
    ///
    /// Name it before adding operations (any still running are counted as
    /// added when it is named). Naming registers the series with the
    /// recorder: one look-up per series, for every group named.
    ///
    /// It enables `flowgate_group_ops_added_total`,
    /// `flowgate_group_ops_finished_total{outcome="ok"|"error"|"abandoned"|"timed_out"}`,
    /// `flowgate_group_ops_late_total`, `flowgate_group_ops_in_flight`,
    /// `flowgate_group_groups_finished_total{outcome="complete"|"timed_out"|"dropped"}`
    /// and `flowgate_group_duration_seconds` (from the first operation added
    /// to completion or the deadline, on tokio's clock); see
    /// [`crate::metrics`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, u32, ()>::new().name("fan-out");
    /// let op = group.add(1, 20).unwrap();
    /// op.finish(Ok(40)); // counted as outcome="ok"
    /// assert_eq!(group.wait().await.get(&1).unwrap().clone().ok(), Some(40));
    /// # }
    /// ```
    pub fn name(self, name: impl Into<String>) -> Self {
        self.core.core().set_name(Name::new(name));
        self
    }

    /// Sets the group's deadline `timeout` from now; see
    /// [`set_deadline`](Self::set_deadline).
    ///
    /// `Duration::ZERO` is a deadline that has already passed: the group
    /// completes at its first poll, with every unfinished operation
    /// [`Outcome::TimedOut`]. A timeout too long for an `Instant`, up to
    /// `Duration::MAX`, never passes: the group then has no deadline (one set
    /// before is cleared).
    ///
    /// # Errors
    ///
    /// [`SetDeadlineError::NoRuntime`] if called outside a tokio runtime; the group
    /// is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// group.set_timeout(Duration::from_millis(100)).unwrap();
    /// let _slow = group.add(1, ()).unwrap();
    /// let results = group.wait().await;
    /// assert_eq!(results.get(&1), Some(&Outcome::TimedOut));
    /// # }
    /// ```
    ///
    /// Outside a tokio runtime there is no timer:
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::group::{CallGroup, SetDeadlineError};
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// let err = group.set_timeout(Duration::from_secs(1)).unwrap_err();
    /// assert_eq!(err, SetDeadlineError::NoRuntime);
    /// ```
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), SetDeadlineError> {
        match Instant::now().checked_add(timeout) {
            Some(at) => self.set_deadline(at),
            // Too long for an `Instant`: never, so no deadline at all.
            None => {
                tokio::runtime::Handle::try_current().map_err(|_| SetDeadlineError::NoRuntime)?;
                self.deadline = None;
                Ok(())
            }
        }
    }

    /// Sets (or moves) the group's deadline: once it passes, the group
    /// completes and the operations still running get [`Outcome::TimedOut`].
    ///
    /// It can be set at any time before the group is sealed. The deadline
    /// runs on tokio's clock in the current runtime, which must have its time
    /// driver enabled.
    ///
    /// # Errors
    ///
    /// [`SetDeadlineError::NoRuntime`] if called outside a tokio runtime; the group
    /// is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// group.set_timeout(Duration::from_secs(1)).unwrap();
    /// group.add(1, ()).unwrap().finish(Ok(()));
    /// let slow = group.add(2, ()).unwrap(); // never finished in time
    /// let results = group.wait().await;
    /// assert_eq!(results.get(&1), Some(&Outcome::Ok(())));
    /// assert_eq!(results.get(&2), Some(&Outcome::TimedOut));
    /// assert!(slow.is_closed());
    /// # }
    /// ```
    pub fn set_deadline(&mut self, deadline: Instant) -> Result<(), SetDeadlineError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| SetDeadlineError::NoRuntime)?;
        self.deadline = Some(Deadline {
            at: deadline,
            runtime,
        });
        Ok(())
    }

    /// Adds an operation under `id` carrying `msg`, and returns its [`Op`] to
    /// be finished from wherever the work runs.
    ///
    /// # Errors
    ///
    /// [`AddError`] with the id and the message if the group already has an
    /// operation under `id`; the group is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u64, (), ()>::new();
    /// let op = group.add(1, "first").unwrap();
    /// let err = group.add(1, "second").unwrap_err();
    /// assert_eq!(err.into_inner(), (1, "second"));
    /// assert_eq!(group.len(), 1);
    /// # drop(op);
    /// ```
    pub fn add<M>(&mut self, id: Id, msg: M) -> Result<Op<M, R, E>, AddError<Id, M>> {
        match self.ids.insert(id) {
            Ok(_) => {
                let core = self.core.core();
                let pos = core.register();
                Ok(Op::new(msg, Arc::clone(core), pos))
            }
            Err(id) => Err(AddError { id, msg }),
        }
    }

    /// Whether the group has an operation under `id`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<String, (), ()>::new();
    /// let _op = group.add("a".to_owned(), ()).unwrap();
    /// assert!(group.contains("a"));
    /// assert!(!group.contains("b"));
    /// ```
    pub fn contains<Q>(&self, id: &Q) -> bool
    where
        Id: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.ids.position(id).is_some()
    }
}

impl<Id, R, E> CallGroup<Id, R, E> {
    /// How many operations were added.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// group.add(1, ()).unwrap().finish(Ok(()));
    /// let _running = group.add(2, ()).unwrap();
    /// assert_eq!(group.len(), 2); // finished or not
    /// ```
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no operation was added.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// assert!(group.is_empty());
    /// group.add(1, ()).unwrap().finish(Ok(()));
    /// assert!(!group.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ids.len() == 0
    }

    /// How many operations have not finished yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// group.add(1, ()).unwrap().finish(Ok(()));
    /// let running = group.add(2, ()).unwrap();
    /// assert_eq!(group.remaining(), 1);
    /// running.finish(Ok(()));
    /// assert_eq!(group.remaining(), 0);
    /// ```
    pub fn remaining(&self) -> usize {
        self.core.core().running()
    }

    /// Seals the group and returns a future resolving to its [`Results`] once
    /// every operation has finished (or the deadline passed). `group.await`
    /// does the same.
    ///
    /// An empty group resolves at once with empty results.
    ///
    /// # Cancel safety
    ///
    /// See [`Wait`]: re-polling is safe; dropping the `Wait` gives up the
    /// results.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, u32, String>::new();
    /// for id in 0..3 {
    ///     let op = group.add(id, id).unwrap();
    ///     tokio::spawn(async move {
    ///         let square = op.msg() * op.msg();
    ///         op.finish(Ok(square));
    ///     });
    /// }
    /// let results = group.await; // same as group.wait().await
    /// assert!(results.all_ok());
    /// assert_eq!(results.get(&2), Some(&Outcome::Ok(4)));
    /// # }
    /// ```
    pub fn wait(self) -> Wait<Id, R, E> {
        let CallGroup {
            ids,
            core,
            deadline,
        } = self;
        Wait::new(core.into_core(), ids, deadline)
    }

    /// Seals the group and calls `callback` once with its [`Results`] when
    /// every operation has finished (or the deadline passed).
    ///
    /// The callback runs on whichever thread completes the group: inside the
    /// last [`Op::finish`] (or the last op's drop), on this thread if nothing
    /// is running, or on the runtime's timer task at the deadline. Keep it
    /// short, or hand the results to a channel. A panic in the callback is
    /// caught and logged with `tracing`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    /// use tokio::sync::oneshot;
    ///
    /// let mut group = CallGroup::<u32, u32, ()>::new();
    /// let ops: Vec<_> = (1..=3).map(|id| group.add(id, ()).unwrap()).collect();
    ///
    /// let (tx, rx) = oneshot::channel();
    /// group.on_complete(move |results| {
    ///     let total: u32 = results.into_iter().filter_map(|(_, o)| o.ok()).sum();
    ///     let _ = tx.send(total);
    /// });
    /// for op in ops {
    ///     let value = (op.index() as u32 + 1) * 10;
    ///     op.finish(Ok(value));
    /// }
    /// assert_eq!(rx.await.unwrap(), 60);
    /// # }
    /// ```
    pub fn on_complete<F>(self, callback: F)
    where
        F: FnOnce(Results<Id, R, E>) + Send + 'static,
        Id: Send + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let CallGroup {
            ids,
            core,
            deadline,
        } = self;
        let core = core.into_core();
        let waiting = core.seal_callback(Box::new(move |outcomes| {
            callback(Results::new(ids, outcomes));
        }));
        if let (true, Some(deadline)) = (waiting, deadline) {
            let timer = {
                let core = Arc::clone(&core);
                deadline.runtime.spawn(async move {
                    tokio::time::sleep_until(deadline.at).await;
                    core.expire_callback();
                })
            };
            core.set_timer(timer.abort_handle());
        }
    }
}

impl<Id: Hash + Eq, R, E> Default for CallGroup<Id, R, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Id, R, E> IntoFuture for CallGroup<Id, R, E> {
    type Output = Results<Id, R, E>;
    type IntoFuture = Wait<Id, R, E>;

    /// Seals the group; see [`CallGroup::wait`].
    ///
    /// # Cancel safety
    ///
    /// As [`Wait`]: re-polling is safe; dropping it gives up the results.
    fn into_future(self) -> Wait<Id, R, E> {
        self.wait()
    }
}

impl<Id, R, E> fmt::Debug for CallGroup<Id, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallGroup")
            .field("len", &self.len())
            .field("remaining", &self.remaining())
            .field("deadline", &self.deadline.as_ref().map(|d| d.at))
            .finish()
    }
}
