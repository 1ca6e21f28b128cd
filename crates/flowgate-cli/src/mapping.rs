//! How `flowgate ingest` turns a message's fields into a row of the user's
//! table: a [`Mapping`], from `--column`/`--key` flags, a TOML file
//! (`--schema`), or the demo default.
//!
//! ```text
//!  stream entry  1718000000000-0  { order_id: "42", amount: "9.5", paid: "true" }
//!       │  --column id:text=@id --column order_id:bigint --column amount:double?
//!       ▼  --column paid:boolean --key order_id
//!  row   ("1718000000000-0", 42, 9.5, true)
//! ```
//!
//! A column takes its value from a field of the entry (by default the field
//! of the column's name) or from the entry id (`@id`). Values are parsed by
//! the column's type ([`Value::parse`]); a message whose fields do not fit —
//! a missing field of a column that is not nullable, a value that does not
//! parse — is a [`Misfit`]: `ingest` dead-letters it with the reason instead
//! of storing a guess.
//!
//! | type | PostgreSQL | SQLite | accepted field values |
//! |---|---|---|---|
//! | `text` | `TEXT` | `TEXT` | UTF-8 (no NUL byte) |
//! | `bigint` | `BIGINT` | `INTEGER` | a decimal 64-bit integer |
//! | `double` | `DOUBLE PRECISION` | `REAL` | a finite decimal number |
//! | `boolean` | `BOOLEAN` | `INTEGER` 0/1 | `true`/`false`/`t`/`f`/`1`/`0` |
//! | `bytea` | `BYTEA` | `BLOB` | any bytes |
//! | `jsonb` | `JSONB` | `TEXT` | a JSON document |
//! | `timestamptz` | `TIMESTAMPTZ` | `TEXT` (RFC 3339, UTC) | an RFC 3339 timestamp |
//!
//! The TOML form of `--schema FILE`:
//!
//! ```toml
//! table = "orders"          # optional: --table otherwise
//!
//! [[column]]
//! name = "id"
//! type = "text"
//! from = "@id"              # the entry id; default: the field named as the column
//!
//! [[column]]
//! name = "order_id"
//! type = "bigint"
//! key = true                # the columns rows are deduplicated by
//!
//! [[column]]
//! name = "note"
//! type = "text"
//! nullable = true           # a missing field stores NULL
//! ```

use std::fmt;
use std::path::Path;

use flowgate_redis::Fields;
use flowgate_sql::{ColumnType, RowBatch, Table, Value, ValueRef};
use serde::Deserialize;

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The stream entry's id (`@id`).
    EntryId,
    /// A field of the entry.
    Field(String),
    /// The FNV-1a 64-bit hash of a field's bytes, as a signed integer (the
    /// demo mapping's `checksum`).
    Fnv1a(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::EntryId => f.write_str("@id"),
            Source::Field(name) => write!(f, "field {name:?}"),
            Source::Fnv1a(name) => write!(f, "FNV-1a of field {name:?}"),
        }
    }
}

/// One column of a [`Mapping`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    /// The column's name in the table.
    pub name: String,
    /// The column's type.
    pub ty: ColumnType,
    /// Where its value comes from.
    pub source: Source,
    /// Whether a missing field stores `NULL` (otherwise the message is a
    /// misfit).
    pub nullable: bool,
}

/// How messages become rows of a table; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Mapping {
    table: Table,
    columns: Vec<ColumnMap>,
}

/// A message that does not fit the mapping: why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit(pub String);

impl fmt::Display for Misfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Misfit {}

