//! [`PostgresSink`]: batches into PostgreSQL, one statement per batch.

use std::collections::{BTreeSet, HashMap};
use std::error::Error;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::config::Host;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::error::{SchemaError, SchemaMismatch, SinkError};
use crate::rows::{RowBatch, RowSet, ValueRef};
use crate::table::{ColumnType, Table, Value};
use crate::{Encoder, RowOutcome, Written};

/// Writes batches of `T` into a PostgreSQL table, idempotently.
///
/// Each [`write`](Self::write) is a single statement —
///
/// ```sql
/// WITH ins AS (
///     INSERT INTO events (id, body)
///     SELECT * FROM UNNEST($1::TEXT[], $2::BYTEA[])
///     ON CONFLICT (id) DO NOTHING
///     RETURNING id),
///   n AS (SELECT count(*) AS n FROM ins)
/// SELECT n.n, d.* FROM n,
///   LATERAL (SELECT array_agg(id) FROM ins WHERE n.n < cardinality($1)) d
/// ```
///
/// — with one array parameter per column, sent in PostgreSQL's binary format
/// (`BIGINT[]`, `DOUBLE PRECISION[]`, `TEXT[]`, `BYTEA[]`, `BOOLEAN[]`,
/// `JSONB[]` or `JSON[]` as the column is, `TIMESTAMPTZ[]`): one round trip
/// per batch whatever its size, atomic (stored entirely or not at all), and
/// idempotent through the key. It answers with one row: the number of rows
/// inserted and, only when that is fewer than the batch (some were
/// duplicates), the inserted keys, which tell which rows were inserted. In
/// the common case — nothing was a duplicate — no key is sent back or looked
/// up. [`write_each`](Self::write_each) sends the same statement and,
/// only when the database refuses the batch for a row's content, splits it
/// to find the bad rows.
///
/// When it connects, the sink creates the table if it does not exist, or
/// checks the existing one (see [`connect`](Self::connect)).
///
/// Every clone of the sink shares a small pool of connections,
/// [`PostgresOptions::connections`] of them (2 by default): each write takes
/// a free connection for its whole duration, or waits for one, so up to that
/// many writes run at once on their own server backends (one does not wait
/// for another's commit), which suits a [`Batcher`](https://docs.rs/flowgate/latest/flowgate/batch/struct.Batcher.html)
/// with `flush_concurrency` up to the number of connections. Connections are
/// opened when first needed (one when connecting). If a connection breaks,
/// the write on it fails with a [transient](SinkError::is_transient) error
/// and the next write that takes it reconnects (it prepares the insert again,
/// which fails, [fatally](SinkError::is_fatal), if the table was dropped or
/// changed meanwhile; it does not create it again).
///
/// TLS is not supported: connect over loopback, a Unix socket or a trusted
/// network. It needs PostgreSQL 12 or later (the table check reads
/// `pg_attribute.attgenerated`; creation locks with `hashtextextended`).
pub struct PostgresSink<T> {
    inner: Arc<Inner<T>>,
}

/// How a [`PostgresSink`] connects, for
/// [`connect_with`](PostgresSink::connect_with).
///
/// # Examples
///
/// ```
/// use flowgate_sql::PostgresOptions;
///
/// let options = PostgresOptions::default().connections(4);
/// assert_eq!(options.connections, 4);
/// assert_eq!(PostgresOptions::default().connections, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// How many connections the sink opens at most: the number of writes
    /// (and counts) that run at once; a further one waits for a free
    /// connection. Default 2; at least 1
    /// ([`connect_with`](PostgresSink::connect_with) panics on 0). More than
    /// tokio's [`Semaphore::MAX_PERMITS`] (`usize::MAX >> 3`) is taken as
    /// that many: unbounded in practice.
    pub connections: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { connections: 2 }
    }
}

impl PostgresOptions {
    /// Sets [`connections`](Self::connections): at least 1; `usize::MAX`
    /// means unbounded in practice.
    ///
    /// # Panics
    ///
    /// If `connections` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::PostgresOptions;
    ///
    /// assert_eq!(PostgresOptions::default().connections(8).connections, 8);
    /// let refused = std::panic::catch_unwind(|| PostgresOptions::default().connections(0));
    /// assert!(refused.is_err());
    /// ```
    #[track_caller]
    pub fn connections(mut self, connections: usize) -> Self {
        assert!(
            connections > 0,
            "PostgresOptions::connections: connections must be at least 1"
        );
        self.connections = connections;
        self
    }
}

struct Inner<T> {
    config: Config,
    endpoint: Endpoint,
    /// One permit per connection the pool may have.
    permits: Semaphore,
    /// Connections not in use (at most one per permit).
    idle: std::sync::Mutex<Vec<Conn>>,
    table: Table,
    encode: Encoder<T>,
    insert: String,
    types: Vec<Type>,
    wire: Vec<Wire>,
}

struct Conn {
    client: Client,
    insert: Statement,
}

/// A connection taken from the pool for one write; given back when dropped
/// (unless it broke: the next write opens a new one in its place).
struct Lease<'a> {
    idle: &'a std::sync::Mutex<Vec<Conn>>,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
        {
            self.idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(conn);
        }
    }
}

/// Where the sink connects, for messages (never the password).
#[derive(Debug, Clone)]
struct Endpoint {
    target: String,
    database: String,
    user: String,
}

