//! A FIFO list of parked tasks, kept under the queue's own lock.
//!
//! Each waiting future remembers the id it registered under, so that a
//! re-poll updates its waker in place and a drop can unlink it. A waiter that
//! was woken is no longer in the list; a future that finds itself missing on
//! drop knows it consumed a wake-up and passes it on.

use std::collections::VecDeque;
use std::task::Waker;

#[derive(Debug, Default)]
pub(crate) struct WaitList {
    waiters: VecDeque<(u64, Waker)>,
    next_id: u64,
}

impl WaitList {
    /// Parks `waker` under `slot`'s id, or updates it if still parked.
    pub(crate) fn register(&mut self, slot: &mut Option<u64>, waker: &Waker) {
        if let Some(id) = *slot
            && let Some((_, stored)) = self.waiters.iter_mut().find(|(w, _)| *w == id)
        {
            if !stored.will_wake(waker) {
                stored.clone_from(waker);
            }
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiters.push_back((id, waker.clone()));
        *slot = Some(id);
    }

    /// Unlinks the waiter `id`; `false` if it was already woken.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        match self.waiters.iter().position(|(w, _)| *w == id) {
            Some(pos) => {
                self.waiters.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Takes the longest-waiting waker.
    pub(crate) fn pop(&mut self) -> Option<Waker> {
        self.waiters.pop_front().map(|(_, waker)| waker)
    }

    /// Takes every waker.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.waiters.drain(..).map(|(_, waker)| waker).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}
