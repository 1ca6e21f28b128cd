//! Idempotency: run an item's effect only if its key was not already
//! processed successfully, and record the key only after the effect
//! succeeded.
//!
//! At-least-once sources — a [`CursorSource`](crate::source::CursorSource)
//! after a restart, a broker redelivering unacknowledged messages — hand some
//! items over twice. Guarding each item's effect with [`Idempotency::run`]
//! turns that into one effect per key:
//!
//! ```text
//!  run(key, effect):  claim key in this process ── another run of the same key? wait for it
//!                     store.contains(key)? ──yes──> Skipped      (the effect does not run)
//!                            │ no
//!                     effect().await ──Err──> RunError::Failed   (key not recorded: a redelivery retries)
//!                            │ Ok(output)
//!                     store.record(key) ─────> Done(output)
//! ```
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore, Processed};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryIdempotencyStore::new(100_000, Duration::from_secs(3600));
//! let once = Idempotency::new(store);
//!
//! let charge = |order: u64| async move { Ok::<_, std::io::Error>(order * 100) };
//! assert_eq!(once.run(7, || charge(7)).await.unwrap(), Processed::Done(700));
//! // Redelivered: skipped, the effect does not run again.
//! assert_eq!(once.run(7, || charge(7)).await.unwrap(), Processed::Skipped);
//! # }
//! ```
//!
//! # What "exactly once" holds against
//!
//! - **Redelivery** of an item whose effect succeeded: skipped, as long as the
//!   store still holds its key (forever for `SqliteIdempotencyStore`; within
//!   `ttl` and `capacity` for [`MemoryIdempotencyStore`]).
//! - **Failure** of the effect: the key is not recorded, so the item is
//!   retried by the next delivery.
//! - **Concurrent duplicates in one process**: two runs of the same key at
//!   the same time through clones of one `Idempotency` do not both run the
//!   effect; the second waits for the first, then skips (if it succeeded) or
//!   runs (if it failed).
//!
//! What it does not cover: a crash *between* the effect and the recording of
//! its key repeats the effect after a restart (the window is one store
//! write). Close it by making the effect itself idempotent (an upsert, as the
//! `flowgate-sql` sinks do) or by recording the key in the effect's own
//! transaction. Two *processes* sharing a durable store do not wait for each
//! other's runs; partition the keys between them (as consumer groups do).
//!
//! # Stores
//!
//! | store | where | keeps a key |
//! |---|---|---|
//! | [`MemoryIdempotencyStore`] | this process | `ttl` after it was recorded, and while fewer than `capacity` newer keys were |
//! | `SqliteIdempotencyStore` (`flowgate-sql`, feature `sqlite`) | a SQLite table | until purged |
//! | your own | implement [`IdempotencyStore`] | — |
//!
//! The in-memory store is a small bounded TTL map of flowgate's own rather
//! than moka: every key lives the same `ttl` from its insertion, so one FIFO
//! queue gives expiry and eviction in O(1), and it reads tokio's clock, so
//! TTLs follow paused time in tests (moka's own clock cannot be paused). It
//! keeps the core crate free of moka's dependencies.
//!
//! # Metrics
//!
//! An [`Idempotency`] named with [`Idempotency::name`] records, with the
//! `metrics` feature, the `flowgate_idempotency_*` series listed in
//! [`crate::metrics`]: effects run by `outcome`, duplicates skipped, store
//! errors by `reason`, effects running, and runs waiting for a concurrent run
//! of their key. A failed effect or store lookup is logged at `warn`; a key
//! that could not be recorded after its effect succeeded at `error` (a
//! redelivery would repeat the effect).
//!
//! # Cancel safety
//!
//! | method | cancel-safe | what a cancelled call loses |
//! |---|---|---|
//! | [`Idempotency::run`] | no | cancelled while waiting or looking up: nothing, the effect did not start. While the effect runs: whatever the effect loses when dropped; the key is not recorded and the claim is released, so a redelivery runs it again. While recording: the effect happened, and its key may or may not be recorded |
//! | [`Idempotency::is_processed`] | yes | nothing |

mod error;
mod observe;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use self::error::RunError;
pub use self::store::{IdempotencyStore, MemoryIdempotencyStore};
pub use crate::store::StoreError;

