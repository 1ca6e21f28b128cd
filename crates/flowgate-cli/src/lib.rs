//! The library behind the `flowgate` command: [`ingest`] runs the headline
//! pipeline of flowgate, [`mapping`] turns messages into rows of the user's
//! table, [`logging`] is the binary's tracing subscriber, [`naive`] is
//! the straightforward loop it is measured against, and [`run`] is
//! `flowgate run`, a GNU-parallel-like job runner.
//!
//! ```text
//!  source ──> map (fields -> row) ──> Batcher ──> sink ──> ack | dead letter
//!  embedded generator | Redis Streams group (sharded on a cluster) | JetStream      SQLite | PostgreSQL
//! ```
//!
//! Running the pipeline from code, on the embedded generator:
//!
//! ```
//! use flowgate_cli::ingest::{self, Control, IngestConfig, SinkConfig, SourceConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("flowgate-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let source = SourceConfig::Embedded { messages: 1000, redeliver_every: 10 };
//! let config = IngestConfig::new(source, SinkConfig::Sqlite(dir.join("doc.sqlite")));
//! let report = ingest::run(config, Control::new()).await?;
//! assert_eq!((report.written, report.duplicates), (1000, 100));
//! assert!(report.is_success());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod ingest;
mod lanes;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod naive;
pub mod run;
pub mod shards;
