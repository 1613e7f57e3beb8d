//! Fuzz bytes to steps: operations of the conformance alphabet (`lcfs_crashtests::ops::Op`),
//! power cuts and crashes.
//!
//! The bytes are read through `arbitrary::Unstructured`; every choice takes a few bytes, so a
//! mutation of one byte changes one argument or one operation, and a short input is a short
//! sequence. The argument bias is that of `lcfs_crashtests::strategy` (TESTING.md §2): objects
//! by index modulo the model's lists, names from small pools, sizes and offsets from the edge
//! list as often as uniform, rare picks (bad names, unknown ids, limits) rare.
//!
//! Invariants:
//! - `steps` never fails: when the bytes run out, the sequence ends;
//! - at most `STEPS_MAX` steps, and no `Populate` of more than 64 files, so one input is
//!   bounded work.

use arbitrary::{Result, Unstructured};
use lcfs_crashtests::ops::{EntryPick, InoPick, LayerPick, NamePick, Op, TargetPick, XattrPick};
use lcfs_crashtests::strategy::EDGES;
use lcfs_model::{FileType, RenameFlags, SetAttr, Timespec, XattrFlags, FILE_SIZE_MAX};
use lcfs_sim::CrashPolicy;

/// The most steps of one input.
pub const STEPS_MAX: usize = 48;

/// How a crash treats the writes not yet flushed; `Prefix` keeps `n % (pending + 1)` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyPick {
    DropAll,
    Prefix(u16),
    Subset,
    Torn,
    Corrupt,
}

impl PolicyPick {
    /// The simulator's policy, for a device with `pending` unflushed writes.
    pub fn policy(self, pending: usize) -> CrashPolicy {
        match self {
            PolicyPick::DropAll => CrashPolicy::DropAll,
            PolicyPick::Prefix(n) => CrashPolicy::Prefix(usize::from(n) % (pending + 1)),
            PolicyPick::Subset => CrashPolicy::Subset,
            PolicyPick::Torn => CrashPolicy::Torn,
            PolicyPick::Corrupt => CrashPolicy::Corrupt,
        }
    }
}

/// One step of a fuzz case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An operation, run on the model and the engine and compared.
    Op(Op),
    /// The power fails just before the `point`-th write or flush from now; the operation that
    /// meets it fails, and the device crashes under `policy`.
    PowerCut { point: u16, policy: PolicyPick },
    /// The machine crashes now (between operations: nothing is in flight).
    Crash { policy: PolicyPick },
}

/// The steps the bytes of `u` stand for.
pub fn steps(u: &mut Unstructured<'_>) -> Vec<Step> {
    let mut out = Vec::new();
    while out.len() < STEPS_MAX && !u.is_empty() {
        match step(u) {
            Ok(step) => out.push(step),
            Err(_) => break,
        }
    }
    out
}

fn step(u: &mut Unstructured<'_>) -> Result<Step> {
    Ok(match u.int_in_range(0..=99u8)? {
        0..=5 => Step::PowerCut { point: u16::from(u.arbitrary::<u8>()?), policy: policy(u)? },
        6..=8 => Step::Crash { policy: policy(u)? },
        9..=17 => Step::Op(layer_op(u)?),
        18..=41 => Step::Op(create_op(u)?),
        42..=55 => Step::Op(remove_op(u)?),
        56..=79 => Step::Op(data_op(u)?),
        _ => Step::Op(other_op(u)?),
    })
}

fn policy(u: &mut Unstructured<'_>) -> Result<PolicyPick> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => PolicyPick::DropAll,
        1 => PolicyPick::Prefix(u.arbitrary()?),
        2 => PolicyPick::Subset,
        3 => PolicyPick::Torn,
        _ => PolicyPick::Corrupt,
    })
}

/// A pick: one byte is enough to index the small lists of a fuzz case.
fn pick(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(u16::from(u.arbitrary::<u8>()?))
}

fn layer(u: &mut Unstructured<'_>) -> Result<LayerPick> {
    Ok(match u.int_in_range(0..=30u8)? {
        0..=19 => LayerPick::Writable(pick(u)?),
        20..=29 => LayerPick::Index(pick(u)?),
        _ => LayerPick::Id(pick(u)?),
    })
}

fn dir(u: &mut Unstructured<'_>) -> Result<InoPick> {
    Ok(match u.int_in_range(0..=22u8)? {
        0..=19 => InoPick::Dir(pick(u)?),
        20..=21 => InoPick::Any(pick(u)?),
        _ => InoPick::Number(pick(u)?),
    })
}

fn inode(u: &mut Unstructured<'_>) -> Result<InoPick> {
    Ok(match u.int_in_range(0..=22u8)? {
        0..=19 => InoPick::Any(pick(u)?),
        20..=21 => InoPick::Dir(pick(u)?),
        _ => InoPick::Number(pick(u)?),
    })
}

