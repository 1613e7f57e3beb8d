//! `Fs::changes`: the changes of a layer against its parent, as `docker diff` lists them
//! (docs/layers.md, "Diff"). One test per rule, then a random property: `changes` equals a
//! brute-force diff that walks both layers' whole namespaces through the public API and applies
//! the path-by-path definition. The property prints its seed on failure; replay one with
//! `LCFS_CHANGES_SEED=<seed> cargo test -p lcfs --release --test changes`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use lcfs::fsck;
use lcfs::{
    BlockDevice, ChangeKind, Error, FileType, Fs, Ino, LayerId, MemDevice, MkfsOptions,
    MountOptions, RenameFlags, SetAttr, Timespec, XattrFlags,
};

fn now() -> Timespec {
    Timespec::new(1_700_000_000, 0)
}

fn fresh(blocks: u64) -> (Arc<dyn BlockDevice>, Fs) {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(blocks));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    (dev, fs)
}

/// `changes` as `docker diff` prints them: "A /path".
fn diff(fs: &Fs, layer: LayerId) -> Vec<String> {
    let changes = fs.changes(layer).unwrap();
    changes
        .iter()
        .map(|c| format!("{} {}", c.kind.letter(), String::from_utf8_lossy(&c.path)))
        .collect()
}

/// Committed "base": /etc/{passwd,group}, /usr/bin/{ls,cat}, /usr/lib/x/y, /link -> etc;
/// returns the writable child "top".
fn base_and_child(fs: &Fs) -> LayerId {
    let base = fs.create_layer("base", None).unwrap();
    let etc = fs.mkdir(base, Ino::ROOT, b"etc", 0o755, 0, 0, now()).unwrap();
    for name in [&b"passwd"[..], b"group"] {
        let f = fs.mknod(base, etc.ino, name, FileType::Regular, 0o644, 0, 0, 0, now()).unwrap();
        fs.write(base, f.ino, 0, name, now()).unwrap();
    }
    let usr = fs.mkdir(base, Ino::ROOT, b"usr", 0o755, 0, 0, now()).unwrap();
    let bin = fs.mkdir(base, usr.ino, b"bin", 0o755, 0, 0, now()).unwrap();
    for name in [&b"ls"[..], b"cat"] {
        fs.mknod(base, bin.ino, name, FileType::Regular, 0o755, 0, 0, 0, now()).unwrap();
    }
    let lib = fs.mkdir(base, usr.ino, b"lib", 0o755, 0, 0, now()).unwrap();
    let x = fs.mkdir(base, lib.ino, b"x", 0o755, 0, 0, now()).unwrap();
    fs.mknod(base, x.ino, b"y", FileType::Regular, 0o644, 0, 0, 0, now()).unwrap();
    fs.symlink(base, Ino::ROOT, b"link", b"etc", 0, 0, now()).unwrap();
    fs.commit_layer("base").unwrap();
    fs.create_layer("top", Some("base")).unwrap()
}

fn at(fs: &Fs, layer: LayerId, path: &str) -> Ino {
    let mut ino = Ino::ROOT;
    for name in path.split('/').filter(|c| !c.is_empty()) {
        ino = fs.lookup(layer, ino, name.as_bytes()).unwrap().ino;
    }
    ino
}

#[test]
fn a_layer_without_parent_is_all_added() {
    let (_, fs) = fresh(4096);
    base_and_child(&fs);
    let base = fs.layer_id("base").unwrap();
    let expected = [
        "A /etc", "A /etc/group", "A /etc/passwd", "A /link", "A /usr", "A /usr/bin",
        "A /usr/bin/cat", "A /usr/bin/ls", "A /usr/lib", "A /usr/lib/x", "A /usr/lib/x/y",
    ];
    assert_eq!(diff(&fs, base), expected);
}

#[test]
fn an_untouched_child_has_no_changes() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    assert!(diff(&fs, top).is_empty());
}

#[test]
fn a_new_file_is_added_and_its_directories_modified() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let x = at(&fs, top, "/usr/lib/x");
    fs.mknod(top, x, b"z", FileType::Regular, 0o644, 0, 0, 0, now()).unwrap();
    assert_eq!(diff(&fs, top), ["C /usr", "C /usr/lib", "C /usr/lib/x", "A /usr/lib/x/z"]);
}

#[test]
fn new_content_modifies_the_file() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    fs.write(top, at(&fs, top, "/etc/passwd"), 0, b"root:x:0:0", now()).unwrap();
    assert_eq!(diff(&fs, top), ["C /etc", "C /etc/passwd"]);
}

