//! Errors of the [`pipeline`](super) module.

use std::error::Error;
use std::fmt;

/// An item of a [`item_timeout`](super::PipelineExt::item_timeout) stream: no item
/// arrived within the timeout. Transient: the stream goes on, and the next
/// item (or the next timeout) may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(pub(super) ());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no item within the timeout")
    }
}

impl Error for Elapsed {}

/// The last item of an [`idle_timeout`](super::PipelineExt::idle_timeout)
/// stream: upstream was idle for the whole timeout, so the stream ended.
/// Permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleElapsed(pub(super) ());

impl fmt::Display for IdleElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stream idle for longer than the timeout")
    }
}

impl Error for IdleElapsed {}
