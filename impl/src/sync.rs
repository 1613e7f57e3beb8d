//! The one place that chooses the engine's synchronization primitives: `std::sync`, or
//! `loom::sync` when built with `--cfg loom`, so that the loom models (`cargo test -p lcfs
//! --release loom` with `RUSTFLAGS="--cfg loom"`) explore every interleaving of the real code.
//!
//! Invariants:
//! - every lock the engine's concurrency protocol relies on comes from here (the engine lock
//!   around `State` in `fs`, the lock of each `cache::Lru`); a lock taken from `std::sync`
//!   directly would be invisible to loom;
//! - `Arc` stays `std::sync::Arc` in both builds: reference counts are not part of any
//!   protocol here, and nodes cross the API as `std::sync::Arc`.

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
