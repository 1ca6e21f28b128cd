//! What the source, its deliveries and its acker share: the client, the
//! held deliveries (kept from redelivery with in-progress signals) and the
//! counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::{Client, Subject};
use bytes::Bytes;
use flowgate::resilience::{Backoff, Jitter, Retry};
use tokio::sync::mpsc;

use crate::error::{NatsError, Target};
use crate::source::SourceStats;

/// One counter of [`SourceStats`], shared by the tasks that move it.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) read: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) naked: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) progress_signals: AtomicU64,
    pub(crate) progress_failures: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) ack_retries: AtomicU64,
    pub(crate) acked: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The deliveries handed out and not yet resolved, by a key of their own
/// (a slot index: no hashing, slots reused): their reply subjects get the
/// in-progress signal. Each key is resolved or released exactly once, by
/// the delivery that holds it.
#[derive(Default)]
struct Held {
    slots: Vec<Option<Subject>>,
    free: Vec<usize>,
    len: usize,
}

impl Held {
    fn insert(&mut self, reply: Subject) -> u64 {
        self.len += 1;
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(reply);
                slot as u64
            }
            None => {
                self.slots.push(Some(reply));
                (self.slots.len() - 1) as u64
            }
        }
    }

    fn remove(&mut self, key: u64) -> Option<Subject> {
        let slot = usize::try_from(key).ok()?;
        let reply = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(reply)
    }
}

pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) client: Client,
    pub(crate) counters: Counters,
    held: Mutex<Held>,
    /// Reply subjects of deliveries dropped unresolved: the keeper naks them.
    dropped: mpsc::UnboundedSender<Subject>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stay consistent if a holder panicked: every critical section
    // is a single map operation.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The shared state and the receiver of dropped deliveries (for
    /// [`keep`]).
    pub(crate) fn new(
        target: Target,
        client: Client,
    ) -> (Arc<Shared>, mpsc::UnboundedReceiver<Subject>) {
        let (dropped, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            target,
            client,
            counters: Counters::default(),
            held: Mutex::new(Held::default()),
            dropped,
        });
        (shared, rx)
    }

    /// Registers a delivery as held; returns its key.
    pub(crate) fn hold(&self, reply: Subject) -> u64 {
        lock(&self.held).insert(reply)
    }

    /// The delivery `key` was resolved (acked, nak'd, dead-lettered): no more
    /// in-progress signals.
    pub(crate) fn resolve(&self, key: u64) {
        lock(&self.held).remove(key);
    }

    /// Every delivery of `keys` was resolved, in one critical section.
    pub(crate) fn resolve_all(&self, keys: impl Iterator<Item = u64>) {
        let mut held = lock(&self.held);
        for key in keys {
            held.remove(key);
        }
    }

    /// The delivery `key` was dropped unresolved: it is nak'd (delivered
    /// again at once, to this consumer or another).
    pub(crate) fn release(&self, key: u64) {
        if let Some(reply) = lock(&self.held).remove(key) {
            Counters::add(&self.counters.released, 1);
            // The keeper is gone only with the client; the server then
            // redelivers after ack_wait anyway.
            let _ = self.dropped.send(reply);
        }
    }

    pub(crate) fn held(&self) -> usize {
        lock(&self.held).len
    }

    fn held_subjects(&self) -> Vec<Subject> {
        lock(&self.held).slots.iter().flatten().cloned().collect()
    }

    pub(crate) fn stats(&self) -> SourceStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SourceStats {
            read: get(&c.read),
            dead_lettered: get(&c.dead_lettered),
            rejected: get(&c.rejected),
            naked: get(&c.naked),
            released: get(&c.released),
            progress_signals: get(&c.progress_signals),
            progress_failures: get(&c.progress_failures),
            retries: get(&c.retries),
            ack_retries: get(&c.ack_retries),
            acked: get(&c.acked),
            held: self.held() as u64,
        }
    }

    /// Publishes `kind` to every subject of `replies`, then flushes: once
    /// this returns `Ok`, the server has them all.
    pub(crate) async fn send_acks(
        &self,
        replies: &[&Subject],
        kind: &Bytes,
    ) -> Result<(), NatsError> {
        for reply in replies {
            self.client
                .publish((*reply).clone(), kind.clone())
                .await
                .map_err(NatsError::from)?;
        }
        self.client.flush().await.map_err(NatsError::from)
    }
}

