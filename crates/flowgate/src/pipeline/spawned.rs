//! [`spawned`]: the spawned mode of `par_map`, `par_map_unordered` and
//! `par_map_keyed` — each call a tokio task, so CPU-heavy calls use every
//! worker thread.

use std::fmt;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

/// Wraps an async function so that every call runs as its own tokio task.
///
/// Pass it where `par_map`, `par_map_unordered`, `par_map_keyed` or
/// `par_map_keyed_unordered` take their function:
/// `stream.par_map(n, spawned(|x| async move { work(x) }))`. The stage is
/// the same — at most `n` calls at once, outputs in the same order, held in
/// the same bounded window — but the calls run in parallel on the runtime's
/// worker threads instead of on the task that polls the stream. Without it,
/// every call is polled by the consumer's task, so CPU-bound calls share one
/// core (see [Fan-out and fan-in](super#fan-out-and-fan-in)).
///
/// What stays as it is without `spawned`:
///
/// - **Panics propagate.** A call that panics makes the stage panic, in the
///   task polling it, with the call's own payload, when its output is due.
/// - **Cancellation propagates.** Dropping the stream (or the [`Spawned`]
///   future of a call) aborts the call's task; no call outlives the stage.
/// - **Order and limits.** Each call's task is spawned when the stage starts
///   the call, so the stage's limits bound the tasks alive at once.
///
/// The future `f` returns must be `Send + 'static` (it moves to another
/// thread), as must its output. On a `current_thread` runtime the calls
/// still run as tasks, interleaved with the consumer, on one thread.
///
/// # Panics
///
/// Calling the wrapped function outside a tokio runtime panics, as
/// [`tokio::spawn`] does. Awaiting a [`Spawned`] call whose task was
/// cancelled by the runtime shutting down panics with
/// `"spawned: the call's task was cancelled (the runtime is shutting down)"`.
///
/// # Examples
///
/// ```
/// use flowgate::pipeline::spawned;
/// use flowgate::prelude::*;
/// use futures_util::{stream, StreamExt};
///
/// fn checksum(n: u64) -> u64 {
///     (0..10_000u64).fold(n, |acc, i| acc.rotate_left(5) ^ i)
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let sums: Vec<u64> = stream::iter(0..100u64)
///     .par_map(8, spawned(|n| async move { checksum(n) }))
///     .collect()
///     .await;
/// assert_eq!(sums, (0..100).map(checksum).collect::<Vec<_>>());
/// # }
/// ```
pub fn spawned<T, F, Fut>(mut f: F) -> impl FnMut(T) -> Spawned<Fut::Output>
where
    F: FnMut(T) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    move |item| Spawned {
        task: tokio::spawn(f(item)),
    }
}

/// One call of a [`spawned`] function: the output of its task.
///
/// Resolves with the call's output; resumes the call's panic if it
/// panicked. Dropping it aborts the task.
///
/// # Examples
///
/// ```
/// use flowgate::pipeline::spawned;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut double = spawned(|x: u32| async move { x * 2 });
/// assert_eq!(double(21).await, 42);
/// # }
/// ```
#[must_use = "a Spawned call's task is aborted when it is dropped"]
pub struct Spawned<T> {
    task: JoinHandle<T>,
}

impl<T> Future for Spawned<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match std::task::ready!(Pin::new(&mut self.task).poll(cx)) {
            Ok(output) => Poll::Ready(output),
            Err(error) => match error.try_into_panic() {
                Ok(payload) => panic::resume_unwind(payload),
                // Only the runtime cancels the task (this future aborts it
                // only when dropped, and then is not polled again).
                Err(_) => {
                    panic!("spawned: the call's task was cancelled (the runtime is shutting down)")
                }
            },
        }
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> fmt::Debug for Spawned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawned")
            .field("finished", &self.task.is_finished())
            .finish()
    }
}
