//! `flowgate run` (temporary module file for the exec/output branch; the
//! lead replaces it with the dispatcher at merge).

pub mod exec;
pub mod output;
