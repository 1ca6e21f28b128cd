//! The state the reader thread, the stream and the acknowledgement tokens
//! share: one [`Watermark`] per assigned partition, the in-flight count, and
//! the messages waiting to be handed out again (nak'd) or held back by the
//! ordering.

use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use flowgate::source::Watermark;
use futures_util::task::AtomicWaker;
use tokio::time::Instant;

use crate::delivery::Message;
use crate::error::Revoked;
use crate::source::Ordering;

/// A partition: (index into the topics, partition number).
pub(crate) type PartKey = (u32, i32);

/// The counters behind [`SourceStats`](crate::SourceStats).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) naked: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) revoked_acks: AtomicU64,
    pub(crate) revoked_partitions: AtomicU64,
    pub(crate) assigned_partitions: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) commit_failures: AtomicU64,
    pub(crate) fetch_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, AtomicOrdering::Relaxed);
    }
}

/// A message the source holds, with the assignment it was read under.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) message: Message,
    pub(crate) part: PartKey,
    pub(crate) generation: u64,
}

/// One assigned partition.
#[derive(Debug)]
pub(crate) struct Part {
    /// The assignment this partition belongs to: tokens of an older one are
    /// stale.
    pub(crate) generation: u64,
    pub(crate) watermark: Watermark,
    /// Messages of this partition the source counts as in flight: in the
    /// channel, in the queues or with the user.
    pub(crate) held: usize,
    /// Of those, with the user (a revocation waits for these).
    pub(crate) out: usize,
    /// The commit point moved since the last commit.
    pub(crate) dirty: bool,
    /// The last offset committed.
    pub(crate) committed: Option<u64>,
}

/// What a resolution did.
pub(crate) enum Resolved {
    Done,
    Stale,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) parts: HashMap<PartKey, Part>,
    pub(crate) generation: u64,
    /// Every message held, over all partitions.
    pub(crate) in_flight: usize,
    /// Messages to hand out before reading more: released by the ordering,
    /// or nak'd without a delay.
    pub(crate) ready: VecDeque<Held>,
    /// Nak'd messages and when to hand them out again.
    pub(crate) delayed: BinaryHeap<Reverse<Delayed>>,
    /// Ordering keys with a message out, and the messages waiting behind it.
    pub(crate) busy: HashMap<u64, Busy>,
    /// Messages read while `max_in_flight` were held, oldest first: not yet
    /// tracked; admitted as room appears, dropped with their partition.
    pub(crate) read_ahead: VecDeque<Held>,
    /// Commit points committed at revocation (kept for the stats and tests).
    pub(crate) last_commits: HashMap<PartKey, u64>,
}

/// An ordering key with a message out.
#[derive(Debug)]
pub(crate) struct Busy {
    /// The partition (and its assignment) of the key: a revocation frees it.
    pub(crate) part: PartKey,
    pub(crate) generation: u64,
    /// The messages waiting for the one out.
    pub(crate) waiting: VecDeque<Held>,
}

