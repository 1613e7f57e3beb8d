//! The tree against a `BTreeMap`: random inserts and removes (single owner), checkpoints
//! (`write_dirty`) at random points over a `MemNodeStore`, and at each checkpoint the exact
//! accounting of blocks: what became unreachable is exactly what `freed` reported, and freed
//! blocks are dropped from the store so that any later use of one fails.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::{announce, contents, key, model_items, reachable, seeds, value, Rng};
use crate::error::Error;
use crate::tree::{MemNodeStore, Tree, KEY_MAX, VALUE_MAX};
use crate::types::{BlockNo, Generation, LayerId};

const OWNER: LayerId = LayerId(1);

/// The state of one run.
struct Run {
    rng: Rng,
    store: MemNodeStore,
    tree: Tree,
    model: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Blocks reachable at the last checkpoint.
    on_disk: BTreeSet<BlockNo>,
    /// Blocks reported freed since the last checkpoint.
    freed: Vec<BlockNo>,
    generation: u64,
    key_space: u32,
}

impl Run {
    fn random_key(&mut self) -> Vec<u8> {
        let n = self.rng.below(u64::from(self.key_space)) as u32;
        key(n)
    }

    fn insert(&mut self) {
        let k = self.random_key();
        let v = value(&mut self.rng);
        let old = self.tree.insert(&self.store, OWNER, &k, &v, &mut self.freed).unwrap();
        assert_eq!(old, self.model.insert(k, v), "insert returned the wrong old value");
    }

    fn remove(&mut self) {
        let k = self.random_key();
        let was_dirty = self.tree.is_dirty();
        let old = self.tree.remove(&self.store, OWNER, &k, &mut self.freed).unwrap();
        let want = self.model.remove(&k);
        if want.is_none() {
            assert_eq!(self.tree.is_dirty(), was_dirty, "removing a missing key changed the tree");
        }
        assert_eq!(old, want, "remove returned the wrong old value");
    }

    fn checkpoint(&mut self) {
        self.generation += 1;
        let root = self.tree.write_dirty(&mut self.store, Generation(self.generation)).unwrap();
        assert_eq!(self.tree.root_block(), Some(root));
        assert!(!self.tree.is_dirty());
        let now = reachable(&self.tree, &self.store);
        assert!(now.values().all(|&o| o == OWNER), "a node of another owner appeared");
        let now: BTreeSet<BlockNo> = now.into_keys().collect();
        let freed: BTreeSet<BlockNo> = self.freed.iter().copied().collect();
        assert_eq!(freed.len(), self.freed.len(), "a block was freed twice");
        let gone: BTreeSet<BlockNo> = self.on_disk.difference(&now).copied().collect();
        assert_eq!(freed, gone, "freed must be exactly the blocks no longer reachable");
        let written: BTreeSet<BlockNo> = self.store.take_written().into_iter().collect();
        let new: BTreeSet<BlockNo> = now.difference(&self.on_disk).copied().collect();
        assert_eq!(written, new, "write_dirty must write exactly the new nodes");
        for block in self.freed.drain(..) {
            assert!(self.store.free(block));
        }
        self.on_disk = now;
    }

    fn check_range(&mut self) {
        let a = self.random_key();
        let b = self.random_key();
        let bound = |rng: &mut Rng, k: Vec<u8>| match rng.below(3) {
            0 => Bound::Included(k),
            1 => Bound::Excluded(k),
            _ => Bound::Unbounded,
        };
        let lo = bound(&mut self.rng, a.min(b.clone()));
        let c = self.random_key();
        let hi = bound(&mut self.rng, b.max(c));
        let limit = [0, 1, 5, 50, usize::MAX][self.rng.below(5) as usize];
        let got = self.tree.range(&self.store, as_ref(&lo), as_ref(&hi), limit).unwrap();
        let lo_ok = |k: &Vec<u8>| match &lo {
            Bound::Included(l) => k >= l,
            Bound::Excluded(l) => k > l,
            Bound::Unbounded => true,
        };
        let hi_ok = |k: &Vec<u8>| match &hi {
            Bound::Included(h) => k <= h,
            Bound::Excluded(h) => k < h,
            Bound::Unbounded => true,
        };
        let want: Vec<(Vec<u8>, Vec<u8>)> = self
            .model
            .iter()
            .filter(|(k, _)| lo_ok(k) && hi_ok(k))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "range({lo:?}, {hi:?}, {limit}) differs from the model");
    }

    fn check_gets(&mut self) {
        for _ in 0..8 {
            let k = self.random_key();
            assert_eq!(self.tree.get(&self.store, &k).unwrap(), self.model.get(&k).cloned());
        }
    }

    fn check_all(&self) {
        let stats = self.tree.check(&self.store).unwrap();
        assert_eq!(stats.items, self.model.len() as u64);
        assert_eq!(contents(&self.tree, &self.store), model_items(&self.model));
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn run(seed: u64, steps: usize) {
    announce("tree model", seed);
    let mut rng = Rng::new(seed);
    let key_space = [16, 400, 4000][rng.below(3) as usize];
    let mut run = Run {
        rng,
        store: MemNodeStore::new(),
        tree: Tree::new(OWNER),
        model: BTreeMap::new(),
        on_disk: BTreeSet::new(),
        freed: Vec::new(),
        generation: 0,
        key_space,
    };
    let mut max_depth = 0;
    for step in 0..steps {
        // Phases: grow, then churn, then mostly shrink, so trees both deepen and collapse.
        let insert_percent = match step * 3 / steps {
            0 => 75,
            1 => 50,
            _ => 25,
        };
        match run.rng.below(100) {
            p if p < insert_percent => run.insert(),
            p if p < 93 => run.remove(),
            93..=94 => run.checkpoint(),
            95..=97 => run.check_range(),
            _ => run.check_gets(),
        }
        if step % 500 == 0 {
            run.check_all();
            max_depth = max_depth.max(run.tree.check(&run.store).unwrap().depth);
        }
    }
    run.check_all();
    run.checkpoint();
    run.check_all();
    eprintln!("key space {key_space}, {} items at the end, deepest {max_depth}", run.model.len());
}

#[test]
fn random_updates_and_checkpoints_match_a_btreemap() {
    for seed in seeds(&[1, 2, 3, 0xDEAD_BEEF, 42, 7, 1234, 99]) {
        run(seed, 6000);
    }
}

#[test]
fn oversize_keys_and_values_are_refused_and_change_nothing() {
    let mut store = MemNodeStore::new();
    let mut tree = Tree::new(OWNER);
    let mut freed = Vec::new();
    let long_key = vec![1u8; KEY_MAX + 1];
    let long_value = vec![1u8; VALUE_MAX + 1];
    let e = tree.insert(&store, OWNER, &long_key, b"v", &mut freed);
    assert!(matches!(e, Err(Error::InvalidArgument(_))));
    let e = tree.insert(&store, OWNER, b"k", &long_value, &mut freed);
    assert!(matches!(e, Err(Error::InvalidArgument(_))));
    assert!(matches!(
        tree.remove(&store, OWNER, &long_key, &mut freed),
        Err(Error::InvalidArgument(_))
    ));
    let max_key = vec![2u8; KEY_MAX];
    let max_value = vec![3u8; VALUE_MAX];
    assert_eq!(tree.insert(&store, OWNER, &max_key, &max_value, &mut freed).unwrap(), None);
    tree.write_dirty(&mut store, Generation(1)).unwrap();
    assert_eq!(tree.get(&store, &max_key).unwrap(), Some(max_value));
    assert_eq!(tree.get(&store, b"k").unwrap(), None);
    assert!(freed.is_empty());
}
