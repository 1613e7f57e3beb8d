//! Named regressions found by the conformance harness (`tests/conformance.rs`). Each replays
//! the minimal sequence proptest shrank it to through `Harness`: every result is compared with
//! the model's, then the end-of-case checks run (compare every layer, clean unmount, fsck, mount
//! again, compare again).

use std::sync::Arc;

use lcfs::{MemDevice, MountOptions};
use lcfs_crashtests::harness::Harness;
use lcfs_crashtests::ops::{now, Call};

/// Runs `calls` (the first at step 1) on a fresh engine and model, then the end-of-case checks.
fn replay(calls: &[Call]) -> Result<(), String> {
    let dev = Arc::new(MemDevice::with_size(1 << 30));
    let mut harness = Harness::new(dev, MountOptions::default())?;
    for (step, call) in (1..).zip(calls) {
        harness.step(call, now(step)).map_err(|e| format!("step {step}: {e}"))?;
    }
    harness.finish()
}

fn create(name: &str, parent: Option<&str>) -> Call {
    Call::CreateLayer { name: name.to_owned(), parent: parent.map(str::to_owned) }
}

/// Found by conformance (shrunk to these three calls): a child layer that has not been written
/// to was persisted with root block 0, so after a clean unmount its root read the superblock
/// ("expected a tree node, found a Superblock block") and fsck reported a bad block.
#[test]
fn an_untouched_clone_survives_a_clean_remount() {
    let calls = [
        create("base", None),
        Call::CommitLayer { name: "base".into() },
        create("a", Some("base")),
    ];
    replay(&calls).unwrap_or_else(|e| panic!("{e}"));
}

/// The same, with data in the parent: the clone must show it after a remount.
#[test]
fn a_clone_of_a_layer_with_files_survives_a_clean_remount() {
    let base = lcfs_model::LayerId(1);
    let calls = [
        create("base", None),
        Call::Populate { layer: base, dir: lcfs_model::Ino::ROOT, count: 8 },
        Call::CommitLayer { name: "base".into() },
        create("a", Some("base")),
        Call::Remount,
        create("b", Some("base")),
    ];
    replay(&calls).unwrap_or_else(|e| panic!("{e}"));
}

/// Found by conformance after the contract moved the value-size check last (as ext4 does): a
/// value over XATTR_VALUE_MAX with `Replace` on a missing name is ENODATA, not ENOSPC; with
/// `Create` on an existing name, EEXIST.
#[test]
fn setxattr_checks_the_flags_before_the_value_size() {
    let (base, root) = (lcfs_model::LayerId(1), lcfs_model::Ino::ROOT);
    let set = |value_len: usize, flags| Call::SetXattr {
        layer: base,
        ino: root,
        name: b"user.a".to_vec(),
        value: vec![7; value_len],
        flags,
    };
    let calls = [
        create("base", None),
        set(1025, lcfs_model::XattrFlags::Replace),
        set(1, lcfs_model::XattrFlags::Create),
        set(1025, lcfs_model::XattrFlags::Create),
        set(1025, lcfs_model::XattrFlags::Any),
    ];
    replay(&calls).unwrap_or_else(|e| panic!("{e}"));
}