impl Endpoint {
    fn of(config: &Config) -> Self {
        let ports = config.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let mut targets = Vec::new();
        for (i, host) in config.get_hosts().iter().enumerate() {
            targets.push(match host {
                Host::Tcp(name) => match config.get_hostaddrs().get(i) {
                    Some(addr) => format!("{name}:{} ({addr})", port(i)),
                    None => format!("{name}:{}", port(i)),
                },
                Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
            });
        }
        if targets.is_empty() {
            for (i, addr) in config.get_hostaddrs().iter().enumerate() {
                targets.push(std::net::SocketAddr::new(*addr, port(i)).to_string());
            }
        }
        let target = if targets.is_empty() {
            "(no host given)".to_owned()
        } else {
            targets.join(", ")
        };
        let user = match config.get_user() {
            Some(user) => user.to_owned(),
            None => std::env::var("USER").unwrap_or_else(|_| "(the OS user)".to_owned()),
        };
        let database = config.get_dbname().unwrap_or(&user).to_owned();
        Endpoint {
            target,
            database,
            user,
        }
    }

    fn connect_error(&self, source: tokio_postgres::Error) -> SinkError {
        SinkError::Connect {
            target: self.target.clone(),
            database: self.database.clone(),
            user: self.user.clone(),
            source,
        }
    }

    fn error(&self, source: tokio_postgres::Error) -> SinkError {
        SinkError::Postgres {
            target: self.target.clone(),
            database: self.database.clone(),
            source,
        }
    }

    fn location(&self) -> String {
        format!("PostgreSQL at {}, database {}", self.target, self.database)
    }
}

