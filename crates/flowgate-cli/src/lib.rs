//! The library behind the `flowgate` command: [`ingest`] runs the headline
//! pipeline of flowgate, and [`naive`] is the straightforward loop it is
//! measured against.
//!
//! ```text
//!  source ──> par_map (transform) ──> Batcher ──> sink ──> ack
//!  embedded generator | Redis Streams group         SQLite | PostgreSQL
//! ```
#![forbid(unsafe_code)]

pub mod ingest;
pub mod logging;
pub mod mapping;
pub mod naive;
