//! Tests of the namespace operations, against the real tree over `MemNodeStore` and an
//! in-memory data device.
//!
//! Method: a small `Fixture` plays the engine core (layers, checkpoints, clones) so the
//! operations run exactly as the core will run them; after each checkpoint it frees what the
//! layer reported (nodes and data extents), and the freeing asserts that the block was the
//! layer's own and not freed twice, so a wrong free shows up as a failed read later.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod atomic;
mod cow;
mod data;
mod namespace;
mod random;
mod rename;
mod support;
