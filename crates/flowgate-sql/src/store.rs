//! What the SQLite checkpoint and idempotency stores share: one connection to
//! a database with the store's table, the name (or scope) the store works
//! under, and running statements on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use crate::error::SinkError;
use crate::sqlite::{At, blocking_sqlite, connect, label, lock};

/// One store's connection, with its table created.
pub(crate) struct Store {
    conn: Mutex<Connection>,
    /// The source name of a checkpoint store, the scope of an idempotency
    /// store: the rows of the shared table this store reads and writes.
    key: String,
    path: Option<PathBuf>,
    /// The database as errors name it.
    database: String,
}

impl Store {
    /// Opens the database at `path` (`None`: a private in-memory one) and
    /// runs `create` (a `CREATE TABLE IF NOT EXISTS`).
    pub(crate) async fn open(
        path: Option<&Path>,
        key: String,
        create: &'static str,
    ) -> Result<Store, SinkError> {
        let path = path.map(Path::to_path_buf);
        let conn = connect(path.clone()).await?;
        let database = label(path.as_deref());
        let conn = blocking_sqlite(move || {
            conn.execute(create, [])?;
            Ok(conn)
        })
        .await?
        .at(&database)?;
        Ok(Store {
            conn: Mutex::new(conn),
            key,
            path,
            database,
        })
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` with the connection and the store's key on the blocking
    /// pool; an error names the database.
    pub(crate) async fn run<R: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&Connection, &str) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, SinkError> {
        let store = std::sync::Arc::clone(self);
        blocking_sqlite(move || f(&lock(&store.conn), &store.key))
            .await?
            .at(&self.database)
    }
}
