//! Goal: rename follows every rule of docs/operations.md ("rename"), checks in order, and keeps
//! directory nlinks and parents right. Method: named cases, one rule each.

use super::support::*;
use crate::ns::{self, item};
use crate::types::{Ino, RenameFlags, Timespec, LINK_MAX};

const ROOT: Ino = Ino::ROOT;
const PLAIN: RenameFlags = RenameFlags { noreplace: false, exchange: false };
const NOREPLACE: RenameFlags = RenameFlags { noreplace: true, exchange: false };
const EXCHANGE: RenameFlags = RenameFlags { noreplace: false, exchange: true };

fn mv(
    fx: &mut Fixture,
    dir: Ino,
    name: &[u8],
    newdir: Ino,
    newname: &[u8],
    flags: RenameFlags,
) -> i32 {
    errno(fx.with(0, |c| ns::rename(c, dir, name, newdir, newname, flags, t(50))))
}

fn nlink(fx: &mut Fixture, ino: Ino) -> u32 {
    fx.with(0, |c| ns::getattr(c, ino)).unwrap().nlink
}

fn times(fx: &mut Fixture, ino: Ino) -> (Timespec, Timespec) {
    let a = fx.with(0, |c| ns::getattr(c, ino)).unwrap();
    (a.mtime, a.ctime)
}

fn parent(fx: &mut Fixture, ino: Ino) -> Ino {
    fx.with(0, |c| item::load_inode(c, ino)).unwrap().parent
}

fn lookup(fx: &mut Fixture, dir: Ino, name: &[u8]) -> Result<Ino, i32> {
    fx.with(0, |c| ns::lookup(c, dir, name)).map(|a| a.ino).map_err(|e| e.errno())
}

#[test]
fn checks_come_in_the_documented_order() {
    let mut fx = Fixture::new();
    let d = fx.mkdir(0, ROOT, b"d");
    let f = fx.create(0, ROOT, b"f");
    fx.create(0, d.ino, b"x");
    let both = RenameFlags { noreplace: true, exchange: true };
    assert_eq!(mv(&mut fx, Ino(99), b"/", ROOT, b"a", PLAIN), EINVAL, "names first");
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, &[b'a'; 256], PLAIN), ENAMETOOLONG);
    assert_eq!(mv(&mut fx, Ino(99), b"f", ROOT, b"a", both), ENOENT, "inodes second");
    assert_eq!(mv(&mut fx, ROOT, b"f", Ino(99), b"a", both), ENOENT);
    assert_eq!(mv(&mut fx, f.ino, b"f", ROOT, b"a", both), EINVAL, "both flags before ENOTDIR");
    assert_eq!(mv(&mut fx, f.ino, b"f", ROOT, b"a", PLAIN), ENOTDIR);
    assert_eq!(mv(&mut fx, ROOT, b"f", f.ino, b"a", PLAIN), ENOTDIR);
    assert_eq!(mv(&mut fx, ROOT, b"nope", ROOT, b"f", NOREPLACE), ENOENT, "source before target");
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"d", NOREPLACE), EEXIST);
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"nope", EXCHANGE), ENOENT);
    assert_eq!(mv(&mut fx, ROOT, b"d", ROOT, b"f", PLAIN), ENOTDIR);
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"d", PLAIN), EISDIR);
    let e = fx.mkdir(0, ROOT, b"e");
    assert_eq!(mv(&mut fx, ROOT, b"e", ROOT, b"d", PLAIN), ENOTEMPTY);
    assert_eq!(mv(&mut fx, ROOT, b"d", d.ino, b"y", PLAIN), EINVAL, "into itself");
    let sub = fx.mkdir(0, d.ino, b"sub");
    assert_eq!(mv(&mut fx, ROOT, b"d", sub.ino, b"y", PLAIN), EINVAL, "below itself");
    assert_eq!(mv(&mut fx, ROOT, b"d", sub.ino, b"y", NOREPLACE), EINVAL);
    assert_eq!(mv(&mut fx, d.ino, b"x", ROOT, b"d", PLAIN), ENOTEMPTY, "target above the source");
    assert_eq!(mv(&mut fx, sub.ino, b"y", ROOT, b"d", PLAIN), ENOENT);
    fx.create(0, sub.ino, b"y");
    assert_eq!(mv(&mut fx, sub.ino, b"y", ROOT, b"d", PLAIN), ENOTEMPTY, "before EISDIR");
    assert_eq!(mv(&mut fx, sub.ino, b"y", ROOT, b"d", EXCHANGE), EINVAL);
    assert_eq!(mv(&mut fx, d.ino, b"sub", ROOT, b"d", PLAIN), ENOTEMPTY);
    let link = fx.with(0, |c| ns::link(c, f.ino, sub.ino, b"f", t(2))).unwrap();
    assert_eq!(link.nlink, 2);
    assert_eq!(mv(&mut fx, ROOT, b"f", sub.ino, b"f", PLAIN), 0, "same inode, nothing to do");
    assert_eq!(lookup(&mut fx, ROOT, b"e"), Ok(e.ino), "failed renames change nothing");
    assert_eq!(lookup(&mut fx, ROOT, b"d"), Ok(d.ino));
}

