//! [`SqliteIdempotencyStore`]: processed keys in a SQLite table.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flowgate::StoreError;
use flowgate::idempotency::IdempotencyStore;
use futures_core::future::BoxFuture;
use rusqlite::params;

use crate::error::SinkError;
use crate::sqlite::to_sql;
use crate::store::Store;
use crate::table::Value;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS flowgate_idempotency (
    scope TEXT NOT NULL,
    key NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID";

/// Records the keys of processed items in a SQLite database, for
/// [`Idempotency`](flowgate::idempotency::Idempotency): effects stay
/// exactly-once across restarts of the process.
///
/// Every store of one database shares the table `flowgate_idempotency`,
/// keyed by `(scope, key)`: one scope per kind of effect. Keys are stored as
/// SQLite values: any `K` that converts into a [`Value`] (`i64`, `String`,
/// `&str`, `Vec<u8>`, or a type of yours). A key is kept until
/// [`purge_older_than`](Self::purge_older_than) removes it; purge only keys
/// older than any redelivery can be.
///
/// Like [`SqliteSink`](crate::SqliteSink), it runs SQLite on tokio's blocking
/// pool and is cheap to clone.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use flowgate::idempotency::{Idempotency, Processed};
/// use flowgate_sql::SqliteIdempotencyStore;
///
/// let store = SqliteIdempotencyStore::open_in_memory("emails").await?;
/// let once = Idempotency::new(store.clone());
/// let send = || async { Ok::<_, std::io::Error>("sent") };
/// assert_eq!(once.run("welcome:42".to_owned(), send).await?, Processed::Done("sent"));
/// assert_eq!(once.run("welcome:42".to_owned(), send).await?, Processed::Skipped);
/// assert_eq!(store.count().await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteIdempotencyStore {
    inner: Arc<Store>,
}

