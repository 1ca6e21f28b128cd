//! [`CheckpointStore`]: where a cursor source keeps its last committed
//! cursor, and [`MemoryCheckpointStore`].

use std::fmt;
use std::sync::{Arc, Mutex};

use futures_core::future::BoxFuture;

use crate::store::StoreError;
use crate::sync::lock;

/// Where a [`CursorSource`](super::CursorSource) keeps the cursor to resume
/// from.
///
/// The source calls [`load`](Self::load) once when it starts and
/// [`commit`](Self::commit) each time its watermark moves (at most one commit
/// at a time, in order, each with a newer cursor). A commit must be durable
/// when its future resolves `Ok`: a restart loads that cursor or a newer one.
///
/// Implementations: [`MemoryCheckpointStore`] here, and `SqliteCheckpointStore`
/// in the `flowgate-sql` crate.
///
/// # Why boxed futures
///
/// The methods return [`BoxFuture`]s rather than `impl Future`, so that the
/// trait is object-safe: a source holds an `Arc<dyn CheckpointStore<C>>`, the
/// store can be picked at run time (memory in tests, SQLite in production)
/// without a type parameter spreading through every pipeline type, and `Arc`
/// of a store is a store too. The cost, one allocation per call, is paid once
/// per *page* and is small next to any durable write.
///
/// # Examples
///
/// A store over a file, written through tokio's blocking pool:
///
/// ```
/// use flowgate::source::CheckpointStore;
/// use flowgate::StoreError;
/// use futures_core::future::BoxFuture;
///
/// struct FileStore(std::path::PathBuf);
///
/// impl CheckpointStore<u64> for FileStore {
///     fn load(&self) -> BoxFuture<'_, Result<Option<u64>, StoreError>> {
///         Box::pin(async move {
///             match tokio::fs::read_to_string(&self.0).await {
///                 Ok(text) => text.trim().parse().map(Some).map_err(StoreError::new),
///                 Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
///                 Err(err) => Err(StoreError::transient(err)),
///             }
///         })
///     }
///
///     fn commit(&self, cursor: u64) -> BoxFuture<'_, Result<(), StoreError>> {
///         Box::pin(async move {
///             // write then rename: a crash leaves the old or the new cursor
///             let tmp = self.0.with_extension("tmp");
///             tokio::fs::write(&tmp, cursor.to_string()).await.map_err(StoreError::transient)?;
///             tokio::fs::rename(&tmp, &self.0).await.map_err(StoreError::transient)
///         })
///     }
/// }
///
/// let store = FileStore(std::env::temp_dir().join("my-source.cursor"));
/// let builder = flowgate::source::CursorSource::builder(0u64).checkpoint(store);
/// ```
pub trait CheckpointStore<C>: Send + Sync {
    /// The last committed cursor, or `None` if nothing was committed yet.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the store cannot be read; the source then yields
    /// [`CursorError::Checkpoint`](super::CursorError::Checkpoint) and ends.
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
    /// use flowgate::source::{CheckpointStore, MemoryCheckpointStore};
    ///
    /// assert_eq!(MemoryCheckpointStore::<u64>::new().load().await.unwrap(), None);
    /// let store = MemoryCheckpointStore::with_cursor(3u64);
    /// assert_eq!(store.load().await.unwrap(), Some(3));
    /// # }
    /// ```
    fn load(&self) -> BoxFuture<'_, Result<Option<C>, StoreError>>;

    /// Stores `cursor` as the point to resume from, replacing the previous
    /// one.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the cursor could not be stored; the source then
    /// yields [`CursorError::Checkpoint`](super::CursorError::Checkpoint) and
    /// stops (a restart resumes from the last cursor that was committed).
    ///
    /// # Cancel safety
    ///
    /// The source never cancels a commit except when it is dropped itself; a
    /// cancelled commit must leave the old cursor or the new one, never a
    /// mix.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::source::{CheckpointStore, MemoryCheckpointStore};
    ///
    /// let store = MemoryCheckpointStore::<u64>::new();
    /// store.commit(10).await.unwrap();
    /// store.commit(20).await.unwrap(); // replaces 10
    /// assert_eq!(store.load().await.unwrap(), Some(20));
    /// # }
    /// ```
    fn commit(&self, cursor: C) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<C, S: CheckpointStore<C> + ?Sized> CheckpointStore<C> for Arc<S> {
    fn load(&self) -> BoxFuture<'_, Result<Option<C>, StoreError>> {
        (**self).load()
    }

