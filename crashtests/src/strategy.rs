//! proptest strategies for `Op`, with the argument bias of TESTING.md §2: objects by index
//! (resolved modulo the model's lists), names from small pools so that they collide, offsets
//! and sizes from {0, 1, 511, 512, 4095, 4096, 4097, 65535, 65536, 65537} as often as uniform,
//! and now and then an offset near 1 TiB or at the 16 TiB size limit.
//!
//! Invariant: rare picks (bad names, unknown layers and inodes, limits) have small weights, so
//! most operations reach the success paths and build up state.

use lcfs_model::{FileType, RenameFlags, SetAttr, Timespec, XattrFlags, FILE_SIZE_MAX};
use proptest::prelude::*;
use proptest::sample::select;

use crate::ops::{EntryPick, InoPick, LayerPick, NamePick, Op, Pick, TargetPick, XattrPick};

/// The sizes and offsets where bugs live (block and sector edges, and 64 KiB).
pub const EDGES: [u64; 10] = [0, 1, 511, 512, 4095, 4096, 4097, 65535, 65536, 65537];

const TIB: u64 = 1 << 40;

/// A length: an edge as often as a uniform draw up to 2 * 65537.
pub fn length() -> impl Strategy<Value = u64> {
    prop_oneof![select(EDGES.to_vec()), 0..=2 * 65537u64]
}

/// An offset or size: mostly `length`, now and then near 1 TiB or at the 16 TiB limit.
pub fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        20 => length(),
        2 => TIB - 65537..=TIB + 65537,
        1 => select(vec![FILE_SIZE_MAX - 4097, FILE_SIZE_MAX - 1, FILE_SIZE_MAX, FILE_SIZE_MAX + 1])
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    any::<Pick>()
}

fn layer() -> impl Strategy<Value = LayerPick> {
    prop_oneof![
        20 => pick().prop_map(LayerPick::Writable),
        10 => pick().prop_map(LayerPick::Index),
        1 => pick().prop_map(LayerPick::Id),
    ]
}

fn dir() -> impl Strategy<Value = InoPick> {
    prop_oneof![
        20 => pick().prop_map(InoPick::Dir),
        2 => pick().prop_map(InoPick::Any),
        1 => pick().prop_map(InoPick::Number),
    ]
}

fn inode() -> impl Strategy<Value = InoPick> {
    prop_oneof![
        20 => pick().prop_map(InoPick::Any),
        2 => pick().prop_map(InoPick::Dir),
        1 => pick().prop_map(InoPick::Number),
    ]
}

/// An inode for data operations: mostly regular files.
fn file() -> impl Strategy<Value = InoPick> {
    prop_oneof![20 => pick().prop_map(InoPick::File), 3 => inode()]
}

/// An inode to hard-link: mostly not a directory.
fn non_dir() -> impl Strategy<Value = InoPick> {
    prop_oneof![20 => pick().prop_map(InoPick::NonDir), 3 => inode()]
}

fn name() -> impl Strategy<Value = NamePick> {
    prop_oneof![
        40 => pick().prop_map(NamePick::Pool),
        1 => Just(NamePick::Max),
        1 => Just(NamePick::Long),
        1 => pick().prop_map(NamePick::Bad),
    ]
}

fn entry() -> impl Strategy<Value = EntryPick> {
    prop_oneof![
        4 => pick().prop_map(EntryPick::Existing),
        1 => (dir(), name()).prop_map(|(dir, name)| EntryPick::Named(dir, name)),
    ]
}

/// An entry to rmdir: mostly one that names a directory.
fn dir_entry() -> impl Strategy<Value = EntryPick> {
    prop_oneof![3 => pick().prop_map(EntryPick::ExistingDir), 2 => entry()]
}

fn target() -> impl Strategy<Value = TargetPick> {
    prop_oneof![
        20 => pick().prop_map(TargetPick::Pool),
        1 => Just(TargetPick::Empty),
        1 => Just(TargetPick::Max),
        1 => Just(TargetPick::Long),
    ]
}

fn xattr_name() -> impl Strategy<Value = XattrPick> {
    prop_oneof![
        20 => pick().prop_map(XattrPick::Pool),
        10 => pick().prop_map(XattrPick::Existing),
        1 => Just(XattrPick::Empty),
        1 => Just(XattrPick::Max),
        1 => Just(XattrPick::Long),
    ]
}

/// Permission bits: usually plain, sometimes with setuid/setgid/sticky or type bits to mask.
fn perm() -> impl Strategy<Value = u16> {
    prop_oneof![
        10 => select(vec![0o644u16, 0o755, 0o600, 0o700, 0o000, 0o777]),
        2 => 0..=0o7777u16,
        1 => any::<u16>(),
    ]
}

fn time() -> impl Strategy<Value = Timespec> {
    prop_oneof![
        select(vec![
            Timespec::new(0, 0),
            Timespec::new(1, 1),
            Timespec::new(-1, 999_999_999),
            Timespec::new(1_700_000_000, 123_456_789),
            Timespec::new(i64::from(u32::MAX) + 1, 0),
        ]),
        (any::<i32>(), 0..1_000_000_000u32).prop_map(|(s, n)| Timespec::new(i64::from(s), n)),
    ]
}

fn id() -> impl Strategy<Value = u32> {
    select(vec![0u32, 1, 100, 1000, 65534, 65536, u32::MAX - 1])
}

/// `Some` of `value` one time in `1 + weight_none`.
fn maybe<T: std::fmt::Debug + Clone + 'static>(
    weight_none: u32,
    value: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![weight_none => Just(None), 1 => value.prop_map(Some)].boxed()
}

