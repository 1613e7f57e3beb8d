//! Fixed workloads for the deterministic fault tests (`tests/io_errors.rs`) and their
//! regressions.

use lcfs_model::FileType;

use crate::ops::{EntryPick, InoPick, LayerPick, NamePick, Op};

/// A base layer with 400 files in two directories (trees of several levels), a remount to
/// empty the caches, changes to 24 files spread over the tree, a rename and a mknod, then reads
/// of 40 other inodes that evict the layer table's root from a 16-node cache: a `Sync` after
/// it writes many nodes and data blocks and reads the layer table.
pub fn many_changes_then_reads() -> Vec<Op> {
    let layer = LayerPick::Writable(0);
    let mut ops = vec![
        Op::CreateLayer { name: 0, parent: None },
        Op::Populate { layer, dir: InoPick::Dir(0), count: 200 },
        Op::Mkdir { layer, dir: InoPick::Dir(0), name: NamePick::Pool(1), perm: 0o755 },
        Op::Populate { layer, dir: InoPick::Dir(1), count: 200 },
        Op::Checkpoint,
        Op::Remount,
    ];
    for n in 0..24u16 {
        let ino = InoPick::File(n * 17);
        ops.push(Op::Write { layer, ino, offset: u64::from(n) * 700, len: 5000, fill: n as u8 });
    }
    ops.push(Op::Rename {
        layer,
        from: EntryPick::Existing(5),
        dir: InoPick::Dir(1),
        name: NamePick::Pool(2),
        flags: Default::default(),
    });
    ops.push(Op::Mknod {
        layer,
        dir: InoPick::Dir(1),
        name: NamePick::Pool(3),
        kind: FileType::Fifo,
        perm: 0o600,
        rdev: 0,
    });
    for n in 0..40u16 {
        ops.push(Op::Inspect { layer, ino: InoPick::Any(n * 9 + 1) });
    }
    ops
}
