//! Idempotent batch sinks for [flowgate](https://docs.rs/flowgate): write a
//! batch of rows in one round trip, skip rows whose key is already stored, and
//! report for every row whether it was inserted or a duplicate.
//!
//! They are made to be the flush function of a
//! [`flowgate::batch::Batcher`](https://docs.rs/flowgate/latest/flowgate/batch/struct.Batcher.html):
//! each submitter's ack resolves to that row's [`Written`], and a failed write
//! fails exactly that batch's acks. With an at-least-once source (a broker
//! that redelivers what was not acknowledged), the key makes the end result
//! effectively-once.
//!
//! | sink | how a batch is written | when a row is refused ([`write_each`](PostgresSink::write_each)) |
//! |---|---|---|
//! | [`SqliteSink`] (feature `sqlite`) | one transaction per batch, `INSERT … ON CONFLICT DO NOTHING` per row, WAL journal; runs on tokio's blocking pool | that row's statement fails alone; the transaction goes on |
//! | [`PostgresSink`] (feature `postgres`) | one `INSERT … SELECT FROM UNNEST($1, $2, …) ON CONFLICT DO NOTHING` per batch, binary typed arrays: one statement, one round trip, atomic; the inserted keys come back only when some row was a duplicate; a pool of connections (2 by default) for concurrent writes | the batch is split in halves, recursively, until each refused row is alone |
//!
//! # Tables, types and values
//!
//! A [`Table`] names the columns a sink writes, their [`ColumnType`]s
//! (`Integer`, `Real`, `Text`, `Blob`, `Boolean`, `Json`, `Timestamp`; see
//! its table for the SQL types), which ones are `NOT NULL`, and the key. An
//! encoder function turns each item into a row of [`Value`]s; rows are
//! checked against the table ([`Table::check_row`]) before anything is sent.
//! To turn raw bytes — a broker message's fields — into values,
//! [`Value::parse`] applies one documented rule per type and says exactly what
//! is wrong when the bytes do not fit ([`ParseValueError`]:
//! `not a valid bigint: "abc"`).
//!
//! For a pipeline that makes rows from raw bytes at a high rate there is a
//! second way in, with no allocation per row: a [`RowBatch`] stores a
//! batch's rows by column (the bytes of a text or blob column back to back,
//! the integers of an integer column in one vector), each row checked as
//! it is appended ([`RowBatch::append`], or value by value with a
//! [`RowWriter`]), and [`ValueRef::parse`] turns bytes into a value
//! borrowed from them. `write_batch` (on both sinks) binds each value from
//! the batch's buffers. `flowgate ingest` writes this way; so does
//! `cargo run --release -p flowgate-sql --example columns`, a pipeline of
//! raw messages and ack tokens through `write_batches` into SQLite.
//!
//! When a sink opens, it creates a missing table (any number of sinks may
//! start at once), or checks an existing one and reports every way it does
//! not fit at once ([`SchemaError`]): missing columns, columns of other types,
//! a key that is not a primary key or unique constraint, `NOT NULL` columns it
//! would leave empty.
//!
//! # Errors
//!
//! A [`SinkError`] names where it happened (host and port, database and user
//! of PostgreSQL, never the password; the file of SQLite) and carries the
//! server's own message, SQLSTATE, detail and hint. It is one of three kinds,
//! which tell the caller what to do with the batch:
//! [transient](SinkError::is_transient) (retry later: a sink outage is
//! back-pressure), [content](SinkError::is_content) (a row is refused: use
//! `write_each` to store the others and dead-letter that one with its
//! [reason](RowOutcome::Rejected)), or [fatal](SinkError::is_fatal) (stop:
//! the table is gone or does not fit, privileges or settings are wrong).
//!
//! With the `sqlite` feature it also has the durable stores of flowgate's
//! sources: [`SqliteCheckpointStore`] (where a
//! [`CursorSource`](flowgate::source::CursorSource) resumes from) and
//! [`SqliteIdempotencyStore`] (which keys an
//! [`Idempotency`](flowgate::idempotency::Idempotency) guard has processed).
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use flowgate::batch::Batcher;
//! use flowgate_sql::{SqliteSink, Table, Value, Written};
//!
//! struct Event { id: String, body: Vec<u8> }
//!
//! let table = Table::builder("events").text("id").blob("body").key("id").build()?;
//! let sink = SqliteSink::open_in_memory(table, |e: &Event| {
//!     vec![Value::from(e.id.as_str()), Value::from(e.body.as_slice())]
//! })
//! .await?;
//!
//! let writer = sink.clone();
//! let batcher = Batcher::builder()
//!     .max_items(500)
//!     .build(move |events: Vec<Event>| {
//!         let sink = writer.clone();
//!         async move { sink.write(events).await }
//!     })?;
//!
//! let first = batcher.submit(Event { id: "a".into(), body: b"1".to_vec() }).await?;
//! let again = batcher.submit(Event { id: "a".into(), body: b"1".to_vec() }).await?;
//! batcher.close().await;
//! assert_eq!(first.await?, Written::Inserted);
//! assert_eq!(again.await?, Written::Duplicate); // redelivered: stored once
//! assert_eq!(sink.count().await?, 1);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```
//!
//! # Features
//!
//! - `sqlite` (default): [`SqliteSink`], [`SqliteCheckpointStore`] and
//!   [`SqliteIdempotencyStore`], with SQLite compiled in (no system library
//!   needed).
//! - `postgres` (default): [`PostgresSink`].
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings), allow(unused_variables))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "sqlite")]
mod checkpoint;
mod error;
#[cfg(feature = "sqlite")]
mod idempotency;
mod parse;
#[cfg(feature = "postgres")]
mod postgres;
mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod store;
mod table;
#[cfg(feature = "sqlite")]
mod wal;

