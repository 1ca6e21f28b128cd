//! Edges of flowgate-sql's public constructors and builders, against the
//! validation policy: each is refused as documented or behaves as documented
//! (no server needed).

use std::sync::Arc;
use std::time::Duration;

use flowgate_sql::{
    ColumnType, PostgresOptions, PostgresSink, RowOutcome, SinkError, SqliteCheckpointStore,
    SqliteIdempotencyStore, SqliteSink, Table, TableError, Value, Written,
};

// ---- Table::builder: every rule is a TableError from build() ----

#[test]
fn a_table_without_columns_is_refused() {
    assert_eq!(Table::builder("t").build(), Err(TableError::NoColumns));
    // Even with a key named: the columns rule comes first.
    assert_eq!(
        Table::builder("t").key("id").build(),
        Err(TableError::NoColumns)
    );
}

#[test]
fn a_table_with_one_column_that_is_the_key_is_fine() {
    let table = Table::builder("t").integer("id").key("id").build().unwrap();
    assert_eq!(table.columns().len(), 1);
    assert_eq!(table.key().count(), 1);
}

#[test]
fn empty_names_are_refused() {
    assert_eq!(
        Table::builder("").text("id").key("id").build(),
        Err(TableError::InvalidIdentifier(String::new()))
    );
    assert_eq!(
        Table::builder("t").text("").key("").build(),
        Err(TableError::InvalidIdentifier(String::new()))
    );
}

#[test]
fn names_longer_than_63_bytes_are_refused() {
    let longest = "a".repeat(63);
    let too_long = "a".repeat(64);
    assert!(
        Table::builder(&longest)
            .text(&longest)
            .key(&longest)
            .build()
            .is_ok()
    );
    assert_eq!(
        Table::builder(&too_long).text("id").key("id").build(),
        Err(TableError::InvalidIdentifier(too_long.clone()))
    );
    assert_eq!(
        Table::builder("t").text(&too_long).key(&too_long).build(),
        Err(TableError::InvalidIdentifier(too_long))
    );
}

#[test]
fn non_ascii_and_quoting_characters_are_refused() {
    for name in ["événements", "a-b", "a\"b", "a b", "1a", "a;"] {
        assert_eq!(
            Table::builder(name).text("id").key("id").build(),
            Err(TableError::InvalidIdentifier(name.into())),
            "{name}"
        );
    }
    assert!(Table::builder("_t1").text("_id").key("_id").build().is_ok());
}

#[test]
fn duplicate_columns_are_refused_case_insensitively() {
    assert_eq!(
        Table::builder("t").text("id").text("id").key("id").build(),
        Err(TableError::DuplicateColumn("id".into()))
    );
    assert_eq!(
        Table::builder("t")
            .text("id")
            .integer("Id")
            .key("id")
            .build(),
        Err(TableError::DuplicateColumn("Id".into()))
    );
    let err = Table::builder("t")
        .text("id")
        .text("id")
        .key("id")
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), r#"column "id" is declared twice"#);
}

#[test]
fn a_table_without_a_key_is_refused() {
    assert_eq!(
        Table::builder("t").text("id").build(),
        Err(TableError::NoKey)
    );
}

#[test]
fn key_columns_must_be_declared_and_of_a_key_type() {
    assert_eq!(
        Table::builder("t").text("id").key("other").build(),
        Err(TableError::UnknownKeyColumn("other".into()))
    );
    // Key names are matched exactly, as declared (not case-folded).
    assert_eq!(
        Table::builder("t").text("id").key("ID").build(),
        Err(TableError::UnknownKeyColumn("ID".into()))
    );
    assert_eq!(
        Table::builder("t").real("x").key("x").build(),
        Err(TableError::RealKey("x".into()))
    );
    assert_eq!(
        Table::builder("t").json("x").key("x").build(),
        Err(TableError::KeyType {
            column: "x".into(),
            ty: ColumnType::Json
        })
    );
    for ty in [
        ColumnType::Integer,
        ColumnType::Text,
        ColumnType::Blob,
        ColumnType::Boolean,
        ColumnType::Timestamp,
    ] {
        assert!(
            Table::builder("t").column("k", ty).key("k").build().is_ok(),
            "{ty}"
        );
    }
}

