//! Corrupt trees: a missing child, a pointer back up the tree (a cycle), a flipped bit, a
//! misdirected block, a stale block (an older valid version of the node, left by a lost or
//! misdirected write). Every operation returns an error (never a panic, a loop or a stack
//! overflow), and a failed update leaves the tree as it was. Also the depth bound: the deepest
//! tree a reader accepts works, and an insert that would go deeper is refused.

use std::ops::Bound;
use std::sync::Arc;

use super::{build, key, Rng};
use crate::error::Error;
use crate::format::header::{BlockKind, Header};
use crate::tree::node::{Body, Child, Item, Node};
use crate::tree::{MemNodeStore, NodePtr, NodeRef, NodeStore, Tree, DEPTH_MAX, KEY_MAX};
use crate::types::{BlockNo, Generation, LayerId};

const OWNER: LayerId = LayerId(1);

/// A written tree of three levels or more.
fn deep_tree() -> (MemNodeStore, Tree) {
    let mut store = MemNodeStore::new();
    let (tree, _) = build(&mut store, OWNER, 0..3000, &mut Rng::new(8));
    assert!(tree.check(&store).unwrap().depth >= 3);
    (store, tree)
}

/// The first child block of the node at `block`.
fn first_child(store: &MemNodeStore, block: BlockNo) -> BlockNo {
    let node = store.load(block).unwrap();
    let child = match node.children().next() {
        Some((_, NodeRef::Disk(ptr))) => ptr.block,
        _ => panic!("{block:?} has no child on disk"),
    };
    child
}

/// The leftmost leaf below `block`.
fn first_leaf(store: &MemNodeStore, mut block: BlockNo) -> BlockNo {
    while !store.load(block).unwrap().is_leaf() {
        block = first_child(store, block);
    }
    block
}

/// Every operation on `tree` fails with an error, and failed updates change nothing.
fn everything_fails(tree: &Tree, store: &mut MemNodeStore, probe: &[u8]) {
    let is_err = |r: Result<(), Error>, what: &str| {
        assert!(r.is_err(), "{what} succeeded on a corrupt tree");
    };
    is_err(tree.get(store, probe).map(drop), "get");
    is_err(tree.range(store, Bound::Unbounded, Bound::Unbounded, usize::MAX).map(drop), "range");
    is_err(tree.check(store).map(drop), "check");
    is_err(tree.visit_owned(store, OWNER, &mut |_| Ok(())), "visit_owned");
    let empty = Tree::new(OWNER);
    is_err(tree.diff(&empty, store, &mut |_| Ok(())), "diff");
    let mut copy = tree.clone();
    let mut freed = Vec::new();
    is_err(copy.insert(store, OWNER, probe, b"v", &mut freed).map(drop), "insert");
    is_err(copy.remove(store, OWNER, probe, &mut freed).map(drop), "remove");
    assert_eq!(copy.root_block(), tree.root_block(), "a failed update changed the tree");
    assert!(freed.is_empty(), "a failed update freed blocks");
    assert_eq!(copy.write_dirty(store, Generation(5)).unwrap(), tree.root_block().unwrap());
}

#[test]
fn a_missing_child_is_an_error() {
    let (mut store, tree) = deep_tree();
    let root = tree.root_block().unwrap().block;
    let leaf = first_leaf(&store, root);
    let probe = store.load(leaf).unwrap().items().next().unwrap().0.to_vec();
    assert!(store.free(leaf));
    everything_fails(&tree, &mut store, &probe);
}

#[test]
fn a_pointer_back_to_the_root_is_an_error_not_a_loop() {
    let (mut store, tree) = deep_tree();
    let root = tree.root_block().unwrap().block;
    let grandchild = first_child(&store, first_child(&store, root));
    let probe = key(0);
    // The grandchild's block now holds a copy of the root: a cycle root -> child -> root.
    let root_node = store.load(root).unwrap();
    store.put(grandchild, root_node.encode(grandchild, Generation(1)).unwrap());
    everything_fails(&tree, &mut store, &probe);
}

#[test]
fn a_flipped_bit_in_a_leaf_is_an_error() {
    let (mut store, tree) = deep_tree();
    let root = tree.root_block().unwrap().block;
    let leaf = first_leaf(&store, root);
    let probe = store.load(leaf).unwrap().items().next().unwrap().0.to_vec();
    store.bytes_mut(leaf).unwrap()[1000] ^= 0x10;
    everything_fails(&tree, &mut store, &probe);
}

#[test]
fn a_misdirected_block_is_an_error() {
    let (mut store, tree) = deep_tree();
    let root = tree.root_block().unwrap().block;
    let leaf = first_leaf(&store, root);
    let child = first_child(&store, root);
    let probe = store.load(leaf).unwrap().items().next().unwrap().0.to_vec();
    let other = store.bytes_mut(child).unwrap().clone();
    store.put(leaf, other);
    everything_fails(&tree, &mut store, &probe);
}

