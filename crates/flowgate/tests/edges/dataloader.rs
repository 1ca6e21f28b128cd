//! Edges of `flowgate::dataloader`.
