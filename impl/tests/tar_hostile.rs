//! Hostile layer tars (issue 5 part 4, docs/tar.md "Hostile input"): whatever the stream holds,
//! nothing outside the target layer changes. Each case either gets an EINVAL-shaped error that
//! names the entry, or is applied safely inside the layer. Method: a committed base layer (with
//! symlinks pointing out of it), a sibling layer and the target, both children of base; after
//! every case the base and sibling layers must dump exactly as before, and fsck after unmount
//! must be clean, whatever part of the stream was applied before the failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod tar_support;

use lcfs::tar::{apply_diff_with, ApplyOptions, EntryKind, EntrySpec, Limits};
use lcfs::FileType;
use tar_support::*;

fn stream(parts: &[&[u8]]) -> Vec<u8> {
    let mut v: Vec<u8> = parts.concat();
    v.extend_from_slice(&END);
    v
}

fn file_header(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = header(name, b'0', data.len() as u64, b"").to_vec();
    v.extend_from_slice(&padded(data));
    v
}

#[test]
fn dot_dot_above_the_root_is_refused() {
    for name in [&b"../evil"[..], b"a/../../evil", b"/../evil", b"./../evil"] {
        let stage = Stage::new();
        let message = stage.refuses(&stream(&[&file_header(name, b"x")]), "evil");
        assert!(message.contains("climbs above the layer root"), "{message}");
        stage.finish();
    }
    // `..` that stays inside is plain cleaning.
    let stage = Stage::new();
    stage
        .apply(&stream(&[&file_header(b"a/../inside", b"x")]))
        .unwrap();
    assert!(resolve(&stage.fs, stage.target, b"inside").is_ok());
    stage.finish();
}

#[test]
fn absolute_paths_are_taken_relative_to_the_layer_root() {
    let stage = Stage::new();
    stage
        .apply(&stream(&[
            &file_header(b"/abs/file", b"x"),
            &file_header(b"//etc/passwd", b"mine"),
        ]))
        .unwrap();
    let f = resolve(&stage.fs, stage.target, b"abs/file").unwrap();
    assert_eq!(stage.fs.read(stage.target, f.ino, 0, 10).unwrap(), b"x");
    let p = resolve(&stage.fs, stage.target, b"etc/passwd").unwrap();
    assert_eq!(stage.fs.read(stage.target, p.ino, 0, 10).unwrap(), b"mine");
    stage.finish();
}

#[test]
fn a_symlink_in_a_path_is_never_followed() {
    // One made earlier in the stream, then written through.
    let stage = Stage::new();
    let tar = Build::default()
        .symlink(b"out", b"/")
        .file(b"out/etc/passwd", b"owned")
        .finish();
    let message = stage.refuses(&tar, "out/etc/passwd");
    assert!(message.contains("symlink"), "{message}");
    stage.finish();
    // One inherited from the parent layer, for every kind of entry.
    for tar in [
        Build::default()
            .file(b"escape/etc/passwd", b"owned")
            .finish(),
        Build::default().dir(b"up/x").finish(),
        Build::default()
            .file(b"escape/etc/.wh.passwd", b"")
            .finish(),
        Build::default()
            .file(b"escape/etc/.wh..wh..opq", b"")
            .finish(),
        Build::default()
            .hardlink(b"h", b"escape/etc/passwd")
            .finish(),
    ] {
        let stage = Stage::new();
        let message = stage.refuses(&tar, "");
        assert!(message.contains("symlink"), "{message}");
        stage.finish();
    }
    // An entry at the symlink's own path replaces the symlink.
    let stage = Stage::new();
    stage
        .apply(
            &Build::default()
                .dir(b"escape")
                .file(b"escape/f", b"in")
                .finish(),
        )
        .unwrap();
    assert_eq!(
        resolve(&stage.fs, stage.target, b"escape").unwrap().kind,
        FileType::Directory
    );
    stage.finish();
}

#[test]
fn hard_links_must_name_an_existing_non_directory_inside() {
    let cases: [(&[u8], &str); 5] = [
        (b"../../etc/passwd", "climbs above"),
        (b"nothere", "missing name"),
        (b"etc", "to a directory"),
        (b"/", "layer root"),
        (b"etc/passwd/x", "not a directory"),
    ];
    for (target, why) in cases {
        let stage = Stage::new();
        let message = stage.refuses(&Build::default().hardlink(b"h", target).finish(), "h");
        assert!(message.contains(why), "{message}");
        stage.finish();
    }
    // To an inherited file: the target layer gains a name; the base inode keeps one link there.
    let stage = Stage::new();
    stage
        .apply(
            &Build::default()
                .hardlink(b"h", b"/etc/passwd")
                .hardlink(b"h", b"etc/passwd")
                .finish(),
        )
        .unwrap();
    let h = resolve(&stage.fs, stage.target, b"h").unwrap();
    assert_eq!(h.nlink, 2);
    assert_eq!(
        resolve(&stage.fs, stage.base, b"etc/passwd").unwrap().nlink,
        1
    );
    stage.finish();
}

