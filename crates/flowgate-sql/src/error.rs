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
    /// A key column of another type that cannot be a key
    /// ([`ColumnType::can_be_key`]): `Json`.
    KeyType {
        /// The key column.
        column: String,
        /// Its type.
        ty: ColumnType,
    },
    /// [`not_null`](crate::TableBuilder::not_null) names a column that was
    /// not declared.
    UnknownColumn(String),
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
    /// A `Null` in a column declared
    /// [`not_null`](crate::TableBuilder::not_null).
    NullValue {
        /// Position of the row in its batch.
        row: usize,
        /// The column.
        column: String,
    },
    /// A [`Value::Timestamp`](crate::Value::Timestamp) outside
    /// [`Value::TIMESTAMP_MIN`](crate::Value::TIMESTAMP_MIN) ..=
    /// [`Value::TIMESTAMP_MAX`](crate::Value::TIMESTAMP_MAX).
    TimestampOutOfRange {
        /// Position of the row in its batch.
        row: usize,
        /// The column.
        column: String,
        /// The value, in microseconds since the Unix epoch.
        micros: i64,
    },
    /// A [`RowBatch`](crate::RowBatch) built for another table (other
    /// columns, types or key) than the sink's. A mistake in the program:
    /// fatal, not a row's content.
    OtherTable {
        /// The batch's table, as `name (columns)`.
        batch: String,
        /// The sink's table, as `name (columns)`.
        sink: String,
    },
}

impl TableError {
    /// Whether this is about a row (its content: it does not fit the table)
    /// rather than about the table's description. `write_each` refuses such
    /// rows one by one; see [`SinkError::is_content`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::TableError;
    ///
    /// assert!(TableError::NullValue { row: 0, column: "body".into() }.is_row_error());
    /// assert!(!TableError::NoKey.is_row_error());
    /// ```
    pub fn is_row_error(&self) -> bool {
        matches!(
            self,
            Self::RowLength { .. }
                | Self::ValueType { .. }
                | Self::NullKey { .. }
                | Self::NullValue { .. }
                | Self::TimestampOutOfRange { .. }
        )
    }
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
            Self::KeyType { column, ty } => {
                write!(
                    f,
                    "key column {column:?} has type {ty}, which cannot be a key"
                )
            }
            Self::UnknownColumn(name) => write!(f, "column {name:?} is not declared"),
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
                "row {row}: column {column:?} takes {expected}, got {actual}"
            ),
            Self::NullKey { row, column } => write!(f, "row {row}: key column {column:?} is null"),
            Self::NullValue { row, column } => {
                write!(f, "row {row}: column {column:?} is NOT NULL, got null")
            }
            Self::TimestampOutOfRange {
                row,
                column,
                micros,
            } => write!(
                f,
                "row {row}: column {column:?} takes timestamps of the years 0000 to 9999, got {micros} µs from the Unix epoch"
            ),
            Self::OtherTable { batch, sink } => write!(
                f,
                "a row batch built for table {batch} was given to the sink of table {sink}"
            ),
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
            Some(actual) => write!(f, "expected a {} value, got {actual}", self.expected),
            None => write!(f, "expected a {} value, got null", self.expected),
        }
    }
}

impl Error for ValueTypeError {}

/// An existing table that does not fit the [`Table`](crate::Table) a sink
/// was opened with; every mismatch is listed, so that one look tells what to
/// change.
///
/// ```text
/// table "public.orders" (PostgreSQL at 127.0.0.1:5432, database shop) does not fit the
/// mapping: column "seq" is missing; column "amount" is text, the mapping writes double
/// precision; the key (id) is not a primary key or unique constraint of the table, so rows
/// cannot be deduplicated; column "note" is NOT NULL without a default and not mapped
/// ```
///
/// Fatal: writing cannot succeed until the table or the mapping changes.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use flowgate_sql::{SchemaMismatch, SinkError, SqliteSink, Table, Value};
///
/// let dir = std::env::temp_dir().join(format!("flowgate-doc-schema-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("shop.db");
/// rusqlite::Connection::open(&path)?
///     .execute_batch("CREATE TABLE orders (id TEXT PRIMARY KEY, amount TEXT)")?;
///
/// let table = Table::builder("orders").text("id").real("amount").integer("seq").key("id").build()?;
/// let Err(SinkError::Schema(err)) = SqliteSink::open(&path, table, |_: &()| Vec::<Value>::new()).await
/// else {
///     panic!("the table does not fit")
/// };
/// assert_eq!(err.table(), "orders");
/// assert!(err.location().ends_with("shop.db\""));
/// assert_eq!(
///     err.mismatches(),
///     [
///         SchemaMismatch::ColumnType {
///             column: "amount".into(),
///             found: "TEXT (TEXT affinity)".into(),
///             expected: "REAL".into(),
///             note: None,
///         },
///         SchemaMismatch::MissingColumn { column: "seq".into() },
///     ]
/// );
/// assert!(err.to_string().ends_with(
///     r#"does not fit the mapping: column "amount" is TEXT (TEXT affinity), the mapping writes REAL; column "seq" is missing"#
/// ));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub(crate) table: String,
    pub(crate) location: String,
    pub(crate) mismatches: Vec<SchemaMismatch>,
}

