//! Edges of `flowgate::batch`.