use crate::sync::lock;
use crate::telemetry::{GaugeGuard, Name};

use self::observe::Metrics;

/// What [`Idempotency::run`] did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Processed<O> {
    /// The effect ran and succeeded, and its key was recorded.
    Done(O),
    /// The key was already recorded: the effect did not run.
    Skipped,
}

impl<O> Processed<O> {
    /// Whether the effect was skipped as a duplicate.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::idempotency::Processed;
    ///
    /// assert!(Processed::<u32>::Skipped.is_skipped());
    /// assert!(!Processed::Done(1).is_skipped());
    /// ```
    pub fn is_skipped(&self) -> bool {
        matches!(self, Self::Skipped)
    }

    /// The effect's output, if it ran.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::idempotency::Processed;
    ///
    /// assert_eq!(Processed::Done(5).into_done(), Some(5));
    /// assert_eq!(Processed::<u32>::Skipped.into_done(), None);
    /// ```
    pub fn into_done(self) -> Option<O> {
        match self {
            Self::Done(output) => Some(output),
            Self::Skipped => None,
        }
    }
}

/// Runs effects at most once per key; see the [module documentation](self).
///
/// Cheap to clone: clones share the store and the in-process claims.
pub struct Idempotency<K> {
    store: Arc<dyn IdempotencyStore<K>>,
    /// Keys whose effect is running in this process. The receiver reports
    /// closed when the run ends (its sender lives in the [`Claim`]).
    claims: Arc<Mutex<HashMap<K, watch::Receiver<()>>>>,
    /// Its series (no-op handles unless named), shared by clones.
    metrics: Arc<Metrics>,
}

