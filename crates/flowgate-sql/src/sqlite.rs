//! [`SqliteSink`]: batches into SQLite, one transaction per batch.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension};

use crate::error::{SchemaError, SchemaMismatch, SinkError};
use crate::rows::{RowBatch, RowSet};
use crate::table::{ColumnType, Table, Value};
use crate::wal::Checkpointer;
use crate::{Encoder, RowOutcome, Written};

/// Writes batches of `T` into a SQLite table, idempotently.
///
/// Each [`write`](Self::write) is one transaction: the rows are inserted with
/// `INSERT … VALUES (…), (…), … ON CONFLICT DO NOTHING`, 32 rows per
/// statement (cached prepared statements; a chunk in which a row was a
/// duplicate is undone to its savepoint and written again a row at a time,
/// so each row's outcome is known), and the transaction commits once, so a
/// batch is stored entirely or not at all. Multi-row statements cost about
/// half the CPU per row of one statement per row.
/// [`write_each`](Self::write_each) is the same transaction, but a row the
/// database refuses is set aside with its reason while the others are stored.
/// The database runs in WAL mode with `synchronous = NORMAL`: a committed batch
/// survives a crash of the process (and of the machine up to the last
/// checkpoint), and readers never block the writer.
///
/// Values are stored as SQLite has them: [`Boolean`](Value::Boolean) as the
/// integer 0 or 1, [`Json`](Value::Json) as its text,
/// [`Timestamp`](Value::Timestamp) as RFC 3339 UTC text with six fraction
/// digits (`2026-12-01T22:01:15.123456Z`, which sorts in time order).
///
/// When it opens, the sink creates the table if it does not exist, or checks
/// the existing one (see [`open`](Self::open)).
///
/// SQLite calls block, so they run on tokio's blocking thread pool; one
/// connection serializes writes (SQLite allows one writer at a time anyway).
/// Concurrent batch writes ([`write_values`](Self::write_values),
/// [`write_batch`](Self::write_batch)) wait in a queue that one blocking
/// task runs, one after another, so the connection is not handed from
/// thread to thread between batches. The sink is cheap to clone and every
/// clone shares the connection.
pub struct SqliteSink<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    conn: Mutex<Connection>,
    table: Table,
    encode: Encoder<T>,
    inserts: Inserts,
    path: Option<PathBuf>,
    database: String,
    /// Checkpoints a database file off the writer's thread (see `wal`).
    checkpointer: Option<Checkpointer>,
    /// Batch writes waiting for the connection.
    writes: WriteQueue,
}

/// A write waiting for the connection; it sends its own result.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Batch writes waiting for the connection, run one after another by one
/// blocking task at a time: the task that finishes a write goes on with the
/// next queued one, instead of handing the connection to the next write's
/// own thread. That hand-off is a wake-up between every two batches — and,
/// on a machine whose cores are busy, a wait for a core while the database
/// stands idle (measured: the SQLite writer idle half the time at 700k rows
/// per second on two cores, BENCHMARKS.md).
#[derive(Default)]
struct WriteQueue {
    jobs: Mutex<std::collections::VecDeque<Job>>,
    /// Whether a task is running the queue.
    draining: std::sync::atomic::AtomicBool,
}