fn file(u: &mut Unstructured<'_>) -> Result<InoPick> {
    if u.ratio(20u8, 23u8)? {
        Ok(InoPick::File(pick(u)?))
    } else {
        inode(u)
    }
}

fn non_dir(u: &mut Unstructured<'_>) -> Result<InoPick> {
    if u.ratio(20u8, 23u8)? {
        Ok(InoPick::NonDir(pick(u)?))
    } else {
        inode(u)
    }
}

fn name(u: &mut Unstructured<'_>) -> Result<NamePick> {
    Ok(match u.int_in_range(0..=42u8)? {
        0..=39 => NamePick::Pool(pick(u)?),
        40 => NamePick::Max,
        41 => NamePick::Long,
        _ => NamePick::Bad(pick(u)?),
    })
}

fn entry(u: &mut Unstructured<'_>) -> Result<EntryPick> {
    if u.ratio(4u8, 5u8)? {
        Ok(EntryPick::Existing(pick(u)?))
    } else {
        Ok(EntryPick::Named(dir(u)?, name(u)?))
    }
}

fn dir_entry(u: &mut Unstructured<'_>) -> Result<EntryPick> {
    if u.ratio(3u8, 5u8)? {
        Ok(EntryPick::ExistingDir(pick(u)?))
    } else {
        entry(u)
    }
}

fn target(u: &mut Unstructured<'_>) -> Result<TargetPick> {
    Ok(match u.int_in_range(0..=22u8)? {
        0..=19 => TargetPick::Pool(pick(u)?),
        20 => TargetPick::Empty,
        21 => TargetPick::Max,
        _ => TargetPick::Long,
    })
}

fn xattr_name(u: &mut Unstructured<'_>) -> Result<XattrPick> {
    Ok(match u.int_in_range(0..=32u8)? {
        0..=19 => XattrPick::Pool(pick(u)?),
        20..=29 => XattrPick::Existing(pick(u)?),
        30 => XattrPick::Empty,
        31 => XattrPick::Max,
        _ => XattrPick::Long,
    })
}

/// A length: an edge as often as a uniform draw up to 2 * 65537.
fn length(u: &mut Unstructured<'_>) -> Result<u64> {
    if u.arbitrary()? {
        Ok(*u.choose(&EDGES)?)
    } else {
        u.int_in_range(0..=2 * 65537u64)
    }
}

/// An offset or a size: mostly a length, now and then near 1 TiB or the 16 TiB limit.
fn offset(u: &mut Unstructured<'_>) -> Result<u64> {
    const TIB: u64 = 1 << 40;
    Ok(match u.int_in_range(0..=22u8)? {
        0..=19 => length(u)?,
        20..=21 => u.int_in_range(TIB - 65537..=TIB + 65537)?,
        _ => {
            *u.choose(&[FILE_SIZE_MAX - 4097, FILE_SIZE_MAX - 1, FILE_SIZE_MAX, FILE_SIZE_MAX + 1])?
        }
    })
}

fn perm(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(match u.int_in_range(0..=12u8)? {
        0..=9 => *u.choose(&[0o644u16, 0o755, 0o600, 0o700, 0o000, 0o777])?,
        10..=11 => u.int_in_range(0..=0o7777u16)?,
        _ => u.arbitrary()?,
    })
}

fn time(u: &mut Unstructured<'_>) -> Result<Timespec> {
    if u.arbitrary()? {
        Ok(*u.choose(&[
            Timespec::new(0, 0),
            Timespec::new(1, 1),
            Timespec::new(-1, 999_999_999),
            Timespec::new(1_700_000_000, 123_456_789),
            Timespec::new(i64::from(u32::MAX) + 1, 0),
        ])?)
    } else {
        Ok(Timespec::new(i64::from(u.arbitrary::<i32>()?), u.int_in_range(0..=999_999_999u32)?))
    }
}

fn id(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(*u.choose(&[0u32, 1, 100, 1000, 65534, 65536, u32::MAX - 1])?)
}

/// `Some` one time in `1 + weight_none`.
fn maybe<T>(
    u: &mut Unstructured<'_>,
    weight_none: u8,
    value: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    if u.ratio(weight_none, weight_none + 1)? {
        Ok(None)
    } else {
        value(u).map(Some)
    }
}

fn set_attr(u: &mut Unstructured<'_>) -> Result<SetAttr> {
    Ok(SetAttr {
        perm: maybe(u, 1, perm)?,
        uid: maybe(u, 2, id)?,
        gid: maybe(u, 2, id)?,
        atime: maybe(u, 2, time)?,
        mtime: maybe(u, 2, time)?,
        size: maybe(u, 8, offset)?,
    })
}

fn file_type(u: &mut Unstructured<'_>) -> Result<FileType> {
    Ok(*u.choose(&[
        FileType::Regular,
        FileType::Regular,
        FileType::Regular,
        FileType::Regular,
        FileType::Fifo,
        FileType::CharDevice,
        FileType::BlockDevice,
        FileType::Socket,
        FileType::Directory,
        FileType::Symlink,
    ])?)
}

