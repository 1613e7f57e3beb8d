//! File operations the kernel hands to the daemon beyond read and write, checked through the
//! mount with the system calls themselves: lseek SEEK_DATA/SEEK_HOLE on sparse files (written,
//! checkpointed, truncated) and copy_file_range (within a layer: bytes and holes as a plain
//! copy gives them; across layers: the kernel's fallback); `lcfs stats` numbers, `lcfs gc` of
//! orphaned layers, and `lcfs fsck --progress`, through the CLI.
#![allow(
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};

use common::Mounted;

const B: i64 = 4096;

/// lseek(2) with `whence`: the offset, or the errno.
fn lseek(file: &File, offset: i64, whence: i32) -> Result<i64, i32> {
    // SAFETY: lseek only reads its integer arguments; the fd is open for the call's duration.
    let out = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if out < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(out)
    }
}

/// copy_file_range(2) of `len` bytes; the count copied, or the errno.
fn copy_range(from: &File, at: i64, to: &File, to_at: i64, len: usize) -> Result<usize, i32> {
    let (mut off_in, mut off_out) = (at, to_at);
    // SAFETY: the offsets are locals that outlive the call; the fds are open.
    let out = unsafe {
        libc::copy_file_range(
            from.as_raw_fd(),
            &mut off_in,
            to.as_raw_fd(),
            &mut off_out,
            len,
            0,
        )
    };
    if out < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(out as usize)
    }
}

/// `(SEEK_DATA, SEEK_HOLE)` at `offset`.
fn seek(file: &File, offset: i64) -> (Result<i64, i32>, Result<i64, i32>) {
    (
        lseek(file, offset, libc::SEEK_DATA),
        lseek(file, offset, libc::SEEK_HOLE),
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) | 1)
        .collect()
}

#[test]
fn seek_data_and_seek_hole_report_the_holes_of_sparse_files() {
    require!();
    let mut m = Mounted::new("256M");
    m.layer(&["create", "l"]);
    let path = m.layer_dir("l").join("sparse");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    // Data in blocks 2 and 6..8, a hole at the start, between and at the end.
    f.write_all_at(&pattern(B as usize, 1), 2 * B as u64)
        .unwrap();
    f.write_all_at(&pattern(2 * B as usize, 2), 6 * B as u64)
        .unwrap();
    f.set_len(12 * B as u64).unwrap();
    let expect = |f: &File, when: &str| {
        assert_eq!(seek(f, 0), (Ok(2 * B), Ok(0)), "{when}");
        assert_eq!(seek(f, 2 * B + 5), (Ok(2 * B + 5), Ok(3 * B)), "{when}");
        assert_eq!(seek(f, 3 * B), (Ok(6 * B), Ok(3 * B)), "{when}");
        assert_eq!(seek(f, 7 * B), (Ok(7 * B), Ok(8 * B)), "{when}");
        assert_eq!(seek(f, 8 * B), (Err(libc::ENXIO), Ok(8 * B)), "{when}");
        assert_eq!(
            seek(f, 12 * B),
            (Err(libc::ENXIO), Err(libc::ENXIO)),
            "{when}"
        );
        assert_eq!(
            seek(f, 100 * B),
            (Err(libc::ENXIO), Err(libc::ENXIO)),
            "{when}"
        );
    };
    expect(&f, "unwritten");
    f.sync_all().unwrap();
    expect(&f, "after fsync");
    drop(f);
    // Truncate into the data, then grow: the cut part comes back as a hole.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.set_len(7 * B as u64).unwrap();
    f.set_len(9 * B as u64).unwrap();
    assert_eq!(seek(&f, 6 * B), (Ok(6 * B), Ok(7 * B)));
    assert_eq!(seek(&f, 7 * B), (Err(libc::ENXIO), Ok(7 * B)));
    drop(f);
    // A committed layer answers the same, and so does a clone of it.
    m.layer(&["commit", "l"]);
    m.layer(&["create", "c", "--parent", "l"]);
    let f = File::open(m.layer_dir("c").join("sparse")).unwrap();
    assert_eq!(seek(&f, 0), (Ok(2 * B), Ok(0)));
    drop(f);
    m.umount();
    m.fsck_clean();
}