#[test]
fn a_key_named_twice_is_one_key_column() {
    let table = Table::builder("t")
        .text("id")
        .key("id")
        .key("id")
        .build()
        .unwrap();
    assert_eq!(table.key().count(), 1);
}

#[test]
fn not_null_must_name_a_declared_column() {
    assert_eq!(
        Table::builder("t")
            .text("id")
            .key("id")
            .not_null("body")
            .build(),
        Err(TableError::UnknownColumn("body".into()))
    );
    // On a key column, or twice: harmless.
    let table = Table::builder("t")
        .text("id")
        .text("body")
        .not_null("id")
        .not_null("body")
        .not_null("body")
        .key("id")
        .build()
        .unwrap();
    assert!(table.columns().iter().all(|c| c.not_null));
}

#[test]
fn setters_never_panic_and_build_reports_the_first_rule() {
    // Nonsense in every setter: nothing panics, build names the first rule
    // (the table name).
    let err = Table::builder("")
        .text("")
        .text("")
        .real("")
        .key("")
        .key("missing")
        .not_null("missing")
        .build()
        .unwrap_err();
    assert_eq!(err, TableError::InvalidIdentifier(String::new()));
}

// ---- Table::check_row ----

#[test]
fn rows_of_zero_or_too_many_values_are_refused() {
    let table = Table::builder("t").text("id").key("id").build().unwrap();
    assert_eq!(
        table.check_row(0, &[]),
        Err(TableError::RowLength {
            row: 0,
            expected: 1,
            actual: 0
        })
    );
    assert_eq!(
        table.check_row(usize::MAX, &["a".into(), "b".into()]),
        Err(TableError::RowLength {
            row: usize::MAX,
            expected: 1,
            actual: 2
        })
    );
}

#[test]
fn timestamps_are_accepted_exactly_within_the_documented_range() {
    let table = Table::builder("t")
        .text("id")
        .timestamp("at")
        .key("id")
        .build()
        .unwrap();
    let row = |micros| vec![Value::from("a"), Value::Timestamp(micros)];
    assert!(table.check_row(0, &row(Value::TIMESTAMP_MIN)).is_ok());
    assert!(table.check_row(0, &row(Value::TIMESTAMP_MAX)).is_ok());
    for micros in [
        Value::TIMESTAMP_MIN - 1,
        Value::TIMESTAMP_MAX + 1,
        i64::MIN,
        i64::MAX,
    ] {
        assert!(
            matches!(
                table.check_row(0, &row(micros)),
                Err(TableError::TimestampOutOfRange { micros: m, .. }) if m == micros
            ),
            "{micros}"
        );
        assert_eq!(Value::format_timestamp(micros), None);
    }
    assert_eq!(
        Value::format_timestamp(Value::TIMESTAMP_MIN).as_deref(),
        Some("0000-01-01T00:00:00.000000Z")
    );
    assert_eq!(
        Value::format_timestamp(Value::TIMESTAMP_MAX).as_deref(),
        Some("9999-12-31T23:59:59.999999Z")
    );
}

// ---- Value::parse ----

#[test]
fn empty_input_is_refused_by_every_type_but_text_and_blob() {
    assert_eq!(
        Value::parse(ColumnType::Text, b""),
        Ok(Value::Text(String::new()))
    );
    assert_eq!(
        Value::parse(ColumnType::Blob, b""),
        Ok(Value::Blob(Vec::new()))
    );
    for ty in [
        ColumnType::Integer,
        ColumnType::Real,
        ColumnType::Boolean,
        ColumnType::Json,
        ColumnType::Timestamp,
    ] {
        let err = Value::parse(ty, b"").unwrap_err();
        assert_eq!(err.column_type(), ty);
        assert!(
            err.to_string()
                .starts_with(&format!("not a valid {ty}: \"\"")),
            "{err}"
        );
    }
    assert_eq!(
        Value::parse(ColumnType::Integer, b"").unwrap_err().reason(),
        Some("empty")
    );
}

