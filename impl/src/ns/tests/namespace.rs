//! Goal: every inode and directory operation follows docs/operations.md: effects, attributes,
//! and the errno of each check in its order. Method: named cases on a base layer.

use super::support::*;
use crate::format::records::decode_key;
use crate::ns::{self, item};
use crate::types::{FileType, Ino, SetAttr, Timespec, XattrFlags, LINK_MAX};

const ROOT: Ino = Ino::ROOT;

fn names(fx: &mut Fixture, dir: Ino) -> Vec<Vec<u8>> {
    let entries = fx.with(0, |c| ns::readdir(c, dir, None, usize::MAX)).unwrap();
    entries.into_iter().map(|e| e.name).collect()
}

fn items_of(fx: &Fixture, ino: Ino) -> usize {
    fx.items(0).iter().filter(|(k, _)| decode_key(k).unwrap().ino() == ino).count()
}

#[test]
fn the_root_is_an_empty_directory_owned_by_root() {
    let mut fx = Fixture::new();
    let a = fx.with(0, |c| ns::getattr(c, ROOT)).unwrap();
    assert_eq!(
        (a.kind, a.perm, a.nlink, a.uid, a.gid, a.size),
        (FileType::Directory, 0o755, 2, 0, 0, 0)
    );
    assert_eq!(
        (a.atime, a.mtime, a.ctime),
        (Timespec::default(), Timespec::default(), Timespec::default())
    );
    assert!(names(&mut fx, ROOT).is_empty());
    assert_eq!(errno(fx.with(0, ns::init_root)), EEXIST, "a second root is refused");
}

#[test]
fn create_then_lookup_and_readdir_in_name_order() {
    let mut fx = Fixture::new();
    for name in [&b"b"[..], b"a", b"ab", b"\xff", b"B"] {
        fx.create(0, ROOT, name);
    }
    assert_eq!(
        names(&mut fx, ROOT),
        vec![b"B".to_vec(), b"a".to_vec(), b"ab".to_vec(), b"b".to_vec(), b"\xff".to_vec()]
    );
    let a = fx.with(0, |c| ns::lookup(c, ROOT, b"ab")).unwrap();
    assert_eq!((a.kind, a.perm, a.nlink, a.uid, a.gid), (FileType::Regular, 0o644, 1, 7, 8));
    assert_eq!(a.ino, Ino(4), "numbers come from the counter in creation order");
    assert_eq!(fx.next_ino, 7);
    let page = fx.with(0, |c| ns::readdir(c, ROOT, Some(b"a"), 2)).unwrap();
    let got: Vec<_> = page.iter().map(|e| e.name.clone()).collect();
    assert_eq!(got, vec![b"ab".to_vec(), b"b".to_vec()]);
    assert!(page.iter().all(|e| e.kind == FileType::Regular));
    assert!(fx.with(0, |c| ns::readdir(c, ROOT, Some(b"\xff"), 10)).unwrap().is_empty());
    assert!(fx.with(0, |c| ns::readdir(c, ROOT, None, 0)).unwrap().is_empty());
    let long_after = vec![b'a'; 300];
    let after_long = fx.with(0, |c| ns::readdir(c, ROOT, Some(&long_after), 10)).unwrap();
    assert_eq!(after_long[0].name, b"ab".to_vec(), "an over-long cursor still orders by bytes");
    let root = fx.with(0, |c| ns::getattr(c, ROOT)).unwrap();
    assert_eq!((root.nlink, root.mtime, root.ctime), (2, t(1), t(1)));
}