impl<T: Send + 'static> PostgresSink<T> {
    /// Connects to the database at `url` (for example
    /// `postgres://user:password@127.0.0.1:5432/db`, or the key-value form
    /// `host=… user=…`), makes sure `table` is there and fits, and prepares
    /// the insert. `encode` turns an item into the row's values, in the
    /// table's column order.
    ///
    /// The table name is resolved as an unqualified name is, through the
    /// `search_path`. If there is no such table, it is created (columns of
    /// the types of [`ColumnType`], the key as primary key). Any number of
    /// sinks, in any number of processes, may do this at once: creation is
    /// serialised with a transaction-scoped advisory lock, so all of them
    /// succeed. If the table exists, it is checked, and every mismatch is
    /// reported at once ([`SinkError::Schema`]):
    ///
    /// - every column of `table` exists, with the type the mapping writes —
    ///   `bigint` for `Integer` (not `integer` or `smallint`, which would
    ///   refuse large values), `double precision` for `Real`, `text` or
    ///   `varchar` for `Text`, `bytea`, `boolean`, `jsonb` or `json` for
    ///   `Json` (`json` keeps the text as written, `jsonb` normalises it),
    ///   `timestamp with time zone` for `Timestamp` (not `timestamp without
    ///   time zone`, whose meaning depends on the session's time zone); a
    ///   domain counts as its base type; none is generated or an identity
    ///   column `GENERATED ALWAYS`;
    /// - the key columns are exactly the primary key or a unique constraint
    ///   (a valid, non-partial, non-deferrable unique index on plain columns:
    ///   what `ON CONFLICT (key)` needs);
    /// - every column not in `table` is nullable, has a default, or is
    ///   generated or an identity.
    ///
    /// Whether `Null` is allowed is not compared: a `Null` that the table
    /// refuses is a row's content error when written.
    ///
    /// # Errors
    ///
    /// [`SinkError::InvalidUrl`] if `url` is not a valid connection string
    /// (checked before connecting); [`SinkError::Connect`] (naming the host
    /// and port, database and user) if the connection fails;
    /// [`SinkError::Schema`] if the existing table does not fit;
    /// [`SinkError::Postgres`] (with the server's message) if creating,
    /// checking or preparing fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: cancelling drops the half-made connection (a table
    /// created by then stays, and a later connect checks and uses it).
    ///
    /// # Examples
    ///
    /// A connection string that does not parse is refused before anything
    /// is sent (this runs without a server):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{PostgresSink, SinkError, Table, Value};
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// let url = "postgres://app@127.0.0.1:not-a-port/shop";
    /// let err = PostgresSink::connect(url, table, |id: &String| vec![Value::from(id.as_str())])
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, SinkError::InvalidUrl(_)) && err.is_fatal(), "{err}");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With a server (not run here):
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{PostgresSink, Table, Value};
    ///
    /// let table = Table::builder("events").text("id").blob("body").key("id").build()?;
    /// let sink = PostgresSink::connect(
    ///     "postgres://app@127.0.0.1:5432/shop",
    ///     table,
    ///     |e: &(String, Vec<u8>)| vec![Value::from(e.0.as_str()), Value::from(e.1.as_slice())],
    /// )
    /// .await?;
    /// sink.write(vec![("a".to_owned(), b"1".to_vec())]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(
        url: &str,
        table: Table,
        encode: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, SinkError> {
        Self::connect_with(url, table, encode, PostgresOptions::default()).await
    }

    /// [`connect`](Self::connect) with `options`: how many connections the
    /// sink may use at once ([`PostgresOptions::connections`]). It opens one
    /// of them now (to create or check the table); the others when writes
    /// need them.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Panics
    ///
    /// If `options.connections` is 0 (set on the field:
    /// [`PostgresOptions::connections`] refuses it already).
    ///
    /// # Cancel safety
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// A connection string that does not parse is refused before anything
    /// is sent (this runs without a server):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{PostgresOptions, PostgresSink, SinkError, Table, Value};
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// let options = PostgresOptions::default().connections(4);
    /// let encode = |id: &String| vec![Value::from(id.as_str())];
    /// let err = PostgresSink::connect_with("host=127.0.0.1 port=x", table, encode, options)
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, SinkError::InvalidUrl(_)), "{err}");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With a server (not run here), four connections for concurrent
    /// writes:
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{PostgresOptions, PostgresSink, Table, Value};
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// let sink = PostgresSink::connect_with(
    ///     "postgres://app@127.0.0.1:5432/shop",
    ///     table,
    ///     |id: &String| vec![Value::from(id.as_str())],
    ///     PostgresOptions::default().connections(4),
    /// )
    /// .await?;
    /// # drop(sink);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        url: &str,
        table: Table,
        encode: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
        options: PostgresOptions,
    ) -> Result<Self, SinkError> {
        assert!(
            options.connections > 0,
            "PostgresSink::connect_with: options.connections must be at least 1"
        );
        let config = Config::from_str(url).map_err(SinkError::InvalidUrl)?;
        let endpoint = Endpoint::of(&config);
        let mut client = open(&config, &endpoint).await?;
        let wire = prepare_table(&mut client, &table, &endpoint).await?;
        let unnest: Vec<String> = wire
            .iter()
            .enumerate()
            .map(|(i, w)| format!("${}::{}[]", i + 1, w.sql_name()))
            .collect();
        let aggregates: Vec<String> = table
            .key()
            .map(|c| format!("array_agg({})", c.name))
            .collect();
        // One row back: the count, and the inserted keys only when some row
        // was not inserted (the subquery's filter is a one-time filter: when
        // false, `ins` is not read again).
        let insert = format!(
            "WITH ins AS (INSERT INTO {table} ({columns}) SELECT * FROM UNNEST({unnest}) \
             ON CONFLICT ({key}) DO NOTHING RETURNING {key}), \
             n AS (SELECT count(*) AS n FROM ins) \
             SELECT n.n, d.* FROM n, \
             LATERAL (SELECT {aggregates} FROM ins WHERE n.n < cardinality($1)) d",
            table = table.name(),
            columns = table.column_list(),
            unnest = unnest.join(", "),
            key = table.key_list(),
            aggregates = aggregates.join(", "),
        );
        let types: Vec<Type> = wire.iter().map(|w| w.array_type()).collect();
        let statement = client
            .prepare_typed(&insert, &types)
            .await
            .map_err(|e| endpoint.error(e))?;
        let conn = Conn {
            client,
            insert: statement,
        };
        Ok(PostgresSink {
            inner: Arc::new(Inner {
                config,
                endpoint,
                permits: Semaphore::new(options.connections.min(Semaphore::MAX_PERMITS)),
                idle: std::sync::Mutex::new(vec![conn]),
                table,
                encode: Box::new(encode),
                insert,
                types,
                wire,
            }),
        })
    }

    /// A free connection of the pool (waiting for one if all are in use),
    /// made anew if there is none or it broke. Cancel-safe: a cancelled wait
    /// or connect takes nothing from the pool.
    async fn connection(&self) -> Result<Lease<'_>, SinkError> {
        let inner = &*self.inner;
        let permit = inner
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let idle = {
            let mut idle = inner
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A broken connection is dropped: its place is made anew.
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let client = open(&inner.config, &inner.endpoint).await?;
                let insert = client
                    .prepare_typed(&inner.insert, &inner.types)
                    .await
                    .map_err(|e| inner.endpoint.error(e))?;
                Conn { client, insert }
            }
        };
        Ok(Lease {
            idle: &inner.idle,
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// Writes `rows` in one statement and reports, per row, whether it was
    /// inserted or skipped as a duplicate of a stored key (or of an earlier
    /// row of the same batch).
    ///
    /// # Errors
    ///
    /// [`SinkError::Table`] if a row does not fit the table (nothing is sent);
    /// [`SinkError::Postgres`] if the statement fails (nothing is stored),
    /// [`SinkError::Connect`] if reconnecting fails. A
    /// [content](SinkError::is_content) error means some row was refused:
    /// [`write_each`](Self::write_each) finds which.
    ///
    /// # Cancel safety
    ///
    /// Cancelling after the statement was sent does not stop it: the batch
    /// may be stored although the caller did not see the result. Writing it
    /// again is harmless: the rows come back as duplicates.
    ///
    /// # Examples
    ///
    /// Needs a server (not run here):
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{PostgresSink, SinkError, Table, TableError, Value, Written};
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// let url = "postgres://app@127.0.0.1:5432/shop";
    /// let sink = PostgresSink::connect(url, table, |id: &Option<&str>| vec![Value::from(*id)]).await?;
    /// let written = sink.write(vec![Some("a"), Some("a")]).await?;
    /// assert_eq!(written, [Written::Inserted, Written::Duplicate]);
    ///
    /// // A row that does not fit fails the batch before anything is sent.
    /// let err = sink.write(vec![Some("b"), None]).await.unwrap_err();
    /// assert!(matches!(err, SinkError::Table(TableError::NullKey { row: 1, .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write(&self, rows: Vec<T>) -> Result<Vec<Written>, SinkError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let values = self.inner.table.encode_rows(rows, &self.inner.encode)?;
        let conn = self.connection().await?;
        let all: Vec<usize> = (0..values.len()).collect();
        self.insert(&conn, values.as_slice(), &all).await
    }

    /// Writes `rows` like [`write`](Self::write) — one statement, one round
    /// trip — but sets aside each row that is refused for its content instead
    /// of failing the batch, and reports one [`RowOutcome`] per row, in order:
    ///
    /// - a row that does not fit the table ([`Table::check_row`]: wrong type,
    ///   null key, …) is [`Rejected`](RowOutcome::Rejected) before anything
    ///   is sent;
    /// - if the database refuses the statement for a row's
    ///   [content](SinkError::is_content) (a `CHECK`, `NOT NULL`, foreign key
    ///   or other unique constraint; a NUL byte in text, a value out of
    ///   range), the batch is split in halves and each half written on its
    ///   own, recursively, until every refused row is alone: that row is
    ///   `Rejected` with the server's message (which names the constraint);
    ///   every other row is stored. With `k` bad rows among `n`, that is about
    ///   `2·k·log2(n)` more statements; a batch without bad rows is one
    ///   statement, as with `write`.
    /// - the rest are [`Inserted`](RowOutcome::Inserted) or
    ///   [`Duplicate`](RowOutcome::Duplicate) (a key repeated in the batch:
    ///   the first is inserted, as with `write`).
    ///
    /// # Errors
    ///
    /// A [transient](SinkError::is_transient) error (the connection broke,
    /// the server is shutting down) or a [fatal](SinkError::is_fatal) one
    /// (the table was dropped, privileges were revoked). Halves written
    /// before it stay stored: writing the whole batch again is harmless
    /// (those rows come back as duplicates).
    ///
    /// # Cancel safety
    ///
    /// As [`write`](Self::write): a statement already sent may store its rows.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(url) = std::env::var("FLOWGATE_TEST_POSTGRES_URL") else {
    /// #     assert!(std::env::var("CI").as_deref() != Ok("true"), "dev/test.sh sets FLOWGATE_TEST_POSTGRES_URL");
    /// #     return Ok(());
    /// # };
    /// use flowgate_sql::{PostgresSink, RowOutcome, Table, Value};
    ///
    /// // let url = "postgres://user@127.0.0.1:5432/db";
    /// let name = format!("doc_write_each_{}", std::process::id());
    /// let table = Table::builder(&name).integer("id").text("note").key("id").build()?;
    /// let sink = PostgresSink::connect(&url, table, |r: &(i64, &str)| {
    ///     vec![Value::Integer(r.0), Value::from(r.1)]
    /// })
    /// .await?;
    /// # let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    /// # tokio::spawn(connection);
    /// # admin.batch_execute(&format!("ALTER TABLE {name} ADD CONSTRAINT short CHECK (length(note) < 10)")).await?;
    /// // The table has CHECK (length(note) < 10).
    /// let outcomes = sink
    ///     .write_each(vec![(1, "fine"), (2, "far too long a note"), (3, "ok")])
    ///     .await?;
    /// assert!(matches!(outcomes[0], RowOutcome::Inserted));
    /// let reason = outcomes[1].rejection().unwrap().to_string();
    /// assert!(reason.contains(r#"violates check constraint "short""#), "{reason}");
    /// assert!(matches!(outcomes[2], RowOutcome::Inserted));
    /// assert_eq!(sink.count().await?, 2);
    /// # admin.batch_execute(&format!("DROP TABLE {name}")).await?;
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
    /// the others are written in one statement, and a row refused for its
    /// content is isolated by splitting the batch, with the outcomes, errors
    /// and cancel safety of `write_each`. The sink's encoder is not used.
    ///
    /// No row is copied: the array parameters are made of references into
    /// `rows`. Writing the same `Arc` again (a retry after a
    /// [transient](SinkError::is_transient) error) costs no copy either.
    ///
    /// # Errors
    ///
    /// As [`write_each`](Self::write_each).
    ///
    /// # Cancel safety
    ///
    /// As [`write`](Self::write): a statement already sent may store its rows.
    ///
    /// # Examples
    ///
    /// Needs a server (not run here):
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use flowgate_sql::{PostgresSink, RowOutcome, Table, Value};
    ///
    /// let table = Table::builder("notes").text("id").text("note").key("id").build()?;
    /// let url = "postgres://app@127.0.0.1:5432/shop";
    /// let sink = PostgresSink::connect(url, table, |_: &()| Vec::new()).await?;
    /// let rows: Arc<[Vec<Value>]> = vec![
    ///     vec![Value::from("a"), Value::from("first")],
    ///     vec![Value::Null, Value::from("no key")],
    /// ]
    /// .into();
    /// let outcomes = sink.write_values(Arc::clone(&rows)).await?;
    /// assert!(matches!(outcomes[0], RowOutcome::Inserted));
    /// assert!(outcomes[1].rejection().is_some());
    /// // A retry with the same rows copies nothing and stores nothing twice.
    /// assert!(matches!(sink.write_values(rows).await?[0], RowOutcome::Duplicate));
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
    /// [`write_values`](Self::write_values) does: one `UNNEST` statement, a
    /// refused row isolated by halving. Each column's array parameter is
    /// encoded straight from the batch's column buffer.
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
    /// As [`write_values`](Self::write_values).
    ///
    /// # Examples
    ///
    /// Needs a server (not run here):
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use flowgate_sql::{PostgresSink, RowBatch, RowOutcome, Table, ValueRef};
    ///
    /// let table = Table::builder("notes").text("id").text("note").key("id").build()?;
    /// let url = "postgres://app@127.0.0.1:5432/shop";
    /// let sink = PostgresSink::connect(url, table.clone(), |_: &()| Vec::new()).await?;
    /// let mut batch = RowBatch::with_capacity(&table, 2);
    /// batch.append(&[ValueRef::Text("a"), ValueRef::Text("first")])?;
    /// batch.append(&[ValueRef::Text("b"), ValueRef::Null])?;
    /// let outcomes = sink.write_batch(Arc::new(batch)).await?;
    /// assert!(outcomes.iter().all(|o| matches!(o, RowOutcome::Inserted)));
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
        let (mut outcomes, good) = rows.check(&self.inner.table);
        if !good.is_empty() {
            let conn = self.connection().await?;
            // Ranges of `good` to write, the next one last; written in order,
            // so that of two rows with one key the earlier is the inserted one.
            let mut todo = vec![(0, good.len())];
            while let Some((start, end)) = todo.pop() {
                let part = &good[start..end];
                match self.insert(&conn, &*rows, part).await {
                    Ok(written) => {
                        for (&index, written) in part.iter().zip(written) {
                            outcomes[index] = Some(written.into());
                        }
                    }
                    Err(err) if err.is_content() => {
                        if end - start == 1 {
                            outcomes[good[start]] = Some(RowOutcome::Rejected(err));
                        } else {
                            if end - start == good.len() {
                                tracing::debug!(rows = good.len(), error = %err, "batch refused for a row's content: isolating the refused rows");
                            }
                            let mid = start + (end - start) / 2;
                            todo.push((mid, end));
                            todo.push((start, mid));
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every row has an outcome"))
            .collect())
    }

    /// One insert statement for the rows `part` of `rows` (checked against
    /// the table).
    async fn insert<R: RowSet + ?Sized>(
        &self,
        conn: &Conn,
        rows: &R,
        part: &[usize],
    ) -> Result<Vec<Written>, SinkError> {
        let len = part.len();
        let table = &self.inner.table;
        let err = |e| self.inner.endpoint.error(e);
        let params: Vec<Box<dyn ToSql + Sync + Send + '_>> = self
            .inner
            .wire
            .iter()
            .enumerate()
            .map(|(i, wire)| column_array(*wire, part.iter().map(move |&row| rows.value(row, i))))
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();

        let answer = conn
            .client
            .query_one(&conn.insert, &params)
            .await
            .map_err(err)?;
        let inserted: i64 = answer.try_get(0).map_err(err)?;
        if usize::try_from(inserted).is_ok_and(|n| n == len) {
            // The common case: every row was inserted.
            return Ok(vec![Written::Inserted; len]);
        }

        // Count the inserted keys, then hand them out to rows in order: the
        // first row with an inserted key was stored, any later one is a
        // duplicate within the batch.
        let mut columns = Vec::with_capacity(table.key_indexes().len());
        for (i, column) in table.key().enumerate() {
            columns.push(
                KeyPart::column(&answer, 1 + i, column.ty)
                    .map_err(err)?
                    .into_iter(),
            );
        }
        let mut counts: HashMap<Vec<KeyPart>, usize> = HashMap::new();
        'keys: loop {
            let mut key = Vec::with_capacity(columns.len());
            for column in &mut columns {
                match column.next() {
                    Some(part) => key.push(part),
                    None => break 'keys,
                }
            }
            *counts.entry(key).or_default() += 1;
        }
        Ok(part
            .iter()
            .map(|&row| {
                let key: Vec<KeyPart> = table
                    .key_indexes()
                    .iter()
                    .map(|&i| KeyPart::of(rows.value(row, i)))
                    .collect();
                match counts.get_mut(&key) {
                    Some(count) if *count > 0 => {
                        *count -= 1;
                        Written::Inserted
                    }
                    _ => Written::Duplicate,
                }
            })
            .collect())
    }

    /// The number of rows in the table.
    ///
    /// # Errors
    ///
    /// [`SinkError::Postgres`] if the query fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    ///
    /// # Examples
    ///
    /// Needs a server (not run here):
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{PostgresSink, Table, Value};
    ///
    /// let table = Table::builder("events").integer("id").key("id").build()?;
    /// let url = "postgres://app@127.0.0.1:5432/shop";
    /// let sink = PostgresSink::connect(url, table, |id: &i64| vec![Value::Integer(*id)]).await?;
    /// sink.write(vec![1, 2, 2]).await?;
    /// assert!(sink.count().await? >= 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn count(&self) -> Result<u64, SinkError> {
        let conn = self.connection().await?;
        let sql = format!("SELECT COUNT(*) FROM {}", self.inner.table.name());
        let count: i64 = conn
            .client
            .query_one(&sql, &[])
            .await
            .map_err(|e| self.inner.endpoint.error(e))?
            .get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The table this sink writes to.
    ///
    /// # Examples
    ///
    /// Needs a server (not run here):
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use flowgate_sql::{PostgresSink, Table, Value};
    ///
    /// let table = Table::builder("events").integer("id").key("id").build()?;
    /// let url = "postgres://app@127.0.0.1:5432/shop";
    /// let sink = PostgresSink::connect(url, table.clone(), |id: &i64| vec![Value::Integer(*id)]).await?;
    /// assert_eq!(sink.table(), &table);
    /// # Ok(())
    /// # }
    /// ```
    pub fn table(&self) -> &Table {
        &self.inner.table
    }
}

/// Connects, and drives the connection on a task of its own.
async fn open(config: &Config, endpoint: &Endpoint) -> Result<Client, SinkError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| endpoint.connect_error(e))?;
    let target = endpoint.target.clone();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(target = %target, error = %err, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Creates the table if it is missing — serialised across sinks and
/// processes by an advisory lock, so that concurrent starts do not race in
/// `CREATE TABLE IF NOT EXISTS` — then checks it; returns how each column
/// is sent.
async fn prepare_table(
    client: &mut Client,
    table: &Table,
    endpoint: &Endpoint,
) -> Result<Vec<Wire>, SinkError> {
    let err = |e| endpoint.error(e);
    let lock_key = format!("flowgate-sql: create table {}", table.name());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tx = client.transaction().await.map_err(err)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended( \
                 $1::text || ' in ' || coalesce(current_schema()::text, ''), 0))",
            &[&lock_key],
        )
        .await
        .map_err(err)?;
        let oid = match relation(&tx, table.name()).await.map_err(err)? {
            Some(oid) => oid,
            None => {
                if let Err(e) = tx
                    .batch_execute(&table.create_sql(ColumnType::postgres_name))
                    .await
                {
                    // Someone that does not take the lock (another program)
                    // created it meanwhile: look again.
                    let raced = e.code().is_some_and(|c| {
                        matches!(c.code(), "42P07" /* duplicate_table */ | "23505")
                    });
                    if raced && attempt < 5 {
                        continue; // the transaction is rolled back when dropped
                    }
                    return Err(err(e));
                }
                // Resolved the way the insert will resolve it (an error
                // naming the table if the search_path does not find it).
                tx.query_one("SELECT $1::text::regclass::oid", &[&table.name()])
                    .await
                    .map_err(err)?
                    .try_get(0)
                    .map_err(err)?
            }
        };
        let wire = check_table(&tx, oid, table, endpoint).await?;
        tx.commit().await.map_err(err)?;
        return Ok(wire);
    }
}

