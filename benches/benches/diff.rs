//! `Fs::changes` (the layer diff) against the size of the image and the size of the change: a
//! child that rewrote 10 files of a 100,000-file image, 10,000 files of it, and 10 files of a
//! 100-file image. The goal: 10 changes in 100,000 files within 2x of 10 changes in 100 files
//! (the diff skips what the layers share, docs/layers.md "Diff"). Ratios:
//! `scripts/bench-ratios.py`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lcfs::{Fs, Ino, LayerId};
use lcfs_benches::{fresh_fs, layer_with_files, now};

/// An image with a committed base of `files` files and a committed child "top" that rewrote
/// `changed` of them, spread evenly over the image; returns the child.
fn fixture(files: usize, changed: usize) -> (Fs, LayerId) {
    let fs = fresh_fs(1 << 22).unwrap_or_else(|e| panic!("mkfs: {e}"));
    layer_with_files(&fs, "base", files).unwrap_or_else(|e| panic!("base: {e}"));
    let top = fs.create_layer("top", Some("base")).unwrap_or_else(|e| panic!("create: {e}"));
    let step = files / changed.max(1);
    for i in (0..files).step_by(step.max(1)).take(changed) {
        // layer_with_files puts file i in directory d{i / 1000}.
        let dir = fs.lookup(top, Ino::ROOT, format!("d{}", i / 1000).as_bytes());
        let dir = dir.unwrap_or_else(|e| panic!("lookup dir: {e}"));
        let file = fs.lookup(top, dir.ino, format!("f{i}").as_bytes());
        let file = file.unwrap_or_else(|e| panic!("lookup file: {e}"));
        fs.write(top, file.ino, 0, b"changed", now()).unwrap_or_else(|e| panic!("write: {e}"));
    }
    fs.commit_layer("top").unwrap_or_else(|e| panic!("commit: {e}"));
    (fs, top)
}

fn diff(c: &mut Criterion) {
    let mut group = c.benchmark_group("diff");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    for (files, changed) in [(100, 10), (100_000, 10), (100_000, 10_000)] {
        let (fs, top) = fixture(files, changed);
        // Each changed file is listed with its directory.
        let found = fs.changes(top).unwrap_or_else(|e| panic!("changes: {e}"));
        assert!(found.len() > changed, "{} changes listed for {changed} files", found.len());
        let label = format!("files{files}-changes{changed}");
        group.bench_function(BenchmarkId::new("changes", &label), |b| {
            b.iter(|| fs.changes(top).unwrap_or_else(|e| panic!("changes: {e}")))
        });
    }
    group.finish();
}

criterion_group!(benches, diff);
criterion_main!(benches);
