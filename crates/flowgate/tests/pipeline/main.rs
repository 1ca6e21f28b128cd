//! Behaviour tests of `flowgate::pipeline`, one module per operator. Anything
//! timed runs under paused tokio time.

mod par_map;
mod in_flight;
