//! `diff`: the items added, removed and changed between two trees, skipping what they share.
//!
//! Both trees are walked in key order, each by a cursor that stands either on an item of a leaf
//! or on a child pointer of an internal node. When both cursors stand on the same pointer (the
//! same block, or the same Mem node), the subtree is identical on both sides and both cursors
//! step over it unread (with the run of shared children that follows it in both nodes, in one
//! tight loop: what the general loop would do one step at a time). Otherwise the cursor whose position starts lower in key order (by the
//! lower bound its parent gives it) goes down one level; two items are compared by key as in a
//! merge. So the nodes read grow with the change, not with the trees, when one tree is a
//! modified clone of the other.
//!
//! Invariants:
//! - a cursor has consumed every item below its position, and everything at or after it is
//!   `>=` the lower bound of its position; stepping over a shared subtree keeps both true;
//! - explicit stacks of at most `DEPTH_MAX` frames; children are one level below their parent
//!   (`resolve`), so a corrupt pointer is an error, never a loop.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};

use super::node::{resolve, Body, Entry, Node};
use super::{NodeRef, NodeStore, Tree, DEPTH_MAX};

/// One difference between two trees, as `Tree::diff` reports it.
#[derive(Debug, PartialEq, Eq)]
pub enum DiffItem<'a> {
    /// A key only the other tree has.
    Added { key: &'a [u8], value: &'a [u8] },
    /// A key only this tree has.
    Removed { key: &'a [u8], value: &'a [u8] },
    /// A key both trees have, with different values.
    Changed { key: &'a [u8], old: &'a [u8], new: &'a [u8] },
}

/// A node on a cursor's path, the index of its next entry, and the lower bound of its keys.
struct Frame {
    node: Arc<Node>,
    index: usize,
    lower: Option<Vec<u8>>,
}

/// Where a cursor stands.
enum Head<'a> {
    End,
    Item(Entry<'a, ()>),
    Child { node: &'a NodeRef, level: u8, lower: Option<&'a [u8]> },
}

/// A walk of one tree in key order.
struct Cursor<'s> {
    store: &'s dyn NodeStore,
    path: Vec<Frame>,
}

impl<'s> Cursor<'s> {
    fn new(store: &'s dyn NodeStore, root: &NodeRef) -> Result<Self> {
        let node = resolve(store, root, None)?;
        let mut cursor = Cursor { store, path: vec![Frame { node, index: 0, lower: None }] };
        cursor.settle();
        Ok(cursor)
    }

    fn head(&self) -> Head<'_> {
        let Some(frame) = self.path.last() else { return Head::End };
        match &frame.node.body {
            Body::Leaf(items) => items.get(frame.index).map_or(Head::End, Head::Item),
            Body::Internal { level, children } => match children.get(frame.index) {
                None => Head::End,
                Some(child) => {
                    let lower =
                        if frame.index == 0 { frame.lower.as_deref() } else { Some(child.key) };
                    Head::Child { node: child.node, level: level.saturating_sub(1), lower }
                }
            },
        }
    }

    /// Steps over the item or subtree at the head.
    fn advance(&mut self) {
        if let Some(frame) = self.path.last_mut() {
            frame.index += 1;
        }
        self.settle();
    }

    /// Pops finished nodes, so the head is an entry or the end.
    fn settle(&mut self) {
        while let Some(frame) = self.path.last() {
            if frame.index < frame.node.len() {
                return;
            }
            self.path.pop();
            if let Some(parent) = self.path.last_mut() {
                parent.index += 1;
            }
        }
    }

    /// Goes down into the child at the head (no-op on an item or the end).
    fn descend(&mut self) -> Result<()> {
        let (node, level, lower) = match self.head() {
            Head::Child { node, level, lower } => (node.clone(), level, lower.map(<[u8]>::to_vec)),
            Head::End | Head::Item(_) => return Ok(()),
        };
        if self.path.len() >= DEPTH_MAX {
            return Err(Error::corrupt(0, "tree deeper than DEPTH_MAX"));
        }
        let node = resolve(self.store, &node, Some(level))?;
        self.path.push(Frame { node, index: 0, lower });
        self.settle();
        Ok(())
    }
}

/// The next move of a diff.
enum Step {
    Done,
    AdvanceA,
    AdvanceB,
    AdvanceBoth,
    /// Both heads are the same child: step over it and the shared children after it.
    SkipShared,
    DescendA,
    DescendB,
    DescendBoth,
}

