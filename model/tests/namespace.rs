//! Namespace rules: name checks (EINVAL, ENAMETOOLONG at 256 bytes), the order of checks,
//! nlink of files and directories, times of parents, mknod of every type, symlink limits,
//! link, unlink, rmdir and readdir paging.

mod common;

use common::{base, dir, file, nlink, t};
use lcfs_model::{DirEntry, Errno, FileType, Ino, SYMLINK_MAX};

#[test]
fn names_of_256_bytes_are_enametoolong_and_255_are_fine() {
    let (mut model, layer) = base();
    let long = vec![b'a'; 256];
    let fine = vec![b'a'; 255];
    let mk = |m: &mut lcfs_model::Model, name: &[u8]| {
        m.mknod(layer, Ino::ROOT, name, FileType::Regular, 0o644, 0, 0, 0, t(1)).map(|a| a.ino)
    };
    assert_eq!(mk(&mut model, &long), Err(Errno::ENAMETOOLONG));
    assert_eq!(model.mkdir(layer, Ino::ROOT, &long, 0o755, 0, 0, t(1)), Err(Errno::ENAMETOOLONG));
    assert_eq!(model.lookup(layer, Ino::ROOT, &long), Err(Errno::ENAMETOOLONG));
    assert_eq!(model.unlink(layer, Ino::ROOT, &long, t(1)), Err(Errno::ENAMETOOLONG));
    let ino = mk(&mut model, &fine).unwrap();
    assert_eq!(model.lookup(layer, Ino::ROOT, &fine).unwrap().ino, ino);
    assert_eq!(model.link(layer, ino, Ino::ROOT, &long, t(2)), Err(Errno::ENAMETOOLONG));
}

#[test]
fn bad_names_are_einval_before_the_inode_is_looked_at() {
    let (mut model, layer) = base();
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
        assert_eq!(model.lookup(layer, Ino::ROOT, bad), Err(Errno::EINVAL));
        assert_eq!(model.mkdir(layer, Ino(77), bad, 0o755, 0, 0, t(1)), Err(Errno::EINVAL));
    }
    // With a good name, the missing inode is next.
    assert_eq!(model.mkdir(layer, Ino(77), b"ok", 0o755, 0, 0, t(1)), Err(Errno::ENOENT));
}

#[test]
fn directory_nlink_is_two_plus_subdirectories() {
    let (mut model, layer) = base();
    let a = dir(&mut model, layer, Ino::ROOT, "a", 1).ino;
    assert_eq!(nlink(&model, layer, Ino::ROOT), 3);
    assert_eq!(nlink(&model, layer, a), 2);
    dir(&mut model, layer, a, "b", 2);
    dir(&mut model, layer, a, "c", 3);
    file(&mut model, layer, a, "f", 4);
    assert_eq!(nlink(&model, layer, a), 4, "files do not count");
    model.rmdir(layer, a, b"b", t(5)).unwrap();
    assert_eq!(nlink(&model, layer, a), 3);
    let attr = model.getattr(layer, a).unwrap();
    assert_eq!((attr.mtime, attr.ctime), (t(5), t(5)), "rmdir touches the parent");
    model.check_invariants();
}

#[test]
fn new_inodes_take_what_they_are_given_and_touch_the_parent() {
    let (mut model, layer) = base();
    let attr = model
        .mknod(layer, Ino::ROOT, b"f", FileType::Regular, 0o104755, 7, 1000, 100, t(3))
        .unwrap();
    assert_eq!((attr.perm, attr.uid, attr.gid, attr.rdev, attr.nlink), (0o4755, 1000, 100, 0, 1));
    assert_eq!((attr.atime, attr.mtime, attr.ctime, attr.size), (t(3), t(3), t(3), 0));
    let root = model.getattr(layer, Ino::ROOT).unwrap();
    assert_eq!((root.mtime, root.ctime, root.atime), (t(3), t(3), t(0)));
}

