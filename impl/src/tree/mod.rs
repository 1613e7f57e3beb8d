//! The copy-on-write B-tree: one per layer, plus one for the system (the layer table).
//!
//! SKELETON: the public API below is the contract between the tree and the rest of the engine.
//! The tree helper replaces the bodies; the signatures stay unless everyone agrees.
//!
//! Invariants:
//! - keys are byte strings ordered bytewise, at most `KEY_MAX` bytes; values at most `VALUE_MAX`;
//! - a `Tree` is a root pointer: cloning it is O(1) and shares every node;
//! - a node in memory (`NodeRef::Mem`) is private to the tree holding it and owned by the layer
//!   that modifies that tree; a node on disk (`NodeRef::Disk`) is immutable;
//! - modifying a tree copies the path from the root to the leaf (shadowing); a replaced on-disk
//!   node whose header owner is the modifying layer is reported in `freed` (its block becomes
//!   free after the next durable checkpoint); a node owned by anyone else is left alone;
//! - no recursion over on-disk structure: depth is bounded by `DEPTH_MAX`, a deeper or cyclic
//!   tree is `Error::Corrupt`.

use std::ops::Bound;
use std::sync::Arc;

use crate::error::Result;
use crate::types::{BlockNo, Generation, LayerId};

/// Longest key, in bytes.
pub const KEY_MAX: usize = 300;
/// Longest value, in bytes.
pub const VALUE_MAX: usize = 1100;
/// Deepest tree a reader accepts.
pub const DEPTH_MAX: usize = 16;

/// A decoded tree node (leaf or internal), as the cache holds it.
#[derive(Debug)]
pub struct Node {
    _private: (),
}

/// Where a child lives: on disk (immutable) or in memory (dirty, not yet written).
#[derive(Clone, Debug)]
pub enum NodeRef {
    Disk(BlockNo),
    Mem(Arc<Node>),
}

/// Reads nodes for the tree: the engine's cached, checksum-verified node source.
pub trait NodeStore {
    /// The decoded node at `block` (checked with `Node::decode`).
    fn load(&self, block: BlockNo) -> Result<Arc<Node>>;
}

/// Allocates and writes blocks for `Tree::write_dirty`.
pub trait NodeWriter {
    /// A free block for a node.
    fn allocate(&mut self) -> Result<BlockNo>;
    /// Writes one sealed block (header included) and may cache `node` under `block`.
    fn write(&mut self, block: BlockNo, bytes: &[u8], node: &Arc<Node>) -> Result<()>;
}

/// What `visit_owned` reports.
#[derive(Debug)]
pub enum Owned<'a> {
    /// A node block owned by the layer.
    Node(BlockNo),
    /// An item in a leaf owned by the layer (the engine frees the data extents it names).
    Item { key: &'a [u8], value: &'a [u8] },
}

impl Node {
    /// Decodes and validates a node read from `block` (header, kind, bounds, key order).
    pub fn decode(_bytes: &[u8], _block: BlockNo) -> Result<Node> {
        todo!("tree helper")
    }

    /// The layer that allocated this node.
    pub fn owner(&self) -> LayerId {
        todo!("tree helper")
    }
}

/// A copy-on-write B-tree, named by its root.
#[derive(Clone, Debug)]
pub struct Tree {
    root: NodeRef,
}

impl Tree {
    /// An empty tree (one empty leaf in memory), to be owned by `owner`.
    pub fn new(_owner: LayerId) -> Tree {
        todo!("tree helper")
    }

    /// The tree whose root node is at `block`.
    pub fn from_root(block: BlockNo) -> Tree {
        Tree { root: NodeRef::Disk(block) }
    }

    /// The root block if the whole tree is on disk, `None` while anything is dirty.
    pub fn root_block(&self) -> Option<BlockNo> {
        match &self.root {
            NodeRef::Disk(b) => Some(*b),
            NodeRef::Mem(_) => None,
        }
    }

    /// Whether anything changed since the last `write_dirty`.
    pub fn is_dirty(&self) -> bool {
        matches!(self.root, NodeRef::Mem(_))
    }

    /// The value under `key`.
    pub fn get(&self, _store: &dyn NodeStore, _key: &[u8]) -> Result<Option<Vec<u8>>> {
        todo!("tree helper")
    }

    /// Up to `limit` items with keys in `(lo, hi)`, in key order.
    pub fn range(
        &self,
        _store: &dyn NodeStore,
        _lo: Bound<&[u8]>,
        _hi: Bound<&[u8]>,
        _limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        todo!("tree helper")
    }

    /// Inserts or replaces `key`, as layer `owner`; returns the old value. Replaced on-disk nodes
    /// owned by `owner` are pushed to `freed`.
    pub fn insert(
        &mut self,
        _store: &dyn NodeStore,
        _owner: LayerId,
        _key: &[u8],
        _value: &[u8],
        _freed: &mut Vec<BlockNo>,
    ) -> Result<Option<Vec<u8>>> {
        todo!("tree helper")
    }

    /// Removes `key`, as layer `owner`; returns the old value. Like `insert` for `freed`.
    pub fn remove(
        &mut self,
        _store: &dyn NodeStore,
        _owner: LayerId,
        _key: &[u8],
        _freed: &mut Vec<BlockNo>,
    ) -> Result<Option<Vec<u8>>> {
        todo!("tree helper")
    }

    /// Writes every dirty node bottom-up to blocks from `writer`, sealed with `generation`, and
    /// returns the new root block. Afterwards the tree is clean (`root_block` is `Some`).
    pub fn write_dirty(
        &mut self,
        _writer: &mut dyn NodeWriter,
        _generation: Generation,
    ) -> Result<BlockNo> {
        todo!("tree helper")
    }

    /// Visits every node owned by `owner` reachable from this (clean) tree without descending
    /// into nodes of other owners, and every item of the leaves it owns.
    pub fn visit_owned(
        &self,
        _store: &dyn NodeStore,
        _owner: LayerId,
        _visit: &mut dyn FnMut(Owned<'_>) -> Result<()>,
    ) -> Result<()> {
        todo!("tree helper")
    }
}
