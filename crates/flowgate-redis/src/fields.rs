//! [`Fields`]: the field names and values of one stream entry, without a
//! heap allocation per field.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use smallvec::SmallVec;

/// The fields of one stream entry: names (UTF-8) and values (any bytes), in
/// the order the entry holds them.
///
/// A message read from Redis keeps its fields where the reply put them: in
/// one buffer shared by the messages of one `XREADGROUP` reply, with the
/// names and values as positions in it — no allocation and no copy per
/// field. The buffer is freed when the last message read with it is
/// dropped; to keep one message long after its neighbours, copy it
/// (`Fields::from_iter(fields.iter())`).
///
/// If a name repeats in the entry, [`get`](Self::get) returns its last
/// value; [`iter`](Self::iter) yields every pair, repeats included.
///
/// ```
/// use flowgate_redis::Fields;
///
/// let fields = Fields::from_iter([("seq", "7"), ("body", "hello")]);
/// assert_eq!(fields.get("seq"), Some(&b"7"[..]));
/// assert_eq!(fields.get("missing"), None);
/// assert_eq!(fields.len(), 2);
/// let names: Vec<&str> = fields.iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["seq", "body"]);
/// ```
#[derive(Clone, Default)]
pub struct Fields {
    buf: Storage,
    spans: SpanList,
}

/// The positions of an entry's fields; up to four inline.
pub(crate) type SpanList = SmallVec<[Span; 4]>;

/// The bytes the spans point into: a share of a reply, or a buffer of the
/// fields' own (made by [`FieldsBuilder`]: no second allocation to share
/// it).
#[derive(Clone)]
enum Storage {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl Default for Storage {
    fn default() -> Self {
        Storage::Owned(Vec::new())
    }
}

impl std::ops::Deref for Storage {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Storage::Shared(bytes) => bytes,
            Storage::Owned(vec) => vec,
        }
    }
}

/// Where one field's name and value are in the buffer (start, end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

impl Span {
    /// A span, if both ranges fit in 32 bits.
    pub(crate) fn new(name: Range<usize>, value: Range<usize>) -> Option<Span> {
        let at = |n: usize| u32::try_from(n).ok();
        Some(Span {
            name: (at(name.start)?, at(name.end)?),
            value: (at(value.start)?, at(value.end)?),
        })
    }

    fn name(&self) -> Range<usize> {
        self.name.0 as usize..self.name.1 as usize
    }

    fn value(&self) -> Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }
}

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fields over `buf`, at `spans`. Every name span must hold UTF-8 (the
    /// caller checked it); [`iter`](Self::iter) re-checks rather than trusts.
    pub(crate) fn from_parts(buf: Bytes, spans: SpanList) -> Self {
        let fields = Fields {
            buf: Storage::Shared(buf),
            spans,
        };
        debug_assert!(fields.spans.iter().all(|span| {
            span.name().end <= fields.buf.len()
                && span.value().end <= fields.buf.len()
                && std::str::from_utf8(&fields.buf[span.name()]).is_ok()
        }));
        fields
    }

    /// The value of field `name` (its last value if the name repeats).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.position(name).map(|span| &self.buf[span.value()])
    }

    /// The value of field `name` as a [`Bytes`]: for fields read from Redis
    /// it shares the reply's buffer (no copy), for fields made with a
    /// [`FieldsBuilder`] it is a copy.
    pub fn get_bytes(&self, name: &str) -> Option<Bytes> {
        let span = self.position(name)?;
        Some(match &self.buf {
            Storage::Shared(bytes) => bytes.slice(span.value()),
            Storage::Owned(vec) => Bytes::copy_from_slice(&vec[span.value()]),
        })
    }

    fn position(&self, name: &str) -> Option<&Span> {
        self.spans
            .iter()
            .rev()
            .find(|span| &self.buf[span.name()] == name.as_bytes())
    }

    /// Whether the entry has a field `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// The number of fields (repeated names counted each time).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Every `(name, value)` pair, in the entry's order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> + '_ {
        self.spans.iter().map(|span| {
            // Names were checked to be UTF-8 when the fields were made.
            let name = std::str::from_utf8(&self.buf[span.name()]).unwrap_or_default();
            (name, &self.buf[span.value()])
        })
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Fields {
    /// Fields copied into one buffer of their own.
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut builder = FieldsBuilder::with_capacity(0, 0);
        for (name, value) in pairs {
            builder.field(name.as_ref(), value.as_ref());
        }
        builder.build()
    }
}

/// Writes [`Fields`] into one buffer: for making messages (a generator, a
/// test) with one allocation, whatever the number of fields (up to four
/// fields' positions are kept inline).
///
/// ```
/// use flowgate_redis::FieldsBuilder;
///
/// let mut fields = FieldsBuilder::with_capacity(64, 2);
/// fields
///     .field("kind", b"order")
///     .field_fmt("seq", format_args!("{}", 42));
/// let fields = fields.build();
/// assert_eq!(fields.get("seq"), Some(&b"42"[..]));
/// assert_eq!(fields.get("kind"), Some(&b"order"[..]));
/// ```
#[derive(Debug, Default)]
pub struct FieldsBuilder {
    buf: Vec<u8>,
    spans: SmallVec<[Span; 4]>,
}

