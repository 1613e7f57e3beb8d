//! A tree node in memory, and its on-disk codec.
//!
//! Byte layout of a node block (all integers little-endian):
//!
//! ```text
//! offset size field
//!      0   48 common header (format/header.rs): kind TreeLeaf or TreeInternal,
//!             owner = the layer that allocated the node
//!     48    1 level        0 for a leaf; 1..DEPTH_MAX-1 for an internal node (its children's + 1)
//!     49    1 reserved     zero
//!     50    2 count        number of entries (at least 1 in an internal node)
//!     52      entries, packed, keys strictly increasing (bytewise):
//!               leaf entry      key_len u16 | value_len u16 | key | value
//!               internal entry  key_len u16 | child u64 | child_generation u64 | key
//!             key_len <= KEY_MAX, value_len <= VALUE_MAX
//!   rest      zero up to the end of the block
//! ```
//!
//! An internal entry `(key_i, child_i)` says: every key under `child_i` is `>= key_i` and
//! `< key_{i+1}`. The first separator `key_0` is always empty: it stands for the lower bound the
//! node's parent gives it (minus infinity at the root), so the first child takes every key below
//! `key_1`.
//!
//! Invariants:
//! - `decode` accepts exactly what `encode` writes (canonical form: reserved and trailing bytes
//!   are zero), and returns `Error::Corrupt` for anything else; it never panics;
//! - a node that `fits` encodes into one block; `split` turns a node that overflows by at most
//!   one entry into two that fit (the `const` assertions below are the arithmetic of that claim);
//! - a decoded node's children are all `NodeRef::Disk`, each with the generation the child's
//!   header must carry (`resolve` checks it: a stale child is `Corrupt`);
//! - a node decoded from a block carries that block's generation; a node built in memory has
//!   generation 0 until `write_dirty` seals it.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::cursor::{Reader, Writer};
use crate::format::header::{self, BlockKind, Header, BLOCK_SIZE, PAYLOAD_SIZE};
use crate::types::{BlockNo, Generation, LayerId};

pub(crate) use super::packed::{Children, Entry, Items};
use super::{NodePtr, NodeRef, DEPTH_MAX, KEY_MAX, VALUE_MAX};

/// Bytes of the node header inside the payload (level, reserved, count).
const NODE_HEADER_SIZE: usize = 4;
/// Bytes of a leaf entry besides its key and value.
const LEAF_ENTRY_OVERHEAD: usize = 4;
/// Bytes of an internal entry besides its key.
const INTERNAL_ENTRY_OVERHEAD: usize = 18;
/// Bytes available to the entries of one node.
pub(crate) const ENTRIES_CAPACITY: usize = PAYLOAD_SIZE - NODE_HEADER_SIZE;
/// The largest internal entry.
pub(crate) const INTERNAL_ENTRY_MAX: usize = INTERNAL_ENTRY_OVERHEAD + KEY_MAX;
/// The largest leaf entry.
pub(crate) const LEAF_ENTRY_MAX: usize = LEAF_ENTRY_OVERHEAD + KEY_MAX + VALUE_MAX;

// A node that fit before one more entry (at most E bytes) splits into two that fit when 2E <= C:
// cut after the first entry s whose prefix passes T - C; then prefix(s) <= T - C + E <= 2E <= C
// and the rest is < C.
const _: () = assert!(2 * LEAF_ENTRY_MAX <= ENTRIES_CAPACITY);
const _: () = assert!(2 * INTERNAL_ENTRY_MAX <= ENTRIES_CAPACITY);
const _: () = assert!(DEPTH_MAX <= u8::MAX as usize);
const _: () = assert!(KEY_MAX <= VALUE_MAX && VALUE_MAX <= u16::MAX as usize);

/// A key and its value, owned (to build a leaf from: a node holds its items packed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A separator key and the child it leads to, owned (to build an internal node from).
#[derive(Clone, Debug)]
pub(crate) struct Child {
    pub key: Vec<u8>,
    pub node: NodeRef,
}

/// What a node holds: its entries packed in one buffer (`packed.rs`), so decoding or cloning a
/// node costs a fixed number of allocations, not one per key and value.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    Leaf(Items),
    Internal { level: u8, children: Children },
}

/// A decoded tree node (leaf or internal), as the cache holds it.
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) owner: LayerId,
    /// The generation that wrote the node's block (0 for a node not yet written).
    pub(crate) generation: Generation,
    pub(crate) body: Body,
}

impl Node {
    /// A node built in memory (not yet written: generation 0).
    pub(crate) fn new(owner: LayerId, body: Body) -> Node {
        Node { owner, generation: Generation(0), body }
    }