#[test]
fn a_file_moves_within_and_across_directories() {
    let mut fx = Fixture::new();
    let d = fx.mkdir(0, ROOT, b"d");
    let f = fx.create(0, ROOT, b"f");
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"g", PLAIN), 0);
    assert_eq!(lookup(&mut fx, ROOT, b"f"), Err(ENOENT));
    assert_eq!(lookup(&mut fx, ROOT, b"g"), Ok(f.ino));
    assert_eq!(times(&mut fx, ROOT), (t(50), t(50)));
    assert_eq!(fx.with(0, |c| ns::getattr(c, f.ino)).unwrap().ctime, t(50), "moved inode ctime");
    assert_eq!(mv(&mut fx, ROOT, b"g", d.ino, b"h", NOREPLACE), 0);
    assert_eq!(lookup(&mut fx, d.ino, b"h"), Ok(f.ino));
    assert_eq!((nlink(&mut fx, ROOT), nlink(&mut fx, d.ino), nlink(&mut fx, f.ino)), (3, 2, 1));
    assert_eq!(times(&mut fx, d.ino), (t(50), t(50)));
}

#[test]
fn a_directory_moves_with_its_link_count_and_parent() {
    let mut fx = Fixture::new();
    let a = fx.mkdir(0, ROOT, b"a");
    let b = fx.mkdir(0, ROOT, b"b");
    let c = fx.mkdir(0, a.ino, b"c");
    fx.create(0, c.ino, b"file");
    assert_eq!((nlink(&mut fx, a.ino), nlink(&mut fx, b.ino)), (3, 2));
    assert_eq!(mv(&mut fx, a.ino, b"c", b.ino, b"c2", PLAIN), 0);
    assert_eq!((nlink(&mut fx, a.ino), nlink(&mut fx, b.ino), nlink(&mut fx, c.ino)), (2, 3, 2));
    assert_eq!(parent(&mut fx, c.ino), b.ino);
    assert_eq!(mv(&mut fx, ROOT, b"b", c.ino, b"b", PLAIN), EINVAL, "the new parent field is used");
    assert_eq!(mv(&mut fx, ROOT, b"a", c.ino, b"a", PLAIN), 0, "a is no ancestor of c any more");
    assert_eq!(parent(&mut fx, a.ino), c.ino);
    assert_eq!(nlink(&mut fx, ROOT), 3);
    assert_eq!(fx.with(0, |c2| ns::getattr(c2, a.ino)).unwrap().ctime, t(50));
}