#[test]
fn name_checks_come_first_and_in_order() {
    let mut fx = Fixture::new();
    let missing = Ino(999);
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(errno(fx.with(0, |c| ns::lookup(c, missing, bad))), EINVAL);
    }
    let long_slash = [vec![b'x'; 300], b"/".to_vec()].concat();
    assert_eq!(errno(fx.with(0, |c| ns::lookup(c, missing, &long_slash))), EINVAL);
    assert_eq!(errno(fx.with(0, |c| ns::lookup(c, missing, &[b'x'; 256]))), ENAMETOOLONG);
    assert_eq!(errno(fx.with(0, |c| ns::lookup(c, ROOT, &[b'x'; 255]))), ENOENT);
    assert_eq!(errno(fx.with(0, |c| ns::lookup(c, missing, b"x"))), ENOENT);
    let f = fx.create(0, ROOT, b"f");
    assert_eq!(errno(fx.with(0, |c| ns::lookup(c, f.ino, b"x"))), ENOTDIR);
    let name = [b'n'; 255];
    fx.create(0, ROOT, &name);
    assert_eq!(fx.with(0, |c| ns::lookup(c, ROOT, &name)).unwrap().ino, Ino(3));
}

#[test]
fn mknod_keeps_rdev_for_devices_only_and_checks_in_order() {
    let mut fx = Fixture::new();
    let mk = |fx: &mut Fixture, dir: Ino, name: &[u8], kind: FileType| {
        fx.with(0, |c| ns::mknod(c, dir, name, kind, 0o17644, 0x0801, 1, 2, t(5)))
    };
    let chr = mk(&mut fx, ROOT, b"c", FileType::CharDevice).unwrap();
    let blk = mk(&mut fx, ROOT, b"b", FileType::BlockDevice).unwrap();
    let fifo = mk(&mut fx, ROOT, b"p", FileType::Fifo).unwrap();
    let sock = mk(&mut fx, ROOT, b"s", FileType::Socket).unwrap();
    assert_eq!((chr.rdev, blk.rdev, fifo.rdev, sock.rdev), (0x0801, 0x0801, 0, 0));
    assert_eq!((chr.perm, chr.atime, chr.mtime, chr.ctime), (0o7644, t(5), t(5), t(5)));
    let before = fx.next_ino;
    assert_eq!(errno(mk(&mut fx, Ino(99), b"x", FileType::Directory)), ENOENT);
    assert_eq!(errno(mk(&mut fx, chr.ino, b"x", FileType::Directory)), EINVAL);
    assert_eq!(errno(mk(&mut fx, chr.ino, b"x", FileType::Symlink)), EINVAL);
    assert_eq!(errno(mk(&mut fx, chr.ino, b"x", FileType::Regular)), ENOTDIR);
    assert_eq!(errno(mk(&mut fx, ROOT, b"c", FileType::Regular)), EEXIST);
    assert_eq!(fx.next_ino, before, "failed creates do not move the counter");
}

#[test]
fn mkdir_counts_subdirectories_in_nlink() {
    let mut fx = Fixture::new();
    let d = fx.with(0, |c| ns::mkdir(c, ROOT, b"d", 0o1777, 3, 4, t(9))).unwrap();
    assert_eq!((d.kind, d.perm, d.nlink, d.size), (FileType::Directory, 0o1777, 2, 0));
    fx.mkdir(0, d.ino, b"e");
    fx.create(0, d.ino, b"f");
    assert_eq!(fx.with(0, |c| ns::getattr(c, d.ino)).unwrap().nlink, 3);
    let root = fx.with(0, |c| ns::getattr(c, ROOT)).unwrap();
    assert_eq!((root.nlink, root.mtime, root.ctime), (3, t(9), t(9)));
    assert_eq!(fx.with(0, |c| item::load_inode(c, d.ino)).unwrap().parent, ROOT);
    assert_eq!(errno(fx.with(0, |c| ns::mkdir(c, ROOT, b"d", 0o755, 0, 0, t(1)))), EEXIST);
    let mut full = fx.with(0, |c| item::load_inode(c, d.ino)).unwrap();
    full.nlink = LINK_MAX;
    fx.with(0, |c| item::store_inode(c, d.ino, &full)).unwrap();
    assert_eq!(errno(fx.with(0, |c| ns::mkdir(c, d.ino, b"e", 0o755, 0, 0, t(1)))), EEXIST);
    assert_eq!(errno(fx.with(0, |c| ns::mkdir(c, d.ino, b"g", 0o755, 0, 0, t(1)))), EMLINK);
    let file = fx.with(0, |c| ns::mknod(c, d.ino, b"g", FileType::Regular, 0o644, 0, 0, 0, t(1)));
    assert!(file.is_ok(), "files do not count against LINK_MAX of the directory");
}