impl<T: Send + 'static> SqliteSink<T> {
    /// Opens (creating if needed) the database file at `path`, switches it to
    /// WAL mode, and creates `table` if it does not exist — or, if it exists,
    /// checks that it fits: every column of `table` exists with a type of a
    /// fitting affinity, the key is the primary key or a unique index, and
    /// every column `table` does not write may be left out (see below).
    /// `encode` turns an item into the row's values, in the table's column
    /// order.
    ///
    /// Column types are compared by the affinity of their declared type
    /// (SQLite's rules: `INT` → INTEGER; `CHAR`, `CLOB`, `TEXT` → TEXT;
    /// `BLOB` or none → BLOB; `REAL`, `FLOA`, `DOUB` → REAL; anything else →
    /// NUMERIC), since that decides what SQLite does with a value:
    ///
    /// | type | fitting affinities |
    /// |---|---|
    /// | `Integer`, `Boolean` | INTEGER, NUMERIC |
    /// | `Real` | REAL |
    /// | `Text`, `Json` | TEXT (NUMERIC would turn the text `007` into the integer 7) |
    /// | `Timestamp` | TEXT, NUMERIC (`DATETIME`, `TIMESTAMP`: RFC 3339 text is kept) |
    /// | `Blob` | BLOB |
    ///
    /// Generated columns cannot be mapped; a column left out must allow
    /// `NULL` or have a default.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] (naming the file) if the file cannot be opened
    /// or the table created; [`SinkError::Schema`] listing every way the
    /// existing table does not fit.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled open leaves at most the file and the table
    /// created, which a later open checks and reuses.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SinkError, SqliteSink, Table, Value};
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-open-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("events.db");
    /// let table = Table::builder("events").text("id").integer("n").key("id").build()?;
    /// let sink = SqliteSink::open(&path, table, |e: &(&str, i64)| {
    ///     vec![Value::from(e.0), Value::Integer(e.1)]
    /// })
    /// .await?;
    /// sink.write(vec![("a", 1)]).await?;
    /// assert_eq!(sink.path(), Some(path.as_path()));
    ///
    /// // The same table name with another mapping does not fit: every mismatch is listed.
    /// let other = Table::builder("events").text("id").blob("n").key("id").build()?;
    /// let err = SqliteSink::open(&path, other, |_: &()| Vec::new()).await.unwrap_err();
    /// assert!(matches!(&err, SinkError::Schema(_)) && err.is_fatal(), "{err}");
    /// # drop(sink);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(
        path: impl AsRef<Path>,
        table: Table,
        encode: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, SinkError> {
        let path = path.as_ref().to_path_buf();
        let database = label(Some(&path));
        let conn_path = path.clone();
        let conn = blocking_sqlite(move || Connection::open(conn_path))
            .await?
            .at(&database)?;
        Self::with_connection(conn, Some(path), table, Box::new(encode)).await
    }

    /// Like [`open`](Self::open), on a private in-memory database (for tests
    /// and examples).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing outlives a cancelled call.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SqliteSink, Table, Value};
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// let sink = SqliteSink::open_in_memory(table, |id: &String| vec![Value::from(id.as_str())]).await?;
    /// assert_eq!(sink.path(), None);
    /// assert_eq!(sink.count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_in_memory(
        table: Table,
        encode: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, SinkError> {
        let conn = Connection::open_in_memory().at(&label(None))?;
        Self::with_connection(conn, None, table, Box::new(encode)).await
    }

    async fn with_connection(
        conn: Connection,
        path: Option<PathBuf>,
        table: Table,
        encode: Encoder<T>,
    ) -> Result<Self, SinkError> {
        let database = label(path.as_deref());
        let (conn, table, checkpointer) = {
            let database = database.clone();
            let path = path.clone();
            blocking(move || {
                configure(&conn).at(&database)?;
                prepare_table(&conn, &table, &database)?;
                // A file's checkpoints run on a thread of their own; if that
                // cannot start, the writer keeps checkpointing itself.
                let checkpointer = match &path {
                    Some(path) => match Checkpointer::start(path, database.clone()) {
                        Ok(checkpointer) => {
                            conn.pragma_update(None, "wal_autocheckpoint", 0)
                                .at(&database)?;
                            Some(checkpointer)
                        }
                        Err(err) => {
                            tracing::warn!(database, error = %err, "no checkpoint thread; the writer checkpoints");
                            None
                        }
                    },
                    None => None,
                };
                Ok((conn, table, checkpointer))
            })
            .await?
        };
        let inserts = Inserts::new(&table);
        Ok(SqliteSink {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                table,
                encode,
                inserts,
                path,
                database,
                checkpointer,
                writes: WriteQueue::default(),
            }),
        })
    }

    /// Writes `rows` in one transaction and reports, per row, whether it was
    /// inserted or skipped as a duplicate of a stored key (or of an earlier
    /// row of the same batch).
    ///
    /// # Errors
    ///
    /// [`SinkError::Table`] if a row does not fit the table (nothing is
    /// written); [`SinkError::Sqlite`] if the transaction fails (nothing is
    /// written); [`SinkError::Task`] if the blocking task was cancelled.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the returned future does not cancel the write: the
    /// transaction runs to its end on the blocking pool, so the batch may be
    /// stored although the caller did not see the result. Writing it again is
    /// harmless: the rows come back as duplicates.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SinkError, SqliteSink, Table, TableError, Value, Written};
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// let sink = SqliteSink::open_in_memory(table, |id: &Option<&str>| vec![Value::from(*id)]).await?;
    /// let written = sink.write(vec![Some("a"), Some("b"), Some("a")]).await?;
    /// assert_eq!(written, [Written::Inserted, Written::Inserted, Written::Duplicate]);
    ///
    /// // A row that does not fit fails the whole batch: nothing is written.
    /// let err = sink.write(vec![Some("c"), None]).await.unwrap_err();
    /// assert!(matches!(err, SinkError::Table(TableError::NullKey { row: 1, .. })));
    /// assert_eq!(sink.count().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write(&self, rows: Vec<T>) -> Result<Vec<Written>, SinkError> {
        let table = &self.inner.table;
        let values = table.encode_rows(rows, &self.inner.encode)?;
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let db = inner.database.as_str();
            let mut conn = lock(&inner.conn);
            let tx = conn.transaction().at(db)?;
            let all: Vec<usize> = (0..values.len()).collect();
            let Inserted::Done(outcomes) =
                inner
                    .inserts
                    .insert(&tx, db, values.as_slice(), &all, Mode::Strict)?
            else {
                unreachable!("a strict insert fails instead of rolling back for a row")
            };
            tx.commit().at(db)?;
            inner.committed();
            Ok(outcomes
                .into_iter()
                .map(|(_, outcome)| match outcome {
                    RowOutcome::Inserted => Written::Inserted,
                    _ => Written::Duplicate,
                })
                .collect())
        })
        .await
    }

    /// Writes `rows` in one transaction, like [`write`](Self::write), but
    /// sets aside each row that is refused for its content instead of failing
    /// the batch, and reports one [`RowOutcome`] per row, in order:
    ///
    /// - a row that does not fit the table ([`Table::check_row`]: wrong type,
    ///   null key, …) is [`Rejected`](RowOutcome::Rejected) before anything
    ///   is sent;
    /// - a row whose insert fails with a [content](SinkError::is_content)
    ///   error (a `CHECK`, `NOT NULL`, foreign key or other unique
    ///   constraint, a trigger's `RAISE(ABORT, …)`, a datatype mismatch) is
    ///   `Rejected` with SQLite's message; SQLite undoes just that statement,
    ///   and the transaction goes on with the next row (if the failure rolled
    ///   back the whole transaction — `RAISE(ROLLBACK)`, an `ON CONFLICT
    ///   ROLLBACK` clause — the batch is written again without that row);
    /// - every other row is [`Inserted`](RowOutcome::Inserted) or
    ///   [`Duplicate`](RowOutcome::Duplicate), committed together.
    ///
    /// The happy path costs the same as [`write`](Self::write).
    ///
    /// # Errors
    ///
    /// A [transient](SinkError::is_transient) error (busy, locked) or a
    /// [fatal](SinkError::is_fatal) one (the table is gone, the disk is
    /// read-only): nothing is written; retry the batch later, or stop.
    ///
    /// # Cancel safety
    ///
    /// As [`write`](Self::write): the transaction runs to its end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{RowOutcome, SqliteSink, Table, Value};
    ///
    /// let table = Table::builder("readings").text("id").integer("celsius").key("id").build()?;
    /// let sink = SqliteSink::open_in_memory(table, |r: &(&str, Value)| {
    ///     vec![Value::from(r.0), r.1.clone()]
    /// })
    /// .await?;
    ///
    /// let outcomes = sink
    ///     .write_each(vec![
    ///         ("a", Value::Integer(21)),
    ///         ("b", Value::from("warm")), // not an integer
    ///         ("a", Value::Integer(22)),  // the key again
    ///     ])
    ///     .await?;
    /// assert!(matches!(outcomes[0], RowOutcome::Inserted));
    /// assert_eq!(
    ///     outcomes[1].rejection().unwrap().to_string(),
    ///     r#"row does not fit the table: row 1: column "celsius" takes bigint, got text"#
    /// );
    /// assert!(matches!(outcomes[2], RowOutcome::Duplicate));
    /// assert_eq!(sink.count().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_each(&self, rows: Vec<T>) -> Result<Vec<RowOutcome>, SinkError> {
        let values: Vec<Vec<Value>> = rows.iter().map(&self.inner.encode).collect();
        self.write_values(values.into()).await
    }

    /// [`write_each`](Self::write_each) for rows already encoded, in the
    /// table's column order: each row is checked ([`Table::check_row`]; one
    /// that does not fit is [`Rejected`](RowOutcome::Rejected) on its own),
    /// then the rows are written in one transaction with the outcomes,
    /// errors and cancel safety of `write_each`. The sink's encoder is not
    /// used.
    ///
    /// No row is copied: the `Arc` moves into the blocking task, and the
    /// statement binds the values by reference. Writing the same `Arc` again
    /// (a retry after a [transient](SinkError::is_transient) error) costs no
    /// copy either.
    ///
    /// # Errors
    ///
    /// As [`write_each`](Self::write_each).
    ///
    /// # Cancel safety
    ///
    /// As [`write`](Self::write): the transaction runs to its end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use flowgate_sql::{RowOutcome, SqliteSink, Table, Value};
    ///
    /// let table = Table::builder("notes").text("id").text("note").key("id").build()?;
    /// let sink = SqliteSink::open_in_memory(table, |_: &()| Vec::new()).await?;
    /// let rows: Arc<[Vec<Value>]> = vec![
    ///     vec![Value::from("a"), Value::from("first")],
    ///     vec![Value::Null, Value::from("no key")],
    ///     vec![Value::from("a"), Value::from("again")],
    /// ]
    /// .into();
    /// let outcomes = sink.write_values(Arc::clone(&rows)).await?;
    /// assert!(matches!(outcomes[0], RowOutcome::Inserted));
    /// assert!(outcomes[1].rejection().is_some());
    /// assert!(matches!(outcomes[2], RowOutcome::Duplicate));
    /// // A retry with the same rows: nothing is copied, nothing stored twice.
    /// let again = sink.write_values(rows).await?;
    /// assert!(matches!(again[0], RowOutcome::Duplicate));
    /// assert_eq!(sink.count().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_values(
        &self,
        rows: Arc<[Vec<Value>]>,
    ) -> Result<Vec<RowOutcome>, SinkError> {
        self.write_rows(rows).await
    }

    /// Writes a [`RowBatch`] — rows stored by column, checked as they were
    /// appended — and reports each row's outcome, as
    /// [`write_values`](Self::write_values) does: one transaction, rows
    /// inserted many to a statement, a refused row rejected alone. The
    /// values are bound from the batch's column buffers: nothing is copied
    /// per row, and a retry with the same `Arc` copies nothing either.
    ///
    /// # Errors
    ///
    /// As [`write_values`](Self::write_values); and
    /// [`SinkError::Table`] with [`TableError::OtherTable`](crate::TableError::OtherTable)
    /// (fatal) if the batch was built for a table of other columns, types
    /// or key than the sink's.
    ///
    /// # Cancel safety
    ///
    /// As [`write_values`](Self::write_values): dropping the future does
    /// not stop the write on the blocking thread.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use flowgate_sql::{ColumnType, RowBatch, RowOutcome, SqliteSink, Table, ValueRef};
    ///
    /// let table = Table::builder("events").text("id").integer("n").key("id").build()?;
    /// let sink = SqliteSink::open_in_memory(table.clone(), |_: &()| Vec::new()).await?;
    ///
    /// let mut batch = RowBatch::with_capacity(&table, 3);
    /// for (id, n) in [("a", b"1"), ("b", b"2"), ("a", b"3")] {
    ///     batch.append(&[ValueRef::Text(id), ValueRef::parse(ColumnType::Integer, n)?])?;
    /// }
    /// let outcomes = sink.write_batch(Arc::new(batch)).await?;
    /// assert!(matches!(outcomes[..], [RowOutcome::Inserted, RowOutcome::Inserted, RowOutcome::Duplicate]));
    /// assert_eq!(sink.count().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_batch(&self, rows: Arc<RowBatch>) -> Result<Vec<RowOutcome>, SinkError> {
        crate::rows::check_fits(&rows, &self.inner.table)?;
        self.write_rows(rows).await
    }

    /// [`write_values`](Self::write_values) and
    /// [`write_batch`](Self::write_batch).
    async fn write_rows<R: RowSet + ?Sized>(
        &self,
        rows: Arc<R>,
    ) -> Result<Vec<RowOutcome>, SinkError> {
        let inner = Arc::clone(&self.inner);
        // Checked on the blocking thread too: the caller's thread is free
        // for the next batch.
        let (mut outcomes, written) = self.inner.queued(move |conn| {
            let (outcomes, good) = rows.check(&inner.table);
            let db = inner.database.as_str();
            // Rows whose failure rolled back the whole transaction.
            let mut rolled_back: HashMap<usize, SinkError> = HashMap::new();
            let mut mode = Mode::Chunked;
            loop {
                let tx = conn.transaction().at(db)?;
                let todo: Vec<usize> = good
                    .iter()
                    .copied()
                    .filter(|index| !rolled_back.contains_key(index))
                    .collect();
                match inner.inserts.insert(&tx, db, &*rows, &todo, mode)? {
                    Inserted::Done(mut results) => {
                        tx.commit().at(db)?;
                        inner.committed();
                        results.extend(
                            rolled_back
                                .into_iter()
                                .map(|(index, err)| (index, RowOutcome::Rejected(err))),
                        );
                        return Ok((outcomes, results));
                    }
                    Inserted::RolledBack(Some((index, err))) => {
                        tracing::debug!(row = index, error = %err, "sqlite rolled back the batch for one row: writing it again without");
                        rolled_back.insert(index, err);
                    }
                    // A multi-row statement rolled the transaction back: find
                    // the row, one statement per row.
                    Inserted::RolledBack(None) => mode = Mode::RowByRow,
                }
            }
        })
        .await?;
        for (index, outcome) in written {
            outcomes[index] = Some(outcome);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every row has an outcome"))
            .collect())
    }

    /// The number of rows in the table.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the query fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SqliteSink, Table, Value};
    ///
    /// let table = Table::builder("events").integer("id").key("id").build()?;
    /// let sink = SqliteSink::open_in_memory(table, |id: &i64| vec![Value::Integer(*id)]).await?;
    /// sink.write(vec![1, 2, 2]).await?;
    /// assert_eq!(sink.count().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn count(&self) -> Result<u64, SinkError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let conn = lock(&inner.conn);
            let sql = format!("SELECT COUNT(*) FROM {}", inner.table.name());
            let count: i64 = conn
                .query_row(&sql, [], |row| row.get(0))
                .at(&inner.database)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    /// The table this sink writes to.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SqliteSink, Table, Value};
    ///
    /// let table = Table::builder("events").integer("id").key("id").build()?;
    /// let sink = SqliteSink::open_in_memory(table.clone(), |id: &i64| vec![Value::Integer(*id)]).await?;
    /// assert_eq!(sink.table(), &table);
    /// assert_eq!(sink.table().name(), "events");
    /// # Ok(())
    /// # }
    /// ```
    pub fn table(&self) -> &Table {
        &self.inner.table
    }

    /// The database file, or `None` for an in-memory database.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SqliteSink, Table, Value};
    ///
    /// let table = Table::builder("events").integer("id").key("id").build()?;
    /// let encode = |id: &i64| vec![Value::Integer(*id)];
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let file = SqliteSink::open(dir.join("events.db"), table.clone(), encode).await?;
    /// assert_eq!(file.path(), Some(dir.join("events.db").as_path()));
    /// let memory = SqliteSink::open_in_memory(table, encode).await?;
    /// assert_eq!(memory.path(), None);
    /// # drop(file);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }
}