/// The oid of `name` resolved as an unqualified name (the search_path).
async fn relation(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
) -> Result<Option<u32>, tokio_postgres::Error> {
    tx.query_one("SELECT to_regclass($1::text)::oid", &[&name])
        .await?
        .try_get(0)
}

/// How a column's values are sent: the element type of its array parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Int8,
    Float8,
    Text,
    Bytea,
    Bool,
    Json,
    Jsonb,
    Timestamptz,
}

impl Wire {
    fn sql_name(self) -> &'static str {
        match self {
            Wire::Int8 => "BIGINT",
            Wire::Float8 => "DOUBLE PRECISION",
            Wire::Text => "TEXT",
            Wire::Bytea => "BYTEA",
            Wire::Bool => "BOOLEAN",
            Wire::Json => "JSON",
            Wire::Jsonb => "JSONB",
            Wire::Timestamptz => "TIMESTAMPTZ",
        }
    }

    fn array_type(self) -> Type {
        match self {
            Wire::Int8 => Type::INT8_ARRAY,
            Wire::Float8 => Type::FLOAT8_ARRAY,
            Wire::Text => Type::TEXT_ARRAY,
            Wire::Bytea => Type::BYTEA_ARRAY,
            Wire::Bool => Type::BOOL_ARRAY,
            Wire::Json => Type::JSON_ARRAY,
            Wire::Jsonb => Type::JSONB_ARRAY,
            Wire::Timestamptz => Type::TIMESTAMPTZ_ARRAY,
        }
    }
}

