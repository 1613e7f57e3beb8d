//! `changes` on corrupt inode references: a cycle or a directory with two names is
//! `Error::Corrupt`, never a loop, a stack overflow or a panic. The damage is done through the
//! engine's internals, as a buggy engine would (the fsck tests' method).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use lcfs_device::{BlockDevice, MemDevice};

use crate::error::Error;
use crate::format::records;
use crate::fs::{Fs, MkfsOptions, MountOptions};
use crate::types::{FileType, Ino, LayerId, Timespec};

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 0)
}

/// Base with /a/b/f committed; child "top" rewrote f. Returns the filesystem, the child, and
/// the inodes of a and b.
fn image() -> (Fs, LayerId, Ino, Ino) {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(4096));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
    let base = fs.create_layer("base", None).unwrap();
    let a = fs.mkdir(base, Ino::ROOT, b"a", 0o755, 0, 0, now()).unwrap().ino;
    let b = fs.mkdir(base, a, b"b", 0o755, 0, 0, now()).unwrap().ino;
    let f = fs.mknod(base, b, b"f", FileType::Regular, 0o644, 0, 0, 0, now()).unwrap().ino;
    fs.commit_layer("base").unwrap();
    let top = fs.create_layer("top", Some("base")).unwrap();
    fs.write(top, f, 0, b"new", now()).unwrap();
    assert_eq!(fs.changes(top).unwrap().len(), 3, "/a, /a/b, /a/b/f");
    (fs, top, a, b)
}

/// Replaces, in layer `top`, the item `old` by the item `new` (both inode references).
fn swap_item(fs: &Fs, top: LayerId, old: Option<Vec<u8>>, new: Vec<u8>) {
    let mut state = fs.lock().unwrap();
    state
        .with_layer(top, true, |ctx| {
            if let Some(old) = old {
                assert!(ctx.tree.remove(ctx.store, ctx.layer, &old, ctx.freed_nodes)?.is_some());
            }
            ctx.tree.insert(ctx.store, ctx.layer, &new, &[], ctx.freed_nodes)?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_cycle_of_inode_references_is_corrupt() {
    let (fs, top, a, b) = image();
    // a now claims to be the entry "a" of b, which is below a.
    let old = records::inode_ref_key(a, Ino::ROOT, b"a");
    swap_item(&fs, top, Some(old), records::inode_ref_key(a, b, b"a"));
    match fs.changes(top) {
        Err(Error::Corrupt { what, .. }) => assert!(what.contains("root"), "{what}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_directory_with_two_names_is_corrupt() {
    let (fs, top, _, b) = image();
    swap_item(&fs, top, None, records::inode_ref_key(b, Ino::ROOT, b"again"));
    match fs.changes(top) {
        Err(Error::Corrupt { what, .. }) => assert!(what.contains("two names"), "{what}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
