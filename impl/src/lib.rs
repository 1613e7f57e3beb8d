//! lcfs: a layer-cloning filesystem engine.
//!
//! One engine formats a block device or an image file and keeps any number of container image
//! layers in it. Each layer has its own copy-on-write B-tree; a new layer is an O(1) clone of a
//! committed parent, and nothing ever walks a chain of parents. Checkpoints are the only path to
//! durability. See `docs/design.md` for the overview and `docs/operations.md` for the contract
//! the engine shares with the executable model (`lcfs-model`).

pub mod alloc;
pub mod cache;
mod changes;
mod checkpoint;
pub mod ctx;
pub mod error;
pub mod format;
mod fs;
pub mod fsck;
pub mod layer;
pub mod store;
pub mod tar;
mod sync;
pub mod ns;
pub mod tree;
pub mod types;

pub use changes::{Change, ChangeKind};
pub use error::{Error, Result};
pub use fs::{
    Fs, GcOptions, GcReport, LayerUsage, LayerView, MkfsOptions, MountOptions, OrphanedLayer,
    UNFINISHED_XATTR,
};
pub use lcfs_device::{BlockDevice, FileDevice, MemDevice};
pub use types::*;