fn rename_flags(u: &mut Unstructured<'_>) -> Result<RenameFlags> {
    Ok(match u.int_in_range(0..=12u8)? {
        0..=7 => RenameFlags::default(),
        8..=9 => RenameFlags { noreplace: true, exchange: false },
        10..=11 => RenameFlags { noreplace: false, exchange: true },
        _ => RenameFlags { noreplace: true, exchange: true },
    })
}

fn xattr_flags(u: &mut Unstructured<'_>) -> Result<XattrFlags> {
    Ok(*u.choose(&[XattrFlags::Any, XattrFlags::Any, XattrFlags::Create, XattrFlags::Replace])?)
}

fn xattr_len(u: &mut Unstructured<'_>) -> Result<u16> {
    if u.arbitrary()? {
        Ok(*u.choose(&[0u16, 1, 100, 1023, 1024, 1025])?)
    } else {
        u.int_in_range(0..=1100u16)
    }
}

fn layer_op(u: &mut Unstructured<'_>) -> Result<Op> {
    Ok(match u.int_in_range(0..=8u8)? {
        0..=3 => {
            let name = pick(u)?;
            let parent = if u.ratio(4u8, 5u8)? { Some(pick(u)?) } else { None };
            Op::CreateLayer { name, parent }
        }
        4..=6 => Op::CommitLayer { name: pick(u)? },
        _ => Op::RemoveLayer { name: pick(u)? },
    })
}

fn create_op(u: &mut Unstructured<'_>) -> Result<Op> {
    let layer = layer(u)?;
    Ok(match u.int_in_range(0..=23u8)? {
        0..=7 => Op::Mknod {
            layer,
            dir: dir(u)?,
            name: name(u)?,
            kind: FileType::Regular,
            perm: perm(u)?,
            rdev: 0,
        },
        8..=10 => Op::Mknod {
            layer,
            dir: dir(u)?,
            name: name(u)?,
            kind: file_type(u)?,
            perm: perm(u)?,
            rdev: *u.choose(&[0u64, 1, 0x0801, 0xffff_ffff, 0x1_0000_0001])?,
        },
        11..=16 => Op::Mkdir { layer, dir: dir(u)?, name: name(u)?, perm: perm(u)? },
        17..=19 => Op::Symlink { layer, dir: dir(u)?, name: name(u)?, target: target(u)? },
        _ => Op::Link { layer, ino: non_dir(u)?, dir: dir(u)?, name: name(u)? },
    })
}

fn remove_op(u: &mut Unstructured<'_>) -> Result<Op> {
    let layer = layer(u)?;
    Ok(match u.int_in_range(0..=14u8)? {
        0..=3 => Op::Unlink { layer, entry: entry(u)? },
        4..=6 => Op::Rmdir { layer, entry: dir_entry(u)? },
        _ => Op::Rename {
            layer,
            from: entry(u)?,
            dir: dir(u)?,
            name: name(u)?,
            flags: rename_flags(u)?,
        },
    })
}

fn data_op(u: &mut Unstructured<'_>) -> Result<Op> {
    let layer = layer(u)?;
    Ok(match u.int_in_range(0..=23u8)? {
        0..=9 => Op::Write {
            layer,
            ino: file(u)?,
            offset: offset(u)?,
            len: length(u)? as u32,
            fill: u.arbitrary()?,
        },
        10..=13 => Op::Truncate { layer, ino: file(u)?, size: offset(u)? },
        14..=17 => Op::SetAttr { layer, ino: inode(u)?, set: set_attr(u)? },
        18..=21 => Op::SetXattr {
            layer,
            ino: inode(u)?,
            name: xattr_name(u)?,
            len: xattr_len(u)?,
            flags: xattr_flags(u)?,
        },
        _ => Op::RemoveXattr { layer, ino: inode(u)?, name: xattr_name(u)? },
    })
}

fn other_op(u: &mut Unstructured<'_>) -> Result<Op> {
    Ok(match u.int_in_range(0..=17u8)? {
        0..=3 => {
            Op::Read { layer: layer(u)?, ino: file(u)?, offset: offset(u)?, len: length(u)? as u32 }
        }
        4..=6 => Op::Inspect { layer: layer(u)?, ino: inode(u)? },
        7..=8 => Op::Lookup { layer: layer(u)?, entry: entry(u)? },
        9..=10 => Op::Fsync { layer: layer(u)?, ino: inode(u)? },
        11 => Op::Populate { layer: layer(u)?, dir: dir(u)?, count: *u.choose(&[8u16, 64])? },
        12 => Op::Sync,
        13..=14 => Op::Checkpoint,
        15..=16 => Op::Remount,
        _ => Op::Verify,
    })
}
