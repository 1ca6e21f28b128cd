//! Turning raw bytes (a broker message's field) into a [`Value`] of a
//! column's type: [`Value::parse`] and [`ParseValueError`].

use std::error::Error;
use std::fmt;

use chrono::{DateTime, SecondsFormat};

use crate::rows::ValueRef;
use crate::table::{ColumnType, Value};

/// How many bytes of a refused input a [`ParseValueError`] shows.
const SHOWN: usize = 64;

impl Value {
    /// The earliest [`Value::Timestamp`] a row accepts:
    /// `0000-01-01T00:00:00Z`, in microseconds since the Unix epoch.
    pub const TIMESTAMP_MIN: i64 = -62_167_219_200_000_000;

    /// The latest [`Value::Timestamp`] a row accepts:
    /// `9999-12-31T23:59:59.999999Z`, in microseconds since the Unix epoch.
    pub const TIMESTAMP_MAX: i64 = 253_402_300_799_999_999;

    /// Parses `bytes` as a value of type `ty`, the way a field of a message
    /// is turned into a column's value. The rules, per type:
    ///
    /// | type | accepted | refused (examples) |
    /// |---|---|---|
    /// | `Integer` | a decimal `i64`: optional `+`/`-`, digits (`-42`) | `abc`, `1.5`, ` 7` (no spaces are trimmed), `9223372036854775808` (out of range) |
    /// | `Real` | a finite decimal `f64`, with optional exponent (`3.25`, `-1e-3`, `.5`) | `NaN`, `inf`, `1e999` (overflows), `0x10` |
    /// | `Text` | UTF-8 without NUL bytes | invalid UTF-8; a NUL byte (PostgreSQL cannot store it in text) |
    /// | `Blob` | any bytes | — |
    /// | `Boolean` | `true`/`false`, `t`/`f`, `1`/`0`, in any case | `yes`, `2`, `` (empty) |
    /// | `Json` | one valid JSON document (RFC 8259, any top-level value), kept as written | invalid JSON; the escape `\u0000` (PostgreSQL `JSONB` cannot store it) |
    /// | `Timestamp` | RFC 3339 with an offset: `2026-12-01T22:01:15.123456Z`, `2026-12-01 23:01:15+01:00`; digits below the microsecond are truncated | no offset (`2026-12-01T22:01:15`: which zone?), a bare number |
    ///
    /// A bare number is not accepted as a timestamp: seconds, milliseconds
    /// and microseconds since the epoch all look alike. Map such a field to
    /// an `Integer` column, or convert it yourself
    /// (`Value::Timestamp(millis * 1000)`).
    ///
    /// The result passes [`Table::check_row`](crate::Table::check_row) for a
    /// column of type `ty` (an empty field is *not* `Null`: it is refused by
    /// every type but `Text` and `Blob`; decide what a missing field means
    /// before calling this).
    ///
    /// # Errors
    ///
    /// A [`ParseValueError`] naming the type, the problem and (the first 64
    /// bytes of) the input: `not a valid bigint: "abc"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Value};
    ///
    /// assert_eq!(Value::parse(ColumnType::Integer, b"-42")?, Value::Integer(-42));
    /// assert_eq!(Value::parse(ColumnType::Boolean, b"TRUE")?, Value::Boolean(true));
    /// assert_eq!(
    ///     Value::parse(ColumnType::Timestamp, b"1970-01-01T00:00:01.5+00:00")?,
    ///     Value::Timestamp(1_500_000)
    /// );
    /// assert_eq!(
    ///     Value::parse(ColumnType::Json, br#"{"a": [1, 2]}"#)?,
    ///     Value::Json(r#"{"a": [1, 2]}"#.into())
    /// );
    ///
    /// let err = Value::parse(ColumnType::Integer, b"abc").unwrap_err();
    /// assert_eq!(err.to_string(), r#"not a valid bigint: "abc""#);
    /// assert_eq!(err.column_type(), ColumnType::Integer);
    /// # Ok::<(), flowgate_sql::ParseValueError>(())
    /// ```
    pub fn parse(ty: ColumnType, bytes: &[u8]) -> Result<Value, ParseValueError> {
        parse_ref(ty, bytes).map(ValueRef::to_owned)
    }