/// A mapping that cannot work, found before anything runs. The message names
/// the flag or file concerned.
#[derive(Debug)]
pub struct MappingError {
    /// What is wrong, naming the flag, file or column.
    pub message: String,
    /// The underlying error (a TOML or table error), if any.
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl MappingError {
    fn new(message: impl Into<String>) -> Self {
        MappingError {
            message: message.into(),
            source: None,
        }
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MappingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The type names of `--column` and `--schema`, and their column types.
pub const TYPES: [(&str, ColumnType); 7] = [
    ("text", ColumnType::Text),
    ("bigint", ColumnType::Integer),
    ("double", ColumnType::Real),
    ("boolean", ColumnType::Boolean),
    ("bytea", ColumnType::Blob),
    ("jsonb", ColumnType::Json),
    ("timestamptz", ColumnType::Timestamp),
];

fn parse_type(name: &str) -> Option<ColumnType> {
    TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, ty)| *ty)
}

fn type_name(ty: ColumnType) -> &'static str {
    TYPES
        .iter()
        .find(|(_, t)| *t == ty)
        .map_or("?", |(name, _)| name)
}

fn type_list() -> String {
    TYPES.map(|(name, _)| name).join(", ")
}

fn parse_source(from: &str) -> Source {
    if from == "@id" {
        Source::EntryId
    } else {
        Source::Field(from.to_owned())
    }
}

