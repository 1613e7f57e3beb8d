//! `Tree::diff` against the model's diff of two `BTreeMap`s, for a clone and its parent (on
//! disk and dirty) and for unrelated trees; and the point of it: between a big tree and a clone
//! with one change, diff reads a few paths, not the tree.

use std::collections::BTreeMap;

use super::{announce, build, key, seeds, value, Rng};
use crate::tree::{DiffItem, MemNodeStore, Tree};
use crate::types::{Generation, LayerId};

type Items = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, PartialEq, Eq)]
enum Change {
    Added(Vec<u8>, Vec<u8>),
    Removed(Vec<u8>, Vec<u8>),
    Changed(Vec<u8>, Vec<u8>, Vec<u8>),
}

fn model_diff(a: &Items, b: &Items) -> Vec<Change> {
    let mut keys: Vec<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| match (a.get(k), b.get(k)) {
            (Some(x), None) => Some(Change::Removed(k.clone(), x.clone())),
            (None, Some(y)) => Some(Change::Added(k.clone(), y.clone())),
            (Some(x), Some(y)) if x != y => Some(Change::Changed(k.clone(), x.clone(), y.clone())),
            _ => None,
        })
        .collect()
}

fn tree_diff(a: &Tree, b: &Tree, store: &MemNodeStore) -> Vec<Change> {
    let mut out = Vec::new();
    a.diff(b, store, &mut |d| {
        out.push(match d {
            DiffItem::Added { key, value } => Change::Added(key.to_vec(), value.to_vec()),
            DiffItem::Removed { key, value } => Change::Removed(key.to_vec(), value.to_vec()),
            DiffItem::Changed { key, old, new } => {
                Change::Changed(key.to_vec(), old.to_vec(), new.to_vec())
            }
        });
        Ok(())
    })
    .unwrap();
    out
}

fn churn(
    tree: &mut Tree,
    store: &MemNodeStore,
    model: &mut Items,
    rng: &mut Rng,
    n: u64,
    space: u64,
) {
    let owner = LayerId(2);
    let mut freed = Vec::new();
    for _ in 0..n {
        let k = key(rng.below(space) as u32);
        if rng.chance(55) {
            let v = if rng.chance(20) {
                model.get(&k).cloned().unwrap_or_default()
            } else {
                value(rng)
            };
            tree.insert(store, owner, &k, &v, &mut freed).unwrap();
            model.insert(k, v);
        } else {
            tree.remove(store, owner, &k, &mut freed).unwrap();
            model.remove(&k);
        }
    }
}

fn run(seed: u64) {
    announce("tree diff", seed);
    let mut rng = Rng::new(seed);
    let mut store = MemNodeStore::new();
    let size = 1 + rng.below(4000);
    let (parent, parent_model) = build(&mut store, LayerId(1), 0..size as u32, &mut rng);
    let mut child = parent.clone();
    let mut model = parent_model.clone();
    let changes = [0, 1, 10, 300, 3000][rng.below(5) as usize];
    churn(&mut child, &store, &mut model, &mut rng, changes, size + 100);
    // Dirty child against the parent on disk, both ways.
    assert_eq!(tree_diff(&parent, &child, &store), model_diff(&parent_model, &model));
    assert_eq!(tree_diff(&child, &parent, &store), model_diff(&model, &parent_model));
    child.write_dirty(&mut store, Generation(2)).unwrap();
    assert_eq!(tree_diff(&parent, &child, &store), model_diff(&parent_model, &model));
    // Unrelated trees: nothing shared, the diff is a merge.
    let (other, other_model) = build(&mut store, LayerId(3), (0..size as u32).step_by(3), &mut rng);
    assert_eq!(tree_diff(&child, &other, &store), model_diff(&model, &other_model));
    assert!(tree_diff(&child, &child.clone(), &store).is_empty());
}

#[test]
fn diff_matches_the_model() {
    for seed in seeds(&[21, 22, 23, 24, 25, 26, 27, 28]) {
        run(seed);
    }
}

#[test]
fn diff_of_one_change_reads_a_few_paths() {
    let mut rng = Rng::new(31);
    let mut store = MemNodeStore::new();
    let (parent, _) = build(&mut store, LayerId(1), 0..5000, &mut rng);
    let stats = parent.check(&store).unwrap();
    let mut child = parent.clone();
    let mut freed = Vec::new();
    child.insert(&store, LayerId(2), &key(2500), b"changed", &mut freed).unwrap();
    child.write_dirty(&mut store, Generation(2)).unwrap();
    let before = store.loads();
    let diff = tree_diff(&parent, &child, &store);
    let loads = store.loads() - before;
    assert_eq!(diff.len(), 1);
    assert!(
        loads <= 2 * stats.depth as u64 + 2,
        "diff read {loads} nodes of a tree of {} nodes and depth {}",
        stats.nodes,
        stats.depth
    );
}
