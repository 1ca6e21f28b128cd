//! Errors of the sinks.

use std::error::Error;
use std::fmt;

use crate::table::ColumnType;

/// A table description or a row that does not fit it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableError {
    /// A table or column name that is not a plain SQL identifier.
    InvalidIdentifier(String),
    /// A table without columns.
    NoColumns,
    /// Two columns with the same name (compared case-insensitively, as SQL does).
    DuplicateColumn(String),
    /// A table without key columns: writes could not be idempotent.
    NoKey,
    /// A key column that was not declared.
    UnknownKeyColumn(String),
    /// A key column of type `Real`: floats make unreliable keys.
    RealKey(String),
    /// A row with a different number of values than the table has columns.
    RowLength {
        /// Position of the row in its batch.
        row: usize,
        /// Columns of the table.
        expected: usize,
        /// Values in the row.
        actual: usize,
    },
    /// A value whose type differs from its column's.
    ValueType {
        /// Position of the row in its batch.
        row: usize,
        /// The column.
        column: String,
        /// The column's type.
        expected: ColumnType,
        /// The value's type.
        actual: ColumnType,
    },
    /// A `Null` in a key column.
    NullKey {
        /// Position of the row in its batch.
        row: usize,
        /// The key column.
        column: String,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIdentifier(name) => write!(
                f,
                "{name:?} is not a plain SQL identifier (ASCII letters, digits and _, not starting with a digit, at most 63 bytes)"
            ),
            Self::NoColumns => f.write_str("a table needs at least one column"),
            Self::DuplicateColumn(name) => write!(f, "column {name:?} is declared twice"),
            Self::NoKey => f.write_str("a table needs at least one key column"),
            Self::UnknownKeyColumn(name) => write!(f, "key column {name:?} is not declared"),
            Self::RealKey(name) => write!(f, "key column {name:?} has type Real"),
            Self::RowLength {
                row,
                expected,
                actual,
            } => write!(f, "row {row} has {actual} values for {expected} columns"),
            Self::ValueType {
                row,
                column,
                expected,
                actual,
            } => write!(
                f,
                "row {row}: column {column:?} takes {expected:?}, got {actual:?}"
            ),
            Self::NullKey { row, column } => write!(f, "row {row}: key column {column:?} is null"),
        }
    }
}

impl Error for TableError {}

/// A [`Value`](crate::Value) of another type than the one asked for, from
/// `TryFrom<Value>` (reading back a cursor or a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueTypeError {
    /// The type asked for.
    pub expected: ColumnType,
    /// The value's type; `None` for `Null`.
    pub actual: Option<ColumnType>,
}

impl fmt::Display for ValueTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.actual {
            Some(actual) => write!(f, "expected a {:?} value, got {actual:?}", self.expected),
            None => write!(f, "expected a {:?} value, got null", self.expected),
        }
    }
}

impl Error for ValueTypeError {}

/// Why a sink could not be opened or a batch could not be written.
///
/// A failed write stores none of the batch's rows (it is one transaction or
/// one statement), so the whole batch can be retried.
#[derive(Debug)]
#[non_exhaustive]
pub enum SinkError {
    /// A row did not fit the table. Permanent: retrying the same batch fails
    /// the same way.
    Table(TableError),
    /// SQLite reported an error.
    #[cfg(feature = "sqlite")]
    Sqlite(rusqlite::Error),
    /// PostgreSQL reported an error, or the connection failed.
    #[cfg(feature = "postgres")]
    Postgres(tokio_postgres::Error),
    /// The blocking task that ran the write panicked or was cancelled (the
    /// runtime is shutting down).
    Task(String),
}

impl SinkError {
    /// Whether retrying later may succeed: connection problems, a busy or
    /// locked database, serialization failures. Rows that do not fit the
    /// table and constraint violations are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Table(_) => false,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(err) => matches!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            #[cfg(feature = "postgres")]
            Self::Postgres(err) => match err.code() {
                None => true, // I/O or a closed connection
                Some(code) => {
                    let class = &code.code()[..2];
                    // 08: connection exception; 40: transaction rollback
                    // (serialization failure, deadlock); 53: insufficient
                    // resources; 57: operator intervention (shutdown).
                    matches!(class, "08" | "40" | "53" | "57")
                }
            },
            Self::Task(_) => true,
        }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(err) => write!(f, "row does not fit the table: {err}"),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(err) => write!(f, "sqlite: {err}"),
            #[cfg(feature = "postgres")]
            Self::Postgres(err) => write!(f, "postgres: {err}"),
            Self::Task(msg) => write!(f, "sink task failed: {msg}"),
        }
    }
}

impl Error for SinkError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Table(err) => Some(err),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(err) => Some(err),
            #[cfg(feature = "postgres")]
            Self::Postgres(err) => Some(err),
            Self::Task(_) => None,
        }
    }
}

impl From<SinkError> for flowgate::StoreError {
    /// Keeps [`SinkError::is_transient`] as [`StoreError::is_transient`](flowgate::StoreError::is_transient).
    fn from(err: SinkError) -> Self {
        if err.is_transient() {
            flowgate::StoreError::transient(err)
        } else {
            flowgate::StoreError::new(err)
        }
    }
}

impl From<TableError> for SinkError {
    fn from(err: TableError) -> Self {
        Self::Table(err)
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for SinkError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err)
    }
}

#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for SinkError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Postgres(err)
    }
}
