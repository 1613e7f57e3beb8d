//! rename: every case of the module doc of `model/src/rename.rs`, in Linux's order of checks
//! (moves, replacement of files and empty directories, hard links to the same inode, loops,
//! noreplace, exchange, EMLINK), the nlink of the directories involved, and the times.

mod common;

use common::{base, dir, file, nlink, t};
use lcfs_model::{Errno, Ino, LayerId, Model, RenameFlags, LINK_MAX};

const PLAIN: RenameFlags = RenameFlags { noreplace: false, exchange: false };
const NOREPLACE: RenameFlags = RenameFlags { noreplace: true, exchange: false };
const EXCHANGE: RenameFlags = RenameFlags { noreplace: false, exchange: true };

/// Renames and, on success, checks the model's invariants.
fn mv(
    m: &mut Model,
    layer: LayerId,
    from: (Ino, &str),
    to: (Ino, &str),
    flags: RenameFlags,
    now: i64,
) -> Result<(), Errno> {
    let result = m.rename(layer, from.0, from.1.as_bytes(), to.0, to.1.as_bytes(), flags, t(now));
    m.check_invariants();
    result
}

/// The inode named `name` in `dir`.
fn ino(m: &Model, layer: LayerId, dir: Ino, name: &str) -> Ino {
    m.lookup(layer, dir, name.as_bytes()).expect("lookup").ino
}

#[test]
fn a_move_across_directories_carries_the_directory_link() {
    let (mut m, l) = base();
    let a = dir(&mut m, l, Ino::ROOT, "a", 1).ino;
    let b = dir(&mut m, l, Ino::ROOT, "b", 1).ino;
    let sub = dir(&mut m, l, a, "sub", 2).ino;
    assert_eq!((nlink(&m, l, a), nlink(&m, l, b)), (3, 2));
    assert_eq!(mv(&mut m, l, (a, "sub"), (b, "moved"), PLAIN, 5), Ok(()));
    assert_eq!((nlink(&m, l, a), nlink(&m, l, b)), (2, 3));
    assert_eq!(ino(&m, l, b, "moved"), sub);
    assert_eq!(m.lookup(l, a, b"sub"), Err(Errno::ENOENT));
    let (sa, aa, ba) =
        (m.getattr(l, sub).unwrap(), m.getattr(l, a).unwrap(), m.getattr(l, b).unwrap());
    assert_eq!((sa.ctime, sa.mtime), (t(5), t(2)), "the moved inode gets ctime only");
    assert_eq!((aa.mtime, aa.ctime, ba.mtime, ba.ctime), (t(5), t(5), t(5), t(5)));
}

#[test]
fn replacing_a_file_drops_one_link_of_the_target() {
    let (mut m, l) = base();
    let src = file(&mut m, l, Ino::ROOT, "src", 1).ino;
    let dst = file(&mut m, l, Ino::ROOT, "dst", 1).ino;
    m.link(l, dst, Ino::ROOT, b"keep", t(2)).unwrap();
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "src"), (Ino::ROOT, "dst"), PLAIN, 3), Ok(()));
    assert_eq!(ino(&m, l, Ino::ROOT, "dst"), src);
    let survivor = m.getattr(l, dst).unwrap();
    assert_eq!((survivor.nlink, survivor.ctime), (1, t(3)));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "dst"), (Ino::ROOT, "keep"), PLAIN, 4), Ok(()));
    assert_eq!(m.getattr(l, dst), Err(Errno::ENOENT), "the last link is gone");
}

#[test]
fn a_directory_replaces_only_an_empty_directory() {
    let (mut m, l) = base();
    let a = dir(&mut m, l, Ino::ROOT, "a", 1).ino;
    let empty = dir(&mut m, l, Ino::ROOT, "empty", 1).ino;
    let full = dir(&mut m, l, Ino::ROOT, "full", 1).ino;
    file(&mut m, l, full, "f", 1);
    file(&mut m, l, Ino::ROOT, "file", 1);
    assert_eq!(nlink(&m, l, Ino::ROOT), 5);
    assert_eq!(
        mv(&mut m, l, (Ino::ROOT, "a"), (Ino::ROOT, "full"), PLAIN, 2),
        Err(Errno::ENOTEMPTY)
    );
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (Ino::ROOT, "file"), PLAIN, 2), Err(Errno::ENOTDIR));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "file"), (Ino::ROOT, "a"), PLAIN, 2), Err(Errno::EISDIR));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (Ino::ROOT, "empty"), PLAIN, 3), Ok(()));
    assert_eq!(m.getattr(l, empty), Err(Errno::ENOENT));
    assert_eq!(ino(&m, l, Ino::ROOT, "empty"), a);
    assert_eq!(nlink(&m, l, Ino::ROOT), 4, "one subdirectory fewer");
    // Across directories: the new parent loses the replaced one and gains the moved one.
    let inner = dir(&mut m, l, full, "inner", 4).ino;
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "empty"), (full, "inner"), PLAIN, 5), Ok(()));
    assert_eq!(m.getattr(l, inner), Err(Errno::ENOENT));
    assert_eq!((nlink(&m, l, Ino::ROOT), nlink(&m, l, full)), (3, 3));
}