#[test]
fn replacing_a_file_unlinks_it() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    let g = fx.create(0, ROOT, b"g");
    let h = fx.create(0, ROOT, b"h");
    fx.with(0, |c| ns::write(c, g.ino, 0, b"gone", t(2))).unwrap();
    fx.with(0, |c| ns::link(c, h.ino, ROOT, b"h2", t(2))).unwrap();
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"g", PLAIN), 0);
    assert_eq!(lookup(&mut fx, ROOT, b"g"), Ok(f.ino));
    assert_eq!(errno(fx.with(0, |c| ns::getattr(c, g.ino))), ENOENT, "last link: inode gone");
    assert!(fx.layers[0].pages.is_empty());
    assert_eq!(mv(&mut fx, ROOT, b"g", ROOT, b"h", PLAIN), 0);
    let survivor = fx.with(0, |c| ns::getattr(c, h.ino)).unwrap();
    assert_eq!((survivor.nlink, survivor.ctime), (1, t(50)));
    assert_eq!(lookup(&mut fx, ROOT, b"h2"), Ok(h.ino));
}

#[test]
fn replacing_an_empty_directory_keeps_link_counts() {
    let mut fx = Fixture::new();
    let a = fx.mkdir(0, ROOT, b"a");
    let b = fx.mkdir(0, ROOT, b"b");
    let src = fx.mkdir(0, a.ino, b"src");
    let dst = fx.mkdir(0, b.ino, b"dst");
    fx.create(0, src.ino, b"inside");
    assert_eq!(mv(&mut fx, a.ino, b"src", b.ino, b"dst", PLAIN), 0);
    assert_eq!(errno(fx.with(0, |c| ns::getattr(c, dst.ino))), ENOENT);
    assert_eq!((nlink(&mut fx, a.ino), nlink(&mut fx, b.ino)), (2, 3));
    assert_eq!(lookup(&mut fx, b.ino, b"dst"), Ok(src.ino));
    assert!(lookup(&mut fx, src.ino, b"inside").is_ok());
    let same = fx.mkdir(0, b.ino, b"same");
    assert_eq!(mv(&mut fx, b.ino, b"same", b.ino, b"dst", PLAIN), ENOTEMPTY);
    fx.with(0, |c| ns::unlink(c, src.ino, b"inside", t(3))).unwrap();
    assert_eq!(mv(&mut fx, b.ino, b"same", b.ino, b"dst", PLAIN), 0);
    assert_eq!(nlink(&mut fx, b.ino), 3);
    assert_eq!(errno(fx.with(0, |c| ns::getattr(c, src.ino))), ENOENT);
    assert_eq!(lookup(&mut fx, b.ino, b"dst"), Ok(same.ino));
}

#[test]
fn the_same_inode_under_two_names_is_a_successful_no_op() {
    let mut fx = Fixture::new();
    let f = fx.create(0, ROOT, b"f");
    fx.with(0, |c| ns::link(c, f.ino, ROOT, b"g", t(2))).unwrap();
    let before = fx.items(0);
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"g", PLAIN), 0);
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"f", PLAIN), 0);
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"g", EXCHANGE), 0);
    assert_eq!(mv(&mut fx, ROOT, b"f", ROOT, b"g", NOREPLACE), EEXIST, "noreplace comes first");
    assert_eq!(fx.items(0), before, "nothing changed, not even times");
}

