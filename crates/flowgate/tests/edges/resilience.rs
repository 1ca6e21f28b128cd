//! Edges of `flowgate::resilience`.
