//! lcfs-model: the executable specification of lcfs layers and inodes.
//!
//! `Model` is what `lcfs::Fs` must be observably equal to. It keeps every layer as plain
//! `BTreeMap`s of inodes, with no I/O and no sharing: a clone of a layer is a deep copy of its
//! parent's tree, so it is obviously correct. Every operation is a pure transition returning its
//! result or an [`Errno`], with the names, arguments and order of checks of
//! `docs/operations.md` (the model is the specification; that page is kept true to it). Time
//! comes from the caller (`now`), so results are deterministic.
//!
//! Files, by concept: `layer.rs` (the layer table and the first checks), `inode.rs` (inodes,
//! getattr, setattr), `namespace.rs` (lookup, creates, link, unlink, rmdir, readdir),
//! `data.rs` (sparse file data, read, write), `xattr.rs`, `rename.rs`, `dump.rs` (canonical
//! layer dumps for comparison, and `check_invariants`).
//!
//! Invariants of the whole model:
//! - layer ids come from a counter starting at 1, inode numbers from one counter starting at 2;
//!   both grow by one per successful create and are never reused; every root is ino 1;
//! - a failed operation changes nothing, counters included;
//! - a committed layer never changes; only committed layers have children.

mod data;
mod dump;
mod errno;
mod inode;
mod layer;
mod namespace;
mod rename;
mod types;
mod xattr;

use std::collections::BTreeMap;

pub use data::{FileData, PAGE_SIZE};
pub use dump::{child_path, Content, InodeDump, LayerDump};
pub use errno::{Errno, Result};
pub use types::*;

/// The state of a whole filesystem: every layer and the two counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    layers: BTreeMap<LayerId, layer::Layer>,
    /// The id the next `create_layer` hands out.
    next_layer: u64,
    /// The number the next create hands out.
    next_ino: u64,
}

impl Model {
    /// An empty filesystem: no layers; the counters at their first values.
    pub fn new() -> Self {
        Model { layers: BTreeMap::new(), next_layer: LayerId::FIRST.0, next_ino: Ino::FIRST.0 }
    }

    /// The inode number the next successful create will hand out.
    pub fn next_ino(&self) -> Ino {
        Ino(self.next_ino)
    }

    /// The layer id the next successful `create_layer` will hand out.
    pub fn next_layer_id(&self) -> LayerId {
        LayerId(self.next_layer)
    }
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}