/// A nak'd message, ordered by when it is due.
#[derive(Debug)]
pub(crate) struct Delayed {
    pub(crate) due: Instant,
    pub(crate) seq: u64,
    pub(crate) held: Held,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Shared by the reader thread, the stream, the acker and every token.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) topics: Vec<Arc<str>>,
    pub(crate) group: String,
    pub(crate) brokers: String,
    pub(crate) ordering: Ordering,
    pub(crate) state: Mutex<State>,
    /// Notified on every resolution: the reader waits on it for room, a
    /// revocation for its partitions' messages to come back.
    pub(crate) resolved: Condvar,
    /// The stream's waker: a message became ready.
    pub(crate) waker: AtomicWaker,
    /// Stop reading (drain): set by the stop handle and by close.
    pub(crate) stopping: AtomicBool,
    /// Final commit and leave the group: set by close and when the last
    /// acker is dropped.
    pub(crate) closing: AtomicBool,
    /// The reader has paused the assignment (no room); an assignment resets
    /// it.
    pub(crate) paused: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) delayed_seq: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        topics: Vec<Arc<str>>,
        group: String,
        brokers: String,
        ordering: Ordering,
    ) -> Self {
        Shared {
            topics,
            group,
            brokers,
            ordering,
            state: Mutex::new(State::default()),
            resolved: Condvar::new(),
            waker: AtomicWaker::new(),
            stopping: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            counters: Counters::default(),
            delayed_seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn topic_index(&self, topic: &str) -> Option<u32> {
        self.topics
            .iter()
            .position(|t| &**t == topic)
            .map(|i| i as u32)
    }

    /// The ordering key of a message, if its ordering holds it back.
    pub(crate) fn order_key(&self, held: &Held) -> Option<u64> {
        let partition_key = |h: &mut DefaultHasher| held.part.hash(h);
        match self.ordering {
            Ordering::Unordered => None,
            Ordering::Partition => {
                let mut h = DefaultHasher::new();
                partition_key(&mut h);
                Some(h.finish())
            }
            Ordering::Key => {
                let key = held.message.key.as_ref()?;
                let mut h = DefaultHasher::new();
                partition_key(&mut h);
                key.hash(&mut h);
                Some(h.finish())
            }
        }
    }

    pub(crate) fn revoked(&self, held: &Held) -> Revoked {
        Revoked {
            topic: held.message.topic.to_string(),
            partition: held.message.partition,
            offset: held.message.offset,
        }
    }

    /// A message is done (acknowledged, or dead-lettered): its offset may be
    /// committed. Called with the lock held.
    pub(crate) fn resolve_done(&self, state: &mut State, held: &Held) -> Resolved {
        let Some(part) = state
            .parts
            .get_mut(&held.part)
            .filter(|p| p.generation == held.generation)
        else {
            return Resolved::Stale;
        };
        if let Ok(Some(_)) = part.watermark.ack(held.message.offset as u64) {
            part.dirty = true;
        }
        part.held -= 1;
        part.out -= 1;
        state.in_flight -= 1;
        self.release(state, held);
        Resolved::Done
    }

    /// A message comes back undone (nak'd or dropped): it is handed out again
    /// after `delay`. Called with the lock held.
    pub(crate) fn resolve_again(
        &self,
        state: &mut State,
        held: Held,
        due: Option<Instant>,
    ) -> Resolved {
        let Some(part) = state
            .parts
            .get_mut(&held.part)
            .filter(|p| p.generation == held.generation)
        else {
            return Resolved::Stale;
        };
        part.out -= 1;
        // It stays held (and keeps its ordering key): it is still in flight.
        match due {
            None => state.ready.push_back(held),
            Some(due) => {
                let seq = self.delayed_seq.fetch_add(1, AtomicOrdering::Relaxed);
                state.delayed.push(Reverse(Delayed { due, seq, held }));
            }
        }
        Resolved::Done
    }

    /// Frees the ordering key of a resolved message, readying the next
    /// message waiting behind it.
    fn release(&self, state: &mut State, held: &Held) {
        let Some(key) = self.order_key(held) else {
            return;
        };
        let next = match state.busy.get_mut(&key) {
            Some(busy) => busy.waiting.pop_front(),
            None => return,
        };
        match next {
            Some(next) => state.ready.push_back(next),
            None => {
                state.busy.remove(&key);
            }
        }
    }

    /// Wakes whoever waits for a resolution: the reader (room), a
    /// revocation, the stream (a message became ready).
    pub(crate) fn notify(&self) {
        self.resolved.notify_all();
        self.waker.wake();
    }

    /// Removes revoked partitions, with every message of theirs the source
    /// holds. Called with the lock held.
    pub(crate) fn remove_parts(&self, state: &mut State, parts: &[PartKey]) {
        for key in parts {
            if let Some(part) = state.parts.remove(key) {
                state.in_flight -= part.held;
            }
        }
        let live = |held: &Held, state_parts: &HashMap<PartKey, Part>| {
            state_parts
                .get(&held.part)
                .is_some_and(|p| p.generation == held.generation)
        };
        state.read_ahead.retain(|held| !parts.contains(&held.part));
        let parts_now = std::mem::take(&mut state.parts);
        state.ready.retain(|held| live(held, &parts_now));
        let delayed = std::mem::take(&mut state.delayed);
        state.delayed = delayed
            .into_iter()
            .filter(|d| live(&d.0.held, &parts_now))
            .collect();
        // A key's message out belongs to its partition: the key goes with
        // it, and the messages waiting behind it.
        state.busy.retain(|_, busy| {
            parts_now
                .get(&busy.part)
                .is_some_and(|p| p.generation == busy.generation)
        });
        state.parts = parts_now;
    }
}
