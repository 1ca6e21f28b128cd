//! Table descriptions and row values shared by the sinks.

use std::fmt;

use crate::error::{TableError, ValueTypeError};

/// The type of a column, which decides how values are sent to the database
/// and which column types of an existing table fit.
///
/// | type | [`Value`] | PostgreSQL | SQLite (declared type, what is stored) | key? |
/// |---|---|---|---|---|
/// | `Integer` | [`Value::Integer`] | `BIGINT` | `INTEGER` | yes |
/// | `Real` | [`Value::Real`] | `DOUBLE PRECISION` | `REAL` | no: floats make unreliable keys |
/// | `Text` | [`Value::Text`] | `TEXT` (or `VARCHAR`) | `TEXT` | yes |
/// | `Blob` | [`Value::Blob`] | `BYTEA` | `BLOB` | yes |
/// | `Boolean` | [`Value::Boolean`] | `BOOLEAN` | `BOOLEAN`, stored as the integer 0 or 1 | yes |
/// | `Json` | [`Value::Json`] | `JSONB` (or `JSON`) | `TEXT` holding the JSON text | no: JSON has no single spelling to compare |
/// | `Timestamp` | [`Value::Timestamp`] | `TIMESTAMPTZ` | `TEXT` holding RFC 3339 UTC with microseconds, `2026-12-01T22:01:15.123456Z` (sorts as text in time order) | yes |
///
/// Its [`Display`](fmt::Display) is the name used in messages: `bigint`,
/// `double precision`, `text`, `bytea`, `boolean`, `json`, `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// 64-bit signed integer (`BIGINT` / `INTEGER`).
    Integer,
    /// 64-bit float (`DOUBLE PRECISION` / `REAL`). Not allowed in a key.
    Real,
    /// UTF-8 text (`TEXT`).
    Text,
    /// Bytes (`BYTEA` / `BLOB`).
    Blob,
    /// `true` or `false` (`BOOLEAN` / the SQLite integers 1 and 0).
    Boolean,
    /// A JSON document (`JSONB` / SQLite `TEXT`). Not allowed in a key.
    Json,
    /// An instant, to the microsecond (`TIMESTAMPTZ` / SQLite `TEXT` in
    /// RFC 3339 UTC).
    Timestamp,
}

impl ColumnType {
    /// The type `CREATE TABLE` gives the column in PostgreSQL.
    #[cfg(any(feature = "postgres", test))]
    pub(crate) fn postgres_name(self) -> &'static str {
        match self {
            ColumnType::Integer => "BIGINT",
            ColumnType::Real => "DOUBLE PRECISION",
            ColumnType::Text => "TEXT",
            ColumnType::Blob => "BYTEA",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Json => "JSONB",
            ColumnType::Timestamp => "TIMESTAMPTZ",
        }
    }

    /// The type `CREATE TABLE` declares the column with in SQLite. Its type
    /// affinity keeps every value as written (JSON is `TEXT`, not `JSON`,
    /// whose NUMERIC affinity would turn the document `1` into an integer).
    #[cfg(any(feature = "sqlite", test))]
    pub(crate) fn sqlite_name(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Text | ColumnType::Json | ColumnType::Timestamp => "TEXT",
            ColumnType::Blob => "BLOB",
            ColumnType::Boolean => "BOOLEAN",
        }
    }

    /// Whether a column of this type may be part of a key: all but `Real`
    /// and `Json`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::ColumnType;
    ///
    /// assert!(ColumnType::Timestamp.can_be_key());
    /// assert!(!ColumnType::Json.can_be_key());
    /// ```
    pub fn can_be_key(self) -> bool {
        !matches!(self, ColumnType::Real | ColumnType::Json)
    }

    fn name(self) -> &'static str {
        match self {
            ColumnType::Integer => "bigint",
            ColumnType::Real => "double precision",
            ColumnType::Text => "text",
            ColumnType::Blob => "bytea",
            ColumnType::Boolean => "boolean",
            ColumnType::Json => "json",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value of a row. `Null` fits any column that is neither part of the
/// key nor declared [`not_null`](TableBuilder::not_null).
///
/// To turn raw bytes (a broker message's field, say) into a value of a
/// column's type, with a clear error when they do not fit, use
/// [`Value::parse`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// A boolean.
    Boolean(bool),
    /// The text of a JSON document, stored as written (PostgreSQL `JSONB`
    /// normalises it; SQLite and a PostgreSQL `JSON` column keep it).
    ///
    /// The sinks do not validate it again: build it with [`Value::json`] or
    /// [`Value::parse`], which do. (PostgreSQL refuses invalid JSON, as
    /// content; SQLite would store it.)
    Json(String),
    /// An instant as microseconds since the Unix epoch (1970-01-01T00:00:00Z),
    /// UTC. The integer is exact, cheap to compare and hash (so it can be a
    /// key) and maps one to one onto PostgreSQL's `TIMESTAMPTZ` resolution.
    ///
    /// Rows accept instants from `0000-01-01T00:00:00Z` to
    /// `9999-12-31T23:59:59.999999Z` ([`Value::TIMESTAMP_MIN`] ..=
    /// [`Value::TIMESTAMP_MAX`]), the years RFC 3339 can write; others are
    /// refused by the row check.
    Timestamp(i64),
}

