//! Every public constructor, builder and operator of `flowgate`, walked with
//! zero, one and maximum values (sizes up to `usize::MAX`, durations up to
//! `Duration::MAX`): each is either refused as its docs say (a panic named in
//! its `# Panics` section, or a builder's typed error) or behaves as its docs
//! say. Nothing panics where the docs do not say it does.
//!
//! Anything timed runs under paused tokio time.

mod batch;
mod broadcast;
mod coalesce;
mod dataloader;
mod group;
mod idempotency;
mod limit;
mod pipeline;
mod resilience;
mod source;