/// How errors name a database: its file, or `:memory:`.
pub(crate) fn label(path: Option<&Path>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None => ":memory:".to_owned(),
    }
}

/// Names the database in a rusqlite error.
pub(crate) trait At<R> {
    fn at(self, database: &str) -> Result<R, SinkError>;
}

impl<R> At<R> for rusqlite::Result<R> {
    fn at(self, database: &str) -> Result<R, SinkError> {
        self.map_err(|source| SinkError::Sqlite {
            database: database.to_owned(),
            source,
        })
    }
}

/// Creates the table if it does not exist, or checks the existing one, in
/// one `IMMEDIATE` transaction (so that two processes opening the file at
/// once do not both decide to create it).
fn prepare_table(conn: &Connection, table: &Table, database: &str) -> Result<(), SinkError> {
    conn.execute_batch("BEGIN IMMEDIATE").at(database)?;
    let result = (|| {
        if existing_kind(conn, table.name()).at(database)?.is_none() {
            conn.execute(&table.create_sql(ColumnType::sqlite_name), [])
                .at(database)?;
        }
        check_table(conn, table, database)
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").at(database),
        Err(err) => {
            // Nothing to keep; the connection must not stay in a transaction.
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// `table` or `view` if `name` exists in the main schema.
fn existing_kind(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT type FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view')",
        [name],
        |row| row.get(0),
    )
    .optional()
}

/// One column of an existing table, from `pragma_table_xinfo`.
struct ExistingColumn {
    name: String,
    declared: String,
    not_null: bool,
    has_default: bool,
    /// Position in the primary key, 0 if not part of it.
    pk: i64,
    /// 0 normal, 1 hidden (virtual tables), 2 and 3 generated.
    hidden: i64,
}

/// SQLite's type affinity of a declared column type (section 3.1 of
/// "Datatypes In SQLite").
fn affinity(declared: &str) -> &'static str {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") {
        "INTEGER"
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t)) {
        "TEXT"
    } else if upper.contains("BLOB") || upper.trim().is_empty() {
        "BLOB"
    } else if ["REAL", "FLOA", "DOUB"].iter().any(|t| upper.contains(t)) {
        "REAL"
    } else {
        "NUMERIC"
    }
}