#[test]
fn copy_file_range_copies_like_a_plain_copy() {
    require!();
    let mut m = Mounted::new("512M");
    m.layer(&["create", "l"]);
    m.layer(&["create", "other"]);
    let dir = m.layer_dir("l");
    // A file with data, a hole of 3 MiB, and more data: 5 MiB in all.
    let src_path = dir.join("src");
    let src = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&src_path)
        .unwrap();
    src.write_all_at(&pattern(1 << 20, 3), 0).unwrap();
    src.write_all_at(&pattern((1 << 20) + 123, 4), 4 << 20)
        .unwrap();
    let size = src.metadata().unwrap().len();
    let plain = fs::read(&src_path).unwrap();

    // Within the layer: the daemon copies.
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("dst"))
        .unwrap();
    let mut done = 0usize;
    while done < size as usize {
        let n = copy_range(&src, done as i64, &dst, done as i64, size as usize - done).unwrap();
        assert!(n > 0, "copy_file_range stopped at {done}");
        done += n;
    }
    assert_eq!(fs::read(dir.join("dst")).unwrap(), plain);
    dst.sync_all().unwrap();
    assert_eq!(
        lseek(&dst, 0, libc::SEEK_HOLE),
        Ok((1 << 20) as i64),
        "the hole stays a hole"
    );
    assert!(dst.metadata().unwrap().blocks() < src.metadata().unwrap().blocks() + 8);

    // A range into the middle of an existing file, and past the end of the source: 0.
    let mid = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("mid"))
        .unwrap();
    mid.write_all_at(&vec![7u8; 100_000], 0).unwrap();
    assert_eq!(copy_range(&src, 10, &mid, 1_000, 50_000), Ok(50_000));
    let mut expect = vec![7u8; 100_000];
    expect[1_000..51_000].copy_from_slice(&plain[10..50_010]);
    assert_eq!(fs::read(dir.join("mid")).unwrap(), expect);
    assert_eq!(copy_range(&src, size as i64, &mid, 0, 10), Ok(0));

    // Across layers: EXDEV from the daemon, the kernel copies instead; std::io::copy too.
    let cross = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.layer_dir("other").join("copy"))
        .unwrap();
    let mut done = 0usize;
    while done < size as usize {
        match copy_range(&src, done as i64, &cross, done as i64, size as usize - done) {
            Ok(n) if n > 0 => done += n,
            // Older kernels do not fall back within one FUSE mount: copy the rest by hand.
            Err(libc::EXDEV) | Err(libc::EOPNOTSUPP) => {
                let mut from = File::open(&src_path).unwrap();
                std::io::Seek::seek(&mut from, std::io::SeekFrom::Start(done as u64)).unwrap();
                let mut to = &cross;
                std::io::Seek::seek(&mut to, std::io::SeekFrom::Start(done as u64)).unwrap();
                std::io::copy(&mut from, &mut to).unwrap();
                done = size as usize;
            }
            other => panic!("copy_file_range across layers: {other:?}"),
        }
    }
    assert_eq!(fs::read(m.layer_dir("other").join("copy")).unwrap(), plain);
    let mut std_copy = File::create(dir.join("std")).unwrap();
    std::io::copy(&mut File::open(&src_path).unwrap(), &mut std_copy).unwrap();
    std_copy.flush().unwrap();
    assert_eq!(fs::read(dir.join("std")).unwrap(), plain);

    // A committed layer: its files cannot be opened for writing (EROFS), and a copy into a
    // writable layer from it works.
    drop((src, dst, mid, cross, std_copy));
    m.layer(&["commit", "l"]);
    let err = OpenOptions::new()
        .write(true)
        .open(dir.join("dst"))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    m.layer(&["create", "c", "--parent", "l"]);
    let src = File::open(m.layer_dir("c").join("src")).unwrap();
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.layer_dir("c").join("x"))
        .unwrap();
    assert_eq!(
        copy_range(&src, 0, &dst, 0, size as usize),
        Ok(size as usize)
    );
    drop((src, dst));
    assert_eq!(fs::read(m.layer_dir("c").join("x")).unwrap(), plain);
    m.umount();
    m.fsck_clean();
}