impl<K> Idempotency<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Guards effects with `store`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore, Processed};
    ///
    /// let once = Idempotency::new(MemoryIdempotencyStore::new(1000, Duration::from_secs(60)));
    /// let charge = || async { Ok::<_, ()>("charged") };
    /// assert_eq!(once.run(1u64, charge).await.unwrap(), Processed::Done("charged"));
    /// assert_eq!(once.run(1u64, charge).await.unwrap(), Processed::Skipped);
    /// # }
    /// ```
    pub fn new(store: impl IdempotencyStore<K> + 'static) -> Self {
        Idempotency {
            store: Arc::new(store),
            claims: Arc::new(Mutex::new(HashMap::new())),
            metrics: Arc::new(Metrics::new(Name::none())),
        }
    }

    /// Names this `Idempotency` (and the clones made from it afterwards):
    /// with the `metrics` feature, its series are recorded with the label
    /// `name="…"`; any string is accepted as given. Unnamed, it records
    /// nothing.
    ///
    /// It enables `flowgate_idempotency_effects_total{outcome="ok"|"error"}`
    /// (effects run, by how they ended), `flowgate_idempotency_skipped_total`
    /// (duplicates skipped), `flowgate_idempotency_store_errors_total{reason="lookup"|"record"}`,
    /// `flowgate_idempotency_effects_running` and
    /// `flowgate_idempotency_runs_waiting` (runs waiting for a concurrent run
    /// of the same key), registered here; see [`crate::metrics`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore, Processed};
    ///
    /// let store = MemoryIdempotencyStore::new(1000, Duration::from_secs(60));
    /// let once = Idempotency::new(store).name("payments");
    /// let charge = || async { Ok::<_, ()>("charged") };
    /// assert_eq!(once.run(1u64, charge).await.unwrap(), Processed::Done("charged"));
    /// // Counted in flowgate_idempotency_skipped_total{name="payments"}:
    /// assert_eq!(once.run(1u64, charge).await.unwrap(), Processed::Skipped);
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.metrics = Arc::new(Metrics::new(Name::new(name)));
        self
    }

    /// Runs `effect` unless `key` was already processed successfully, and
    /// records `key` once it succeeds.
    ///
    /// `effect` is called only when it is to run, so a skipped item costs one
    /// store lookup. A concurrent run of the same key through this
    /// `Idempotency` (or a clone) is waited for first.
    ///
    /// # Errors
    ///
    /// - [`RunError::Failed`] with the effect's error; the key is not
    ///   recorded.
    /// - [`RunError::Lookup`] if the store could not be read; the effect did
    ///   not run.
    /// - [`RunError::Record`] with the effect's output if the effect
    ///   succeeded but its key could not be recorded.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe once the effect started: see the
    /// [table](self#cancel-safety). Cancelling never leaves the key claimed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore, Processed, RunError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let once = Idempotency::new(MemoryIdempotencyStore::new(100, Duration::from_secs(60)));
    /// // A failed effect is not recorded...
    /// let failed = once.run("a", || async { Err::<(), _>("db down") }).await;
    /// assert!(matches!(failed, Err(RunError::Failed("db down"))));
    /// // ...so the next delivery runs it.
    /// let done = once.run("a", || async { Ok::<_, &str>(()) }).await;
    /// assert_eq!(done.unwrap(), Processed::Done(()));
    /// # }
    /// ```
    pub async fn run<F, Fut, O, E>(&self, key: K, effect: F) -> Result<Processed<O>, RunError<O, E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<O, E>>,
    {
        let _claim = self.claim(&key).await;
        let metrics = &*self.metrics;
        match self.store.contains(&key).await {
            Ok(true) => {
                metrics.skipped();
                return Ok(Processed::Skipped);
            }
            Ok(false) => {}
            Err(err) => {
                metrics.lookup_failed(&err);
                return Err(RunError::Lookup(err));
            }
        }
        let running = GaugeGuard::new(&metrics.running);
        let ran = effect().await;
        drop(running);
        match ran {
            Ok(output) => match self.store.record(&key).await {
                Ok(()) => {
                    metrics.succeeded();
                    Ok(Processed::Done(output))
                }
                Err(error) => {
                    metrics.record_failed(&error);
                    Err(RunError::Record { output, error })
                }
            },
            Err(err) => {
                metrics.failed();
                Err(RunError::Failed(err))
            }
        }
    }

    /// Whether `key` was processed successfully (is recorded in the store).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the store could not be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{Idempotency, MemoryIdempotencyStore};
    ///
    /// let once = Idempotency::new(MemoryIdempotencyStore::new(1000, Duration::from_secs(60)));
    /// assert!(!once.is_processed(&1u64).await.unwrap());
    /// once.run(1u64, || async { Ok::<_, ()>(()) }).await.unwrap();
    /// assert!(once.is_processed(&1u64).await.unwrap());
    /// // A failed effect records nothing.
    /// let _ = once.run(2u64, || async { Err::<(), _>("boom") }).await;
    /// assert!(!once.is_processed(&2u64).await.unwrap());
    /// # }
    /// ```
    pub async fn is_processed(&self, key: &K) -> Result<bool, StoreError> {
        self.store.contains(key).await
    }

    /// Claims `key` in this process, waiting while another run holds it.
    async fn claim(&self, key: &K) -> Claim<K> {
        loop {
            let mut running = {
                let mut claims = lock(&self.claims);
                match claims.get(key) {
                    Some(running) => running.clone(),
                    None => {
                        let (release, running) = watch::channel(());
                        claims.insert(key.clone(), running);
                        return Claim {
                            key: Some(key.clone()),
                            claims: Arc::clone(&self.claims),
                            _release: release,
                        };
                    }
                }
            };
            // Nothing is ever sent: this resolves (with an error) when the
            // holder's claim is dropped, however its run ended.
            let _waiting = GaugeGuard::new(&self.metrics.waiting);
            let _ = running.changed().await;
        }
    }
}

/// A key claimed by a running effect; dropping it releases the key and wakes
/// the runs waiting for it.
struct Claim<K: Hash + Eq> {
    key: Option<K>,
    claims: Arc<Mutex<HashMap<K, watch::Receiver<()>>>>,
    _release: watch::Sender<()>,
}

impl<K: Hash + Eq> Drop for Claim<K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.claims).remove(&key);
        }
        // `_release` is dropped after this body: waiters wake to find the
        // key unclaimed.
    }
}

impl<K> Clone for Idempotency<K> {
    fn clone(&self) -> Self {
        Idempotency {
            store: Arc::clone(&self.store),
            claims: Arc::clone(&self.claims),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<K> fmt::Debug for Idempotency<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("running", &lock(&self.claims).len())
            .finish_non_exhaustive()
    }
}
