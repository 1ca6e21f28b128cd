//! What a finished group hands back: the [`Outcome`] of every operation, in
//! [`Results`] indexed by id.

use foldhash::fast::RandomState;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::iter::FusedIterator;

use hashbrown::HashTable;

use super::error::OpError;

/// How one operation of a [`CallGroup`](super::CallGroup) ended.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome<R, E> {
    /// The operation finished with this result.
    Ok(R),
    /// The operation finished with this error.
    Err(E),
    /// The operation's [`Op`](super::Op) was dropped without being finished:
    /// the task holding it returned early, was cancelled or panicked.
    Abandoned,
    /// The group's deadline passed while the operation was still running.
    TimedOut,
}

impl<R, E> Outcome<R, E> {
    /// Whether the operation finished with a result.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::Outcome;
    ///
    /// assert!(Outcome::<u32, ()>::Ok(1).is_ok());
    /// assert!(!Outcome::<u32, ()>::TimedOut.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }

    /// The result, if the operation finished with one.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::Outcome;
    ///
    /// assert_eq!(Outcome::<u32, ()>::Ok(1).ok(), Some(1));
    /// assert_eq!(Outcome::<u32, ()>::Abandoned.ok(), None);
    /// ```
    pub fn ok(self) -> Option<R> {
        match self {
            Self::Ok(result) => Some(result),
            _ => None,
        }
    }

    /// Borrows the result or error.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::Outcome;
    ///
    /// let outcome = Outcome::<String, ()>::Ok("done".to_owned());
    /// assert_eq!(outcome.as_ref().ok().map(String::as_str), Some("done"));
    /// assert!(outcome.is_ok()); // still there
    /// ```
    pub fn as_ref(&self) -> Outcome<&R, &E> {
        match self {
            Self::Ok(result) => Outcome::Ok(result),
            Self::Err(err) => Outcome::Err(err),
            Self::Abandoned => Outcome::Abandoned,
            Self::TimedOut => Outcome::TimedOut,
        }
    }

    /// Converts into a `Result`, so that `?` works on an outcome.
    ///
    /// # Errors
    ///
    /// [`OpError`] saying why there is no result.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::{OpError, Outcome};
    ///
    /// let ok: Outcome<u32, String> = Outcome::Ok(1);
    /// assert_eq!(ok.into_result(), Ok(1));
    /// let late: Outcome<u32, String> = Outcome::TimedOut;
    /// assert_eq!(late.into_result(), Err(OpError::TimedOut));
    /// ```
    pub fn into_result(self) -> Result<R, OpError<E>> {
        match self {
            Self::Ok(result) => Ok(result),
            Self::Err(err) => Err(OpError::Failed(err)),
            Self::Abandoned => Err(OpError::Abandoned),
            Self::TimedOut => Err(OpError::TimedOut),
        }
    }
}

impl<R, E> From<Result<R, E>> for Outcome<R, E> {
    fn from(result: Result<R, E>) -> Self {
        match result {
            Ok(result) => Self::Ok(result),
            Err(err) => Self::Err(err),
        }
    }
}

impl<R: fmt::Debug, E: fmt::Debug> fmt::Debug for Outcome<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok(result) => f.debug_tuple("Ok").field(result).finish(),
            Self::Err(err) => f.debug_tuple("Err").field(err).finish(),
            Self::Abandoned => f.write_str("Abandoned"),
            Self::TimedOut => f.write_str("TimedOut"),
        }
    }
}

// ===== impl IdIndex =====

/// The ids of a group in the order they were added, with a hash index from id
/// to position: an insertion-ordered set that stores each id once.
pub(crate) struct IdIndex<Id> {
    ids: Vec<Id>,
    /// Positions into `ids`, hashed by the id at that position.
    table: HashTable<usize>,
    hasher: RandomState,
}

impl<Id: Hash + Eq> IdIndex<Id> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        // A hint, as in `Core::new`: room that cannot be had is not taken.
        let mut ids = Vec::new();
        let mut table = HashTable::new();
        if ids.try_reserve(capacity).is_ok() {
            // Empty: the rehash function is never called.
            let _ = table.try_reserve(capacity, |_: &usize| 0);
        }
        IdIndex {
            ids,
            table,
            hasher: RandomState::default(),
        }
    }

    /// Appends `id` and returns its position, or hands it back if present.
    pub(crate) fn insert(&mut self, id: Id) -> Result<usize, Id> {
        let hash = self.hasher.hash_one(&id);
        let ids = &self.ids;
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |&pos| ids[pos] == id,
            |&pos| hasher.hash_one(&ids[pos]),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => Err(id),
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                let pos = self.ids.len();
                vacant.insert(pos);
                self.ids.push(id);
                Ok(pos)
            }
        }
    }

    pub(crate) fn position<Q>(&self, id: &Q) -> Option<usize>
    where
        Id: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |&pos| self.ids[pos].borrow() == id)
            .copied()
    }
}

