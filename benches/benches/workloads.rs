//! File-level workloads in the engine, over `MemDevice` (issue 7, part 1): sequential write and
//! read of 1 GiB, create, stat and unlink of 10,000 small files, an append to each of 1,238
//! inherited files (the copy-on-write cost, against the same appends to files the layer owns),
//! and the untar of a system tree into a new layer (`apply_diff`: what a pull does per layer).
//! The same workloads through the FUSE mount: `benches/benches/mount/`.
//!
//! Method: one iteration runs a workload whole, and criterion's flat sampling takes 10 samples
//! of as few iterations as fit its short measurement time; setup and checks stay outside the
//! timed part (`iter_custom`). Every iteration checks what it did (sizes, counts, the bytes
//! read back), so a bench that stops doing its work fails instead of getting faster.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use lcfs::tar::{apply_diff_with, ApplyOptions};
use lcfs::{FileType, Fs, Ino, LayerId};
use lcfs_benches::{
    count_tree, file_content, file_path, fill_files, fresh_fs, layer_with_files,
    heavy, layer_with_files_of, now, ok, pattern, system_tarball, TreeCount,
};

/// 1 GiB, the size of the sequential file.
const GIB: usize = 1 << 30;
/// The sequential workloads write and read in pieces of 1 MiB.
const CHUNK_BYTES: usize = 1 << 20;
/// The small-file workload: 10,000 files of 1 KiB, 100 per directory (as `scripts/bench`).
const SMALL_FILES: usize = 10_000;
const SMALL_PER_DIR: usize = 100;
const SMALL_BYTES: usize = 1024;
/// The append workload: as many files as the peers' image (1,238 files, 31.1 MiB), 25 KiB each.
const APPEND_FILES: usize = 1238;
const APPEND_FILE_BYTES: usize = 25 * 1024;
const APPEND_LINE: &[u8] = b"appended line\n";
/// Device blocks of every fixture: 16 GiB, sparse (a `MemDevice` holds only written blocks).
const DEVICE_BLOCKS: u64 = 1 << 22;

fn sequential(c: &mut Criterion) {
    let fs = ok("mkfs", fresh_fs(DEVICE_BLOCKS));
    let layer = ok("create", fs.create_layer("seq", None));
    let data = pattern(0, GIB);
    let mut group = heavy(c, "sequential");
    group.throughput(Throughput::Bytes(GIB as u64));
    let mut n = 0u64;
    group.bench_function("write-1GiB", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let name = format!("big{n}");
                let file = ok(
                    "mknod",
                    fs.mknod(
                        layer,
                        Ino::ROOT,
                        name.as_bytes(),
                        FileType::Regular,
                        0o644,
                        0,
                        0,
                        0,
                        now(),
                    ),
                );
                let t = Instant::now();
                write_all(&fs, layer, file.ino, &data);
                ok("sync", fs.sync());
                spent += t.elapsed();
                let attr = ok("getattr", fs.getattr(layer, file.ino));
                assert_eq!(
                    (attr.size, attr.blocks),
                    (GIB as u64, GIB as u64 / 512),
                    "{name}"
                );
                ok(
                    "unlink",
                    fs.unlink(layer, Ino::ROOT, name.as_bytes(), now()),
                );
                ok("sync", fs.sync());
            }
            spent
        })
    });
    let file = ok(
        "mknod",
        fs.mknod(
            layer,
            Ino::ROOT,
            b"read-me",
            FileType::Regular,
            0o644,
            0,
            0,
            0,
            now(),
        ),
    );
    write_all(&fs, layer, file.ino, &data);
    ok("sync", fs.sync());
    group.bench_function("read-1GiB", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut read_bytes = 0;
                for (index, expected) in data.chunks(CHUNK_BYTES).enumerate() {
                    let offset = (index * CHUNK_BYTES) as u64;
                    let t = Instant::now();
                    let got = fs.read(layer, file.ino, offset, CHUNK_BYTES as u32);
                    spent += t.elapsed();
                    let got = ok("read", got);
                    assert!(got == expected, "read at {offset}: wrong bytes");
                    read_bytes += got.len();
                }
                assert_eq!(read_bytes, GIB);
            }
            spent
        })
    });
    group.finish();
}

/// Writes `data` from offset 0 in pieces of `CHUNK_BYTES`.
fn write_all(fs: &Fs, layer: LayerId, ino: Ino, data: &[u8]) {
    for (index, chunk) in data.chunks(CHUNK_BYTES).enumerate() {
        let offset = (index * CHUNK_BYTES) as u64;
        let written = ok("write", fs.write(layer, ino, offset, chunk, now()));
        assert_eq!(written as usize, chunk.len());
    }
}

