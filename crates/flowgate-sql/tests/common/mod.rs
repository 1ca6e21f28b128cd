//! What the test files of flowgate-sql share: the two sinks behind one trait,
//! so that a scenario both must pass is written once, and temp directories.
#![allow(dead_code)] // each test file uses its own part

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowgate::batch::{Batcher, BatcherBuilder};
use flowgate_sql::{PostgresSink, RowOutcome, SinkError, SqliteSink, Value, Written};

/// The writes both sinks have.
pub(crate) trait Sink<T>: Clone + Send + Sync + 'static {
    fn write(&self, rows: Vec<T>) -> impl Future<Output = Result<Vec<Written>, SinkError>> + Send;
    fn write_each(&self, rows: Vec<T>) -> impl Future<Output = Result<Vec<RowOutcome>, SinkError>>;
    fn write_values(
        &self,
        rows: Arc<[Vec<Value>]>,
    ) -> impl Future<Output = Result<Vec<RowOutcome>, SinkError>>;
}

impl<T: Send + Sync + 'static> Sink<T> for SqliteSink<T> {
    fn write(&self, rows: Vec<T>) -> impl Future<Output = Result<Vec<Written>, SinkError>> + Send {
        SqliteSink::write(self, rows)
    }
    fn write_each(&self, rows: Vec<T>) -> impl Future<Output = Result<Vec<RowOutcome>, SinkError>> {
        SqliteSink::write_each(self, rows)
    }
    fn write_values(
        &self,
        rows: Arc<[Vec<Value>]>,
    ) -> impl Future<Output = Result<Vec<RowOutcome>, SinkError>> {
        SqliteSink::write_values(self, rows)
    }
}

impl<T: Send + Sync + 'static> Sink<T> for PostgresSink<T> {
    fn write(&self, rows: Vec<T>) -> impl Future<Output = Result<Vec<Written>, SinkError>> + Send {
        PostgresSink::write(self, rows)
    }
    fn write_each(&self, rows: Vec<T>) -> impl Future<Output = Result<Vec<RowOutcome>, SinkError>> {
        PostgresSink::write_each(self, rows)
    }
    fn write_values(
        &self,
        rows: Arc<[Vec<Value>]>,
    ) -> impl Future<Output = Result<Vec<RowOutcome>, SinkError>> {
        PostgresSink::write_values(self, rows)
    }
}

/// A batcher whose flush is `sink.write`.
pub(crate) fn batcher_into<T: Send + Sync + 'static>(
    sink: &impl Sink<T>,
    builder: BatcherBuilder<T>,
) -> Batcher<T, Written, SinkError> {
    let writer = sink.clone();
    builder
        .build(move |rows: Vec<T>| {
            let sink = writer.clone();
            async move { sink.write(rows).await }
        })
        .unwrap()
}

/// A fresh directory for one test's database files.
pub(crate) fn temp_dir(test: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "flowgate-sql-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An outcome as a comparable word, a rejection by `reason`.
pub(crate) fn kind_by(outcome: &RowOutcome, reason: impl Fn(&SinkError) -> String) -> String {
    match outcome {
        RowOutcome::Inserted => "inserted".to_owned(),
        RowOutcome::Duplicate => "duplicate".to_owned(),
        RowOutcome::Rejected(err) => format!("rejected: {}", reason(err)),
    }
}

/// Writes each of `batches` with `each.write_each` and, encoded with
/// `encode`, with `values.write_values`, and asserts that both report the
/// same outcomes (compared by `kind`); that writing the same rows again
/// stores nothing twice; and that the sink keeps no reference to the rows.
pub(crate) async fn write_values_is_write_each<T: Clone>(
    each: &impl Sink<T>,
    values: &impl Sink<T>,
    batches: Vec<Vec<T>>,
    encode: impl Fn(&T) -> Vec<Value>,
    kind: impl Fn(&RowOutcome) -> String,
) {
    for batch in batches {
        let rows: Arc<[Vec<Value>]> = batch.iter().map(&encode).collect::<Vec<_>>().into();
        let from_each: Vec<String> = each
            .write_each(batch.clone())
            .await
            .unwrap()
            .iter()
            .map(&kind)
            .collect();
        let from_values: Vec<String> = values
            .write_values(Arc::clone(&rows))
            .await
            .unwrap()
            .iter()
            .map(&kind)
            .collect();
        assert_eq!(from_values, from_each);
        // A retry with the same Arc: every stored row is now a duplicate.
        let again: Vec<String> = values
            .write_values(Arc::clone(&rows))
            .await
            .unwrap()
            .iter()
            .map(&kind)
            .collect();
        let expected: Vec<String> = from_each
            .iter()
            .map(|k| match k.as_str() {
                "inserted" => "duplicate".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        assert_eq!(again, expected, "a retry stores nothing twice");
        assert_eq!(Arc::strong_count(&rows), 1, "the sink keeps no reference");
    }
}
