//! Edges of `flowgate::broadcast`.