    /// An empty leaf owned by `owner`.
    pub(crate) fn empty_leaf(owner: LayerId) -> Node {
        Node::new(owner, Body::Leaf(Items::new()))
    }

    /// The layer that allocated this node.
    pub fn owner(&self) -> LayerId {
        self.owner
    }

    /// The generation that wrote this node (0 for a node not yet written).
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// 0 for a leaf, the height above the leaves for an internal node.
    pub fn level(&self) -> u8 {
        match &self.body {
            Body::Leaf(_) => 0,
            Body::Internal { level, .. } => *level,
        }
    }

    /// Whether this is a leaf.
    pub fn is_leaf(&self) -> bool {
        matches!(self.body, Body::Leaf(_))
    }

    /// Number of entries (items of a leaf, children of an internal node).
    pub fn len(&self) -> usize {
        match &self.body {
            Body::Leaf(items) => items.len(),
            Body::Internal { children, .. } => children.len(),
        }
    }

    /// Whether the node has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items of a leaf, in key order (none for an internal node).
    pub fn items(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let items = match &self.body {
            Body::Leaf(items) => Some(items),
            Body::Internal { .. } => None,
        };
        items.into_iter().flat_map(Items::iter).map(|i| (i.key, i.value))
    }

    /// The separator keys and children of an internal node (none for a leaf).
    pub fn children(&self) -> impl Iterator<Item = (&[u8], &NodeRef)> {
        let children = match &self.body {
            Body::Leaf(_) => None,
            Body::Internal { children, .. } => Some(children),
        };
        children.into_iter().flat_map(Children::iter).map(|c| (c.key, c.node))
    }

    /// Bytes of the payload this node encodes to.
    pub fn encoded_size(&self) -> usize {
        NODE_HEADER_SIZE + self.entries_size()
    }

    /// Bytes of the entries alone.
    pub(crate) fn entries_size(&self) -> usize {
        match &self.body {
            Body::Leaf(items) => LEAF_ENTRY_OVERHEAD * items.len() + items.bytes_len(),
            Body::Internal { children, .. } => {
                INTERNAL_ENTRY_OVERHEAD * children.len() + children.bytes_len()
            }
        }
    }

    /// Bytes of one leaf entry.
    pub(crate) fn leaf_entry_size(key: &[u8], value: &[u8]) -> usize {
        LEAF_ENTRY_OVERHEAD + key.len() + value.len()
    }

    /// Whether the node fits in one block.
    pub fn fits(&self) -> bool {
        self.encoded_size() <= PAYLOAD_SIZE
    }

    /// Asserts what every node built in memory keeps: it fits a block, keys and values are
    /// within bounds and strictly increasing, an internal node has children, the first of them
    /// under the empty separator, all one level below it. Tests and debug builds call it on
    /// every node an update builds.
    pub fn check_invariants(&self) {
        assert!(self.fits(), "node of {} bytes", self.encoded_size());
        assert!(usize::from(self.level()) < DEPTH_MAX, "node at level {}", self.level());
        match &self.body {
            Body::Leaf(items) => {
                assert!(items.iter().all(|i| i.key.len() <= KEY_MAX && i.value.len() <= VALUE_MAX));
                assert!(items.iter().zip(items.iter().skip(1)).all(|(a, b)| a.key < b.key));
                let sizes: usize = items.iter().map(|i| i.key.len() + i.value.len()).sum();
                assert_eq!(sizes, items.bytes_len(), "packed items");
            }
            Body::Internal { level, children } => {
                assert!(children.first().is_some_and(|c| c.key.is_empty()), "first separator");
                assert!(children.iter().all(|c| c.key.len() <= KEY_MAX && c.value.is_empty()));
                assert!(children.iter().zip(children.iter().skip(1)).all(|(a, b)| a.key < b.key));
                let sizes: usize = children.iter().map(|c| c.key.len()).sum();
                assert_eq!(sizes, children.bytes_len(), "packed children");
                for child in children.iter() {
                    if let NodeRef::Mem(node) = child.node {
                        assert_eq!(node.level() + 1, *level, "child level");
                    }
                }
            }
        }
    }

    /// The index of the child whose subtree holds `key` (internal nodes; 0 for a leaf).
    pub(crate) fn child_index(&self, key: &[u8]) -> usize {
        match &self.body {
            Body::Leaf(_) => 0,
            Body::Internal { children, .. } => {
                children.partition_point(|k| k <= key).saturating_sub(1)
            }
        }
    }

