pub mod input;
pub mod joblog;
pub mod summary;