impl SchemaError {
    /// The table, as the database resolved it (PostgreSQL: `schema.name`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SchemaMismatch, SinkError, SqliteSink, Table, Value};
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-schema-table-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("shop.db");
    /// let old = Table::builder("orders").text("id").key("id").build()?;
    /// drop(SqliteSink::open(&path, old, |_: &()| Vec::<Value>::new()).await?);
    ///
    /// let new = Table::builder("orders").text("id").integer("seq").key("id").build()?;
    /// let Err(SinkError::Schema(err)) = SqliteSink::open(&path, new, |_: &()| Vec::new()).await else {
    ///     panic!("the table has no column seq")
    /// };
    /// assert_eq!(err.table(), "orders");
    /// assert!(err.location().starts_with("SQLite database"), "{}", err.location());
    /// assert_eq!(err.mismatches(), [SchemaMismatch::MissingColumn { column: "seq".into() }]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "sqlite"))]
    /// # fn main() {}
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Where the table is: `PostgreSQL at host:port, database d` or
    /// `SQLite database "file"`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SchemaMismatch, SinkError, SqliteSink, Table, Value};
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-schema-location-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("shop.db");
    /// let old = Table::builder("orders").text("id").key("id").build()?;
    /// drop(SqliteSink::open(&path, old, |_: &()| Vec::<Value>::new()).await?);
    ///
    /// let new = Table::builder("orders").text("id").integer("seq").key("id").build()?;
    /// let Err(SinkError::Schema(err)) = SqliteSink::open(&path, new, |_: &()| Vec::new()).await else {
    ///     panic!("the table has no column seq")
    /// };
    /// assert_eq!(err.table(), "orders");
    /// assert!(err.location().starts_with("SQLite database"), "{}", err.location());
    /// assert_eq!(err.mismatches(), [SchemaMismatch::MissingColumn { column: "seq".into() }]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "sqlite"))]
    /// # fn main() {}
    /// ```
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Every mismatch found (never empty).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SchemaMismatch, SinkError, SqliteSink, Table, Value};
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-schema-mismatches-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("shop.db");
    /// let old = Table::builder("orders").text("id").key("id").build()?;
    /// drop(SqliteSink::open(&path, old, |_: &()| Vec::<Value>::new()).await?);
    ///
    /// let new = Table::builder("orders").text("id").integer("seq").key("id").build()?;
    /// let Err(SinkError::Schema(err)) = SqliteSink::open(&path, new, |_: &()| Vec::new()).await else {
    ///     panic!("the table has no column seq")
    /// };
    /// assert_eq!(err.table(), "orders");
    /// assert!(err.location().starts_with("SQLite database"), "{}", err.location());
    /// assert_eq!(err.mismatches(), [SchemaMismatch::MissingColumn { column: "seq".into() }]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "sqlite"))]
    /// # fn main() {}
    /// ```
    pub fn mismatches(&self) -> &[SchemaMismatch] {
        &self.mismatches
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {:?} ({}) does not fit the mapping: ",
            self.table, self.location
        )?;
        for (i, mismatch) in self.mismatches.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{mismatch}")?;
        }
        Ok(())
    }
}

impl Error for SchemaError {}

/// One way an existing table does not fit a [`Table`](crate::Table); see
/// [`SchemaError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaMismatch {
    /// The name is not an ordinary table (a view, a sequence, …).
    NotATable {
        /// What it is: `a view`, `a materialized view`, …
        kind: String,
    },
    /// A column of the mapping is not in the table.
    MissingColumn {
        /// The column.
        column: String,
    },
    /// A column's type is not the one the mapping writes.
    ColumnType {
        /// The column.
        column: String,
        /// Its type in the table (PostgreSQL: `format_type`; SQLite: the
        /// declared type and its affinity).
        found: String,
        /// The type the mapping writes.
        expected: String,
        /// Why the two do not fit, when it is not obvious.
        note: Option<String>,
    },
    /// A column of the mapping that the database fills itself (generated,
    /// identity `GENERATED ALWAYS`).
    NotWritable {
        /// The column.
        column: String,
        /// What it is: `generated`, `an identity column GENERATED ALWAYS`.
        what: String,
    },
    /// The key columns are not exactly the columns of the primary key or of
    /// a unique constraint (a unique, non-partial, non-deferrable index on
    /// plain columns), so `ON CONFLICT (key)` cannot find duplicates.
    KeyNotUnique {
        /// The key columns of the mapping.
        key: Vec<String>,
    },
    /// A column the mapping does not write, which is `NOT NULL` without a
    /// default: every insert would fail.
    UnmappedNotNull {
        /// The column.
        column: String,
    },
}