    /// Splits a node that overflows by at most one entry into two halves that fit; `self` keeps
    /// the left half. Returns the first key of the right half and the right half.
    pub(crate) fn split(&mut self) -> (Vec<u8>, Node) {
        let sizes: Vec<usize> = entry_sizes(&self.body).collect();
        let total: usize = sizes.iter().sum();
        let mut best: Option<(usize, usize)> = None; // (imbalance, cut)
        let mut left = 0usize; // bytes of the entries before `cut`
        for (cut, size) in sizes.iter().enumerate() {
            let right = total - left;
            if cut > 0 && left <= ENTRIES_CAPACITY && right <= ENTRIES_CAPACITY {
                let imbalance = left.abs_diff(right);
                if best.is_none_or(|(b, _)| imbalance < b) {
                    best = Some((imbalance, cut));
                }
            }
            left += size;
        }
        let cut = best.map(|(_, cut)| cut);
        assert!(cut.is_some(), "split: no cut of {total} bytes fits two blocks");
        let cut = cut.unwrap_or(1);
        let owner = self.owner;
        let (key, body) = match &mut self.body {
            Body::Leaf(items) => {
                let right = items.split_off(cut);
                (right.first().map(|i| i.key.to_vec()).unwrap_or_default(), Body::Leaf(right))
            }
            Body::Internal { level, children } => {
                // The right half's first separator moves up; its own first one becomes empty.
                let mut right = children.split_off(cut);
                let key = right.replace_key(0, &[]).unwrap_or_default();
                (key, Body::Internal { level: *level, children: right })
            }
        };
        (key, Node::new(owner, body))
    }

    /// Encodes this node as a sealed block numbered `block`, written in `generation`, with the
    /// node's owner in the header. Every child must be on disk (`InvalidArgument` otherwise).
    pub fn encode(&self, block: BlockNo, generation: Generation) -> Result<Vec<u8>> {
        assert!(self.fits(), "encode: a node of {} bytes does not fit", self.encoded_size());
        let count = u16::try_from(self.len());
        assert!(count.is_ok(), "encode: {} entries", self.len());
        let mut buf = vec![0u8; BLOCK_SIZE];
        let mut w = Writer::new(header::payload_mut(&mut buf));
        w.u8(self.level());
        w.u8(0);
        w.u16(count.unwrap_or(0));
        let kind = match &self.body {
            Body::Leaf(items) => {
                for item in items.iter() {
                    assert!(item.key.len() <= KEY_MAX && item.value.len() <= VALUE_MAX);
                    w.u16(item.key.len() as u16);
                    w.u16(item.value.len() as u16);
                    w.bytes(item.key);
                    w.bytes(item.value);
                }
                BlockKind::TreeLeaf
            }
            Body::Internal { children, .. } => {
                for child in children.iter() {
                    let NodeRef::Disk(at) = *child.node else {
                        return Err(Error::InvalidArgument("encode: a child is still in memory"));
                    };
                    assert!(child.key.len() <= KEY_MAX);
                    w.u16(child.key.len() as u16);
                    w.u64(at.block.0);
                    w.u64(at.generation.0);
                    w.bytes(child.key);
                }
                BlockKind::TreeInternal
            }
        };
        let header = Header { kind, block, generation, owner: self.owner };
        header::seal(&mut buf, &header);
        Ok(buf)
    }

    /// Decodes and validates a node read from `block` (header, kind, bounds, key order).
    pub fn decode(bytes: &[u8], block: BlockNo) -> Result<Node> {
        let header = header::verify_any(bytes, block)?;
        let corrupt = |what: String| Error::corrupt(block.0, what);
        let is_leaf = match header.kind {
            BlockKind::TreeLeaf => true,
            BlockKind::TreeInternal => false,
            other => return Err(corrupt(format!("expected a tree node, found a {other:?} block"))),
        };
        let mut r = Reader::new(header::payload(bytes), block.0);
        let level = r.u8()?;
        if r.u8()? != 0 {
            return Err(corrupt("reserved byte of a tree node is not zero".into()));
        }
        let count = usize::from(r.u16()?);
        if is_leaf != (level == 0) {
            return Err(corrupt(format!("level {level} in a {:?} block", header.kind)));
        }
        if usize::from(level) >= DEPTH_MAX {
            return Err(corrupt(format!("level {level} is deeper than {DEPTH_MAX}")));
        }
        let body = if is_leaf {
            Body::Leaf(decode_items(&mut r, count, block)?)
        } else {
            if count == 0 {
                return Err(corrupt("internal node without children".into()));
            }
            Body::Internal { level, children: decode_children(&mut r, count, block)? }
        };
        let rest = r.bytes(r.remaining())?;
        if rest.iter().any(|&b| b != 0) {
            return Err(corrupt("bytes after the last entry are not zero".into()));
        }
        Ok(Node { owner: header.owner, generation: header.generation, body })
    }
}