/// The names of the small-file workload: directories `s0..s99`, files `f0..f9999`.
fn small_names() -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    (0..SMALL_FILES / SMALL_PER_DIR)
        .map(|d| {
            let files =
                (0..SMALL_PER_DIR).map(|f| format!("f{}", d * SMALL_PER_DIR + f).into_bytes());
            (format!("s{d}").into_bytes(), files.collect())
        })
        .collect()
}

fn create_small(fs: &Fs, layer: LayerId, names: &[(Vec<u8>, Vec<Vec<u8>>)], content: &[u8]) {
    for (dir, files) in names {
        let dir = ok("mkdir", fs.mkdir(layer, Ino::ROOT, dir, 0o755, 0, 0, now())).ino;
        for name in files {
            let file = ok(
                "mknod",
                fs.mknod(layer, dir, name, FileType::Regular, 0o644, 0, 0, 0, now()),
            );
            ok("write", fs.write(layer, file.ino, 0, content, now()));
        }
    }
}

/// The small files as `count_tree` finds them.
fn small_count() -> TreeCount {
    TreeCount {
        dirs: (SMALL_FILES / SMALL_PER_DIR) as u64,
        files: SMALL_FILES as u64,
        file_bytes: (SMALL_FILES * SMALL_BYTES) as u64,
        ..TreeCount::default()
    }
}

/// A writable child of `image` holding the small files, checked.
fn small_layer(fs: &Fs, name: &str, names: &[(Vec<u8>, Vec<Vec<u8>>)], content: &[u8]) -> LayerId {
    let layer = ok("create", fs.create_layer(name, Some("image")));
    create_small(fs, layer, names, content);
    layer
}

fn small_files(c: &mut Criterion) {
    let fs = ok("mkfs", fresh_fs(DEVICE_BLOCKS));
    ok("image", layer_with_files(&fs, "image", 1000));
    let names = small_names();
    let content = file_content(0, SMALL_BYTES);
    let image_count = ok(
        "count",
        count_tree(&fs, ok("id", fs.layer_id("image")), Ino::ROOT),
    );
    let mut expected = small_count();
    expected.dirs += image_count.dirs;
    expected.files += image_count.files;
    expected.file_bytes += image_count.file_bytes;
    let mut group = heavy(c, "small-files");
    group.throughput(Throughput::Elements(SMALL_FILES as u64));
    // Layers the create bench filled, for the unlink bench to empty.
    let mut filled: Vec<(String, LayerId)> = Vec::new();
    let mut n = 0u64;
    group.bench_function("create-10000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let name = format!("small{n}");
                let layer = ok("create", fs.create_layer(&name, Some("image")));
                let t = Instant::now();
                create_small(&fs, layer, &names, &content);
                spent += t.elapsed();
                assert_eq!(
                    ok("count", count_tree(&fs, layer, Ino::ROOT)),
                    expected,
                    "{name}"
                );
                filled.push((name, layer));
            }
            spent
        })
    });
    let stat_layer = small_layer(&fs, "stat", &names, &content);
    group.bench_function("stat-10000", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (dir, files) in &names {
                let dir = ok("lookup", fs.lookup(stat_layer, Ino::ROOT, dir)).ino;
                for name in files {
                    bytes += ok("lookup", fs.lookup(stat_layer, dir, name)).size;
                }
            }
            assert_eq!(bytes, (SMALL_FILES * SMALL_BYTES) as u64);
        })
    });
    group.bench_function("unlink-10000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (name, layer) = filled.pop().unwrap_or_else(|| {
                    n += 1;
                    let name = format!("small{n}");
                    let layer = small_layer(&fs, &name, &names, &content);
                    (name, layer)
                });
                let t = Instant::now();
                for (dir_name, files) in &names {
                    let dir = ok("lookup", fs.lookup(layer, Ino::ROOT, dir_name)).ino;
                    for file in files {
                        ok("unlink", fs.unlink(layer, dir, file, now()));
                    }
                    ok("rmdir", fs.rmdir(layer, Ino::ROOT, dir_name, now()));
                }
                spent += t.elapsed();
                assert_eq!(
                    ok("count", count_tree(&fs, layer, Ino::ROOT)),
                    image_count,
                    "{name}"
                );
                ok("remove", fs.remove_layer(&name));
            }
            spent
        })
    });
    group.finish();
}

/// Appends `APPEND_LINE` to each of the fixture files of `layer` (open by path: two lookups).
fn append_all(fs: &Fs, layer: LayerId, paths: &[(String, String)]) {
    for (dir, file) in paths {
        let dir = ok("lookup", fs.lookup(layer, Ino::ROOT, dir.as_bytes())).ino;
        let attr = ok("lookup", fs.lookup(layer, dir, file.as_bytes()));
        ok(
            "write",
            fs.write(layer, attr.ino, attr.size, APPEND_LINE, now()),
        );
    }
}

