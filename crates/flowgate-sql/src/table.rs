//! Table descriptions and row values shared by the sinks.

use std::fmt;

use crate::error::{TableError, ValueTypeError};

/// The type of a column, which decides how values are sent to the database.
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
}

impl ColumnType {
    #[cfg(any(feature = "postgres", test))]
    pub(crate) fn postgres_name(self) -> &'static str {
        match self {
            ColumnType::Integer => "BIGINT",
            ColumnType::Real => "DOUBLE PRECISION",
            ColumnType::Text => "TEXT",
            ColumnType::Blob => "BYTEA",
        }
    }

    pub(crate) fn sqlite_name(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Text => "TEXT",
            ColumnType::Blob => "BLOB",
        }
    }
}

/// One value of a row. `Null` fits any column that is not part of the key.
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
}

impl Value {
    /// The column type this value fits, or `None` for `Null`.
    pub fn column_type(&self) -> Option<ColumnType> {
        match self {
            Value::Null => None,
            Value::Integer(_) => Some(ColumnType::Integer),
            Value::Real(_) => Some(ColumnType::Real),
            Value::Text(_) => Some(ColumnType::Text),
            Value::Blob(_) => Some(ColumnType::Blob),
        }
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

/// A column of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The column's type.
    pub ty: ColumnType,
}

/// The table a sink writes to: its name, columns and key.
///
/// The key (one or more columns) is what makes writes idempotent: a row whose
/// key is already stored is skipped (`ON CONFLICT DO NOTHING`). Sinks create
/// the table, with the key as its primary key, if it does not exist.
///
/// Built with [`Table::builder`], which checks every rule:
///
/// - names are SQL identifiers: ASCII letters, digits and `_`, not starting
///   with a digit, at most 63 bytes (so no quoting problems and no injection);
/// - at least one column, no duplicate names;
/// - at least one key column, each declared, none of type [`ColumnType::Real`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    name: String,
    columns: Vec<Column>,
    /// Indexes into `columns`.
    key: Vec<usize>,
}

impl Table {
    /// Starts describing the table `name`.
    pub fn builder(name: impl Into<String>) -> TableBuilder {
        TableBuilder {
            name: name.into(),
            columns: Vec::new(),
            key: Vec::new(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The columns, in the order rows list their values.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The key columns.
    pub fn key(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().map(|&i| &self.columns[i])
    }

    #[cfg(feature = "postgres")]
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

    pub(crate) fn key_list(&self) -> String {
        self.key()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TABLE IF NOT EXISTS` with the given type names.
    pub(crate) fn create_sql(&self, type_name: impl Fn(ColumnType) -> &'static str) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let not_null = if self.key.contains(&i) {
                    " NOT NULL"
                } else {
                    ""
                };
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

    /// Checks that `row` fits the table: one value per column, each of the
    /// column's type or `Null` (but never `Null` in a key column).
    pub(crate) fn check_row(&self, index: usize, row: &[Value]) -> Result<(), TableError> {
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
}

impl TableBuilder {
    /// Adds a column of type `ty`.
    pub fn column(mut self, name: impl Into<String>, ty: ColumnType) -> Self {
        self.columns.push(Column {
            name: name.into(),
            ty,
        });
        self
    }

    /// Adds an [`Integer`](ColumnType::Integer) column.
    pub fn integer(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Integer)
    }

    /// Adds a [`Real`](ColumnType::Real) column.
    pub fn real(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Real)
    }

    /// Adds a [`Text`](ColumnType::Text) column.
    pub fn text(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Text)
    }

    /// Adds a [`Blob`](ColumnType::Blob) column.
    pub fn blob(self, name: impl Into<String>) -> Self {
        self.column(name, ColumnType::Blob)
    }

    /// Makes the declared column `name` part of the key.
    pub fn key(mut self, name: impl Into<String>) -> Self {
        self.key.push(name.into());
        self
    }

    /// Checks every rule and builds the table.
    ///
    /// # Errors
    ///
    /// A [`TableError`] naming the first rule broken.
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
        let mut key = Vec::with_capacity(self.key.len());
        for name in &self.key {
            let Some(index) = self.columns.iter().position(|c| &c.name == name) else {
                return Err(TableError::UnknownKeyColumn(name.clone()));
            };
            if self.columns[index].ty == ColumnType::Real {
                return Err(TableError::RealKey(name.clone()));
            }
            if !key.contains(&index) {
                key.push(index);
            }
        }
        Ok(Table {
            name: self.name,
            columns: self.columns,
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
