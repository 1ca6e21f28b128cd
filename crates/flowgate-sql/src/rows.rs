//! A batch of rows stored by column ([`RowBatch`]), and the borrowed form of
//! a value ([`ValueRef`]).
//!
//! A `Vec<Vec<Value>>` costs an allocation per row and one per text or
//! bytes value, and every value is copied once into the row and once more
//! by the sink. A [`RowBatch`] keeps one buffer per column instead — the
//! bytes of a text or blob column back to back, the integers of an integer
//! column in one vector — so appending a row allocates nothing once the
//! buffers have grown, and the sinks bind each value from where it lies.
//! Rows are checked against the table as they are appended: a row that
//! does not fit is refused there, with the same [`TableError`] as
//! [`Table::check_row`], and leaves nothing behind.

use std::fmt;

use crate::error::TableError;
use crate::parse::ParseValueError;
use crate::table::{ColumnType, Table, Value};

/// A value borrowed from where it is stored: a [`Value`] without its
/// allocation. [`Value::as_ref`] makes one; [`ValueRef::to_owned`] (or
/// `Value::from`) turns it back.
///
/// # Examples
///
/// ```
/// use flowgate_sql::{ColumnType, Value, ValueRef};
///
/// let value = Value::from("abc");
/// assert_eq!(value.as_ref(), ValueRef::Text("abc"));
/// assert_eq!(ValueRef::Integer(7).to_owned(), Value::Integer(7));
/// // Parsing borrows the bytes instead of copying them.
/// assert_eq!(ValueRef::parse(ColumnType::Blob, b"\x00\x01")?, ValueRef::Blob(b"\x00\x01"));
/// # Ok::<(), flowgate_sql::ParseValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
    /// A boolean.
    Boolean(bool),
    /// The text of a JSON document (see [`Value::Json`]).
    Json(&'a str),
    /// Microseconds since the Unix epoch, UTC (see [`Value::Timestamp`]).
    Timestamp(i64),
}

impl<'a> ValueRef<'a> {
    /// The column type this value fits, or `None` for `Null`
    /// (as [`Value::column_type`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, ValueRef};
    ///
    /// assert_eq!(ValueRef::Blob(b"x").column_type(), Some(ColumnType::Blob));
    /// assert_eq!(ValueRef::Null.column_type(), None);
    /// ```
    pub fn column_type(&self) -> Option<ColumnType> {
        match self {
            ValueRef::Null => None,
            ValueRef::Integer(_) => Some(ColumnType::Integer),
            ValueRef::Real(_) => Some(ColumnType::Real),
            ValueRef::Text(_) => Some(ColumnType::Text),
            ValueRef::Blob(_) => Some(ColumnType::Blob),
            ValueRef::Boolean(_) => Some(ColumnType::Boolean),
            ValueRef::Json(_) => Some(ColumnType::Json),
            ValueRef::Timestamp(_) => Some(ColumnType::Timestamp),
        }
    }

    /// An owned copy.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{Value, ValueRef};
    ///
    /// assert_eq!(ValueRef::Text("a").to_owned(), Value::Text("a".to_owned()));
    /// ```
    #[allow(clippy::wrong_self_convention, clippy::should_implement_trait)]
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Integer(v),
            ValueRef::Real(v) => Value::Real(v),
            ValueRef::Text(v) => Value::Text(v.to_owned()),
            ValueRef::Blob(v) => Value::Blob(v.to_vec()),
            ValueRef::Boolean(v) => Value::Boolean(v),
            ValueRef::Json(v) => Value::Json(v.to_owned()),
            ValueRef::Timestamp(v) => Value::Timestamp(v),
        }
    }

    /// Parses `bytes` as a value of type `ty` by the rules of
    /// [`Value::parse`], borrowing text and bytes from `bytes` instead of
    /// copying them.
    ///
    /// # Errors
    ///
    /// As [`Value::parse`].
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, ValueRef};
    ///
    /// assert_eq!(ValueRef::parse(ColumnType::Integer, b"-42")?, ValueRef::Integer(-42));
    /// assert_eq!(ValueRef::parse(ColumnType::Text, b"hi")?, ValueRef::Text("hi"));
    /// assert!(ValueRef::parse(ColumnType::Boolean, b"yes").is_err());
    /// # Ok::<(), flowgate_sql::ParseValueError>(())
    /// ```
    pub fn parse(ty: ColumnType, bytes: &'a [u8]) -> Result<ValueRef<'a>, ParseValueError> {
        crate::parse::parse_ref(ty, bytes)
    }
}

