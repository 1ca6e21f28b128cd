//! Edges of `flowgate::pipeline`.
