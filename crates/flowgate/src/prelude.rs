//! The extension traits, for a glob import: `use flowgate::prelude::*;`.
//!
//! Brings the [`PipelineExt`](crate::pipeline::PipelineExt) stream operators
//! into scope without naming them.

pub use crate::pipeline::PipelineExt as _;
