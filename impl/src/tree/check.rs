//! `Tree::check`: a full structural check of one tree, for fsck, tests and debug builds.
//!
//! What a valid tree satisfies (what this module verifies, node by node):
//! - every child sits exactly one level below its parent; the root is below `DEPTH_MAX`;
//! - every key of a node lies within the bounds its ancestors' separators give it
//!   (`>= key_i` for a child `i > 0`, `< key_{i+1}`), and keys are strictly increasing;
//! - the first separator of an internal node is empty;
//! - only the root may be an empty leaf; internal nodes have at least one child;
//! - every node fits in one block, and its keys and values are within `KEY_MAX`/`VALUE_MAX`.
//!
//! An explicit stack, no recursion: a corrupt tree gives an error, never a stack overflow.

use crate::error::{Error, Result};

use super::node::{resolve, Body};
use super::{Node, NodeRef, NodeStore, Tree, DEPTH_MAX, KEY_MAX, VALUE_MAX};
use crate::types::BlockNo;

/// What `Tree::check` counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Nodes, on disk and in memory.
    pub nodes: u64,
    /// Items in the leaves.
    pub items: u64,
    /// Levels (1 for a tree that is a single leaf).
    pub depth: usize,
}

/// A node to check: where it is, the level it must have, and the bounds of its keys.
struct Pending {
    node: NodeRef,
    level: Option<u8>,
    lower: Option<Vec<u8>>,
    upper: Option<Vec<u8>>,
}

impl Tree {
    /// Checks the whole tree (see the module doc) and counts its nodes and items.
    pub fn check(&self, store: &dyn NodeStore) -> Result<TreeStats> {
        self.check_nodes(store, &mut |_, _| Ok(true))
    }

    /// `check`, calling `visit` on each node on disk before checking it; when `visit` returns
    /// false the node and its subtree are skipped (not checked, not counted). fsck uses it to
    /// walk a subtree that several layers share only once, and to check owners on the way.
    pub fn check_nodes(
        &self,
        store: &dyn NodeStore,
        visit: &mut dyn FnMut(BlockNo, &Node) -> Result<bool>,
    ) -> Result<TreeStats> {
        let mut stats = TreeStats::default();
        let root = Pending { node: self.root.clone(), level: None, lower: None, upper: None };
        let mut stack = vec![root];
        while let Some(Pending { node: at, level, lower, upper }) = stack.pop() {
            let node = resolve(store, &at, level)?;
            let block = match at {
                NodeRef::Disk(ptr) => {
                    if !visit(ptr.block, &node)? {
                        continue;
                    }
                    ptr.block.0
                }
                NodeRef::Mem(_) => 0,
            };
            let bad = |what: &str| Err(Error::corrupt(block, format!("tree check: {what}")));
            stats.nodes += 1;
            stats.depth = stats.depth.max(usize::from(node.level()) + 1);
            if stats.depth > DEPTH_MAX {
                return bad("deeper than DEPTH_MAX");
            }
            if !node.fits() {
                return bad("node larger than a block");
            }
            if node.is_empty() && level.is_some() {
                return bad("empty node below the root");
            }
            let in_bounds = |key: &[u8]| {
                lower.as_deref().is_none_or(|lo| lo <= key)
                    && upper.as_deref().is_none_or(|hi| key < hi)
            };
            match &node.body {
                Body::Leaf(items) => {
                    let mut prev: Option<&[u8]> = None;
                    for item in items.iter() {
                        if item.key.len() > KEY_MAX || item.value.len() > VALUE_MAX {
                            return bad("oversize key or value");
                        }
                        if !in_bounds(item.key) || prev.is_some_and(|p| p >= item.key) {
                            return bad("key out of order or outside its parent's bounds");
                        }
                        prev = Some(item.key);
                        stats.items += 1;
                    }
                }
                Body::Internal { level, children } => {
                    if children.is_empty() {
                        return bad("internal node without children");
                    }
                    let keys: Vec<&[u8]> = children.iter().map(|c| c.key).collect();
                    if keys.first().is_some_and(|k| !k.is_empty()) {
                        return bad("first separator not empty");
                    }
                    if keys.windows(2).any(|w| w.first() >= w.get(1)) {
                        return bad("separators out of order");
                    }
                    if keys.iter().skip(1).any(|k| !in_bounds(k)) {
                        return bad("separator outside its parent's bounds");
                    }
                    for (i, child) in children.iter().enumerate() {
                        let child_lower =
                            if i == 0 { lower.clone() } else { Some(child.key.to_vec()) };
                        let child_upper = match children.get(i + 1) {
                            Some(next) => Some(next.key.to_vec()),
                            None => upper.clone(),
                        };
                        stack.push(Pending {
                            node: child.node.clone(),
                            level: Some(level.saturating_sub(1)),
                            lower: child_lower,
                            upper: child_upper,
                        });
                    }
                }
            }
        }
        Ok(stats)
    }
}