/// The acknowledgement kinds as their wire payloads.
pub(crate) fn payload(kind: AckKind) -> Bytes {
    kind.into()
}

/// Retries of a NATS operation `what`: 50 ms doubling to 2 s, for up to
/// `budget`; every retry logged (warn).
pub(crate) fn retry_policy(
    target: &Target,
    what: &'static str,
    budget: Duration,
) -> Retry<NatsError> {
    let stream = target.stream.clone();
    let server = target.server.clone();
    Retry::new(
        Backoff::exponential(Duration::from_millis(50))
            .max_delay(Duration::from_secs(2))
            .jitter(Jitter::Equal),
    )
    .max_attempts(u32::MAX)
    .budget(budget)
    .on_retry(move |err: &NatsError, attempt, delay| {
        tracing::warn!(
            error = %err, attempt, ?delay, stream = %stream, server = %server,
            "NATS {what} failed; retrying"
        );
    })
}

/// The keeper: every `interval`, tells the server that the held deliveries
/// are still being worked on (`+WPI`, which restarts their ack wait), and
/// naks the deliveries dropped unresolved. Ends when the source, its
/// deliveries and its acker are all gone.
pub(crate) async fn keep(
    shared: Weak<Shared>,
    client: Client,
    mut dropped: mpsc::UnboundedReceiver<Subject>,
    interval: Duration,
) {
    let progress = payload(AckKind::Progress);
    let nak = payload(AckKind::Nak(None));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(shared) = shared.upgrade() else { return };
                let held = shared.held_subjects();
                if held.is_empty() {
                    continue;
                }
                let replies: Vec<&Subject> = held.iter().collect();
                match shared.send_acks(&replies, &progress).await {
                    Ok(()) => Counters::add(&shared.counters.progress_signals, held.len() as u64),
                    Err(err) => {
                        Counters::add(&shared.counters.progress_failures, 1);
                        tracing::warn!(
                            error = %err, held = held.len(), stream = %shared.target.stream,
                            server = %shared.target.server,
                            "in-progress signal failed; retried at the next tick"
                        );
                    }
                }
            }
            reply = dropped.recv() => {
                // Drained before the end: the deliveries dropped last (with
                // the source) are nak'd too.
                let Some(reply) = reply else { return };
                let mut replies = vec![reply];
                while let Ok(reply) = dropped.try_recv() {
                    replies.push(reply);
                }
                if let Err(err) = nak_all(&client, &replies, &nak).await {
                    tracing::warn!(
                        error = %err, messages = replies.len(),
                        "nak of dropped deliveries failed; the server redelivers them after ack_wait"
                    );
                }
            }
        }
    }
}

async fn nak_all(client: &Client, replies: &[Subject], nak: &Bytes) -> Result<(), NatsError> {
    for reply in replies {
        client.publish(reply.clone(), nak.clone()).await?;
    }
    client.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Held;
    use async_nats::Subject;

    #[test]
    fn held_slots_are_reused_and_each_key_removes_its_own() {
        let mut held = Held::default();
        let a = held.insert(Subject::from("a"));
        let b = held.insert(Subject::from("b"));
        assert_eq!(held.len, 2);
        assert_eq!(held.remove(a).as_deref(), Some("a"));
        assert_eq!(held.remove(a), None, "a second removal finds nothing");
        let c = held.insert(Subject::from("c"));
        assert_eq!(c, a, "the slot is reused");
        assert_eq!(held.remove(b).as_deref(), Some("b"));
        assert_eq!(held.remove(c).as_deref(), Some("c"));
        assert_eq!(held.len, 0);
        assert_eq!(held.remove(99), None);
    }
}