impl fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotATable { kind } => write!(f, "it is {kind}, not a table"),
            Self::MissingColumn { column } => write!(f, "column {column:?} is missing"),
            Self::ColumnType {
                column,
                found,
                expected,
                note,
            } => {
                write!(
                    f,
                    "column {column:?} is {found}, the mapping writes {expected}"
                )?;
                if let Some(note) = note {
                    write!(f, " ({note})")?;
                }
                Ok(())
            }
            Self::NotWritable { column, what } => {
                write!(f, "column {column:?} is {what}, so it cannot be written")
            }
            Self::KeyNotUnique { key } => write!(
                f,
                "the key ({}) is not a primary key or unique constraint of the table, so rows cannot be deduplicated",
                key.join(", ")
            ),
            Self::UnmappedNotNull { column } => write!(
                f,
                "column {column:?} is NOT NULL without a default and not mapped"
            ),
        }
    }
}

/// Why a sink could not be opened or a batch (or a row) could not be written.
///
/// # What to do with a failed write
///
/// Every error is one of three kinds, which tell the caller what to do:
///
/// - [transient](Self::is_transient): the database is unreachable, busy,
///   shutting down or out of resources. The batch is fine: retry it later,
///   with backoff, and keep the messages it came from (a sink outage is
///   back-pressure, never a reason to drop or dead-letter).
/// - [content](Self::is_content): a row of the batch is refused — it does not
///   fit the [`Table`](crate::Table), or the database rejects it (PostgreSQL
///   classes 22 *data exception* and 23 *integrity constraint violation*;
///   SQLite constraint, datatype mismatch, too big). Retrying the same batch
///   fails the same way. Write it with `write_each`
///   ([`SqliteSink::write_each`](crate::SqliteSink::write_each),
///   [`PostgresSink::write_each`](crate::PostgresSink::write_each)) to store
///   the good rows and get the reason for each bad one (to dead-letter it).
/// - [fatal](Self::is_fatal): anything else — the table was dropped
///   (`42P01`), privileges are missing (`42501`), the table does not fit the
///   mapping ([`Schema`](Self::Schema)), a bad connection string, a wrong
///   password or database name. No write can succeed until a person changes
///   something: the caller must stop (and say why), not retry and not
///   dead-letter.
///
/// A failed [`write`](crate::SqliteSink::write) stores none of the batch's
/// rows (it is one transaction or one statement), so the whole batch can be
/// retried.
///
/// # Messages
///
/// The [`Display`](fmt::Display) names where the error happened — the host
/// and port, database and user of PostgreSQL (never the password), the file
/// of SQLite — and, for an error the PostgreSQL server reported, its severity,
/// SQLSTATE code, message, detail and hint:
///
/// ```text
/// cannot connect to PostgreSQL at 127.0.0.1:5432 (database shop, user bob): FATAL 28P01: password authentication failed for user "bob"
/// postgres at 127.0.0.1:5432 (database shop): ERROR 42703: column "seq" of relation "t" does not exist
/// ```
///
/// [`source`](Error::source) goes on where the Display stops — the I/O error
/// of a refused connection (`Connection refused (os error 111)`), rusqlite's
/// error — so that printing the whole chain repeats nothing. A server's
/// error, a [`TableError`] and a [`SchemaError`] are complete in the Display,
/// so the chain stops there. The variants hold the typed errors: the `source`
/// field of [`Connect`](Self::Connect) and [`Postgres`](Self::Postgres) is the
/// [`tokio_postgres::Error`], for [`DbError`] access.
///
/// [`DbError`]: tokio_postgres::error::DbError
#[derive(Debug)]
#[non_exhaustive]
pub enum SinkError {
    /// A row did not fit the table (content, see
    /// [`TableError::is_row_error`]), or a [`TableError`] of the table's
    /// description. Permanent: retrying the same batch fails the same way.
    Table(TableError),
    /// The existing table does not fit the mapping. Fatal.
    Schema(SchemaError),
    /// SQLite reported an error.
    #[cfg(feature = "sqlite")]
    Sqlite {
        /// The database file (`:memory:` for an in-memory database).
        database: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The PostgreSQL connection string could not be parsed (it is not
    /// repeated: it may hold a password). Fatal.
    #[cfg(feature = "postgres")]
    InvalidUrl(tokio_postgres::Error),
    /// The connection to PostgreSQL could not be made: refused, timed out,
    /// authentication failed, no such database.
    #[cfg(feature = "postgres")]
    Connect {
        /// The server(s) tried: `host:port` or a Unix socket path, comma
        /// separated.
        target: String,
        /// The database asked for.
        database: String,
        /// The user connecting.
        user: String,
        /// What tokio-postgres or the server said.
        source: tokio_postgres::Error,
    },
    /// A statement failed, or the connection broke during one.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The server: `host:port` or a Unix socket path.
        target: String,
        /// The database.
        database: String,
        /// What tokio-postgres or the server said.
        source: tokio_postgres::Error,
    },
    /// The blocking task that ran the write panicked or was cancelled (the
    /// runtime is shutting down).
    Task(String),
}

impl SinkError {
    /// Whether retrying later may succeed: connection problems, a busy or
    /// locked database, serialization failures, a server out of resources or
    /// shutting down (PostgreSQL classes 08, 40, 53, 57 and `55P03`
    /// *lock not available*). See [what to do](Self#what-to-do-with-a-failed-write).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{SinkError, TableError};
    ///
    /// // A write whose blocking task was cancelled: retry it later.
    /// assert!(SinkError::Task("the runtime is shutting down".into()).is_transient());
    /// // A row that does not fit fails the same way every time.
    /// let bad_row = SinkError::Table(TableError::NullKey { row: 0, column: "id".into() });
    /// assert!(!bad_row.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Table(_) | Self::Schema(_) => false,
            #[cfg(feature = "sqlite")]
            Self::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            #[cfg(feature = "postgres")]
            Self::InvalidUrl(_) => false,
            #[cfg(feature = "postgres")]
            Self::Connect { source, .. } | Self::Postgres { source, .. } => {
                postgres_transient(source)
            }
            Self::Task(_) => true,
        }
    }

    /// Whether the database (or the row check) refused a row of the batch
    /// for its content: a row that does not fit the table
    /// ([`TableError::is_row_error`]); PostgreSQL class 22 *data exception*
    /// (a NUL byte in text, invalid JSON, a value out of range) or 23
    /// *integrity constraint violation* (`CHECK`, `NOT NULL`, foreign key, a
    /// unique constraint other than the key); SQLite `SQLITE_CONSTRAINT`,
    /// `SQLITE_MISMATCH`, `SQLITE_TOOBIG`. Retrying the same rows fails the
    /// same way; `write_each` isolates them. See
    /// [what to do](Self#what-to-do-with-a-failed-write).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{SinkError, TableError};
    ///
    /// let bad_row = SinkError::Table(TableError::NullKey { row: 3, column: "id".into() });
    /// assert!(bad_row.is_content());
    /// assert!(!bad_row.is_transient() && !bad_row.is_fatal());
    /// let bad_table = SinkError::Table(TableError::NoKey);
    /// assert!(bad_table.is_fatal());
    /// ```
    pub fn is_content(&self) -> bool {
        match self {
            Self::Table(err) => err.is_row_error(),
            Self::Schema(_) => false,
            #[cfg(feature = "sqlite")]
            Self::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::ConstraintViolation
                        | rusqlite::ErrorCode::TypeMismatch
                        | rusqlite::ErrorCode::TooBig
                )
            ),
            #[cfg(feature = "postgres")]
            Self::InvalidUrl(_) | Self::Connect { .. } => false,
            #[cfg(feature = "postgres")]
            Self::Postgres { source, .. } => source
                .code()
                .is_some_and(|code| matches!(&code.code()[..2], "22" | "23")),
            Self::Task(_) => false,
        }
    }

    /// Neither [transient](Self::is_transient) nor
    /// [content](Self::is_content): nothing will be written until a person
    /// changes something (the table, the mapping, the privileges, the
    /// connection settings). The caller must stop. See
    /// [what to do](Self#what-to-do-with-a-failed-write).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{SinkError, TableError};
    ///
    /// assert!(SinkError::Table(TableError::NoColumns).is_fatal());
    /// assert!(!SinkError::Task("cancelled".into()).is_fatal(), "retried");
    /// ```
    pub fn is_fatal(&self) -> bool {
        !self.is_transient() && !self.is_content()
    }

    /// The SQLSTATE code of an error the PostgreSQL server reported
    /// (`"42P01"`), if it is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::SinkError;
    ///
    /// assert_eq!(SinkError::Task("cancelled".into()).sqlstate(), None);
    /// ```
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Connect { source, .. } | Self::Postgres { source, .. } => {
                source.code().map(|code| code.code())
            }
            _ => None,
        }
    }
}

