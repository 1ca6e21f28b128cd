//! Behaviour tests of `flowgate::pipeline`, one module per operator. Anything
//! timed runs under paused tokio time.

mod batch;
mod branch;
mod cancel;
mod common;
mod debounce;
mod dedup;
mod heartbeat;
mod in_flight;
mod par_map;
mod par_map_keyed;
mod progress;
mod rate_limit;
mod rebatch;
mod throttle;
mod timeout;
mod write_batches;