#[test]
fn huge_negative_and_missing_sizes_are_refused() {
    // 2^50 bytes through a PAX size: above the largest file, refused before any data is read.
    let stage = Stage::new();
    let tar = stream(&[
        &pax(&record("size", b"1125899906842624")),
        &header(b"huge", b'0', 0, b""),
    ]);
    let message = stage.refuses(&tar, "huge");
    assert!(message.contains("largest file size"), "{message}");
    stage.finish();
    // A negative size in base-256.
    let stage = Stage::new();
    let mut h = header(b"negative", b'0', 0, b"");
    h[124..136].fill(0xff);
    seal(&mut h);
    let message = stage.refuses(&stream(&[&h]), "");
    assert!(message.contains("negative size"), "{message}");
    stage.finish();
    // A negative PAX size.
    let stage = Stage::new();
    stage.refuses(
        &stream(&[&pax(&record("size", b"-1")), &header(b"neg", b'0', 0, b"")]),
        "",
    );
    stage.finish();
    // A size beyond the end of the stream: the data is truncated.
    let stage = Stage::new();
    let mut tar = header(b"short", b'0', 10_000, b"").to_vec();
    tar.extend_from_slice(&[7u8; 100]);
    let message = stage.refuses(&tar, "short");
    assert!(message.contains("ends early"), "{message}");
    stage.finish();
}

#[test]
fn names_hold_any_byte_but_nul_and_stay_within_limits() {
    // Not UTF-8: applied as bytes.
    let stage = Stage::new();
    stage
        .apply(&stream(&[&file_header(b"caf\xe9/\xff\xfe", b"x")]))
        .unwrap();
    assert!(resolve(&stage.fs, stage.target, b"caf\xe9/\xff\xfe").is_ok());
    stage.finish();
    // A NUL inside a PAX path or a GNU long name.
    let stage = Stage::new();
    stage.refuses(
        &stream(&[&pax(&record("path", b"a\0b")), &file_header(b"x", b"")]),
        "",
    );
    stage.finish();
    let stage = Stage::new();
    let mut long = header(b"././@LongLink", b'L', 5, b"").to_vec();
    long.extend_from_slice(&padded(b"a\0b\0\0"));
    stage.refuses(&stream(&[&long, &file_header(b"x", b"")]), "");
    stage.finish();
    // A component of 256 bytes, and a path of 4097.
    let stage = Stage::new();
    let name = vec![b'n'; 256];
    let message = stage.refuses(&Build::default().file(&name, b"").finish(), "nnn");
    assert!(message.contains("255"), "{message}");
    stage.finish();
    let stage = Stage::new();
    let deep: Vec<u8> = b"d/".repeat(2048).into_iter().chain(*b"f").collect();
    let message = stage.refuses(&Build::default().file(&deep, b"").finish(), "d/d/");
    assert!(message.contains("PATH_MAX"), "{message}");
    stage.finish();
    // A whiteout of a 255-byte name is 259 bytes: fine as the last component, refused above it
    // (such a parent used to reach the engine's ENAMETOOLONG, which the fuzz target now rejects).
    let whiteout: Vec<u8> = [&b".wh."[..], &[b'n'; 255]].concat();
    let stage = Stage::new();
    stage
        .apply(&Build::default().file(&whiteout, b"").finish())
        .unwrap();
    stage.finish();
    let stage = Stage::new();
    let above: Vec<u8> = [&whiteout[..], b"/x"].concat();
    let message = stage.refuses(&Build::default().file(&above, b"").finish(), ".wh.nnn");
    assert!(message.contains("255"), "{message}");
    stage.finish();
    // Whiteouts of '', '.' and '..'.
    for name in [&b".wh."[..], b"etc/.wh..", b"etc/.wh..."] {
        let stage = Stage::new();
        stage.refuses(&Build::default().file(name, b"").finish(), ".wh.");
        stage.finish();
    }
}