#[test]
fn metadata_alone_modifies_the_file() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let set = SetAttr { perm: Some(0o600), ..SetAttr::default() };
    fs.setattr(top, at(&fs, top, "/etc/group"), &set, now()).unwrap();
    let ls = at(&fs, top, "/usr/bin/ls");
    fs.setxattr(top, ls, b"security.capability", b"cap", XattrFlags::Any, now()).unwrap();
    let expected = ["C /etc", "C /etc/group", "C /usr", "C /usr/bin", "C /usr/bin/ls"];
    assert_eq!(diff(&fs, top), expected);
}

#[test]
fn a_deleted_file_is_listed() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    fs.unlink(top, at(&fs, top, "/usr/bin"), b"cat", now()).unwrap();
    assert_eq!(diff(&fs, top), ["C /usr", "C /usr/bin", "D /usr/bin/cat"]);
}

#[test]
fn only_the_top_of_a_deleted_subtree_is_listed() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let (lib, x) = (at(&fs, top, "/usr/lib"), at(&fs, top, "/usr/lib/x"));
    fs.unlink(top, x, b"y", now()).unwrap();
    fs.rmdir(top, lib, b"x", now()).unwrap();
    fs.rmdir(top, at(&fs, top, "/usr"), b"lib", now()).unwrap();
    assert_eq!(diff(&fs, top), ["C /usr", "D /usr/lib"]);
}

#[test]
fn a_rename_is_a_deletion_and_an_addition() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let (etc, bin) = (at(&fs, top, "/etc"), at(&fs, top, "/usr/bin"));
    fs.rename(top, etc, b"group", bin, b"groups", RenameFlags::default(), now()).unwrap();
    let expected = ["C /etc", "D /etc/group", "C /usr", "C /usr/bin", "A /usr/bin/groups"];
    assert_eq!(diff(&fs, top), expected);
}

#[test]
fn a_renamed_directory_brings_its_subtree() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let usr = at(&fs, top, "/usr");
    fs.rename(top, usr, b"lib", Ino::ROOT, b"lib", RenameFlags::default(), now()).unwrap();
    // The moved directory's content is unchanged, but every path below it is new.
    assert_eq!(diff(&fs, top), ["A /lib", "A /lib/x", "A /lib/x/y", "C /usr", "D /usr/lib"]);
}

#[test]
fn a_file_written_below_a_renamed_directory_is_added_not_modified() {
    // The written file's own entry is unchanged, but the entry above it is new: the shortcut
    // that lists a touched inode as Modified without a lookup must not apply.
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let usr = at(&fs, top, "/usr");
    fs.rename(top, usr, b"lib", Ino::ROOT, b"lib", RenameFlags::default(), now()).unwrap();
    fs.write(top, at(&fs, top, "/lib/x/y"), 0, b"new", now()).unwrap();
    assert_eq!(diff(&fs, top), ["A /lib", "A /lib/x", "A /lib/x/y", "C /usr", "D /usr/lib"]);
}

#[test]
fn a_file_written_after_replacing_another_modifies_the_name_and_deletes_its_old_one() {
    // A touched inode whose last entry changed (renamed over another file) is looked up in
    // both layers by that entry: the name now names another inode (Modified), the old name is
    // gone (Deleted).
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let bin = at(&fs, top, "/usr/bin");
    fs.rename(top, bin, b"cat", bin, b"ls", RenameFlags::default(), now()).unwrap();
    fs.write(top, at(&fs, top, "/usr/bin/ls"), 0, b"cat", now()).unwrap();
    assert_eq!(diff(&fs, top), ["C /usr", "C /usr/bin", "D /usr/bin/cat", "C /usr/bin/ls"]);
}

#[test]
fn every_path_of_a_changed_hard_link_is_listed() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let passwd = at(&fs, top, "/etc/passwd");
    fs.link(top, passwd, Ino::ROOT, b"passwd-link", now()).unwrap();
    // The new name is added; the inode's nlink and ctime changed, so its old name is modified.
    assert_eq!(diff(&fs, top), ["C /etc", "C /etc/passwd", "A /passwd-link"]);

    // A link made in the parent: a content change in the child shows under both names.
    let (_, fs) = fresh(4096);
    let base = fs.create_layer("base", None).unwrap();
    let d = fs.mkdir(base, Ino::ROOT, b"d", 0o755, 0, 0, now()).unwrap();
    let f = fs.mknod(base, d.ino, b"f", FileType::Regular, 0o644, 0, 0, 0, now()).unwrap();
    fs.link(base, f.ino, Ino::ROOT, b"g", now()).unwrap();
    fs.commit_layer("base").unwrap();
    let top = fs.create_layer("top", Some("base")).unwrap();
    fs.write(top, f.ino, 0, b"new", now()).unwrap();
    assert_eq!(diff(&fs, top), ["C /d", "C /d/f", "C /g"]);
}

