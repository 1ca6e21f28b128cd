//! Edges of `flowgate::group`.
