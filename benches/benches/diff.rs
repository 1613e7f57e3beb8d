//! `Fs::changes` (the layer diff) against the size of the image and the size of the change: a
//! child that rewrote 10 files of a 100,000-file image (directories of 1,000 files), 10,000
//! files of it, and 10 files of a 100-file image. The goal: 10 changes in 100,000 files within
//! 2x of the same diff in 100 files (the diff skips what the layers share, docs/layers.md
//! "Diff"). "The same diff": 10 files in 10 directories, so both list the same 20 changes (the
//! 100-file image has directories of 10 files); `files100-onedir-changes10` is the 100-file
//! image as one directory, whose diff is smaller (11 changes). Ratios:
//! `scripts/bench-ratios.py`. Measured in CPU time of the bench thread (`lcfs_benches::cpu`):
//! the goal is a ratio of two costs of tens of microseconds, which the wall clock of a shared
//! machine does not resolve.

use std::collections::BTreeSet;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lcfs::{Fs, Ino, LayerId};
use lcfs_benches::cpu::ThreadCpu;
use lcfs_benches::{fresh_fs, layer_with_files_per_dir, now};

/// An image with a committed base of `files` files, `per_dir` to a directory, and a committed
/// child "top" that rewrote `changed` of them, spread evenly over the image; returns the child
/// and the number of changes its diff must list (the files and their directories).
fn fixture(files: usize, per_dir: usize, changed: usize) -> (Fs, LayerId, usize) {
    let fs = fresh_fs(1 << 22).unwrap_or_else(|e| panic!("mkfs: {e}"));
    layer_with_files_per_dir(&fs, "base", files, per_dir).unwrap_or_else(|e| panic!("base: {e}"));
    let top = fs.create_layer("top", Some("base")).unwrap_or_else(|e| panic!("create: {e}"));
    let step = files / changed.max(1);
    let mut dirs = BTreeSet::new();
    for i in (0..files).step_by(step.max(1)).take(changed) {
        dirs.insert(i / per_dir);
        let dir = fs.lookup(top, Ino::ROOT, format!("d{}", i / per_dir).as_bytes());
        let dir = dir.unwrap_or_else(|e| panic!("lookup dir: {e}"));
        let file = fs.lookup(top, dir.ino, format!("f{i}").as_bytes());
        let file = file.unwrap_or_else(|e| panic!("lookup file: {e}"));
        fs.write(top, file.ino, 0, b"changed", now()).unwrap_or_else(|e| panic!("write: {e}"));
    }
    fs.commit_layer("top").unwrap_or_else(|e| panic!("commit: {e}"));
    (fs, top, changed + dirs.len())
}

fn diff(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("diff");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    let cases = [
        ("files100-changes10", 100, 10, 10),
        ("files100-onedir-changes10", 100, 1000, 10),
        ("files100000-changes10", 100_000, 1000, 10),
        ("files100000-changes10000", 100_000, 1000, 10_000),
    ];
    for (label, files, per_dir, changed) in cases {
        let (fs, top, listed) = fixture(files, per_dir, changed);
        let found = fs.changes(top).unwrap_or_else(|e| panic!("changes: {e}"));
        assert_eq!(found.len(), listed, "{label}: {found:?}");
        group.bench_function(BenchmarkId::new("changes", label), |b| {
            b.iter(|| fs.changes(top).unwrap_or_else(|e| panic!("changes: {e}")))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu).without_plots();
    targets = diff
}
criterion_main!(benches);