#[test]
fn symlink_targets_span_chunks_and_check_in_order() {
    let mut fx = Fixture::new();
    let target: Vec<u8> = (0..4095u32).map(|i| (i % 251) as u8 + 1).collect();
    let s = fx.with(0, |c| ns::symlink(c, ROOT, b"s", &target, 5, 6, t(2))).unwrap();
    assert_eq!((s.kind, s.perm, s.size, s.nlink, s.uid), (FileType::Symlink, 0o777, 4095, 1, 5));
    assert_eq!(fx.with(0, |c| ns::readlink(c, s.ino)).unwrap(), target);
    let short = fx.with(0, |c| ns::symlink(c, ROOT, b"t", b"/x", 0, 0, t(2))).unwrap();
    assert_eq!(fx.with(0, |c| ns::readlink(c, short.ino)).unwrap(), b"/x".to_vec());
    let exact = vec![b'k'; 2048];
    let e = fx.with(0, |c| ns::symlink(c, ROOT, b"e", &exact, 0, 0, t(2))).unwrap();
    assert_eq!(fx.with(0, |c| ns::readlink(c, e.ino)).unwrap(), exact);
    let sym = |fx: &mut Fixture, dir: Ino, name: &[u8], target: &[u8]| {
        errno(fx.with(0, |c| ns::symlink(c, dir, name, target, 0, 0, t(3))))
    };
    assert_eq!(sym(&mut fx, s.ino, b"x", b""), ENOTDIR);
    assert_eq!(sym(&mut fx, ROOT, b"s", b""), ENOENT, "empty target before EEXIST");
    assert_eq!(sym(&mut fx, ROOT, b"s", &[b'a'; 4096]), ENAMETOOLONG);
    assert_eq!(sym(&mut fx, ROOT, b"s", b"y"), EEXIST);
    assert_eq!(errno(fx.with(0, |c| ns::readlink(c, ROOT))), EINVAL);
    fx.with(0, |c| ns::unlink(c, ROOT, b"s", t(4))).unwrap();
    assert_eq!(items_of(&fx, s.ino), 0, "the chunks go with the inode");
}

#[test]
fn hard_links_share_the_inode_and_count_in_nlink() {
    let mut fx = Fixture::new();
    let d = fx.mkdir(0, ROOT, b"d");
    let f = fx.create(0, ROOT, b"f");
    fx.with(0, |c| ns::write(c, f.ino, 0, b"data", t(2))).unwrap();
    let l = fx.with(0, |c| ns::link(c, f.ino, d.ino, b"g", t(3))).unwrap();
    assert_eq!((l.ino, l.nlink, l.ctime, l.mtime), (f.ino, 2, t(3), t(2)));
    let dir = fx.with(0, |c| ns::getattr(c, d.ino)).unwrap();
    assert_eq!((dir.nlink, dir.mtime, dir.ctime), (2, t(3), t(3)));
    assert_eq!(fx.with(0, |c| ns::lookup(c, d.ino, b"g")).unwrap().ino, f.ino);
    assert_eq!(errno(fx.with(0, |c| ns::link(c, d.ino, ROOT, b"x", t(4)))), EPERM);
    assert_eq!(errno(fx.with(0, |c| ns::link(c, f.ino, f.ino, b"x", t(4)))), ENOTDIR);
    assert_eq!(errno(fx.with(0, |c| ns::link(c, f.ino, ROOT, b"d", t(4)))), EEXIST);
    assert_eq!(errno(fx.with(0, |c| ns::link(c, Ino(99), ROOT, b"x", t(4)))), ENOENT);
    assert_eq!(errno(fx.with(0, |c| ns::link(c, f.ino, ROOT, b"", t(4)))), EINVAL);
    fx.with(0, |c| ns::unlink(c, ROOT, b"f", t(5))).unwrap();
    let after = fx.with(0, |c| ns::getattr(c, f.ino)).unwrap();
    assert_eq!((after.nlink, after.ctime), (1, t(5)));
    assert_eq!(fx.read_all(0, f.ino), b"data".to_vec());
    fx.with(0, |c| ns::unlink(c, d.ino, b"g", t(6))).unwrap();
    assert_eq!(errno(fx.with(0, |c| ns::getattr(c, f.ino))), ENOENT);
    assert_eq!(items_of(&fx, f.ino), 0);
    assert!(fx.layers[0].pages.is_empty(), "the dirty pages go with the inode");
    let h = fx.create(0, ROOT, b"h");
    let mut full = fx.with(0, |c| item::load_inode(c, h.ino)).unwrap();
    full.nlink = LINK_MAX;
    fx.with(0, |c| item::store_inode(c, h.ino, &full)).unwrap();
    assert_eq!(errno(fx.with(0, |c| ns::link(c, h.ino, ROOT, b"h2", t(7)))), EMLINK);
}

