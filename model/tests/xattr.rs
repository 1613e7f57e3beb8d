//! Extended attributes: ERANGE for bad names before ENOENT, ENOSPC above XATTR_VALUE_MAX,
//! Create/Replace flags, sorted listing, ctime, and xattrs on every type.

mod common;

use common::{base, dir, file, t};
use lcfs_model::{Errno, FileType, Ino, XattrFlags, XATTR_VALUE_MAX};

#[test]
fn names_are_checked_with_erange_before_the_inode() {
    let (mut model, layer) = base();
    let long = vec![b'n'; 256];
    for bad in [&b""[..], &long] {
        let set = model.setxattr(layer, Ino(50), bad, b"v", XattrFlags::Any, t(1));
        assert_eq!(set, Err(Errno::ERANGE));
        assert_eq!(model.getxattr(layer, Ino(50), bad), Err(Errno::ERANGE));
        assert_eq!(model.removexattr(layer, Ino(50), bad, t(1)), Err(Errno::ERANGE));
    }
    let set = model.setxattr(layer, Ino(50), b"user.a", b"v", XattrFlags::Any, t(1));
    assert_eq!(set, Err(Errno::ENOENT));
    let name = vec![b'n'; 255];
    model.setxattr(layer, Ino::ROOT, &name, b"", XattrFlags::Any, t(1)).unwrap();
    assert_eq!(model.getxattr(layer, Ino::ROOT, &name), Ok(Vec::new()), "empty values exist");
}

#[test]
fn values_flags_and_listing() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let big = vec![1u8; XATTR_VALUE_MAX + 1];
    let max = vec![2u8; XATTR_VALUE_MAX];
    let mut set = |name: &[u8], value: &[u8], flags, now| {
        model.setxattr(layer, f, name, value, flags, t(now))
    };
    assert_eq!(set(b"user.b", &big, XattrFlags::Create, 2), Err(Errno::ENOSPC));
    assert_eq!(set(b"user.b", b"1", XattrFlags::Replace, 2), Err(Errno::ENODATA));
    assert_eq!(set(b"user.b", &big, XattrFlags::Replace, 2), Err(Errno::ENODATA), "flags first");
    assert_eq!(set(b"user.b", &max, XattrFlags::Create, 3), Ok(()));
    assert_eq!(set(b"user.b", b"1", XattrFlags::Create, 4), Err(Errno::EEXIST));
    assert_eq!(set(b"user.b", &big, XattrFlags::Create, 4), Err(Errno::EEXIST), "flags first");
    assert_eq!(set(b"user.b", &big, XattrFlags::Any, 4), Err(Errno::ENOSPC));
    assert_eq!(set(b"user.b", b"2", XattrFlags::Replace, 5), Ok(()));
    assert_eq!(set(b"user.a", b"3", XattrFlags::Any, 6), Ok(()));
    assert_eq!(set(b"user.a", b"4", XattrFlags::Any, 7), Ok(()));
    assert_eq!(model.getattr(layer, f).unwrap().ctime, t(7));
    assert_eq!(model.getattr(layer, f).unwrap().mtime, t(1), "mtime does not move");
    assert_eq!(model.getxattr(layer, f, b"user.a"), Ok(b"4".to_vec()));
    assert_eq!(model.getxattr(layer, f, b"user.b"), Ok(b"2".to_vec()), "failures changed nothing");
    assert_eq!(model.listxattr(layer, f), Ok(vec![b"user.a".to_vec(), b"user.b".to_vec()]));
    assert_eq!(model.removexattr(layer, f, b"user.c", t(8)), Err(Errno::ENODATA));
    assert_eq!(model.removexattr(layer, f, b"user.a", t(9)), Ok(()));
    assert_eq!(model.getattr(layer, f).unwrap().ctime, t(9));
    assert_eq!(model.getxattr(layer, f, b"user.a"), Err(Errno::ENODATA));
    assert_eq!(model.listxattr(layer, f), Ok(vec![b"user.b".to_vec()]));
}

#[test]
fn every_type_holds_xattrs_and_hard_links_share_them() {
    let (mut model, layer) = base();
    let f = file(&mut model, layer, Ino::ROOT, "f", 1).ino;
    let d = dir(&mut model, layer, Ino::ROOT, "d", 1).ino;
    let s = model.symlink(layer, Ino::ROOT, b"s", b"f", 0, 0, t(1)).unwrap().ino;
    let c = model.mknod(layer, Ino::ROOT, b"c", FileType::CharDevice, 0, 1, 0, 0, t(1)).unwrap();
    for ino in [f, d, s, c.ino, Ino::ROOT] {
        model.setxattr(layer, ino, b"trusted.x", b"v", XattrFlags::Any, t(2)).unwrap();
    }
    model.link(layer, f, d, b"g", t(3)).unwrap();
    let via_link = model.lookup(layer, d, b"g").unwrap().ino;
    assert_eq!(model.getxattr(layer, via_link, b"trusted.x"), Ok(b"v".to_vec()));
    model.check_invariants();
}
