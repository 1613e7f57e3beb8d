//! I/O errors, one at a time, at every read, write and flush of a checkpoint.
//!
//! Goal: whichever device operation of a durability point fails, the operation does all or
//! nothing, the engine goes on (the next durability point succeeds), nothing leaks, and crash
//! states taken afterwards still recover exactly (TESTING.md §4, "after an I/O error the
//! operation either did nothing or everything").
//!
//! Method: a fixed workload (a base layer with enough files for trees of several levels, a
//! remount to empty the caches, changes that touch many nodes, reads that evict the layer table
//! from the tiny node cache), then a `Sync` under an injected fault armed at the `n`-th read,
//! write or flush from now, for every `n` until the fault no longer fires; then more changes,
//! a remount, and the end-of-case checks (compare, clean unmount, fsck, mount, compare). The
//! random crash test (`crash.rs`) injects the same faults at random places; this one leaves no
//! place out. Prints how many faults fired.

use std::io::Write;
use std::sync::Arc;

use lcfs_crashtests::crash::{CrashHarness, Options, Stats};
use lcfs_crashtests::ops::{InoPick, LayerPick, Op};
use lcfs_crashtests::steps::{Fault, Step};
use lcfs_crashtests::workloads;

/// The most operations of one kind a `Sync` of the workload may do.
const AFTER_MAX: u8 = 200;

fn workload() -> Vec<Step> {
    workloads::many_changes_then_reads().into_iter().map(Step::Op).collect()
}

fn after_fault() -> Vec<Step> {
    let layer = LayerPick::Writable(0);
    // A durability point first, with nothing changed since the fault: it must make durable
    // what the failed one did not.
    [
        Op::Sync,
        Op::Remount,
        Op::Write { layer, ino: InoPick::File(7), offset: 9000, len: 100, fill: 9 },
        Op::CreateLayer { name: 1, parent: None },
        Op::Remount,
        Op::Verify,
    ]
    .into_iter()
    .map(Step::Op)
    .collect()
}

/// Runs the workload, the faulty `Sync` and the rest; `Ok(true)` if the fault fired.
fn run(fault: Fault, after: u8, stats: &Arc<Stats>) -> Result<bool, String> {
    // No crash states here: `crash.rs` checks them; this test sweeps places of faults.
    let options = Options { probe_every: 0, ..Options::default() };
    let mut harness = CrashHarness::new(u64::from(after), options, Arc::clone(stats))?;
    for step in workload() {
        harness.step(&step).map_err(|e| format!("workload {step:?}: {e}"))?;
    }
    let errors = stats.io_errors();
    harness.step(&Step::Fault { fault, after, op: Op::Sync })?;
    let fired = stats.io_errors() > errors;
    for step in after_fault() {
        harness.step(&step).map_err(|e| format!("after the fault, {step:?}: {e}"))?;
    }
    harness.finish()?;
    Ok(fired)
}

#[test]
fn every_read_write_and_flush_of_a_checkpoint_fails_once_in_turn() {
    let stats = Arc::new(Stats::default());
    let mut fired = Vec::new();
    for fault in [Fault::ReadError, Fault::WriteError, Fault::FlushError] {
        let mut count = 0;
        for after in 0..AFTER_MAX {
            match run(fault, after, &stats) {
                Ok(true) => count += 1,
                Ok(false) => break,
                Err(e) => panic!("{fault:?} at operation {after} of a Sync: {e}"),
            }
        }
        assert!(count > 0, "no {fault:?} ever fired");
        fired.push(format!("{fault:?} {count}"));
    }
    let _ = writeln!(
        std::io::stderr(),
        "I/O errors at every place of a checkpoint: {} faults fired ({}); {}",
        stats.io_errors(),
        fired.join(", "),
        stats.summary()
    );
}