/// What the mapping writes for `ty`, as messages say it.
fn expected_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer => "bigint",
        ColumnType::Real => "double precision",
        ColumnType::Text => "text",
        ColumnType::Blob => "bytea",
        ColumnType::Boolean => "boolean",
        ColumnType::Json => "jsonb",
        ColumnType::Timestamp => "timestamp with time zone",
    }
}

/// How a column of (base) type `found` takes values of `ty`, or why it does
/// not.
fn fit(ty: ColumnType, found: &Type) -> Result<Wire, Option<&'static str>> {
    match (ty, found) {
        (ColumnType::Integer, t) if *t == Type::INT8 => Ok(Wire::Int8),
        (ColumnType::Integer, t) if *t == Type::INT4 || *t == Type::INT2 => {
            Err(Some("it cannot hold every 64-bit value: make it bigint"))
        }
        (ColumnType::Real, t) if *t == Type::FLOAT8 => Ok(Wire::Float8),
        (ColumnType::Real, t) if *t == Type::FLOAT4 => {
            Err(Some("real keeps about 6 digits: make it double precision"))
        }
        (ColumnType::Text, t) if *t == Type::TEXT || *t == Type::VARCHAR => Ok(Wire::Text),
        (ColumnType::Text, t) if *t == Type::BPCHAR => Err(Some(
            "character(n) pads with spaces: make it text or varchar",
        )),
        (ColumnType::Blob, t) if *t == Type::BYTEA => Ok(Wire::Bytea),
        (ColumnType::Boolean, t) if *t == Type::BOOL => Ok(Wire::Bool),
        (ColumnType::Json, t) if *t == Type::JSONB => Ok(Wire::Jsonb),
        (ColumnType::Json, t) if *t == Type::JSON => Ok(Wire::Json),
        (ColumnType::Timestamp, t) if *t == Type::TIMESTAMPTZ => Ok(Wire::Timestamptz),
        (ColumnType::Timestamp, t) if *t == Type::TIMESTAMP => Err(Some(
            "without a time zone, the instant depends on the session's TimeZone: make it timestamptz",
        )),
        _ => Err(None),
    }
}

