//! `LayerCtx`: what a namespace operation (impl/src/ns) may touch of one layer.
//!
//! The engine core (`fs.rs`) holds the lock, resolves the layer, checks that it exists and, for
//! modifying operations, that it is writable (steps 1 and 2 of the order of checks in
//! `docs/operations.md`), then hands the operation this context.
//!
//! Invariants:
//! - `tree` is the layer's own tree; modifications go through `Tree::insert`/`remove` with
//!   `owner == layer`, and the node blocks they release go to `freed_nodes`;
//! - data blocks the layer owned and no longer references go to `freed_extents`; blocks owned by
//!   another layer are never listed there;
//! - nothing here writes to the device: data stays in `pages` until the checkpoint flushes it.

use crate::error::Result;
use crate::ns::DirtyPages;
use crate::tree::{NodeStore, Tree};
use crate::types::{BlockNo, LayerId};

/// Reads data blocks (through the engine's bounded data cache).
pub trait DataSource {
    /// Reads data block `block` into `buf` (one block), whose crc32c its extent records as `crc`
    /// (`format::records::data_crc`). A block read from the device that does not match is
    /// `Error::Corrupt`, and `buf` must not be used.
    fn read_block(&self, block: BlockNo, crc: u32, buf: &mut [u8]) -> Result<()>;
}

/// Where the checkpoint puts file data.
pub trait DataSpace {
    /// Allocates between 1 and `want` contiguous free blocks owned by the current layer;
    /// returns the first and the count. `Error::NoSpace` when nothing is free.
    fn allocate(&mut self, want: u64) -> Result<(BlockNo, u64)>;
    /// Writes one data block.
    fn write_block(&mut self, block: BlockNo, data: &[u8]) -> Result<()>;
    /// Writes data blocks `first`, `first + 1`, ... (the same as one `write_block` each, which
    /// this default does; a store may hand the device the run as one request).
    fn write_run(&mut self, first: BlockNo, pages: &[&[u8]]) -> Result<()> {
        for (block, page) in (first.0..).zip(pages) {
            self.write_block(BlockNo(block), page)?;
        }
        Ok(())
    }
}

/// One layer, opened for a namespace operation.
pub struct LayerCtx<'a> {
    /// The layer being read or changed.
    pub layer: LayerId,
    /// The layer's tree.
    pub tree: &'a mut Tree,
    /// Source of tree nodes.
    pub store: &'a dyn NodeStore,
    /// Source of data blocks.
    pub data: &'a dyn DataSource,
    /// The layer's file data not yet written.
    pub pages: &'a mut DirtyPages,
    /// Node blocks this layer owned that the tree no longer references.
    pub freed_nodes: &'a mut Vec<BlockNo>,
    /// Data extents `(first block, count)` this layer owned that nothing references any more.
    pub freed_extents: &'a mut Vec<(BlockNo, u64)>,
    /// The filesystem-wide inode counter (the next number to hand out).
    pub next_ino: &'a mut u64,
}
