//! The layer table: numbering, clone as deep copy, committed layers are read-only (EROFS),
//! a parent cannot be removed (EBUSY), and the errors of create/commit/remove in order.

mod common;

use common::{base, file, t};
use lcfs_model::{Errno, FileType, Ino, LayerId, LayerState, Model, SetAttr, Timespec, XattrFlags};

#[test]
fn a_new_layer_has_an_empty_root_with_fixed_attributes() {
    let (model, layer) = base();
    assert_eq!(layer, LayerId(1));
    let root = model.getattr(layer, Ino::ROOT).unwrap();
    assert_eq!((root.kind, root.perm, root.nlink), (FileType::Directory, 0o755, 2));
    assert_eq!((root.uid, root.gid, root.size, root.rdev), (0, 0, 0, 0));
    assert_eq!((root.atime, root.mtime, root.ctime), Default::default());
    assert!(model.readdir(layer, Ino::ROOT, None, 100).unwrap().is_empty());
}

#[test]
fn layer_ids_count_from_one_and_are_never_reused() {
    let mut model = Model::new();
    assert_eq!(model.create_layer("a", None), Ok(LayerId(1)));
    assert_eq!(model.create_layer("a", None), Err(Errno::EEXIST));
    assert_eq!(model.create_layer("b", None), Ok(LayerId(2)));
    model.remove_layer("b").unwrap();
    assert_eq!(model.create_layer("b", None), Ok(LayerId(3)));
    assert_eq!(model.layer_id("b"), Ok(LayerId(3)));
}

#[test]
fn inode_numbers_are_filesystem_wide_and_failures_take_none() {
    let (mut model, a) = base();
    let b = model.create_layer("other", None).unwrap();
    assert_eq!(file(&mut model, a, Ino::ROOT, "x", 1).ino, Ino(2));
    let fail = model.mknod(a, Ino::ROOT, b"x", FileType::Regular, 0o644, 0, 0, 0, t(2));
    assert_eq!(fail, Err(Errno::EEXIST));
    assert_eq!(file(&mut model, b, Ino::ROOT, "x", 3).ino, Ino(3));
    model.remove_layer("other").unwrap();
    assert_eq!(file(&mut model, a, Ino::ROOT, "y", 4).ino, Ino(4));
}

#[test]
fn create_layer_checks_name_then_taken_then_parent() {
    let (mut model, _) = base();
    for bad in ["", ".", "..", "a/b", "a\0b"] {
        assert_eq!(model.create_layer(bad, None), Err(Errno::EINVAL), "{bad:?}");
    }
    assert_eq!(model.create_layer(&"n".repeat(256), None), Err(Errno::ENAMETOOLONG));
    assert!(model.create_layer(&"n".repeat(255), None).is_ok());
    assert_eq!(model.create_layer("base", Some("nope")), Err(Errno::EEXIST));
    assert_eq!(model.create_layer("child", Some("nope")), Err(Errno::ENOENT));
    assert_eq!(model.create_layer("child", Some("base")), Err(Errno::EINVAL));
    assert_eq!(model.layers().len(), 2, "failures created nothing");
    assert_eq!(model.next_layer_id(), LayerId(3));
}

#[test]
fn a_clone_is_a_copy_that_then_lives_apart() {
    let (mut model, parent) = base();
    let f = file(&mut model, parent, Ino::ROOT, "f", 1).ino;
    model.write(parent, f, 0, b"parent", t(2)).unwrap();
    model.commit_layer("base").unwrap();
    let child = model.create_layer("child", Some("base")).unwrap();
    let before = model.dump_layer(parent).unwrap();
    assert_eq!(model.dump_layer(child).unwrap().inodes, before.inodes);
    assert_eq!(model.dump_layer(child).unwrap().paths, before.paths);

    model.write(child, f, 0, b"child!", t(3)).unwrap();
    model.unlink(child, Ino::ROOT, b"f", t(4)).unwrap();
    file(&mut model, child, Ino::ROOT, "g", 5);
    assert_eq!(model.dump_layer(parent).unwrap(), before);
    assert_eq!(model.read(parent, f, 0, 100).unwrap(), b"parent");
    assert_eq!(model.getattr(child, f), Err(Errno::ENOENT));
    let sibling = model.create_layer("sibling", Some("base")).unwrap();
    assert_eq!(model.read(sibling, f, 0, 100).unwrap(), b"parent");
}