impl Value {
    /// The column type this value fits, or `None` for `Null`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Value};
    ///
    /// assert_eq!(Value::from(7i64).column_type(), Some(ColumnType::Integer));
    /// assert_eq!(Value::from("a").column_type(), Some(ColumnType::Text));
    /// assert_eq!(Value::Null.column_type(), None, "Null fits any nullable column");
    /// ```
    pub fn column_type(&self) -> Option<ColumnType> {
        match self {
            Value::Null => None,
            Value::Integer(_) => Some(ColumnType::Integer),
            Value::Real(_) => Some(ColumnType::Real),
            Value::Text(_) => Some(ColumnType::Text),
            Value::Blob(_) => Some(ColumnType::Blob),
            Value::Boolean(_) => Some(ColumnType::Boolean),
            Value::Json(_) => Some(ColumnType::Json),
            Value::Timestamp(_) => Some(ColumnType::Timestamp),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

macro_rules! try_from_value {
    ($ty:ty, $variant:ident, $column:ident) => {
        impl TryFrom<Value> for $ty {
            type Error = ValueTypeError;

            fn try_from(value: Value) -> Result<Self, ValueTypeError> {
                match value {
                    Value::$variant(v) => Ok(v),
                    other => Err(ValueTypeError {
                        expected: ColumnType::$column,
                        actual: other.column_type(),
                    }),
                }
            }
        }
    };
}

try_from_value!(i64, Integer, Integer);
try_from_value!(f64, Real, Real);
try_from_value!(String, Text, Text);
try_from_value!(Vec<u8>, Blob, Blob);
try_from_value!(bool, Boolean, Boolean);

/// A column of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The column's type.
    pub ty: ColumnType,
    /// Whether the column refuses `Null` (`NOT NULL`): key columns always do,
    /// others when declared with [`TableBuilder::not_null`].
    pub not_null: bool,
}

/// The table a sink writes to: its name, columns and key.
///
/// The key (one or more columns) is what makes writes idempotent: a row whose
/// key is already stored is skipped (`ON CONFLICT DO NOTHING`). Sinks create
/// the table, with the key as its primary key, if it does not exist, and check
/// an existing one against this description when they open (see
/// [`SchemaError`](crate::SchemaError)).
///
/// Built with [`Table::builder`], which checks every rule:
///
/// - names are SQL identifiers: ASCII letters, digits and `_`, not starting
///   with a digit, at most 63 bytes (so no quoting problems and no injection);
///   PostgreSQL folds them to lower case, as it does any unquoted name;
/// - at least one column, no duplicate names;
/// - at least one key column, each declared, none of type
///   [`Real`](ColumnType::Real) or [`Json`](ColumnType::Json)
///   ([`ColumnType::can_be_key`]);
/// - [`not_null`](TableBuilder::not_null) names declared columns.
///
/// Key columns are always `NOT NULL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    name: String,
    columns: Vec<Column>,
    /// Indexes into `columns`.
    key: Vec<usize>,
}

impl Table {
    /// Starts describing the table `name`.
    ///
    /// The name is checked by [`build`](TableBuilder::build), with every
    /// other rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{Table, TableError};
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// assert_eq!(table.to_string(), "events (id)");
    /// assert_eq!(
    ///     Table::builder("my events").text("id").key("id").build(),
    ///     Err(TableError::InvalidIdentifier("my events".into()))
    /// );
    /// # Ok::<(), TableError>(())
    /// ```
    pub fn builder(name: impl Into<String>) -> TableBuilder {
        TableBuilder {
            name: name.into(),
            columns: Vec::new(),
            key: Vec::new(),
            not_null: Vec::new(),
        }
    }

