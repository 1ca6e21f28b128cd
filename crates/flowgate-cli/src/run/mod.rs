pub mod exec;
pub mod input;
pub mod joblog;
pub mod output;
pub mod summary;