#[test]
fn mknod_makes_every_type_but_directory_and_symlink() {
    let (mut model, layer) = base();
    for (index, kind) in FileType::ALL.into_iter().enumerate() {
        let name = format!("n{index}");
        let made = model.mknod(layer, Ino::ROOT, name.as_bytes(), kind, 0o640, 0x0801, 0, 0, t(1));
        match kind {
            FileType::Directory | FileType::Symlink => assert_eq!(made, Err(Errno::EINVAL)),
            FileType::CharDevice | FileType::BlockDevice => {
                assert_eq!(made.unwrap().rdev, 0x0801)
            }
            _ => assert_eq!(made.map(|a| (a.kind, a.rdev)), Ok((kind, 0))),
        }
    }
    model.check_invariants();
    let f = model.lookup(layer, Ino::ROOT, b"n0").unwrap().ino;
    // The kind check comes before ENOTDIR, ENOTDIR before EEXIST.
    let mk = |m: &mut lcfs_model::Model, dir, kind| {
        m.mknod(layer, dir, b"n0", kind, 0, 0, 0, 0, t(2)).map(drop)
    };
    assert_eq!(mk(&mut model, f, FileType::Directory), Err(Errno::EINVAL));
    assert_eq!(mk(&mut model, f, FileType::Fifo), Err(Errno::ENOTDIR));
    assert_eq!(mk(&mut model, Ino::ROOT, FileType::Fifo), Err(Errno::EEXIST));
}

#[test]
fn symlink_checks_target_then_existence() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let sym = |m: &mut lcfs_model::Model, dir, name: &[u8], target: &[u8]| {
        m.symlink(layer, dir, name, target, 5, 6, t(2))
    };
    assert_eq!(sym(&mut model, f, b"s", b"t"), Err(Errno::ENOTDIR));
    assert_eq!(sym(&mut model, Ino::ROOT, b"f", b""), Err(Errno::ENOENT));
    let long = vec![b'x'; SYMLINK_MAX + 1];
    assert_eq!(sym(&mut model, Ino::ROOT, b"f", &long), Err(Errno::ENAMETOOLONG));
    assert_eq!(sym(&mut model, Ino::ROOT, b"f", b"t"), Err(Errno::EEXIST));
    let target = vec![b'x'; SYMLINK_MAX];
    let attr = sym(&mut model, Ino::ROOT, b"s", &target).unwrap();
    assert_eq!((attr.kind, attr.perm, attr.size), (FileType::Symlink, 0o777, 4095));
    assert_eq!((attr.uid, attr.gid), (5, 6));
    assert_eq!(model.readlink(layer, attr.ino), Ok(target));
    assert_eq!(model.readlink(layer, f), Err(Errno::EINVAL));
    assert_eq!(model.read(layer, attr.ino, 0, 10), Err(Errno::EINVAL));
}

#[test]
fn link_counts_and_its_errors_come_in_order() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let d = dir(&mut model, layer, Ino::ROOT, "d", 2).ino;
    assert_eq!(model.link(layer, d, f, b"x", t(3)), Err(Errno::EPERM));
    assert_eq!(model.link(layer, f, f, b"x", t(3)), Err(Errno::ENOTDIR));
    assert_eq!(model.link(layer, f, Ino::ROOT, b"d", t(3)), Err(Errno::EEXIST));
    assert_eq!(model.link(layer, Ino(50), Ino::ROOT, b"x", t(3)), Err(Errno::ENOENT));
    let attr = model.link(layer, f, d, b"g", t(4)).unwrap();
    assert_eq!((attr.nlink, attr.ctime, attr.mtime), (2, t(4), t(1)));
    assert_eq!(model.getattr(layer, d).unwrap().mtime, t(4));
    model.unlink(layer, Ino::ROOT, b"f", t(5)).unwrap();
    let attr = model.getattr(layer, f).unwrap();
    assert_eq!((attr.nlink, attr.ctime), (1, t(5)), "a survivor's ctime changes");
    model.unlink(layer, d, b"g", t(6)).unwrap();
    assert_eq!(model.getattr(layer, f), Err(Errno::ENOENT), "gone at nlink 0");
    model.check_invariants();
}