#[test]
fn unlink_and_rmdir_check_in_order() {
    let mut fx = Fixture::new();
    let d = fx.mkdir(0, ROOT, b"d");
    let f = fx.create(0, d.ino, b"f");
    assert_eq!(errno(fx.with(0, |c| ns::unlink(c, f.ino, b"x", t(2)))), ENOTDIR);
    assert_eq!(errno(fx.with(0, |c| ns::unlink(c, ROOT, b"x", t(2)))), ENOENT);
    assert_eq!(errno(fx.with(0, |c| ns::unlink(c, ROOT, b"d", t(2)))), EISDIR);
    assert_eq!(errno(fx.with(0, |c| ns::rmdir(c, f.ino, b"x", t(2)))), ENOTDIR);
    assert_eq!(errno(fx.with(0, |c| ns::rmdir(c, ROOT, b"x", t(2)))), ENOENT);
    assert_eq!(errno(fx.with(0, |c| ns::rmdir(c, d.ino, b"f", t(2)))), ENOTDIR);
    assert_eq!(errno(fx.with(0, |c| ns::rmdir(c, ROOT, b"d", t(2)))), ENOTEMPTY);
    assert_eq!(errno(fx.with(0, |c| ns::rmdir(c, ROOT, b"..", t(2)))), EINVAL);
    fx.with(0, |c| ns::setxattr(c, d.ino, b"user.a", b"v", XattrFlags::Any, t(2))).unwrap();
    fx.with(0, |c| ns::unlink(c, d.ino, b"f", t(3))).unwrap();
    let dir = fx.with(0, |c| ns::getattr(c, d.ino)).unwrap();
    assert_eq!((dir.nlink, dir.mtime, dir.ctime), (2, t(3), t(3)));
    assert_eq!(fx.with(0, |c| ns::getattr(c, ROOT)).unwrap().nlink, 3);
    fx.with(0, |c| ns::rmdir(c, ROOT, b"d", t(4))).unwrap();
    let root = fx.with(0, |c| ns::getattr(c, ROOT)).unwrap();
    assert_eq!((root.nlink, root.mtime, root.ctime), (2, t(4), t(4)));
    assert_eq!(items_of(&fx, d.ino), 0, "the directory and its xattr are gone");
    assert_eq!(fx.items(0).len(), 1, "only the root is left");
}