/// The affinities a column of type `ty` may have, and what the mapping
/// writes, as messages say it.
fn fitting(ty: ColumnType) -> (&'static [&'static str], &'static str) {
    match ty {
        ColumnType::Integer => (&["INTEGER", "NUMERIC"], "INTEGER"),
        ColumnType::Boolean => (&["INTEGER", "NUMERIC"], "BOOLEAN (the integers 0 and 1)"),
        ColumnType::Real => (&["REAL"], "REAL"),
        ColumnType::Text => (&["TEXT"], "TEXT"),
        ColumnType::Json => (&["TEXT"], "JSON as TEXT"),
        ColumnType::Timestamp => (&["TEXT", "NUMERIC"], "RFC 3339 timestamps as TEXT"),
        ColumnType::Blob => (&["BLOB"], "BLOB"),
    }
}

/// Compares the existing table `table.name()` with `table`.
fn check_table(conn: &Connection, table: &Table, database: &str) -> Result<(), SinkError> {
    let mut mismatches = Vec::new();
    let kind = existing_kind(conn, table.name()).at(database)?;
    if kind.as_deref() == Some("view") {
        mismatches.push(SchemaMismatch::NotATable {
            kind: "a view".to_owned(),
        });
        return Err(schema_error(table, database, mismatches));
    }
    let existing: Vec<ExistingColumn> = {
        let mut stmt = conn
            .prepare(
                r#"SELECT name, type, "notnull", dflt_value IS NOT NULL, pk, hidden
                   FROM pragma_table_xinfo(?1)"#,
            )
            .at(database)?;
        stmt.query_map([table.name()], |row| {
            Ok(ExistingColumn {
                name: row.get(0)?,
                declared: row.get(1)?,
                not_null: row.get(2)?,
                has_default: row.get(3)?,
                pk: row.get(4)?,
                hidden: row.get(5)?,
            })
        })
        .at(database)?
        .collect::<rusqlite::Result<_>>()
        .at(database)?
    };
    let find = |name: &str| existing.iter().find(|c| c.name.eq_ignore_ascii_case(name));

    for column in table.columns() {
        let Some(found) = find(&column.name) else {
            mismatches.push(SchemaMismatch::MissingColumn {
                column: column.name.clone(),
            });
            continue;
        };
        if found.hidden >= 2 {
            mismatches.push(SchemaMismatch::NotWritable {
                column: column.name.clone(),
                what: "generated".to_owned(),
            });
            continue;
        }
        let affinity = affinity(&found.declared);
        let (fits, expected) = fitting(column.ty);
        if !fits.contains(&affinity) {
            let found_type = if found.declared.trim().is_empty() {
                "declared without a type (BLOB affinity)".to_owned()
            } else {
                format!("{} ({affinity} affinity)", found.declared)
            };
            let note = match (column.ty, affinity) {
                (ColumnType::Text | ColumnType::Json, "NUMERIC" | "INTEGER" | "REAL") => {
                    Some("that affinity would turn the text 007 into the number 7".to_owned())
                }
                (ColumnType::Real, "INTEGER" | "NUMERIC") => {
                    Some("that affinity would store 2.0 as the integer 2".to_owned())
                }
                _ => None,
            };
            mismatches.push(SchemaMismatch::ColumnType {
                column: column.name.clone(),
                found: found_type,
                expected: expected.to_owned(),
                note,
            });
        }
    }

    // The primary key, and whether it is the rowid (an INTEGER PRIMARY KEY
    // is filled in when left out).
    let mut pk: Vec<&ExistingColumn> = existing.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    let rowid_alias = match pk.as_slice() {
        [only] => only.declared.eq_ignore_ascii_case("INTEGER"),
        _ => false,
    };
    for found in &existing {
        let mapped = table
            .columns()
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&found.name));
        let filled = found.has_default || found.hidden != 0 || (rowid_alias && found.pk > 0);
        if !mapped && found.not_null && !filled {
            mismatches.push(SchemaMismatch::UnmappedNotNull {
                column: found.name.clone(),
            });
        }
    }

    let key: BTreeSet<String> = table.key().map(|c| c.name.to_ascii_lowercase()).collect();
    let mut unique_sets: Vec<BTreeSet<String>> = Vec::new();
    if !pk.is_empty() {
        unique_sets.push(pk.iter().map(|c| c.name.to_ascii_lowercase()).collect());
    }
    {
        let mut indexes = conn
            .prepare(r#"SELECT name FROM pragma_index_list(?1) WHERE "unique" AND NOT partial"#)
            .at(database)?;
        let names: Vec<String> = indexes
            .query_map([table.name()], |row| row.get(0))
            .at(database)?
            .collect::<rusqlite::Result<_>>()
            .at(database)?;
        let mut info = conn
            .prepare("SELECT name FROM pragma_index_info(?1)")
            .at(database)?;
        for index in names {
            let columns: Vec<Option<String>> = info
                .query_map([&index], |row| row.get(0))
                .at(database)?
                .collect::<rusqlite::Result<_>>()
                .at(database)?;
            // An expression (or the rowid) has no name: such an index is no
            // conflict target for plain columns.
            if let Some(columns) = columns.into_iter().collect::<Option<Vec<String>>>() {
                unique_sets.push(columns.iter().map(|c| c.to_ascii_lowercase()).collect());
            }
        }
    }
    if !unique_sets.contains(&key) {
        mismatches.push(SchemaMismatch::KeyNotUnique {
            key: table.key().map(|c| c.name.clone()).collect(),
        });
    }

    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(schema_error(table, database, mismatches))
    }
}