/// A byte string of at most `max` bytes, prefixed by its u16 length.
fn check_len(len: u16, max: usize, what: &str, block: BlockNo) -> Result<usize> {
    let len = usize::from(len);
    if len > max {
        return Err(Error::corrupt(block.0, format!("{what} of {len} bytes (most is {max})")));
    }
    Ok(len)
}

fn check_order(prev: Option<&[u8]>, key: &[u8], block: BlockNo) -> Result<()> {
    match prev {
        Some(prev) if prev >= key => {
            Err(Error::corrupt(block.0, "keys of a tree node are not strictly increasing"))
        }
        _ => Ok(()),
    }
}

fn decode_items(r: &mut Reader<'_>, count: usize, block: BlockNo) -> Result<Items> {
    let mut items = Items::with_capacity(
        count.min(ENTRIES_CAPACITY / LEAF_ENTRY_OVERHEAD),
        r.remaining().saturating_sub(count.saturating_mul(LEAF_ENTRY_OVERHEAD)),
    );
    for _ in 0..count {
        let key_len = check_len(r.u16()?, KEY_MAX, "key", block)?;
        let value_len = check_len(r.u16()?, VALUE_MAX, "value", block)?;
        let key = r.bytes(key_len)?;
        let value = r.bytes(value_len)?;
        check_order(items.last().map(|i| i.key), key, block)?;
        items.push(key, value, ());
    }
    Ok(items)
}

fn decode_children(r: &mut Reader<'_>, count: usize, block: BlockNo) -> Result<Children> {
    let mut children = Children::with_capacity(
        count.min(ENTRIES_CAPACITY / INTERNAL_ENTRY_OVERHEAD),
        r.remaining().saturating_sub(count.saturating_mul(INTERNAL_ENTRY_OVERHEAD)),
    );
    for _ in 0..count {
        let key_len = check_len(r.u16()?, KEY_MAX, "separator key", block)?;
        let child = BlockNo(r.u64()?);
        let generation = Generation(r.u64()?);
        let key = r.bytes(key_len)?;
        if child == block {
            return Err(Error::corrupt(block.0, "a tree node points to itself"));
        }
        if children.is_empty() && !key.is_empty() {
            return Err(Error::corrupt(block.0, "first separator of an internal node not empty"));
        }
        check_order(children.last().map(|c| c.key), key, block)?;
        children.push(key, &[], NodeRef::Disk(NodePtr { block: child, generation }));
    }
    Ok(children)
}

/// The encoded size of each entry of `body`.
fn entry_sizes(body: &Body) -> Box<dyn Iterator<Item = usize> + '_> {
    match body {
        Body::Leaf(items) => Box::new(items.iter().map(|i| Node::leaf_entry_size(i.key, i.value))),
        Body::Internal { children, .. } => {
            Box::new(children.iter().map(|c| INTERNAL_ENTRY_OVERHEAD + c.key.len()))
        }
    }
}

/// The node `node` refers to, loaded through `store` if it is on disk, checked to be at
/// `level` when given (a child must be exactly one level below its parent: this is what bounds
/// every descent by `DEPTH_MAX` and rules out cycles), and, on disk, to carry the generation
/// its pointer expects (else the block holds another version of the node: a stale block left
/// by a lost or misdirected write).
pub(crate) fn resolve(
    store: &dyn super::NodeStore,
    node: &NodeRef,
    level: Option<u8>,
) -> Result<Arc<Node>> {
    let (loaded, block) = match node {
        NodeRef::Mem(node) => (Arc::clone(node), 0),
        NodeRef::Disk(at) => {
            let loaded = store.load(at.block)?;
            if loaded.generation != at.generation {
                return Err(Error::corrupt(
                    at.block.0,
                    format!(
                        "stale block: holds a node of generation {} where generation {} was \
                         expected (a lost or misdirected write)",
                        loaded.generation.0, at.generation.0
                    ),
                ));
            }
            (loaded, at.block.0)
        }
    };
    match level {
        Some(want) if loaded.level() != want => Err(Error::corrupt(
            block,
            format!("tree node at level {} where level {want} was expected", loaded.level()),
        )),
        _ => Ok(loaded),
    }
}