    /// Validates `text` as one JSON document (the rules of
    /// [`Value::parse`] for [`ColumnType::Json`]) and makes it a
    /// [`Value::Json`], kept as written.
    ///
    /// # Errors
    ///
    /// A [`ParseValueError`] saying what is wrong and where.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::Value;
    ///
    /// assert_eq!(Value::json("[1, 2]")?, Value::Json("[1, 2]".into()));
    /// let err = Value::json("{\"a\":").unwrap_err();
    /// assert!(err.to_string().starts_with("not a valid json: \"{\\\"a\\\":\" (EOF while parsing"), "{err}");
    /// # Ok::<(), flowgate_sql::ParseValueError>(())
    /// ```
    pub fn json(text: impl Into<String>) -> Result<Value, ParseValueError> {
        let text = text.into();
        match check_json(&text) {
            Ok(()) => Ok(Value::Json(text)),
            Err(reason) => Err(ParseValueError::new(
                ColumnType::Json,
                text.as_bytes(),
                Some(reason),
            )),
        }
    }

    /// Formats a [`Value::Timestamp`]'s microseconds as RFC 3339 UTC with
    /// six fraction digits, as the SQLite sink stores it:
    /// `2026-12-01T22:01:15.123456Z`. `None` outside
    /// [`TIMESTAMP_MIN`](Self::TIMESTAMP_MIN) ..=
    /// [`TIMESTAMP_MAX`](Self::TIMESTAMP_MAX).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::Value;
    ///
    /// assert_eq!(
    ///     Value::format_timestamp(1_796_162_475_123_456).as_deref(),
    ///     Some("2026-12-01T22:01:15.123456Z")
    /// );
    /// assert_eq!(Value::format_timestamp(Value::TIMESTAMP_MAX + 1), None);
    /// ```
    pub fn format_timestamp(micros: i64) -> Option<String> {
        if !(Self::TIMESTAMP_MIN..=Self::TIMESTAMP_MAX).contains(&micros) {
            return None;
        }
        DateTime::from_timestamp_micros(micros)
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

/// [`Value::parse`], borrowing: the rules live here once.
pub(crate) fn parse_ref(ty: ColumnType, bytes: &[u8]) -> Result<ValueRef<'_>, ParseValueError> {
    let fail = |reason: Option<String>| ParseValueError::new(ty, bytes, reason);
    let text = || std::str::from_utf8(bytes).map_err(|err| fail(Some(utf8_reason(&err))));
    match ty {
        ColumnType::Blob => Ok(ValueRef::Blob(bytes)),
        ColumnType::Text => {
            let text = text()?;
            // `contains` scans a word at a time; the offset only for the
            // error.
            if let Some(at) = bytes
                .contains(&0)
                .then(|| text.bytes().position(|b| b == 0))
                .flatten()
            {
                return Err(fail(Some(format!(
                    "NUL byte at offset {at}: text cannot hold it; use a bytea column"
                ))));
            }
            Ok(ValueRef::Text(text))
        }
        ColumnType::Integer => {
            let text = text()?;
            text.parse::<i64>().map(ValueRef::Integer).map_err(|err| {
                use std::num::IntErrorKind;
                fail(match err.kind() {
                    IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
                        Some("out of the 64-bit range".to_owned())
                    }
                    IntErrorKind::Empty => Some("empty".to_owned()),
                    _ => None,
                })
            })
        }
        ColumnType::Real => {
            let text = text()?;
            // Rust's parser also takes "inf", "NaN" and "infinity": only
            // plain decimals (which start with a sign, a digit or a dot)
            // are wanted.
            let plain = text
                .trim_start_matches(['+', '-'])
                .starts_with(|c: char| c.is_ascii_digit() || c == '.');
            match text.parse::<f64>() {
                Ok(v) if plain && v.is_finite() => Ok(ValueRef::Real(v)),
                Ok(_) if plain => Err(fail(Some("out of the double precision range".into()))),
                _ if text.is_empty() => Err(fail(Some("empty".to_owned()))),
                _ => Err(fail(None)),
            }
        }
        ColumnType::Boolean => {
            let text = text()?;
            const TRUE: [&str; 3] = ["true", "t", "1"];
            const FALSE: [&str; 3] = ["false", "f", "0"];
            if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
                Ok(ValueRef::Boolean(true))
            } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
                Ok(ValueRef::Boolean(false))
            } else {
                Err(fail(Some("expected true/false, t/f or 1/0".to_owned())))
            }
        }
        ColumnType::Json => {
            let text = text()?;
            check_json(text).map_err(|reason| fail(Some(reason)))?;
            Ok(ValueRef::Json(text))
        }
        ColumnType::Timestamp => {
            let text = text()?;
            let at = DateTime::parse_from_rfc3339(text).map_err(|err| {
                fail(Some(format!(
                    "{err}; expected RFC 3339 with an offset, such as 2026-12-01T22:01:15.123456Z"
                )))
            })?;
            Ok(ValueRef::Timestamp(at.timestamp_micros()))
        }
    }
}

