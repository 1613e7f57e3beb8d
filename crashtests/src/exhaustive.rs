//! Bounded exhaustive crash testing (TESTING.md §4, after CrashMonkey/ACE): every sequence of 1
//! to `n` operations over a tiny namespace, each operation followed by each kind of durability
//! point, with a crash state checked under every policy of `crash::EVERY_POLICY` at every crash
//! point (every write and flush of every checkpoint, the durability points' and the final clean
//! unmount's), and right after each durability point returned (forward progress).
//!
//! The namespace: one writable layer "base" holding the root, a directory `a` and a file `b`
//! with two blocks of data, made durable before the sequence starts; operations create a file
//! `c`, write, truncate, unlink, rename, link, remove `a`, set an xattr, and commit `base` to
//! give it a child layer (so 1 to 2 layers, 2 directories, 2 files). Durability point kinds:
//! fsync of a file, fsync of a directory (fsyncdir), sync, and a clean unmount (and layer
//! commit and create, which are durability points themselves).
//!
//! Invariant: sequences are enumerated in a fixed order and each runs from its own index as the
//! device seed, so a failure names its sequence and replays alone (`run_sequence`).

use std::sync::Arc;

use lcfs_model::{FileType, RenameFlags, XattrFlags};

use crate::crash::{CrashHarness, Options, Stats};
use crate::ops::{EntryPick, InoPick, LayerPick, NamePick, Op, XattrPick};
use crate::steps::Step;

const LAYER: LayerPick = LayerPick::Writable(0);
const ROOT: InoPick = InoPick::Dir(0);
const A: NamePick = NamePick::Pool(0);
const B: NamePick = NamePick::Pool(1);
const C: NamePick = NamePick::Pool(2);

/// The durable starting point: layer "base" with the directory `a` and the file `b`.
pub fn setup() -> Vec<Op> {
    vec![
        Op::CreateLayer { name: 0, parent: None },
        Op::Mkdir { layer: LAYER, dir: ROOT, name: A, perm: 0o755 },
        Op::Mknod {
            layer: LAYER,
            dir: ROOT,
            name: B,
            kind: FileType::Regular,
            perm: 0o644,
            rdev: 0,
        },
        Op::Write { layer: LAYER, ino: InoPick::File(0), offset: 0, len: 5000, fill: 1 },
        Op::Sync,
    ]
}

/// The operations of a sequence.
pub fn operations() -> Vec<Op> {
    let b_in_root = EntryPick::Named(ROOT, B);
    vec![
        Op::Mknod {
            layer: LAYER,
            dir: ROOT,
            name: C,
            kind: FileType::Regular,
            perm: 0o600,
            rdev: 0,
        },
        Op::Write { layer: LAYER, ino: InoPick::File(0), offset: 0, len: 4096, fill: 2 },
        Op::Write { layer: LAYER, ino: InoPick::File(1), offset: 4000, len: 200, fill: 3 },
        Op::Truncate { layer: LAYER, ino: InoPick::File(0), size: 1 },
        Op::Unlink { layer: LAYER, entry: b_in_root },
        Op::Rename {
            layer: LAYER,
            from: b_in_root,
            dir: InoPick::Dir(1),
            name: C,
            flags: RenameFlags::default(),
        },
        Op::Link { layer: LAYER, ino: InoPick::NonDir(0), dir: InoPick::Dir(1), name: B },
        Op::Rmdir { layer: LAYER, entry: EntryPick::Named(ROOT, A) },
        Op::SetXattr {
            layer: LAYER,
            ino: InoPick::File(0),
            name: XattrPick::Pool(0),
            len: 100,
            flags: XattrFlags::Any,
        },
        Op::CommitLayer { name: 0 },
        Op::CreateLayer { name: 1, parent: Some(0) },
    ]
}

/// The kinds of durability point that follow each operation.
pub fn durability_points() -> Vec<Op> {
    vec![
        Op::Fsync { layer: LAYER, ino: InoPick::File(0) },
        Op::Fsync { layer: LAYER, ino: InoPick::Dir(1) },
        Op::Sync,
        Op::Remount,
    ]
}

/// Every (operation, durability point) pair, in a fixed order.
pub fn pairs() -> Vec<(Op, Op)> {
    let points = durability_points();
    operations()
        .into_iter()
        .flat_map(|op| points.iter().map(move |point| (op.clone(), point.clone())))
        .collect()
}

/// The number of sequences of 1 to `length_max` pairs.
pub fn sequence_count(length_max: u32) -> u64 {
    let pairs = pairs().len() as u64;
    (1..=length_max).map(|length| pairs.pow(length)).sum()
}

/// Sequence number `index` of the enumeration: all sequences of one pair, then of two, ...
pub fn sequence(index: u64, length_max: u32) -> Option<Vec<(Op, Op)>> {
    let pairs = pairs();
    let base = pairs.len() as u64;
    let mut rest = index;
    for length in 1..=length_max {
        let count = base.pow(length);
        if rest < count {
            let mut digits = Vec::with_capacity(length as usize);
            for _ in 0..length {
                digits.push(pairs[(rest % base) as usize].clone());
                rest /= base;
            }
            return Some(digits);
        }
        rest -= count;
    }
    None
}

/// Runs sequence `index` (of `length_max`): setup, then each operation and its durability
/// point with every crash point checked under every policy, a crash state right after each
/// durability point, and the end-of-case checks.
pub fn run_sequence(index: u64, length_max: u32, stats: &Arc<Stats>) -> Result<(), String> {
    let sequence = sequence(index, length_max).ok_or("no such sequence")?;
    run_pairs(index, &sequence, stats).map_err(|e| format!("sequence {index} {sequence:?}: {e}"))
}

/// Runs the pairs `sequence` on a device seeded with `seed`, as `run_sequence` does.
pub fn run_pairs(seed: u64, sequence: &[(Op, Op)], stats: &Arc<Stats>) -> Result<(), String> {
    let options = Options { probe_every: 0, every_policy: true, ..Options::default() };
    let mut harness = CrashHarness::new(seed, options, Arc::clone(stats))?;
    for op in setup() {
        harness.step(&Step::Op(op.clone())).map_err(|e| format!("setup {op:?}: {e}"))?;
    }
    harness.set_probe_every(1);
    for (op, point) in sequence {
        for step in [op, point] {
            harness.step(&Step::Op(step.clone())).map_err(|e| format!("at {step:?}: {e}"))?;
        }
        harness.check_crash_here().map_err(|e| format!("after {point:?}: {e}"))?;
    }
    harness.finish().map_err(|e| format!("at the end: {e}"))
}
