//! Insert and remove: copy-on-write of the path from the root to one leaf (shadowing).
//!
//! Each update runs in two phases:
//! 1. `descend` reads the path (and, for a remove that collapses the root, the nodes the new root
//!    comes from) through the store. It may fail; nothing has changed yet.
//! 2. `take_path`, the edit of the leaf and `rebuild` cannot fail, so an error leaves the tree as
//!    it was.
//!
//! Invariants:
//! - every node on the path becomes a `NodeRef::Mem` node owned by the modifying layer; a Mem
//!   node held by this tree alone is changed in place, one shared with a clone is copied;
//! - a `NodeRef::Disk` node on the path whose owner is the modifying layer goes to `freed`, once;
//!   a disk node of any other owner is never listed;
//! - a node left empty is dropped from its parent, an overfull one is split in two, a small leaf
//!   may be merged with a sibling, and a root left with one child gives way to that child
//!   (`shrink.rs`); only a root leaf may be empty;
//! - the root level stays below `DEPTH_MAX`: an insert that could split a root at the deepest
//!   level is refused with `NoSpace`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::header::PAYLOAD_SIZE;
use crate::types::{BlockNo, Generation, LayerId};

use super::node::{resolve, Body, Child, Children, Node, INTERNAL_ENTRY_MAX, LEAF_ENTRY_MAX};
use super::shrink::{self, Merge};
use super::{NodePtr, NodeRef, NodeStore, Tree, DEPTH_MAX, KEY_MAX, VALUE_MAX};

/// One node of a descent and the index taken in it (the child, or the item slot of the leaf).
pub(super) struct Step {
    pub node: Arc<Node>,
    pub index: usize,
}

/// A node of the path, taken out of its parent for editing, with the key of the child entry
/// taken out of it (internal nodes).
struct Frame {
    node: Node,
    index: usize,
    child_key: Vec<u8>,
}

/// What a rebuilt node becomes in its parent.
enum Up {
    Gone,
    One(Node),
    Two(Node, Vec<u8>, Node),
}

impl Tree {
    /// `Tree::insert`.
    pub(super) fn insert_item(
        &mut self,
        store: &dyn NodeStore,
        owner: LayerId,
        key: &[u8],
        value: &[u8],
        freed: &mut Vec<BlockNo>,
    ) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        if value.len() > VALUE_MAX {
            return Err(Error::InvalidArgument("tree value longer than VALUE_MAX"));
        }
        let steps = descend(&self.root, store, key)?;
        if let Some(root) = steps.first() {
            let entry_max = if root.node.is_leaf() { LEAF_ENTRY_MAX } else { INTERNAL_ENTRY_MAX };
            let deepest = usize::from(root.node.level()) + 1 >= DEPTH_MAX;
            if deepest && root.node.encoded_size() + entry_max > PAYLOAD_SIZE {
                return Err(Error::NoSpace);
            }
        }
        let mut frames = take_path(&mut self.root, steps, owner, freed);
        let mut old = None;
        if let Some(Frame { node: Node { body: Body::Leaf(items), .. }, index, .. }) =
            frames.last_mut()
        {
            if items.get(*index).is_some_and(|item| item.key == key) {
                old = items.replace_value(*index, value);
            } else {
                items.insert(*index, key, value, ());
            }
        }
        self.root = rebuild(frames, owner, Vec::new(), None, freed);
        Ok(old)
    }

    /// `Tree::remove`.
    pub(super) fn remove_item(
        &mut self,
        store: &dyn NodeStore,
        owner: LayerId,
        key: &[u8],
        freed: &mut Vec<BlockNo>,
    ) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let steps = descend(&self.root, store, key)?;
        let found = steps
            .last()
            .is_some_and(|leaf| leaf.node.items().nth(leaf.index).is_some_and(|(k, _)| k == key));
        if !found {
            return Ok(None);
        }
        let collapse = shrink::collapse_chain(&steps, store)?;
        let merge = shrink::plan_merge(&steps, store)?;
        let mut frames = take_path(&mut self.root, steps, owner, freed);
        let mut old = None;
        if let Some(Frame { node: Node { body: Body::Leaf(items), .. }, index, .. }) =
            frames.last_mut()
        {
            old = items.remove(*index).map(|(_, value, ())| value);
        }
        self.root = rebuild(frames, owner, collapse, merge, freed);
        Ok(old)
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > KEY_MAX {
        return Err(Error::InvalidArgument("tree key longer than KEY_MAX"));
    }
    Ok(())
}