impl SqliteIdempotencyStore {
    /// Opens (creating if needed) the database at `path` and the keys table,
    /// for the keys of `scope`.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the file cannot be opened or the table
    /// created.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled open leaves at most the file and the keys table
    /// created, which a later open reuses.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SinkError, SqliteIdempotencyStore, Value};
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-idem-open-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("keys.db");
    /// let store = SqliteIdempotencyStore::open(&path, "emails").await?;
    /// store.record_value(Value::from("welcome:42")).await?;
    /// drop(store);
    /// let reopened = SqliteIdempotencyStore::open(&path, "emails").await?;
    /// assert!(reopened.contains_value(Value::from("welcome:42")).await?);
    ///
    /// // A directory is not a database file.
    /// let err = SqliteIdempotencyStore::open(&dir, "emails").await.unwrap_err();
    /// assert!(matches!(err, SinkError::Sqlite { .. }), "{err}");
    /// # drop(reopened);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>, scope: impl Into<String>) -> Result<Self, SinkError> {
        Self::with(Some(path.as_ref()), scope.into()).await
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
    /// use flowgate_sql::SqliteIdempotencyStore;
    ///
    /// let store = SqliteIdempotencyStore::open_in_memory("emails").await?;
    /// assert_eq!(store.path(), None);
    /// assert_eq!(store.count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_in_memory(scope: impl Into<String>) -> Result<Self, SinkError> {
        Self::with(None, scope.into()).await
    }

    async fn with(path: Option<&Path>, scope: String) -> Result<Self, SinkError> {
        let inner = Arc::new(Store::open(path, scope, CREATE).await?);
        Ok(SqliteIdempotencyStore { inner })
    }

    /// The scope of this store's keys.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::SqliteIdempotencyStore;
    ///
    /// let store = SqliteIdempotencyStore::open_in_memory("emails").await?;
    /// assert_eq!(store.scope(), "emails");
    /// # Ok(())
    /// # }
    /// ```
    pub fn scope(&self) -> &str {
        self.inner.key()
    }

    /// The database file, or `None` for an in-memory database.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::SqliteIdempotencyStore;
    ///
    /// let dir = std::env::temp_dir().join(format!("flowgate-doc-idem-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let file = SqliteIdempotencyStore::open(dir.join("keys.db"), "emails").await?;
    /// assert_eq!(file.path(), Some(dir.join("keys.db").as_path()));
    /// assert_eq!(SqliteIdempotencyStore::open_in_memory("emails").await?.path(), None);
    /// # drop(file);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.inner.path()
    }

    /// Whether `key` is recorded in this scope.
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
    /// use flowgate_sql::{SqliteIdempotencyStore, Value};
    ///
    /// let store = SqliteIdempotencyStore::open_in_memory("emails").await?;
    /// assert!(!store.contains_value(Value::Integer(42)).await?);
    /// store.record_value(Value::Integer(42)).await?;
    /// assert!(store.contains_value(Value::Integer(42)).await?);
    /// assert!(!store.contains_value(Value::from("42")).await?, "text is another key");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn contains_value(&self, key: Value) -> Result<bool, SinkError> {
        self.inner
            .run(move |conn, scope| {
                let mut select = conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM flowgate_idempotency WHERE scope = ?1 AND key = ?2)",
            )?;
                let found: bool =
                    select.query_row(params![scope, to_sql(key.as_ref())], |row| row.get(0))?;
                Ok(found)
            })
            .await
    }

    /// Records `key` in this scope; recording it again changes nothing.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the write fails; [`SinkError::Table`] for a
    /// `Null` key.
    ///
    /// # Cancel safety
    ///
    /// Cancelling does not cancel the write: it runs to its end on the
    /// blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{SinkError, SqliteIdempotencyStore, TableError, Value};
    ///
    /// let store = SqliteIdempotencyStore::open_in_memory("emails").await?;
    /// store.record_value(Value::from("welcome:42")).await?;
    /// store.record_value(Value::from("welcome:42")).await?; // changes nothing
    /// assert_eq!(store.count().await?, 1);
    ///
    /// let err = store.record_value(Value::Null).await.unwrap_err();
    /// assert!(matches!(err, SinkError::Table(TableError::NullKey { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn record_value(&self, key: Value) -> Result<(), SinkError> {
        if key == Value::Null {
            return Err(SinkError::Table(crate::TableError::NullKey {
                row: 0,
                column: "key".to_owned(),
            }));
        }
        self.inner
            .run(move |conn, scope| {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO flowgate_idempotency (scope, key, recorded_at)
                 VALUES (?1, ?2, CAST(strftime('%s', 'now') AS INTEGER))
                 ON CONFLICT (scope, key) DO NOTHING",
                )?;
                insert.execute(params![scope, to_sql(key.as_ref())])?;
                Ok(())
            })
            .await
    }

    /// The number of keys recorded in this scope.
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
    /// use flowgate_sql::{SqliteIdempotencyStore, Value};
    ///
    /// let emails = SqliteIdempotencyStore::open_in_memory("emails").await?;
    /// emails.record_value(Value::Integer(1)).await?;
    /// emails.record_value(Value::Integer(2)).await?;
    /// assert_eq!(emails.count().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn count(&self) -> Result<u64, SinkError> {
        self.inner
            .run(move |conn, scope| {
                let count: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM flowgate_idempotency WHERE scope = ?1",
                    params![scope],
                    |row| row.get(0),
                )?;
                Ok(u64::try_from(count).unwrap_or(0))
            })
            .await
    }

    /// Removes the keys of this scope recorded more than `age` ago (by the
    /// database's wall clock, in whole seconds); returns how many.
    /// `Duration::ZERO` removes every key recorded before the current second;
    /// `Duration::MAX` (any age beyond `i64::MAX` seconds) removes none.
    ///
    /// # Errors
    ///
    /// [`SinkError::Sqlite`] if the write fails.
    ///
    /// # Cancel safety
    ///
    /// Cancelling does not cancel the delete.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use flowgate_sql::{SqliteIdempotencyStore, Value};
    ///
    /// let store = SqliteIdempotencyStore::open_in_memory("emails").await?;
    /// store.record_value(Value::Integer(1)).await?;
    /// // Recorded just now: not older than a day, nor than any age.
    /// assert_eq!(store.purge_older_than(Duration::from_secs(86_400)).await?, 0);
    /// assert_eq!(store.purge_older_than(Duration::MAX).await?, 0);
    /// assert_eq!(store.count().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge_older_than(&self, age: Duration) -> Result<u64, SinkError> {
        let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        self.inner
            .run(move |conn, scope| {
                let deleted = conn.execute(
                    "DELETE FROM flowgate_idempotency
                 WHERE scope = ?1 AND recorded_at < CAST(strftime('%s', 'now') AS INTEGER) - ?2",
                    params![scope, age],
                )?;
                Ok(deleted as u64)
            })
            .await
    }
}

impl<K> IdempotencyStore<K> for SqliteIdempotencyStore
where
    K: Clone + Into<Value> + Send + Sync,
{
    fn contains<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<bool, StoreError>> {
        let key = key.clone().into();
        Box::pin(async move { Ok(self.contains_value(key).await?) })
    }

    fn record<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = key.clone().into();
        Box::pin(async move { Ok(self.record_value(key).await?) })
    }
}

impl fmt::Debug for SqliteIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteIdempotencyStore")
            .field("scope", &self.scope())
            .field("path", &self.inner.path())
            .finish_non_exhaustive()
    }
}