impl From<ValueRef<'_>> for Value {
    fn from(value: ValueRef<'_>) -> Self {
        value.to_owned()
    }
}

impl Value {
    /// The value, borrowed.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{Value, ValueRef};
    ///
    /// assert_eq!(Value::Blob(vec![1, 2]).as_ref(), ValueRef::Blob(&[1, 2]));
    /// ```
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(v) => ValueRef::Integer(*v),
            Value::Real(v) => ValueRef::Real(*v),
            Value::Text(v) => ValueRef::Text(v),
            Value::Blob(v) => ValueRef::Blob(v),
            Value::Boolean(v) => ValueRef::Boolean(*v),
            Value::Json(v) => ValueRef::Json(v),
            Value::Timestamp(v) => ValueRef::Timestamp(*v),
        }
    }
}

/// One column's cells.
#[derive(Clone)]
enum Cells {
    /// Integers, booleans (0/1), timestamps and floats (their bits); a null
    /// cell holds 0.
    Fixed(Vec<u64>),
    /// Blobs: the bytes back to back, and where each cell ends (a null
    /// cell is empty).
    Bytes { data: Vec<u8>, ends: Vec<usize> },
    /// Text and JSON, the same way (in a `String`: a cell is read back
    /// without validating it again).
    Text { data: String, ends: Vec<usize> },
}

#[derive(Clone)]
struct ColumnCells {
    ty: ColumnType,
    /// Whether the column takes `NULL` (neither key nor `NOT NULL`).
    nullable: bool,
    cells: Cells,
    /// One flag per cell once a null was appended (empty before: no cell
    /// is null).
    nulls: Vec<bool>,
}

impl ColumnCells {
    fn len(&self) -> usize {
        match &self.cells {
            Cells::Fixed(v) => v.len(),
            Cells::Bytes { ends, .. } | Cells::Text { ends, .. } => ends.len(),
        }
    }

    fn truncate(&mut self, len: usize) {
        match &mut self.cells {
            Cells::Fixed(v) => v.truncate(len),
            Cells::Bytes { data, ends } => {
                ends.truncate(len);
                data.truncate(ends.last().copied().unwrap_or(0));
            }
            Cells::Text { data, ends } => {
                ends.truncate(len);
                data.truncate(ends.last().copied().unwrap_or(0));
            }
        }
        self.nulls.truncate(len);
    }

    fn push_null(&mut self) {
        let len = self.len();
        if self.nulls.is_empty() {
            self.nulls.resize(len, false);
        }
        self.nulls.push(true);
        match &mut self.cells {
            Cells::Fixed(v) => v.push(0),
            Cells::Bytes { data, ends } => ends.push(data.len()),
            Cells::Text { data, ends } => ends.push(data.len()),
        }
    }

    fn push_fixed(&mut self, bits: u64) {
        if let Cells::Fixed(v) = &mut self.cells {
            v.push(bits);
        }
        if !self.nulls.is_empty() {
            self.nulls.push(false);
        }
    }

    fn push_str(&mut self, text: &str) {
        if let Cells::Text { data, ends } = &mut self.cells {
            data.push_str(text);
            ends.push(data.len());
        }
        if !self.nulls.is_empty() {
            self.nulls.push(false);
        }
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        if let Cells::Bytes { data, ends } = &mut self.cells {
            data.extend_from_slice(bytes);
            ends.push(data.len());
        }
        if !self.nulls.is_empty() {
            self.nulls.push(false);
        }
    }

