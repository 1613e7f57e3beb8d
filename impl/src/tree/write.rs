//! `write_dirty`: writes the Mem nodes of a tree, children before parents.
//!
//! Invariants:
//! - post-order: a node is encoded only once all its children have block numbers, so the header
//!   and the child pointers of every written block are final;
//! - each written node is sealed with its own block number, the given generation and the node's
//!   owner (the layer that changed it), and handed to the writer with its decoded form (all
//!   children `Disk`), which is what a later `Node::decode` of the block returns;
//! - the walk is a loop over an explicit stack; Mem nodes are built by this module's siblings
//!   with consistent levels, so the stack holds at most `DEPTH_MAX` frames;
//! - the tree changes only when every write succeeded: on an error it is left as it was.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::types::Generation;

use super::node::{Body, Node};
use super::{NodePtr, NodeRef, NodeWriter, Tree, DEPTH_MAX};

/// A Mem node being written and the blocks of its children written so far.
struct Frame {
    node: Arc<Node>,
    blocks: Vec<NodePtr>,
}

impl Tree {
    /// `Tree::write_dirty`.
    pub(super) fn write_nodes(
        &mut self,
        writer: &mut dyn NodeWriter,
        generation: Generation,
    ) -> Result<NodePtr> {
        let root = match &self.root {
            NodeRef::Disk(block) => return Ok(*block),
            NodeRef::Mem(node) => Arc::clone(node),
        };
        let mut stack = vec![Frame { node: root, blocks: Vec::new() }];
        while let Some(top) = stack.last_mut() {
            let next = match &top.node.body {
                Body::Internal { children, .. } => children.get(top.blocks.len()),
                Body::Leaf(_) => None,
            };
            match next.map(|c| c.node) {
                Some(NodeRef::Disk(block)) => top.blocks.push(*block),
                Some(NodeRef::Mem(child)) => {
                    let child = Arc::clone(child);
                    assert!(stack.len() < DEPTH_MAX, "a Mem subtree deeper than DEPTH_MAX");
                    stack.push(Frame { node: child, blocks: Vec::new() });
                }
                None => {
                    let Some(done) = stack.pop() else { continue };
                    let block = write_node(writer, generation, &done.node, done.blocks)?;
                    match stack.last_mut() {
                        Some(parent) => parent.blocks.push(block),
                        None => {
                            self.root = NodeRef::Disk(block);
                            return Ok(block);
                        }
                    }
                }
            }
        }
        // The loop returns when it pops the root; it cannot run out of frames before that.
        Err(Error::InvalidArgument("write_dirty: lost the root"))
    }
}

/// Writes `node`, whose children now live at `blocks`, to a newly allocated block.
fn write_node(
    writer: &mut dyn NodeWriter,
    generation: Generation,
    node: &Node,
    blocks: Vec<NodePtr>,
) -> Result<NodePtr> {
    let body = match &node.body {
        Body::Leaf(items) => Body::Leaf(items.clone()),
        Body::Internal { level, children } => {
            assert_eq!(children.len(), blocks.len(), "write_dirty: a child was not written");
            let children = children.relink(blocks.into_iter().map(NodeRef::Disk));
            Body::Internal { level: *level, children }
        }
    };
    let on_disk = Arc::new(Node { owner: node.owner, generation, body });
    let block = writer.allocate()?;
    let bytes = on_disk.encode(block, generation)?;
    writer.write(block, &bytes, &on_disk)?;
    Ok(NodePtr { block, generation })
}