#[test]
fn a_symlink_is_a_file_like_any_other() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    fs.symlink(top, Ino::ROOT, b"new-link", b"/usr/bin/ls", 0, 0, now()).unwrap();
    // A symlink's target cannot change in place: replacing it gives another inode, same path.
    fs.unlink(top, Ino::ROOT, b"link", now()).unwrap();
    fs.symlink(top, Ino::ROOT, b"link", b"usr", 0, 0, now()).unwrap();
    assert_eq!(diff(&fs, top), ["C /link", "A /new-link"]);
}

#[test]
fn a_directory_replaced_by_a_file_loses_its_children() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    let usr = at(&fs, top, "/usr");
    fs.mknod(top, Ino::ROOT, b"tmp", FileType::Regular, 0o644, 0, 0, 0, now()).unwrap();
    // An exchange swaps /usr/lib (a directory with a subtree) and /usr/bin/ls (a file).
    let bin = at(&fs, top, "/usr/bin");
    let flags = RenameFlags { exchange: true, ..RenameFlags::default() };
    fs.rename(top, usr, b"lib", bin, b"ls", flags, now()).unwrap();
    let expected = [
        "A /tmp", "C /usr", "C /usr/bin", "C /usr/bin/ls", "A /usr/bin/ls/x", "A /usr/bin/ls/x/y",
        "C /usr/lib", "D /usr/lib/x",
    ];
    assert_eq!(diff(&fs, top), expected);
}

#[test]
fn changes_survive_a_remount() {
    let (dev, fs) = fresh(4096);
    let top = base_and_child(&fs);
    fs.write(top, at(&fs, top, "/etc/passwd"), 0, b"changed", now()).unwrap();
    fs.unlink(top, at(&fs, top, "/usr/bin"), b"ls", now()).unwrap();
    fs.mkdir(top, Ino::ROOT, b"var", 0o755, 0, 0, now()).unwrap();
    let before = diff(&fs, top);
    let expected = ["C /etc", "C /etc/passwd", "C /usr", "C /usr/bin", "D /usr/bin/ls", "A /var"];
    assert_eq!(before, expected);
    fs.unmount().unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    assert_eq!(diff(&fs, top), before);
    fs.commit_layer("top").unwrap();
    assert_eq!(diff(&fs, top), before);
}

#[test]
fn a_child_of_a_child_is_compared_with_its_own_parent() {
    let (_, fs) = fresh(4096);
    let top = base_and_child(&fs);
    fs.unlink(top, at(&fs, top, "/etc"), b"group", now()).unwrap();
    fs.commit_layer("top").unwrap();
    let leaf = fs.create_layer("leaf", Some("top")).unwrap();
    let y = at(&fs, leaf, "/usr/lib/x/y");
    fs.write(leaf, y, 0, b"y", now()).unwrap();
    assert_eq!(diff(&fs, leaf), ["C /usr", "C /usr/lib", "C /usr/lib/x", "C /usr/lib/x/y"]);
    assert_eq!(diff(&fs, top), ["C /etc", "D /etc/group"]);
}

#[test]
fn an_image_of_format_version_1_is_refused_with_a_clear_error() {
    let (dev, fs) = fresh(4096);
    fs.unmount().unwrap();
    // Rewrite both superblock slots as version 1 (the header's version field, checksum kept
    // valid), as an image written before back-references would be.
    for slot in [0u64, 1] {
        let mut block = vec![0u8; 4096];
        dev.read(slot, &mut block).unwrap();
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        block[6..8].copy_from_slice(&1u16.to_le_bytes());
        block[32..36].fill(0);
        let crc = crc32c_of(&block);
        block[32..36].copy_from_slice(&crc.to_le_bytes());
        dev.write(slot, &block).unwrap();
    }
    let err = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotLcfs(_)), "{text}");
    assert!(text.contains("format version 1") && text.contains("mkfs"), "{text}");
}

