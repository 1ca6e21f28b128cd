//! The catalogue of series is whole: every series the code records is in
//! `flowgate::metrics::METRICS` and in the table of the module docs, and
//! the other way round; names follow the conventions.

use std::collections::BTreeSet;
use std::path::Path;

use flowgate::metrics::{Kind, METRICS};

/// `"flowgate_…"` string literals in the files under `dir`.
fn literals(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            literals(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("\"flowgate_").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() && piece[name.len()..].starts_with('"') {
                    out.insert(format!("flowgate_{name}"));
                }
            }
        }
    }
}

#[test]
fn every_recorded_series_is_listed_and_documented_and_nothing_else() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut recorded = BTreeSet::new();
    literals(&src, &mut recorded);
    let listed: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(listed.len(), METRICS.len(), "a series is listed twice");

    let docs = std::fs::read_to_string(src.join("metrics.rs")).unwrap();
    let documented: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `flowgate_"))
        .map(|rest| format!("flowgate_{}", &rest[..rest.find('`').unwrap()]))
        .collect();

    assert_eq!(
        recorded, listed,
        "recorded in src (left) vs METRICS (right)"
    );
    assert_eq!(
        documented, listed,
        "the docs table (left) vs METRICS (right)"
    );
}

#[test]
fn names_follow_the_conventions() {
    for m in METRICS {
        assert!(m.name.starts_with("flowgate_"), "{}", m.name);
        assert_eq!(
            m.kind == Kind::Counter,
            m.name.ends_with("_total"),
            "{}: counters, and only counters, end in _total",
            m.name
        );
        if m.name.ends_with("_seconds") {
            assert_eq!(
                (m.kind, m.unit),
                (Kind::Histogram, metrics::Unit::Seconds),
                "{}",
                m.name
            );
        }
        assert!(!m.help.is_empty(), "{} has help", m.name);
        for (label, values) in m.labels {
            assert_ne!(*label, "name", "{}: name is implicit", m.name);
            assert!(!values.is_empty(), "{}: label {label} has values", m.name);
        }
    }
}