#[test]
fn device_nodes_and_fifos_are_stored_as_the_engine_stores_them() {
    let stage = Stage::new();
    let mem = EntrySpec {
        dev_major: 1,
        dev_minor: 1,
        mode: 0o640,
        ..spec(EntryKind::CharDevice, b"dev/mem")
    };
    let disk = EntrySpec {
        dev_major: 8,
        dev_minor: 0,
        ..spec(EntryKind::BlockDevice, b"dev/sda")
    };
    stage
        .apply(
            &Build::default()
                .entry(&mem, b"")
                .entry(&disk, b"")
                .entry(&spec(EntryKind::Fifo, b"p"), b"")
                .finish(),
        )
        .unwrap();
    let m = resolve(&stage.fs, stage.target, b"dev/mem").unwrap();
    assert_eq!(
        (m.kind, m.rdev, m.perm),
        (FileType::CharDevice, 0x101, 0o640)
    );
    assert_eq!(
        resolve(&stage.fs, stage.target, b"dev/sda").unwrap().rdev,
        0x800
    );
    assert_eq!(
        resolve(&stage.fs, stage.target, b"p").unwrap().kind,
        FileType::Fifo
    );
    stage.finish();
}

#[test]
fn broken_headers_are_refused() {
    let good = header(b"file", b'0', 0, b"");
    let mut bad_sum = good;
    bad_sum[0] = b'g';
    let mut not_octal = good;
    not_octal[100..108].copy_from_slice(b"0009644\0");
    seal(&mut not_octal);
    let sparse = header(b"sparse", b'S', 0, b"");
    let volume = header(b"vol", b'V', 0, b"");
    let big_uid = [
        pax(&record("uid", b"4294967296")),
        header(b"u", b'0', 0, b"").to_vec(),
    ]
    .concat();
    let cases: [(&[u8], &str); 5] = [
        (&bad_sum, "checksum mismatch"),
        (&not_octal, "non-octal"),
        (&sparse, "sparse"),
        (&volume, "unsupported"),
        (&big_uid, "uid"),
    ];
    for (bytes, why) in cases {
        let stage = Stage::new();
        let message = stage.refuses(&stream(&[&file_header(b"before", b"b"), bytes]), "");
        assert!(message.contains(why), "{message}");
        assert!(
            resolve(&stage.fs, stage.target, b"before").is_ok(),
            "a partial apply remains"
        );
        stage.finish();
    }
    // A lone zero block followed by more headers.
    let stage = Stage::new();
    let message = stage.refuses(&[&[0u8; 512][..], &good, &END].concat(), "");
    assert!(message.contains("lone zero block"), "{message}");
    stage.finish();
}

#[test]
fn truncated_streams_are_refused() {
    let full = stream(&[
        &file_header(b"a", b"aaaa"),
        &file_header(b"b", &[1u8; 3000]),
    ]);
    // Inside a header, inside data, inside padding, and at a header boundary without the marker.
    for cut in [100, 1536 + 300, 1536 + 3000 + 10, 1024, full.len() - 1024] {
        let stage = Stage::new();
        let message = stage.refuses(&full[..cut], "");
        assert!(message.contains("ends early"), "cut at {cut}: {message}");
        stage.finish();
    }
    // One zero block at the very end is accepted (GNU tar accepts it too).
    let stage = Stage::new();
    stage.apply(&full[..full.len() - 512]).unwrap();
    stage.finish();
    // An empty stream has no end marker.
    let stage = Stage::new();
    stage.refuses(b"", "");
    stage.finish();
}

#[test]
fn pax_records_with_bad_lengths_are_refused() {
    for records in [
        &b"99 path=x\n"[..],
        b"0 path=x\n",
        b"7path=x\n",
        b"x path=x\n",
        b"12 path=x\n",
        b"9 path x\n",
    ] {
        let stage = Stage::new();
        let message = stage.refuses(&stream(&[&pax(records), &file_header(b"f", b"")]), "");
        assert!(
            message.contains("PAX"),
            "{:?}: {message}",
            String::from_utf8_lossy(records)
        );
        stage.finish();
    }
}

