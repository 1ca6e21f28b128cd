//! The ingest pipeline's spans: one `batch` span per written batch (its rows
//! and, once acked, its outcome and counts), with the sink's `write` and the
//! source's `ack` under it, so a slow ack is traced from the batch to the
//! sink and back. In-process, on the embedded source and SQLite.

use std::io::Write;
use std::sync::{Arc, Mutex};

use flowgate_cli::ingest::{self, Control, IngestConfig, SinkConfig, SourceConfig};
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_batch_has_a_span_with_its_write_and_its_ack_under_it() {
    let dir = std::env::temp_dir().join(format!("flowgate-spans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let report = tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let source = SourceConfig::Embedded {
                messages: 100,
                redeliver_every: 0,
            };
            let mut config =
                IngestConfig::new(source, SinkConfig::Sqlite(dir.join("spans.sqlite")));
            config.batch_size = 50;
            config.progress = false;
            ingest::run(config, Control::new()).await.unwrap()
        })
    });
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(report.written, 100);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let closes = |pattern: &str| {
        text.lines()
            .filter(|l| l.contains(pattern) && l.contains("close"))
            .count()
    };
    assert_eq!(
        closes(
            "batch{rows=50 misfits=0 outcome=\"acked\" written=50 duplicates=0 dead_lettered=0}: flowgate_cli::ingest: close"
        ),
        2,
        "two batch spans, closed once acked, with their counts:\n{text}"
    );
    assert_eq!(
        closes("}:write: flowgate_cli::ingest: close"),
        2,
        "a write span in each:\n{text}"
    );
    assert_eq!(
        closes("}:ack: flowgate_cli::ingest: close"),
        2,
        "an ack span in each:\n{text}"
    );
}