/// Checks that each fixture file of `layer` is `APPEND_FILE_BYTES` followed by `appends` lines.
fn check_appended(fs: &Fs, layer: LayerId, paths: &[(String, String)], appends: u64) {
    let line = APPEND_LINE.len() as u64;
    for (dir, file) in paths {
        let dir = ok("lookup", fs.lookup(layer, Ino::ROOT, dir.as_bytes())).ino;
        let attr = ok("lookup", fs.lookup(layer, dir, file.as_bytes()));
        assert_eq!(
            attr.size,
            APPEND_FILE_BYTES as u64 + appends * line,
            "{file}"
        );
        let tail = ok(
            "read",
            fs.read(layer, attr.ino, attr.size - line, line as u32),
        );
        assert_eq!(tail, APPEND_LINE, "{file}");
    }
}

fn append(c: &mut Criterion) {
    let fs = ok("mkfs", fresh_fs(DEVICE_BLOCKS));
    let image = ok(
        "image",
        layer_with_files_of(&fs, "image", APPEND_FILES, APPEND_FILE_BYTES),
    );
    let paths: Vec<(String, String)> = (0..APPEND_FILES).map(file_path).collect();
    let mut group = heavy(c, "append");
    group.throughput(Throughput::Elements(APPEND_FILES as u64));
    let mut n = 0u64;
    group.bench_function("inherited-1238", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let name = format!("append{n}");
                let layer = ok("create", fs.create_layer(&name, Some("image")));
                let t = Instant::now();
                append_all(&fs, layer, &paths);
                spent += t.elapsed();
                check_appended(&fs, layer, &paths, 1);
                ok("remove", fs.remove_layer(&name));
            }
            spent
        })
    });
    // The image's files are the parent's still.
    check_appended_none(&fs, image, &paths);
    let own = ok("create", fs.create_layer("own", None));
    ok(
        "fill",
        fill_files(&fs, own, APPEND_FILES, APPEND_FILE_BYTES),
    );
    ok("sync", fs.sync());
    let mut appends = 0u64;
    group.bench_function("own-1238", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                append_all(&fs, own, &paths);
                spent += t.elapsed();
                appends += 1;
                check_appended(&fs, own, &paths, appends);
                // The next appends find the files written back, as the inherited ones are.
                ok("sync", fs.sync());
            }
            spent
        })
    });
    group.finish();
}

fn check_appended_none(fs: &Fs, layer: LayerId, paths: &[(String, String)]) {
    for (dir, file) in paths {
        let dir = ok("lookup", fs.lookup(layer, Ino::ROOT, dir.as_bytes())).ino;
        let attr = ok("lookup", fs.lookup(layer, dir, file.as_bytes()));
        assert_eq!(attr.size, APPEND_FILE_BYTES as u64, "{file} of the image");
    }
}

fn untar(c: &mut Criterion) {
    let tarball = match system_tarball() {
        Ok(tarball) => tarball,
        Err(why) => {
            println!("SKIPPED: untar: no system tree to tar ({why})");
            return;
        }
    };
    let tree = tarball.tree.display().to_string();
    println!(
        "untar: /{tree}, a tarball of {} bytes: {:?}",
        tarball.bytes.len(),
        tarball.expected
    );
    let fs = ok("mkfs", fresh_fs(DEVICE_BLOCKS));
    let opts = ApplyOptions {
        now: now(),
        ..ApplyOptions::default()
    };
    let mut group = heavy(c, "untar");
    group.throughput(Throughput::Bytes(tarball.bytes.len() as u64));
    let mut n = 0u64;
    group.bench_function(BenchmarkId::new("apply", tree.replace('/', "-")), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let name = format!("untar{n}");
                let layer = ok("create", fs.create_layer(&name, None));
                let t = Instant::now();
                let applied = apply_diff_with(&fs, layer, tarball.bytes.as_slice(), &opts);
                spent += t.elapsed();
                let applied = ok("apply", applied);
                assert_eq!(applied, tarball.expected.file_bytes, "bytes applied");
                let found = ok("count", count_tree(&fs, layer, Ino::ROOT));
                assert_eq!(found, tarball.expected, "the layer against /{tree}");
                ok("remove", fs.remove_layer(&name));
                ok("sync", fs.sync());
            }
            spent
        })
    });
    group.finish();
}

criterion::criterion_group! {
    name = benches;
    // The scripts read the estimates; plotting took about 4 s a bench on the 2-core machine.
    config = Criterion::default().without_plots();
    targets = sequential, small_files, append, untar
}
criterion::criterion_main!(benches);
