//! Layer operations against parent size and ancestry depth, lookups against depth, and removal
//! against the number of private blocks (issue "Engine spine", item 6).
//!
//! The O(1) claims are read as ratios of medians from one run: `scripts/bench-ratios.py`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lcfs::{FileType, Fs, Ino};
use lcfs_benches::{chain, fresh_fs, layer_with_files, now};

type Fixture = (Fs, String);

/// A filesystem whose top committed layer has `files` files in its base and `depth` ancestors.
fn fixture(files: usize, depth: usize) -> Fixture {
    let fs = fresh_fs(1 << 22).unwrap_or_else(|e| panic!("mkfs: {e}"));
    layer_with_files(&fs, "base", files).unwrap_or_else(|e| panic!("base: {e}"));
    let (top, _) = chain(&fs, "base", depth.saturating_sub(1)).unwrap_or_else(|e| panic!("chain: {e}"));
    (fs, top)
}

fn create_commit_remove(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.sample_size(30).measurement_time(Duration::from_secs(4));
    for (files, depth) in [(10, 1), (100_000, 1), (10, 100), (100_000, 100)] {
        let (fs, top) = fixture(files, depth);
        let label = format!("files{files}-depth{depth}");
        let mut n = 0u64;
        group.bench_function(BenchmarkId::new("create", &label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let name = format!("c{n}");
                    let t = Instant::now();
                    fs.create_layer(&name, Some(&top)).unwrap_or_else(|e| panic!("create: {e}"));
                    spent += t.elapsed();
                    fs.remove_layer(&name).unwrap_or_else(|e| panic!("remove: {e}"));
                }
                spent
            })
        });
        group.bench_function(BenchmarkId::new("commit", &label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let name = format!("c{n}");
                    fs.create_layer(&name, Some(&top)).unwrap_or_else(|e| panic!("create: {e}"));
                    let t = Instant::now();
                    fs.commit_layer(&name).unwrap_or_else(|e| panic!("commit: {e}"));
                    spent += t.elapsed();
                    fs.remove_layer(&name).unwrap_or_else(|e| panic!("remove: {e}"));
                }
                spent
            })
        });
        group.bench_function(BenchmarkId::new("remove", &label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let name = format!("c{n}");
                    fs.create_layer(&name, Some(&top)).unwrap_or_else(|e| panic!("create: {e}"));
                    let t = Instant::now();
                    fs.remove_layer(&name).unwrap_or_else(|e| panic!("remove: {e}"));
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

fn lookup_and_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup-read");
    group.sample_size(50).measurement_time(Duration::from_secs(3));
    for depth in [1usize, 100] {
        let (fs, top) = fixture(10_000, depth);
        let layer = fs.layer_id(&top).unwrap_or_else(|e| panic!("{e}"));
        let writable = fs.create_layer("reader", Some(&top)).unwrap_or_else(|e| panic!("{e}"));
        for (what, id) in [("committed", layer), ("writable-child", writable)] {
            group.bench_function(BenchmarkId::new(what, format!("depth{depth}")), |b| {
                b.iter(|| {
                    let dir = fs.lookup(id, Ino::ROOT, b"d5").unwrap_or_else(|e| panic!("{e}"));
                    let f = fs.lookup(id, dir.ino, b"f5432").unwrap_or_else(|e| panic!("{e}"));
                    fs.read(id, f.ino, 0, 4096).unwrap_or_else(|e| panic!("{e}"))
                })
            });
        }
    }
    group.finish();
}

fn remove_by_private_blocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("remove-private");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    let (fs, top) = fixture(1000, 1);
    for blocks in [10usize, 10_000] {
        let mut n = 0u64;
        group.bench_function(BenchmarkId::from_parameter(format!("blocks{blocks}")), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let name = format!("p{blocks}-{n}");
                    let id = fs.create_layer(&name, Some(&top)).unwrap_or_else(|e| panic!("{e}"));
                    let f = fs
                        .mknod(id, Ino::ROOT, b"private", FileType::Regular, 0o644, 0, 0, 0, now())
                        .unwrap_or_else(|e| panic!("{e}"));
                    let data = vec![0x5au8; blocks * 4096];
                    fs.write(id, f.ino, 0, &data, now()).unwrap_or_else(|e| panic!("{e}"));
                    fs.sync().unwrap_or_else(|e| panic!("{e}"));
                    let t = Instant::now();
                    fs.remove_layer(&name).unwrap_or_else(|e| panic!("{e}"));
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, create_commit_remove, lookup_and_read, remove_by_private_blocks);
criterion_main!(benches);
