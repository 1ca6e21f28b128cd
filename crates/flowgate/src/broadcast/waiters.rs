//! A registry of wakers, one entry per waiting party, woken all at once.

use std::fmt;
use std::task::Waker;

use slab::Slab;

use crate::loom::lock;
use crate::loom::sync::Mutex;

/// Wakers to wake outside the lock, a batch at a time (as tokio's `WakeList`).
const BATCH: usize = 32;

/// Parties waiting for something, each with a stable key: a party re-registers
/// into its own entry instead of piling up wakers, and removes its entry when
/// it goes away, so the registry never holds more than one entry per live
/// party however long nothing happens.
pub(crate) struct Waiters {
    list: Mutex<Slab<Option<Waker>>>,
}

impl Waiters {
    pub(crate) fn new() -> Self {
        Waiters {
            list: Mutex::new(Slab::new()),
        }
    }

    /// Registers `waker` under `key`, allocating the key on first use.
    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker) {
        let mut list = lock(&self.list);
        match key.and_then(|k| list.get_mut(k)) {
            Some(Some(current)) if current.will_wake(waker) => {}
            Some(entry) => *entry = Some(waker.clone()),
            None => *key = Some(list.insert(Some(waker.clone()))),
        }
    }

    /// Removes the entry of `key`, if it has one.
    pub(crate) fn remove(&self, key: &mut Option<usize>) {
        if let Some(k) = key.take() {
            lock(&self.list).try_remove(k);
        }
    }

    /// Wakes every registered waker. Entries stay (empty) for their parties
    /// to register into again. Wakers are woken outside the lock.
    pub(crate) fn wake_all(&self) {
        let mut next_key = 0;
        loop {
            let mut batch: [Option<Waker>; BATCH] = Default::default();
            let mut taken = 0;
            let done = {
                let mut list = lock(&self.list);
                let end = list.capacity();
                while next_key < end && taken < BATCH {
                    if let Some(waker) = list.get_mut(next_key).and_then(Option::take) {
                        batch[taken] = Some(waker);
                        taken += 1;
                    }
                    next_key += 1;
                }
                next_key >= end
            };
            for waker in batch.iter_mut().take(taken).filter_map(Option::take) {
                waker.wake();
            }
            if done {
                return;
            }
        }
    }
}

impl fmt::Debug for Waiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = lock(&self.list);
        f.debug_struct("Waiters")
            .field("parties", &list.len())
            .field("waiting", &list.iter().filter(|(_, w)| w.is_some()).count())
            .finish()
    }
}
