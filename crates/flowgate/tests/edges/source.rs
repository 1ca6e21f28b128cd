//! Edges of `flowgate::source`.
