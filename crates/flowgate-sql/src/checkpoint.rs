//! [`SqliteCheckpointStore`]: a cursor source's checkpoint in a SQLite table.

use std::error::Error;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use flowgate::StoreError;
use flowgate::source::CheckpointStore;
use futures_core::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use crate::error::SinkError;
use crate::sqlite::{from_sql, to_sql};
use crate::store::Store;
use crate::table::Value;

/// The table every checkpoint store of a database shares: one row per source
/// name.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS flowgate_checkpoints (
    name TEXT PRIMARY KEY NOT NULL,
    cursor NOT NULL,
    committed_at INTEGER NOT NULL
)";

/// Keeps the checkpoint of a [`CursorSource`](flowgate::source::CursorSource)
/// in a SQLite database, so that a restarted process resumes where the last
/// one committed.
///
/// Every store of one database shares the table `flowgate_checkpoints`, one
/// row per source `name`; a commit is one `INSERT … ON CONFLICT DO UPDATE`
/// (an autocommit transaction, durable against a process crash in WAL mode).
/// Cursors are stored as SQLite values: any `C` that converts into a
/// [`Value`] and back with `TryFrom<Value>` — `i64`, `String`, `Vec<u8>`, or a
/// type of yours with those two conversions.
///
/// Like [`SqliteSink`](crate::SqliteSink), it runs SQLite on tokio's blocking
/// pool and is cheap to clone. Open it on the same file as the data it pages
/// through or as a sink: connections share the file through WAL.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use flowgate::source::CheckpointStore;
/// use flowgate_sql::SqliteCheckpointStore;
///
/// let dir = std::env::temp_dir().join(format!("flowgate-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("checkpoints.db");
/// let store = SqliteCheckpointStore::open(&path, "orders").await?;
/// CheckpointStore::<i64>::commit(&store, 42).await?;
/// drop(store);
///
/// let reopened = SqliteCheckpointStore::open(&path, "orders").await?;
/// assert_eq!(CheckpointStore::<i64>::load(&reopened).await?, Some(42));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteCheckpointStore {
    inner: Arc<Store>,
}

