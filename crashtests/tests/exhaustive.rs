//! Bounded exhaustive crash testing (TESTING.md §4; `lcfs_crashtests::exhaustive` lists the
//! namespace, the operations and the durability points).
//!
//! Goal: no short sequence over a tiny namespace leaves a crash state, at any crash point and
//! under any policy, that does not recover exactly (CrashMonkey/ACE found most known crash bugs
//! of ext4, btrfs and F2FS with sequences of at most 3 operations).
//!
//! Method: sequences are enumerated in order and split over threads; each runs from its index
//! as seed, so a failure names a sequence that replays alone. CI runs every sequence of one
//! operation and its durability point; the full run (every sequence of 1 to 3) takes long and
//! is `#[ignore]`d:
//!
//! ```text
//! cargo test --release -p lcfs-crashtests --test exhaustive -- --ignored --nocapture
//! ```
//!
//! `LCFS_EXHAUSTIVE_LENGTH` (default 3) bounds the length of the full run;
//! `LCFS_EXHAUSTIVE_SEQUENCE=<index>` replays one sequence (a failure prints its index). Both
//! tests print how many sequences and crash states they checked.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lcfs_crashtests::crash::Stats;
use lcfs_crashtests::exhaustive::{run_sequence, sequence_count};

/// Runs every sequence of 1 to `length_max` pairs over `threads` threads; panics on the first
/// failure; prints the counts.
fn run_all(length_max: u32, threads: u64) {
    let total = sequence_count(length_max);
    let stats = Arc::new(Stats::default());
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let (stats, done) = (Arc::clone(&stats), Arc::clone(&done));
            std::thread::spawn(move || -> Result<(), String> {
                let mut index = thread;
                while index < total {
                    run_sequence(index, length_max, &stats)?;
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if finished % 2000 == 0 {
                        let _ = writeln!(
                            std::io::stderr(),
                            "exhaustive: {finished}/{total} sequences, {} crash states, {:?}",
                            stats.crash_points(),
                            start.elapsed()
                        );
                    }
                    index += threads;
                }
                Ok(())
            })
        })
        .collect();
    let results: Vec<Result<(), String>> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into())))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "exhaustive, sequences of 1 to {length_max} operations: {} of {total} sequences checked \
         in {:?}; {} crash states checked ({})",
        done.load(Ordering::Relaxed),
        start.elapsed(),
        stats.crash_points(),
        stats.summary()
    );
    for result in results {
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }
    assert_eq!(done.load(Ordering::Relaxed), total, "every sequence ran");
}

#[test]
fn every_operation_with_every_durability_point() {
    run_all(1, 2);
}

#[test]
#[ignore = "long: every sequence of up to 3 operations; run with --ignored"]
fn every_sequence_of_up_to_three_operations() {
    let variable = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let length_max = variable("LCFS_EXHAUSTIVE_LENGTH").map_or(3, |l| l as u32);
    match variable("LCFS_EXHAUSTIVE_SEQUENCE") {
        Some(index) => run_sequence(index, length_max, &Arc::new(Stats::default()))
            .unwrap_or_else(|e| panic!("{e}")),
        None => run_all(length_max, 2),
    }
}
