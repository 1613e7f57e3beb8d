//! Workloads of `workloads.rs` through the FUSE mount (issue 7, part 1): sequential write and
//! read of 1 GiB, and create, stat and unlink of 10,000 files of 1 KiB (100 per directory), with
//! `std::fs` on a mounted image, against the daemon of this build (`harness.rs`).
//!
//! Method: as `workloads.rs` (flat sampling, 10 samples, setup and checks untimed, every
//! iteration checks its work). What the kernel could answer from its caches is taken out of
//! it, so that the daemon answers: the read drops the file's pages first (`posix_fadvise`
//! DONTNEED), and the stat pass starts after the mount's 1 s entry and attribute timeout.
//! Without root or /dev/fuse the benches print why and do nothing (exit status 0).

mod harness;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use harness::Mounted;
use lcfs_benches::{file_content, heavy, ok, pattern};
use rustix::fs::{fadvise, Advice};

/// 1 GiB, the size of the sequential file.
const GIB: usize = 1 << 30;
/// The sequential workloads write and read in pieces of 1 MiB.
const CHUNK_BYTES: usize = 1 << 20;
/// 10,000 files of 1 KiB, 100 per directory (as `workloads.rs` and `scripts/bench`).
const SMALL_FILES: usize = 10_000;
const SMALL_PER_DIR: usize = 100;
const SMALL_BYTES: usize = 1024;
/// Past the kernel's entry and attribute cache of the mount (`TTL`, 1 s, in
/// fuse-mount/src/mount/shared.rs).
const PAST_TTL: Duration = Duration::from_millis(1100);

fn main() {
    if let Some(code) = harness::serve_if_lcfs() {
        std::process::exit(code);
    }
    if let Some(why) = harness::missing_prerequisite() {
        println!("SKIPPED: the mount benches: {why}");
        return;
    }
    // The scripts read the estimates; plotting took about 4 s a bench on the 2-core machine.
    let mut c = Criterion::default().without_plots().configure_from_args();
    sequential(&mut c);
    small_files(&mut c);
    c.final_summary();
}

/// Creates `path` with `data` written in pieces of `CHUNK_BYTES`, fsyncs and closes it.
fn write_file(path: &Path, data: &[u8]) {
    let mut file = ok("create", File::create(path));
    for chunk in data.chunks(CHUNK_BYTES) {
        ok("write", file.write_all(chunk));
    }
    ok("fsync", file.sync_all());
}

fn sequential(c: &mut Criterion) {
    let mount = Mounted::new("8G");
    let dir = mount.create_layer("seq", None);
    let data = pattern(0, GIB);
    let mut group = heavy(c, "mount-sequential");
    group.throughput(Throughput::Bytes(GIB as u64));
    let mut n = 0u64;
    group.bench_function("write-1GiB", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let path = dir.join(format!("big{n}"));
                let t = Instant::now();
                write_file(&path, &data);
                spent += t.elapsed();
                let meta = ok("stat", std::fs::metadata(&path));
                assert_eq!(meta.len(), GIB as u64, "{}", path.display());
                ok("unlink", std::fs::remove_file(&path));
            }
            spent
        })
    });
    let path = dir.join("read-me");
    write_file(&path, &data);
    let mut buf = vec![0u8; CHUNK_BYTES];
    group.bench_function("read-1GiB", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut file = ok("open", File::open(&path));
                // The pages are clean (written, fsynced): dropping them makes the kernel ask
                // the daemon again.
                ok("fadvise", fadvise(&file, 0, None, Advice::DontNeed));
                let mut read_bytes = 0;
                for (index, expected) in data.chunks(CHUNK_BYTES).enumerate() {
                    let t = Instant::now();
                    let got = file.read_exact(&mut buf);
                    spent += t.elapsed();
                    ok("read", got);
                    assert!(
                        buf == expected,
                        "read at {}: wrong bytes",
                        index * CHUNK_BYTES
                    );
                    read_bytes += buf.len();
                }
                assert_eq!(read_bytes, GIB);
                assert_eq!(ok("read at the end", file.read(&mut buf)), 0);
            }
            spent
        })
    });
    group.finish();
    mount.umount();
}

