//! `MemNodeStore`: node blocks kept in a map, for tests, fuzzing and tools.
//!
//! Invariants:
//! - it keeps the sealed bytes it was given and decodes them (`Node::decode`) on every load, so
//!   everything read through it went through the real codec;
//! - block numbers start at 2 (0 and 1 are the superblocks) and are never handed out twice;
//! - a block that was `free`d is gone: loading it is an error, which is how tests catch a tree
//!   that still points to a block it reported as freed.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::types::BlockNo;

use super::{Node, NodeStore, NodeWriter};

/// An in-memory node store and writer.
#[derive(Debug)]
pub struct MemNodeStore {
    blocks: HashMap<BlockNo, Vec<u8>>,
    next: u64,
    loads: Cell<u64>,
    written: Vec<BlockNo>,
}

impl Default for MemNodeStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemNodeStore {
    /// An empty store.
    pub fn new() -> Self {
        MemNodeStore { blocks: HashMap::new(), next: 2, loads: Cell::new(0), written: Vec::new() }
    }

    /// Forgets `block`; returns whether it was there.
    pub fn free(&mut self, block: BlockNo) -> bool {
        self.blocks.remove(&block).is_some()
    }

    /// The bytes of `block`, to inspect or to corrupt.
    pub fn bytes_mut(&mut self, block: BlockNo) -> Option<&mut Vec<u8>> {
        self.blocks.get_mut(&block)
    }

    /// Puts raw bytes at `block` (any content: tests use it to plant corrupt blocks).
    pub fn put(&mut self, block: BlockNo, bytes: Vec<u8>) {
        self.next = self.next.max(block.0.saturating_add(1));
        self.blocks.insert(block, bytes);
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Number of loads so far.
    pub fn loads(&self) -> u64 {
        self.loads.get()
    }

    /// The blocks written since the last call, in write order.
    pub fn take_written(&mut self) -> Vec<BlockNo> {
        std::mem::take(&mut self.written)
    }
}

impl NodeStore for MemNodeStore {
    fn load(&self, block: BlockNo) -> Result<Arc<Node>> {
        self.loads.set(self.loads.get() + 1);
        let bytes = self.blocks.get(&block).ok_or_else(|| {
            Error::corrupt(block.0, "no node block there (freed or never written)")
        })?;
        Ok(Arc::new(Node::decode(bytes, block)?))
    }
}

impl NodeWriter for MemNodeStore {
    fn allocate(&mut self) -> Result<BlockNo> {
        let block = BlockNo(self.next);
        self.next += 1;
        Ok(block)
    }

    fn write(&mut self, block: BlockNo, bytes: &[u8], _node: &Arc<Node>) -> Result<()> {
        self.blocks.insert(block, bytes.to_vec());
        self.written.push(block);
        Ok(())
    }
}
