//! [`PostgresSink`]: batches into PostgreSQL, one statement per batch.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::error::SinkError;
use crate::table::{ColumnType, Table, Value};
use crate::{Encoder, Written};

/// Writes batches of `T` into a PostgreSQL table, idempotently.
///
/// Each [`write`](Self::write) is a single statement —
///
/// ```sql
/// INSERT INTO events (id, body)
/// SELECT * FROM UNNEST($1::TEXT[], $2::BYTEA[])
/// ON CONFLICT (id) DO NOTHING
/// RETURNING id
/// ```
///
/// — with one array parameter per column: one round trip per batch whatever
/// its size, atomic (stored entirely or not at all), and idempotent through
/// the key. The returned keys tell which rows were inserted.
///
/// One connection is shared by every clone of the sink; concurrent writes are
/// pipelined on it (tokio-postgres sends them without waiting for earlier
/// answers), which suits a [`Batcher`](https://docs.rs/flowgate/latest/flowgate/batch/struct.Batcher.html)
/// with `flush_concurrency > 1`. If the connection breaks, the write fails with
/// a [transient](SinkError::is_transient) error and the next write reconnects.
///
/// TLS is not supported: connect over loopback, a Unix socket or a trusted
/// network.
pub struct PostgresSink<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    config: Config,
    conn: Mutex<Option<Arc<Conn>>>,
    table: Table,
    encode: Encoder<T>,
    create: String,
    insert: String,
    types: Vec<Type>,
}

struct Conn {
    client: Client,
    insert: Statement,
}