    fn get(&self, row: usize) -> ValueRef<'_> {
        if self.nulls.get(row).copied().unwrap_or(false) {
            return ValueRef::Null;
        }
        match &self.cells {
            Cells::Fixed(v) => {
                let bits = v[row];
                match self.ty {
                    ColumnType::Integer => ValueRef::Integer(bits as i64),
                    ColumnType::Real => ValueRef::Real(f64::from_bits(bits)),
                    ColumnType::Boolean => ValueRef::Boolean(bits != 0),
                    ColumnType::Timestamp => ValueRef::Timestamp(bits as i64),
                    ColumnType::Text | ColumnType::Blob | ColumnType::Json => {
                        unreachable!("bytes columns keep bytes cells")
                    }
                }
            }
            Cells::Bytes { data, ends } => {
                let start = if row == 0 { 0 } else { ends[row - 1] };
                ValueRef::Blob(&data[start..ends[row]])
            }
            Cells::Text { data, ends } => {
                let start = if row == 0 { 0 } else { ends[row - 1] };
                let text = &data[start..ends[row]];
                if self.ty == ColumnType::Json {
                    ValueRef::Json(text)
                } else {
                    ValueRef::Text(text)
                }
            }
        }
    }
}

/// Rows of one [`Table`], stored by column: what the sinks'
/// [`write_batch`](crate::SqliteSink::write_batch) takes, for a pipeline
/// that makes rows from raw bytes and wants no allocation per row.
///
/// Rows are appended with [`append`](Self::append) (a slice of
/// [`ValueRef`]s) or value by value with a [`RowWriter`]
/// ([`row`](Self::row)); each is checked against the table as it is
/// appended, by the rules of [`Table::check_row`], and a row that does not
/// fit is refused and leaves nothing behind. The batch then holds only rows
/// that fit, so a sink does not check them again.
///
/// [`clear`](Self::clear) empties it and keeps its buffers for the next
/// batch.
///
/// # Examples
///
/// ```
/// use flowgate_sql::{ColumnType, RowBatch, Table, ValueRef};
///
/// let table = Table::builder("events").text("id").integer("n").blob("body").key("id").build()?;
/// let mut batch = RowBatch::with_capacity(&table, 2);
///
/// // Value by value, from raw bytes (a message's fields, say):
/// let mut row = batch.row();
/// row.push(ValueRef::Text("a"))?;
/// row.push(ValueRef::parse(ColumnType::Integer, b"42")?)?;
/// row.push(ValueRef::Blob(b"{...}"))?;
/// row.finish()?;
///
/// // A row that does not fit is refused, and leaves nothing behind:
/// let err = batch.append(&[ValueRef::Null, ValueRef::Integer(1), ValueRef::Blob(b"")]).unwrap_err();
/// assert_eq!(err.to_string(), r#"row 1: key column "id" is null"#);
///
/// assert_eq!(batch.len(), 1);
/// assert_eq!(batch.value(0, 1), ValueRef::Integer(42));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RowBatch {
    table: Table,
    columns: Vec<ColumnCells>,
    len: usize,
}

impl RowBatch {
    /// An empty batch of `table`'s rows.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// assert!(RowBatch::new(&table).is_empty());
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn new(table: &Table) -> Self {
        RowBatch::with_capacity(table, 0)
    }