#[test]
fn link_and_mkdir_stop_at_link_max() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let d = dir(&mut model, layer, Ino::ROOT, "d", 1).ino;
    for index in 1..lcfs_model::LINK_MAX {
        model.link(layer, f, d, format!("l{index}").as_bytes(), t(2)).unwrap();
    }
    assert_eq!(nlink(&model, layer, f), lcfs_model::LINK_MAX);
    assert_eq!(model.link(layer, f, d, b"over", t(3)), Err(Errno::EMLINK));
    assert_eq!(model.link(layer, f, d, b"l1", t(3)), Err(Errno::EEXIST), "EEXIST first");
    for index in 0..lcfs_model::LINK_MAX - 2 {
        model.mkdir(layer, d, format!("d{index}").as_bytes(), 0o755, 0, 0, t(4)).unwrap();
    }
    assert_eq!(nlink(&model, layer, d), lcfs_model::LINK_MAX);
    assert_eq!(model.mkdir(layer, d, b"over", 0o755, 0, 0, t(5)), Err(Errno::EMLINK));
    assert_eq!(model.mkdir(layer, d, b"d0", 0o755, 0, 0, t(5)), Err(Errno::EEXIST));
    model.check_invariants();
}

#[test]
fn unlink_and_rmdir_refuse_the_other_kind() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let d = dir(&mut model, layer, Ino::ROOT, "d", 1).ino;
    file(&mut model, layer, d, "inner", 1);
    assert_eq!(model.unlink(layer, Ino::ROOT, b"d", t(2)), Err(Errno::EISDIR));
    assert_eq!(model.rmdir(layer, Ino::ROOT, b"f", t(2)), Err(Errno::ENOTDIR));
    assert_eq!(model.rmdir(layer, Ino::ROOT, b"d", t(2)), Err(Errno::ENOTEMPTY));
    assert_eq!(model.rmdir(layer, Ino::ROOT, b"zz", t(2)), Err(Errno::ENOENT));
    assert_eq!(model.unlink(layer, f, b"zz", t(2)), Err(Errno::ENOTDIR));
    assert_eq!(model.lookup(layer, f, b"zz"), Err(Errno::ENOTDIR));
    model.unlink(layer, d, b"inner", t(3)).unwrap();
    model.rmdir(layer, Ino::ROOT, b"d", t(4)).unwrap();
    assert_eq!(model.getattr(layer, d), Err(Errno::ENOENT));
    assert_eq!(nlink(&model, layer, Ino::ROOT), 2);
}

#[test]
fn readdir_pages_by_name_bytes() {
    let (mut model, layer) = base();
    for (now, name) in ["b", "a", "c", "B"].into_iter().enumerate() {
        file(&mut model, layer, Ino::ROOT, name, now as i64);
    }
    let d = dir(&mut model, layer, Ino::ROOT, "d", 9);
    let names = |list: Vec<DirEntry>| list.into_iter().map(|e| e.name).collect::<Vec<_>>();
    let all = model.readdir(layer, Ino::ROOT, None, 100).unwrap();
    assert_eq!(all[4], DirEntry { name: b"d".to_vec(), ino: d.ino, kind: FileType::Directory });
    assert_eq!(names(all), [&b"B"[..], b"a", b"b", b"c", b"d"]);
    assert_eq!(names(model.readdir(layer, Ino::ROOT, None, 2).unwrap()), [b"B", b"a"]);
    assert_eq!(names(model.readdir(layer, Ino::ROOT, Some(b"a"), 2).unwrap()), [b"b", b"c"]);
    assert_eq!(names(model.readdir(layer, Ino::ROOT, Some(b"bb"), 9).unwrap()), [b"c", b"d"]);
    assert!(model.readdir(layer, Ino::ROOT, Some(b"d"), 9).unwrap().is_empty());
    assert!(model.readdir(layer, Ino::ROOT, None, 0).unwrap().is_empty());
    let f = model.lookup(layer, Ino::ROOT, b"a").unwrap().ino;
    assert_eq!(model.readdir(layer, f, None, 9), Err(Errno::ENOTDIR));
}

#[test]
fn fsync_checks_its_arguments() {
    let (model, layer) = base();
    assert_eq!(model.fsync(layer, Ino::ROOT), Ok(()));
    assert_eq!(model.fsync(layer, Ino(2)), Err(Errno::ENOENT));
}
