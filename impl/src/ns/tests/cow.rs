//! Goal: a layer cloned from a committed parent changes only its own tree and blocks. Writes
//! over an ancestor's blocks land in new blocks; truncate, unlink, overwrite and rename never
//! report an ancestor's block as freed; the parent reads exactly as before. Method: a base layer,
//! clones of it, and checks of both sides after every checkpoint (the fixture's frees assert
//! that only the owner frees a block).

use std::collections::BTreeSet;

use super::support::*;
use crate::ns::{self, PAGE_SIZE};
use crate::tree::Owned;
use crate::types::{BlockNo, Ino, LayerId, RenameFlags, SetAttr};

const ROOT: Ino = Ino::ROOT;
const P: u64 = PAGE_SIZE as u64;

fn fill(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i / 7) as u8).wrapping_add(seed) | 0x80).collect()
}

/// The blocks of the extents layer `index` owns, found the way layer removal finds them.
fn owned_blocks(fx: &Fixture, index: usize) -> BTreeSet<u64> {
    let layer = &fx.layers[index];
    let mut blocks = BTreeSet::new();
    let mut visit = |owned: Owned<'_>| {
        if let Owned::Item { key, value } = owned {
            if let Some((first, count)) = ns::owned_extent(key, value, layer.id) {
                blocks.extend(first.0..first.0 + count);
            }
        }
        Ok(())
    };
    layer.tree.visit_owned(&fx.store, layer.id, &mut visit).unwrap();
    blocks
}

#[test]
fn a_clone_never_frees_or_changes_its_parents_blocks() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let g = fx.create(0, ROOT, b"g");
    let h = fx.create(0, ROOT, b"h");
    let base_f = fill(6 * PAGE_SIZE, 1);
    fx.with(0, |c| ns::write(c, f.ino, 0, &base_f, t(2))).unwrap();
    fx.with(0, |c| ns::write(c, g.ino, 0, &fill(2 * PAGE_SIZE, 2), t(2))).unwrap();
    fx.with(0, |c| ns::write(c, h.ino, 0, &fill(PAGE_SIZE, 3), t(2))).unwrap();
    let child = fx.clone_layer(0);
    let base_blocks = owned_blocks(&fx, 0);
    assert_eq!(base_blocks.len(), 9);

    let mut child_f = base_f.clone();
    fx.with(child, |c| ns::write(c, f.ino, P + 5, b"child", t(3))).unwrap();
    child_f[PAGE_SIZE + 5..PAGE_SIZE + 10].copy_from_slice(b"child");
    fx.with(child, |c| ns::write(c, f.ino, 3 * P, &[0u8; PAGE_SIZE], t(3))).unwrap();
    child_f[3 * PAGE_SIZE..4 * PAGE_SIZE].fill(0);
    let set = SetAttr { size: Some(5 * P - 1), ..SetAttr::default() };
    fx.with(child, |c| ns::setattr(c, f.ino, &set, t(3))).unwrap();
    child_f.truncate(5 * PAGE_SIZE - 1);
    fx.with(child, |c| ns::unlink(c, ROOT, b"g", t(3))).unwrap();
    let flags = RenameFlags::default();
    fx.with(child, |c| ns::rename(c, ROOT, b"f", ROOT, b"h", flags, t(3))).unwrap();
    assert!(fx.layers[child].freed_extents.is_empty(), "nothing of the parent is freed");
    let allocated = fx.checkpoint(child);
    assert!(fx.layers[child].all_freed_extents.is_empty());
    assert_eq!(allocated.iter().map(|a| a.1).sum::<u64>(), 2, "pages 1 and 4 were rewritten");

    assert_eq!(fx.read_all(child, f.ino), child_f);
    assert_eq!(fx.with(child, |c| ns::lookup(c, ROOT, b"h")).unwrap().ino, f.ino);
    assert_eq!(errno(fx.with(child, |c| ns::getattr(c, g.ino))), ENOENT);
    assert_eq!(fx.with(child, |c| ns::getattr(c, f.ino)).unwrap().blocks, 4 * 8);
    assert_eq!(fx.read_all(0, f.ino), base_f, "the parent is untouched");
    assert_eq!(fx.read_all(0, g.ino), fill(2 * PAGE_SIZE, 2));
    assert_eq!(fx.with(0, |c| ns::lookup(c, ROOT, b"h")).unwrap().ino, h.ino);
    assert_eq!(owned_blocks(&fx, 0), base_blocks);
    let mine: BTreeSet<u64> = allocated.iter().flat_map(|(b, n)| b.0..b.0 + n).collect();
    assert_eq!(owned_blocks(&fx, child), mine, "layer removal would free exactly these");
    assert!(mine.iter().all(|b| fx.data.owner(BlockNo(*b)) == Some(LayerId(2))));
}