/// Compares the table `oid` with `table`, within the creating transaction.
async fn check_table(
    tx: &tokio_postgres::Transaction<'_>,
    oid: u32,
    table: &Table,
    endpoint: &Endpoint,
) -> Result<Vec<Wire>, SinkError> {
    let err = |e| endpoint.error(e);
    let relation = tx
        .query_one(
            "SELECT c.relkind::text, format('%I.%I', n.nspname, c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .map_err(err)?;
    let relkind: String = relation.get(0);
    let qualified: String = relation.get(1);
    let schema_error = |mismatches| {
        SinkError::Schema(SchemaError {
            table: qualified.clone(),
            location: endpoint.location(),
            mismatches,
        })
    };
    let kind = match relkind.as_str() {
        "r" | "p" => None,
        "v" => Some("a view"),
        "m" => Some("a materialized view"),
        "f" => Some("a foreign table"),
        "S" => Some("a sequence"),
        "i" | "I" => Some("an index"),
        _ => Some("not an ordinary table"),
    };
    if let Some(kind) = kind {
        return Err(schema_error(vec![SchemaMismatch::NotATable {
            kind: kind.to_owned(),
        }]));
    }

    struct Existing {
        name: String,
        base: u32,
        shown: String,
        not_null: bool,
        has_default: bool,
        identity: String,
        generated: String,
    }
    let existing: Vec<Existing> = tx
        .query(
            "SELECT a.attname::text, \
                    (CASE WHEN t.typbasetype <> 0 THEN t.typbasetype ELSE a.atttypid END)::oid, \
                    format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull, a.atthasdef, a.attidentity::text, a.attgenerated::text \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(err)?
        .iter()
        .map(|row| Existing {
            name: row.get(0),
            base: row.get(1),
            shown: row.get(2),
            not_null: row.get(3),
            has_default: row.get(4),
            identity: row.get(5),
            generated: row.get(6),
        })
        .collect();

    let mut mismatches = Vec::new();
    let mut wire = Vec::with_capacity(table.columns().len());
    for column in table.columns() {
        // Unquoted names are folded to lower case.
        let name = column.name.to_ascii_lowercase();
        let Some(found) = existing.iter().find(|c| c.name == name) else {
            mismatches.push(SchemaMismatch::MissingColumn { column: name });
            wire.push(Wire::Text); // unused: the check fails
            continue;
        };
        if !found.generated.is_empty() || found.identity == "a" {
            mismatches.push(SchemaMismatch::NotWritable {
                column: name.clone(),
                what: if found.generated.is_empty() {
                    "an identity column GENERATED ALWAYS".to_owned()
                } else {
                    "generated".to_owned()
                },
            });
        }
        let found_type = Type::from_oid(found.base);
        match found_type.as_ref().map(|t| fit(column.ty, t)) {
            Some(Ok(w)) => wire.push(w),
            other => {
                let note = match other {
                    Some(Err(note)) => note.map(str::to_owned),
                    _ => None,
                };
                mismatches.push(SchemaMismatch::ColumnType {
                    column: name,
                    found: found.shown.clone(),
                    expected: expected_name(column.ty).to_owned(),
                    note,
                });
                wire.push(Wire::Text);
            }
        }
    }
    for found in &existing {
        let mapped = table
            .columns()
            .iter()
            .any(|c| c.name.to_ascii_lowercase() == found.name);
        let filled = found.has_default || !found.identity.is_empty() || !found.generated.is_empty();
        if !mapped && found.not_null && !filled {
            mismatches.push(SchemaMismatch::UnmappedNotNull {
                column: found.name.clone(),
            });
        }
    }

    // The indexes ON CONFLICT (key) can use as its arbiter.
    let unique: Vec<BTreeSet<String>> = tx
        .query(
            "SELECT array(SELECT pg_get_indexdef(i.indexrelid, k, true) \
                          FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k) \
             FROM pg_index i \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indisvalid \
               AND i.indpred IS NULL AND i.indexprs IS NULL",
            &[&oid],
        )
        .await
        .map_err(err)?
        .iter()
        .map(|row| row.get::<_, Vec<String>>(0).into_iter().collect())
        .collect();
    let key: BTreeSet<String> = table.key().map(|c| c.name.to_ascii_lowercase()).collect();
    if !unique.contains(&key) {
        mismatches.push(SchemaMismatch::KeyNotUnique {
            key: table.key().map(|c| c.name.to_ascii_lowercase()).collect(),
        });
    }

    if mismatches.is_empty() {
        Ok(wire)
    } else {
        Err(schema_error(mismatches))
    }
}

/// One column's values as a typed array parameter. Rows were checked, so a
/// value is either of the column's type or null.
fn column_array<'a>(
    wire: Wire,
    values: impl Iterator<Item = ValueRef<'a>>,
) -> Box<dyn ToSql + Sync + Send + 'a> {
    match wire {
        Wire::Int8 => Box::new(
            values
                .map(|v| match v {
                    ValueRef::Integer(v) => Some(v),
                    _ => None,
                })
                .collect::<Vec<Option<i64>>>(),
        ),
        Wire::Float8 => Box::new(
            values
                .map(|v| match v {
                    ValueRef::Real(v) => Some(v),
                    _ => None,
                })
                .collect::<Vec<Option<f64>>>(),
        ),
        Wire::Text => Box::new(
            values
                .map(|v| match v {
                    ValueRef::Text(v) => Some(v),
                    _ => None,
                })
                .collect::<Vec<Option<&str>>>(),
        ),
        Wire::Bytea => Box::new(
            values
                .map(|v| match v {
                    ValueRef::Blob(v) => Some(v),
                    _ => None,
                })
                .collect::<Vec<Option<&[u8]>>>(),
        ),
        Wire::Bool => Box::new(
            values
                .map(|v| match v {
                    ValueRef::Boolean(v) => Some(v),
                    _ => None,
                })
                .collect::<Vec<Option<bool>>>(),
        ),
        Wire::Json | Wire::Jsonb => Box::new(
            values
                .map(|v| match v {
                    ValueRef::Json(v) => Some(JsonText(v)),
                    _ => None,
                })
                .collect::<Vec<Option<JsonText<'_>>>>(),
        ),
        Wire::Timestamptz => Box::new(
            values
                .map(|v| match v {
                    ValueRef::Timestamp(v) => Some(Timestamptz(v)),
                    _ => None,
                })
                .collect::<Vec<Option<Timestamptz>>>(),
        ),
    }
}