    /// An empty batch with room for `rows` rows (and, in each text or blob
    /// column, for 32 bytes per row) before it grows.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// let batch = RowBatch::with_capacity(&table, 1000);
    /// assert_eq!(batch.len(), 0);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn with_capacity(table: &Table, rows: usize) -> Self {
        let key = table.key_indexes();
        let columns = table
            .columns()
            .iter()
            .enumerate()
            .map(|(i, column)| ColumnCells {
                ty: column.ty,
                nullable: !column.not_null && !key.contains(&i),
                cells: match column.ty {
                    ColumnType::Blob => Cells::Bytes {
                        data: Vec::with_capacity(rows.saturating_mul(32)),
                        ends: Vec::with_capacity(rows),
                    },
                    ColumnType::Text | ColumnType::Json => Cells::Text {
                        data: String::with_capacity(rows.saturating_mul(32)),
                        ends: Vec::with_capacity(rows),
                    },
                    _ => Cells::Fixed(Vec::with_capacity(rows)),
                },
                nulls: Vec::new(),
            })
            .collect();
        RowBatch {
            table: table.clone(),
            columns,
            len: 0,
        }
    }

    /// The table the rows are for.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// assert_eq!(RowBatch::new(&table).table().name(), "t");
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The number of rows.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// batch.append(&[ValueRef::Integer(1)])?;
    /// assert_eq!(batch.len(), 1);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no rows.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// assert!(RowBatch::new(&table).is_empty());
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every row, keeping the buffers' room.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// batch.append(&[ValueRef::Integer(1)])?;
    /// batch.clear();
    /// assert!(batch.is_empty());
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn clear(&mut self) {
        for column in &mut self.columns {
            column.truncate(0);
            column.nulls.clear();
        }
        self.len = 0;
    }

    /// Appends one row: a value per column, in the table's order.
    ///
    /// # Errors
    ///
    /// A [`TableError`] (as [`Table::check_row`] gives, for row
    /// [`len`](Self::len)) if the row does not fit; the batch is then as it
    /// was.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").text("note").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// batch.append(&[ValueRef::Integer(1), ValueRef::Null])?;
    /// assert!(batch.append(&[ValueRef::Integer(2)]).is_err(), "a value short");
    /// assert_eq!(batch.len(), 1);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn append(&mut self, values: &[ValueRef<'_>]) -> Result<(), TableError> {
        let mut row = self.row();
        for value in values {
            row.push(*value)?;
        }
        row.finish()
    }

    /// Starts a row, to be given its values one by one with
    /// [`RowWriter::push`] and completed with [`RowWriter::finish`]. A
    /// writer dropped before `finish` leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").integer("n").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// let mut row = batch.row();
    /// row.push(ValueRef::Integer(1))?;
    /// drop(row); // given up: the batch is unchanged
    /// assert!(batch.is_empty());
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn row(&mut self) -> RowWriter<'_> {
        RowWriter {
            batch: self,
            next: 0,
            done: false,
        }
    }

    /// The value in column `column` of row `row`.
    ///
    /// # Panics
    ///
    /// If `row` ≥ [`len`](Self::len) or `column` is not a column of the
    /// table.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").text("note").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// batch.append(&[ValueRef::Integer(1), ValueRef::Text("hi")])?;
    /// batch.append(&[ValueRef::Integer(2), ValueRef::Null])?;
    /// assert_eq!(batch.value(0, 1), ValueRef::Text("hi"));
    /// assert_eq!(batch.value(1, 1), ValueRef::Null);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn value(&self, row: usize, column: usize) -> ValueRef<'_> {
        assert!(
            row < self.len,
            "RowBatch::value: row {row} of a batch of {}",
            self.len
        );
        self.columns[column].get(row)
    }

    /// Row `row`'s values as owned [`Value`]s (for a log or a dead letter).
    ///
    /// # Panics
    ///
    /// If `row` ≥ [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, Value, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// batch.append(&[ValueRef::Integer(1)])?;
    /// assert_eq!(batch.to_values(0), vec![Value::Integer(1)]);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn to_values(&self, row: usize) -> Vec<Value> {
        (0..self.columns.len())
            .map(|column| self.value(row, column).to_owned())
            .collect()
    }
}

impl fmt::Debug for RowBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowBatch")
            .field("table", &self.table.name())
            .field("rows", &self.len)
            .finish_non_exhaustive()
    }
}

/// Appends one row to a [`RowBatch`], value by value; from
/// [`RowBatch::row`]. Dropped before [`finish`](Self::finish), it leaves
/// the batch as it was.
#[must_use = "a row is only added by `finish`"]
pub struct RowWriter<'b> {
    batch: &'b mut RowBatch,
    next: usize,
    done: bool,
}

impl fmt::Debug for RowWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowWriter")
            .field("row", &self.batch.len)
            .field("values", &self.next)
            .finish()
    }
}

