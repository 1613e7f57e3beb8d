//! The shape of the tree: nodes split by encoded size as it grows, empty nodes leave their
//! parent and a root with one child gives way to it as it shrinks, so a tree that held many keys
//! and now holds one is again a single leaf.

use super::{build, contents, key, Rng};
use crate::tree::{MemNodeStore, Tree};
use crate::types::{Generation, LayerId};

const OWNER: LayerId = LayerId(1);

/// Removes every key but `keep` in the order `order` gives, checking the tree all along.
fn shrink_to_one(order: &[u32], keep: u32, write_every: usize) {
    let mut rng = Rng::new(u64::from(keep) + order.len() as u64);
    let mut store = MemNodeStore::new();
    let (mut tree, _) = build(&mut store, OWNER, 0..3000, &mut rng);
    let depth = tree.check(&store).unwrap().depth;
    assert!(depth >= 3, "3000 keys should make a tree of 3 levels or more, got {depth}");
    let mut freed = Vec::new();
    for (i, &n) in order.iter().filter(|&&n| n != keep).enumerate() {
        assert!(tree.remove(&store, OWNER, &key(n), &mut freed).unwrap().is_some());
        if i % write_every == 0 {
            tree.check(&store).unwrap();
            tree.write_dirty(&mut store, Generation(2 + i as u64)).unwrap();
            for b in freed.drain(..) {
                assert!(store.free(b));
            }
        }
    }
    let stats = tree.check(&store).unwrap();
    assert_eq!((stats.depth, stats.nodes, stats.items), (1, 1, 1), "one key left: one leaf");
    assert_eq!(
        contents(&tree, &store),
        vec![(key(keep), tree.get(&store, &key(keep)).unwrap().unwrap())]
    );
    tree.remove(&store, OWNER, &key(keep), &mut freed).unwrap();
    tree.write_dirty(&mut store, Generation(9999)).unwrap();
    for b in freed.drain(..) {
        assert!(store.free(b));
    }
    let stats = tree.check(&store).unwrap();
    assert_eq!((stats.depth, stats.nodes, stats.items), (1, 1, 0), "an empty tree is one leaf");
    assert_eq!(store.len(), 1, "every other block was freed");
}

#[test]
fn removing_in_key_order_collapses_to_one_leaf() {
    let order: Vec<u32> = (0..3000).collect();
    shrink_to_one(&order, 0, 97);
    shrink_to_one(&order, 2999, 13);
}

#[test]
fn removing_in_reverse_order_collapses_to_one_leaf() {
    let order: Vec<u32> = (0..3000).rev().collect();
    shrink_to_one(&order, 1500, 101);
}

#[test]
fn removing_in_random_order_collapses_to_one_leaf() {
    let mut order: Vec<u32> = (0..3000).collect();
    let mut rng = Rng::new(77);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    shrink_to_one(&order, 1234, 3);
    shrink_to_one(&order, 17, 500);
}

/// Entries of the largest size: two per leaf, and internal nodes of the longest separators.
#[test]
fn largest_entries_split_and_stay_within_blocks() {
    let mut store = MemNodeStore::new();
    let mut tree = Tree::new(OWNER);
    let mut freed = Vec::new();
    for n in 0u32..600 {
        let mut k = (n.wrapping_mul(2_654_435_761)).to_be_bytes().to_vec();
        k.resize(crate::tree::KEY_MAX, b'x');
        tree.insert(&store, OWNER, &k, &vec![n as u8; crate::tree::VALUE_MAX], &mut freed).unwrap();
        if n % 50 == 0 {
            tree.check(&store).unwrap();
        }
    }
    tree.write_dirty(&mut store, Generation(1)).unwrap();
    let stats = tree.check(&store).unwrap();
    assert_eq!(stats.items, 600);
    assert!(stats.depth >= 3, "600 keys of 300 bytes need at least 3 levels");
    assert!(stats.depth <= 5, "but not more than 5: depth {}", stats.depth);
}

#[test]
fn an_empty_tree_writes_one_leaf_and_reads_back_empty() {
    let mut store = MemNodeStore::new();
    let mut tree = Tree::new(OWNER);
    assert!(tree.is_dirty());
    assert_eq!(tree.root_block(), None);
    let root = tree.write_dirty(&mut store, Generation(1)).unwrap();
    assert_eq!(tree.root_block(), Some(root));
    assert_eq!(store.len(), 1);
    let again = Tree::from_root(root);
    assert!(contents(&again, &store).is_empty());
    assert_eq!(again.get(&store, b"").unwrap(), None);
    // Writing a clean tree writes nothing.
    assert_eq!(tree.clone().write_dirty(&mut store, Generation(2)).unwrap(), root);
    assert!(store.take_written().len() == 1);
}

/// The empty key is the smallest key and a valid one.
#[test]
fn the_empty_key_sorts_first() {
    let mut store = MemNodeStore::new();
    let mut rng = Rng::new(3);
    let (mut tree, _) = build(&mut store, OWNER, 0..1000, &mut rng);
    let mut freed = Vec::new();
    tree.insert(&store, OWNER, b"", b"empty", &mut freed).unwrap();
    let first =
        tree.range(&store, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 1).unwrap();
    assert_eq!(first, vec![(Vec::new(), b"empty".to_vec())]);
    tree.check(&store).unwrap();
}

/// Removing 90% of the keys at random leaves most leaves with a survivor or two; merging small
/// leaves with their siblings brings the node count down with the data.
#[test]
fn a_thinned_tree_merges_its_small_leaves() {
    let mut rng = Rng::new(12);
    let mut store = MemNodeStore::new();
    let (mut tree, mut model) = build(&mut store, OWNER, 0..3000, &mut rng);
    let before = tree.check(&store).unwrap();
    let mut freed = Vec::new();
    for n in 0..3000u32 {
        if rng.chance(90) {
            tree.remove(&store, OWNER, &key(n), &mut freed).unwrap();
            model.remove(&key(n));
        }
    }
    tree.write_dirty(&mut store, Generation(2)).unwrap();
    let after = tree.check(&store).unwrap();
    assert_eq!(contents(&tree, &store), super::model_items(&model));
    assert!(
        after.nodes * 4 < before.nodes,
        "{} nodes for {} items, was {} nodes for {} items",
        after.nodes,
        after.items,
        before.nodes,
        before.items
    );
}
