//! Creating inodes and links: mknod (and create), mkdir, link.
//!
//! Invariants:
//! - a new inode takes the number `*ctx.next_ino`, and the counter moves on only when the
//!   operation has succeeded (a failed operation changes nothing, not even the counter);
//! - a new inode gets `perm & 0o7777`, the caller's uid and gid, nlink 1 (2 for a directory) and
//!   every time `now`; its parent directory gets mtime = ctime = `now` (nlink + 1 for a directory).

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, DirEntryValue, InodeRecord};
use crate::ns::dir::{find_entry, put_entry, touch_dir};
use crate::ns::inode::new_record;
use crate::ns::item::{self, atomically, attr, expect_dir, load_inode, store_inode};
use crate::ns::name::check_name;
use crate::types::{Attr, FileType, Ino, Timespec, LINK_MAX};

/// Checks shared by every create in `dir`: the name, the directory, a free name. Returns the
/// directory's record.
pub(crate) fn check_create(ctx: &LayerCtx<'_>, dir: Ino, name: &[u8]) -> Result<InodeRecord> {
    let parent = load_inode(ctx, dir)?;
    expect_dir(&parent)?;
    if find_entry(ctx, dir, name)?.is_some() {
        return Err(Error::Exists);
    }
    Ok(parent)
}

/// Adds the new inode `rec` as entry `name` of `dir` under the next inode number; `extra` adds
/// the inode's other items before the counter moves on.
pub(crate) fn add_child(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    rec: &InodeRecord,
    now: Timespec,
    extra: impl FnOnce(&mut LayerCtx<'_>, Ino) -> Result<()>,
) -> Result<Attr> {
    let ino = Ino(*ctx.next_ino);
    let next = ino.0.checked_add(1).ok_or(Error::NoSpace)?;
    if ino < Ino::FIRST || item::get(ctx, &records::inode_key(ino))?.is_some() {
        return Err(Error::corrupt(0, format!("inode counter {} is already in use", ino.0)));
    }
    store_inode(ctx, ino, rec)?;
    put_entry(ctx, dir, name, &DirEntryValue { ino, kind: rec.kind })?;
    let subdirs = i32::from(rec.kind == FileType::Directory);
    touch_dir(ctx, dir, subdirs, now)?;
    extra(ctx, ino)?;
    *ctx.next_ino = next;
    Ok(attr(ino, rec))
}

/// Creates an inode of any type but Directory and Symlink as entry `name` of `dir`; `rdev` is
/// kept for character and block devices only.
#[expect(clippy::too_many_arguments, reason = "the signature of the operations contract")]
pub fn mknod(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    kind: FileType,
    perm: u16,
    rdev: u64,
    uid: u32,
    gid: u32,
    now: Timespec,
) -> Result<Attr> {
    check_name(name)?;
    load_inode(ctx, dir)?;
    if matches!(kind, FileType::Directory | FileType::Symlink) {
        return Err(Error::InvalidArgument("mknod makes neither directories nor symlinks"));
    }
    check_create(ctx, dir, name)?;
    let mut rec = new_record(kind, perm, uid, gid, now);
    if matches!(kind, FileType::CharDevice | FileType::BlockDevice) {
        rec.rdev = rdev;
    }
    atomically(ctx, |ctx| add_child(ctx, dir, name, &rec, now, |_, _| Ok(())))
}

/// Creates directory `name` in `dir`.
pub fn mkdir(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    perm: u16,
    uid: u32,
    gid: u32,
    now: Timespec,
) -> Result<Attr> {
    check_name(name)?;
    let parent = check_create(ctx, dir, name)?;
    if parent.nlink >= LINK_MAX {
        return Err(Error::TooManyLinks);
    }
    let mut rec = new_record(FileType::Directory, perm, uid, gid, now);
    rec.parent = dir;
    atomically(ctx, |ctx| add_child(ctx, dir, name, &rec, now, |_, _| Ok(())))
}

/// Adds the entry `newname` in `newdir` for the existing non-directory `ino`.
pub fn link(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    newdir: Ino,
    newname: &[u8],
    now: Timespec,
) -> Result<Attr> {
    check_name(newname)?;
    let mut rec = load_inode(ctx, ino)?;
    load_inode(ctx, newdir)?;
    if rec.kind == FileType::Directory {
        return Err(Error::NotPermitted("hard link to a directory"));
    }
    check_create(ctx, newdir, newname)?;
    if rec.nlink >= LINK_MAX {
        return Err(Error::TooManyLinks);
    }
    rec.nlink += 1;
    rec.ctime = now;
    atomically(ctx, |ctx| {
        put_entry(ctx, newdir, newname, &DirEntryValue { ino, kind: rec.kind })?;
        store_inode(ctx, ino, &rec)?;
        touch_dir(ctx, newdir, 0, now)
    })?;
    Ok(attr(ino, &rec))
}