impl RowWriter<'_> {
    /// Gives the next column its value.
    ///
    /// # Errors
    ///
    /// A [`TableError`], as [`Table::check_row`] gives: a value of another
    /// type than its column's, `NULL` in a key or `NOT NULL` column, a
    /// timestamp out of range, or a value more than the table has columns.
    /// The writer keeps what it had: drop it to give the row up.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// let mut row = batch.row();
    /// let err = row.push(ValueRef::Text("1")).unwrap_err();
    /// assert_eq!(err.to_string(), r#"row 0: column "id" takes bigint, got text"#);
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn push(&mut self, value: ValueRef<'_>) -> Result<&mut Self, TableError> {
        let row = self.batch.len;
        let table = &self.batch.table;
        let Some(column) = self.batch.columns.get_mut(self.next) else {
            return Err(TableError::RowLength {
                row,
                expected: self.batch.columns.len(),
                actual: self.next + 1,
            });
        };
        let name = || table.columns()[self.next].name.clone();
        match value.column_type() {
            None if table.key_indexes().contains(&self.next) => {
                return Err(TableError::NullKey {
                    row,
                    column: name(),
                });
            }
            None if !column.nullable => {
                return Err(TableError::NullValue {
                    row,
                    column: name(),
                });
            }
            None => column.push_null(),
            Some(ty) if ty != column.ty => {
                return Err(TableError::ValueType {
                    row,
                    column: name(),
                    expected: column.ty,
                    actual: ty,
                });
            }
            Some(_) => match value {
                ValueRef::Integer(v) => column.push_fixed(v as u64),
                ValueRef::Real(v) => column.push_fixed(v.to_bits()),
                ValueRef::Boolean(v) => column.push_fixed(u64::from(v)),
                ValueRef::Timestamp(micros) => {
                    if !(Value::TIMESTAMP_MIN..=Value::TIMESTAMP_MAX).contains(&micros) {
                        return Err(TableError::TimestampOutOfRange {
                            row,
                            column: name(),
                            micros,
                        });
                    }
                    column.push_fixed(micros as u64);
                }
                ValueRef::Text(v) | ValueRef::Json(v) => column.push_str(v),
                ValueRef::Blob(v) => column.push_bytes(v),
                ValueRef::Null => unreachable!("null has no column type"),
            },
        }
        self.next += 1;
        Ok(self)
    }

    /// Completes the row.
    ///
    /// # Errors
    ///
    /// [`TableError::RowLength`] if fewer values than columns were pushed;
    /// the batch is then as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{RowBatch, Table, ValueRef};
    ///
    /// let table = Table::builder("t").integer("id").integer("n").key("id").build()?;
    /// let mut batch = RowBatch::new(&table);
    /// let mut row = batch.row();
    /// row.push(ValueRef::Integer(1))?;
    /// assert!(row.finish().is_err(), "column n has no value");
    /// assert!(batch.is_empty());
    /// # Ok::<(), flowgate_sql::TableError>(())
    /// ```
    pub fn finish(mut self) -> Result<(), TableError> {
        let expected = self.batch.columns.len();
        if self.next != expected {
            return Err(TableError::RowLength {
                row: self.batch.len,
                expected,
                actual: self.next,
            });
        }
        self.batch.len += 1;
        self.done = true;
        Ok(())
    }
}

impl Drop for RowWriter<'_> {
    fn drop(&mut self) {
        if !self.done {
            let len = self.batch.len;
            for column in &mut self.batch.columns[..self.next] {
                column.truncate(len);
            }
        }
    }
}

/// Rows a sink can write: a batch of `Vec<Value>` rows (checked by the
/// sink) or a [`RowBatch`] (checked as it was built).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) trait RowSet: Send + Sync + 'static {
    /// The value of column `column` in row `row`.
    fn value(&self, row: usize, column: usize) -> ValueRef<'_>;
    /// An outcome slot per row (already `Rejected` for a row that does not
    /// fit `table`), and the rows to write.
    fn check(&self, table: &Table) -> (Vec<Option<crate::RowOutcome>>, Vec<usize>);
}

impl RowSet for [Vec<Value>] {
    fn value(&self, row: usize, column: usize) -> ValueRef<'_> {
        self[row][column].as_ref()
    }

    fn check(&self, table: &Table) -> (Vec<Option<crate::RowOutcome>>, Vec<usize>) {
        table.check_rows(self)
    }
}

impl RowSet for RowBatch {
    fn value(&self, row: usize, column: usize) -> ValueRef<'_> {
        self.columns[column].get(row)
    }

    fn check(&self, _: &Table) -> (Vec<Option<crate::RowOutcome>>, Vec<usize>) {
        // Every row was checked as it was appended.
        (
            (0..self.len).map(|_| None).collect(),
            (0..self.len).collect(),
        )
    }
}

