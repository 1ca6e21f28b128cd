//! [`Fields`]: the field names and values of one stream entry, without a
//! heap allocation per field.

use std::fmt;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

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
    buf: Bytes,
    spans: Vec<Span>,
}

/// Where one field's name and value are in the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
}

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fields over `buf`, at `spans`. Every name span must hold UTF-8 (the
    /// caller checked it); [`iter`](Self::iter) re-checks rather than trusts.
    pub(crate) fn from_parts(buf: Bytes, spans: Vec<Span>) -> Self {
        debug_assert!(spans.iter().all(|span| {
            span.name.end <= buf.len()
                && span.value.end <= buf.len()
                && std::str::from_utf8(&buf[span.name.clone()]).is_ok()
        }));
        Fields { buf, spans }
    }

    /// The value of field `name` (its last value if the name repeats).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.position(name)
            .map(|span| &self.buf[span.value.clone()])
    }

    /// The value of field `name` as a [`Bytes`] sharing the message's
    /// buffer: no copy, for moving a value on (into a sink, another
    /// message).
    pub fn get_bytes(&self, name: &str) -> Option<Bytes> {
        self.position(name)
            .map(|span| self.buf.slice(span.value.clone()))
    }

    fn position(&self, name: &str) -> Option<&Span> {
        self.spans
            .iter()
            .rev()
            .find(|span| &self.buf[span.name.clone()] == name.as_bytes())
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
            let name = std::str::from_utf8(&self.buf[span.name.clone()]).unwrap_or_default();
            (name, &self.buf[span.value.clone()])
        })
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Fields {
    /// Fields copied into one buffer of their own.
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut buf = BytesMut::new();
        let mut spans = Vec::new();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref().as_bytes(), value.as_ref());
            let at = buf.len();
            buf.extend_from_slice(name);
            buf.extend_from_slice(value);
            spans.push(Span {
                name: at..at + name.len(),
                value: at + name.len()..at + name.len() + value.len(),
            });
        }
        Fields {
            buf: buf.freeze(),
            spans,
        }
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
            vec![
                Span {
                    name: 2..5,
                    value: 5..6,
                },
                Span {
                    name: 6..10,
                    value: 10..12,
                },
            ],
        );
        assert_eq!(fields, Fields::from([("seq", "7"), ("body", "hi")]));
    }
}
