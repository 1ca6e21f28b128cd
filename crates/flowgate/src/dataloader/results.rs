//! [`BatchResults`]: what a data loader's batch fetch may return.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// The result of one batch fetch of a [`DataLoader`](super::DataLoader), from
/// which each key's own result is taken.
///
/// Implemented for:
///
/// - `HashMap<K, V>`: a value per key found; a key not in the map fails
///   with [`LoadError::Missing`](super::LoadError::Missing) (for that key
///   only).
/// - `HashMap<K, Result<V, E>>`: a result per key; a key's `Err` fails that
///   key only, with [`LoadError::Key`](super::LoadError::Key). Here the
///   compiler may need the value type spelled out (it could also read the map
///   as `HashMap<K, V>` with `V = Result<..>`), for example
///   `DataLoader<u64, String, MyError>`.
///
/// A failure of the whole fetch is its `Err` instead, which fails every key
/// of the batch with [`LoadError::Fetch`](super::LoadError::Fetch).
pub trait BatchResults<K, V, E> {
    /// Takes the result for `key`, or `None` if there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use flowgate::dataloader::BatchResults;
    ///
    /// // A value per key found (with no per-key error type, here `()`).
    /// let mut found: HashMap<u32, &str> = HashMap::from([(1, "one")]);
    /// assert_eq!(BatchResults::<u32, &str, ()>::take(&mut found, &1), Some(Ok("one")));
    /// assert_eq!(BatchResults::<u32, &str, ()>::take(&mut found, &1), None); // taken once
    ///
    /// // A result per key: a key's own error, or no entry (the loader's `LoadError::Missing`).
    /// let mut per_key: HashMap<u32, Result<&str, &str>> = HashMap::from([(2, Err("gone"))]);
    /// assert_eq!(BatchResults::<u32, &str, &str>::take(&mut per_key, &2), Some(Err("gone")));
    /// assert_eq!(BatchResults::<u32, &str, &str>::take(&mut per_key, &3), None);
    /// ```
    fn take(&mut self, key: &K) -> Option<Result<V, E>>;
}

impl<K: Hash + Eq, V, E, S: BuildHasher> BatchResults<K, V, E> for HashMap<K, V, S> {
    fn take(&mut self, key: &K) -> Option<Result<V, E>> {
        self.remove(key).map(Ok)
    }
}

impl<K: Hash + Eq, V, E, S: BuildHasher> BatchResults<K, V, E> for HashMap<K, Result<V, E>, S> {
    fn take(&mut self, key: &K) -> Option<Result<V, E>> {
        self.remove(key)
    }
}