/// Whether `batch` was built for a table of `table`'s columns (names,
/// types, nullability) and key: what a sink checks before writing it.
pub(crate) fn fits(batch: &RowBatch, table: &Table) -> bool {
    let (a, b) = (batch.table(), table);
    a.key_indexes() == b.key_indexes()
        && a.columns().len() == b.columns().len()
        && a.columns().iter().zip(b.columns()).all(|(x, y)| {
            x.name.eq_ignore_ascii_case(&y.name) && x.ty == y.ty && x.not_null == y.not_null
        })
}

/// [`fits`], as the error a sink returns.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn check_fits(batch: &RowBatch, table: &Table) -> Result<(), crate::SinkError> {
    if fits(batch, table) {
        Ok(())
    } else {
        Err(crate::SinkError::Table(TableError::OtherTable {
            batch: batch.table().to_string(),
            sink: table.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::builder("t")
            .text("id")
            .integer("n")
            .real("x")
            .blob("b")
            .boolean("f")
            .json("j")
            .timestamp("at")
            .text("note")
            .key("id")
            .not_null("n")
            .build()
            .unwrap()
    }

    fn row(i: i64) -> Vec<Value> {
        vec![
            Value::Text(format!("k{i}")),
            Value::Integer(i),
            if i % 2 == 0 {
                Value::Real(i as f64 / 2.0)
            } else {
                Value::Null
            },
            Value::Blob(vec![i as u8; (i % 5) as usize]),
            if i % 3 == 0 {
                Value::Null
            } else {
                Value::Boolean(i % 2 == 0)
            },
            Value::Json(format!("{{\"i\":{i}}}")),
            Value::Timestamp(i * 1_000_000),
            if i % 4 == 0 {
                Value::Null
            } else {
                Value::Text(String::new())
            },
        ]
    }

    #[test]
    fn every_value_comes_back_as_appended() {
        let table = table();
        let mut batch = RowBatch::with_capacity(&table, 4);
        let rows: Vec<Vec<Value>> = (0..50).map(row).collect();
        for r in &rows {
            let refs: Vec<ValueRef<'_>> = r.iter().map(Value::as_ref).collect();
            batch.append(&refs).unwrap();
        }
        assert_eq!(batch.len(), 50);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&batch.to_values(i), r, "row {i}");
        }
        batch.clear();
        assert!(batch.is_empty());
        batch
            .append(&row(7).iter().map(Value::as_ref).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(batch.to_values(0), row(7));
    }

    #[test]
    fn a_refused_row_leaves_nothing_behind_and_errors_match_check_row() {
        let table = table();
        let mut batch = RowBatch::new(&table);
        batch
            .append(&row(1).iter().map(Value::as_ref).collect::<Vec<_>>())
            .unwrap();
        let bad: Vec<Vec<Value>> = vec![
            {
                let mut r = row(2);
                r[0] = Value::Null; // null key
                r
            },
            {
                let mut r = row(2);
                r[1] = Value::Null; // NOT NULL
                r
            },
            {
                let mut r = row(2);
                r[3] = Value::Text("x".into()); // wrong type, after a bytes column
                r
            },
            {
                let mut r = row(2);
                r[6] = Value::Timestamp(Value::TIMESTAMP_MAX + 1);
                r
            },
            {
                let mut r = row(2);
                r.pop(); // one short
                r
            },
            {
                let mut r = row(2);
                r.push(Value::Null); // one too many
                r
            },
        ];
        for r in &bad {
            let expected = table.check_row(1, r).unwrap_err().to_string();
            let refs: Vec<ValueRef<'_>> = r.iter().map(Value::as_ref).collect();
            let err = batch.append(&refs).unwrap_err();
            assert_eq!(err.to_string(), expected);
            assert_eq!(batch.len(), 1);
            assert_eq!(batch.to_values(0), row(1), "the stored row is intact");
        }
        // And the next good row lands where the refused ones were tried.
        batch
            .append(&row(3).iter().map(Value::as_ref).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(batch.to_values(1), row(3));
    }

    #[test]
    fn the_fit_check_compares_columns_and_key() {
        let table = table();
        let batch = RowBatch::new(&table);
        assert!(fits(&batch, &table));
        let other = Table::builder("t").text("id").key("id").build().unwrap();
        assert!(!fits(&batch, &other));
    }

    #[test]
    #[should_panic(expected = "row 0 of a batch of 0")]
    fn reading_past_the_end_panics_with_the_row() {
        RowBatch::new(&table()).value(0, 0);
    }
}
