//! Edges of `flowgate::limit`.