/// crc32c (Castagnoli), bitwise: the header checksum of docs/layout.md.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------------------------
// The property: `changes` against a brute-force diff of the whole namespaces.

/// What the brute force knows of one path: its inode, type, and everything observable of it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    ino: Ino,
    kind: FileType,
    signature: String,
}

/// Every path of `layer` (the root as ""), walking the namespace through the public API.
fn walk(fs: &Fs, layer: LayerId) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(Ino::ROOT, Vec::new())];
    while let Some((dir, path)) = stack.pop() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = fs.readdir(layer, dir, after.as_deref(), 64).unwrap();
            let Some(last) = batch.last() else { break };
            after = Some(last.name.clone());
            for entry in batch {
                let mut child = path.clone();
                child.push(b'/');
                child.extend_from_slice(&entry.name);
                let signature = signature(fs, layer, entry.ino);
                let seen = Seen { ino: entry.ino, kind: entry.kind, signature };
                if entry.kind == FileType::Directory {
                    stack.push((entry.ino, child.clone()));
                }
                out.insert(child, seen);
            }
        }
    }
    out
}

/// Attributes, xattrs and content of `ino`.
fn signature(fs: &Fs, layer: LayerId, ino: Ino) -> String {
    let attr = fs.getattr(layer, ino).unwrap();
    let mut xattrs = Vec::new();
    for name in fs.listxattr(layer, ino).unwrap() {
        let value = fs.getxattr(layer, ino, &name).unwrap();
        xattrs.push((name, value));
    }
    let content = match attr.kind {
        FileType::Regular => fs.read(layer, ino, 0, attr.size as u32).unwrap(),
        FileType::Symlink => fs.readlink(layer, ino).unwrap(),
        _ => Vec::new(),
    };
    format!("{attr:?} {xattrs:?} {content:?}")
}

fn parent_of(path: &[u8]) -> &[u8] {
    let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
    &path[..cut]
}

/// The definition, path by path (docs/layers.md, "Diff").
fn brute_force(
    old: &BTreeMap<Vec<u8>, Seen>,
    new: &BTreeMap<Vec<u8>, Seen>,
) -> BTreeMap<Vec<u8>, ChangeKind> {
    let mut out = BTreeMap::new();
    for (path, seen) in new {
        match old.get(path) {
            None => {
                out.insert(path.clone(), ChangeKind::Added);
            }
            Some(was) if was != seen => {
                out.insert(path.clone(), ChangeKind::Modified);
            }
            Some(_) => {}
        }
    }
    for path in old.keys() {
        let parent = parent_of(path);
        if !new.contains_key(path) && (parent.is_empty() || new.contains_key(parent)) {
            out.insert(path.clone(), ChangeKind::Deleted);
        }
    }
    let listed: Vec<Vec<u8>> = out.keys().cloned().collect();
    for path in listed {
        let mut up = parent_of(&path);
        while !up.is_empty() {
            out.entry(up.to_vec()).or_insert(ChangeKind::Modified);
            up = parent_of(up);
        }
    }
    out
}

/// A small deterministic generator (xorshift64*), so that a seed replays a case exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len()))
        }
    }
}

const NAMES: [&[u8]; 5] = [b"a", b"b", b"c", b"d", b"e"];

