//! The user's schema: an existing table that does not fit the mapping is
//! refused at start, naming every mismatch; a custom mapping (`--column` /
//! `--key`, or a `--schema` TOML file) into columns of every type lands with
//! the right values, deduplicated by the chosen key, and a message that does
//! not fit (invalid JSON for a jsonb column) is dead-lettered with a reason.
//! On the shared servers.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_table_with_text_seq_and_no_key_is_refused_at_start_naming_both_mismatches() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "mismatch");
    execute(
        &t.postgres,
        &format!(
            "CREATE TABLE {} (id TEXT, seq TEXT, body BYTEA, checksum BIGINT)",
            t.table
        ),
    )
    .await;
    t.publish(0, 100).await;
    let done = t.spawn("c1", &[]).wait(EXIT_TIMEOUT).await;
    done.assert_code(1);
    let chain = done.error_chain();
    let lower = chain.to_lowercase();
    assert!(
        lower.contains("seq") && (lower.contains("text") || lower.contains("bigint")),
        "the error names the type mismatch of seq:\n{done}"
    );
    assert!(
        lower.contains("key") || lower.contains("unique"),
        "the error names the missing key on id:\n{done}"
    );
    assert!(lower.contains(&t.table), "and the table:\n{done}");
    assert_eq!(rows(&t.postgres, &t.table).await, (0, 0), "nothing written");
    assert_eq!(xlen(&t.redis, &t.dead).await, 0, "nothing dead-lettered");
    assert_eq!(
        pending(&t.redis, &t.stream, &t.group).await,
        0,
        "nothing read"
    );
}

/// What [`publish_orders`] put in the stream.
struct Orders {
    /// Entry ids of the orders 1..=5, in order.
    ids: Vec<String>,
    /// The entry id of the second message for order 2 (a duplicate by key).
    duplicate: String,
    /// The entry id of the message whose `meta` is not JSON.
    bad_json: String,
}

fn meta(n: u64) -> String {
    format!(r#"{{"n": {n}, "tags": ["a", "b"], "nested": {{"ok": true}}}}"#)
}

fn at(n: u64) -> String {
    format!("2024-05-0{n}T12:34:56.5Z")
}

fn blob(n: u64) -> Vec<u8> {
    vec![0, n as u8, 0xff, 0xfe, b'\n']
}

/// Orders 1..=5 with fields of every type (order 3 without its nullable
/// `note`), order 2 a second time, and order 6 with invalid JSON in `meta`.
async fn publish_orders(t: &Target) -> Orders {
    let order = async |n: u64, meta: &str| {
        let (order, amount, paid) = (
            n.to_string(),
            format!("{}", n as f64 * 1.5),
            n.is_multiple_of(2),
        );
        let (at, blob, note) = (at(n), blob(n), format!("note {n}"));
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b"order", order.as_bytes()),
            (b"amount", amount.as_bytes()),
            (b"paid", if paid { b"true" } else { b"false" }),
            (b"meta", meta.as_bytes()),
            (b"at", at.as_bytes()),
            (b"blob", &blob),
        ];
        if n != 3 {
            fields.push((b"note", note.as_bytes()));
        }
        xadd(&t.redis, &t.stream, &fields).await
    };
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(order(n, &meta(n)).await);
    }
    let duplicate = order(2, &meta(2)).await;
    let bad_json = order(6, "{not json").await;
    Orders {
        ids,
        duplicate,
        bad_json,
    }
}

