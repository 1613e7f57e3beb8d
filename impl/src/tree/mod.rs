//! The copy-on-write B-tree: one per layer, plus one for the system (the layer table).
//!
//! The public API below is the contract between the tree and the rest of the engine. The work
//! is in the files of this folder:
//!
//! - `node.rs`: the in-memory node and its on-disk codec (the byte layout is documented there);
//! - `update.rs`: insert and remove, copying the path from the root to a leaf; `shrink.rs`: the
//!   leaf merges and root collapses that keep a shrinking tree small;
//! - `read.rs`: get and range; `write.rs`: write_dirty; `visit.rs`: visit_owned;
//! - `diff.rs`: the differences between two trees; `check.rs`: a full structural check;
//! - `mem_store.rs`: an in-memory `NodeStore`/`NodeWriter` for tests and tools.
//!
//! Invariants:
//! - keys are byte strings ordered bytewise, at most `KEY_MAX` bytes; values at most `VALUE_MAX`;
//! - a `Tree` is a root pointer: cloning it is O(1) and shares every node;
//! - a node in memory (`NodeRef::Mem`) is private to the tree holding it (clones of a dirty
//!   tree share it until one of them changes it, which copies it) and owned by the layer that
//!   modifies that tree; a node on disk (`NodeRef::Disk`) is immutable;
//! - a pointer to a node on disk (`NodePtr`) names its block and the generation that wrote it;
//!   every load checks both (the block's header names the block, the generation matches), so a
//!   block that still holds an older valid node (a lost or misdirected write) is `Corrupt`,
//!   never read as if it were current;
//! - modifying a tree copies the path from the root to the leaf (shadowing), plus, on a remove,
//!   the sibling leaf a small leaf merges with; a replaced on-disk node whose header owner is the
//!   modifying layer is reported in `freed` (its block becomes free after the next durable
//!   checkpoint); a node owned by anyone else is left alone;
//! - an update or a `write_dirty` that fails leaves the tree as it was;
//! - no recursion over on-disk structure: depth is bounded by `DEPTH_MAX`, a deeper or cyclic
//!   tree is `Error::Corrupt`.

use std::ops::Bound;
use std::sync::Arc;

use crate::error::Result;
use crate::types::{BlockNo, Generation, LayerId};

mod check;
mod diff;
mod mem_store;
mod node;
mod packed;
mod read;
mod shrink;
mod update;
mod visit;
mod write;

#[cfg(test)]
mod tests;

pub use check::TreeStats;
pub use diff::DiffItem;
pub use mem_store::MemNodeStore;
pub use node::Node;

/// Longest key, in bytes.
pub const KEY_MAX: usize = 300;
/// Longest value, in bytes.
pub const VALUE_MAX: usize = 1100;
/// Deepest tree a reader accepts.
pub const DEPTH_MAX: usize = 16;

/// A node on disk: its block and the checkpoint generation that wrote it (which the block's
/// header must repeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodePtr {
    pub block: BlockNo,
    pub generation: Generation,
}

impl NodePtr {
    /// No node (block 0 is a superblock slot, never a node): a placeholder until a tree is
    /// written.
    pub const NONE: NodePtr = NodePtr { block: BlockNo(0), generation: Generation(0) };
}

/// Where a child lives: on disk (immutable) or in memory (dirty, not yet written).
#[derive(Clone, Debug)]
pub enum NodeRef {
    Disk(NodePtr),
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

/// A copy-on-write B-tree, named by its root.
#[derive(Clone, Debug)]
pub struct Tree {
    root: NodeRef,
}

impl Tree {
    /// An empty tree (one empty leaf in memory), to be owned by `owner`.
    pub fn new(owner: LayerId) -> Tree {
        Tree { root: NodeRef::Mem(Arc::new(Node::empty_leaf(owner))) }
    }

    /// The tree whose root node is at `root`.
    pub fn from_root(root: NodePtr) -> Tree {
        Tree { root: NodeRef::Disk(root) }
    }

    /// The root if the whole tree is on disk, `None` while anything is dirty.
    pub fn root_block(&self) -> Option<NodePtr> {
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
    pub fn get(&self, store: &dyn NodeStore, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_item(store, key)
    }

    /// Up to `limit` items with keys in `(lo, hi)`, in key order.
    pub fn range(
        &self,
        store: &dyn NodeStore,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range_items(store, lo, hi, limit)
    }

    /// Inserts or replaces `key`, as layer `owner`; returns the old value. Replaced on-disk nodes
    /// owned by `owner` are pushed to `freed`. `InvalidArgument` for a key longer than
    /// `KEY_MAX` or a value longer than `VALUE_MAX`; `NoSpace` if the tree is at `DEPTH_MAX`
    /// levels and the insert could need one more. On an error the tree is unchanged.
    pub fn insert(
        &mut self,
        store: &dyn NodeStore,
        owner: LayerId,
        key: &[u8],
        value: &[u8],
        freed: &mut Vec<BlockNo>,
    ) -> Result<Option<Vec<u8>>> {
        self.insert_item(store, owner, key, value, freed)
    }

    /// Removes `key`, as layer `owner`; returns the old value. Like `insert` for `freed`.
    /// Removing a missing key changes nothing (the tree stays clean if it was).
    pub fn remove(
        &mut self,
        store: &dyn NodeStore,
        owner: LayerId,
        key: &[u8],
        freed: &mut Vec<BlockNo>,
    ) -> Result<Option<Vec<u8>>> {
        self.remove_item(store, owner, key, freed)
    }

    /// Writes every dirty node bottom-up to blocks from `writer`, sealed with `generation`, and
    /// returns the new root. Afterwards the tree is clean (`root_block` is `Some`). On an
    /// error the tree is unchanged (blocks already allocated are the caller's to reclaim).
    pub fn write_dirty(
        &mut self,
        writer: &mut dyn NodeWriter,
        generation: Generation,
    ) -> Result<NodePtr> {
        self.write_nodes(writer, generation)
    }

    /// Visits every node owned by `owner` reachable from this (clean) tree without descending
    /// into nodes of other owners, and every item of the leaves it owns. It reads the header of
    /// each child of an owned node to learn its owner, and never reads below a node of another
    /// owner. Mem nodes of a dirty tree are walked too, but have no block to report.
    pub fn visit_owned(
        &self,
        store: &dyn NodeStore,
        owner: LayerId,
        visit: &mut dyn FnMut(Owned<'_>) -> Result<()>,
    ) -> Result<()> {
        self.visit_owned_nodes(store, owner, visit)
    }
}