#[test]
fn setattr_applies_fields_and_checks_size() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let set = SetAttr {
        perm: Some(0o104755),
        uid: Some(10),
        gid: Some(20),
        atime: Some(t(100)),
        mtime: Some(t(200)),
        size: None,
    };
    let a = fx.with(0, |c| ns::setattr(c, f.ino, &set, t(50))).unwrap();
    assert_eq!(
        (a.perm, a.uid, a.gid, a.atime, a.mtime, a.ctime),
        (0o4755, 10, 20, t(100), t(200), t(50))
    );
    let same = fx.with(0, |c| ns::setattr(c, f.ino, &SetAttr::default(), t(60))).unwrap();
    assert_eq!(same, a, "nothing given, nothing changes");
    let grow = SetAttr { size: Some(10), ..SetAttr::default() };
    let g = fx.with(0, |c| ns::setattr(c, f.ino, &grow, t(70))).unwrap();
    assert_eq!((g.size, g.mtime, g.ctime, g.blocks), (10, t(70), t(70), 0));
    assert_eq!(fx.read_all(0, f.ino), vec![0u8; 10]);
    let d = fx.mkdir(0, ROOT, b"d");
    let s = fx.with(0, |c| ns::symlink(c, ROOT, b"s", b"t", 0, 0, t(1))).unwrap();
    assert_eq!(errno(fx.with(0, |c| ns::setattr(c, d.ino, &grow, t(1)))), EISDIR);
    assert_eq!(errno(fx.with(0, |c| ns::setattr(c, s.ino, &grow, t(1)))), EINVAL);
    let huge = SetAttr { size: Some((1 << 44) + 1), ..SetAttr::default() };
    assert_eq!(errno(fx.with(0, |c| ns::setattr(c, f.ino, &huge, t(1)))), EFBIG);
    let max = SetAttr { size: Some(1 << 44), ..SetAttr::default() };
    assert_eq!(fx.with(0, |c| ns::setattr(c, f.ino, &max, t(1))).unwrap().size, 1 << 44);
    assert_eq!(errno(fx.with(0, |c| ns::setattr(c, Ino(99), &grow, t(1)))), ENOENT);
    let chmod_dir = SetAttr { perm: Some(0o700), ..SetAttr::default() };
    assert_eq!(fx.with(0, |c| ns::setattr(c, d.ino, &chmod_dir, t(1))).unwrap().perm, 0o700);
}