impl<Id> IdIndex<Id> {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

// ===== impl Results =====

/// The outcome of every operation of a finished [`CallGroup`](super::CallGroup),
/// by id and in the order the operations were added.
///
/// Every id added to the group has exactly one [`Outcome`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use flowgate::group::{CallGroup, Outcome};
///
/// let mut group = CallGroup::<&str, u32, String>::new();
/// group.add("a", ()).unwrap().finish(Ok(1));
/// group.add("b", ()).unwrap().finish(Err("nope".to_owned()));
/// drop(group.add("c", ()).unwrap()); // never finished
///
/// let results = group.wait().await;
/// assert_eq!(results.get("a"), Some(&Outcome::Ok(1)));
/// assert!(results.get("b").is_some_and(|o| !o.is_ok()));
/// assert_eq!(results.get("c"), Some(&Outcome::Abandoned));
/// assert_eq!(results.ids(), ["a", "b", "c"]);
/// # }
/// ```
pub struct Results<Id, R, E> {
    index: IdIndex<Id>,
    outcomes: Vec<Outcome<R, E>>,
}

impl<Id, R, E> Results<Id, R, E> {
    /// Pairs the ids with the recorded outcomes; a slot with no outcome is an
    /// operation that was still running when the deadline passed.
    pub(crate) fn new(index: IdIndex<Id>, outcomes: Vec<Option<Outcome<R, E>>>) -> Self {
        debug_assert_eq!(index.len(), outcomes.len());
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Outcome::TimedOut))
            .collect();
        Results { index, outcomes }
    }

    /// How many operations the group had.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// group.add(1, ()).unwrap().finish(Ok(()));
    /// drop(group.add(2, ()).unwrap()); // abandoned, still counted
    /// assert_eq!(group.wait().await.len(), 2);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether the group had no operations.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let results = CallGroup::<u32, (), ()>::new().wait().await;
    /// assert!(results.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// The ids, in the order the operations were added.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<&str, (), ()>::new();
    /// for id in ["b", "a"] {
    ///     group.add(id, ()).unwrap().finish(Ok(()));
    /// }
    /// assert_eq!(group.wait().await.ids(), ["b", "a"]); // in the order added
    /// # }
    /// ```
    pub fn ids(&self) -> &[Id] {
        &self.index.ids
    }

    /// The outcomes, in the order the operations were added: `outcomes()[i]`
    /// belongs to `ids()[i]` and to the [`Op`](super::Op) whose
    /// [`index`](super::Op::index) is `i`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, u32, &str>::new();
    /// group.add(1, ()).unwrap().finish(Ok(10));
    /// group.add(2, ()).unwrap().finish(Err("boom"));
    /// let results = group.wait().await;
    /// assert_eq!(results.outcomes(), [Outcome::Ok(10), Outcome::Err("boom")]);
    /// # }
    /// ```
    pub fn outcomes(&self) -> &[Outcome<R, E>] {
        &self.outcomes
    }

    /// Iterates over `(id, outcome)` in the order the operations were added.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, u32, ()>::new();
    /// group.add(1, ()).unwrap().finish(Ok(10));
    /// group.add(2, ()).unwrap().finish(Ok(20));
    /// let results = group.wait().await;
    /// let total: u32 = results
    ///     .iter()
    ///     .filter_map(|(_, outcome)| match outcome {
    ///         Outcome::Ok(n) => Some(*n),
    ///         _ => None,
    ///     })
    ///     .sum();
    /// assert_eq!(total, 30);
    /// # }
    /// ```
    pub fn iter(&self) -> Iter<'_, Id, R, E> {
        Iter {
            inner: self.index.ids.iter().zip(self.outcomes.iter()),
        }
    }

    /// How many operations finished with a result.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// group.add(1, ()).unwrap().finish(Ok(()));
    /// group.add(2, ()).unwrap().finish(Err(()));
    /// assert_eq!(group.wait().await.ok_count(), 1);
    /// # }
    /// ```
    pub fn ok_count(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_ok()).count()
    }

    /// Whether every operation finished with a result.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// group.add(1, ()).unwrap().finish(Ok(()));
    /// drop(group.add(2, ()).unwrap()); // abandoned
    /// assert!(!group.wait().await.all_ok());
    /// # }
    /// ```
    pub fn all_ok(&self) -> bool {
        self.outcomes.iter().all(Outcome::is_ok)
    }

    /// Takes the outcomes out, in the order the operations were added.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, u32, ()>::new();
    /// group.add(1, ()).unwrap().finish(Ok(1));
    /// group.add(2, ()).unwrap().finish(Ok(2));
    /// let outcomes: Vec<Outcome<u32, ()>> = group.wait().await.into_outcomes();
    /// assert_eq!(outcomes, [Outcome::Ok(1), Outcome::Ok(2)]);
    /// # }
    /// ```
    pub fn into_outcomes(self) -> Vec<Outcome<R, E>> {
        self.outcomes
    }
}

