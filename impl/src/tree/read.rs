//! Lookups: `get` and `range`.
//!
//! Invariants:
//! - a descent is a loop, not a recursion, and each child must sit exactly one level below its
//!   parent (checked by `resolve`), so it takes at most `DEPTH_MAX` steps whatever the disk holds;
//! - `range` keeps an explicit path (at most `DEPTH_MAX` frames) and stops at `limit` items;
//!   the keys it returns are strictly increasing and within its lower bound, or it fails with
//!   `Corrupt` (so paging by the last key seen always makes progress, even on a bad tree);
//! - readers never change the tree; Mem and Disk nodes read alike.

use std::ops::Bound;
use std::sync::Arc;

use crate::error::{Error, Result};

use super::node::{resolve, Body, Node};
use super::{NodeRef, NodeStore, Tree, DEPTH_MAX};

/// One node of the path of a range scan and the index of the next entry to take in it.
struct Frame {
    node: Arc<Node>,
    index: usize,
}

impl Tree {
    /// `Tree::get`.
    pub(super) fn get_item(&self, store: &dyn NodeStore, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut node = resolve(store, &self.root, None)?;
        for _ in 0..DEPTH_MAX {
            let next = match &node.body {
                Body::Leaf(items) => {
                    let found = items.binary_search(key);
                    return Ok(found.ok().and_then(|at| items.get(at)).map(|i| i.value.to_vec()));
                }
                Body::Internal { level, children } => match children.get(node.child_index(key)) {
                    Some(child) => resolve(store, child.node, Some(level.saturating_sub(1)))?,
                    None => return Err(Error::corrupt(0, "tree descent lost its child")),
                },
            };
            node = next;
        }
        Err(Error::corrupt(0, "tree deeper than DEPTH_MAX"))
    }

    /// `Tree::range`.
    pub(super) fn range_items(
        &self,
        store: &dyn NodeStore,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut path = seek(store, &self.root, lo)?;
        loop {
            if let Some(Frame { node, index }) = path.last() {
                for (key, value) in node.items().skip(*index) {
                    // Keys come out strictly increasing and within `lo`, else the tree is
                    // corrupt (a subtree holds keys outside its parent's separators): a caller
                    // that pages with the last key it saw would otherwise loop for ever.
                    let previous = out.last().map(|(k, _): &(Vec<u8>, Vec<u8>)| k.as_slice());
                    let above_lo = match (previous, lo) {
                        (Some(previous), _) => key > previous,
                        (None, Bound::Included(lo)) => key >= lo,
                        (None, Bound::Excluded(lo)) => key > lo,
                        (None, Bound::Unbounded) => true,
                    };
                    if !above_lo {
                        return Err(Error::corrupt(0, "tree keys out of order across nodes"));
                    }
                    let below_hi = match hi {
                        Bound::Included(hi) => key <= hi,
                        Bound::Excluded(hi) => key < hi,
                        Bound::Unbounded => true,
                    };
                    if !below_hi {
                        return Ok(out);
                    }
                    out.push((key.to_vec(), value.to_vec()));
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if !next_leaf(store, &mut path)? {
                return Ok(out);
            }
        }
    }
}

/// The path to the leaf holding the first key within `lo`, its index pointing at that key.
fn seek(store: &dyn NodeStore, root: &NodeRef, lo: Bound<&[u8]>) -> Result<Vec<Frame>> {
    let mut path: Vec<Frame> = Vec::new();
    let mut node = resolve(store, root, None)?;
    loop {
        let (index, next) = match &node.body {
            Body::Leaf(items) => {
                let index = match lo {
                    Bound::Included(lo) => items.partition_point(|k| k < lo),
                    Bound::Excluded(lo) => items.partition_point(|k| k <= lo),
                    Bound::Unbounded => 0,
                };
                (index, None)
            }
            Body::Internal { level, children } => {
                let index = match lo {
                    Bound::Included(lo) | Bound::Excluded(lo) => node.child_index(lo),
                    Bound::Unbounded => 0,
                };
                let child = children
                    .get(index)
                    .ok_or_else(|| Error::corrupt(0, "tree descent lost its child"))?;
                (index, Some(resolve(store, child.node, Some(level.saturating_sub(1)))?))
            }
        };
        path.push(Frame { node, index });
        match next {
            None => return Ok(path),
            Some(next) if path.len() < DEPTH_MAX => node = next,
            Some(_) => return Err(Error::corrupt(0, "tree deeper than DEPTH_MAX")),
        }
    }
}

/// Moves `path` from its leaf to the first entry of the next leaf; false at the end of the tree.
fn next_leaf(store: &dyn NodeStore, path: &mut Vec<Frame>) -> Result<bool> {
    path.pop();
    // Up to the nearest node with a child after the one taken.
    loop {
        let Some(frame) = path.last_mut() else { return Ok(false) };
        frame.index += 1;
        if frame.index < frame.node.len() {
            break;
        }
        path.pop();
    }
    // Down the leftmost edge of that child.
    loop {
        let Some(Frame { node, index }) = path.last() else { return Ok(false) };
        let Body::Internal { level, children } = &node.body else { return Ok(true) };
        let child =
            children.get(*index).ok_or_else(|| Error::corrupt(0, "tree scan lost its child"))?;
        let child = resolve(store, child.node, Some(level.saturating_sub(1)))?;
        path.push(Frame { node: child, index: 0 });
    }
}