/// Parses one `--column` value, `NAME:TYPE[?][=SOURCE]`.
///
/// # Errors
///
/// A message saying what is wrong with `spec`.
pub fn parse_column_spec(spec: &str) -> Result<ColumnMap, String> {
    let (head, from) = match spec.split_once('=') {
        Some((head, from)) => (head, Some(from)),
        None => (spec, None),
    };
    let Some((name, ty)) = head.split_once(':') else {
        return Err(format!(
            "expected NAME:TYPE[?][=SOURCE], e.g. amount:double?=amount_eur; TYPE is one of {}",
            type_list()
        ));
    };
    let (ty, nullable) = match ty.strip_suffix('?') {
        Some(ty) => (ty, true),
        None => (ty, false),
    };
    let ty = parse_type(ty)
        .ok_or_else(|| format!("unknown type {ty:?}: expected one of {}", type_list()))?;
    if name.is_empty() {
        return Err("the column name is empty".to_owned());
    }
    if from == Some("") {
        return Err("the source after '=' is empty (a field name, or @id)".to_owned());
    }
    Ok(ColumnMap {
        name: name.to_owned(),
        ty,
        source: parse_source(from.unwrap_or(name)),
        nullable,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    table: Option<String>,
    #[serde(default)]
    column: Vec<SchemaColumn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    from: Option<String>,
    #[serde(default)]
    key: bool,
    #[serde(default)]
    nullable: bool,
}

impl Mapping {
    /// The demo mapping: `id` (key) from the entry id, `seq` and `body` from
    /// the fields of those names, and `checksum`, the FNV-1a hash of `body`.
    ///
    /// # Errors
    ///
    /// If `table` is not a plain SQL identifier.
    pub fn demo(table: &str) -> Result<Mapping, MappingError> {
        let column = |name: &str, ty, source| ColumnMap {
            name: name.to_owned(),
            ty,
            source,
            nullable: false,
        };
        Mapping::new(
            table,
            vec![
                column("id", ColumnType::Text, Source::EntryId),
                column("seq", ColumnType::Integer, Source::Field("seq".into())),
                column("body", ColumnType::Blob, Source::Field("body".into())),
                column(
                    "checksum",
                    ColumnType::Integer,
                    Source::Fnv1a("body".into()),
                ),
            ],
            &["id".to_owned()],
        )
    }

    /// A mapping from `--column` specs and `--key` names. Without keys, the
    /// column whose source is `@id` is the key.
    ///
    /// # Errors
    ///
    /// A [`MappingError`] naming the flag and what is wrong.
    pub fn from_flags(
        table: &str,
        columns: &[String],
        keys: &[String],
    ) -> Result<Mapping, MappingError> {
        let columns = columns
            .iter()
            .map(|spec| {
                parse_column_spec(spec)
                    .map_err(|e| MappingError::new(format!("--column {spec:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Mapping::new(table, columns, keys).map_err(|e| MappingError {
            message: format!("--column/--key: {}", e.message),
            source: e.source,
        })
    }

    /// A mapping from a TOML file; its `table`, if any, must not contradict
    /// `table_flag`.
    ///
    /// # Errors
    ///
    /// A [`MappingError`] naming the file: unreadable, not TOML, unknown
    /// keys or types, or a mapping that cannot work.
    pub fn from_file(path: &Path, table_flag: Option<&str>) -> Result<Mapping, MappingError> {
        let at = |message: String| format!("--schema {}: {message}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| MappingError {
            message: at("cannot read the file".to_owned()),
            source: Some(Box::new(e)),
        })?;
        Mapping::from_toml(&text, table_flag).map_err(|e| MappingError {
            message: at(e.message),
            source: e.source,
        })
    }

    /// A mapping from the text of a TOML schema; see [`from_file`](Self::from_file).
    ///
    /// # Errors
    ///
    /// As [`from_file`](Self::from_file), without the file name.
    pub fn from_toml(text: &str, table_flag: Option<&str>) -> Result<Mapping, MappingError> {
        let file: SchemaFile = toml::from_str(text).map_err(|e| MappingError {
            message: "not a valid schema".to_owned(),
            source: Some(Box::new(e)),
        })?;
        let table = match (file.table.as_deref(), table_flag) {
            (Some(a), Some(b)) if a != b => {
                return Err(MappingError::new(format!(
                    "the file names table {a:?} but --table says {b:?}"
                )));
            }
            (Some(name), _) | (None, Some(name)) => name.to_owned(),
            (None, None) => {
                return Err(MappingError::new(
                    "no table: set `table = \"...\"` in the file or --table",
                ));
            }
        };
        let mut keys = Vec::new();
        let mut columns = Vec::new();
        for (i, column) in file.column.into_iter().enumerate() {
            let ty = parse_type(&column.ty).ok_or_else(|| {
                MappingError::new(format!(
                    "column {} ({:?}): unknown type {:?}: expected one of {}",
                    i + 1,
                    column.name,
                    column.ty,
                    type_list()
                ))
            })?;
            if column.key {
                keys.push(column.name.clone());
            }
            columns.push(ColumnMap {
                source: parse_source(column.from.as_deref().unwrap_or(&column.name)),
                name: column.name,
                ty,
                nullable: column.nullable,
            });
        }
        Mapping::new(&table, columns, &keys)
    }

    /// Checks the columns and keys and builds the table description.
    fn new(table: &str, columns: Vec<ColumnMap>, keys: &[String]) -> Result<Mapping, MappingError> {
        if columns.is_empty() {
            return Err(MappingError::new("no columns"));
        }
        let keys: Vec<String> = if keys.is_empty() {
            let from_id: Vec<String> = columns
                .iter()
                .filter(|c| c.source == Source::EntryId)
                .map(|c| c.name.clone())
                .collect();
            if from_id.len() != 1 {
                return Err(MappingError::new(
                    "no key: name the column(s) rows are deduplicated by (--key NAME, or key = true), \
                     or map exactly one column from @id",
                ));
            }
            from_id
        } else {
            keys.to_vec()
        };
        for key in &keys {
            match columns.iter().find(|c| &c.name == key) {
                None => {
                    return Err(MappingError::new(format!(
                        "key {key:?} is not one of the columns"
                    )));
                }
                Some(c) if c.nullable => {
                    return Err(MappingError::new(format!(
                        "key column {key:?} cannot be nullable"
                    )));
                }
                Some(_) => {}
            }
        }
        let mut builder = Table::builder(table);
        for column in &columns {
            builder = builder.column(column.name.clone(), column.ty);
            if !column.nullable {
                builder = builder.not_null(column.name.clone());
            }
        }
        for key in &keys {
            builder = builder.key(key.clone());
        }
        let table = builder.build().map_err(|e| MappingError {
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        Ok(Mapping { table, columns })
    }

    /// The table rows go to.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The columns, in the table's order.
    pub fn columns(&self) -> &[ColumnMap] {
        &self.columns
    }

    /// The row for the entry `id` with `fields`, in the table's column order.
    ///
    /// # Errors
    ///
    /// A [`Misfit`] naming the column, its source and what is wrong.
    pub fn row(&self, id: &str, fields: &Fields) -> Result<Vec<Value>, Misfit> {
        self.columns
            .iter()
            .map(|column| column.value(id, fields).map(ValueRef::to_owned))
            .collect()
    }

    /// Appends the row for the entry `id` with `fields` to `batch` (a batch
    /// of this mapping's [`table`](Self::table)), each value taken from
    /// where it lies in `fields` and copied once, into the batch's column.
    /// A message that does not fit leaves the batch as it was.
    ///
    /// # Errors
    ///
    /// A [`Misfit`] naming the column, its source and what is wrong.
    pub fn append(&self, batch: &mut RowBatch, id: &str, fields: &Fields) -> Result<(), Misfit> {
        let mut row = batch.row();
        for column in &self.columns {
            row.push(column.value(id, fields)?)
                .map_err(|e| Misfit(format!("column {:?}: {e}", column.name)))?;
        }
        row.finish().map_err(|e| Misfit(e.to_string()))
    }
}

impl ColumnMap {
    /// This column's value for the entry `id` with `fields`, borrowed from
    /// them.
    fn value<'a>(&self, id: &'a str, fields: &'a Fields) -> Result<ValueRef<'a>, Misfit> {
        let raw: Option<&[u8]> = match &self.source {
            Source::EntryId => Some(id.as_bytes()),
            Source::Field(name) => fields.get(name),
            Source::Fnv1a(name) => {
                return match fields.get(name) {
                    Some(bytes) => Ok(ValueRef::Integer(fnv1a(bytes))),
                    None if self.nullable => Ok(ValueRef::Null),
                    None => Err(Misfit(format!(
                        "column {:?}: field {name:?} is missing",
                        self.name
                    ))),
                };
            }
        };
        match raw {
            Some(bytes) => ValueRef::parse(self.ty, bytes).map_err(|e| {
                Misfit(format!(
                    "column {:?} ({}, from {}): {e}",
                    self.name,
                    type_name(self.ty),
                    self.source
                ))
            }),
            None if self.nullable => Ok(ValueRef::Null),
            None => Err(Misfit(format!(
                "column {:?} ({}): {} is missing",
                self.name,
                type_name(self.ty),
                self.source
            ))),
        }
    }
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.table.name())?;
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{} {}{} <- {}",
                c.name,
                type_name(c.ty),
                if c.nullable { "?" } else { "" },
                c.source
            )?;
        }
        f.write_str(")")
    }
}

/// FNV-1a, 64 bits, as a signed integer.
pub fn fnv1a(bytes: &[u8]) -> i64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    }) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &[u8])]) -> Fields {
        pairs.iter().copied().collect()
    }

    #[test]
    fn column_specs_parse_or_say_why() {
        assert_eq!(
            parse_column_spec("amount:double?=amount_eur").unwrap(),
            ColumnMap {
                name: "amount".into(),
                ty: ColumnType::Real,
                source: Source::Field("amount_eur".into()),
                nullable: true
            }
        );
        assert_eq!(
            parse_column_spec("id:text=@id").unwrap().source,
            Source::EntryId
        );
        assert_eq!(
            parse_column_spec("n:BIGINT").unwrap().source,
            Source::Field("n".into())
        );
        assert!(parse_column_spec("n").unwrap_err().contains("NAME:TYPE"));
        assert!(
            parse_column_spec("n:int")
                .unwrap_err()
                .contains("unknown type \"int\"")
        );
        assert!(parse_column_spec(":text").unwrap_err().contains("empty"));
        assert!(parse_column_spec("a:text=").unwrap_err().contains("empty"));
    }

    #[test]
    fn the_demo_mapping_fits_the_generated_messages_and_names_misfits() {
        let mapping = Mapping::demo("events").unwrap();
        let row = mapping
            .row("1-0", &fields(&[("seq", b"7"), ("body", b"hello")]))
            .unwrap();
        assert_eq!(
            row,
            vec![
                Value::from("1-0"),
                Value::Integer(7),
                Value::from(&b"hello"[..]),
                Value::Integer(fnv1a(b"hello"))
            ]
        );
        let missing = mapping.row("1-0", &fields(&[("seq", b"7")])).unwrap_err();
        assert!(
            missing.0.contains("\"body\"") && missing.0.contains("missing"),
            "{missing}"
        );
        let bad = mapping
            .row("1-0", &fields(&[("seq", b"x7"), ("body", b"b")]))
            .unwrap_err();
        assert!(
            bad.0.contains("\"seq\"") && bad.0.contains("bigint"),
            "{bad}"
        );
    }

    #[test]
    fn append_adds_the_row_that_row_makes_and_nothing_for_a_misfit() {
        let mapping = Mapping::demo("events").unwrap();
        let mut batch = RowBatch::new(mapping.table());
        let good = fields(&[("seq", b"7"), ("body", b"hello")]);
        mapping.append(&mut batch, "1-0", &good).unwrap();
        let misfit = mapping
            .append(&mut batch, "2-0", &fields(&[("seq", b"x"), ("body", b"b")]))
            .unwrap_err();
        assert_eq!(
            Some(misfit),
            mapping
                .row("2-0", &fields(&[("seq", b"x"), ("body", b"b")]))
                .err()
        );
        mapping.append(&mut batch, "3-0", &good).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.to_values(0), mapping.row("1-0", &good).unwrap());
        assert_eq!(batch.to_values(1), mapping.row("3-0", &good).unwrap());
    }

    #[test]
    fn keys_default_to_the_entry_id_column_and_are_checked() {
        let m = Mapping::from_flags("t", &["id:text=@id".into(), "n:bigint".into()], &[]).unwrap();
        assert_eq!(
            m.table().key().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["id"]
        );
        let err = Mapping::from_flags("t", &["n:bigint".into()], &[]).unwrap_err();
        assert!(err.message.contains("no key"), "{err}");
        let err = Mapping::from_flags("t", &["n:bigint".into()], &["m".into()]).unwrap_err();
        assert!(err.message.contains("\"m\""), "{err}");
        let err = Mapping::from_flags("t", &["n:bigint?".into()], &["n".into()]).unwrap_err();
        assert!(err.message.contains("nullable"), "{err}");
        let err = Mapping::from_flags("bad name", &["id:text=@id".into()], &[]).unwrap_err();
        assert!(err.message.contains("bad name"), "{err}");
    }

    #[test]
    fn toml_schemas_parse_and_refuse_what_they_do_not_know() {
        let m = Mapping::from_toml(
            r#"
            table = "orders"
            [[column]]
            name = "id"
            type = "text"
            from = "@id"
            [[column]]
            name = "order_id"
            type = "bigint"
            key = true
            [[column]]
            name = "note"
            type = "text"
            nullable = true
            "#,
            None,
        )
        .unwrap();
        assert_eq!(m.table().name(), "orders");
        assert_eq!(
            m.table().key().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["order_id"]
        );
        let row = m.row("5-0", &fields(&[("order_id", b"42")])).unwrap();
        assert_eq!(
            row,
            vec![Value::from("5-0"), Value::Integer(42), Value::Null]
        );

        let err = Mapping::from_toml(
            "table = \"t\"\n[[column]]\nname = \"a\"\ntype = \"text\"\nkye = true\n",
            None,
        )
        .unwrap_err();
        assert!(err.source.unwrap().to_string().contains("kye"));
        let err =
            Mapping::from_toml("[[column]]\nname = \"a\"\ntype = \"text\"\n", None).unwrap_err();
        assert!(err.message.contains("no table"), "{err}");
        let err = Mapping::from_toml("table = \"a\"\n", Some("b")).unwrap_err();
        assert!(err.message.contains("--table"), "{err}");
    }
}