#[test]
fn a_directory_cannot_move_into_itself_or_below() {
    let (mut m, l) = base();
    let a = dir(&mut m, l, Ino::ROOT, "a", 1).ino;
    let b = dir(&mut m, l, a, "b", 1).ino;
    let c = dir(&mut m, l, b, "c", 1).ino;
    file(&mut m, l, c, "f", 1);
    let before = m.clone();
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (a, "x"), PLAIN, 2), Err(Errno::EINVAL));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (c, "x"), PLAIN, 2), Err(Errno::EINVAL));
    // Linux checks the loop before the types: a file as target does not make it ENOTDIR.
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (c, "f"), PLAIN, 2), Err(Errno::EINVAL));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (c, "f"), EXCHANGE, 2), Err(Errno::EINVAL));
    assert_eq!(m, before, "failures change nothing");
    assert_eq!(mv(&mut m, l, (b, "c"), (Ino::ROOT, "c"), PLAIN, 3), Ok(()), "moving up is fine");
}

#[test]
fn a_target_above_the_source_is_enotempty_or_einval_with_exchange() {
    let (mut m, l) = base();
    let a = dir(&mut m, l, Ino::ROOT, "a", 1).ino;
    let b = dir(&mut m, l, a, "b", 1).ino;
    file(&mut m, l, b, "f", 1);
    // b/f over a (a holds b, which holds f): Linux says ENOTEMPTY, even for a file source.
    assert_eq!(mv(&mut m, l, (b, "f"), (Ino::ROOT, "a"), PLAIN, 2), Err(Errno::ENOTEMPTY));
    assert_eq!(mv(&mut m, l, (a, "b"), (Ino::ROOT, "a"), PLAIN, 2), Err(Errno::ENOTEMPTY));
    assert_eq!(mv(&mut m, l, (b, "f"), (Ino::ROOT, "a"), EXCHANGE, 2), Err(Errno::EINVAL));
    assert_eq!(mv(&mut m, l, (b, "f"), (a, "b"), PLAIN, 2), Err(Errno::ENOTEMPTY));
}

#[test]
fn the_same_inode_under_both_names_is_a_successful_no_op() {
    let (mut m, l) = base();
    let d = dir(&mut m, l, Ino::ROOT, "d", 1).ino;
    let f = file(&mut m, l, Ino::ROOT, "f", 1).ino;
    m.link(l, f, d, b"g", t(2)).unwrap();
    let before = m.clone();
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (d, "g"), PLAIN, 3), Ok(()));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (Ino::ROOT, "f"), PLAIN, 3), Ok(()));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "d"), (Ino::ROOT, "d"), EXCHANGE, 3), Ok(()));
    assert_eq!(m, before, "both names stay, no time moves");
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (Ino::ROOT, "f"), NOREPLACE, 3), Err(Errno::EEXIST));
}

#[test]
fn flags_noreplace_and_exchange() {
    let (mut m, l) = base();
    let f = file(&mut m, l, Ino::ROOT, "f", 1).ino;
    let both = RenameFlags { noreplace: true, exchange: true };
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (Ino::ROOT, "x"), both, 2), Err(Errno::EINVAL));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (Ino::ROOT, "x"), EXCHANGE, 2), Err(Errno::ENOENT));
    file(&mut m, l, Ino::ROOT, "g", 1);
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (Ino::ROOT, "g"), NOREPLACE, 2), Err(Errno::EEXIST));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (Ino::ROOT, "x"), NOREPLACE, 3), Ok(()));
    assert_eq!(ino(&m, l, Ino::ROOT, "x"), f);
}