fn utf8_reason(err: &std::str::Utf8Error) -> String {
    format!("invalid UTF-8 at byte {}", err.valid_up_to())
}

/// Whether `text` is one JSON document that PostgreSQL's `JSONB` can store.
fn check_json(text: &str) -> Result<(), String> {
    // IgnoredAny checks the syntax without building anything (and without
    // limiting numbers to f64, as JSONB does not).
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|err| err.to_string())?;
    // The text is valid JSON: find a \u0000 escape inside a string.
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if bytes[i + 1..].starts_with(b"u0000") {
                    return Err(format!(
                        "the escape \\u0000 at offset {i}: PostgreSQL cannot store it"
                    ));
                }
                i += 1; // skip the escaped character (a quote, say)
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Raw bytes that [`Value::parse`] could not turn into a value of a column's
/// type.
///
/// Its [`Display`](fmt::Display) names the type, shows the input (its first
/// 64 bytes, escaped, with the total length when cut) and the problem when
/// there is more to say than "not a valid …":
///
/// ```text
/// not a valid bigint: "abc"
/// not a valid bigint: "99999999999999999999" (out of the 64-bit range)
/// not a valid text: b"ab\xff" (invalid UTF-8 at byte 2)
/// not a valid boolean: "yes" (expected true/false, t/f or 1/0)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseValueError {
    ty: ColumnType,
    input: String,
    len: usize,
    reason: Option<String>,
}

impl ParseValueError {
    fn new(ty: ColumnType, bytes: &[u8], reason: Option<String>) -> Self {
        ParseValueError {
            ty,
            input: show(bytes),
            len: bytes.len(),
            reason,
        }
    }

    /// The type the input was parsed as.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Value};
    ///
    /// let err = Value::parse(ColumnType::Boolean, b"yes").unwrap_err();
    /// assert_eq!(err.column_type(), ColumnType::Boolean);
    /// ```
    pub fn column_type(&self) -> ColumnType {
        self.ty
    }

