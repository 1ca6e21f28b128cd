//! Errors of the [`dataloader`](super) module.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::batch::{self, FlushError};

/// Why [`DataLoader::load`](super::DataLoader::load) returned no value for a
/// key. Cloneable: every load of the key waiting on the same fetch sees the
/// same error.
#[non_exhaustive]
pub enum LoadError<E> {
    /// The batch fetch failed as a whole, for every key of the batch.
    Fetch(Arc<E>),
    /// The batch fetch returned this error for this key only.
    Key(Arc<E>),
    /// The batch fetch returned no entry for this key.
    Missing,
    /// The batch fetch panicked; the message of the panic is kept. Only that
    /// batch fails.
    Panicked(Arc<str>),
    /// The loader was closed, or its worker stopped, before the key was
    /// fetched.
    Closed,
}

impl<E> LoadError<E> {
    /// The fetch error, whether for the whole batch or for this key.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, String> = DataLoader::builder()
    ///     .build(|keys: Vec<u32>| async move {
    ///         if keys.contains(&0) {
    ///             return Err("database down".to_owned()); // the whole batch fails
    ///         }
    ///         Ok(keys.into_iter().map(|k| (k, Err(format!("no row {k}")))).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// let err = loader.load(0).await.unwrap_err();
    /// assert_eq!(err.fetch_error().unwrap(), "database down");
    /// let err = loader.load(7).await.unwrap_err();
    /// assert_eq!(err.fetch_error().unwrap(), "no row 7"); // this key's own error
    /// loader.close().await;
    /// assert_eq!(loader.load(7).await.unwrap_err().fetch_error(), None);
    /// # }
    /// ```
    pub fn fetch_error(&self) -> Option<&E> {
        match self {
            Self::Fetch(err) | Self::Key(err) => Some(err),
            _ => None,
        }
    }

    /// Whether the batch fetch returned no entry for the key.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .build(|keys: Vec<u32>| async move {
    ///         // There is no row 3.
    ///         Ok(keys.into_iter().filter(|k| *k != 3).map(|k| (k, k)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// assert!(loader.load(3).await.unwrap_err().is_missing());
    /// assert_eq!(loader.load(4).await.unwrap(), 4);
    /// # }
    /// ```
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }

    /// Whether the loader was closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::DataLoader;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader: DataLoader<u32, u32, std::io::Error> = DataLoader::builder()
    ///     .build(|keys: Vec<u32>| async move {
    ///         Ok(keys.into_iter().map(|k| (k, k)).collect::<HashMap<_, _>>())
    ///     })
    ///     .unwrap();
    /// assert_eq!(loader.load(1).await.unwrap(), 1);
    /// loader.close().await;
    /// let err = loader.load(1).await.unwrap_err();
    /// assert!(err.is_closed() && !err.is_missing());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    pub(crate) fn from_flush(err: FlushError<E>) -> Self {
        match err {
            FlushError::Failed(err) => Self::Fetch(err),
            FlushError::Panicked(msg) => Self::Panicked(msg),
            // The loader's flush returns one output per key, so a mismatch
            // cannot happen; treat it as the batch having nothing for the key.
            FlushError::OutputMismatch { .. } => Self::Missing,
            FlushError::Closed => Self::Closed,
        }
    }
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Fetch(err) => Self::Fetch(Arc::clone(err)),
            Self::Key(err) => Self::Key(Arc::clone(err)),
            Self::Missing => Self::Missing,
            Self::Panicked(msg) => Self::Panicked(Arc::clone(msg)),
            Self::Closed => Self::Closed,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch(err) => f.debug_tuple("Fetch").field(err).finish(),
            Self::Key(err) => f.debug_tuple("Key").field(err).finish(),
            Self::Missing => f.write_str("Missing"),
            Self::Panicked(msg) => f.debug_tuple("Panicked").field(msg).finish(),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch(err) => write!(f, "batch fetch failed: {err}"),
            Self::Key(err) => write!(f, "fetching the key failed: {err}"),
            Self::Missing => f.write_str("the batch fetch returned nothing for the key"),
            Self::Panicked(msg) => write!(f, "batch fetch panicked: {msg}"),
            Self::Closed => f.write_str("data loader is closed"),
        }
    }
}

impl<E: Error + 'static> Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Fetch(err) | Self::Key(err) => Some(&**err),
            _ => None,
        }
    }
}

impl<E: PartialEq> PartialEq for LoadError<E> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Fetch(a), Self::Fetch(b)) | (Self::Key(a), Self::Key(b)) => a == b,
            (Self::Panicked(a), Self::Panicked(b)) => a == b,
            (Self::Missing, Self::Missing) | (Self::Closed, Self::Closed) => true,
            _ => false,
        }
    }
}

/// A [`DataLoaderBuilder`](super::DataLoaderBuilder) setting that cannot
/// work, reported by `build` before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A batching setting broke its rule: `max_batch` is the batcher's
    /// `max_items`, `delay` its `max_delay`, `concurrency` its
    /// `flush_concurrency`.
    Batch(batch::BuildError),
    /// The cache's capacity was zero.
    ZeroCacheCapacity,
    /// The cache's time to live was zero. (A `Duration::MAX` time to live is
    /// accepted: cached values never expire, only leave when the cache is
    /// full or cleared.)
    ZeroCacheTtl,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // In the loader's own words: its settings' names.
            Self::Batch(batch::BuildError::ZeroMaxItems) => {
                f.write_str("max_batch must be at least 1")
            }
            Self::Batch(batch::BuildError::ZeroMaxDelay) => {
                f.write_str("delay must be greater than zero")
            }
            Self::Batch(batch::BuildError::ZeroFlushConcurrency) => {
                f.write_str("concurrency must be at least 1")
            }
            Self::Batch(batch::BuildError::CapacityBelowMaxItems {
                capacity,
                max_items,
            }) => write!(
                f,
                "capacity ({capacity}) must be at least max_batch ({max_items})"
            ),
            Self::Batch(err) => write!(f, "data loader batching: {err}"),
            Self::ZeroCacheCapacity => f.write_str("cache capacity must be at least 1"),
            Self::ZeroCacheTtl => f.write_str("cache ttl must be greater than zero"),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Batch(err) => Some(err),
            _ => None,
        }
    }
}

impl From<batch::BuildError> for BuildError {
    fn from(err: batch::BuildError) -> Self {
        Self::Batch(err)
    }
}
