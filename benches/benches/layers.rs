//! Layer operations against parent size and ancestry depth, lookups against depth, and removal
//! against the number of private blocks (issue "Engine spine", item 6; issue 7, part 1).
//!
//! The O(1) claims are read as ratios of medians from one run: `scripts/bench-ratios.py`.
//! Every iteration checks that its operation happened (the layer is there, committed, gone;
//! the file read back holds its bytes), outside the timed part.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use lcfs::{Error, FileType, Fs, Ino, LayerId, LayerState};

use lcfs_benches::{chain, file_content, file_path, fresh_fs, layer_with_files, now};

type Fixture = (Fs, String);

/// A filesystem whose top committed layer has `files` files in its base and `depth` ancestors.
fn fixture(files: usize, depth: usize) -> Fixture {
    let fs = fresh_fs(1 << 22).unwrap_or_else(|e| panic!("mkfs: {e}"));
    layer_with_files(&fs, "base", files).unwrap_or_else(|e| panic!("base: {e}"));
    let top = chain(&fs, "base", depth.saturating_sub(1));
    let (top, _) = top.unwrap_or_else(|e| panic!("chain: {e}"));
    (fs, top)
}

/// Checks that layer `name` is there, in `state`, and sees the base's first directory.
fn check_layer(fs: &Fs, name: &str, state: LayerState) {
    let info = fs.layer(name).unwrap_or_else(|e| panic!("layer {name}: {e}"));
    assert_eq!(info.state, state, "{name}");
    fs.lookup(info.id, Ino::ROOT, b"d0").unwrap_or_else(|e| panic!("{name}: d0: {e}"));
}

/// Checks that layer `name` is gone.
fn check_gone(fs: &Fs, name: &str) {
    assert!(matches!(fs.layer_id(name), Err(Error::NotFound)), "{name} is still there");
}

fn create_commit_remove(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
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
                    check_layer(&fs, &name, LayerState::Writable);
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
                    check_layer(&fs, &name, LayerState::Committed);
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
                    check_gone(&fs, &name);
                }
                spent
            })
        });
    }
    group.finish();
}

/// Creates the empty files `d{i / 1000}/f{i}`, `i < files`, in layer `id`.
fn empty_files(fs: &Fs, id: LayerId, files: usize) -> Result<(), Error> {
    let mut dir = Ino::ROOT;
    for i in 0..files {
        let (dir_name, file_name) = file_path(i);
        if i % 1000 == 0 {
            dir = fs.mkdir(id, Ino::ROOT, dir_name.as_bytes(), 0o755, 0, 0, now())?.ino;
        }
        fs.mknod(id, dir, file_name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now())?;
    }
    Ok(())
}

/// Commit of a layer that created `files` files itself (empty: the tree is what a commit
/// could have to walk; written back by a checkpoint first, so the commit has no data to
/// write): what a pull commits after its untar. The setup of each iteration creates the
/// files, so this group takes 10 samples of one iteration.
fn commit_own_files(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer-commit-own");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let fs = fresh_fs(1 << 22).unwrap_or_else(|e| panic!("mkfs: {e}"));
    let mut n = 0u64;
    for files in [10usize, 100_000] {
        group.bench_function(BenchmarkId::from_parameter(format!("files{files}")), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let name = format!("own{n}");
                    let id = fs.create_layer(&name, None).unwrap_or_else(|e| panic!("{e}"));
                    empty_files(&fs, id, files).unwrap_or_else(|e| panic!("fill: {e}"));
                    fs.sync().unwrap_or_else(|e| panic!("sync: {e}"));
                    let t = Instant::now();
                    fs.commit_layer(&name).unwrap_or_else(|e| panic!("commit: {e}"));
                    spent += t.elapsed();
                    check_layer(&fs, &name, LayerState::Committed);
                    let (dir, file) = file_path(files - 1);
                    let dir = fs.lookup(id, Ino::ROOT, dir.as_bytes());
                    let dir = dir.unwrap_or_else(|e| panic!("{e}"));
                    let last = fs.lookup(id, dir.ino, file.as_bytes());
                    assert!(last.is_ok(), "{name}: the last file is missing");
                    fs.remove_layer(&name).unwrap_or_else(|e| panic!("remove: {e}"));
                    fs.sync().unwrap_or_else(|e| panic!("sync: {e}"));
                }
                spent
            })
        });
    }
    group.finish();
}

fn lookup_and_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup-read");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    // File 5432 of the base (d5/f5432), read from a layer 1, 10 or 100 deep.
    let (dir_name, file_name) = file_path(5432);
    let expected = file_content(5432, 0);
    for depth in [1usize, 10, 100] {
        let (fs, top) = fixture(10_000, depth);
        let layer = fs.layer_id(&top).unwrap_or_else(|e| panic!("{e}"));
        let writable = fs.create_layer("reader", Some(&top)).unwrap_or_else(|e| panic!("{e}"));
        for (what, id) in [("committed", layer), ("writable-child", writable)] {
            group.bench_function(BenchmarkId::new(what, format!("depth{depth}")), |b| {
                b.iter(|| {
                    let dir = fs.lookup(id, Ino::ROOT, dir_name.as_bytes());
                    let dir = dir.unwrap_or_else(|e| panic!("{e}"));
                    let f = fs.lookup(id, dir.ino, file_name.as_bytes());
                    let f = f.unwrap_or_else(|e| panic!("{e}"));
                    let data = fs.read(id, f.ino, 0, 4096).unwrap_or_else(|e| panic!("{e}"));
                    assert!(data == expected, "read {data:?}");
                })
            });
        }
    }
    group.finish();
}

fn remove_by_private_blocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("remove-private");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
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
                    let usage = fs.layer_usage(&name).unwrap_or_else(|e| panic!("{e}"));
                    assert!(usage.data_blocks >= blocks as u64, "{usage:?}");
                    let t = Instant::now();
                    fs.remove_layer(&name).unwrap_or_else(|e| panic!("{e}"));
                    spent += t.elapsed();
                    check_gone(&fs, &name);
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // The scripts read the estimates; plotting took about 4 s a bench on the 2-core machine.
    config = Criterion::default().without_plots();
    targets = create_commit_remove, commit_own_files, lookup_and_read, remove_by_private_blocks
}
criterion_main!(benches);
