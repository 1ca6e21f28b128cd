//! Edges of `flowgate::idempotency`.