/// One random namespace operation on `layer`; errors (EEXIST, ENOTEMPTY, ...) are part of the
/// game and ignored. The clock moves on every operation, as a real one does.
fn random_op(fs: &Fs, layer: LayerId, rng: &mut Rng, clock: &mut i64) {
    *clock += 1;
    let now = Timespec::new(*clock, 0);
    let paths = walk(fs, layer);
    let dirs: Vec<Ino> = std::iter::once(Ino::ROOT)
        .chain(paths.values().filter(|s| s.kind == FileType::Directory).map(|s| s.ino))
        .collect();
    let files: Vec<Ino> =
        paths.values().filter(|s| s.kind != FileType::Directory).map(|s| s.ino).collect();
    let any: Vec<Ino> = paths.values().map(|s| s.ino).collect();
    let dir = *rng.pick(&dirs).unwrap_or(&Ino::ROOT);
    let name = NAMES[rng.below(NAMES.len())];
    let _ = match rng.below(15) {
        0 | 1 => fs.mknod(layer, dir, name, FileType::Regular, 0o644, 0, 0, 0, now).map(drop),
        2 | 3 => fs.mkdir(layer, dir, name, 0o755, 0, 0, now).map(drop),
        4 => fs.symlink(layer, dir, name, b"target", 0, 0, now).map(drop),
        5 => fs.mknod(layer, dir, name, FileType::Fifo, 0o644, 0, 0, 0, now).map(drop),
        6 => match rng.pick(&files) {
            Some(&f) => fs.write(layer, f, rng.below(5000) as u64, b"data", now).map(drop),
            None => Ok(()),
        },
        7 => match rng.pick(&any) {
            Some(&i) => {
                let set = SetAttr { perm: Some(rng.below(0o777) as u16), ..SetAttr::default() };
                fs.setattr(layer, i, &set, now).map(drop)
            }
            None => Ok(()),
        },
        8 => match rng.pick(&any) {
            Some(&i) => fs.setxattr(layer, i, b"user.x", name, XattrFlags::Any, now),
            None => Ok(()),
        },
        9 => fs.unlink(layer, dir, name, now),
        10 => fs.rmdir(layer, dir, name, now),
        11 | 12 => {
            let to = *rng.pick(&dirs).unwrap_or(&Ino::ROOT);
            let exchange = rng.below(3) == 0;
            let flags = RenameFlags { exchange, ..RenameFlags::default() };
            fs.rename(layer, dir, name, to, NAMES[rng.below(NAMES.len())], flags, now)
        }
        13 => match rng.pick(&files) {
            Some(&f) => fs.link(layer, f, dir, name, now).map(drop),
            None => Ok(()),
        },
        _ => match rng.pick(&files) {
            Some(&f) => {
                let set = SetAttr { size: Some(rng.below(3000) as u64), ..SetAttr::default() };
                fs.setattr(layer, f, &set, now).map(drop)
            }
            None => Ok(()),
        },
    };
}

fn check_layer(fs: &Fs, layer: LayerId, parent: Option<LayerId>, seed: u64) {
    let old = parent.map(|p| walk(fs, p)).unwrap_or_default();
    let expected = brute_force(&old, &walk(fs, layer));
    let found: BTreeMap<Vec<u8>, ChangeKind> =
        fs.changes(layer).unwrap().into_iter().map(|c| (c.path, c.kind)).collect();
    let show = |m: &BTreeMap<Vec<u8>, ChangeKind>| -> Vec<String> {
        m.iter().map(|(p, k)| format!("{} {}", k.letter(), String::from_utf8_lossy(p))).collect()
    };
    assert_eq!(
        show(&found),
        show(&expected),
        "seed {seed}: changes (left) differ from the brute force (right); replay with \
         LCFS_CHANGES_SEED={seed}"
    );
}

/// One case: a random base, a random child, a random grandchild; each diff checked against the
/// brute force, before and after a remount; fsck clean at the end (back-references kept by
/// every operation).
fn run_case(seed: u64) {
    let (dev, fs) = fresh(8192);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut clock = 1_000;
    let base = fs.create_layer("base", None).unwrap();
    for _ in 0..rng.below(40) {
        random_op(&fs, base, &mut rng, &mut clock);
    }
    fs.commit_layer("base").unwrap();
    let top = fs.create_layer("top", Some("base")).unwrap();
    for _ in 0..rng.below(30) {
        random_op(&fs, top, &mut rng, &mut clock);
        if rng.below(10) == 0 {
            fs.checkpoint().unwrap();
        }
    }
    check_layer(&fs, base, None, seed);
    check_layer(&fs, top, Some(base), seed);
    fs.commit_layer("top").unwrap();
    let leaf = fs.create_layer("leaf", Some("top")).unwrap();
    for _ in 0..rng.below(20) {
        random_op(&fs, leaf, &mut rng, &mut clock);
    }
    check_layer(&fs, leaf, Some(top), seed);
    fs.unmount().unwrap();
    let report = fsck::check(Arc::clone(&dev)).unwrap();
    assert!(report.is_clean(), "seed {seed}: {report}");
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    check_layer(&fs, top, Some(base), seed);
    check_layer(&fs, leaf, Some(top), seed);
}

#[test]
fn changes_equal_a_brute_force_diff_of_the_namespaces() {
    if let Some(seed) = std::env::var("LCFS_CHANGES_SEED").ok().and_then(|s| s.parse().ok()) {
        run_case(seed);
        return;
    }
    let cases = std::env::var("LCFS_CHANGES_CASES").ok().and_then(|s| s.parse().ok());
    for seed in 0..cases.unwrap_or(200u64) {
        run_case(seed);
    }
}