#[cfg(feature = "postgres")]
fn postgres_transient(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => {
            let code = code.code();
            // 08: connection exception; 40: transaction rollback
            // (serialization failure, deadlock); 53: insufficient resources;
            // 57: operator intervention (shutdown, cancel); 55P03: lock not
            // available (lock_timeout).
            matches!(&code[..2], "08" | "40" | "53" | "57") || code == "55P03"
        }
        // No server code: an I/O error, a closed connection or a timeout is
        // transient; a bad configuration, an encoding or a protocol problem
        // is not.
        None => {
            err.is_closed()
                || err
                    .source()
                    .is_some_and(|cause| cause.downcast_ref::<std::io::Error>().is_some())
                || err.to_string() == "timeout waiting for server"
        }
    }
}

/// The one-line form of an error the server reported:
/// `ERROR 42703: message (detail: …; hint: …)`.
#[cfg(feature = "postgres")]
fn write_db_error(f: &mut fmt::Formatter<'_>, db: &tokio_postgres::error::DbError) -> fmt::Result {
    write!(
        f,
        "{} {}: {}",
        db.severity(),
        db.code().code(),
        db.message()
    )?;
    match (db.detail(), db.hint()) {
        (Some(detail), Some(hint)) => write!(f, " (detail: {detail}; hint: {hint})"),
        (Some(detail), None) => write!(f, " (detail: {detail})"),
        (None, Some(hint)) => write!(f, " (hint: {hint})"),
        (None, None) => Ok(()),
    }
}