/// Phase 1: the path from `root` to the leaf where `key` is or would be.
fn descend(root: &NodeRef, store: &dyn NodeStore, key: &[u8]) -> Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::new();
    let mut node = resolve(store, root, None)?;
    loop {
        match &node.body {
            Body::Leaf(items) => {
                let index = items.partition_point(|k| k < key);
                steps.push(Step { node, index });
                return Ok(steps);
            }
            Body::Internal { level, children } => {
                let index = node.child_index(key);
                let next = match children.get(index) {
                    Some(child) => resolve(store, child.node, Some(level.saturating_sub(1)))?,
                    None => return Err(Error::corrupt(0, "tree descent lost its child")),
                };
                steps.push(Step { node, index });
                node = next;
            }
        }
        // Levels strictly decrease (checked by `resolve`), so this never fires; it keeps the
        // loop visibly bounded.
        if steps.len() >= DEPTH_MAX {
            return Err(Error::corrupt(0, "tree deeper than DEPTH_MAX"));
        }
    }
}

/// Phase 2: takes the nodes of the path out of the tree as owned, editable nodes.
fn take_path(
    root: &mut NodeRef,
    steps: Vec<Step>,
    owner: LayerId,
    freed: &mut Vec<BlockNo>,
) -> Vec<Frame> {
    // The root is rebuilt before the update returns; until then it holds a placeholder.
    let mut slot = Some(std::mem::replace(root, NodeRef::Disk(NodePtr::NONE)));
    let mut frames = Vec::with_capacity(steps.len());
    for step in steps {
        let Some(origin) = slot.take() else { break };
        let mut node = own(origin, step.node, owner, freed);
        let mut child_key = Vec::new();
        if let Body::Internal { children, .. } = &mut node.body {
            assert!(step.index < children.len(), "path index out of its node");
            if let Some((key, _, child)) = children.remove(step.index) {
                child_key = key;
                slot = Some(child);
            }
        }
        frames.push(Frame { node, index: step.index, child_key });
    }
    frames
}

/// The node `origin` as an owned node of `owner`: a Mem node is taken (copied if a clone shares
/// it); a Disk node is copied from `loaded` (its decoded content) and freed if `owner` owns it.
pub(super) fn own(
    origin: NodeRef,
    loaded: Arc<Node>,
    owner: LayerId,
    freed: &mut Vec<BlockNo>,
) -> Node {
    let mut node = match origin {
        NodeRef::Mem(node) => {
            drop(loaded);
            Arc::unwrap_or_clone(node)
        }
        NodeRef::Disk(at) => {
            if loaded.owner == owner {
                freed.push(at.block);
            }
            Node::clone(&loaded)
        }
    };
    node.owner = owner;
    node.generation = Generation(0);
    node
}

/// Phase 2: puts the edited path back, bottom-up, splitting and dropping nodes as needed; returns
/// the new root.
fn rebuild(
    mut frames: Vec<Frame>,
    owner: LayerId,
    collapse: Vec<Arc<Node>>,
    mut merge: Option<Merge>,
    freed: &mut Vec<BlockNo>,
) -> NodeRef {
    let mut up = match frames.pop() {
        Some(leaf) => settle(leaf.node),
        None => Up::Gone,
    };
    while let Some(Frame { mut node, index, child_key }) = frames.pop() {
        if let Body::Internal { children, .. } = &mut node.body {
            match up {
                Up::One(leaf) if merge.is_some() => {
                    if let Some(merge) = merge.take() {
                        shrink::merge_leaf(children, index, child_key, leaf, merge, owner, freed);
                    }
                }
                Up::Gone => {
                    // A new first child takes the empty first separator.
                    if index == 0 {
                        children.replace_key(0, &[]);
                    }
                }
                Up::One(child) => children.insert_child(index, mem_child(child_key, child)),
                Up::Two(left, key, right) => {
                    children.insert_child(index, mem_child(child_key, left));
                    children.insert_child(index + 1, mem_child(key, right));
                }
            }
        }
        up = settle(node);
    }
    match up {
        Up::Gone => NodeRef::Mem(Arc::new(Node::empty_leaf(owner))),
        Up::One(root) => shrink::collapse_root(root, collapse, owner, freed),
        Up::Two(left, key, right) => {
            let level = left.level() + 1;
            assert!(usize::from(level) < DEPTH_MAX, "root split past DEPTH_MAX");
            let children: Children =
                [mem_child(Vec::new(), left), mem_child(key, right)].into_iter().collect();
            NodeRef::Mem(Arc::new(Node::new(owner, Body::Internal { level, children })))
        }
    }
}

pub(super) fn mem_child(key: Vec<u8>, node: Node) -> Child {
    Child { key, node: NodeRef::Mem(Arc::new(node)) }
}

/// What a node edited by an update becomes: gone if empty, split if it overflows.
fn settle(mut node: Node) -> Up {
    if node.is_empty() {
        Up::Gone
    } else if node.fits() {
        debug_check(&node);
        Up::One(node)
    } else {
        let (key, right) = node.split();
        debug_check(&node);
        debug_check(&right);
        Up::Two(node, key, right)
    }
}

pub(super) fn debug_check(node: &Node) {
    if cfg!(debug_assertions) {
        node.check_invariants();
    }
}