    /// The table's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::Table;
    ///
    /// let table = Table::builder("events").text("id").key("id").build()?;
    /// assert_eq!(table.name(), "events");
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The columns, in the order rows list their values.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table};
    ///
    /// let table = Table::builder("events").text("id").blob("body").key("id").build()?;
    /// let names: Vec<&str> = table.columns().iter().map(|c| c.name.as_str()).collect();
    /// assert_eq!(names, ["id", "body"]);
    /// assert_eq!(table.columns()[1].ty, ColumnType::Blob);
    /// assert!(table.columns()[0].not_null && !table.columns()[1].not_null);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The key columns.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::Table;
    ///
    /// let table = Table::builder("events")
    ///     .text("source")
    ///     .integer("seq")
    ///     .blob("body")
    ///     .key("source")
    ///     .key("seq")
    ///     .build()?;
    /// let key: Vec<&str> = table.key().map(|c| c.name.as_str()).collect();
    /// assert_eq!(key, ["source", "seq"]);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn key(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().map(|&i| &self.columns[i])
    }

    pub(crate) fn key_indexes(&self) -> &[usize] {
        &self.key
    }

    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn key_list(&self) -> String {
        self.key()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    /// `CREATE TABLE IF NOT EXISTS` with the given type names.
    pub(crate) fn create_sql(&self, type_name: impl Fn(ColumnType) -> &'static str) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let not_null = if c.not_null { " NOT NULL" } else { "" };
                format!("{} {}{}", c.name, type_name(c.ty), not_null)
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            self.name,
            columns.join(", "),
            self.key_list()
        )
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    /// Encodes every item with `encode` and checks each row against the
    /// columns; the first row that does not fit fails the whole batch.
    pub(crate) fn encode_rows<T>(
        &self,
        items: Vec<T>,
        encode: impl Fn(&T) -> Vec<Value>,
    ) -> Result<Vec<Vec<Value>>, TableError> {
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let row = encode(item);
                self.check_row(index, &row).map(|()| row)
            })
            .collect()
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    /// Checks every row of `rows` (already encoded): an outcome slot per
    /// row — already [`Rejected`](crate::RowOutcome::Rejected) for a row that
    /// does not fit, `None` for the others — and the indexes of the rows that
    /// fit, to be written. Nothing is cloned.
    pub(crate) fn check_rows(
        &self,
        rows: &[Vec<Value>],
    ) -> (Vec<Option<crate::RowOutcome>>, Vec<usize>) {
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut good = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            match self.check_row(index, row) {
                Ok(()) => {
                    good.push(index);
                    outcomes.push(None);
                }
                Err(err) => outcomes.push(Some(crate::RowOutcome::Rejected(
                    crate::SinkError::Table(err),
                ))),
            }
        }
        (outcomes, good)
    }

    /// Checks that `row` fits the table: one value per column, each of the
    /// column's type or `Null` (but never `Null` in a key or `NOT NULL`
    /// column), timestamps within [`Value::TIMESTAMP_MIN`] ..=
    /// [`Value::TIMESTAMP_MAX`]. `index` is the row's position in its batch,
    /// reported in the error.
    ///
    /// The sinks run it on every row before writing; it is public so that a
    /// caller can check a row when it makes it (and dead-letter it then).
    ///
    /// # Errors
    ///
    /// A [`TableError`] naming the row, the column and the problem (one for
    /// which [`TableError::is_row_error`] holds).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{Table, TableError, Value};
    ///
    /// let table = Table::builder("t").text("id").integer("n").not_null("n").key("id").build()?;
    /// assert!(table.check_row(0, &["a".into(), 1i64.into()]).is_ok());
    /// let err = table.check_row(7, &["a".into(), Value::Null]).unwrap_err();
    /// assert_eq!(err.to_string(), r#"row 7: column "n" is NOT NULL, got null"#);
    /// # Ok::<(), TableError>(())
    /// ```
    pub fn check_row(&self, index: usize, row: &[Value]) -> Result<(), TableError> {
        if row.len() != self.columns.len() {
            return Err(TableError::RowLength {
                row: index,
                expected: self.columns.len(),
                actual: row.len(),
            });
        }
        for (i, (value, column)) in row.iter().zip(&self.columns).enumerate() {
            match value.column_type() {
                None if self.key.contains(&i) => {
                    return Err(TableError::NullKey {
                        row: index,
                        column: column.name.clone(),
                    });
                }
                None if column.not_null => {
                    return Err(TableError::NullValue {
                        row: index,
                        column: column.name.clone(),
                    });
                }
                Some(ty) if ty != column.ty => {
                    return Err(TableError::ValueType {
                        row: index,
                        column: column.name.clone(),
                        expected: column.ty,
                        actual: ty,
                    });
                }
                _ => {}
            }
            if let Value::Timestamp(micros) = value
                && !(Value::TIMESTAMP_MIN..=Value::TIMESTAMP_MAX).contains(micros)
            {
                return Err(TableError::TimestampOutOfRange {
                    row: index,
                    column: column.name.clone(),
                    micros: *micros,
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.column_list())
    }
}

/// Describes a [`Table`]; see its rules. Created by [`Table::builder`].
#[derive(Debug, Clone)]
pub struct TableBuilder {
    name: String,
    columns: Vec<Column>,
    key: Vec<String>,
    not_null: Vec<String>,
}

impl TableBuilder {
    /// Adds a column of type `ty` (nullable unless it is part of the key or
    /// declared [`not_null`](Self::not_null)).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table, TableError};
    ///
    /// let table = Table::builder("t").column("id", ColumnType::Text).key("id").build()?;
    /// assert_eq!(table.columns()[0].ty, ColumnType::Text);
    /// // Names are checked by `build`, case-insensitively for duplicates.
    /// assert_eq!(
    ///     Table::builder("t").column("id", ColumnType::Text).column("ID", ColumnType::Integer).key("id").build(),
    ///     Err(TableError::DuplicateColumn("ID".into()))
    /// );
    /// # Ok::<(), TableError>(())
    /// ```
    pub fn column(mut self, name: impl Into<String>, ty: ColumnType) -> Self {
        self.columns.push(Column {
            name: name.into(),
            ty,
            not_null: false,
        });
        self
    }

    /// Adds an [`Integer`](ColumnType::Integer) column.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// assert_eq!(table.columns()[0].ty, ColumnType::Integer);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn integer(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Integer)
    }

    /// Adds a [`Real`](ColumnType::Real) column.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table, TableError};
    ///
    /// let table = Table::builder("t").text("id").real("score").key("id").build()?;
    /// assert_eq!(table.columns()[1].ty, ColumnType::Real);
    /// assert_eq!(
    ///     Table::builder("t").real("score").key("score").build(),
    ///     Err(TableError::RealKey("score".into()))
    /// );
    /// # Ok::<(), TableError>(())
    /// ```
    pub fn real(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Real)
    }

    /// Adds a [`Text`](ColumnType::Text) column.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table};
    ///
    /// let table = Table::builder("t").text("id").key("id").build()?;
    /// assert_eq!(table.columns()[0].ty, ColumnType::Text);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn text(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Text)
    }

    /// Adds a [`Blob`](ColumnType::Blob) column.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table};
    ///
    /// let table = Table::builder("t").blob("digest").key("digest").build()?;
    /// assert_eq!(table.columns()[0].ty, ColumnType::Blob);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn blob(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Blob)
    }

    /// Adds a [`Boolean`](ColumnType::Boolean) column.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table};
    ///
    /// let table = Table::builder("t").text("id").boolean("paid").key("id").build()?;
    /// assert_eq!(table.columns()[1].ty, ColumnType::Boolean);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn boolean(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Boolean)
    }

    /// Adds a [`Json`](ColumnType::Json) column (never a key).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table, TableError};
    ///
    /// let table = Table::builder("t").text("id").json("doc").key("id").build()?;
    /// assert_eq!(table.columns()[1].ty, ColumnType::Json);
    /// assert_eq!(
    ///     Table::builder("t").json("doc").key("doc").build(),
    ///     Err(TableError::KeyType { column: "doc".into(), ty: ColumnType::Json })
    /// );
    /// # Ok::<(), TableError>(())
    /// ```
    pub fn json(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Json)
    }

    /// Adds a [`Timestamp`](ColumnType::Timestamp) column.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Table};
    ///
    /// let table = Table::builder("t").text("id").timestamp("at").key("id").build()?;
    /// assert_eq!(table.columns()[1].ty, ColumnType::Timestamp);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn timestamp(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Timestamp)
    }

    /// Makes the declared column `name` part of the key (and so `NOT NULL`).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{Table, TableError};
    ///
    /// let table = Table::builder("t").text("id").key("id").build()?;
    /// assert!(table.columns()[0].not_null);
    /// assert_eq!(Table::builder("t").text("id").build(), Err(TableError::NoKey));
    /// assert_eq!(
    ///     Table::builder("t").text("id").key("uuid").build(),
    ///     Err(TableError::UnknownKeyColumn("uuid".into()))
    /// );
    /// # Ok::<(), TableError>(())
    /// ```
    pub fn key(mut self, name: impl Into<String>) -> Self {
        self.key.push(name.into());
        self
    }

    /// Declares the column `name` (declared before or after this call)
    /// `NOT NULL`: a row with `Null` there is refused by
    /// [`Table::check_row`] (so by every write), and a created table declares
    /// it `NOT NULL`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::Table;
    ///
    /// let table = Table::builder("t").text("id").text("body").not_null("body").key("id").build()?;
    /// assert!(table.columns().iter().all(|c| c.not_null), "keys are NOT NULL too");
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn not_null(mut self, name: impl Into<String>) -> Self {
        self.not_null.push(name.into());
        self
    }

    /// Checks every rule and builds the table.
    ///
    /// # Errors
    ///
    /// A [`TableError`] naming the first rule broken.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{Table, TableError};
    ///
    /// let table = Table::builder("events").text("id").blob("body").key("id").build()?;
    /// assert_eq!(table.to_string(), "events (id, body)");
    /// assert_eq!(Table::builder("events").build(), Err(TableError::NoColumns));
    /// assert_eq!(
    ///     Table::builder("events").text("id").key("id").not_null("body").build(),
    ///     Err(TableError::UnknownColumn("body".into()))
    /// );
    /// # Ok::<(), TableError>(())
    /// ```
    pub fn build(self) -> Result<Table, TableError> {
        check_identifier(&self.name)?;
        if self.columns.is_empty() {
            return Err(TableError::NoColumns);
        }
        for (i, column) in self.columns.iter().enumerate() {
            check_identifier(&column.name)?;
            if self.columns[..i]
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&column.name))
            {
                return Err(TableError::DuplicateColumn(column.name.clone()));
            }
        }
        if self.key.is_empty() {
            return Err(TableError::NoKey);
        }
        let mut columns = self.columns;
        let mut key = Vec::with_capacity(self.key.len());
        for name in &self.key {
            let Some(index) = columns.iter().position(|c| &c.name == name) else {
                return Err(TableError::UnknownKeyColumn(name.clone()));
            };
            let ty = columns[index].ty;
            if ty == ColumnType::Real {
                return Err(TableError::RealKey(name.clone()));
            }
            if !ty.can_be_key() {
                return Err(TableError::KeyType {
                    column: name.clone(),
                    ty,
                });
            }
            if !key.contains(&index) {
                key.push(index);
            }
            columns[index].not_null = true;
        }
        for name in &self.not_null {
            let Some(column) = columns.iter_mut().find(|c| &c.name == name) else {
                return Err(TableError::UnknownColumn(name.clone()));
            };
            column.not_null = true;
        }
        Ok(Table {
            name: self.name,
            columns,
            key,
        })
    }
}

