//! The one place that chooses the daemon's synchronization primitives for the protocols a loom
//! model checks: `std::sync`, or `loom::sync` with `--cfg lcfs_loom` (`RUSTFLAGS="--cfg
//! lcfs_loom" cargo test -p lcfs-fuse --release --lib loom`; not `--cfg loom`, under which
//! tokio and hyper change). Today: the slot table's lock (`nodes.rs`).

#[cfg(lcfs_loom)]
pub use loom::sync::{Mutex, MutexGuard};
#[cfg(not(lcfs_loom))]
pub use std::sync::{Mutex, MutexGuard};
