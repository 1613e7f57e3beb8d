//! Clones and ownership: a child layer's clone of its parent's tree shares every node until it
//! changes; the change copies only paths, into nodes the child owns; the parent's tree never
//! changes; `freed` lists only the child's own replaced blocks; `visit_owned` reports exactly the
//! child's blocks and items and never reads below a node of the parent.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{announce, build, contents, key, model_items, reachable, seeds, value, Rng};
use crate::error::Result;
use crate::tree::{MemNodeStore, Node, NodeStore, Owned, Tree};
use crate::types::{BlockNo, Generation, LayerId};

const PARENT: LayerId = LayerId(1);
const CHILD: LayerId = LayerId(2);

/// A store that records which blocks were loaded.
struct Recording<'a> {
    inner: &'a MemNodeStore,
    loaded: RefCell<Vec<BlockNo>>,
}

impl NodeStore for Recording<'_> {
    fn load(&self, block: BlockNo) -> Result<Arc<Node>> {
        self.loaded.borrow_mut().push(block);
        self.inner.load(block)
    }
}

type Items = BTreeMap<Vec<u8>, Vec<u8>>;

/// What `visit_owned(owner)` reports: node blocks, items, and the blocks it loaded.
fn owned(
    tree: &Tree,
    store: &MemNodeStore,
    owner: LayerId,
) -> (BTreeSet<BlockNo>, Items, Vec<BlockNo>) {
    let recording = Recording { inner: store, loaded: RefCell::new(Vec::new()) };
    let mut blocks = BTreeSet::new();
    let mut items = BTreeMap::new();
    tree.visit_owned(&recording, owner, &mut |o| {
        match o {
            Owned::Node(b) => assert!(blocks.insert(b), "block {b:?} visited twice"),
            Owned::Item { key, value } => {
                assert!(items.insert(key.to_vec(), value.to_vec()).is_none(), "item visited twice");
            }
        }
        Ok(())
    })
    .unwrap();
    (blocks, items, recording.loaded.into_inner())
}

/// The items of the leaves of `tree` owned by `owner`, found by a plain walk.
fn items_of(tree: &Tree, store: &MemNodeStore, owner: LayerId) -> Items {
    let mut out = BTreeMap::new();
    for (block, o) in reachable(tree, store) {
        if o == owner {
            let node = store.load(block).unwrap();
            out.extend(node.items().map(|(k, v)| (k.to_vec(), v.to_vec())));
        }
    }
    out
}

/// The child's blocks, as a plain walk sees them.
fn blocks_of(tree: &Tree, store: &MemNodeStore, owner: LayerId) -> BTreeSet<BlockNo> {
    reachable(tree, store).into_iter().filter(|&(_, o)| o == owner).map(|(b, _)| b).collect()
}

fn churn(
    tree: &mut Tree,
    store: &MemNodeStore,
    model: &mut Items,
    rng: &mut Rng,
    n: usize,
) -> Vec<BlockNo> {
    let mut freed = Vec::new();
    for _ in 0..n {
        let k = key(rng.below(3000) as u32);
        if rng.chance(60) {
            let v = value(rng);
            tree.insert(store, CHILD, &k, &v, &mut freed).unwrap();
            model.insert(k, v);
        } else {
            tree.remove(store, CHILD, &k, &mut freed).unwrap();
            model.remove(&k);
        }
    }
    freed
}

fn check_visit(child: &Tree, store: &MemNodeStore) {
    let (blocks, items, loaded) = owned(child, store, CHILD);
    assert_eq!(blocks, blocks_of(child, store, CHILD), "visit_owned missed or invented blocks");
    assert_eq!(items, items_of(child, store, CHILD), "visit_owned missed or invented items");
    // Loaded: the child's nodes, and the parent's nodes directly below them (to read their
    // owner), nothing deeper.
    let all = reachable(child, store);
    let mut allowed: BTreeSet<BlockNo> = blocks.clone();
    for b in &blocks {
        let node = store.load(*b).unwrap();
        allowed.extend(node.children().filter_map(|(_, c)| match c {
            crate::tree::NodeRef::Disk(ptr) => Some(ptr.block),
            crate::tree::NodeRef::Mem(_) => None,
        }));
    }
    for b in &loaded {
        assert!(
            allowed.contains(b),
            "visit_owned read {b:?} (owner {:?}) below a parent node",
            all[b]
        );
    }
}

