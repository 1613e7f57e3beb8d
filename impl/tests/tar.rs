//! Layer tar streams (impl/src/tar, docs/tar.md): the goal is that a layer goes out as a tar and
//! comes back as the same tree, that tars of real directories made by GNU tar (pax and gnu
//! formats: long names, xattrs, hard links, devices, fifos, setuid, nanosecond times) apply
//! exactly, and that whiteouts and opaque directories on a child layer give the tree Docker
//! gives. Method: canonical dumps of layers (paths, metadata, bytes, hard-link groups) compared
//! with each other or with the real directory; fsck after every test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod tar_support;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use lcfs::tar::{apply_diff_with, write_diff, ChangeKind, EntryKind, EntrySpec};
use lcfs::{FileType, Ino, SetAttr, Timespec, XattrFlags};
use tar_support::*;

fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

#[test]
fn a_layer_written_by_write_diff_applies_as_the_same_tree() {
    let (dev, fs) = fresh();
    let src = fs.create_layer("src", None).unwrap();
    let t = now();
    let d = fs.mkdir(src, Ino::ROOT, b"d", 0o2775, 5, 6, t).unwrap();
    let f = fs
        .mknod(src, d.ino, b"f", FileType::Regular, 0o4755, 0, 7, 8, t)
        .unwrap();
    fs.write(src, f.ino, 0, &pattern(100_000, 1), t).unwrap();
    fs.setxattr(src, f.ino, b"user.a", b"value", XattrFlags::Any, t)
        .unwrap();
    fs.setxattr(
        src,
        f.ino,
        b"security.capability",
        &[1, 0, 0, 2, 0, 0xff, 10],
        XattrFlags::Any,
        t,
    )
    .unwrap();
    fs.link(src, f.ino, d.ino, b"f2", t).unwrap();
    let long = fs.mkdir(src, d.ino, &[b'L'; 200], 0o755, 0, 0, t).unwrap();
    let deep = fs
        .mknod(
            src,
            long.ino,
            &[b'n'; 255],
            FileType::Regular,
            0o600,
            0,
            100_000_000,
            3_000_000_000,
            t,
        )
        .unwrap();
    fs.write(src, deep.ino, 0, b"deep", t).unwrap();
    fs.link(src, deep.ino, Ino::ROOT, b"deep-link", t).unwrap();
    let target: Vec<u8> = b"../".repeat(50);
    fs.symlink(src, Ino::ROOT, b"s", &target, 1, 2, t).unwrap();
    let devdir = fs.mkdir(src, Ino::ROOT, b"dev", 0o755, 0, 0, t).unwrap();
    fs.mknod(
        src,
        devdir.ino,
        b"null",
        FileType::CharDevice,
        0o666,
        makedev(1, 3),
        0,
        0,
        t,
    )
    .unwrap();
    fs.mknod(
        src,
        devdir.ino,
        b"big",
        FileType::BlockDevice,
        0o660,
        makedev(259, 1 << 19),
        0,
        6,
        t,
    )
    .unwrap();
    fs.mknod(src, Ino::ROOT, b"p", FileType::Fifo, 0o1644, 0, 0, 0, t)
        .unwrap();
    let sparse = fs
        .mknod(
            src,
            Ino::ROOT,
            b"sparse",
            FileType::Regular,
            0o644,
            0,
            0,
            0,
            t,
        )
        .unwrap();
    fs.write(src, sparse.ino, 3 << 20, b"end", t).unwrap();
    fs.mknod(
        src,
        Ino::ROOT,
        b"caf\xe9",
        FileType::Regular,
        0o644,
        0,
        0,
        0,
        t,
    )
    .unwrap();
    let old = Timespec::new(-5, 250_000_000);
    fs.setattr(
        src,
        sparse.ino,
        &SetAttr {
            mtime: Some(Timespec::new(1_234_567_890, 123_456_789)),
            ..SetAttr::default()
        },
        t,
    )
    .unwrap();
    fs.setattr(
        src,
        f.ino,
        &SetAttr {
            mtime: Some(old),
            ..SetAttr::default()
        },
        t,
    )
    .unwrap();
    fs.setattr(
        src,
        d.ino,
        &SetAttr {
            mtime: Some(Timespec::new(99, 1)),
            ..SetAttr::default()
        },
        t,
    )
    .unwrap();

    let before = dump(&fs, src);
    let changes: Vec<(Vec<u8>, ChangeKind)> = before
        .keys()
        .filter(|p| !p.is_empty())
        .map(|p| (p.clone(), ChangeKind::Added))
        .collect();
    let mut tar = Vec::new();
    let written = write_diff(&fs, src, &changes, &mut tar).unwrap();
    assert_eq!(written, tar.len() as u64);

    let dst = fs.create_layer("dst", None).unwrap();
    let applied = apply_diff_with(&fs, dst, &tar[..], &opts()).unwrap();
    assert_eq!(applied, 100_000 + 4 + (3 << 20) + 3);
    let mut after = dump(&fs, dst);
    let mut before = before;
    before.remove(&b""[..]);
    after.remove(&b""[..]);
    assert_eq!(before, after);

    // GNU tar reads the stream too (names, types, a long PAX path, the device numbers).
    let listing = gnu_list(&tar);
    assert!(
        listing.contains("crw-rw-rw- 0/0") && listing.contains("1,3"),
        "{listing}"
    );
    assert!(listing.contains(&"n".repeat(255)), "{listing}");
    assert!(listing.contains("d/f2 link to d/f"), "{listing}");
    unmount_clean(&dev, fs);
}