#[test]
fn a_clone_frees_its_own_blocks_and_only_those() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    fx.with(0, |c| ns::write(c, f.ino, 0, &fill(4 * PAGE_SIZE, 4), t(2))).unwrap();
    let child = fx.clone_layer(0);
    let mine = fx.create(child, ROOT, b"mine");
    fx.with(child, |c| ns::write(c, mine.ino, 0, &fill(3 * PAGE_SIZE, 5), t(3))).unwrap();
    fx.with(child, |c| ns::write(c, f.ino, 0, &fill(2 * PAGE_SIZE, 6), t(3))).unwrap();
    fx.checkpoint(child);
    assert_eq!(owned_blocks(&fx, child).len(), 5);
    fx.with(child, |c| ns::write(c, f.ino, 0, &fill(4 * PAGE_SIZE, 7), t(4))).unwrap();
    let set = SetAttr { size: Some(P), ..SetAttr::default() };
    fx.with(child, |c| ns::setattr(c, mine.ino, &set, t(4))).unwrap();
    fx.checkpoint(child);
    let freed: u64 = fx.layers[child].all_freed_extents.iter().map(|e| e.1).sum();
    assert_eq!(freed, 2 + 2, "f's own two blocks rewritten, mine's two dropped");
    assert_eq!(owned_blocks(&fx, child).len(), 4 + 1);
    fx.with(child, |c| ns::unlink(c, ROOT, b"f", t(5))).unwrap();
    fx.with(child, |c| ns::unlink(c, ROOT, b"mine", t(5))).unwrap();
    fx.checkpoint(child);
    assert!(owned_blocks(&fx, child).is_empty());
    assert_eq!(fx.data.len(), 4, "only the parent's blocks are left");
    assert_eq!(fx.read_all(0, f.ino), fill(4 * PAGE_SIZE, 4));
}

#[test]
fn a_grandchild_sees_the_whole_ancestry_and_writes_its_own() {
    let mut fx = Fixture::new();
    let d = fx.mkdir(0, ROOT, b"d");
    let f = fx.create(0, d.ino, b"f");
    fx.with(0, |c| ns::write(c, f.ino, 0, b"base", t(2))).unwrap();
    let child = fx.clone_layer(0);
    fx.with(child, |c| ns::write(c, f.ino, 4, b"+child", t(3))).unwrap();
    let e = fx.mkdir(child, d.ino, b"e");
    let grandchild = fx.clone_layer(child);
    fx.with(grandchild, |c| ns::write(c, f.ino, 0, b"B", t(4))).unwrap();
    fx.with(grandchild, |c| ns::rmdir(c, d.ino, b"e", t(4))).unwrap();
    fx.checkpoint(grandchild);
    assert!(fx.layers[grandchild].all_freed_extents.is_empty());
    assert_eq!(fx.read_all(grandchild, f.ino), b"Base+child".to_vec());
    assert_eq!(fx.read_all(child, f.ino), b"base+child".to_vec());
    assert_eq!(fx.read_all(0, f.ino), b"base".to_vec());
    assert_eq!(fx.with(child, |c| ns::lookup(c, d.ino, b"e")).unwrap().ino, e.ino);
    assert_eq!(errno(fx.with(grandchild, |c| ns::lookup(c, d.ino, b"e"))), ENOENT);
    assert_eq!(fx.with(grandchild, |c| ns::getattr(c, d.ino)).unwrap().nlink, 2);
    assert_eq!(fx.with(child, |c| ns::getattr(c, d.ino)).unwrap().nlink, 3);
    let n = fx.create(grandchild, ROOT, b"new");
    assert!(n.ino.0 > e.ino.0, "numbers are filesystem-wide");
}