impl SqliteCheckpointStore {
    /// Opens (creating if needed) the database at `path` and the checkpoint
    /// table, for the source called `name`.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the file cannot be opened or the table
    /// created.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled open leaves at most the file and the checkpoint table
    /// created, which a later open reuses.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SinkError, SqliteCheckpointStore, Value};
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-cp-open-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let store = SqliteCheckpointStore::open(dir.join("checkpoints.db"), "orders").await?;
    /// store.set(Value::Integer(7)).await?;
    /// assert_eq!(store.get().await?, Some(Value::Integer(7)));
    ///
    /// // A directory is not a database file.
    /// let err = SqliteCheckpointStore::open(&dir, "orders").await.unwrap_err();
    /// assert!(matches!(err, SinkError::Sqlite { .. }), "{err}");
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>, name: impl Into<String>) -> Result<Self, SinkError> {
        Self::with(Some(path.as_ref()), name.into()).await
    }

    /// Like [`open`](Self::open), on a private in-memory database: it lives as
    /// long as the store (for tests).
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
    /// use flowgate_sql::SqliteCheckpointStore;
    ///
    /// let store = SqliteCheckpointStore::open_in_memory("orders").await?;
    /// assert_eq!(store.path(), None);
    /// assert_eq!(store.get().await?, None, "a new database has no checkpoint");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_in_memory(name: impl Into<String>) -> Result<Self, SinkError> {
        Self::with(None, name.into()).await
    }

    async fn with(path: Option<&Path>, name: String) -> Result<Self, SinkError> {
        let inner = Arc::new(Store::open(path, name, CREATE).await?);
        Ok(SqliteCheckpointStore { inner })
    }

    /// The source name this store keeps the checkpoint of.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::SqliteCheckpointStore;
    ///
    /// let store = SqliteCheckpointStore::open_in_memory("orders").await?;
    /// assert_eq!(store.name(), "orders");
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        self.inner.key()
    }

    /// The database file, or `None` for an in-memory database.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::SqliteCheckpointStore;
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-cp-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let file = SqliteCheckpointStore::open(dir.join("checkpoints.db"), "orders").await?;
    /// assert_eq!(file.path(), Some(dir.join("checkpoints.db").as_path()));
    /// assert_eq!(SqliteCheckpointStore::open_in_memory("orders").await?.path(), None);
    /// # drop(file);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.inner.path()
    }

    /// The stored cursor as a raw [`Value`], or `None`.
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
    /// use flowgate_sql::{SqliteCheckpointStore, Value};
    ///
    /// let store = SqliteCheckpointStore::open_in_memory("orders").await?;
    /// assert_eq!(store.get().await?, None);
    /// store.set(Value::from("page-2")).await?;
    /// assert_eq!(store.get().await?, Some(Value::from("page-2")));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self) -> Result<Option<Value>, SinkError> {
        self.inner
            .run(move |conn, name| {
                let cursor = conn
                    .query_row(
                        "SELECT cursor FROM flowgate_checkpoints WHERE name = ?1",
                        params![name],
                        |row| row.get::<_, rusqlite::types::Value>(0),
                    )
                    .optional()?;
                Ok(cursor.map(from_sql))
            })
            .await
    }

    /// Stores `cursor` as a raw [`Value`].
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the write fails; [`SinkError::Table`] for a
    /// `Null` cursor.
    ///
    /// # Cancel safety
    ///
    /// Cancelling does not cancel the write: it runs to its end on the
    /// blocking pool, and the row holds the old cursor or the new one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SinkError, SqliteCheckpointStore, TableError, Value};
    ///
    /// let store = SqliteCheckpointStore::open_in_memory("orders").await?;
    /// store.set(Value::Integer(1)).await?;
    /// store.set(Value::Integer(2)).await?; // replaces the cursor
    /// assert_eq!(store.get().await?, Some(Value::Integer(2)));
    ///
    /// let err = store.set(Value::Null).await.unwrap_err();
    /// assert!(matches!(err, SinkError::Table(TableError::NullKey { .. })));
    /// assert_eq!(store.get().await?, Some(Value::Integer(2)), "unchanged");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set(&self, cursor: Value) -> Result<(), SinkError> {
        if cursor == Value::Null {
            return Err(SinkError::Table(crate::TableError::NullKey {
                row: 0,
                column: "cursor".to_owned(),
            }));
        }
        self.inner
            .run(move |conn, name| {
                let mut upsert = conn.prepare_cached(
                    "INSERT INTO flowgate_checkpoints (name, cursor, committed_at)
                 VALUES (?1, ?2, CAST(strftime('%s', 'now') AS INTEGER))
                 ON CONFLICT (name) DO UPDATE
                 SET cursor = excluded.cursor, committed_at = excluded.committed_at",
                )?;
                upsert.execute(params![name, to_sql(cursor.as_ref())])?;
                Ok(())
            })
            .await
    }

    /// Forgets the checkpoint: the next source starts from its initial
    /// cursor. Whether there was one.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the write fails.
    ///
    /// # Cancel safety
    ///
    /// As [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SqliteCheckpointStore, Value};
    ///
    /// let store = SqliteCheckpointStore::open_in_memory("orders").await?;
    /// store.set(Value::Integer(9)).await?;
    /// assert!(store.reset().await?);
    /// assert_eq!(store.get().await?, None);
    /// assert!(!store.reset().await?, "nothing left to forget");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reset(&self) -> Result<bool, SinkError> {
        self.inner
            .run(move |conn, name| {
                let deleted = conn.execute(
                    "DELETE FROM flowgate_checkpoints WHERE name = ?1",
                    params![name],
                )?;
                Ok(deleted > 0)
            })
            .await
    }
}

impl<C> CheckpointStore<C> for SqliteCheckpointStore
where
    C: Into<Value> + TryFrom<Value> + Send + 'static,
    <C as TryFrom<Value>>::Error: Error + Send + Sync + 'static,
{
    fn load(&self) -> BoxFuture<'_, Result<Option<C>, StoreError>> {
        Box::pin(async move {
            match self.get().await? {
                None => Ok(None),
                Some(value) => C::try_from(value).map(Some).map_err(StoreError::new),
            }
        })
    }

    fn commit(&self, cursor: C) -> BoxFuture<'_, Result<(), StoreError>> {
        let value = cursor.into();
        Box::pin(async move { Ok(self.set(value).await?) })
    }
}

impl fmt::Debug for SqliteCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCheckpointStore")
            .field("name", &self.name())
            .field("path", &self.inner.path())
            .finish_non_exhaustive()
    }
}