fn schema_error(table: &Table, database: &str, mismatches: Vec<SchemaMismatch>) -> SinkError {
    SinkError::Schema(SchemaError {
        table: table.name().to_owned(),
        location: format!("SQLite database {database:?}"),
        mismatches,
    })
}

/// Opens the database at `path` (`None`: a private in-memory one) on the
/// blocking pool, configured as every SQLite end of this crate uses it.
pub(crate) async fn connect(path: Option<PathBuf>) -> Result<Connection, SinkError> {
    let database = label(path.as_deref());
    blocking_sqlite(move || {
        let conn = match path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        configure(&conn)?;
        Ok(conn)
    })
    .await?
    .at(&database)
}

/// WAL: readers do not block the writer and commits are cheap; NORMAL is
/// durable against process crashes in WAL mode. The busy timeout lets several
/// connections (a sink, a checkpoint store, an idempotency store) share a file.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // First, so that switching to WAL waits for a connection opening the
    // file at the same time.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// A SQLite value read back as a [`Value`].
pub(crate) fn from_sql(value: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as V;
    match value {
        V::Null => Value::Null,
        V::Integer(v) => Value::Integer(v),
        V::Real(v) => Value::Real(v),
        V::Text(v) => Value::Text(v),
        V::Blob(v) => Value::Blob(v),
    }
}

