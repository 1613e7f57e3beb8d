//! One test per fsck issue kind: an image is damaged on purpose in exactly one way, and fsck
//! must report exactly that kind. Damage is done either to raw blocks (re-sealed where the
//! damage must pass the checksum) or through the engine's internals, as a buggy engine would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use lcfs_device::{BlockDevice, MemDevice};

use super::{check, IssueKind, Report};
use crate::alloc::freemap;
use crate::format::header::{self, BLOCK_SIZE};
use crate::format::records::{self, ExtentValue};
use crate::fs::{Fs, MkfsOptions, MountOptions};
use crate::types::{BlockNo, FileType, Ino, LayerId, Timespec};

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 0)
}

/// A clean image: committed layer "base" (a directory, two files with data), and a writable
/// child "top" that rewrote part of one file.
fn image() -> Arc<dyn BlockDevice> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(8192));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    let base = fs.create_layer("base", None).unwrap();
    let dir = fs.mkdir(base, Ino::ROOT, b"dir", 0o755, 0, 0, now()).unwrap();
    for name in [&b"a"[..], b"b"] {
        let f = fs.mknod(base, dir.ino, name, FileType::Regular, 0o644, 0, 0, 0, now()).unwrap();
        fs.write(base, f.ino, 0, &[name[0]; 20_000], now()).unwrap();
    }
    fs.commit_layer("base").unwrap();
    let top = fs.create_layer("top", Some("base")).unwrap();
    let a = fs.lookup(top, dir.ino, b"a").unwrap();
    fs.write(top, a.ino, 4096, &[9u8; 4096], now()).unwrap();
    fs.unmount().unwrap();
    assert!(check(Arc::clone(&dev)).unwrap().is_clean());
    dev
}

fn kinds(dev: &Arc<dyn BlockDevice>) -> (Vec<IssueKind>, Report) {
    let report = check(Arc::clone(dev)).unwrap();
    (report.kinds(), report)
}

/// Root block of layer `id`'s tree at the last checkpoint.
fn layer_root(dev: &Arc<dyn BlockDevice>, id: u64) -> BlockNo {
    let fs = Fs::mount(Arc::clone(dev), &MountOptions::default()).unwrap();
    let mut state = fs.lock().unwrap();
    state.open_layer(LayerId(id)).unwrap().rec.root.block
}

fn read(dev: &Arc<dyn BlockDevice>, block: BlockNo) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    dev.read(block.0, &mut buf).unwrap();
    buf
}

/// Runs `f` on the engine's state, then unmounts cleanly (the damage is checkpointed).
fn with_state(dev: &Arc<dyn BlockDevice>, f: impl FnOnce(&mut crate::fs::State)) {
    let fs = Fs::mount(Arc::clone(dev), &MountOptions::default()).unwrap();
    f(&mut fs.lock().unwrap());
    fs.unmount().unwrap();
}

/// Rewrites the free map (same chain) and the superblock's free count.
fn rewrite_free_map(dev: &Arc<dyn BlockDevice>, change: impl FnOnce(&mut crate::alloc::Extents)) {
    let fs = Fs::mount(Arc::clone(dev), &MountOptions::default()).unwrap();
    let state = fs.lock().unwrap();
    let mut free = state.space.free_after_checkpoint();
    change(&mut free);
    let chain = state.free_map_chain.clone();
    for (b, bytes) in chain.iter().zip(freemap::encode(&free, &chain, state.sb.generation)) {
        dev.write(b.0, &bytes).unwrap();
    }
    let mut sb = state.sb.clone();
    sb.blocks_free = free.blocks();
    dev.write(sb.slot().0, &sb.encode()).unwrap();
}

#[test]
fn a_flipped_bit_in_a_node_is_a_bad_checksum() {
    let dev = image();
    let root = layer_root(&dev, 2);
    let mut buf = read(&dev, root);
    buf[200] ^= 1;
    dev.write(root.0, &buf).unwrap();
    assert_eq!(kinds(&dev).0, vec![IssueKind::BadChecksum]);
}

#[test]
fn a_node_written_to_the_wrong_block_is_misdirected() {
    let dev = image();
    let (base_root, top_root) = (layer_root(&dev, 1), layer_root(&dev, 2));
    dev.write(top_root.0, &read(&dev, base_root)).unwrap();
    assert_eq!(kinds(&dev).0, vec![IssueKind::MisdirectedBlock]);
}

/// The other half of a misdirected write: the block the node was meant for kept its previous
/// content, a valid node of an earlier generation.
#[test]
fn a_node_that_kept_an_older_generation_is_stale() {
    let dev = image();
    let root = layer_root(&dev, 2);
    let mut buf = read(&dev, root);
    let mut h = header::verify_any(&buf, root).unwrap();
    h.generation = crate::types::Generation(h.generation.0 - 1);
    header::seal(&mut buf, &h);
    dev.write(root.0, &buf).unwrap();
    assert_eq!(kinds(&dev).0, vec![IssueKind::StaleBlock]);
}