#[cfg(feature = "sqlite")]
pub use checkpoint::SqliteCheckpointStore;
pub use error::{SchemaError, SchemaMismatch, SinkError, TableError, ValueTypeError};
#[cfg(feature = "sqlite")]
pub use idempotency::SqliteIdempotencyStore;
pub use parse::ParseValueError;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresSink};
pub use rows::{RowBatch, RowWriter, ValueRef};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteSink;
pub use table::{Column, ColumnType, Table, TableBuilder, Value};

/// What happened to one row of a written batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Written {
    /// The row was stored.
    Inserted,
    /// A row with the same key was already stored (or came earlier in the
    /// same batch), so this one was skipped.
    Duplicate,
}

/// What happened to one row given to `write_each`
/// ([`SqliteSink::write_each`], [`PostgresSink::write_each`]).
///
/// # Examples
///
/// ```
/// use flowgate_sql::{RowOutcome, SinkError, TableError, Written};
///
/// let stored = RowOutcome::from(Written::Inserted);
/// assert_eq!(stored.written(), Some(Written::Inserted));
/// assert!(stored.rejection().is_none());
///
/// let refused = RowOutcome::Rejected(SinkError::Table(TableError::NullKey {
///     row: 4,
///     column: "id".into(),
/// }));
/// assert_eq!(refused.written(), None);
/// assert!(refused.rejection().is_some_and(SinkError::is_content));
/// let reason = refused.into_result().unwrap_err();
/// assert_eq!(reason.to_string(), r#"row does not fit the table: row 4: key column "id" is null"#);
/// ```
#[derive(Debug)]
pub enum RowOutcome {
    /// The row was stored.
    Inserted,
    /// A row with the same key was already stored (or came earlier in the
    /// same batch), so this one was skipped.
    Duplicate,
    /// The row was refused for its content, and not stored: it does not fit
    /// the [`Table`] ([`SinkError::Table`]), or the database rejected it (a
    /// [content](SinkError::is_content) error with the database's message,
    /// naming the constraint or the problem). Dead-letter it with this reason.
    Rejected(SinkError),
}

impl RowOutcome {
    /// [`Inserted`](Self::Inserted) or [`Duplicate`](Self::Duplicate) as a
    /// [`Written`]; `None` for [`Rejected`](Self::Rejected).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowOutcome, SinkError, Written};
    ///
    /// assert_eq!(RowOutcome::Duplicate.written(), Some(Written::Duplicate));
    /// assert_eq!(RowOutcome::Rejected(SinkError::Task("gone".into())).written(), None);
    /// ```
    pub fn written(&self) -> Option<Written> {
        match self {
            RowOutcome::Inserted => Some(Written::Inserted),
            RowOutcome::Duplicate => Some(Written::Duplicate),
            RowOutcome::Rejected(_) => None,
        }
    }

    /// The reason of a [`Rejected`](Self::Rejected) row.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowOutcome, SinkError, TableError};
    ///
    /// assert!(RowOutcome::Inserted.rejection().is_none());
    /// let refused = RowOutcome::Rejected(SinkError::Table(TableError::NullKey {
    ///     row: 0,
    ///     column: "id".into(),
    /// }));
    /// assert!(refused.rejection().is_some_and(SinkError::is_content));
    /// ```
    pub fn rejection(&self) -> Option<&SinkError> {
        match self {
            RowOutcome::Rejected(reason) => Some(reason),
            _ => None,
        }
    }

    /// `Ok` with the [`Written`], or `Err` with the reason of a rejected row.
    ///
    /// # Errors
    ///
    /// The reason of a [`Rejected`](Self::Rejected) row.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowOutcome, SinkError, TableError, Written};
    ///
    /// assert_eq!(RowOutcome::Inserted.into_result()?, Written::Inserted);
    /// let refused = RowOutcome::Rejected(SinkError::Table(TableError::NullKey {
    ///     row: 2,
    ///     column: "id".into(),
    /// }));
    /// let reason = refused.into_result().unwrap_err();
    /// assert_eq!(reason.to_string(), r#"row does not fit the table: row 2: key column "id" is null"#);
    /// # Ok::<(), SinkError>(())
    /// ```
    pub fn into_result(self) -> Result<Written, SinkError> {
        match self {
            RowOutcome::Inserted => Ok(Written::Inserted),
            RowOutcome::Duplicate => Ok(Written::Duplicate),
            RowOutcome::Rejected(reason) => Err(reason),
        }
    }
}

impl From<Written> for RowOutcome {
    fn from(written: Written) -> Self {
        match written {
            Written::Inserted => RowOutcome::Inserted,
            Written::Duplicate => RowOutcome::Duplicate,
        }
    }
}

/// Turns an item into the values of one row, in the table's column order.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) type Encoder<T> = Box<dyn Fn(&T) -> Vec<Value> + Send + Sync + 'static>;
