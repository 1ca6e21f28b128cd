//! Behaviour tests of `flowgate::resilience` and its pipeline stages. Anything
//! timed runs under paused tokio time.

mod adaptive;
mod backoff;
mod breaker;
mod guard;
mod pause;
mod retry;
mod stages;
#[cfg(feature = "tower")]
mod tower;