fn set_attr() -> impl Strategy<Value = SetAttr> {
    (
        maybe(1, perm()),
        maybe(2, id()),
        maybe(2, id()),
        maybe(2, time()),
        maybe(2, time()),
        maybe(8, offset()),
    )
        .prop_map(|(perm, uid, gid, atime, mtime, size)| SetAttr {
            perm,
            uid,
            gid,
            size,
            atime,
            mtime,
        })
}

fn file_type() -> impl Strategy<Value = FileType> {
    prop_oneof![
        4 => Just(FileType::Regular),
        1 => Just(FileType::Fifo),
        1 => Just(FileType::CharDevice),
        1 => Just(FileType::BlockDevice),
        1 => Just(FileType::Socket),
        1 => select(vec![FileType::Directory, FileType::Symlink]),
    ]
}

fn rdev() -> impl Strategy<Value = u64> {
    select(vec![0u64, 1, 0x0801, 0xffff_ffff, 0x1_0000_0001])
}

fn rename_flags() -> impl Strategy<Value = RenameFlags> {
    prop_oneof![
        8 => Just(RenameFlags::default()),
        2 => Just(RenameFlags { noreplace: true, exchange: false }),
        2 => Just(RenameFlags { noreplace: false, exchange: true }),
        1 => Just(RenameFlags { noreplace: true, exchange: true }),
    ]
}

fn xattr_flags() -> impl Strategy<Value = XattrFlags> {
    select(vec![XattrFlags::Any, XattrFlags::Any, XattrFlags::Create, XattrFlags::Replace])
}

fn xattr_len() -> impl Strategy<Value = u16> {
    prop_oneof![select(vec![0u16, 1, 100, 1023, 1024, 1025]), 0..=1100u16]
}

/// One operation, weighted so that sequences build up trees and data and still reach every
/// kind of operation.
pub fn op() -> BoxedStrategy<Op> {
    prop_oneof![
        9 => layer_op(),
        24 => create_op(),
        15 => remove_op(),
        24 => data_op(),
        18 => other_op(),
    ]
    .boxed()
}

fn layer_op() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => (pick(), prop::option::weighted(0.8, pick()))
            .prop_map(|(name, parent)| Op::CreateLayer { name, parent }),
        3 => pick().prop_map(|name| Op::CommitLayer { name }),
        2 => pick().prop_map(|name| Op::RemoveLayer { name }),
    ]
    .boxed()
}

fn create_op() -> BoxedStrategy<Op> {
    prop_oneof![
        8 => (layer(), dir(), name(), perm()).prop_map(|(layer, dir, name, perm)| Op::Mknod {
            layer, dir, name, kind: FileType::Regular, perm, rdev: 0
        }),
        3 => (layer(), dir(), name(), file_type(), perm(), rdev())
            .prop_map(|(layer, dir, name, kind, perm, rdev)| Op::Mknod {
                layer, dir, name, kind, perm, rdev
            }),
        6 => (layer(), dir(), name(), perm())
            .prop_map(|(layer, dir, name, perm)| Op::Mkdir { layer, dir, name, perm }),
        3 => (layer(), dir(), name(), target())
            .prop_map(|(layer, dir, name, target)| Op::Symlink { layer, dir, name, target }),
        4 => (layer(), non_dir(), dir(), name())
            .prop_map(|(layer, ino, dir, name)| Op::Link { layer, ino, dir, name }),
    ]
    .boxed()
}

fn remove_op() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => (layer(), entry()).prop_map(|(layer, entry)| Op::Unlink { layer, entry }),
        3 => (layer(), dir_entry()).prop_map(|(layer, entry)| Op::Rmdir { layer, entry }),
        8 => (layer(), entry(), dir(), name(), rename_flags())
            .prop_map(|(layer, from, dir, name, flags)| {
                Op::Rename { layer, from, dir, name, flags }
            }),
    ]
    .boxed()
}

fn data_op() -> BoxedStrategy<Op> {
    prop_oneof![
        10 => (layer(), file(), offset(), length(), any::<u8>())
            .prop_map(|(layer, ino, offset, len, fill)| Op::Write {
                layer, ino, offset, len: len as u32, fill
            }),
        4 => (layer(), file(), offset())
            .prop_map(|(layer, ino, size)| Op::Truncate { layer, ino, size }),
        4 => (layer(), inode(), set_attr())
            .prop_map(|(layer, ino, set)| Op::SetAttr { layer, ino, set }),
        4 => (layer(), inode(), xattr_name(), xattr_len(), xattr_flags())
            .prop_map(|(layer, ino, name, len, flags)| {
                Op::SetXattr { layer, ino, name, len, flags }
            }),
        2 => (layer(), inode(), xattr_name())
            .prop_map(|(layer, ino, name)| Op::RemoveXattr { layer, ino, name }),
    ]
    .boxed()
}

/// Reads, durability points, remounts and full comparisons.
fn other_op() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => (layer(), file(), offset(), length())
            .prop_map(|(layer, ino, offset, len)| Op::Read { layer, ino, offset, len: len as u32 }),
        3 => (layer(), inode()).prop_map(|(layer, ino)| Op::Inspect { layer, ino }),
        2 => (layer(), entry()).prop_map(|(layer, entry)| Op::Lookup { layer, entry }),
        2 => (layer(), inode()).prop_map(|(layer, ino)| Op::Fsync { layer, ino }),
        1 => (layer(), dir(), select(vec![8u16, 64, 200]))
            .prop_map(|(layer, dir, count)| Op::Populate { layer, dir, count }),
        1 => Just(Op::Sync),
        2 => Just(Op::Checkpoint),
        2 => Just(Op::Remount),
        1 => Just(Op::Verify),
    ]
    .boxed()
}