fn run(seed: u64) {
    announce("tree clone", seed);
    let mut rng = Rng::new(seed);
    let mut store = MemNodeStore::new();
    let (parent, parent_model) = build(&mut store, PARENT, 0..3000, &mut rng);
    let parent_root = parent.root_block();
    let parent_blocks = blocks_of(&parent, &store, PARENT);
    assert_eq!(reachable(&parent, &store).len(), parent_blocks.len());

    let mut child = parent.clone();
    let mut model = parent_model.clone();
    let freed = churn(&mut child, &store, &mut model, &mut rng, 300);
    assert!(freed.is_empty(), "the child freed its parent's blocks: {freed:?}");
    child.write_dirty(&mut store, Generation(2)).unwrap();
    let written: BTreeSet<BlockNo> = store.take_written().into_iter().collect();
    assert_eq!(blocks_of(&child, &store, CHILD), written, "the child owns exactly what it wrote");
    let shared: BTreeSet<BlockNo> = blocks_of(&child, &store, PARENT);
    assert!(shared.is_subset(&parent_blocks));
    assert!(!shared.is_empty(), "a clone shares its parent's untouched nodes");
    assert_eq!(contents(&child, &store), model_items(&model));
    check_visit(&child, &store);
    let (nothing, no_items, _) = owned(&parent, &store, CHILD);
    assert!(nothing.is_empty() && no_items.is_empty(), "the parent holds nothing of the child");

    // A second round: now the child replaces its own blocks, and frees exactly those.
    let before = blocks_of(&child, &store, CHILD);
    let freed = churn(&mut child, &store, &mut model, &mut rng, 300);
    let freed_set: BTreeSet<BlockNo> = freed.iter().copied().collect();
    assert_eq!(freed_set.len(), freed.len(), "a block was freed twice");
    assert!(freed_set.is_subset(&before), "freed a block the child does not own: {freed:?}");
    child.write_dirty(&mut store, Generation(3)).unwrap();
    let after = blocks_of(&child, &store, CHILD);
    let gone: BTreeSet<BlockNo> = before.difference(&after).copied().collect();
    assert_eq!(freed_set, gone, "freed must be exactly the child's blocks no longer reachable");
    for b in &freed {
        assert!(store.free(*b));
    }
    assert_eq!(contents(&child, &store), model_items(&model));
    child.check(&store).unwrap();
    check_visit(&child, &store);

    // The parent is untouched: same root, same blocks, same items.
    assert_eq!(parent.root_block(), parent_root);
    assert_eq!(contents(&parent, &store), model_items(&parent_model));
    let (blocks, items, _) = owned(&parent, &store, PARENT);
    assert_eq!(blocks, parent_blocks);
    assert_eq!(items, parent_model);
}

#[test]
fn a_clone_changed_by_a_child_layer_leaves_the_parent_alone() {
    for seed in seeds(&[11, 12, 13]) {
        run(seed);
    }
}

/// A grandchild of a grandchild: each layer frees only its own, and visits only its own.
#[test]
fn ownership_holds_down_a_chain_of_clones() {
    let mut rng = Rng::new(5);
    let mut store = MemNodeStore::new();
    let (mut tree, mut model) = build(&mut store, LayerId(1), 0..2000, &mut rng);
    for layer in 2..6u64 {
        let owner = LayerId(layer);
        let mut freed = Vec::new();
        for _ in 0..50 {
            let k = key(rng.below(2000) as u32);
            let v = value(&mut rng);
            tree.insert(&store, owner, &k, &v, &mut freed).unwrap();
            model.insert(k, v);
        }
        assert!(freed.is_empty(), "layer {layer} freed an ancestor's block");
        tree.write_dirty(&mut store, Generation(layer)).unwrap();
        let written: BTreeSet<BlockNo> = store.take_written().into_iter().collect();
        let (blocks, _, _) = owned(&tree, &store, owner);
        assert_eq!(blocks, written);
        for older in 1..layer {
            let (blocks, _, _) = owned(&tree, &store, LayerId(older));
            assert!(blocks.is_empty(), "the root belongs to {layer}, so {older} sees nothing");
        }
        assert_eq!(contents(&tree, &store), model_items(&model));
    }
}

/// A dirty tree shared by two clones: changing one copies the shared Mem nodes.
#[test]
fn clones_of_a_dirty_tree_do_not_see_each_other() {
    let store = MemNodeStore::new();
    let mut a = Tree::new(PARENT);
    let mut freed = Vec::new();
    for n in 0..500 {
        a.insert(&store, PARENT, &key(n), b"a", &mut freed).unwrap();
    }
    let mut b = a.clone();
    for n in 0..500 {
        if n % 3 == 0 {
            b.remove(&store, CHILD, &key(n), &mut freed).unwrap();
        } else {
            b.insert(&store, CHILD, &key(n), b"b", &mut freed).unwrap();
        }
    }
    assert!(freed.is_empty());
    for n in 0..500 {
        assert_eq!(a.get(&store, &key(n)).unwrap().as_deref(), Some(&b"a"[..]));
        let want: Option<&[u8]> = if n % 3 == 0 { None } else { Some(b"b") };
        assert_eq!(b.get(&store, &key(n)).unwrap().as_deref(), want);
    }
}

/// fsck's walk: with a shared "seen" set, a subtree shared by a parent and its clone is checked
/// once, and together the two walks cover exactly the union of their blocks.
#[test]
fn check_nodes_walks_a_shared_subtree_once() {
    let mut rng = Rng::new(9);
    let mut store = MemNodeStore::new();
    let (parent, _) = build(&mut store, PARENT, 0..3000, &mut rng);
    let mut child = parent.clone();
    let mut model = BTreeMap::new();
    churn(&mut child, &store, &mut model, &mut rng, 100);
    child.write_dirty(&mut store, Generation(2)).unwrap();
    let mut seen = BTreeSet::new();
    let a = parent.check_nodes(&store, &mut |b, _| Ok(seen.insert(b))).unwrap();
    let b = child.check_nodes(&store, &mut |b, _| Ok(seen.insert(b))).unwrap();
    let mut union: BTreeSet<BlockNo> = reachable(&parent, &store).into_keys().collect();
    union.extend(reachable(&child, &store).into_keys());
    assert_eq!(seen, union);
    assert_eq!(a.nodes + b.nodes, union.len() as u64, "each block checked once");
    assert!(b.nodes < a.nodes, "the clone's walk stops at what the parent's walk saw");
}