/// Runs `ingest` with `args` over the orders and checks every value.
async fn custom_mapping(t: &Target, args: Vec<String>) {
    let orders = publish_orders(t).await;
    let mut ingest = flowgate("c1", args);
    t.wait_done(5, 1, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(
        (
            report.received,
            report.written,
            report.duplicates,
            report.dead_lettered
        ),
        (7, 5, 1, 1),
        "{report:#?}"
    );
    t.assert_final(5, 1).await;

    // Columns of the declared types (the table was created from the mapping).
    let client = pg(&t.postgres).await;
    let types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_name = $1 ORDER BY column_name",
            &[&t.table],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        ("amount", "double precision"),
        ("at", "timestamp with time zone"),
        ("blob", "bytea"),
        ("entry_id", "text"),
        ("meta", "jsonb"),
        ("note", "text"),
        ("order_id", "bigint"),
        ("paid", "boolean"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(types, expected, "columns of {}", t.table);

    // Every value, compared in SQL where the type's text form may vary.
    for n in 1..=5u64 {
        let row = client
            .query_one(
                &format!(
                    "SELECT order_id, amount, paid, meta = $1::text::jsonb, \
                     at = $2::text::timestamptz, blob, note, entry_id, meta::text, at::text \
                     FROM {} WHERE order_id = $3",
                    t.table
                ),
                &[&meta(n), &at(n), &(n as i64)],
            )
            .await
            .unwrap_or_else(|err| panic!("the row of order {n}: {err:?}"));
        assert_eq!(row.get::<_, i64>(0), n as i64);
        assert_eq!(row.get::<_, f64>(1), n as f64 * 1.5, "amount of {n}");
        assert_eq!(row.get::<_, bool>(2), n % 2 == 0, "paid of {n}");
        assert!(
            row.get::<_, bool>(3),
            "meta of {n} as JSON: {}",
            row.get::<_, String>(8)
        );
        assert!(
            row.get::<_, bool>(4),
            "at of {n}: {}",
            row.get::<_, String>(9)
        );
        assert_eq!(row.get::<_, Vec<u8>>(5), blob(n), "blob of {n}: raw bytes");
        let note: Option<String> = row.get(6);
        let expected_note = (n != 3).then(|| format!("note {n}"));
        assert_eq!(note, expected_note, "note of {n} (nullable)");
        let entry_id: String = row.get(7);
        let idx = (n - 1) as usize;
        assert!(
            entry_id == orders.ids[idx] || (n == 2 && entry_id == orders.duplicate),
            "entry_id of {n} is its stream entry id: {entry_id}"
        );
    }

    let dead = dead_letters(&t.redis, &t.dead).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(
        dead[0].get("flowgate-original-id"),
        Some(orders.bad_json.clone())
    );
    let reason = dead[0].get("flowgate-reason").unwrap_or_default();
    let lower = reason.to_lowercase();
    assert!(
        lower.contains("meta") || lower.contains("json"),
        "the reason names the column or JSON: {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_mapping_from_column_and_key_flags_lands_with_the_right_values() {
    let Some(servers) = shared() else { return };
    let mut t = Target::new(&servers.redis, &servers.postgres, "columns");
    t.key = "order_id".to_owned();
    let args = t.args(
        "c1",
        &[
            "--column",
            "entry_id:text=@id",
            "--column",
            "order_id:bigint=order",
            "--column",
            "amount:double",
            "--column",
            "paid:boolean",
            "--column",
            "meta:jsonb",
            "--column",
            "at:timestamptz",
            "--column",
            "blob:bytea",
            "--column",
            "note:text?",
            "--key",
            "order_id",
        ],
    );
    custom_mapping(&t, args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_mapping_from_a_toml_schema_file_lands_with_the_right_values() {
    let Some(servers) = shared() else { return };
    let mut t = Target::new(&servers.redis, &servers.postgres, "toml");
    t.key = "order_id".to_owned();
    let dir = TempDir::new("schema");
    let file = dir.path().join("orders.toml");
    std::fs::write(
        &file,
        format!(
            r#"table = "{table}"

[[column]]
name = "entry_id"
type = "text"
from = "@id"

[[column]]
name = "order_id"
type = "bigint"
from = "order"
key = true

[[column]]
name = "amount"
type = "double"

[[column]]
name = "paid"
type = "boolean"

[[column]]
name = "meta"
type = "jsonb"

[[column]]
name = "at"
type = "timestamptz"

[[column]]
name = "blob"
type = "bytea"

[[column]]
name = "note"
type = "text"
nullable = true
"#,
            table = t.table
        ),
    )
    .unwrap();
    let args = t.args_without_table("c1", &["--schema", file.to_str().unwrap()]);
    custom_mapping(&t, args).await;
}

#[test]
fn a_schema_file_naming_a_table_and_the_table_flag_is_an_error() {
    let dir = TempDir::new("schema");
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "table = \"orders\"\n[[column]]\nname = \"id\"\ntype = \"text\"\nfrom = \"@id\"\nkey = true\n",
    )
    .unwrap();
    let sqlite = dir.path().join("never.sqlite");
    let done = run_flowgate(
        "schema+table",
        [
            "ingest",
            "--no-progress",
            "--messages",
            "10",
            "--sqlite",
            sqlite.to_str().unwrap(),
            "--schema",
            file.to_str().unwrap(),
            "--table",
            "other",
        ],
        EXIT_TIMEOUT,
    );
    assert!(
        matches!(done.code(), Some(1 | 2)),
        "refused (the spec does not say 1 or 2)\n{done}"
    );
    done.assert_stderr_has("--table");
    assert!(!sqlite.exists(), "nothing ran\n{done}");
}
