//! `visit_owned`: what a layer owns in its tree, without touching what it shares.
//!
//! A node owned by layer L points only to nodes owned by L or by L's ancestors (ancestors are
//! committed, so their nodes never point back down), so the blocks L owns form a top part of
//! its tree: the walk stops at the first node of another owner and never reads below it.
//!
//! Invariants:
//! - an explicit stack, no recursion; each child must be one level below its parent
//!   (`resolve`), so a corrupt pointer is an error, never a loop or a stack overflow;
//! - nodes are visited parent first, children in key order; a leaf's items follow its block;
//! - Mem nodes (a dirty tree) are walked like owned nodes but have no block to report.

use crate::error::Result;
use crate::types::LayerId;

use super::node::{resolve, Body};
use super::{NodeRef, NodeStore, Owned, Tree};

impl Tree {
    /// `Tree::visit_owned`.
    pub(super) fn visit_owned_nodes(
        &self,
        store: &dyn NodeStore,
        owner: LayerId,
        visit: &mut dyn FnMut(Owned<'_>) -> Result<()>,
    ) -> Result<()> {
        // (node, level it must have); children are pushed in reverse to pop in key order.
        let mut stack: Vec<(NodeRef, Option<u8>)> = vec![(self.root.clone(), None)];
        while let Some((at, level)) = stack.pop() {
            let node = resolve(store, &at, level)?;
            if node.owner != owner {
                continue;
            }
            if let NodeRef::Disk(ptr) = at {
                visit(Owned::Node(ptr.block))?;
            }
            match &node.body {
                Body::Leaf(items) => {
                    for item in items.iter() {
                        visit(Owned::Item { key: item.key, value: item.value })?;
                    }
                }
                Body::Internal { level, children } => {
                    let below = Some(level.saturating_sub(1));
                    stack.extend(children.iter().rev().map(|c| (c.node.clone(), below)));
                }
            }
        }
        Ok(())
    }
}
