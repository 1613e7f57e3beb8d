//! The layer diff's cost outside criterion: for the three 10-change images of
//! `benches/benches/diff.rs` (100 files in 10 directories, 100 files in one, 100,000 files in
//! directories of 1,000), the changes listed, the tree-node lookups one diff makes (the node
//! cache's counters) and the thread CPU time per diff (min and median of ROUNDS rounds of 200
//! diffs, default 30). For profiling (`perf record` of the binary) and for counting nodes:
//! `cargo run --release -p lcfs-benches --example diff_probe`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use lcfs::{Fs, Ino, LayerId};
use lcfs_benches::cpu::thread_cpu_ns;
use lcfs_benches::{fresh_fs, layer_with_files_per_dir, now};

/// As `benches/benches/diff.rs`'s fixture.
fn fixture(files: usize, per_dir: usize, changed: usize) -> (Fs, LayerId) {
    let fs = fresh_fs(1 << 22).unwrap();
    layer_with_files_per_dir(&fs, "base", files, per_dir).unwrap();
    let top = fs.create_layer("top", Some("base")).unwrap();
    let step = files / changed.max(1);
    for i in (0..files).step_by(step.max(1)).take(changed) {
        let dir = fs.lookup(top, Ino::ROOT, format!("d{}", i / per_dir).as_bytes()).unwrap();
        let file = fs.lookup(top, dir.ino, format!("f{i}").as_bytes()).unwrap();
        fs.write(top, file.ino, 0, b"changed", now()).unwrap();
    }
    fs.commit_layer("top").unwrap();
    (fs, top)
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    for (files, per_dir) in [(100, 10), (100, 1000), (100_000, 1000)] {
        let (fs, top) = fixture(files, per_dir, 10);
        let n = fs.changes(top).unwrap().len();
        let (a, b) = fs.cache_stats().unwrap();
        fs.changes(top).unwrap();
        let (a2, b2) = fs.cache_stats().unwrap();
        let lookups = (a2.hits + a2.misses + b2.hits + b2.misses) - (a.hits + a.misses + b.hits + b.misses);
        let mut all = Vec::new();
        for _ in 0..rounds {
            let t = thread_cpu_ns();
            for _ in 0..200 { fs.changes(top).unwrap(); }
            all.push((thread_cpu_ns() - t) / 200);
        }
        all.sort();
        println!("files {files} per dir {per_dir}: {n} listed, {lookups} node lookups, cpu ns min {} median {}", all[0], all[all.len()/2]);
    }
}