/// JSON text sent as `JSON` or `JSONB` in the binary format (the text, after
/// a version byte for `JSONB`): the server parses it once, nothing is parsed
/// here.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01T00:00:00Z.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A [`Value::Timestamp`] as PostgreSQL's binary `TIMESTAMPTZ`: microseconds
/// since 2000-01-01 UTC.
#[derive(Debug, Clone, Copy)]
struct Timestamptz(i64);

impl ToSql for Timestamptz {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        // Rows are checked: the value is within the years 0000 to 9999.
        out.put_i64(self.0 - POSTGRES_EPOCH_MICROS);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Timestamptz {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let raw: [u8; 8] = raw.try_into()?;
        Ok(Timestamptz(
            i64::from_be_bytes(raw).saturating_add(POSTGRES_EPOCH_MICROS),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

impl<T> Clone for PostgresSink<T> {
    fn clone(&self) -> Self {
        PostgresSink {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for PostgresSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSink")
            .field("table", &self.inner.table.name())
            .field("target", &self.inner.endpoint.target)
            .field("database", &self.inner.endpoint.database)
            .finish_non_exhaustive()
    }
}

/// A key of one row, comparable across rows (keys have no floats).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyPart {
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
    Boolean(bool),
    Timestamp(i64),
}

impl KeyPart {
    pub(crate) fn of(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Integer(v) => KeyPart::Integer(v),
            ValueRef::Text(v) => KeyPart::Text(v.to_owned()),
            ValueRef::Blob(v) => KeyPart::Blob(v.to_vec()),
            ValueRef::Boolean(v) => KeyPart::Boolean(v),
            ValueRef::Timestamp(v) => KeyPart::Timestamp(v),
            ValueRef::Null | ValueRef::Real(_) | ValueRef::Json(_) => {
                unreachable!("rows are checked: keys are never null, real or json")
            }
        }
    }

    /// The key column `index` of `row`, an array of keys of type `ty` (or
    /// null: none).
    fn column(
        row: &tokio_postgres::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<Vec<Self>, tokio_postgres::Error> {
        fn all<'a, V: FromSql<'a>>(
            row: &'a tokio_postgres::Row,
            index: usize,
            part: impl Fn(V) -> KeyPart,
        ) -> Result<Vec<KeyPart>, tokio_postgres::Error> {
            let values: Option<Vec<V>> = row.try_get(index)?;
            Ok(values.unwrap_or_default().into_iter().map(part).collect())
        }
        match ty {
            ColumnType::Integer => all(row, index, KeyPart::Integer),
            ColumnType::Text => all(row, index, KeyPart::Text),
            ColumnType::Blob => all(row, index, KeyPart::Blob),
            ColumnType::Boolean => all(row, index, KeyPart::Boolean),
            ColumnType::Timestamp => all(row, index, |t: Timestamptz| KeyPart::Timestamp(t.0)),
            ColumnType::Real | ColumnType::Json => unreachable!("tables have no real or json keys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_names_hosts_database_and_user_but_no_password() {
        let e =
            Endpoint::of(&Config::from_str("postgres://bob:secret@db.example:6543/shop").unwrap());
        assert_eq!(e.target, "db.example:6543");
        assert_eq!(e.database, "shop");
        assert_eq!(e.user, "bob");
        let e = Endpoint::of(
            &Config::from_str("host=/run/postgresql,10.0.0.1 port=5433 user=ann password=x")
                .unwrap(),
        );
        assert_eq!(e.target, "/run/postgresql/.s.PGSQL.5433, 10.0.0.1:5433");
        assert_eq!(e.database, "ann", "the database defaults to the user");
        let e = Endpoint::of(&Config::from_str("hostaddr=127.0.0.1 user=u dbname=d").unwrap());
        assert_eq!(e.target, "127.0.0.1:5432");
        let all = format!("{e:?}");
        assert!(!all.contains("secret"));
    }

    #[test]
    fn columns_fit_by_exact_type_family() {
        assert_eq!(fit(ColumnType::Integer, &Type::INT8), Ok(Wire::Int8));
        assert!(fit(ColumnType::Integer, &Type::INT4).unwrap_err().is_some());
        assert_eq!(fit(ColumnType::Integer, &Type::TEXT), Err(None));
        assert_eq!(fit(ColumnType::Text, &Type::VARCHAR), Ok(Wire::Text));
        assert_eq!(fit(ColumnType::Json, &Type::JSON), Ok(Wire::Json));
        assert_eq!(fit(ColumnType::Json, &Type::JSONB), Ok(Wire::Jsonb));
        assert_eq!(fit(ColumnType::Json, &Type::TEXT), Err(None));
        assert_eq!(
            fit(ColumnType::Timestamp, &Type::TIMESTAMPTZ),
            Ok(Wire::Timestamptz)
        );
        assert!(
            fit(ColumnType::Timestamp, &Type::TIMESTAMP)
                .unwrap_err()
                .is_some()
        );
        assert!(fit(ColumnType::Real, &Type::FLOAT4).unwrap_err().is_some());
        assert_eq!(fit(ColumnType::Boolean, &Type::BOOL), Ok(Wire::Bool));
        assert_eq!(fit(ColumnType::Blob, &Type::BYTEA), Ok(Wire::Bytea));
    }

    #[test]
    fn timestamps_use_the_postgres_epoch() {
        let mut buf = BytesMut::new();
        Timestamptz(POSTGRES_EPOCH_MICROS)
            .to_sql(&Type::TIMESTAMPTZ, &mut buf)
            .unwrap();
        assert_eq!(&buf[..], &0i64.to_be_bytes());
        let back = Timestamptz::from_sql(&Type::TIMESTAMPTZ, &1i64.to_be_bytes()).unwrap();
        assert_eq!(back.0, POSTGRES_EPOCH_MICROS + 1);
        let mut buf = BytesMut::new();
        JsonText("[1]").to_sql(&Type::JSONB, &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x01[1]");
        let mut buf = BytesMut::new();
        JsonText("[1]").to_sql(&Type::JSON, &mut buf).unwrap();
        assert_eq!(&buf[..], b"[1]");
    }
}