/// Sets the extended attribute `name` of `path` (the layer's unfinished marker, as an
/// interrupted import leaves it).
fn set_xattr(path: &std::path::Path, name: &str, value: &[u8]) {
    let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated and live across the call; value is a slice.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

fn layer_names(m: &Mounted) -> Vec<String> {
    m.layer(&["list"])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn stats_gc_and_fsck_progress_through_the_cli() {
    require!();
    let mut m = Mounted::new("256M");
    let mount = m.mount_arg();
    m.layer(&["create", "base"]);
    let base = m.layer_dir("base");
    fs::create_dir(base.join("d")).unwrap();
    for i in 0..20 {
        fs::write(base.join("d").join(format!("f{i}")), vec![b'x'; 1000 * i]).unwrap();
    }
    m.layer(&["commit", "base"]);
    m.layer(&["create", "c1", "--parent", "base"]);
    m.layer(&["create", "c2", "--parent", "base"]);
    fs::write(m.layer_dir("c1").join("new"), vec![b'y'; 50_000]).unwrap();
    for _ in 0..3 {
        fs::read(m.layer_dir("c2").join("d/f19")).unwrap();
    }

    let stats: serde_json::Value =
        serde_json::from_str(&common::run(&["stats", "--json", &mount])).unwrap();
    let row = |name: &str| {
        stats["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()
            .clone()
    };
    let base_bytes: u64 = (0..20).map(|i| 1000 * i).sum();
    assert_eq!(row("base")["inodes"], 22, "root, d and 20 files");
    assert_eq!(row("base")["size_bytes"], base_bytes);
    assert_eq!(row("base")["children"], 2);
    assert_eq!(row("c1")["inodes"], 23);
    assert_eq!(row("c1")["size_bytes"], base_bytes + 50_000);
    assert!(row("c1")["private_bytes"].as_u64().unwrap() >= 50_000);
    assert_eq!(row("c2")["size_bytes"], base_bytes);
    assert!(row("c2")["reads"].as_u64().unwrap() >= 1);
    let table = common::run(&["stats", &mount]);
    assert!(
        table.contains("INODES") && table.contains("most popular"),
        "{table}"
    );
    let popular = table.lines().last().unwrap();
    assert!(popular.contains(": c2 ("), "{popular}");

    // Orphans: an import cut short (its marker, set by hand here) and a containerd extract
    // key; a committed extract key and an ordinary writable layer stay.
    m.layer(&["create", "import-1"]);
    fs::write(m.layer_dir("import-1").join("half"), b"half").unwrap();
    set_xattr(
        &m.layer_dir("import-1"),
        "trusted.lcfs.unfinished",
        b"import",
    );
    m.layer(&["create", "default%2F7%2Fextract-1700000000-abcd sha256:12"]);
    m.layer(&["create", "extract-done"]);
    m.layer(&["commit", "extract-done"]);
    let before = layer_names(&m);
    let dry = common::run(&["gc", "--dry-run", &mount]);
    assert!(
        dry.contains("would remove 1 orphaned layers") && dry.contains("import-1"),
        "{dry}"
    );
    let dry = common::run(&["gc", "--dry-run", "--min-age", "0", &mount]);
    assert!(dry.contains("would remove 2 orphaned layers"), "{dry}");
    assert!(dry.contains("extract-1700000000"), "{dry}");
    assert_eq!(layer_names(&m), before, "a dry run changes nothing");
    let done = common::run(&["gc", "--min-age", "0", &mount]);
    assert!(done.contains("removed 2 orphaned layers"), "{done}");
    assert_eq!(layer_names(&m), ["base", "c1", "c2", "extract-done"]);
    assert!(!m.layer_dir("import-1").exists());
    let again = common::run(&["gc", "--min-age", "0", &mount]);
    assert!(again.contains("removed 0 orphaned layers"), "{again}");

    m.umount();
    let out = common::run_raw(&["fsck", "--progress", m.image.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("clean"),
        "{stdout}{stderr}"
    );
    assert!(stderr.contains("fsck: checked"), "the last line: {stderr}");
    // Without a terminal and without --progress: the last line only.
    let out = common::run_raw(&["fsck", m.image.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('[') && stderr.contains("fsck: checked"),
        "{stderr}"
    );
}
