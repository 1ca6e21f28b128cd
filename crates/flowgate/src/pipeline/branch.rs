//! [`branch`](super::PipelineExt::branch),
//! [`partition`](super::PipelineExt::partition) and
//! [`split_results`](super::PipelineExt::split_results): one stream into two.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_core::stream::{FusedStream, Stream};
use futures_util::future::Either;
use futures_util::stream::{Fuse, StreamExt};

use super::BUDGET;
use crate::sync::lock;

/// Items routed to one side and not yet taken by it.
struct Queue<T> {
    items: VecDeque<T>,
    /// The side's task, when it waits for an item or for room.
    waker: Option<Waker>,
    /// The side's `Branch` was dropped: its items are discarded.
    gone: bool,
}

impl<T> Queue<T> {
    fn new() -> Self {
        Queue {
            items: VecDeque::new(),
            waker: None,
            gone: false,
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

struct State<S, F, L, R> {
    stream: Pin<Box<Fuse<S>>>,
    route: F,
    capacity: usize,
    left: Queue<L>,
    right: Queue<R>,
}

/// One side's view of the shared state: `Own` is its item type, `Other` the
/// other side's.
trait SideOf<S, F, L, R> {
    type Own;
    type Other;
    fn queues(state: &mut State<S, F, L, R>) -> (&mut Queue<Self::Own>, &mut Queue<Self::Other>);
    fn split(either: Either<L, R>) -> Either<Self::Own, Self::Other>;
}

struct LeftSide;
struct RightSide;

impl<S, F, L, R> SideOf<S, F, L, R> for LeftSide {
    type Own = L;
    type Other = R;
    fn queues(state: &mut State<S, F, L, R>) -> (&mut Queue<L>, &mut Queue<R>) {
        (&mut state.left, &mut state.right)
    }
    fn split(either: Either<L, R>) -> Either<L, R> {
        either
    }
}

impl<S, F, L, R> SideOf<S, F, L, R> for RightSide {
    type Own = R;
    type Other = L;
    fn queues(state: &mut State<S, F, L, R>) -> (&mut Queue<R>, &mut Queue<L>) {
        (&mut state.right, &mut state.left)
    }
    fn split(either: Either<L, R>) -> Either<R, L> {
        match either {
            Either::Left(left) => Either::Right(left),
            Either::Right(right) => Either::Left(right),
        }
    }
}

/// A side of a split stream, type-erased so both halves are a `Branch<T>`.
trait Source<T>: Send + Sync {
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<T>>;
    fn size_hint(&self) -> (usize, Option<usize>);
    fn is_terminated(&self) -> bool;
    fn close(&self);
}

struct Handle<S, F, L, R, Side> {
    state: Arc<Mutex<State<S, F, L, R>>>,
    side: PhantomData<fn() -> Side>,
}

impl<S, F, L, R, Side> Source<Side::Own> for Handle<S, F, L, R, Side>
where
    S: Stream + Send,
    F: FnMut(S::Item) -> Either<L, R> + Send,
    L: Send,
    R: Send,
    Side: SideOf<S, F, L, R>,
{
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Side::Own>> {
        let mut guard = lock(&self.state);
        let state = &mut *guard;

        // 1. An item already routed to this side.
        {
            let (own, other) = Side::queues(state);
            if let Some(item) = own.items.pop_front() {
                // The other side may wait for room in this queue.
                other.wake();
                return Poll::Ready(Some(item));
            }
        }

        // 2. Pull from upstream, routing the other side's items to it.
        for _ in 0..BUDGET {
            let capacity = state.capacity;
            let (own, other) = Side::queues(state);
            if !other.gone && other.items.len() >= capacity {
                // The other side is not keeping up: wait for it to make room.
                own.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            match state.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => match Side::split((state.route)(item)) {
                    Either::Left(mine) => return Poll::Ready(Some(mine)),
                    Either::Right(theirs) => {
                        let (_, other) = Side::queues(state);
                        if !other.gone {
                            other.items.push_back(theirs);
                            other.wake();
                        }
                    }
                },
                Poll::Ready(None) => {
                    // Let the other side see the end too.
                    let (_, other) = Side::queues(state);
                    other.wake();
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    // Upstream holds this task's waker now; this side routes
                    // whatever comes next.
                    let (own, _) = Side::queues(state);
                    own.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
        // Many items in a row for the other side: let other tasks run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let upper = state.stream.size_hint().1;
        let (own, _) = Side::queues(state);
        let held = own.items.len();
        (held, upper.and_then(|upper| upper.checked_add(held)))
    }

    fn is_terminated(&self) -> bool {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let done = state.stream.is_done();
        let (own, _) = Side::queues(state);
        done && own.items.is_empty()
    }

    fn close(&self) {
        let mut guard = lock(&self.state);
        let (own, other) = Side::queues(&mut guard);
        own.gone = true;
        own.items.clear();
        own.waker = None;
        // The other side may wait for room here, or rely on this side to
        // poll upstream: it takes over.
        other.wake();
    }
}

/// One half of a stream split by [`branch`](super::PipelineExt::branch),
/// [`partition`](super::PipelineExt::partition) or
/// [`split_results`](super::PipelineExt::split_results).
///
/// Whichever half is polled pulls from the shared upstream and queues the
/// other half's items for it, up to the capacity given at the split; when
/// that queue is full, the half that pulls waits for the other to catch up.
/// Poll both halves concurrently (separate tasks, `join!`, `select!`), or
/// one of them stops. Dropping a half discards the items routed to it from
/// then on, and the other half goes on alone.
#[must_use = "streams do nothing unless polled"]
pub struct Branch<T> {
    source: Box<dyn Source<T>>,
}

impl<T> Branch<T> {
    #[track_caller]
    pub(super) fn pair<S, F, L, R>(stream: S, capacity: usize, route: F) -> (Branch<L>, Branch<R>)
    where
        S: Stream + Send + 'static,
        F: FnMut(S::Item) -> Either<L, R> + Send + 'static,
        L: Send + 'static,
        R: Send + 'static,
    {
        assert!(capacity > 0, "branch: capacity must be at least 1");
        let state = Arc::new(Mutex::new(State {
            stream: Box::pin(stream.fuse()),
            route,
            capacity,
            left: Queue::new(),
            right: Queue::new(),
        }));
        let left = Handle {
            state: Arc::clone(&state),
            side: PhantomData::<fn() -> LeftSide>,
        };
        let right = Handle {
            state,
            side: PhantomData::<fn() -> RightSide>,
        };
        (
            Branch {
                source: Box::new(left),
            },
            Branch {
                source: Box::new(right),
            },
        )
    }
}

impl<T> Stream for Branch<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.source.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.size_hint()
    }
}

impl<T> FusedStream for Branch<T> {
    fn is_terminated(&self) -> bool {
        self.source.is_terminated()
    }
}

impl<T> Drop for Branch<T> {
    fn drop(&mut self) {
        self.source.close();
    }
}

impl<T> fmt::Debug for Branch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Branch")
            .field("queued", &self.source.size_hint().0)
            .finish_non_exhaustive()
    }
}