#[test]
fn a_flipped_bit_in_a_data_block_is_a_bad_checksum() {
    let dev = image();
    // The block "top" rewrote: the second block of base's file "a".
    let block = with_extents(&dev, 2).into_iter().find(|e| e.owner == LayerId(2)).unwrap().disk;
    let mut buf = read(&dev, block);
    buf[4000] ^= 0x40;
    dev.write(block.0, &buf).unwrap();
    let (found, report) = kinds(&dev);
    assert_eq!(found, vec![IssueKind::BadChecksum], "{report}");
    assert_eq!(report.issues[0].blocks, vec![block.0]);
}

/// Every extent of layer `id`.
fn with_extents(dev: &Arc<dyn BlockDevice>, id: u64) -> Vec<ExtentValue> {
    let fs = Fs::mount(Arc::clone(dev), &MountOptions::default()).unwrap();
    let mut state = fs.lock().unwrap();
    let tree = state.open_layer(LayerId(id)).unwrap().tree.clone();
    let items = tree
        .range(&state.store, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, usize::MAX)
        .unwrap();
    items
        .iter()
        .filter(|(k, _)| matches!(records::decode_key(k), Ok(records::Key::Extent(..))))
        .map(|(_, v)| records::decode_extent(v).unwrap())
        .collect()
}

#[test]
fn a_sealed_but_undecodable_node_is_a_bad_block() {
    let dev = image();
    let root = layer_root(&dev, 2);
    let mut buf = read(&dev, root);
    let h = header::verify_any(&buf, root).unwrap();
    buf[header::HEADER_SIZE + 2] = 0xff; // entry count far past what the block holds
    buf[header::HEADER_SIZE + 3] = 0xff;
    header::seal(&mut buf, &h);
    dev.write(root.0, &buf).unwrap();
    assert_eq!(kinds(&dev).0, vec![IssueKind::BadBlock]);
}

#[test]
fn a_used_block_in_the_free_map_is_free_and_used() {
    let dev = image();
    let root = layer_root(&dev, 2);
    rewrite_free_map(&dev, |free| free.insert(root.0, 1));
    assert_eq!(kinds(&dev).0, vec![IssueKind::BlockFreeAndUsed]);
}

#[test]
fn a_block_missing_from_the_free_map_is_leaked() {
    let dev = image();
    let last = dev.block_count() - 1;
    rewrite_free_map(&dev, |free| free.remove(last, 1));
    let (found, report) = kinds(&dev);
    assert_eq!(found, vec![IssueKind::BlockLeaked]);
    assert_eq!(report.issues[0].blocks, vec![last]);
}

#[test]
fn two_extents_naming_one_block_are_used_twice() {
    let dev = image();
    with_state(&dev, |state| {
        state
            .with_layer(LayerId(2), true, |ctx| {
                // A second file's extent pointing at the first file's private block.
                let dir = crate::ns::lookup(ctx, Ino::ROOT, b"dir")?;
                let a = crate::ns::lookup(ctx, dir.ino, b"a")?;
                let extent = ctx.tree.range(
                    ctx.store,
                    std::ops::Bound::Included(&records::extent_key(a.ino, 0)[..]),
                    std::ops::Bound::Unbounded,
                    8,
                )?;
                let owned = extent
                    .iter()
                    .filter_map(|(_, v)| records::decode_extent(v).ok())
                    .find(|e| e.owner == LayerId(2))
                    .expect("top owns the block it rewrote");
                let b = crate::ns::lookup(ctx, dir.ino, b"b")?;
                let key = records::extent_key(b.ino, 0);
                let value = records::encode_extent(&ExtentValue { count: 1, ..owned });
                let freed = &mut *ctx.freed_nodes;
                ctx.tree.insert(ctx.store, ctx.layer, &key, &value, freed)?;
                Ok(())
            })
            .unwrap();
    });
    assert_eq!(kinds(&dev).0, vec![IssueKind::BlockUsedTwice]);
}

#[test]
fn a_node_of_a_sibling_layer_contradicts_ownership() {
    let dev = image();
    // Layer 2's root claims to belong to layer 7, which is not layer 2 or an ancestor.
    let root = layer_root(&dev, 2);
    let mut buf = read(&dev, root);
    let mut h = header::verify_any(&buf, root).unwrap();
    h.owner = LayerId(7);
    header::seal(&mut buf, &h);
    dev.write(root.0, &buf).unwrap();
    assert_eq!(kinds(&dev).0, vec![IssueKind::OwnershipContradiction]);
}