#[test]
fn xattrs_follow_their_flags_and_checks() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let set = |fx: &mut Fixture, ino: Ino, name: &[u8], value: &[u8], flags: XattrFlags| {
        errno(fx.with(0, |c| ns::setxattr(c, ino, name, value, flags, t(9))))
    };
    assert_eq!(set(&mut fx, f.ino, b"user.b", b"2", XattrFlags::Any), 0);
    assert_eq!(set(&mut fx, f.ino, b"user.a", &[7u8; 1024], XattrFlags::Create), 0);
    assert_eq!(set(&mut fx, f.ino, b"user.c", b"", XattrFlags::Any), 0);
    assert_eq!(fx.with(0, |c| ns::getattr(c, f.ino)).unwrap().ctime, t(9));
    assert_eq!(fx.with(0, |c| ns::getxattr(c, f.ino, b"user.a")).unwrap(), vec![7u8; 1024]);
    assert_eq!(fx.with(0, |c| ns::getxattr(c, f.ino, b"user.c")).unwrap(), Vec::<u8>::new());
    let list = fx.with(0, |c| ns::listxattr(c, f.ino)).unwrap();
    assert_eq!(list, vec![b"user.a".to_vec(), b"user.b".to_vec(), b"user.c".to_vec()]);
    assert_eq!(set(&mut fx, Ino(99), b"", b"", XattrFlags::Any), ERANGE, "ERANGE before ENOENT");
    assert_eq!(set(&mut fx, Ino(99), &[b'n'; 256], b"", XattrFlags::Any), ERANGE);
    assert_eq!(set(&mut fx, Ino(99), b"user.a", b"", XattrFlags::Any), ENOENT);
    assert_eq!(set(&mut fx, f.ino, b"user.b", &[0u8; 1025], XattrFlags::Any), ENOSPC);
    assert_eq!(set(&mut fx, f.ino, b"user.b", &[0u8; 1025], XattrFlags::Create), EEXIST);
    assert_eq!(set(&mut fx, f.ino, b"user.z", &[0u8; 1025], XattrFlags::Replace), ENODATA);
    assert_eq!(set(&mut fx, f.ino, b"user.z", &[0u8; 1025], XattrFlags::Create), ENOSPC);
    assert_eq!(set(&mut fx, f.ino, b"user.b", b"3", XattrFlags::Create), EEXIST);
    assert_eq!(set(&mut fx, f.ino, b"user.z", b"3", XattrFlags::Replace), ENODATA);
    assert_eq!(set(&mut fx, f.ino, b"user.b", b"3", XattrFlags::Replace), 0);
    assert_eq!(fx.with(0, |c| ns::getxattr(c, f.ino, b"user.b")).unwrap(), b"3".to_vec());
    assert_eq!(errno(fx.with(0, |c| ns::getxattr(c, f.ino, b"user.z"))), ENODATA);
    assert_eq!(errno(fx.with(0, |c| ns::getxattr(c, Ino(99), b""))), ERANGE);
    assert_eq!(errno(fx.with(0, |c| ns::removexattr(c, f.ino, b"user.z", t(10)))), ENODATA);
    fx.with(0, |c| ns::removexattr(c, f.ino, b"user.a", t(11))).unwrap();
    assert_eq!(fx.with(0, |c| ns::getattr(c, f.ino)).unwrap().ctime, t(11));
    assert_eq!(fx.with(0, |c| ns::listxattr(c, f.ino)).unwrap().len(), 2);
    assert_eq!(errno(fx.with(0, |c| ns::listxattr(c, Ino(99)))), ENOENT);
    let d = fx.mkdir(0, ROOT, b"d");
    for i in 0..300u32 {
        let name = format!("user.{i:04}");
        assert_eq!(set(&mut fx, d.ino, name.as_bytes(), b"v", XattrFlags::Any), 0);
    }
    let many = fx.with(0, |c| ns::listxattr(c, d.ino)).unwrap();
    assert_eq!(many.len(), 300, "listing crosses scan batches");
    assert!(many.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn read_and_write_check_the_type_first() {
    let mut fx = Fixture::new();
    let d = fx.mkdir(0, ROOT, b"d");
    let p = fx.with(0, |c| ns::mknod(c, ROOT, b"p", FileType::Fifo, 0o644, 0, 0, 0, t(1))).unwrap();
    assert_eq!(errno(fx.with(0, |c| ns::read(c, d.ino, 0, 1))), EISDIR);
    assert_eq!(errno(fx.with(0, |c| ns::read(c, p.ino, 0, 1))), EINVAL);
    assert_eq!(errno(fx.with(0, |c| ns::write(c, d.ino, 0, b"x", t(1)))), EISDIR);
    assert_eq!(errno(fx.with(0, |c| ns::write(c, p.ino, 0, b"x", t(1)))), EINVAL);
    assert_eq!(errno(fx.with(0, |c| ns::read(c, Ino(99), 0, 1))), ENOENT);
    let f = fx.create(0, ROOT, b"f");
    assert_eq!(errno(fx.with(0, |c| ns::write(c, f.ino, 1 << 44, b"x", t(1)))), EFBIG);
    assert_eq!(errno(fx.with(0, |c| ns::write(c, f.ino, u64::MAX, b"x", t(1)))), EFBIG);
    let short = fx.with(0, |c| ns::write(c, f.ino, (1 << 44) - 1, b"xy", t(1))).unwrap();
    assert_eq!(short, 1, "a write across the limit stops at it");
    assert_eq!(fx.with(0, |c| ns::getattr(c, f.ino)).unwrap().size, 1 << 44);
    assert_eq!(fx.with(0, |c| ns::write(c, f.ino, u64::MAX, b"", t(9))).unwrap(), 0);
    assert_eq!(fx.with(0, |c| ns::getattr(c, f.ino)).unwrap().mtime, t(1), "empty write");
}