#[test]
fn exchange_swaps_entries_and_fixes_link_counts() {
    let mut fx = Fixture::new();
    let a = fx.mkdir(0, ROOT, b"a");
    let b = fx.mkdir(0, ROOT, b"b");
    let d = fx.mkdir(0, a.ino, b"d");
    let f = fx.create(0, b.ino, b"f");
    assert_eq!(mv(&mut fx, a.ino, b"d", b.ino, b"f", EXCHANGE), 0);
    assert_eq!(lookup(&mut fx, a.ino, b"d"), Ok(f.ino));
    assert_eq!(lookup(&mut fx, b.ino, b"f"), Ok(d.ino));
    assert_eq!((nlink(&mut fx, a.ino), nlink(&mut fx, b.ino)), (2, 3));
    assert_eq!(parent(&mut fx, d.ino), b.ino);
    let (fa, da) = (
        fx.with(0, |c| ns::getattr(c, f.ino)).unwrap(),
        fx.with(0, |c| ns::getattr(c, d.ino)).unwrap(),
    );
    assert_eq!((fa.ctime, da.ctime), (t(50), t(50)));
    assert_eq!((times(&mut fx, a.ino), times(&mut fx, b.ino)), ((t(50), t(50)), (t(50), t(50))));
    let kinds = fx.with(0, |c| ns::readdir(c, a.ino, None, 10)).unwrap();
    assert_eq!(kinds[0].kind, fa.kind, "entries carry the swapped types");
    let e = fx.mkdir(0, a.ino, b"e");
    assert_eq!(mv(&mut fx, a.ino, b"e", b.ino, b"f", EXCHANGE), 0, "two directories");
    assert_eq!((nlink(&mut fx, a.ino), nlink(&mut fx, b.ino)), (3, 3));
    assert_eq!((parent(&mut fx, e.ino), parent(&mut fx, d.ino)), (b.ino, a.ino));
    fx.create(0, e.ino, b"not empty");
    assert_eq!(mv(&mut fx, b.ino, b"f", ROOT, b"a", EXCHANGE), 0, "exchange ignores emptiness");
}

#[test]
fn exchange_refuses_to_move_either_side_below_itself() {
    let mut fx = Fixture::new();
    let a = fx.mkdir(0, ROOT, b"a");
    let b = fx.mkdir(0, a.ino, b"b");
    fx.create(0, b.ino, b"x");
    fx.create(0, ROOT, b"top");
    assert_eq!(mv(&mut fx, b.ino, b"x", ROOT, b"a", EXCHANGE), EINVAL, "a would move into a/b");
    assert_eq!(mv(&mut fx, ROOT, b"a", b.ino, b"x", EXCHANGE), EINVAL, "a would move into a/b");
    assert_eq!(mv(&mut fx, b.ino, b"x", ROOT, b"top", EXCHANGE), 0);
    assert_eq!(mv(&mut fx, a.ino, b"b", ROOT, b"top", EXCHANGE), 0, "a file into a is fine");
    assert_eq!(parent(&mut fx, b.ino), ROOT);
}

#[test]
fn a_parent_at_link_max_takes_no_new_subdirectory() {
    let mut fx = Fixture::new();
    let full = fx.mkdir(0, ROOT, b"full");
    let other = fx.mkdir(0, ROOT, b"other");
    fx.mkdir(0, full.ino, b"sub");
    fx.create(0, full.ino, b"file");
    fx.mkdir(0, other.ino, b"d");
    fx.create(0, other.ino, b"f");
    let mut rec = fx.with(0, |c| item::load_inode(c, full.ino)).unwrap();
    rec.nlink = LINK_MAX;
    fx.with(0, |c| item::store_inode(c, full.ino, &rec)).unwrap();
    assert_eq!(mv(&mut fx, other.ino, b"d", full.ino, b"new", PLAIN), EMLINK);
    assert_eq!(mv(&mut fx, other.ino, b"d", full.ino, b"file", EXCHANGE), EMLINK);
    assert_eq!(mv(&mut fx, full.ino, b"file", other.ino, b"d", EXCHANGE), EMLINK);
    assert_eq!(mv(&mut fx, other.ino, b"d", full.ino, b"sub", EXCHANGE), 0, "one in, one out");
    assert_eq!(nlink(&mut fx, full.ino), LINK_MAX);
    assert_eq!(mv(&mut fx, other.ino, b"d", full.ino, b"sub", PLAIN), 0, "replaces a directory");
    assert_eq!(nlink(&mut fx, full.ino), LINK_MAX);
    assert_eq!(mv(&mut fx, other.ino, b"f", full.ino, b"g", PLAIN), 0, "files do not count");
    assert_eq!(mv(&mut fx, full.ino, b"sub", other.ino, b"f2", PLAIN), 0);
    assert_eq!((nlink(&mut fx, full.ino), nlink(&mut fx, other.ino)), (LINK_MAX - 1, 3));
    assert_eq!(mv(&mut fx, ROOT, b"other", ROOT, b"other2", PLAIN), 0, "same parent");
}
