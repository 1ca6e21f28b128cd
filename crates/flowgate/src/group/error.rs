//! Errors of the [`group`](super) module.

use std::error::Error;
use std::fmt;

/// Returned by [`CallGroup::add`](super::CallGroup::add) when the group already
/// has an operation with the same id; the id and the message are handed back.
///
/// Nothing was added: the group is unchanged and the operation already under
/// this id is unaffected.
#[derive(Clone, PartialEq, Eq)]
pub struct AddError<Id, M> {
    pub(crate) id: Id,
    pub(crate) msg: M,
}

impl<Id, M> AddError<Id, M> {
    /// The id that is already in the group.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// let _op = group.add(1, "first").unwrap();
    /// assert_eq!(group.add(1, "again").unwrap_err().id(), &1);
    /// ```
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// Returns the id and the message that could not be added.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::CallGroup;
    ///
    /// let mut group = CallGroup::<u32, (), ()>::new();
    /// let _op = group.add(1, "first").unwrap();
    /// let (id, msg) = group.add(1, "again").unwrap_err().into_inner();
    /// assert_eq!((id, msg), (1, "again"));
    /// ```
    pub fn into_inner(self) -> (Id, M) {
        (self.id, self.msg)
    }
}

impl<Id, M> fmt::Debug for AddError<Id, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddError").finish_non_exhaustive()
    }
}

impl<Id, M> fmt::Display for AddError<Id, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an operation with this id is already in the group")
    }
}

impl<Id, M> Error for AddError<Id, M> {}

/// Why an operation has no result: the error half of
/// [`Outcome::into_result`](super::Outcome::into_result).
#[derive(Clone, PartialEq, Eq)]
pub enum OpError<E> {
    /// The operation finished with this error.
    Failed(E),
    /// The operation's [`Op`](super::Op) was dropped without being finished:
    /// the task holding it returned early, was cancelled or panicked.
    Abandoned,
    /// The group's deadline passed while the operation was still running.
    TimedOut,
}

impl<E> OpError<E> {
    /// The operation's own error, if it finished with one.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::{OpError, Outcome};
    ///
    /// let err = Outcome::<(), &str>::Err("boom").into_result().unwrap_err();
    /// assert_eq!(err.failed(), Some(&"boom"));
    /// assert_eq!(OpError::<&str>::TimedOut.failed(), None);
    /// ```
    pub fn failed(&self) -> Option<&E> {
        match self {
            Self::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// Whether the operation was dropped without being finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::Outcome;
    ///
    /// let err = Outcome::<(), ()>::Abandoned.into_result().unwrap_err();
    /// assert!(err.is_abandoned() && !err.is_timed_out());
    /// ```
    pub fn is_abandoned(&self) -> bool {
        matches!(self, Self::Abandoned)
    }

    /// Whether the group's deadline passed before the operation finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::group::Outcome;
    ///
    /// let err = Outcome::<(), ()>::TimedOut.into_result().unwrap_err();
    /// assert!(err.is_timed_out() && !err.is_abandoned());
    /// ```
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Self::TimedOut)
    }
}

impl<E: fmt::Debug> fmt::Debug for OpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(err) => f.debug_tuple("Failed").field(err).finish(),
            Self::Abandoned => f.write_str("Abandoned"),
            Self::TimedOut => f.write_str("TimedOut"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for OpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(err) => write!(f, "operation failed: {err}"),
            Self::Abandoned => f.write_str("operation was dropped without being finished"),
            Self::TimedOut => f.write_str("operation did not finish before the group's deadline"),
        }
    }
}

impl<E: Error + 'static> Error for OpError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Failed(err) => Some(err),
            _ => None,
        }
    }
}

/// Returned by [`CallGroup::set_deadline`](super::CallGroup::set_deadline)
/// and [`CallGroup::set_timeout`](super::CallGroup::set_timeout) when the
/// deadline cannot be enforced; the group is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetDeadlineError {
    /// A deadline was asked for outside a tokio runtime, so there is no timer
    /// to enforce it.
    NoRuntime,
}

impl fmt::Display for SetDeadlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRuntime => f.write_str("a call group deadline needs a tokio runtime"),
        }
    }
}

impl Error for SetDeadlineError {}