/// `tar -tvv --numeric-owner` of a stream.
fn gnu_list(tar: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.tar");
    std::fs::write(&file, tar).unwrap();
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "GNU tar refused the stream: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real directory with what layers hold; returns its root.
fn real_tree(root: &Path) {
    let long_dir = root.join("x".repeat(120));
    std::fs::create_dir_all(&long_dir).unwrap();
    let long_file = long_dir.join("y".repeat(200));
    std::fs::write(&long_file, b"long").unwrap();
    let mut data = pattern(3 << 20, 2);
    data[4096..(2 << 20)].fill(0);
    std::fs::write(root.join("big"), &data).unwrap();
    std::fs::hard_link(root.join("big"), root.join("big-link")).unwrap();
    std::os::unix::fs::symlink("t".repeat(150), root.join("long-symlink")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-symlink")).unwrap();
    run(Command::new("mknod")
        .arg(root.join("null"))
        .args(["c", "1", "3"]));
    run(Command::new("mknod")
        .arg(root.join("sda1"))
        .args(["b", "8", "1"]));
    run(Command::new("mkfifo").arg(root.join("fifo")));
    std::fs::write(root.join("suid"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(root.join("tmp")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(root.join("suid"), Some(1234), Some(5678)).unwrap();
    let script = format!(
        concat!(
            "import os\nos.setxattr({p:?}, 'user.k', b'v\\x00\\xff')\n",
            "os.utime({p:?}, ns=(1, 1_500_000_000_123_456_789))"
        ),
        p = root.join("suid").to_str().unwrap()
    );
    run(Command::new("python3").arg("-c").arg(script));
}

/// The canonical dump of a real directory (times cut to seconds unless `nanos`).
fn dump_real(root: &Path, nanos: bool, xattrs: bool) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut inos = Vec::new();
    let mut smallest: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut work = vec![(root.to_path_buf(), Vec::new())];
    while let Some((path, rel)) = work.pop() {
        let m = std::fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            FileType::Directory
        } else if ft.is_symlink() {
            FileType::Symlink
        } else if ft.is_char_device() {
            FileType::CharDevice
        } else if ft.is_block_device() {
            FileType::BlockDevice
        } else if ft.is_fifo() {
            FileType::Fifo
        } else {
            FileType::Regular
        };
        let bytes = match kind {
            FileType::Regular => std::fs::read(&path).unwrap(),
            FileType::Symlink => std::fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec(),
            _ => Vec::new(),
        };
        if kind == FileType::Directory {
            for e in std::fs::read_dir(&path).unwrap() {
                let e = e.unwrap();
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(e.file_name().as_bytes());
                work.push((e.path(), child));
            }
        }
        let first = smallest.entry(m.ino()).or_insert_with(|| rel.clone());
        if rel < *first {
            *first = rel.clone();
        }
        inos.push((rel.clone(), m.ino()));
        let mut xattr_map = BTreeMap::new();
        if xattrs && rel == b"suid" {
            xattr_map.insert(b"user.k".to_vec(), b"v\x00\xff".to_vec());
        }
        let nsec = if nanos { m.mtime_nsec() as u32 } else { 0 };
        out.insert(
            rel,
            Node {
                kind,
                perm: (m.mode() & 0o7777) as u16,
                uid: m.uid(),
                gid: m.gid(),
                mtime: Timespec::new(m.mtime(), nsec),
                rdev: m.rdev(),
                nlink: m.nlink() as u32,
                bytes,
                xattrs: xattr_map,
                same_as: None,
            },
        );
    }
    link_groups(&mut out, &inos, &smallest);
    out
}

#[test]
fn tars_made_by_gnu_tar_apply_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    real_tree(&root);
    for format in ["pax", "gnu", "ustar-ish-v7"] {
        let mut cmd = Command::new("tar");
        cmd.arg("--numeric-owner").arg("-C").arg(&root);
        match format {
            "pax" => cmd.args(["--format=pax", "--xattrs", "--xattrs-include=*"]),
            "gnu" => cmd.args(["--format=gnu"]),
            // POSIX ustar cannot hold the 200-byte name: pax headers GNU tar adds only for it.
            _ => cmd.args([
                "--format=posix",
                "--pax-option=delete=atime,delete=ctime,delete=mtime",
            ]),
        };
        let out = cmd.args(["-cf", "-", "."]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = dump_real(&root, format == "pax", format == "pax");

        let (dev, fs) = fresh();
        let layer = fs.create_layer("l", None).unwrap();
        let applied = apply_diff_with(&fs, layer, &out.stdout[..], &opts()).unwrap();
        assert_eq!(
            applied,
            (3 << 20) + 4 + 10,
            "{format}: regular data, the hard link once"
        );
        let mut got = dump(&fs, layer);
        if format != "pax" {
            // Without PAX times GNU tar stores whole seconds.
            for node in got.values_mut() {
                node.mtime.nsec = 0;
            }
        }
        for (path, node) in &expected {
            assert_eq!(
                got.get(path),
                Some(node),
                "{format}: {}",
                String::from_utf8_lossy(path)
            );
        }
        assert_eq!(got.len(), expected.len(), "{format}");
        let big = resolve(&fs, layer, b"big").unwrap();
        assert!(
            big.blocks * 512 < 2 << 20,
            "{format}: the zero run stays a hole ({} blocks)",
            big.blocks
        );
        unmount_clean(&dev, fs);
    }
}

#[test]
fn whiteouts_and_opaque_directories_give_dockers_tree_on_a_child() {
    let (dev, fs) = fresh();
    let base = fs.create_layer("base", None).unwrap();
    let lower = Build::default()
        .dir(b"./")
        .dir(b"etc")
        .file(b"etc/passwd", b"root")
        .file(b"etc/group", b"g")
        .dir(b"etc/sub")
        .file(b"etc/sub/deep", b"d")
        .dir(b"etc/sub/inner")
        .file(b"etc/sub/inner/x", b"x")
        .dir(b"opt/keep")
        .file(b"opt/keep/k", b"k")
        .dir(b"opt/gone/more")
        .file(b"opt/gone/more/x", b"x")
        .dir(b"var/lib")
        .file(b"var/lib/old", b"o")
        .file(b"replaced-by-dir", b"f")
        .dir(b"replaced-by-file")
        .file(b"replaced-by-file/inner", b"i")
        .file(b"a", b"shared")
        .hardlink(b"b", b"a")
        .finish();
    apply_diff_with(&fs, base, &lower[..], &opts()).unwrap();
    fs.commit_layer("base").unwrap();
    let base_dump = dump(&fs, base);

    let child = fs.create_layer("child", Some("base")).unwrap();
    let lib = EntrySpec {
        mode: 0o700,
        uid: 7,
        gid: 8,
        ..spec(EntryKind::Directory, b"var/lib")
    };
    let upper = Build::default()
        .file(b"opt/.wh.gone", b"")
        .file(b"etc/.wh.group", b"")
        .entry(&lib, b"")
        .dir(b"etc/sub")
        .file(b"etc/sub/new", b"n")
        .file(b"etc/sub/.wh..wh..opq", b"")
        .dir(b"replaced-by-dir")
        .file(b"replaced-by-dir/in", b"i")
        .file(b"replaced-by-file", b"now a file")
        .file(b".wh.missing", b"")
        .file(b"new/dir/file", b"created parents")
        .file(b"etc/passwd", b"toor")
        .file(b".wh.b", b"")
        .file(b".wh..wh.plnk", b"")
        .finish();
    let applied = apply_diff_with(&fs, child, &upper[..], &opts()).unwrap();
    assert_eq!(applied, 1 + 1 + 10 + 15 + 4);

    let got = dump(&fs, child);
    let summary: Vec<(String, FileType, String)> = got
        .iter()
        .map(|(p, n)| {
            (
                String::from_utf8_lossy(p).into_owned(),
                n.kind,
                String::from_utf8_lossy(&n.bytes).into_owned(),
            )
        })
        .collect();
    let d = FileType::Directory;
    let f = FileType::Regular;
    let s = |p: &str, k, b: &str| (p.to_string(), k, b.to_string());
    let expected = vec![
        s("", d, ""),
        s("a", f, "shared"),
        s("etc", d, ""),
        s("etc/passwd", f, "toor"),
        s("etc/sub", d, ""),
        s("etc/sub/new", f, "n"),
        s("new", d, ""),
        s("new/dir", d, ""),
        s("new/dir/file", f, "created parents"),
        s("opt", d, ""),
        s("opt/keep", d, ""),
        s("opt/keep/k", f, "k"),
        s("replaced-by-dir", d, ""),
        s("replaced-by-dir/in", f, "i"),
        s("replaced-by-file", f, "now a file"),
        s("var", d, ""),
        s("var/lib", d, ""),
        s("var/lib/old", f, "o"),
    ];
    assert_eq!(summary, expected);
    let lib = &got[&b"var/lib"[..]];
    assert_eq!(
        (lib.perm, lib.uid, lib.gid, lib.mtime),
        (0o700, 7, 8, Timespec::new(1_600_000_000, 0))
    );
    assert_eq!(got[&b"a"[..]].nlink, 1, "the whiteout of b dropped a link");
    assert_eq!(
        got[&b"etc/sub"[..]].mtime,
        Timespec::new(1_600_000_000, 0),
        "directory times are set last"
    );
    assert_eq!(got[&b"new"[..]].perm, 0o755);
    assert_eq!(dump(&fs, base), base_dump, "the parent is untouched");
    unmount_clean(&dev, fs);
}

#[test]
fn write_diff_writes_whiteouts_parents_and_hard_links() {
    let (dev, fs) = fresh();
    let base = fs.create_layer("base", None).unwrap();
    let lower = Build::default()
        .dir(b"a/b")
        .file(b"a/b/old", b"o")
        .file(b"a/keep", b"k")
        .finish();
    apply_diff_with(&fs, base, &lower[..], &opts()).unwrap();
    fs.commit_layer("base").unwrap();
    let child = fs.create_layer("child", Some("base")).unwrap();
    let upper = Build::default()
        .file(b"a/b/.wh.old", b"")
        .file(b"a/b/new", b"n")
        .hardlink(b"a/b/new2", b"a/b/new")
        .finish();
    apply_diff_with(&fs, child, &upper[..], &opts()).unwrap();

    let changes = vec![
        (b"/a/b/new2".to_vec(), ChangeKind::Added),
        (b"/a/b/old".to_vec(), ChangeKind::Deleted),
        (b"/a/b/new".to_vec(), ChangeKind::Added),
    ];
    let mut tar = Vec::new();
    write_diff(&fs, child, &changes, &mut tar).unwrap();
    let listing = gnu_list(&tar);
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(
        names,
        ["a/", "a/b/", "a/b/new", "a/b/new2", "a/b/.wh.old"],
        "{listing}"
    );
    assert!(listing.contains("a/b/new2 link to a/b/new"), "{listing}");

    // The diff applied on another child of base gives the same tree.
    let again = fs.create_layer("again", Some("base")).unwrap();
    apply_diff_with(&fs, again, &tar[..], &opts()).unwrap();
    assert_eq!(dump(&fs, again), dump(&fs, child));
    unmount_clean(&dev, fs);
}

#[test]
fn a_childs_diff_from_fs_changes_rebuilds_the_child_on_its_parent() {
    let (dev, fs) = fresh();
    let base = fs.create_layer("base", None).unwrap();
    let lower = Build::default()
        .dir(b"etc/sub")
        .file(b"etc/passwd", b"root")
        .file(b"etc/sub/deep", b"d")
        .dir(b"gone/inner")
        .file(b"gone/inner/x", b"x")
        .file(b"dir-to-be", b"f")
        .file(b"a", b"shared")
        .finish();
    apply_diff_with(&fs, base, &lower[..], &opts()).unwrap();
    fs.commit_layer("base").unwrap();

    // The child changes through the engine's own calls, as a container would.
    let child = fs.create_layer("child", Some("base")).unwrap();
    let t = now();
    let etc = resolve(&fs, child, b"etc").unwrap();
    let passwd = resolve(&fs, child, b"etc/passwd").unwrap();
    fs.write(child, passwd.ino, 0, b"toor:x", t).unwrap();
    fs.setxattr(child, passwd.ino, b"user.new", b"1", XattrFlags::Any, t)
        .unwrap();
    let sub = resolve(&fs, child, b"etc/sub").unwrap();
    fs.unlink(child, sub.ino, b"deep", t).unwrap();
    let gone = resolve(&fs, child, b"gone").unwrap();
    let inner = resolve(&fs, child, b"gone/inner").unwrap();
    fs.unlink(child, inner.ino, b"x", t).unwrap();
    fs.rmdir(child, gone.ino, b"inner", t).unwrap();
    fs.rmdir(child, Ino::ROOT, b"gone", t).unwrap();
    fs.unlink(child, Ino::ROOT, b"dir-to-be", t).unwrap();
    let made = fs
        .mkdir(child, Ino::ROOT, b"dir-to-be", 0o750, 3, 4, t)
        .unwrap();
    let new = fs
        .mknod(
            child,
            made.ino,
            b"new",
            FileType::Regular,
            0o600,
            0,
            0,
            0,
            t,
        )
        .unwrap();
    fs.write(child, new.ino, 0, b"fresh", t).unwrap();
    let a = resolve(&fs, child, b"a").unwrap();
    fs.link(child, a.ino, etc.ino, b"a-link", t).unwrap();
    fs.symlink(child, Ino::ROOT, b"s", b"etc/passwd", 0, 0, t)
        .unwrap();

    let mut tar = Vec::new();
    lcfs::tar::write_layer_diff(&fs, child, &mut tar).unwrap();
    let listing = gnu_list(&tar);
    assert!(
        listing.contains(".wh.gone") && listing.contains("etc/sub/.wh.deep"),
        "{listing}"
    );
    assert!(
        !listing.contains("inner"),
        "only the top of a deleted subtree: {listing}"
    );

    let again = fs.create_layer("again", Some("base")).unwrap();
    apply_diff_with(&fs, again, &tar[..], &opts()).unwrap();
    let (mut want, mut got) = (dump(&fs, child), dump(&fs, again));
    want.remove(&b""[..]);
    got.remove(&b""[..]);
    assert_eq!(got, want);
    unmount_clean(&dev, fs);
}