#[test]
fn committed_layers_refuse_every_change_with_erofs_but_read() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    model.commit_layer("base").unwrap();
    let before = model.clone();
    let now = t(9);
    let set = SetAttr { perm: Some(0o600), ..Default::default() };
    let results = [
        model.setattr(layer, f, &set, now).map(drop),
        model.mknod(layer, Ino::ROOT, b"n", FileType::Fifo, 0o644, 0, 0, 0, now).map(drop),
        model.mkdir(layer, Ino::ROOT, b"d", 0o755, 0, 0, now).map(drop),
        model.symlink(layer, Ino::ROOT, b"s", b"t", 0, 0, now).map(drop),
        model.link(layer, f, Ino::ROOT, b"l", now).map(drop),
        model.unlink(layer, Ino::ROOT, b"f", now),
        model.rmdir(layer, Ino::ROOT, b"f", now),
        model.rename(layer, Ino::ROOT, b"f", Ino::ROOT, b"g", Default::default(), now),
        model.write(layer, f, 0, b"x", now).map(drop),
        model.setxattr(layer, f, b"user.a", b"v", XattrFlags::Any, now),
        model.removexattr(layer, f, b"user.a", now),
        // EROFS comes before the name checks and the inode checks.
        model.mkdir(layer, Ino::ROOT, b"", 0o755, 0, 0, now).map(drop),
        model.write(layer, Ino(99), 0, b"x", now).map(drop),
    ];
    for (index, result) in results.into_iter().enumerate() {
        assert_eq!(result, Err(Errno::EROFS), "operation {index}");
    }
    assert_eq!(model, before);
    assert!(model.getattr(layer, f).is_ok());
    assert_eq!(model.read(layer, f, 0, 1), Ok(Vec::new()));
    assert_eq!(model.fsync(layer, f), Ok(()));
}

#[test]
fn commit_twice_is_einval_and_unknown_is_enoent() {
    let (mut model, _) = base();
    assert_eq!(model.commit_layer("nope"), Err(Errno::ENOENT));
    model.commit_layer("base").unwrap();
    assert_eq!(model.commit_layer("base"), Err(Errno::EINVAL));
    assert_eq!(model.layer("base").unwrap().state, LayerState::Committed);
}

#[test]
fn removing_a_parent_is_ebusy_until_its_children_are_gone() {
    let (mut model, _) = base();
    model.commit_layer("base").unwrap();
    model.create_layer("c1", Some("base")).unwrap();
    model.create_layer("c2", Some("base")).unwrap();
    assert_eq!(model.layer("base").unwrap().children, 2);
    assert_eq!(model.remove_layer("base"), Err(Errno::EBUSY));
    model.remove_layer("c1").unwrap();
    assert_eq!(model.remove_layer("base"), Err(Errno::EBUSY));
    model.remove_layer("c2").unwrap();
    assert_eq!(model.layer("base").unwrap().children, 0);
    assert_eq!(model.remove_layer("base"), Ok(()));
    assert_eq!(model.remove_layer("base"), Err(Errno::ENOENT));
    assert_eq!(model.layer("base"), Err(Errno::ENOENT));
    assert!(model.layers().is_empty());
}

#[test]
fn layers_are_listed_by_name_with_parent_and_state() {
    let mut model = Model::new();
    model.create_layer("zeta", None).unwrap();
    model.commit_layer("zeta").unwrap();
    model.create_layer("alpha", Some("zeta")).unwrap();
    let all = model.layers();
    let names: Vec<&str> = all.iter().map(|info| info.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(all[0].parent.as_deref(), Some("zeta"));
    assert_eq!((all[0].state, all[0].id), (LayerState::Writable, LayerId(2)));
    assert_eq!((all[1].parent.clone(), all[1].children), (None, 1));
}

#[test]
fn inode_operations_on_an_unknown_layer_are_enoent_first() {
    let mut model = Model::new();
    let nowhere = LayerId(7);
    assert_eq!(model.getattr(nowhere, Ino::ROOT), Err(Errno::ENOENT));
    assert_eq!(
        model.mkdir(nowhere, Ino::ROOT, b"", 0, 0, 0, Timespec::default()).map(drop),
        Err(Errno::ENOENT)
    );
    assert_eq!(model.fsync(nowhere, Ino::ROOT), Err(Errno::ENOENT));
    assert_eq!(model.sync(), Ok(()));
    assert_eq!(model.statfs().block_size, 4096);
    assert_eq!(model.statfs().name_max, 255);
}
