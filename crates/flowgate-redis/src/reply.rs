//! Replies of `XPENDING`, `CLIENT LIST` and the source's scripts, parsed
//! from raw [`redis::Value`]s entry by entry, so that one entry that cannot
//! be read does not fail the whole reply. (`XREADGROUP` replies are read
//! without the `redis` crate: [`crate::resp`].)
//!
//! A reply whose *structure* is wrong (not what the command returns) is an
//! error; an *entry* whose content cannot be read (a field name that is not
//! UTF-8, an odd number of field items, a value that is not a string, or no
//! content at all because it was deleted while pending) becomes
//! [`Content::Unreadable`] or [`Content::Deleted`], for the dead-letter stream.

use std::collections::{HashMap, HashSet};

use redis::Value;

use crate::fields::Fields;

/// One stream entry of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) content: Content,
}

/// What an entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// Every field name is UTF-8 and every value a string.
    Fields(Fields),
    /// The entry cannot be handed out: `raw` holds its field items as bytes,
    /// in pairs (an odd last item is paired with an empty value), for the
    /// dead-letter stream.
    Unreadable {
        raw: Vec<(Vec<u8>, Vec<u8>)>,
        reason: String,
    },
    /// The entry was deleted from the stream (`XDEL`, `XTRIM`) while it was
    /// pending: only its id is left.
    Deleted,
}

/// A reply that does not have the structure its command returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

fn malformed<T>(what: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(what.into()))
}

/// The bytes of a string-like value, copied (for the rare paths: an
/// unreadable entry's raw items, a count sent as a string).
fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.clone().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Double(d) => Some(d.to_string().into_bytes()),
        Value::Boolean(b) => Some(if *b { b"1".to_vec() } else { b"0".to_vec() }),
        _ => None,
    }
}

/// The bytes of a string-like value, moved out of it (no copy for strings);
/// the value back if it is not string-like.
fn into_bytes(value: Value) -> Result<Vec<u8>, Value> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::VerbatimString { text, .. } => Ok(text.into_bytes()),
        other => bytes(&other).ok_or(other),
    }
}

/// Whether [`into_bytes`] takes `value`.
fn is_text(value: &Value) -> bool {
    matches!(
        value,
        Value::BulkString(_)
            | Value::SimpleString(_)
            | Value::VerbatimString { .. }
            | Value::Okay
            | Value::Int(_)
            | Value::Double(_)
            | Value::Boolean(_)
    )
}

/// A value that must be a string (an id, a consumer name), moved out.
fn text(value: Value, what: &str) -> Result<String, Malformed> {
    match into_bytes(value) {
        Ok(bytes) => String::from_utf8(bytes).or_else(|err| {
            malformed(format!(
                "{what} is not UTF-8: {:?}",
                String::from_utf8_lossy(err.as_bytes())
            ))
        }),
        Err(value) => malformed(format!("{what} is not a string: {value:?}")),
    }
}

fn int(value: &Value, what: &str) -> Result<u64, Malformed> {
    match value {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        other => match bytes(other)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
        {
            Some(n) => Ok(n),
            None => malformed(format!("{what} is not a count: {value:?}")),
        },
    }
}

/// The elements of an array-like value (RESP3 sets too), moved out.
fn items(value: Value, what: &str) -> Result<Vec<Value>, Malformed> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => malformed(format!("{what} is not an array: {other:?}")),
    }
}

/// `N` elements of an array-like value, moved out.
fn parts<const N: usize>(value: Value, what: &str) -> Result<[Value; N], Malformed> {
    <[Value; N]>::try_from(items(value, what)?)
        .or_else(|parts| malformed(format!("{what} has {} parts, not {N}", parts.len())))
}

/// The field items of an entry, as a flat list (RESP3 may send a map);
/// the value back if it is neither.
fn field_items(value: Value) -> Result<Vec<Value>, Value> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Map(pairs) => Ok(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        other => Err(other),
    }
}

/// The raw items of an unreadable entry, copied in pairs.
fn raw(items: &[Value]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let raw_item =
        |value: &Value| bytes(value).unwrap_or_else(|| format!("{value:?}").into_bytes());
    items
        .chunks(2)
        .map(|pair| {
            (
                raw_item(&pair[0]),
                pair.get(1).map(raw_item).unwrap_or_default(),
            )
        })
        .collect()
}

/// Why the field items of an entry cannot be handed out, if they cannot.
fn unreadable(items: &[Value]) -> Option<String> {
    if !items.len().is_multiple_of(2) {
        return Some(format!(
            "it has an odd number of field items ({}): a field without a value",
            items.len()
        ));
    }
    for (index, pair) in items.chunks(2).enumerate() {
        let name = match &pair[0] {
            Value::BulkString(name) => match std::str::from_utf8(name) {
                Ok(name) => std::borrow::Cow::Borrowed(name),
                Err(_) => {
                    return Some(format!(
                        "the name of field {index} is not UTF-8 ({:?})",
                        String::from_utf8_lossy(name)
                    ));
                }
            },
            other if is_text(other) => {
                // Strings, numbers, OK: always UTF-8.
                String::from_utf8_lossy(&bytes(other).unwrap_or_default())
                    .into_owned()
                    .into()
            }
            _ => return Some(format!("the name of field {index} is not a string")),
        };
        if !is_text(&pair[1]) {
            return Some(format!("the value of field {name:?} is not a string"));
        }
    }
    None
}

