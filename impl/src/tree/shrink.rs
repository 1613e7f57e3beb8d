//! How a remove keeps the tree small: a small leaf merges into a sibling, and a root left with a
//! single child gives way to it.
//!
//! Both are planned in phase 1 of a remove (`plan_merge`, `collapse_chain`: they read the
//! sibling or the chain of single children through the store and may fail) and applied in
//! phase 2 (`merge_leaf`, `collapse_root`: they cannot fail). See `update.rs` for the phases.
//!
//! Invariants:
//! - a leaf merges only when it is below a quarter of a block and the merged leaf stays below
//!   three quarters, so a merge never overflows and an insert right after it does not split;
//! - a merged or collapsed-into node from disk is copied like any node on the path: it becomes
//!   a Mem node of the modifying layer, and its block is freed if that layer owns it;
//! - the first separator of an internal node stays empty.
//!
//! Nodes other than leaves are never merged: an internal node may stay underfull (with one
//! child, even) until it empties. Depth only grows when a root splits, which takes a root full
//! of children, so it stays logarithmic in the number of inserts.

use std::sync::Arc;

use crate::error::Result;
use crate::types::{BlockNo, LayerId};

use super::node::{resolve, Body, Children, Node, ENTRIES_CAPACITY};
use super::update::{debug_check, mem_child, own, Step};
use super::{NodeRef, NodeStore};

/// A leaf below this many bytes of entries looks for a sibling to merge with.
const MERGE_BELOW: usize = ENTRIES_CAPACITY / 4;
/// A merged leaf holds at most this many bytes of entries.
const MERGE_MAX: usize = ENTRIES_CAPACITY * 3 / 4;

/// A leaf merge planned in phase 1.
pub(super) struct Merge {
    /// Whether the sibling is right of the path's leaf (else left).
    right: bool,
    /// The sibling's content.
    node: Arc<Node>,
}

/// Phase 1 of a remove: the sibling the path's leaf will merge with, if the removal leaves it
/// small (but not empty) and the two fit well in one leaf.
pub(super) fn plan_merge(steps: &[Step], store: &dyn NodeStore) -> Result<Option<Merge>> {
    let [.., parent, leaf] = steps else { return Ok(None) };
    let Some((key, value)) = leaf.node.items().nth(leaf.index) else { return Ok(None) };
    let left_after = leaf.node.entries_size().saturating_sub(Node::leaf_entry_size(key, value));
    if leaf.node.len() <= 1 || left_after >= MERGE_BELOW {
        return Ok(None);
    }
    let Body::Internal { children, .. } = &parent.node.body else { return Ok(None) };
    let (sibling, right) = if parent.index + 1 < children.len() {
        (parent.index + 1, true)
    } else if parent.index > 0 {
        (parent.index - 1, false)
    } else {
        return Ok(None);
    };
    let Some(sibling) = children.get(sibling) else { return Ok(None) };
    let node = resolve(store, sibling.node, Some(0))?;
    if left_after + node.entries_size() > MERGE_MAX {
        return Ok(None);
    }
    Ok(Some(Merge { right, node }))
}

/// Phase 2: merges the rebuilt `leaf`, taken out of `children` at `index` under `child_key`,
/// with the sibling `merge` planned, and puts the merged leaf back in their place.
pub(super) fn merge_leaf(
    children: &mut Children,
    index: usize,
    child_key: Vec<u8>,
    leaf: Node,
    merge: Merge,
    owner: LayerId,
    freed: &mut Vec<BlockNo>,
) {
    // The path's leaf is out of `children`, so a right sibling now sits at `index`.
    let at = if merge.right { index } else { index.saturating_sub(1) };
    assert!(at < children.len() && (merge.right || index > 0), "merge sibling out of its node");
    let Some((sibling_key, _, sibling)) = children.remove(at) else { return };
    let sibling_node = own(sibling, merge.node, owner, freed);
    let (key, mut merged, second) = if merge.right {
        (child_key, leaf, sibling_node)
    } else {
        (sibling_key, sibling_node, leaf)
    };
    if let (Body::Leaf(items), Body::Leaf(more)) = (&mut merged.body, second.body) {
        items.append(more);
    }
    merged.owner = owner;
    debug_check(&merged);
    children.insert_child(at, mem_child(key, merged));
}

/// Phase 1 of a remove: if removing the key leaves the root with a single child, the nodes from
/// that child down while each has a single child; the last one becomes the new root.
pub(super) fn collapse_chain(steps: &[Step], store: &dyn NodeStore) -> Result<Vec<Arc<Node>>> {
    // The leaf empties if it holds only the key; a node above empties if its child on the path
    // empties and it has no other child: count those from the bottom.
    let empties = steps.iter().rev().take_while(|step| step.node.len() == 1).count();
    // The root loses a child (and keeps the others) if everything below it on the path goes.
    let root_loses_child = empties + 1 == steps.len();
    let Some(root) = steps.first() else { return Ok(Vec::new()) };
    if !root_loses_child || root.node.len() != 2 {
        return Ok(Vec::new());
    }
    let Body::Internal { level, children } = &root.node.body else { return Ok(Vec::new()) };
    let Some(sibling) = children.get(1 - root.index.min(1)) else { return Ok(Vec::new()) };
    let mut chain = Vec::new();
    let mut at = sibling.node.clone();
    let mut want = level.saturating_sub(1);
    loop {
        let node = resolve(store, &at, Some(want))?;
        chain.push(Arc::clone(&node));
        match &node.body {
            Body::Internal { children, .. } if children.len() == 1 && want > 0 => {
                at = children.first().map(|c| c.node.clone()).unwrap_or(at);
                want -= 1;
            }
            _ => return Ok(chain),
        }
    }
}

/// Phase 2: the new root when the rebuilt root is `root`. While it is an internal node with a
/// single child, that child takes its place: a Mem child as it is, a Disk child copied from its
/// content preloaded in `chain`.
pub(super) fn collapse_root(
    mut root: Node,
    chain: Vec<Arc<Node>>,
    owner: LayerId,
    freed: &mut Vec<BlockNo>,
) -> NodeRef {
    let mut chain = chain.into_iter();
    loop {
        let only = match &mut root.body {
            Body::Internal { children, .. } if children.len() == 1 => children.pop(),
            _ => None,
        };
        let Some((only_key, _, only)) = only else { break };
        let loaded = chain.next();
        root = match (only, loaded) {
            (NodeRef::Mem(node), loaded) => {
                drop(loaded);
                let mut node = Arc::unwrap_or_clone(node);
                node.owner = owner;
                node
            }
            (origin @ NodeRef::Disk(_), Some(loaded)) => own(origin, loaded, owner, freed),
            (origin @ NodeRef::Disk(_), None) => {
                // Nothing preloaded: keep this root with its single child.
                if let Body::Internal { children, .. } = &mut root.body {
                    children.push(&only_key, &[], origin);
                }
                break;
            }
        };
    }
    NodeRef::Mem(Arc::new(root))
}