impl FieldsBuilder {
    /// A builder with room for `bytes` bytes of names and values and for
    /// `fields` fields.
    pub fn with_capacity(bytes: usize, fields: usize) -> Self {
        FieldsBuilder {
            buf: Vec::with_capacity(bytes),
            spans: SmallVec::with_capacity(fields),
        }
    }

    /// Appends the field `name` with `value`.
    ///
    /// # Panics
    ///
    /// If the fields grow beyond 4 GiB.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let at = self.buf.len();
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(value);
        self.push(at, name.len());
        self
    }

    /// Appends the field `name` with `value` formatted in place (no
    /// intermediate `String`): `field_fmt("seq", format_args!("{n}"))`.
    ///
    /// # Panics
    ///
    /// If the fields grow beyond 4 GiB.
    pub fn field_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> &mut Self {
        let at = self.buf.len();
        self.buf.extend_from_slice(name.as_bytes());
        // Writing into a `Vec` cannot fail.
        let _ = std::io::Write::write_fmt(&mut self.buf, value);
        self.push(at, name.len());
        self
    }

    /// Appends the field `name` with the value `write` appends to the
    /// buffer it is given (the fields' own buffer: no copy), for values
    /// made piece by piece.
    ///
    /// # Panics
    ///
    /// If the fields grow beyond 4 GiB, or if `write` removes any of the
    /// bytes that were in the buffer before it.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_redis::FieldsBuilder;
    ///
    /// let mut fields = FieldsBuilder::with_capacity(32, 1);
    /// fields.field_with("body", |buf| {
    ///     buf.extend_from_slice(b"{\"n\":");
    ///     buf.extend_from_slice(b"7}");
    /// });
    /// assert_eq!(fields.build().get("body"), Some(&b"{\"n\":7}"[..]));
    /// ```
    pub fn field_with(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        append_field(&mut self.buf, &mut self.spans, name, write);
        self
    }

    fn push(&mut self, at: usize, name_len: usize) {
        push_span(&mut self.spans, &self.buf, at, name_len);
    }

    /// The fields written.
    pub fn build(self) -> Fields {
        Fields {
            buf: Storage::Owned(self.buf),
            spans: self.spans,
        }
    }
}

/// Appends the field `name` to `buf`, its value written by `write`, and
/// its span to `spans`.
fn append_field(
    buf: &mut Vec<u8>,
    spans: &mut SpanList,
    name: &str,
    write: impl FnOnce(&mut Vec<u8>),
) {
    let at = buf.len();
    buf.extend_from_slice(name.as_bytes());
    write(buf);
    assert!(
        buf.len() >= at + name.len(),
        "field_with: the value's writer removed bytes it did not write"
    );
    push_span(spans, buf, at, name.len());
}

/// The span of the field just written at `at` (its name `name_len` bytes,
/// its value up to the end of `buf`).
fn push_span(spans: &mut SpanList, buf: &[u8], at: usize, name_len: usize) {
    let span =
        Span::new(at..at + name_len, at + name_len..buf.len()).expect("fields of at most 4 GiB");
    spans.push(span);
}

/// Writes the [`Fields`] of many messages into one buffer, which they then
/// share: one allocation for a whole batch of messages instead of one per
/// message (a generator making a batch at a time, as a broker client reads
/// one). The buffer is freed when the last of the batch's `Fields` is
/// dropped.
///
/// ```
/// use flowgate_redis::FieldsBatchBuilder;
///
/// let mut batch = FieldsBatchBuilder::with_capacity(256, 2);
/// for seq in [b"1", b"2"] {
///     batch.field("seq", seq).field_with("body", |buf| buf.extend_from_slice(b"{}"));
///     batch.end_entry();
/// }
/// let fields = batch.build();
/// assert_eq!(fields.len(), 2);
/// assert_eq!(fields[1].get("seq"), Some(&b"2"[..]));
/// assert_eq!(fields[1].len(), 2);
/// ```
#[derive(Debug, Default)]
pub struct FieldsBatchBuilder {
    buf: Vec<u8>,
    entries: Vec<SpanList>,
    current: SpanList,
}

impl FieldsBatchBuilder {
    /// A builder with room for `bytes` bytes of names and values in all,
    /// and for `entries` messages.
    pub fn with_capacity(bytes: usize, entries: usize) -> Self {
        FieldsBatchBuilder {
            buf: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(entries),
            current: SpanList::new(),
        }
    }