/// The small files below a layer directory: `(directory, its files)`.
fn small_paths(layer: &Path) -> Vec<(PathBuf, Vec<PathBuf>)> {
    (0..SMALL_FILES / SMALL_PER_DIR)
        .map(|d| {
            let dir = layer.join(format!("s{d}"));
            let files = (0..SMALL_PER_DIR).map(|f| dir.join(format!("f{}", d * SMALL_PER_DIR + f)));
            let files = files.collect();
            (dir, files)
        })
        .collect()
}

fn create_small(paths: &[(PathBuf, Vec<PathBuf>)], content: &[u8]) {
    for (dir, files) in paths {
        ok("mkdir", std::fs::create_dir(dir));
        for path in files {
            let mut file = ok("create", File::create(path));
            ok("write", file.write_all(content));
        }
    }
}

/// The directories and regular files below `dir`, and the bytes of those files.
fn count(dir: &Path) -> (u64, u64, u64) {
    let (mut dirs, mut files, mut bytes) = (0, 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in ok("readdir", std::fs::read_dir(&dir)) {
            let entry = ok("readdir", entry);
            let meta = ok("stat", entry.path().symlink_metadata());
            if meta.is_dir() {
                dirs += 1;
                stack.push(entry.path());
            } else if meta.is_file() {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    (dirs, files, bytes)
}

/// What `count` finds in a layer holding the small files.
const SMALL_COUNT: (u64, u64, u64) = (
    (SMALL_FILES / SMALL_PER_DIR) as u64,
    SMALL_FILES as u64,
    (SMALL_FILES * SMALL_BYTES) as u64,
);

fn small_files(c: &mut Criterion) {
    let mount = Mounted::new("4G");
    // The layers are children of a committed image, as a container's are.
    let image = mount.create_layer("image", None);
    ok("image file", std::fs::write(image.join("hello"), b"hello"));
    mount.layer(&["commit", "image"]);
    let content = file_content(0, SMALL_BYTES);
    let mut group = heavy(c, "mount-small-files");
    group.throughput(Throughput::Elements(SMALL_FILES as u64));
    let image_count = (0, 1, 5);
    let with_small = (SMALL_COUNT.0, SMALL_COUNT.1 + 1, SMALL_COUNT.2 + 5);
    // Layers the create bench filled, for the unlink bench to empty.
    let mut filled: Vec<(String, PathBuf)> = Vec::new();
    let mut n = 0u64;
    group.bench_function("create-10000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let name = format!("small{n}");
                let layer = mount.create_layer(&name, Some("image"));
                let paths = small_paths(&layer);
                let t = Instant::now();
                create_small(&paths, &content);
                spent += t.elapsed();
                assert_eq!(count(&layer), with_small, "{name}");
                filled.push((name, layer));
            }
            spent
        })
    });
    let stat_layer = mount.create_layer("stat", Some("image"));
    let stat_paths = small_paths(&stat_layer);
    create_small(&stat_paths, &content);
    group.bench_function("stat-10000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(PAST_TTL);
                let mut bytes = 0;
                let t = Instant::now();
                for path in stat_paths.iter().flat_map(|(_, files)| files) {
                    bytes += ok("stat", std::fs::metadata(path)).len();
                }
                spent += t.elapsed();
                assert_eq!(bytes, SMALL_COUNT.2);
            }
            spent
        })
    });
    group.bench_function("unlink-10000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (name, layer) = filled.pop().unwrap_or_else(|| {
                    n += 1;
                    let name = format!("small{n}");
                    let layer = mount.create_layer(&name, Some("image"));
                    create_small(&small_paths(&layer), &content);
                    (name, layer)
                });
                let paths = small_paths(&layer);
                let t = Instant::now();
                for (dir, files) in &paths {
                    for path in files {
                        ok("unlink", std::fs::remove_file(path));
                    }
                    ok("rmdir", std::fs::remove_dir(dir));
                }
                spent += t.elapsed();
                assert_eq!(count(&layer), image_count, "{name}");
                mount.layer(&["remove", &name]);
            }
            spent
        })
    });
    group.finish();
    for (name, _) in filled {
        mount.layer(&["remove", &name]);
    }
    mount.umount();
}