/// The most rows one `INSERT` statement carries: enough to amortise a
/// statement's cost (about half the CPU of a one-row insert), few enough
/// that the statements for every chunk size stay in the cache.
const MAX_CHUNK: usize = 32;

/// SQLite's default limit of bound parameters per statement.
const MAX_PARAMETERS: usize = 32_766;

/// The insert statements of a table: `INSERT … VALUES (…), (…) … ON CONFLICT
/// DO NOTHING` for 1, 2, 4, … up to the chunk size rows (a batch is written
/// in chunks of the largest size that fits, then of smaller powers of two).
#[derive(Debug)]
struct Inserts {
    /// `by_size[i]` inserts `2^i` rows.
    by_size: Vec<String>,
    /// Values per row.
    columns: usize,
}

/// How [`Inserts::insert`] goes about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Chunks, each in a savepoint; a chunk with a duplicate is undone and
    /// written again one row at a time. A refused row fails the batch
    /// (`write`).
    Strict,
    /// As `Strict`, but a chunk with a refused row is undone and written
    /// again one row at a time too, setting the refused row aside.
    Chunked,
    /// One statement per row.
    RowByRow,
}

/// What [`Inserts::insert`] did.
#[derive(Debug)]
enum Inserted {
    /// Every row's outcome; the transaction is open, to commit.
    Done(Vec<(usize, RowOutcome)>),
    /// A refused row rolled the whole transaction back (`RAISE(ROLLBACK)`,
    /// `ON CONFLICT ROLLBACK`): which row and why (`None`: a row of a
    /// multi-row statement, not known which).
    RolledBack(Option<(usize, SinkError)>),
}