fn check_identifier(name: &str) -> Result<(), TableError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(TableError::InvalidIdentifier(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks_every_rule() {
        let ok = Table::builder("events").text("id").blob("body").key("id");
        assert!(ok.clone().build().is_ok());
        assert_eq!(
            Table::builder("bad name").text("id").key("id").build(),
            Err(TableError::InvalidIdentifier("bad name".into()))
        );
        assert_eq!(
            Table::builder("t").text("1id").key("1id").build(),
            Err(TableError::InvalidIdentifier("1id".into()))
        );
        assert_eq!(
            Table::builder("t").text("x; DROP TABLE t").build(),
            Err(TableError::InvalidIdentifier("x; DROP TABLE t".into()))
        );
        assert_eq!(Table::builder("t").build(), Err(TableError::NoColumns));
        assert_eq!(
            Table::builder("t").text("id").text("ID").key("id").build(),
            Err(TableError::DuplicateColumn("ID".into()))
        );
        assert_eq!(
            Table::builder("t").text("id").build(),
            Err(TableError::NoKey)
        );
        assert_eq!(
            Table::builder("t").text("id").key("other").build(),
            Err(TableError::UnknownKeyColumn("other".into()))
        );
        assert_eq!(
            Table::builder("t").real("score").key("score").build(),
            Err(TableError::RealKey("score".into()))
        );
    }

    #[test]
    fn rows_are_checked_against_the_columns() {
        let table = Table::builder("t")
            .text("id")
            .integer("n")
            .key("id")
            .build()
            .unwrap();
        assert!(table.check_row(0, &["a".into(), 1i64.into()]).is_ok());
        assert!(table.check_row(0, &["a".into(), Value::Null]).is_ok());
        assert_eq!(
            table.check_row(3, &["a".into()]),
            Err(TableError::RowLength {
                row: 3,
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            table.check_row(0, &[Value::Null, 1i64.into()]),
            Err(TableError::NullKey {
                row: 0,
                column: "id".into()
            })
        );
        assert_eq!(
            table.check_row(0, &["a".into(), "b".into()]),
            Err(TableError::ValueType {
                row: 0,
                column: "n".into(),
                expected: ColumnType::Integer,
                actual: ColumnType::Text
            })
        );
        assert_eq!(
            table.create_sql(ColumnType::postgres_name),
            "CREATE TABLE IF NOT EXISTS t (id TEXT NOT NULL, n BIGINT, PRIMARY KEY (id))"
        );
    }
}