/// A tokio-postgres error as the Display of a [`SinkError`] shows it: the
/// server's error in full, or tokio-postgres's own words
/// (`error connecting to server`), whose cause the source chain gives.
#[cfg(feature = "postgres")]
fn write_postgres_error(f: &mut fmt::Formatter<'_>, err: &tokio_postgres::Error) -> fmt::Result {
    match err.as_db_error() {
        Some(db) => write_db_error(f, db),
        None => write!(f, "{err}"),
    }
}

/// What a tokio-postgres error wraps (an I/O error, a parse error).
#[cfg(feature = "postgres")]
fn postgres_cause(err: &tokio_postgres::Error) -> Option<&(dyn Error + 'static)> {
    err.source()
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(err) if err.is_row_error() => {
                write!(f, "row does not fit the table: {err}")
            }
            Self::Table(err) => write!(f, "invalid table: {err}"),
            Self::Schema(err) => write!(f, "{err}"),
            #[cfg(feature = "sqlite")]
            Self::Sqlite { database, source } => {
                write!(f, "sqlite database {database:?}: {source}")
            }
            #[cfg(feature = "postgres")]
            Self::InvalidUrl(_) => f.write_str(
                "invalid PostgreSQL connection string (not repeated here: it may hold a password)",
            ),
            #[cfg(feature = "postgres")]
            Self::Connect {
                target,
                database,
                user,
                source,
            } => {
                write!(
                    f,
                    "cannot connect to PostgreSQL at {target} (database {database}, user {user}): "
                )?;
                write_postgres_error(f, source)
            }
            #[cfg(feature = "postgres")]
            Self::Postgres {
                target,
                database,
                source,
            } => {
                write!(f, "postgres at {target} (database {database}): ")?;
                write_postgres_error(f, source)
            }
            Self::Task(msg) => write!(f, "sink task failed: {msg}"),
        }
    }
}

impl Error for SinkError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // Complete in the Display (the variant holds the typed error).
            Self::Table(_) | Self::Schema(_) => None,
            #[cfg(feature = "sqlite")]
            Self::Sqlite { source, .. } => Some(source),
            // The Display said what tokio-postgres's error says (a server's
            // error in full, or "error connecting to server"): go on with
            // its cause (an I/O error), never repeating it.
            #[cfg(feature = "postgres")]
            Self::InvalidUrl(source) => postgres_cause(source),
            #[cfg(feature = "postgres")]
            Self::Connect { source, .. } | Self::Postgres { source, .. } => {
                if source.as_db_error().is_some() {
                    None
                } else {
                    postgres_cause(source)
                }
            }
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

impl From<SchemaError> for SinkError {
    fn from(err: SchemaError) -> Self {
        Self::Schema(err)
    }
}