#[test]
fn a_wrong_child_count_contradicts_the_layer_tree() {
    let dev = image();
    with_state(&dev, |state| {
        let mut rec = state.open_layer(LayerId(1)).unwrap().rec.clone();
        rec.children = 3;
        state.put_record(rec).unwrap();
    });
    assert_eq!(kinds(&dev).0, vec![IssueKind::LayerTree]);
}

#[test]
fn an_inode_with_the_wrong_nlink_is_reported() {
    let dev = image();
    with_state(&dev, |state| {
        state
            .with_layer(LayerId(2), true, |ctx| {
                let dir = crate::ns::lookup(ctx, Ino::ROOT, b"dir")?;
                let b = crate::ns::lookup(ctx, dir.ino, b"b")?;
                let key = records::inode_key(b.ino);
                let mut rec = records::decode_inode(&ctx.tree.get(ctx.store, &key)?.unwrap())?;
                rec.nlink = 2;
                let freed = &mut *ctx.freed_nodes;
                ctx.tree.insert(ctx.store, ctx.layer, &key, &records::encode_inode(&rec), freed)?;
                Ok(())
            })
            .unwrap();
    });
    assert_eq!(kinds(&dev).0, vec![IssueKind::NlinkMismatch]);
}

#[test]
fn an_entry_naming_a_missing_inode_dangles() {
    let dev = image();
    with_state(&dev, |state| {
        state
            .with_layer(LayerId(2), true, |ctx| {
                let dir = crate::ns::lookup(ctx, Ino::ROOT, b"dir")?;
                let b = crate::ns::lookup(ctx, dir.ino, b"b")?;
                // Remove the inode record and its extents, keep the entry.
                let lo = records::key_prefix(b.ino, records::ItemKind::Inode);
                let hi = records::key_prefix(Ino(b.ino.0 + 1), records::ItemKind::Inode);
                let items = ctx.tree.range(
                    ctx.store,
                    std::ops::Bound::Included(&lo[..]),
                    std::ops::Bound::Excluded(&hi[..]),
                    100,
                )?;
                for (key, _) in items {
                    let freed = &mut *ctx.freed_nodes;
                    ctx.tree.remove(ctx.store, ctx.layer, &key, freed)?;
                }
                Ok(())
            })
            .unwrap();
    });
    let (found, report) = kinds(&dev);
    assert_eq!(found, vec![IssueKind::DanglingEntry], "{report}");
}

#[test]
fn an_entry_without_its_back_reference_is_reported() {
    let dev = image();
    with_state(&dev, |state| {
        state
            .with_layer(LayerId(2), true, |ctx| {
                let dir = crate::ns::lookup(ctx, Ino::ROOT, b"dir")?;
                let b = crate::ns::lookup(ctx, dir.ino, b"b")?;
                let key = records::inode_ref_key(b.ino, dir.ino, b"b");
                let freed = &mut *ctx.freed_nodes;
                assert!(ctx.tree.remove(ctx.store, ctx.layer, &key, freed)?.is_some());
                Ok(())
            })
            .unwrap();
    });
    let (found, report) = kinds(&dev);
    assert_eq!(found, vec![IssueKind::BackrefMismatch], "{report}");
}

#[test]
fn a_back_reference_without_its_entry_is_reported() {
    let dev = image();
    with_state(&dev, |state| {
        state
            .with_layer(LayerId(2), true, |ctx| {
                let dir = crate::ns::lookup(ctx, Ino::ROOT, b"dir")?;
                let b = crate::ns::lookup(ctx, dir.ino, b"b")?;
                // A second name for b that no directory entry gives.
                let key = records::inode_ref_key(b.ino, Ino::ROOT, b"ghost");
                let freed = &mut *ctx.freed_nodes;
                ctx.tree.insert(ctx.store, ctx.layer, &key, &[], freed)?;
                Ok(())
            })
            .unwrap();
    });
    let (found, report) = kinds(&dev);
    assert_eq!(found, vec![IssueKind::BackrefMismatch], "{report}");
}

#[test]
fn an_inode_counter_behind_the_inodes_in_use_disagrees() {
    let dev = image();
    with_state(&dev, |state| state.next_ino = 3);
    assert_eq!(kinds(&dev).0, vec![IssueKind::CountersDisagree]);
}

#[test]
fn zeroed_superblocks_are_unmountable() {
    let dev = image();
    dev.write(0, &[0u8; BLOCK_SIZE]).unwrap();
    dev.write(1, &[0u8; BLOCK_SIZE]).unwrap();
    let (found, report) = kinds(&dev);
    assert_eq!(found, vec![IssueKind::Unmountable]);
    assert_eq!(report.worst(), Some(super::Severity::Fatal));
}