impl<T: Send + 'static> PostgresSink<T> {
    /// Connects to the database at `url` (for example
    /// `postgres://user:password@127.0.0.1:5432/db`, or the key-value form
    /// `host=… user=…`), creates `table` if it does not exist and prepares the
    /// insert. `encode` turns an item into the row's values, in the table's
    /// column order.
    ///
    /// # Errors
    ///
    /// [`SinkError::Postgres`] if `url` is not a valid connection string (a
    /// configuration error, checked before connecting), the connection fails,
    /// or the table cannot be created.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: cancelling drops the half-made connection.
    pub async fn connect(
        url: &str,
        table: Table,
        encode: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, SinkError> {
        let config = Config::from_str(url)?;
        let create = table.create_sql(ColumnType::postgres_name);
        let unnest: Vec<String> = table
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}[]", i + 1, c.ty.postgres_name()))
            .collect();
        let insert = format!(
            "INSERT INTO {table} ({columns}) SELECT * FROM UNNEST({unnest}) \
             ON CONFLICT ({key}) DO NOTHING RETURNING {key}",
            table = table.name(),
            columns = table.column_list(),
            unnest = unnest.join(", "),
            key = table.key_list(),
        );
        let types = table.columns().iter().map(|c| array_type(c.ty)).collect();
        let sink = PostgresSink {
            inner: Arc::new(Inner {
                config,
                conn: Mutex::new(None),
                table,
                encode: Box::new(encode),
                create,
                insert,
                types,
            }),
        };
        sink.connection().await?;
        Ok(sink)
    }

    /// The shared connection, made anew if there is none or it broke.
    async fn connection(&self) -> Result<Arc<Conn>, SinkError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(conn) = &*slot
            && !conn.client.is_closed()
        {
            return Ok(Arc::clone(conn));
        }
        let (client, connection) = self.inner.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "postgres connection closed");
            }
        });
        client.batch_execute(&self.inner.create).await?;
        let insert = client
            .prepare_typed(&self.inner.insert, &self.inner.types)
            .await?;
        let conn = Arc::new(Conn { client, insert });
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Writes `rows` in one statement and reports, per row, whether it was
    /// inserted or skipped as a duplicate of a stored key (or of an earlier
    /// row of the same batch).
    ///
    /// # Errors
    ///
    /// [`SinkError::Table`] if a row does not fit the table (nothing is sent);
    /// [`SinkError::Postgres`] if the statement or the connection fails
    /// (nothing is stored).
    ///
    /// # Cancel safety
    ///
    /// Cancelling after the statement was sent does not stop it: the batch
    /// may be stored although the caller did not see the result. Writing it
    /// again is harmless: the rows come back as duplicates.
    pub async fn write(&self, rows: Vec<T>) -> Result<Vec<Written>, SinkError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let table = &self.inner.table;
        let values = table.encode_rows(rows, &self.inner.encode)?;
        let params: Vec<Box<dyn ToSql + Sync + Send + '_>> = table
            .columns()
            .iter()
            .enumerate()
            .map(|(i, column)| column_array(column.ty, values.iter().map(|row| &row[i])))
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();

        let conn = self.connection().await?;
        let returned = conn.client.query(&conn.insert, &params).await?;

        // Count the inserted keys, then hand them out to rows in order: the
        // first row with an inserted key was stored, any later one is a
        // duplicate within the batch.
        let key_types: Vec<ColumnType> = table.key().map(|c| c.ty).collect();
        let mut inserted: HashMap<Vec<KeyPart>, usize> = HashMap::with_capacity(returned.len());
        for row in &returned {
            let key = key_types
                .iter()
                .enumerate()
                .map(|(i, ty)| KeyPart::from_row(row, i, *ty))
                .collect::<Result<Vec<_>, _>>()?;
            *inserted.entry(key).or_default() += 1;
        }
        Ok(values
            .iter()
            .map(|row| {
                let key: Vec<KeyPart> = table
                    .key_indexes()
                    .iter()
                    .map(|&i| KeyPart::of(&row[i]))
                    .collect();
                match inserted.get_mut(&key) {
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
    pub async fn count(&self) -> Result<u64, SinkError> {
        let conn = self.connection().await?;
        let sql = format!("SELECT COUNT(*) FROM {}", self.inner.table.name());
        let count: i64 = conn.client.query_one(&sql, &[]).await?.get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The table this sink writes to.
    pub fn table(&self) -> &Table {
        &self.inner.table
    }
}

fn array_type(ty: ColumnType) -> Type {
    match ty {
        ColumnType::Integer => Type::INT8_ARRAY,
        ColumnType::Real => Type::FLOAT8_ARRAY,
        ColumnType::Text => Type::TEXT_ARRAY,
        ColumnType::Blob => Type::BYTEA_ARRAY,
    }
}

/// One column's values as a typed array parameter. Rows were checked, so a
/// value is either of the column's type or null.
fn column_array<'a>(
    ty: ColumnType,
    values: impl Iterator<Item = &'a Value>,
) -> Box<dyn ToSql + Sync + Send + 'a> {
    match ty {
        ColumnType::Integer => Box::new(
            values
                .map(|v| match v {
                    Value::Integer(v) => Some(*v),
                    _ => None,
                })
                .collect::<Vec<Option<i64>>>(),
        ),
        ColumnType::Real => Box::new(
            values
                .map(|v| match v {
                    Value::Real(v) => Some(*v),
                    _ => None,
                })
                .collect::<Vec<Option<f64>>>(),
        ),
        ColumnType::Text => Box::new(
            values
                .map(|v| match v {
                    Value::Text(v) => Some(v.as_str()),
                    _ => None,
                })
                .collect::<Vec<Option<&str>>>(),
        ),
        ColumnType::Blob => Box::new(
            values
                .map(|v| match v {
                    Value::Blob(v) => Some(v.as_slice()),
                    _ => None,
                })
                .collect::<Vec<Option<&[u8]>>>(),
        ),
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
            .field("hosts", &self.inner.config.get_hosts())
            .finish_non_exhaustive()
    }
}

/// A key of one row, comparable across rows (keys have no floats).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyPart {
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl KeyPart {
    pub(crate) fn of(value: &Value) -> Self {
        match value {
            Value::Integer(v) => KeyPart::Integer(*v),
            Value::Text(v) => KeyPart::Text(v.clone()),
            Value::Blob(v) => KeyPart::Blob(v.clone()),
            Value::Null | Value::Real(_) => {
                unreachable!("rows are checked: keys are never null or real")
            }
        }
    }
}

impl KeyPart {
    fn from_row(
        row: &tokio_postgres::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<Self, SinkError> {
        Ok(match ty {
            ColumnType::Integer => KeyPart::Integer(row.try_get(index)?),
            ColumnType::Text => KeyPart::Text(row.try_get(index)?),
            ColumnType::Blob => KeyPart::Blob(row.try_get(index)?),
            ColumnType::Real => unreachable!("tables have no real keys"),
        })
    }
}