impl<Id: Hash + Eq, R, E> Results<Id, R, E> {
    /// The outcome of the operation added under `id`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<String, u32, ()>::new();
    /// group.add("a".to_owned(), ()).unwrap().finish(Ok(1));
    /// let results = group.wait().await;
    /// assert_eq!(results.get("a"), Some(&Outcome::Ok(1)));
    /// assert_eq!(results.get("zzz"), None);
    /// # }
    /// ```
    pub fn get<Q>(&self, id: &Q) -> Option<&Outcome<R, E>>
    where
        Id: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.position(id).map(|pos| &self.outcomes[pos])
    }

    /// Moves the results into a `HashMap` from id to outcome.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use flowgate::group::{CallGroup, Outcome};
    ///
    /// let mut group = CallGroup::<u32, u32, ()>::new();
    /// group.add(7, ()).unwrap().finish(Ok(49));
    /// let map = group.wait().await.into_map();
    /// assert_eq!(map[&7], Outcome::Ok(49));
    /// # }
    /// ```
    pub fn into_map(self) -> HashMap<Id, Outcome<R, E>> {
        self.into_iter().collect()
    }
}

impl<Id, R, E> IntoIterator for Results<Id, R, E> {
    type Item = (Id, Outcome<R, E>);
    type IntoIter = IntoIter<Id, R, E>;

    /// Iterates over `(id, outcome)` in the order the operations were added.
    fn into_iter(self) -> IntoIter<Id, R, E> {
        IntoIter {
            inner: self.index.ids.into_iter().zip(self.outcomes),
        }
    }
}

impl<'a, Id, R, E> IntoIterator for &'a Results<Id, R, E> {
    type Item = (&'a Id, &'a Outcome<R, E>);
    type IntoIter = Iter<'a, Id, R, E>;

    fn into_iter(self) -> Iter<'a, Id, R, E> {
        self.iter()
    }
}

impl<Id: fmt::Debug, R: fmt::Debug, E: fmt::Debug> fmt::Debug for Results<Id, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Iterator over `(&id, &outcome)` of [`Results`], from [`Results::iter`].
pub struct Iter<'a, Id, R, E> {
    inner: std::iter::Zip<std::slice::Iter<'a, Id>, std::slice::Iter<'a, Outcome<R, E>>>,
}

impl<'a, Id, R, E> Iterator for Iter<'a, Id, R, E> {
    type Item = (&'a Id, &'a Outcome<R, E>);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<Id, R, E> ExactSizeIterator for Iter<'_, Id, R, E> {}
impl<Id, R, E> FusedIterator for Iter<'_, Id, R, E> {}

impl<Id, R, E> fmt::Debug for Iter<'_, Id, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.inner.len())
            .finish()
    }
}

/// Owning iterator over `(id, outcome)` of [`Results`].
pub struct IntoIter<Id, R, E> {
    inner: std::iter::Zip<std::vec::IntoIter<Id>, std::vec::IntoIter<Outcome<R, E>>>,
}

impl<Id, R, E> Iterator for IntoIter<Id, R, E> {
    type Item = (Id, Outcome<R, E>);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<Id, R, E> ExactSizeIterator for IntoIter<Id, R, E> {}
impl<Id, R, E> FusedIterator for IntoIter<Id, R, E> {}

impl<Id, R, E> fmt::Debug for IntoIter<Id, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("remaining", &self.inner.len())
            .finish()
    }
}
