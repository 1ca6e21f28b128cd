//! [`StoreError`]: the error of every pluggable store (checkpoints,
//! idempotency keys).

use std::error::Error;
use std::fmt;

/// Why a pluggable store — a [`CheckpointStore`](crate::source::CheckpointStore)
/// or an [`IdempotencyStore`](crate::idempotency::IdempotencyStore) — could not
/// load or record something.
///
/// Opaque on purpose: stores are written by users against any database, so
/// the error wraps theirs ([`source`](Error::source) returns it, and
/// [`get_ref`](Self::get_ref) or [`into_inner`](Self::into_inner) let you
/// downcast it) and says whether retrying later may help.
pub struct StoreError {
    inner: Box<dyn Error + Send + Sync + 'static>,
    transient: bool,
}

impl StoreError {
    /// Wraps a permanent error of a store: retrying the same call is not
    /// expected to succeed (a corrupt value, a missing table).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::StoreError;
    ///
    /// let err = StoreError::new("no such table: cursors");
    /// assert!(!err.is_transient());
    /// assert_eq!(err.to_string(), "store failed: no such table: cursors");
    /// ```
    pub fn new(err: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        StoreError {
            inner: err.into(),
            transient: false,
        }
    }

    /// Wraps a transient error of a store: retrying later may succeed (a busy
    /// database, a dropped connection).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::StoreError;
    ///
    /// let err = StoreError::transient(std::io::Error::from(std::io::ErrorKind::TimedOut));
    /// assert!(err.is_transient());
    /// ```
    pub fn transient(err: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        StoreError {
            inner: err.into(),
            transient: true,
        }
    }

    /// Whether retrying later may succeed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::StoreError;
    ///
    /// assert!(StoreError::transient("busy").is_transient());
    /// assert!(!StoreError::new("corrupt").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The store's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::StoreError;
    ///
    /// let err = StoreError::new(std::io::Error::from(std::io::ErrorKind::NotFound));
    /// let io = err.get_ref().downcast_ref::<std::io::Error>().unwrap();
    /// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// Returns the store's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::StoreError;
    ///
    /// let err = StoreError::new(std::io::Error::from(std::io::ErrorKind::NotFound));
    /// let io: Box<std::io::Error> = err.into_inner().downcast().unwrap();
    /// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync + 'static> {
        self.inner
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("inner", &self.inner)
            .field("transient", &self.transient)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store failed: {}", self.inner)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.inner)
    }
}