/// A write of a leaf that never reached its block (lost, or misdirected elsewhere) leaves the
/// block's previous content: a valid node, sealed for that very block, but of an earlier
/// generation. The parent's pointer says which generation it expects, so this is an error.
#[test]
fn a_stale_block_is_an_error() {
    let (mut store, tree) = deep_tree();
    let root = tree.root_block().unwrap().block;
    let leaf = first_leaf(&store, root);
    let node = store.load(leaf).unwrap();
    let probe = node.items().next().unwrap().0.to_vec();
    // What the block held one checkpoint earlier: the same node without its last item.
    let mut older = Node::clone(&node);
    if let Body::Leaf(items) = &mut older.body {
        items.pop();
    }
    store.put(leaf, older.encode(leaf, Generation(0)).unwrap());
    assert!(Node::decode(store.bytes_mut(leaf).unwrap(), leaf).is_ok(), "a valid node");
    everything_fails(&tree, &mut store, &probe);
}

/// A chain of `DEPTH_MAX` levels, blocks 100 (the leaf) to 100 + DEPTH_MAX - 1 (the root),
/// whose root has `root_children` children (all the same subtree) under separators of
/// `KEY_MAX` bytes.
fn deepest_tree(root_children: u8) -> (MemNodeStore, Tree) {
    let mut store = MemNodeStore::new();
    let items = [Item { key: b"k".to_vec(), value: b"v".to_vec() }].into_iter().collect();
    let leaf = Node::new(OWNER, Body::Leaf(items));
    store.put(BlockNo(100), leaf.encode(BlockNo(100), Generation(1)).unwrap());
    let top = DEPTH_MAX as u8 - 1;
    for level in 1..=top {
        let block = BlockNo(100 + u64::from(level));
        let below =
            NodeRef::Disk(NodePtr { block: BlockNo(block.0 - 1), generation: Generation(1) });
        let children: Vec<Child> = if level < top {
            vec![Child { key: Vec::new(), node: below }]
        } else {
            (0..root_children)
                .map(|i| {
                    let mut key = vec![i];
                    key.resize(if i == 0 { 0 } else { KEY_MAX }, b's');
                    Child { key, node: below.clone() }
                })
                .collect()
        };
        let children = children.into_iter().collect();
        let node = Node::new(OWNER, Body::Internal { level, children });
        store.put(block, node.encode(block, Generation(1)).unwrap());
    }
    let root = NodePtr { block: BlockNo(100 + u64::from(top)), generation: Generation(1) };
    (store, Tree::from_root(root))
}

#[test]
fn the_deepest_tree_reads_and_a_deeper_one_is_refused() {
    let (store, tree) = deepest_tree(1);
    assert_eq!(tree.get(&store, b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(tree.check(&store).unwrap().depth, DEPTH_MAX);

    // A root one level deeper than allowed does not decode.
    let mut bytes = store
        .load(tree.root_block().unwrap().block)
        .unwrap()
        .encode(BlockNo(200), Generation(1))
        .unwrap();
    bytes[48] = DEPTH_MAX as u8;
    let h = Header {
        kind: BlockKind::TreeInternal,
        block: BlockNo(200),
        generation: Generation(1),
        owner: OWNER,
    };
    crate::format::header::seal(&mut bytes, &h);
    assert!(matches!(Node::decode(&bytes, BlockNo(200)), Err(Error::Corrupt { .. })));
}

#[test]
fn an_insert_that_could_deepen_a_tree_at_depth_max_is_refused() {
    let (store, mut tree) = deepest_tree(13);
    let root = tree.root_block();
    let mut freed = Vec::new();
    let e = tree.insert(&store, OWNER, b"new", b"v", &mut freed);
    assert!(matches!(e, Err(Error::NoSpace)), "{e:?}");
    assert_eq!(tree.root_block(), root);
    assert!(freed.is_empty());
    // A root with room still takes inserts at that depth.
    let (store, mut tree) = deepest_tree(2);
    tree.insert(&store, OWNER, b"new", b"v", &mut freed).unwrap();
    assert_eq!(freed.len(), DEPTH_MAX, "the whole path was the owner's and was replaced");
    assert_eq!(tree.get(&store, b"new").unwrap(), Some(b"v".to_vec()));
}

/// `resolve` refuses a Mem node at the wrong level too (a programmer error made visible).
#[test]
fn a_child_at_the_wrong_level_is_refused() {
    let leaf = NodeRef::Mem(Arc::new(Node::empty_leaf(OWNER)));
    let store = MemNodeStore::new();
    assert!(crate::tree::node::resolve(&store, &leaf, Some(1)).is_err());
    assert!(crate::tree::node::resolve(&store, &leaf, Some(0)).is_ok());
}