#[test]
fn integers_parse_up_to_the_i64_limits() {
    let max = i64::MAX.to_string();
    let min = i64::MIN.to_string();
    assert_eq!(
        Value::parse(ColumnType::Integer, max.as_bytes()),
        Ok(Value::Integer(i64::MAX))
    );
    assert_eq!(
        Value::parse(ColumnType::Integer, min.as_bytes()),
        Ok(Value::Integer(i64::MIN))
    );
    assert_eq!(
        Value::parse(ColumnType::Integer, b"+0"),
        Ok(Value::Integer(0))
    );
    for over in ["9223372036854775808", "-9223372036854775809"] {
        let err = Value::parse(ColumnType::Integer, over.as_bytes()).unwrap_err();
        assert_eq!(err.reason(), Some("out of the 64-bit range"), "{over}");
    }
    for bad in [" 7", "7 ", "1.5", "0x10", "-"] {
        assert!(
            Value::parse(ColumnType::Integer, bad.as_bytes()).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn reals_must_be_finite_plain_decimals() {
    assert_eq!(Value::parse(ColumnType::Real, b"0.0"), Ok(Value::Real(0.0)));
    assert_eq!(Value::parse(ColumnType::Real, b"1.0"), Ok(Value::Real(1.0)));
    assert_eq!(Value::parse(ColumnType::Real, b".5"), Ok(Value::Real(0.5)));
    let Ok(Value::Real(negative_zero)) = Value::parse(ColumnType::Real, b"-0.0") else {
        panic!("-0.0 is a decimal")
    };
    assert!(negative_zero == 0.0 && negative_zero.is_sign_negative());
    let max = f64::MAX.to_string();
    assert_eq!(
        Value::parse(ColumnType::Real, max.as_bytes()),
        Ok(Value::Real(f64::MAX))
    );
    for bad in ["NaN", "nan", "inf", "-inf", "infinity", "0x10", "1,5"] {
        assert!(
            Value::parse(ColumnType::Real, bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
    for overflow in ["1e999", "-1e999"] {
        let err = Value::parse(ColumnType::Real, overflow.as_bytes()).unwrap_err();
        assert_eq!(err.reason(), Some("out of the double precision range"));
    }
}

#[test]
fn text_refuses_nul_bytes_and_invalid_utf8() {
    let err = Value::parse(ColumnType::Text, b"a\0b").unwrap_err();
    assert!(err.reason().unwrap().starts_with("NUL byte at offset 1"));
    let err = Value::parse(ColumnType::Text, b"ab\xff").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"not a valid text: b"ab\xff" (invalid UTF-8 at byte 2)"#
    );
    // A blob takes any bytes.
    assert_eq!(
        Value::parse(ColumnType::Blob, b"\0\xff"),
        Ok(Value::Blob(vec![0, 0xff]))
    );
}

#[test]
fn json_is_one_document_without_nul_escapes() {
    for ok in [
        "1",
        "null",
        "\"s\"",
        "[]",
        "{}",
        "123456789012345678901234567890",
    ] {
        assert_eq!(
            Value::parse(ColumnType::Json, ok.as_bytes()),
            Ok(Value::Json(ok.into())),
            "{ok}"
        );
    }
    for bad in ["", "{", "1 2", "[1,]", "nul"] {
        assert!(Value::json(bad).is_err(), "{bad:?}");
    }
    let err = Value::json(r#"{"a":"x\u0000"}"#).unwrap_err();
    assert!(err.reason().unwrap().contains("\\u0000"), "{err}");
    // An escaped backslash before u0000 is not the NUL escape.
    assert!(Value::json(r#""\\u0000""#).is_ok());
}

#[test]
fn timestamps_parse_within_years_0000_to_9999_with_an_offset() {
    assert_eq!(
        Value::parse(ColumnType::Timestamp, b"0000-01-01T00:00:00Z"),
        Ok(Value::Timestamp(Value::TIMESTAMP_MIN))
    );
    assert_eq!(
        Value::parse(ColumnType::Timestamp, b"9999-12-31T23:59:59.999999Z"),
        Ok(Value::Timestamp(Value::TIMESTAMP_MAX))
    );
    // Digits below the microsecond are truncated.
    assert_eq!(
        Value::parse(ColumnType::Timestamp, b"1970-01-01T00:00:00.0000019Z"),
        Ok(Value::Timestamp(1))
    );
    for bad in ["2026-12-01T22:01:15", "1796162475", "10000-01-01T00:00:00Z"] {
        assert!(
            Value::parse(ColumnType::Timestamp, bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_long_refused_input_is_cut_in_the_message() {
    let long = "x".repeat(10_000);
    let err = Value::parse(ColumnType::Integer, long.as_bytes()).unwrap_err();
    let message = err.to_string();
    assert!(message.len() < 200, "{message}");
    assert!(message.contains("(10000 bytes)"), "{message}");
    // Cut inside a multi-byte character: still valid UTF-8, shown as text.
    let accents = "é".repeat(100);
    let err = Value::parse(ColumnType::Integer, accents.as_bytes()).unwrap_err();
    assert!(
        err.to_string().starts_with("not a valid bigint: \"éé"),
        "{err}"
    );
}

// ---- SQLite batch sizes ----

fn events() -> Table {
    Table::builder("events")
        .integer("id")
        .text("body")
        .key("id")
        .build()
        .unwrap()
}

fn encode(id: &i64) -> Vec<Value> {
    vec![Value::Integer(*id), Value::from(format!("body {id}"))]
}

#[tokio::test]
async fn an_empty_batch_writes_nothing_and_succeeds() {
    let sink = SqliteSink::open_in_memory(events(), encode).await.unwrap();
    assert_eq!(sink.write(Vec::new()).await.unwrap(), []);
    assert!(sink.write_each(Vec::new()).await.unwrap().is_empty());
    assert!(sink.write_values(Arc::from([])).await.unwrap().is_empty());
    assert_eq!(sink.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_batch_of_one_row() {
    let sink = SqliteSink::open_in_memory(events(), encode).await.unwrap();
    assert_eq!(sink.write(vec![1]).await.unwrap(), [Written::Inserted]);
    assert_eq!(sink.write(vec![1]).await.unwrap(), [Written::Duplicate]);
}

#[tokio::test]
async fn batches_around_the_32_row_statement_size_report_every_row() {
    // 32 rows a statement: one short of, exactly, one over, and many chunks.
    for size in [31_i64, 32, 33, 64, 65, 1_000] {
        let sink = SqliteSink::open_in_memory(events(), encode).await.unwrap();
        // The last row repeats the first key: a duplicate in the last chunk.
        let mut rows: Vec<i64> = (0..size).collect();
        rows.push(0);
        let written = sink.write(rows).await.unwrap();
        assert_eq!(written.len(), size as usize + 1);
        assert!(
            written[..size as usize]
                .iter()
                .all(|w| *w == Written::Inserted),
            "{size}"
        );
        assert_eq!(written[size as usize], Written::Duplicate, "{size}");
        assert_eq!(sink.count().await.unwrap(), size as u64);
    }
}

#[tokio::test]
async fn integer_keys_at_the_i64_limits_are_stored() {
    let sink = SqliteSink::open_in_memory(events(), encode).await.unwrap();
    let written = sink
        .write(vec![i64::MIN, 0, i64::MAX, i64::MAX])
        .await
        .unwrap();
    assert_eq!(
        written,
        [
            Written::Inserted,
            Written::Inserted,
            Written::Inserted,
            Written::Duplicate
        ]
    );
}

#[tokio::test]
async fn a_bad_row_in_a_large_batch_is_the_only_one_rejected() {
    let sink = SqliteSink::open_in_memory(events(), encode).await.unwrap();
    let mut rows: Vec<Vec<Value>> = (0..100).map(|id| encode(&id)).collect();
    rows[70] = vec![Value::Null, Value::from("no key")];
    let outcomes = sink.write_values(rows.into()).await.unwrap();
    assert_eq!(outcomes.len(), 100);
    assert!(matches!(
        outcomes[70].rejection(),
        Some(SinkError::Table(TableError::NullKey { row: 70, .. }))
    ));
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, RowOutcome::Inserted))
            .count(),
        99
    );
}

// ---- SQLite stores ----

#[tokio::test]
async fn an_empty_store_name_or_scope_is_a_name_like_any_other() {
    let checkpoints = SqliteCheckpointStore::open_in_memory("").await.unwrap();
    assert_eq!(checkpoints.name(), "");
    checkpoints.set(Value::Integer(1)).await.unwrap();
    assert_eq!(checkpoints.get().await.unwrap(), Some(Value::Integer(1)));

    let keys = SqliteIdempotencyStore::open_in_memory("").await.unwrap();
    assert_eq!(keys.scope(), "");
    keys.record_value(Value::from("k")).await.unwrap();
    assert!(keys.contains_value(Value::from("k")).await.unwrap());
}

#[tokio::test]
async fn null_cursors_and_keys_are_refused() {
    let checkpoints = SqliteCheckpointStore::open_in_memory("s").await.unwrap();
    assert!(matches!(
        checkpoints.set(Value::Null).await,
        Err(SinkError::Table(TableError::NullKey { .. }))
    ));
    let keys = SqliteIdempotencyStore::open_in_memory("s").await.unwrap();
    assert!(matches!(
        keys.record_value(Value::Null).await,
        Err(SinkError::Table(TableError::NullKey { .. }))
    ));
    // Looking a Null up is not an error: it is never recorded.
    assert!(!keys.contains_value(Value::Null).await.unwrap());
}

#[tokio::test]
async fn purging_with_duration_max_removes_nothing_and_zero_does_not_fail() {
    let keys = SqliteIdempotencyStore::open_in_memory("s").await.unwrap();
    keys.record_value(Value::Integer(1)).await.unwrap();
    assert_eq!(keys.purge_older_than(Duration::MAX).await.unwrap(), 0);
    let age = Duration::from_secs(u64::try_from(i64::MAX).unwrap());
    assert_eq!(keys.purge_older_than(age).await.unwrap(), 0);
    assert_eq!(keys.count().await.unwrap(), 1);
    // ZERO removes keys recorded before the current second: this one was
    // recorded at most a second ago, so 0 or 1, never an error.
    assert!(keys.purge_older_than(Duration::ZERO).await.unwrap() <= 1);
}

// ---- PostgresOptions / PostgresSink::connect_with (no server needed) ----

#[test]
#[should_panic(expected = "PostgresOptions::connections: connections must be at least 1")]
fn zero_connections_are_refused_by_the_setter() {
    let _ = PostgresOptions::default().connections(0);
}

#[test]
fn one_and_usize_max_connections_are_accepted() {
    assert_eq!(PostgresOptions::default().connections(1).connections, 1);
    assert_eq!(
        PostgresOptions::default()
            .connections(usize::MAX)
            .connections,
        usize::MAX
    );
}

#[tokio::test]
#[should_panic(expected = "PostgresSink::connect_with: options.connections must be at least 1")]
async fn zero_connections_set_on_the_field_are_refused_by_connect_with() {
    let mut options = PostgresOptions::default();
    options.connections = 0;
    let _ = PostgresSink::connect_with("host=127.0.0.1", events(), encode, options).await;
}

#[tokio::test]
async fn usize_max_connections_with_an_invalid_url_is_just_the_url_error() {
    let options = PostgresOptions::default().connections(usize::MAX);
    let err = PostgresSink::connect_with("port=not-a-port", events(), encode, options)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SinkError::InvalidUrl(_)), "{err}");
}
