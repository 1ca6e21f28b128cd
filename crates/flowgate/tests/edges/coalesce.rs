//! Edges of `flowgate::coalesce`.