/// The content of one entry's field list (`Nil`: deleted); the field names
/// and values are moved out of the reply, not copied.
pub(crate) fn content(fields: Value) -> Content {
    if matches!(fields, Value::Nil) {
        return Content::Deleted;
    }
    let items = match field_items(fields) {
        Ok(items) => items,
        Err(fields) => {
            return Content::Unreadable {
                raw: Vec::new(),
                reason: format!("its field list is not an array: {fields:?}"),
            };
        }
    };
    if let Some(reason) = unreadable(&items) {
        return Content::Unreadable {
            raw: raw(&items),
            reason,
        };
    }
    // Checked above: every item is a string, every name UTF-8. A rare path
    // (claims, takeovers): copied into fields of their own.
    let items: Vec<Vec<u8>> = items
        .into_iter()
        .map(|item| into_bytes(item).unwrap_or_default())
        .collect();
    Content::Fields(
        items
            .chunks(2)
            .map(|pair| (String::from_utf8_lossy(&pair[0]), &pair[1]))
            .collect(),
    )
}

/// An extended `XPENDING` reply: `[[id, consumer, idle ms, deliveries]…]`,
/// as a map from id to deliveries.
pub(crate) fn pending_counts(value: Value) -> Result<HashMap<String, u64>, Malformed> {
    let mut counts = HashMap::new();
    for row in items(value, "the reply")? {
        let [id, _consumer, _idle, deliveries] = parts(row, "a pending entry")?;
        counts.insert(text(id, "a pending id")?, int(&deliveries, "deliveries")?);
    }
    Ok(counts)
}

/// One row of an extended `XPENDING` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) id: String,
    pub(crate) consumer: String,
    pub(crate) idle_ms: u64,
}

/// An extended `XPENDING` reply: `[[id, consumer, idle ms, deliveries]…]`,
/// row by row.
pub(crate) fn pending_rows(value: Value) -> Result<Vec<Pending>, Malformed> {
    items(value, "the reply")?
        .into_iter()
        .map(|row| {
            let [id, consumer, idle, _deliveries] = parts(row, "a pending entry")?;
            Ok(Pending {
                id: text(id, "a pending id")?,
                consumer: text(consumer, "a pending entry's consumer")?,
                idle_ms: int(&idle, "idle time")?,
            })
        })
        .collect()
}

/// The takeover script's reply: `[[claimed id…], [deleted id…]]`.
pub(crate) fn takeover(value: Value) -> Result<(Vec<String>, Vec<String>), Malformed> {
    let [claimed, deleted] = parts(value, "the reply")?;
    Ok((ids(claimed)?, ids(deleted)?))
}

/// The client names in a `CLIENT LIST` reply (one client per line,
/// `key=value` fields separated by spaces; names hold no spaces).
pub(crate) fn client_names(value: Value) -> Result<HashSet<String>, Malformed> {
    let list = text(value, "the client list")?;
    Ok(list
        .lines()
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("name="))
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        })
        .collect())
}

/// The take script's reply: `[[id, deliveries, fields or nil]…]`, nil
/// fields for an entry deleted from the stream.
pub(crate) fn taken(value: Value) -> Result<Vec<(Entry, u64)>, Malformed> {
    items(value, "the reply")?
        .into_iter()
        .map(|row| {
            let [id, deliveries, fields] = parts(row, "a taken entry")?;
            Ok((
                Entry {
                    id: text(id, "a taken id")?,
                    content: content(fields),
                },
                int(&deliveries, "deliveries")?,
            ))
        })
        .collect()
}

/// A list of ids (the renewal script's lost leases).
pub(crate) fn ids(value: Value) -> Result<Vec<String>, Malformed> {
    items(value, "the reply")?
        .into_iter()
        .map(|id| text(id, "an id"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_are_read_from_the_client_list() {
        let list = Value::BulkString(
            b"id=3 addr=127.0.0.1:5 laddr=x fd=8 name=flowgate:61:62:63 age=1 cmd=client|list\n\
              id=4 addr=127.0.0.1:6 laddr=x fd=9 name= age=1 cmd=xreadgroup\n"
                .to_vec(),
        );
        assert_eq!(
            client_names(list).unwrap(),
            HashSet::from(["flowgate:61:62:63".to_owned()])
        );
    }

    #[test]
    fn pending_rows_and_takeover_replies_parse() {
        let row = |id: &str, consumer: &str, idle: i64| {
            Value::Array(vec![
                bulk(id.as_bytes()),
                bulk(consumer.as_bytes()),
                Value::Int(idle),
                Value::Int(1),
            ])
        };
        let rows = pending_rows(Value::Array(vec![row("1-0", "a", 700)])).unwrap();
        assert_eq!(
            rows,
            vec![Pending {
                id: "1-0".into(),
                consumer: "a".into(),
                idle_ms: 700
            }]
        );
        let reply = Value::Array(vec![
            Value::Array(vec![bulk(b"1-0")]),
            Value::Array(vec![bulk(b"2-0")]),
        ]);
        assert_eq!(
            takeover(reply).unwrap(),
            (vec!["1-0".to_owned()], vec!["2-0".to_owned()])
        );
        assert!(takeover(Value::Array(vec![])).is_err());
    }

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn pending_counts_by_id() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"1-0"),
            bulk(b"c1"),
            Value::Int(12),
            Value::Int(3),
        ])]);
        assert_eq!(pending_counts(reply).unwrap()["1-0"], 3);
    }

    #[test]
    fn taken_entries_carry_their_deliveries() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk(b"1-0"),
                Value::Int(2),
                Value::Array(vec![bulk(b"a"), bulk(b"1")]),
            ]),
            Value::Array(vec![bulk(b"2-0"), Value::Int(4), Value::Nil]),
        ]);
        let taken = taken(reply).unwrap();
        assert_eq!(taken[0].1, 2);
        assert!(matches!(taken[0].0.content, Content::Fields(_)));
        assert_eq!(taken[1].0.content, Content::Deleted);
        assert_eq!(taken[1].1, 4);
    }
}