    /// What is wrong beyond "not a valid …", if there is more to say.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate_sql::{ColumnType, Value};
    ///
    /// let err = Value::parse(ColumnType::Integer, b"99999999999999999999").unwrap_err();
    /// assert_eq!(err.reason(), Some("out of the 64-bit range"));
    /// assert_eq!(Value::parse(ColumnType::Integer, b"abc").unwrap_err().reason(), None);
    /// ```
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

/// The first [`SHOWN`] bytes of `bytes`, quoted and escaped: as a string if
/// they are UTF-8, as a byte string otherwise.
fn show(bytes: &[u8]) -> String {
    let mut end = bytes.len().min(SHOWN);
    let text = loop {
        match std::str::from_utf8(&bytes[..end]) {
            Ok(text) => break Some(text),
            // Cut inside a character: step back to its start.
            Err(err) if err.error_len().is_none() && end < bytes.len() && end > 0 => {
                end = err.valid_up_to();
            }
            Err(_) => break None,
        }
    };
    match text {
        Some(text) => format!("{text:?}"),
        None => format!("b\"{}\"", bytes[..end].escape_ascii()),
    }
}

impl fmt::Display for ParseValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid {}: {}", self.ty, self.input)?;
        if self.len > SHOWN {
            write!(f, "… ({} bytes)", self.len)?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

impl Error for ParseValueError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(ty: ColumnType, input: &[u8]) -> String {
        Value::parse(ty, input).unwrap_err().to_string()
    }

    #[test]
    fn integers_are_decimal_i64() {
        assert_eq!(
            Value::parse(ColumnType::Integer, b"42"),
            Ok(Value::Integer(42))
        );
        assert_eq!(
            Value::parse(ColumnType::Integer, b"+7"),
            Ok(Value::Integer(7))
        );
        assert_eq!(
            Value::parse(ColumnType::Integer, b"-9223372036854775808"),
            Ok(Value::Integer(i64::MIN))
        );
        assert_eq!(
            err(ColumnType::Integer, b"abc"),
            r#"not a valid bigint: "abc""#
        );
        assert_eq!(
            err(ColumnType::Integer, b"9223372036854775808"),
            r#"not a valid bigint: "9223372036854775808" (out of the 64-bit range)"#
        );
        assert_eq!(
            err(ColumnType::Integer, b""),
            r#"not a valid bigint: "" (empty)"#
        );
        assert_eq!(
            err(ColumnType::Integer, b" 1"),
            r#"not a valid bigint: " 1""#
        );
        assert_eq!(
            err(ColumnType::Integer, b"1.0"),
            r#"not a valid bigint: "1.0""#
        );
        assert_eq!(
            err(ColumnType::Integer, b"\xff1"),
            r#"not a valid bigint: b"\xff1" (invalid UTF-8 at byte 0)"#
        );
    }

    #[test]
    fn reals_are_finite_decimals() {
        assert_eq!(
            Value::parse(ColumnType::Real, b"3.25"),
            Ok(Value::Real(3.25))
        );
        assert_eq!(
            Value::parse(ColumnType::Real, b"-1e-3"),
            Ok(Value::Real(-0.001))
        );
        assert_eq!(Value::parse(ColumnType::Real, b".5"), Ok(Value::Real(0.5)));
        assert_eq!(Value::parse(ColumnType::Real, b"7"), Ok(Value::Real(7.0)));
        for bad in ["NaN", "inf", "-infinity", "+Inf", "0x10", "1,5", "one"] {
            assert_eq!(
                err(ColumnType::Real, bad.as_bytes()),
                format!("not a valid double precision: {bad:?}")
            );
        }
        assert_eq!(
            err(ColumnType::Real, b"1e999"),
            r#"not a valid double precision: "1e999" (out of the double precision range)"#
        );
        assert_eq!(
            err(ColumnType::Real, b""),
            r#"not a valid double precision: "" (empty)"#
        );
    }

    #[test]
    fn text_is_utf8_without_nul() {
        assert_eq!(
            Value::parse(ColumnType::Text, "héllo".as_bytes()),
            Ok(Value::Text("héllo".into()))
        );
        assert_eq!(
            Value::parse(ColumnType::Text, b""),
            Ok(Value::Text(String::new()))
        );
        assert_eq!(
            err(ColumnType::Text, b"ab\xff"),
            r#"not a valid text: b"ab\xff" (invalid UTF-8 at byte 2)"#
        );
        assert_eq!(
            err(ColumnType::Text, b"a\0b"),
            r#"not a valid text: "a\0b" (NUL byte at offset 1: text cannot hold it; use a bytea column)"#
        );
        assert_eq!(
            Value::parse(ColumnType::Blob, b"a\0\xff"),
            Ok(Value::Blob(b"a\0\xff".to_vec()))
        );
    }

    #[test]
    fn booleans_take_six_spellings_in_any_case() {
        for (input, v) in [
            ("true", true),
            ("TRUE", true),
            ("t", true),
            ("T", true),
            ("1", true),
            ("false", false),
            ("False", false),
            ("f", false),
            ("0", false),
        ] {
            assert_eq!(
                Value::parse(ColumnType::Boolean, input.as_bytes()),
                Ok(Value::Boolean(v)),
                "{input}"
            );
        }
        for bad in ["yes", "no", "2", "-1", "", "tru", "truee", " true"] {
            assert_eq!(
                err(ColumnType::Boolean, bad.as_bytes()),
                format!("not a valid boolean: {bad:?} (expected true/false, t/f or 1/0)")
            );
        }
    }

    #[test]
    fn json_is_validated_and_kept_as_written() {
        for ok in [
            r#"{"a": [1, 2.5, null, true]}"#,
            "1",
            r#""text""#,
            "[]",
            "1e400",
            r#"{"q": "a \"quoted\" \\u0000 (escaped backslash)"}"#,
            r#""\u00e9""#,
        ] {
            assert_eq!(
                Value::parse(ColumnType::Json, ok.as_bytes()),
                Ok(Value::Json(ok.into())),
                "{ok}"
            );
        }
        let e = err(ColumnType::Json, b"{\"a\":");
        assert!(
            e.starts_with(r#"not a valid json: "{\"a\":" (EOF while parsing"#),
            "{e}"
        );
        let e = err(ColumnType::Json, b"{} {}");
        assert!(e.contains("trailing characters"), "{e}");
        let e = err(ColumnType::Json, b"");
        assert!(e.contains("EOF"), "{e}");
        let e = err(ColumnType::Json, br#"{"a": "x\u0000"}"#);
        assert!(e.contains(r"the escape \u0000 at offset 8"), "{e}");
        assert!(Value::json("nope").is_err());
        assert_eq!(Value::json("null"), Ok(Value::Json("null".into())));
    }

    #[test]
    fn timestamps_are_rfc3339_with_an_offset() {
        let ts = |s: &str| Value::parse(ColumnType::Timestamp, s.as_bytes());
        assert_eq!(ts("1970-01-01T00:00:00Z"), Ok(Value::Timestamp(0)));
        assert_eq!(
            ts("2026-12-01T22:01:15.123456Z"),
            Ok(Value::Timestamp(1_796_162_475_123_456))
        );
        assert_eq!(
            ts("2026-12-01 23:01:15.123456789+01:00"),
            Ok(Value::Timestamp(1_796_162_475_123_456)),
            "offsets are applied, nanoseconds truncated"
        );
        assert_eq!(ts("1969-12-31T23:59:59.999999Z"), Ok(Value::Timestamp(-1)));
        assert_eq!(
            ts("0000-01-01T00:00:00Z"),
            Ok(Value::Timestamp(Value::TIMESTAMP_MIN))
        );
        assert_eq!(
            ts("9999-12-31T23:59:59.999999Z"),
            Ok(Value::Timestamp(Value::TIMESTAMP_MAX))
        );
        for bad in [
            "2026-12-01T22:01:15",
            "2026-13-01T00:00:00Z",
            "1796162475123",
            "yesterday",
            "",
        ] {
            let e = err(ColumnType::Timestamp, bad.as_bytes());
            assert!(
                e.starts_with(&format!("not a valid timestamp: {bad:?} (")),
                "{e}"
            );
            assert!(e.contains("expected RFC 3339"), "{e}");
        }
        assert_eq!(
            Value::format_timestamp(0).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            Value::format_timestamp(Value::TIMESTAMP_MIN).as_deref(),
            Some("0000-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            Value::format_timestamp(Value::TIMESTAMP_MAX).as_deref(),
            Some("9999-12-31T23:59:59.999999Z")
        );
        assert_eq!(Value::format_timestamp(Value::TIMESTAMP_MIN - 1), None);
        // Every formatted instant parses back to itself.
        for micros in [0, -1, 1, 1_796_162_475_123_456, Value::TIMESTAMP_MIN] {
            let text = Value::format_timestamp(micros).unwrap();
            assert_eq!(ts(&text), Ok(Value::Timestamp(micros)), "{text}");
        }
    }

    #[test]
    fn long_inputs_are_cut_in_the_message() {
        let long = "x".repeat(1000);
        let e = err(ColumnType::Integer, long.as_bytes());
        assert_eq!(
            e,
            format!("not a valid bigint: \"{}\"… (1000 bytes)", "x".repeat(64))
        );
        // A cut inside a multi-byte character steps back to its start.
        let accents = format!("x{}", "é".repeat(100));
        let e = err(ColumnType::Integer, accents.as_bytes());
        assert_eq!(
            e,
            format!("not a valid bigint: \"x{}\"… (201 bytes)", "é".repeat(31))
        );
        let e = Value::parse(ColumnType::Integer, b"abc").unwrap_err();
        assert_eq!(e.column_type(), ColumnType::Integer);
        assert_eq!(e.reason(), None);
    }
}