    fn commit(&self, cursor: C) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).commit(cursor)
    }
}

/// A [`CheckpointStore`] in memory: it survives a restart of the *source*
/// (build a new one with a clone of the store), not of the process.
///
/// Clones share one cursor. For tests, examples, and sources whose position
/// need not outlive the process (a crash-and-restart supervisor within it).
///
/// # Examples
///
/// ```
/// use flowgate::source::{CheckpointStore, MemoryCheckpointStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryCheckpointStore::new();
/// assert_eq!(store.load().await.unwrap(), None);
/// store.commit(42u64).await.unwrap();
/// assert_eq!(store.get(), Some(42));
/// assert_eq!(store.commits(), 1);
/// # }
/// ```
pub struct MemoryCheckpointStore<C> {
    inner: Arc<Mutex<Memory<C>>>,
}

struct Memory<C> {
    cursor: Option<C>,
    commits: u64,
}

impl<C> MemoryCheckpointStore<C> {
    /// An empty store: a source starts from its initial cursor.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::MemoryCheckpointStore;
    ///
    /// let store = MemoryCheckpointStore::<u64>::new();
    /// assert_eq!((store.get(), store.commits()), (None, 0));
    /// ```
    pub fn new() -> Self {
        MemoryCheckpointStore {
            inner: Arc::new(Mutex::new(Memory {
                cursor: None,
                commits: 0,
            })),
        }
    }

    /// A store holding `cursor`, as if it had been committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::MemoryCheckpointStore;
    ///
    /// let store = MemoryCheckpointStore::with_cursor(42u64);
    /// assert_eq!(store.get(), Some(42));
    /// assert_eq!(store.commits(), 0);
    /// ```
    pub fn with_cursor(cursor: C) -> Self {
        let store = Self::new();
        lock(&store.inner).cursor = Some(cursor);
        store
    }

    /// The number of commits so far.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::source::{CheckpointStore, MemoryCheckpointStore};
    ///
    /// let store = MemoryCheckpointStore::<u64>::new();
    /// store.commit(7).await.unwrap();
    /// store.commit(9).await.unwrap();
    /// assert_eq!(store.commits(), 2);
    /// # }
    /// ```
    pub fn commits(&self) -> u64 {
        lock(&self.inner).commits
    }
}

impl<C: Clone> MemoryCheckpointStore<C> {
    /// The stored cursor.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::source::{CheckpointStore, MemoryCheckpointStore};
    ///
    /// let store = MemoryCheckpointStore::<u64>::new();
    /// assert_eq!(store.get(), None);
    /// store.commit(7).await.unwrap();
    /// assert_eq!(store.get(), Some(7));
    /// # }
    /// ```
    pub fn get(&self) -> Option<C> {
        lock(&self.inner).cursor.clone()
    }
}

impl<C: Clone + Send + 'static> CheckpointStore<C> for MemoryCheckpointStore<C> {
    fn load(&self) -> BoxFuture<'_, Result<Option<C>, StoreError>> {
        let cursor = self.get();
        Box::pin(async move { Ok(cursor) })
    }

    fn commit(&self, cursor: C) -> BoxFuture<'_, Result<(), StoreError>> {
        {
            let mut memory = lock(&self.inner);
            memory.cursor = Some(cursor);
            memory.commits += 1;
        }
        Box::pin(async { Ok(()) })
    }
}

impl<C> Default for MemoryCheckpointStore<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> Clone for MemoryCheckpointStore<C> {
    fn clone(&self) -> Self {
        MemoryCheckpointStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for MemoryCheckpointStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let memory = lock(&self.inner);
        f.debug_struct("MemoryCheckpointStore")
            .field("cursor", &memory.cursor)
            .field("commits", &memory.commits)
            .finish()
    }
}
