//! The writing end shared by every publisher type: it owns the tail block.

use std::fmt;
use std::task::{Context, Poll};

use super::block::Tail;
use super::observe::Metrics;
use super::shared::Shared;
use crate::loom::lock;
use crate::loom::sync::Arc;
use crate::telemetry::Name;

pub(crate) struct Writer<T> {
    tail: Tail<T>,
    pub(crate) shared: Arc<Shared<T>>,
    /// A lower bound of every live subscriber's position (bounded streams):
    /// positions only grow and new subscribers start at or after it, so the
    /// publisher may run `bound` events past it without looking again.
    min_pos: u64,
    /// The owning publisher's entry among the room waiters.
    room_key: Option<usize>,
    closed: bool,
    /// Events already added to the `events_published` counter. The counter
    /// is brought up to date by [`report`](Self::report) a block at a time
    /// and whenever the publisher wakes someone or waits, never per event.
    reported: u64,
}

impl<T> Writer<T> {
    pub(crate) fn new(bound: Option<u64>, name: Name) -> Self {
        let metrics = Metrics::new(name);
        let tail = Tail::new(metrics.buffered.clone());
        let shared = Arc::new(Shared::new(tail.pointer(), bound, metrics));
        Writer {
            tail,
            shared,
            min_pos: 0,
            room_key: None,
            closed: false,
            reported: 0,
        }
    }

    /// Brings the `events_published` counter up to date. Called once per
    /// block, when waiting subscribers are woken, when the publisher finds no
    /// room, and at close: so the counter lags by less than a block only
    /// while every subscriber is busy reading.
    fn report(&mut self) {
        let published = self.published();
        self.shared.metrics.published.add(published - self.reported);
        self.reported = published;
    }

    /// Events published so far.
    pub(crate) fn published(&self) -> u64 {
        self.tail.pushed()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Appends `value`, without regard to the bound. Wakes waiting subscribers.
    pub(crate) fn push(&mut self, value: T) {
        debug_assert!(!self.closed, "broadcast: push after close");
        let pushed = self.tail.push(value);
        if pushed.wake {
            self.shared.readers.wake_all();
        }
        if pushed.new_block {
            // Once per block. Until this, a new subscriber starts at the end
            // of the full block, which is the same position.
            *lock(&self.shared.tail) = self.tail.pointer();
        }
        if pushed.wake || pushed.new_block {
            // Beside a wake-up or a lock: not on the per-event path.
            self.report();
        }
    }

    /// Whether one more event fits within the bound, without waiting.
    pub(crate) fn has_room(&mut self) -> bool {
        let Some(bound) = self.shared.bound else {
            return true;
        };
        let published = self.published();
        if published - self.min_pos < bound {
            return true;
        }
        self.min_pos = self.shared.min_position(published, bound, false);
        if published - self.min_pos < bound {
            return true;
        }
        self.report();
        false
    }

    /// Waits until one more event fits within the bound. `key` is the caller's
    /// entry among the room waiters; the caller removes it when it goes away.
    pub(crate) fn poll_room(&mut self, cx: &mut Context<'_>, key: &mut Option<usize>) -> Poll<()> {
        if self.closed || self.has_room() {
            return Poll::Ready(());
        }
        let bound = self.shared.bound.unwrap_or(u64::MAX);
        // Register, then mark the subscribers that hold us back and look
        // again: a subscriber that moves after being marked wakes us, one
        // that moved before is seen by the second look.
        self.shared.room.register(key, cx.waker());
        let published = self.published();
        self.min_pos = self.shared.min_position(published, bound, true);
        if published - self.min_pos < bound {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// [`poll_room`](Self::poll_room) for the writer's own publisher, with
    /// the writer's own entry among the room waiters.
    pub(crate) fn poll_own_room(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut key = self.room_key.take();
        let polled = self.poll_room(cx, &mut key);
        self.room_key = key;
        polled
    }

    /// Closes the stream: subscribers read what was published, then the end.
    /// Wakes every waiting subscriber and publisher.
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.report();
        self.tail.close();
        self.shared.readers.wake_all();
        self.shared.room.wake_all();
    }
}

impl<T> Drop for Writer<T> {
    fn drop(&mut self) {
        self.shared.room.remove(&mut self.room_key);
        self.close();
    }
}

impl<T> fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("published", &self.published())
            .field("closed", &self.closed)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}