/// Both cursors stand on the same child: steps both over it and over every following child
/// that their two nodes share at the same positions, one pointer comparison each (a clone
/// shares long runs of children with its parent; the general loop would take each of them
/// as a step of its own).
fn skip_shared(a: &mut Cursor<'_>, b: &mut Cursor<'_>) {
    if let (Some(fa), Some(fb)) = (a.path.last_mut(), b.path.last_mut()) {
        let run = match (&fa.node.body, &fb.node.body) {
            (Body::Internal { children: ca, .. }, Body::Internal { children: cb, .. }) => {
                let rest_a = ca.iter().skip(fa.index + 1);
                let rest_b = cb.iter().skip(fb.index + 1);
                rest_a.zip(rest_b).take_while(|(x, y)| same(x.node, y.node)).count()
            }
            _ => 0,
        };
        fa.index += run;
        fb.index += run;
    }
    a.advance();
    b.advance();
}

fn same(a: &NodeRef, b: &NodeRef) -> bool {
    match (a, b) {
        (NodeRef::Disk(a), NodeRef::Disk(b)) => a == b,
        (NodeRef::Mem(a), NodeRef::Mem(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl Tree {
    /// Reports every difference from this tree to `other` in key order: `Added` for keys only
    /// `other` has, `Removed` for keys only this tree has, `Changed` for keys whose values
    /// differ. Subtrees the two trees share (same block or same Mem node) are skipped unread.
    pub fn diff(
        &self,
        other: &Tree,
        store: &dyn NodeStore,
        visit: &mut dyn FnMut(DiffItem<'_>) -> Result<()>,
    ) -> Result<()> {
        if same(&self.root, &other.root) {
            return Ok(());
        }
        let mut a = Cursor::new(store, &self.root)?;
        let mut b = Cursor::new(store, &other.root)?;
        loop {
            let step = match (a.head(), b.head()) {
                (Head::End, Head::End) => Step::Done,
                (Head::Item(x), Head::End) => {
                    visit(DiffItem::Removed { key: x.key, value: x.value })?;
                    Step::AdvanceA
                }
                (Head::End, Head::Item(y)) => {
                    visit(DiffItem::Added { key: y.key, value: y.value })?;
                    Step::AdvanceB
                }
                (Head::Child { .. }, Head::End) => Step::DescendA,
                (Head::End, Head::Child { .. }) => Step::DescendB,
                (Head::Item(x), Head::Item(y)) => match x.key.cmp(y.key) {
                    Ordering::Less => {
                        visit(DiffItem::Removed { key: x.key, value: x.value })?;
                        Step::AdvanceA
                    }
                    Ordering::Greater => {
                        visit(DiffItem::Added { key: y.key, value: y.value })?;
                        Step::AdvanceB
                    }
                    Ordering::Equal => {
                        if x.value != y.value {
                            visit(DiffItem::Changed { key: x.key, old: x.value, new: y.value })?;
                        }
                        Step::AdvanceBoth
                    }
                },
                (Head::Child { lower, .. }, Head::Item(y)) => match lower {
                    Some(lower) if y.key < lower => {
                        visit(DiffItem::Added { key: y.key, value: y.value })?;
                        Step::AdvanceB
                    }
                    _ => Step::DescendA,
                },
                (Head::Item(x), Head::Child { lower, .. }) => match lower {
                    Some(lower) if x.key < lower => {
                        visit(DiffItem::Removed { key: x.key, value: x.value })?;
                        Step::AdvanceA
                    }
                    _ => Step::DescendB,
                },
                (
                    Head::Child { node: na, level: la, lower: wa },
                    Head::Child { node: nb, level: lb, lower: wb },
                ) => {
                    if same(na, nb) {
                        Step::SkipShared
                    } else {
                        match wa.cmp(&wb).then(lb.cmp(&la)) {
                            Ordering::Less => Step::DescendA,
                            Ordering::Greater => Step::DescendB,
                            Ordering::Equal => Step::DescendBoth,
                        }
                    }
                }
            };
            match step {
                Step::Done => return Ok(()),
                Step::AdvanceA => a.advance(),
                Step::AdvanceB => b.advance(),
                Step::AdvanceBoth => {
                    a.advance();
                    b.advance();
                }
                Step::SkipShared => skip_shared(&mut a, &mut b),
                Step::DescendA => a.descend()?,
                Step::DescendB => b.descend()?,
                Step::DescendBoth => {
                    a.descend()?;
                    b.descend()?;
                }
            }
        }
    }
}