impl Inserts {
    fn new(table: &Table) -> Self {
        let columns = table.columns().len().max(1);
        let row = format!("({})", vec!["?"; columns].join(", "));
        let largest = MAX_CHUNK.min(MAX_PARAMETERS / columns).max(1);
        let mut by_size = Vec::new();
        let mut size = 1;
        while size <= largest {
            by_size.push(format!(
                "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING",
                table.name(),
                table.column_list(),
                vec![row.as_str(); size].join(", "),
                table.key_list()
            ));
            size *= 2;
        }
        Inserts { by_size, columns }
    }

    /// Inserts `rows[i]` for every `i` of `todo` within `tx`, in chunks, and
    /// reports each row's outcome.
    fn insert<R: RowSet + ?Sized>(
        &self,
        tx: &rusqlite::Transaction<'_>,
        db: &str,
        rows: &R,
        todo: &[usize],
        mode: Mode,
    ) -> Result<Inserted, SinkError> {
        let mut out = Vec::with_capacity(todo.len());
        let mut rest = todo;
        while !rest.is_empty() {
            let level = if mode == Mode::RowByRow {
                0
            } else {
                (self.by_size.len() - 1).min(rest.len().ilog2() as usize)
            };
            let (chunk, tail) = rest.split_at(1 << level);
            rest = tail;
            if level > 0 {
                match self.chunk(tx, db, rows, chunk, level, mode)? {
                    Some(true) => {
                        out.extend(chunk.iter().map(|&index| (index, RowOutcome::Inserted)));
                        continue;
                    }
                    // Undone: a duplicate or a refused row, found row by row.
                    Some(false) => {}
                    None => return Ok(Inserted::RolledBack(None)),
                }
            }
            let mut insert = tx.prepare_cached(&self.by_size[0]).at(db)?;
            for &index in chunk {
                bind(&mut insert, 0, rows, index, self.columns).at(db)?;
                match insert.raw_execute().at(db) {
                    Ok(1) => out.push((index, RowOutcome::Inserted)),
                    Ok(_) => out.push((index, RowOutcome::Duplicate)),
                    Err(err) if err.is_content() && mode != Mode::Strict => {
                        if tx.is_autocommit() {
                            return Ok(Inserted::RolledBack(Some((index, err))));
                        }
                        out.push((index, RowOutcome::Rejected(err)));
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(Inserted::Done(out))
    }

    /// Inserts a chunk of `2^level` rows with one statement, in a
    /// savepoint: `Some(true)` if every row was inserted, `Some(false)` if
    /// the chunk was undone (a row was a duplicate, or was refused for its
    /// content), `None` if a refused row rolled back the whole transaction.
    /// In [`Mode::Strict`] a refused row is an error.
    fn chunk<R: RowSet + ?Sized>(
        &self,
        tx: &rusqlite::Transaction<'_>,
        db: &str,
        rows: &R,
        chunk: &[usize],
        level: usize,
        mode: Mode,
    ) -> Result<Option<bool>, SinkError> {
        let run = |sql: &str| {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.raw_execute())
                .at(db)
        };
        run("SAVEPOINT flowgate_chunk")?;
        let mut insert = tx.prepare_cached(&self.by_size[level]).at(db)?;
        let columns = self.columns;
        for (n, &index) in chunk.iter().enumerate() {
            bind(&mut insert, n * columns, rows, index, columns).at(db)?;
        }
        let all = match insert.raw_execute().at(db) {
            Ok(changed) => changed == chunk.len(),
            Err(err) if err.is_content() && mode != Mode::Strict => {
                if tx.is_autocommit() {
                    return Ok(None);
                }
                false
            }
            Err(err) => return Err(err),
        };
        if !all {
            run("ROLLBACK TO flowgate_chunk")?;
        }
        run("RELEASE flowgate_chunk")?;
        Ok(Some(all))
    }
}

/// Binds the values of row `row` of `rows` (`columns` of them) to
/// `insert`'s parameters from `offset` on.
fn bind<R: RowSet + ?Sized>(
    insert: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    rows: &R,
    row: usize,
    columns: usize,
) -> rusqlite::Result<()> {
    for column in 0..columns {
        insert.raw_bind_parameter(offset + column + 1, to_sql(rows.value(row, column)))?;
    }
    Ok(())
}

/// Locks a connection, ignoring poisoning (a panic inside a statement leaves
/// SQLite consistent: the transaction is rolled back when dropped).
pub(crate) fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A value as SQLite stores it: booleans as 0 or 1, JSON as its text,
/// timestamps as RFC 3339 UTC text (a timestamp out of the range rows accept,
/// which only the stores can be given, as its integer microseconds).
pub(crate) fn to_sql(value: crate::ValueRef<'_>) -> rusqlite::types::ToSqlOutput<'_> {
    use crate::ValueRef as V;
    use rusqlite::types::{ToSqlOutput, ValueRef};
    ToSqlOutput::Borrowed(match value {
        V::Null => ValueRef::Null,
        V::Integer(v) => ValueRef::Integer(v),
        V::Real(v) => ValueRef::Real(v),
        V::Text(v) | V::Json(v) => ValueRef::Text(v.as_bytes()),
        V::Blob(v) => ValueRef::Blob(v),
        V::Boolean(v) => ValueRef::Integer(i64::from(v)),
        V::Timestamp(micros) => {
            return match Value::format_timestamp(micros) {
                Some(text) => ToSqlOutput::Owned(rusqlite::types::Value::Text(text)),
                None => ToSqlOutput::Borrowed(ValueRef::Integer(micros)),
            };
        }
    })
}

/// Runs `f` on tokio's blocking pool.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, SinkError> + Send + 'static,
) -> Result<R, SinkError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) => Err(SinkError::Task(err.to_string())),
    }
}