#[test]
fn every_bound_is_enforced() {
    // Extension headers in a row.
    let stage = Stage::new();
    let one = pax(&record("mtime", b"1"));
    let many: Vec<u8> = one.repeat(17);
    let message = stage.refuses(&stream(&[&many, &file_header(b"f", b"")]), "");
    assert!(message.contains("extension headers"), "{message}");
    stage.finish();
    // An extension header above the limit is refused before its data is read.
    let stage = Stage::new();
    let message = stage.refuses(
        &stream(&[&header(b"././@PaxHeader", b'x', 2 << 20, b"")]),
        "",
    );
    assert!(message.contains("larger than the limit"), "{message}");
    stage.finish();
    // Headers per stream.
    let stage = Stage::new();
    let limits = Limits {
        headers_max: 3,
        ..Limits::default()
    };
    let tar = Build::default()
        .file(b"1", b"")
        .file(b"2", b"")
        .file(b"3", b"")
        .file(b"4", b"")
        .finish();
    let err = apply_diff_with(
        &stage.fs,
        stage.target,
        &tar[..],
        &ApplyOptions { now: now(), limits },
    )
    .unwrap_err();
    assert!(err.to_string().contains("too many headers"), "{err}");
    assert_eq!(err.errno(), 22);
    stage.finish();
    // The paths an apply remembers.
    let stage = Stage::new();
    let limits = Limits {
        tracked_path_bytes_max: 10,
        ..Limits::default()
    };
    let tar = Build::default()
        .file(b"aaaa", b"")
        .file(b"bbbb", b"")
        .file(b"cccc", b"")
        .finish();
    let err = apply_diff_with(
        &stage.fs,
        stage.target,
        &tar[..],
        &ApplyOptions { now: now(), limits },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("more paths than an apply tracks"),
        "{err}"
    );
    assert_eq!((err.errno(), err.name.as_str()), (22, "cccc"));
    stage.finish();
    // Xattr values above the engine's limit name the entry.
    let stage = Stage::new();
    let xattrs = vec![(b"user.big".to_vec(), vec![1u8; 2000])];
    let tar = Build::default()
        .entry(
            &EntrySpec {
                xattrs: &xattrs,
                ..spec(EntryKind::Regular, b"x")
            },
            b"",
        )
        .finish();
    let message = stage.refuses(&tar, "x");
    assert!(message.contains("xattr"), "{message}");
    stage.finish();
}

#[test]
fn the_layer_root_and_committed_layers_cannot_be_replaced() {
    let stage = Stage::new();
    let message = stage.refuses(&Build::default().file(b"./", b"").finish(), "");
    assert!(message.contains("layer root"), "{message}");
    stage.finish();
    let stage = Stage::new();
    let err = apply_diff_with(
        &stage.fs,
        stage.base,
        &Build::default().file(b"x", b"").finish()[..],
        &opts(),
    )
    .unwrap_err();
    assert_eq!(err.errno(), 30, "EROFS: {err}");
    stage.finish();
}

#[test]
fn replacing_inherited_entries_changes_only_the_target() {
    let stage = Stage::new();
    let tar = Build::default()
        .file(b"etc", b"a file over a directory")
        .file(b"escape", b"a file over a symlink")
        .file(b"x", b"1")
        .hardlink(b"x", b"x")
        .finish();
    stage.apply(&tar).unwrap();
    assert_eq!(
        resolve(&stage.fs, stage.target, b"etc").unwrap().kind,
        FileType::Regular
    );
    assert_eq!(
        resolve(&stage.fs, stage.target, b"x").unwrap().nlink,
        1,
        "a link to itself is a no-op"
    );
    stage.finish();
}

/// Found by the tar fuzz target: a symlink header whose link field starts with NUL (an empty
/// target) reached the engine, whose ENOENT did not say that the stream was at fault.
#[test]
fn symlinks_with_an_empty_or_too_long_target_are_refused() {
    let stage = Stage::new();
    let message = stage.refuses(&stream(&[&header(b"out", b'2', 0, b"")]), "out");
    assert!(message.contains("empty target"), "{message}");
    stage.finish();
    let stage = Stage::new();
    let message = stage.refuses(
        &Build::default().symlink(b"long", &[b't'; 4096]).finish(),
        "long",
    );
    assert!(message.contains("4095"), "{message}");
    stage.finish();
}

/// Found by the tar fuzz target (entries mode): a hard link at the path of a directory, to a
/// name inside that directory; replacing the directory removed the target, and the engine's
/// ENOENT reached the caller. It is refused before anything changes.
#[test]
fn a_hard_link_to_a_name_inside_the_directory_it_replaces_is_refused() {
    let stage = Stage::new();
    let tar = Build::default()
        .dir(b"d")
        .file(b"d/x", b"x")
        .hardlink(b"/d/", b"d/./x")
        .finish();
    let message = stage.refuses(&tar, "/d/");
    assert!(
        message.contains("inside the entry it replaces"),
        "{message}"
    );
    assert!(
        resolve(&stage.fs, stage.target, b"d/x").is_ok(),
        "nothing was removed"
    );
    stage.finish();
    // Inherited too: etc/passwd inside etc.
    let stage = Stage::new();
    stage.refuses(
        &Build::default().hardlink(b"etc", b"etc/passwd").finish(),
        "etc",
    );
    stage.finish();
}
