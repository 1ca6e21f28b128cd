//! [`SqliteSink`]: batches into SQLite, one transaction per batch.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, params_from_iter};

use crate::error::SinkError;
use crate::table::{ColumnType, Table, Value};
use crate::{Encoder, Written};

/// Writes batches of `T` into a SQLite table, idempotently.
///
/// Each [`write`](Self::write) is one transaction: every row is inserted with
/// `INSERT … ON CONFLICT DO NOTHING` through a cached prepared statement, and
/// the transaction commits once, so a batch is stored entirely or not at all.
/// The database runs in WAL mode with `synchronous = NORMAL`: a committed batch
/// survives a crash of the process (and of the machine up to the last
/// checkpoint), and readers never block the writer.
///
/// SQLite calls block, so they run on tokio's blocking thread pool; one
/// connection serializes writes (SQLite allows one writer at a time anyway).
/// The sink is cheap to clone and every clone shares the connection.
pub struct SqliteSink<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    conn: Mutex<Connection>,
    table: Table,
    encode: Encoder<T>,
    insert: String,
    path: Option<PathBuf>,
}

impl<T: Send + 'static> SqliteSink<T> {
    /// Opens (creating if needed) the database file at `path`, switches it to
    /// WAL mode and creates `table` if it does not exist. `encode` turns an
    /// item into the row's values, in the table's column order.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the file cannot be opened or the table
    /// created (for example an existing table with other columns).
    pub async fn open(
        path: impl AsRef<Path>,
        table: Table,
        encode: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, SinkError> {
        let path = path.as_ref().to_path_buf();
        let conn_path = path.clone();
        let conn = blocking(move || Connection::open(conn_path).map_err(SinkError::from)).await?;
        Self::with_connection(conn, Some(path), table, Box::new(encode)).await
    }

    /// Like [`open`](Self::open), on a private in-memory database (for tests
    /// and examples).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_in_memory(
        table: Table,
        encode: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, SinkError> {
        let conn = Connection::open_in_memory()?;
        Self::with_connection(conn, None, table, Box::new(encode)).await
    }

    async fn with_connection(
        conn: Connection,
        path: Option<PathBuf>,
        table: Table,
        encode: Encoder<T>,
    ) -> Result<Self, SinkError> {
        let create = table.create_sql(ColumnType::sqlite_name);
        let conn = blocking(move || {
            configure(&conn)?;
            conn.execute(&create, [])?;
            Ok(conn)
        })
        .await?;
        let placeholders = vec!["?"; table.columns().len()].join(", ");
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
            table.name(),
            table.column_list(),
            placeholders,
            table.key_list()
        );
        Ok(SqliteSink {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                table,
                encode,
                insert,
                path,
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
    pub async fn write(&self, rows: Vec<T>) -> Result<Vec<Written>, SinkError> {
        let table = &self.inner.table;
        let values = table.encode_rows(rows, &self.inner.encode)?;
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction()?;
            let mut written = Vec::with_capacity(values.len());
            {
                let mut insert = tx.prepare_cached(&inner.insert)?;
                for row in &values {
                    let changed = insert.execute(params_from_iter(row.iter().map(to_sql)))?;
                    written.push(if changed == 1 {
                        Written::Inserted
                    } else {
                        Written::Duplicate
                    });
                }
            }
            tx.commit()?;
            Ok(written)
        })
        .await
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
    pub async fn count(&self) -> Result<u64, SinkError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            let sql = format!("SELECT COUNT(*) FROM {}", inner.table.name());
            let count: i64 = conn.query_row(&sql, [], |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    /// The table this sink writes to.
    pub fn table(&self) -> &Table {
        &self.inner.table
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }
}

/// Opens the database at `path` (`None`: a private in-memory one) on the
/// blocking pool, configured as every SQLite end of this crate uses it.
pub(crate) async fn connect(path: Option<PathBuf>) -> Result<Connection, SinkError> {
    blocking(move || {
        let conn = match path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        configure(&conn)?;
        Ok(conn)
    })
    .await
}

/// WAL: readers do not block the writer and commits are cheap; NORMAL is
/// durable against process crashes in WAL mode. The busy timeout lets several
/// connections (a sink, a checkpoint store, an idempotency store) share a file.
fn configure(conn: &Connection) -> Result<(), SinkError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
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

/// Locks a connection, ignoring poisoning (a panic inside a statement leaves
/// SQLite consistent: the transaction is rolled back when dropped).
pub(crate) fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn to_sql(value: &Value) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    ToSqlOutput::Borrowed(match value {
        Value::Null => ValueRef::Null,
        Value::Integer(v) => ValueRef::Integer(*v),
        Value::Real(v) => ValueRef::Real(*v),
        Value::Text(v) => ValueRef::Text(v.as_bytes()),
        Value::Blob(v) => ValueRef::Blob(v),
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