/// Runs `f` on tokio's blocking pool; the caller names the database in its
/// error with [`At::at`].
pub(crate) async fn blocking_sqlite<R: Send + 'static>(
    f: impl FnOnce() -> rusqlite::Result<R> + Send + 'static,
) -> Result<rusqlite::Result<R>, SinkError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| SinkError::Task(err.to_string()))
}

impl<T: Send + 'static> Inner<T> {
    /// Runs `job` with the connection after the writes queued before it,
    /// on tokio's blocking pool; see [`WriteQueue`].
    async fn queued<R: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&mut Connection) -> Result<R, SinkError> + Send + 'static,
    ) -> Result<R, SinkError> {
        use std::sync::atomic::Ordering::SeqCst;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writes
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Box::new(move |conn| {
                // The caller may be gone (a dropped future): the write was
                // made all the same.
                let _ = tx.send(job(conn));
            }));
        if !self.writes.draining.swap(true, SeqCst) {
            let inner = Arc::clone(self);
            tokio::task::spawn_blocking(move || inner.drain_writes());
        }
        rx.await.unwrap_or_else(|_| {
            Err(SinkError::Task(
                "the write panicked (see the log); nothing of it was committed".to_owned(),
            ))
        })
    }

    /// Runs the queued writes until none is left.
    fn drain_writes(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            let job = self
                .writes
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            match job {
                Some(job) => {
                    // The lock is taken per write, so that the sink's other
                    // calls (count, the table checks) get their turn.
                    let mut conn = lock(&self.conn);
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job(&mut conn);
                    }));
                    if run.is_err() {
                        // Its transaction was rolled back as it unwound; its
                        // caller gets SinkError::Task. The next writes run.
                        tracing::error!(database = %self.database, "a SQLite batch write panicked");
                    }
                }
                None => {
                    self.writes.draining.store(false, SeqCst);
                    // A write queued after the pop above saw `draining` set
                    // and started no task: take it on, unless a new task
                    // has already.
                    let empty = self
                        .writes
                        .jobs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_empty();
                    if empty || self.writes.draining.swap(true, SeqCst) {
                        return;
                    }
                }
            }
        }
    }
}

impl<T> Inner<T> {
    /// A transaction was committed.
    fn committed(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed();
        }
    }
}

impl<T> Clone for SqliteSink<T> {
    fn clone(&self) -> Self {
        SqliteSink {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for SqliteSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSink")
            .field("table", &self.inner.table.name())
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::affinity;

    #[test]
    fn affinity_follows_sqlites_rules() {
        for (declared, expected) in [
            ("INTEGER", "INTEGER"),
            ("bigint", "INTEGER"),
            ("UNSIGNED BIG INT", "INTEGER"),
            ("POINT", "INTEGER"), // "INT" wins, as in SQLite
            ("VARCHAR(20)", "TEXT"),
            ("text", "TEXT"),
            ("CLOB", "TEXT"),
            ("BLOB", "BLOB"),
            ("", "BLOB"),
            ("REAL", "REAL"),
            ("DOUBLE PRECISION", "REAL"),
            ("FLOAT", "REAL"),
            ("NUMERIC", "NUMERIC"),
            ("BOOLEAN", "NUMERIC"),
            ("DATETIME", "NUMERIC"),
            ("JSON", "NUMERIC"),
        ] {
            assert_eq!(affinity(declared), expected, "{declared}");
        }
    }
}