    /// Appends the field `name` with `value` to the current message.
    ///
    /// # Panics
    ///
    /// If the batch's fields grow beyond 4 GiB.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.field_with(name, |buf| buf.extend_from_slice(value))
    }

    /// Appends the field `name` to the current message, with the value
    /// `write` appends to the buffer (as [`FieldsBuilder::field_with`]).
    ///
    /// # Panics
    ///
    /// If the batch's fields grow beyond 4 GiB, or if `write` removes bytes
    /// it did not write.
    pub fn field_with(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        append_field(&mut self.buf, &mut self.current, name, write);
        self
    }

    /// Ends the current message: the fields appended since the last
    /// `end_entry` are its fields (none: a message without fields).
    pub fn end_entry(&mut self) -> &mut Self {
        self.entries.push(std::mem::take(&mut self.current));
        self
    }

    /// The number of messages ended so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no message was ended yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each ended message's fields, in order, sharing one buffer. Fields
    /// appended after the last [`end_entry`](Self::end_entry) are one more
    /// message.
    pub fn build(mut self) -> Vec<Fields> {
        if !self.current.is_empty() {
            self.end_entry();
        }
        let buf = Bytes::from(self.buf);
        self.entries
            .into_iter()
            .map(|spans| Fields::from_parts(buf.clone(), spans))
            .collect()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>, const K: usize> From<[(N, V); K]> for Fields {
    fn from(pairs: [(N, V); K]) -> Self {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = [u8];

    /// The value of field `name`, as [`get`](Fields::get).
    ///
    /// # Panics
    ///
    /// If there is no field `name`.
    fn index(&self, name: &str) -> &[u8] {
        self.get(name)
            .unwrap_or_else(|| panic!("no field {name:?} in {self:?}"))
    }
}

impl PartialEq for Fields {
    /// The same pairs in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Fields {}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_fields_shares_one_buffer_and_keeps_each_messages_own() {
        let mut batch = FieldsBatchBuilder::with_capacity(0, 0);
        batch.field("a", b"1").field("b", b"").end_entry();
        batch.end_entry(); // a message without fields
        batch.field_with("a", |buf| buf.extend_from_slice(b"3")); // not ended
        assert_eq!(batch.len(), 2);
        let mut fields = batch.build();
        assert_eq!(
            fields.len(),
            3,
            "the fields after the last end_entry are a message"
        );
        let pairs = |f: &Fields| {
            f.iter()
                .map(|(n, v)| (n.to_owned(), v.to_vec()))
                .collect::<Vec<_>>()
        };
        let last = fields.pop().unwrap();
        let first = fields.remove(0);
        drop(fields); // the buffer lives on in the others
        assert_eq!(
            pairs(&first),
            [("a".into(), b"1".to_vec()), ("b".into(), vec![])]
        );
        assert_eq!(pairs(&last), [("a".into(), b"3".to_vec())]);
        assert!(FieldsBatchBuilder::default().build().is_empty());
    }

    #[test]
    fn the_last_of_a_repeated_name_wins_and_iter_keeps_every_pair() {
        let fields = Fields::from_iter([("a", &b"1"[..]), ("b", b"\xff"), ("a", b"3")]);
        assert_eq!(fields.get("a"), Some(&b"3"[..]));
        assert_eq!(fields.get("b"), Some(&b"\xff"[..]), "values are any bytes");
        assert_eq!(fields.get_bytes("a").as_deref(), Some(&b"3"[..]));
        assert_eq!(&fields["b"], b"\xff");
        assert!(fields.contains("b") && !fields.contains("c"));
        let pairs: Vec<(&str, &[u8])> = fields.iter().collect();
        assert_eq!(pairs, [("a", &b"1"[..]), ("b", b"\xff"), ("a", b"3")]);
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn empty_fields_and_empty_names_and_values() {
        assert!(Fields::new().is_empty());
        assert_eq!(Fields::new(), Fields::from_iter(Vec::<(&str, &str)>::new()));
        let fields = Fields::from([("", ""), ("x", "")]);
        assert_eq!(fields.get(""), Some(&b""[..]));
        assert_eq!(fields.get("x"), Some(&b""[..]));
        assert_eq!(format!("{fields:?}"), r#"{"": "", "x": ""}"#);
    }

    #[test]
    fn the_builder_writes_names_and_formatted_values_in_order() {
        let mut builder = FieldsBuilder::with_capacity(4, 1);
        builder
            .field("a", b"1")
            .field_fmt("n", format_args!("{}-{:03}", 7, 5))
            .field_fmt("empty", format_args!(""));
        let fields = builder.build();
        let pairs: Vec<(&str, &[u8])> = fields.iter().collect();
        assert_eq!(pairs, [("a", &b"1"[..]), ("n", b"7-005"), ("empty", b"")]);
    }

    #[test]
    fn equality_is_by_pairs_in_order() {
        let a = Fields::from([("a", "1"), ("b", "2")]);
        assert_eq!(a, Fields::from_iter(a.iter()));
        assert_ne!(a, Fields::from([("b", "2"), ("a", "1")]));
    }

    #[test]
    fn fields_over_a_shared_buffer_read_their_spans() {
        let buf = Bytes::from_static(b"xxseq7bodyhi");
        let fields = Fields::from_parts(
            buf,
            SpanList::from_slice(&[
                Span::new(2..5, 5..6).unwrap(),
                Span::new(6..10, 10..12).unwrap(),
            ]),
        );
        assert_eq!(fields.get_bytes("body").as_deref(), Some(&b"hi"[..]));
        assert_eq!(fields, Fields::from([("seq", "7"), ("body", "hi")]));
    }
}