#[test]
fn exchange_swaps_any_two_types_and_moves_directory_links() {
    let (mut m, l) = base();
    let a = dir(&mut m, l, Ino::ROOT, "a", 1).ino;
    let b = dir(&mut m, l, Ino::ROOT, "b", 1).ino;
    let sub = dir(&mut m, l, a, "sub", 1).ino;
    file(&mut m, l, sub, "inside", 1);
    let f = file(&mut m, l, b, "f", 1).ino;
    assert_eq!((nlink(&m, l, a), nlink(&m, l, b)), (3, 2));
    // A non-empty directory and a file swap places: no ENOTDIR, EISDIR or ENOTEMPTY.
    assert_eq!(mv(&mut m, l, (a, "sub"), (b, "f"), EXCHANGE, 4), Ok(()));
    assert_eq!((ino(&m, l, a, "sub"), ino(&m, l, b, "f")), (f, sub));
    assert_eq!((nlink(&m, l, a), nlink(&m, l, b)), (2, 3));
    for changed in [f, sub] {
        assert_eq!(m.getattr(l, changed).unwrap().ctime, t(4));
    }
    assert_eq!(m.getattr(l, a).unwrap().mtime, t(4));
    assert_eq!(m.getattr(l, b).unwrap().mtime, t(4));
    // Two entries of one directory.
    file(&mut m, l, a, "x", 5);
    assert_eq!(mv(&mut m, l, (a, "x"), (a, "sub"), EXCHANGE, 6), Ok(()));
    assert_eq!(ino(&m, l, a, "x"), f);
    assert_eq!(nlink(&m, l, a), 2);
}

#[test]
fn errors_come_in_order_directories_then_source_then_target() {
    let (mut m, l) = base();
    let f = file(&mut m, l, Ino::ROOT, "f", 1).ino;
    assert_eq!(mv(&mut m, l, (f, "nope"), (Ino::ROOT, "x"), PLAIN, 2), Err(Errno::ENOTDIR));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "nope"), (f, "x"), PLAIN, 2), Err(Errno::ENOTDIR));
    assert_eq!(
        mv(&mut m, l, (Ino::ROOT, "nope"), (Ino::ROOT, "f"), NOREPLACE, 2),
        Err(Errno::ENOENT)
    );
    assert_eq!(mv(&mut m, l, (Ino(30), "f"), (Ino::ROOT, "x"), PLAIN, 2), Err(Errno::ENOENT));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, ".."), (Ino(30), "x"), PLAIN, 2), Err(Errno::EINVAL));
    let long = "l".repeat(256);
    assert_eq!(
        mv(&mut m, l, (Ino::ROOT, "f"), (Ino::ROOT, &long), PLAIN, 2),
        Err(Errno::ENAMETOOLONG)
    );
}

#[test]
fn emlink_only_when_a_directory_gains_a_subdirectory() {
    let (mut m, l) = base();
    let full = dir(&mut m, l, Ino::ROOT, "full", 1).ino;
    for index in 0..LINK_MAX - 2 {
        m.mkdir(l, full, format!("d{index}").as_bytes(), 0o755, 0, 0, t(1)).unwrap();
    }
    assert_eq!(nlink(&m, l, full), LINK_MAX);
    dir(&mut m, l, Ino::ROOT, "a", 2);
    file(&mut m, l, Ino::ROOT, "f", 2);
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (full, "new"), PLAIN, 3), Err(Errno::EMLINK));
    file(&mut m, l, full, "ff", 2);
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (full, "ff"), EXCHANGE, 3), Err(Errno::EMLINK));
    assert_eq!(mv(&mut m, l, (full, "ff"), (Ino::ROOT, "a"), EXCHANGE, 3), Err(Errno::EMLINK));
    // No gain: a file moves in, a directory replaces a directory, two directories swap.
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "f"), (full, "f"), PLAIN, 4), Ok(()));
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "a"), (full, "d0"), PLAIN, 4), Ok(()));
    dir(&mut m, l, Ino::ROOT, "b", 5);
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "b"), (full, "d1"), EXCHANGE, 6), Ok(()));
    assert_eq!(nlink(&m, l, full), LINK_MAX);
    // Within one directory nothing is gained.
    assert_eq!(mv(&mut m, l, (full, "d2"), (full, "d2b"), PLAIN, 7), Ok(()));
    // A file and a directory swap so that the full directory loses the directory.
    file(&mut m, l, Ino::ROOT, "g", 8);
    assert_eq!(mv(&mut m, l, (Ino::ROOT, "g"), (full, "d5"), EXCHANGE, 9), Ok(()));
    assert_eq!(nlink(&m, l, full), LINK_MAX - 1);
}
