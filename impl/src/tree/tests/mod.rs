//! Tests of the copy-on-write B-tree, and the helpers they share.
//!
//! Goal: the tree behaves like a `BTreeMap` whatever the sequence of updates and checkpoints,
//! shares and frees nodes exactly as the ownership rules say, and turns any bad bytes into an
//! error. Method: seeded random operations checked against a model (every seed is printed;
//! replay one with `LCFS_TREE_SEED=<seed>`), quickcheck over the codec, and named cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod clone;
mod codec;
mod corrupt;
mod diff;
mod model;
mod shape;

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{MemNodeStore, NodeRef, NodeStore, Tree};
use crate::types::{BlockNo, LayerId};

/// splitmix64: small, seedable, good enough to drive tests.
pub(super) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seeds to run: `LCFS_TREE_SEED` alone if set, else `fixed` plus one from the clock.
pub(super) fn seeds(fixed: &[u64]) -> Vec<u64> {
    if let Ok(s) = std::env::var("LCFS_TREE_SEED") {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return vec![parsed.expect("LCFS_TREE_SEED is a number")];
    }
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut all = fixed.to_vec();
    all.push(clock);
    all
}

/// Prints `seed` so that a failure can be replayed.
pub(super) fn announce(test: &str, seed: u64) {
    eprintln!("{test}: seed {seed:#x} (replay with LCFS_TREE_SEED={seed:#x})");
}

/// The key numbered `n`: 4 bytes of `n` big-endian, then a padding whose length depends on `n`
/// (0..=296 bytes), so keys of one test have many lengths and a stable order.
pub(super) fn key(n: u32) -> Vec<u8> {
    let mut key = n.to_be_bytes().to_vec();
    let pad = (u64::from(n).wrapping_mul(7919) % 297) as usize;
    key.extend(std::iter::repeat_n(b'k', pad));
    key
}

/// A value of a random length: mostly short, sometimes up to `VALUE_MAX`.
pub(super) fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0..=4 => rng.below(33),
        5..=7 => rng.below(301),
        _ => rng.below(super::VALUE_MAX as u64 + 1),
    };
    let byte = rng.next() as u8;
    (0..len).map(|i| byte.wrapping_add(i as u8)).collect()
}

/// Every item of `tree`, in order.
pub(super) fn contents(tree: &Tree, store: &dyn NodeStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    tree.range(store, Bound::Unbounded, Bound::Unbounded, usize::MAX).unwrap()
}

/// The model's items, in order.
pub(super) fn model_items(model: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Every on-disk node reachable from `tree` (whoever owns it), with its owner; Mem nodes are
/// walked but not listed.
pub(super) fn reachable(tree: &Tree, store: &dyn NodeStore) -> BTreeMap<BlockNo, LayerId> {
    let mut out = BTreeMap::new();
    let mut stack = vec![tree.root.clone()];
    while let Some(at) = stack.pop() {
        let node = match &at {
            NodeRef::Disk(ptr) => store.load(ptr.block).unwrap(),
            NodeRef::Mem(n) => n.clone(),
        };
        if let NodeRef::Disk(ptr) = at {
            let b = ptr.block;
            assert!(out.insert(b, node.owner()).is_none(), "block {b:?} reachable twice");
        }
        stack.extend(node.children().map(|(_, child)| child.clone()));
    }
    out
}

/// A tree of `owner` holding the keys `keys` (with values from `rng`), written to `store`, and
/// its model.
pub(super) fn build(
    store: &mut MemNodeStore,
    owner: LayerId,
    keys: impl Iterator<Item = u32>,
    rng: &mut Rng,
) -> (Tree, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut tree = Tree::new(owner);
    let mut model = BTreeMap::new();
    let mut freed = Vec::new();
    for n in keys {
        let v = value(rng);
        tree.insert(store, owner, &key(n), &v, &mut freed).unwrap();
        model.insert(key(n), v);
    }
    assert!(freed.is_empty(), "a tree never written frees nothing");
    tree.write_dirty(store, crate::types::Generation(1)).unwrap();
    store.take_written();
    (tree, model)
}
