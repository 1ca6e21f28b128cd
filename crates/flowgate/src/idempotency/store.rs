//! [`IdempotencyStore`]: where processed keys are recorded, and
//! [`MemoryIdempotencyStore`].

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::future::BoxFuture;

use crate::expiring::ExpiringMap;
use crate::store::StoreError;
use crate::sync::lock;

/// Where [`Idempotency`](super::Idempotency) records the keys of items
/// processed successfully.
///
/// [`record`](Self::record) is called only after an item's effect succeeded;
/// [`contains`](Self::contains) before running one. Implementations:
/// [`MemoryIdempotencyStore`] here, and `SqliteIdempotencyStore` in the
/// `flowgate-sql` crate.
///
/// The methods return [`BoxFuture`]s so that the trait is object-safe, for the
/// same reasons as [`CheckpointStore`](crate::source::CheckpointStore): the
/// store can be chosen at run time and shared as an `Arc<dyn ..>`. The
/// allocation per call is small next to the lookup of any store that survives
/// a restart.
pub trait IdempotencyStore<K>: Send + Sync {
    /// Whether `key` was recorded (and has not expired, for stores that
    /// forget).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Must be cancel-safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{IdempotencyStore, MemoryIdempotencyStore};
    ///
    /// let store = MemoryIdempotencyStore::new(100, Duration::from_secs(60));
    /// assert!(!store.contains(&"order-1").await.unwrap());
    /// store.record(&"order-1").await.unwrap();
    /// assert!(store.contains(&"order-1").await.unwrap());
    /// # }
    /// ```
    fn contains<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records `key` as processed. Recording a key twice is not an error.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the key could not be recorded.
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may or may not have recorded the key.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{IdempotencyStore, MemoryIdempotencyStore};
    ///
    /// let store = MemoryIdempotencyStore::new(100, Duration::from_secs(60));
    /// store.record(&7u64).await.unwrap();
    /// store.record(&7u64).await.unwrap(); // twice is fine
    /// assert_eq!(store.len(), 1);
    /// # }
    /// ```
    fn record<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<K, S: IdempotencyStore<K> + ?Sized> IdempotencyStore<K> for Arc<S> {
    fn contains<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).contains(key)
    }

    fn record<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).record(key)
    }
}

/// An [`IdempotencyStore`] in memory, bounded, whose keys expire.
///
/// A key is forgotten `ttl` after it was recorded, or earlier when
/// `capacity` newer keys were recorded since (the oldest key goes first). So
/// it recognises a duplicate only within that window: size it to cover the
/// redelivery window of the source — for a
/// [`CursorSource`](crate::source::CursorSource), the keys of
/// `max_pages_in_flight` pages; for a broker, its redelivery timeout. It does
/// not survive the process: use a durable store (`SqliteIdempotencyStore`)
/// to deduplicate across restarts.
///
/// Clones share the same keys. Expiry follows tokio's clock, so paused time
/// drives it in tests.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flowgate::idempotency::{IdempotencyStore, MemoryIdempotencyStore};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let store = MemoryIdempotencyStore::new(10_000, Duration::from_secs(600));
/// store.record(&"order-1").await.unwrap();
/// assert!(store.contains(&"order-1").await.unwrap());
/// tokio::time::advance(Duration::from_secs(600)).await;
/// assert!(!store.contains(&"order-1").await.unwrap()); // expired
/// # }
/// ```
pub struct MemoryIdempotencyStore<K> {
    keys: Arc<Mutex<ExpiringMap<K, ()>>>,
}

impl<K: Hash + Eq + Clone> MemoryIdempotencyStore<K> {
    /// A store of at most `capacity` keys, each kept for `ttl`.
    ///
    /// A `capacity` of `usize::MAX` means "unbounded in practice" (nothing is
    /// allocated up front; the store grows with the keys it holds), and a
    /// `ttl` too long for an `Instant`, up to `Duration::MAX`, means keys never
    /// expire (they are forgotten only at capacity).
    ///
    /// # Panics
    ///
    /// - `"MemoryIdempotencyStore::new: capacity must be at least 1"` if
    ///   `capacity` is 0;
    /// - `"MemoryIdempotencyStore::new: ttl must be greater than zero"` if
    ///   `ttl` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::idempotency::MemoryIdempotencyStore;
    ///
    /// let store = MemoryIdempotencyStore::<u64>::new(10_000, Duration::from_secs(600));
    /// assert!(store.is_empty());
    /// ```
    ///
    /// A zero capacity (or TTL) is refused:
    ///
    /// ```should_panic
    /// # use std::time::Duration;
    /// # use flowgate::idempotency::MemoryIdempotencyStore;
    /// let _ = MemoryIdempotencyStore::<u64>::new(0, Duration::from_secs(1)); // panics
    /// ```
    #[track_caller]
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        assert!(
            capacity > 0,
            "MemoryIdempotencyStore::new: capacity must be at least 1"
        );
        assert!(
            !ttl.is_zero(),
            "MemoryIdempotencyStore::new: ttl must be greater than zero"
        );
        MemoryIdempotencyStore {
            keys: Arc::new(Mutex::new(ExpiringMap::new(capacity, ttl))),
        }
    }

    /// Keys held, including expired ones not evicted yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{IdempotencyStore, MemoryIdempotencyStore};
    ///
    /// let store = MemoryIdempotencyStore::new(2, Duration::from_secs(60));
    /// for key in 1..=3u64 {
    ///     store.record(&key).await.unwrap();
    /// }
    /// assert_eq!(store.len(), 2); // the oldest key went at capacity
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        lock(&self.keys).len()
    }

    /// Whether no key is held.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{IdempotencyStore, MemoryIdempotencyStore};
    ///
    /// let store = MemoryIdempotencyStore::new(10, Duration::from_secs(60));
    /// assert!(store.is_empty());
    /// store.record(&1u64).await.unwrap();
    /// assert!(!store.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets `key`; whether it was held.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use flowgate::idempotency::{IdempotencyStore, MemoryIdempotencyStore};
    ///
    /// let store = MemoryIdempotencyStore::new(10, Duration::from_secs(60));
    /// store.record(&1u64).await.unwrap();
    /// assert!(store.remove(&1));
    /// assert!(!store.remove(&1)); // already gone
    /// assert!(!store.contains(&1).await.unwrap());
    /// # }
    /// ```
    pub fn remove(&self, key: &K) -> bool {
        lock(&self.keys).remove(key)
    }
}

impl<K: Hash + Eq + Clone + Send + Sync> IdempotencyStore<K> for MemoryIdempotencyStore<K> {
    fn contains<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<bool, StoreError>> {
        let found = lock(&self.keys).contains(key);
        Box::pin(async move { Ok(found) })
    }

    fn record<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<(), StoreError>> {
        lock(&self.keys).insert(key.clone(), ());
        Box::pin(async { Ok(()) })
    }
}

impl<K> Clone for MemoryIdempotencyStore<K> {
    fn clone(&self) -> Self {
        MemoryIdempotencyStore {
            keys: Arc::clone(&self.keys),
        }
    }
}

impl<K> fmt::Debug for MemoryIdempotencyStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryIdempotencyStore")
            .finish_non_exhaustive()
    }
}
