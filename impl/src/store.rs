//! `Store`: the engine's view of the device through its two bounded caches.
//!
//! It serves tree nodes (`NodeStore`) and data blocks (`DataSource`) to readers, and, through
//! `BlockWriter`, hands out blocks and writes them during a checkpoint.
//!
//! Invariants:
//! - every node comes out of `Node::decode`, which verified its header and checksum;
//! - every data block read from the device is checked against the crc32c its extent records
//!   before it is cached or returned, so the data cache holds only verified blocks;
//! - a block written through `BlockWriter` is in the cache with its new content before the
//!   write returns, so no reader can see the block's previous life;
//! - blocks are only allocated here, inside a checkpoint (delayed allocation).

use std::sync::Arc;

use lcfs_device::BlockDevice;

use crate::alloc::Space;
use crate::cache::{CacheStats, Lru};
use crate::ctx::{DataSource, DataSpace};
use crate::error::{Error, Result};
use crate::format::header::BLOCK_SIZE;
use crate::format::records::data_crc;
use crate::tree::{Node, NodeStore, NodeWriter};
use crate::types::BlockNo;

/// The device and its caches.
pub struct Store {
    dev: Arc<dyn BlockDevice>,
    nodes: Lru<Node>,
    data: Lru<Vec<u8>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("blocks", &self.dev.block_count()).finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `dev` caching at most `node_blocks` nodes and `data_blocks` data blocks.
    pub fn new(dev: Arc<dyn BlockDevice>, node_blocks: usize, data_blocks: usize) -> Self {
        Store { dev, nodes: Lru::new(node_blocks), data: Lru::new(data_blocks) }
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.dev
    }

    /// Reads one raw block, bypassing the caches.
    pub fn read_raw(&self, block: BlockNo) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; BLOCK_SIZE];
        self.dev.read(block.0, &mut buf)?;
        Ok(buf)
    }

    /// Forgets cached content of freed blocks.
    pub fn forget(&self, start: BlockNo, len: u64) {
        for b in start.0..start.0.saturating_add(len) {
            self.nodes.forget(b);
            self.data.forget(b);
        }
    }

    /// Counters of the node cache and the data cache.
    pub fn cache_stats(&self) -> (CacheStats, CacheStats) {
        (self.nodes.stats(), self.data.stats())
    }
}

impl NodeStore for Store {
    fn load(&self, block: BlockNo) -> Result<Arc<Node>> {
        if let Some(node) = self.nodes.get(block.0) {
            return Ok(node);
        }
        if block.0 >= self.dev.block_count() {
            return Err(Error::corrupt(block.0, "tree pointer past the end of the device"));
        }
        let buf = self.read_raw(block)?;
        let node = Arc::new(Node::decode(&buf, block)?);
        self.nodes.put(block.0, Arc::clone(&node));
        Ok(node)
    }
}

impl DataSource for Store {
    fn read_block(&self, block: BlockNo, crc: u32, buf: &mut [u8]) -> Result<()> {
        if let Some(data) = self.data.get(block.0) {
            if buf.len() != data.len() {
                return Err(Error::InvalidArgument("data reads take one block"));
            }
            buf.copy_from_slice(&data);
            return Ok(());
        }
        if block.0 >= self.dev.block_count() {
            return Err(Error::corrupt(block.0, "extent points past the end of the device"));
        }
        self.dev.read(block.0, buf)?;
        let found = data_crc(buf);
        if found != crc {
            return Err(Error::corrupt(
                block.0,
                format!("data block checksum {found:#010x}, its extent says {crc:#010x}"),
            ));
        }
        self.data.put(block.0, Arc::new(buf.to_vec()));
        Ok(())
    }
}

/// Allocates and writes blocks during a checkpoint, for tree nodes and file data alike.
pub struct BlockWriter<'a> {
    pub store: &'a Store,
    pub space: &'a mut Space,
    /// Blocks written, for statistics.
    pub written: u64,
    /// Node blocks allocated, in order.
    nodes: Vec<BlockNo>,
}

impl<'a> BlockWriter<'a> {
    /// A writer allocating from `space` and writing through `store`.
    pub fn new(store: &'a Store, space: &'a mut Space) -> Self {
        BlockWriter { store, space, written: 0, nodes: Vec::new() }
    }

    /// Returns every node block this writer allocated to the free map and forgets what the
    /// cache holds for them: for a `Tree::write_dirty` that failed, which leaves its tree as it
    /// was, so that nothing references them.
    pub fn give_back_nodes(&mut self) {
        for block in std::mem::take(&mut self.nodes) {
            self.store.forget(block, 1);
            self.space.unallocate(block.0, 1);
        }
    }
}

impl NodeWriter for BlockWriter<'_> {
    fn allocate(&mut self) -> Result<BlockNo> {
        let block = self.space.allocate(1)?.0;
        self.nodes.push(block);
        Ok(block)
    }

    fn write(&mut self, block: BlockNo, bytes: &[u8], node: &Arc<Node>) -> Result<()> {
        self.store.data.forget(block.0);
        self.store.nodes.put(block.0, Arc::clone(node));
        self.store.dev.write(block.0, bytes)?;
        self.written += 1;
        Ok(())
    }
}

impl DataSpace for BlockWriter<'_> {
    fn allocate(&mut self, want: u64) -> Result<(BlockNo, u64)> {
        self.space.allocate(want)
    }

    fn write_block(&mut self, block: BlockNo, data: &[u8]) -> Result<()> {
        self.write_run(block, &[data])
    }

    fn write_run(&mut self, first: BlockNo, pages: &[&[u8]]) -> Result<()> {
        for (block, page) in (first.0..).zip(pages) {
            self.store.nodes.forget(block);
            self.store.data.put(block, Arc::new(page.to_vec()));
        }
        self.store.dev.write_run(first.0, pages)?;
        self.written += pages.len() as u64;
        Ok(())
    }
}
