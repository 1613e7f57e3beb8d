//! Removing entries: unlink and rmdir.
//!
//! Invariants: the entry goes first, then the link it held (`drop_link` deletes an inode whose
//! nlink reaches 0, with its items, pages and owned extents, unless it is open: then it becomes
//! an orphan, see `orphan.rs`); the directory gets mtime = ctime = `now`; the pages of a deleted
//! inode go last, once nothing can fail.

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::DirEntryValue;
use crate::ns::dir::{find_entry, is_empty, remove_entry, touch_dir};
use crate::ns::item::{atomically, expect_dir, load_child, load_inode};
use crate::ns::name::check_name;
use crate::ns::orphan::{self, IsOpen};
use crate::types::{FileType, Ino, Timespec};

/// The checks shared by unlink and rmdir; returns the entry `name` of `dir`.
fn check_remove(ctx: &LayerCtx<'_>, dir: Ino, name: &[u8]) -> Result<DirEntryValue> {
    check_name(name)?;
    expect_dir(&load_inode(ctx, dir)?)?;
    find_entry(ctx, dir, name)?.ok_or(Error::NotFound)
}

/// Removes the entry `name` of `dir`, which is not a directory, and drops its link.
pub fn unlink(ctx: &mut LayerCtx<'_>, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
    unlink_open(ctx, dir, name, now, &|_| false)
}

/// `unlink`, keeping the inode as an orphan if its last link goes while `open` says it is open.
pub fn unlink_open(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    now: Timespec,
    open: IsOpen<'_>,
) -> Result<()> {
    atomically(ctx, |ctx| {
        let entry = check_remove(ctx, dir, name)?;
        if load_child(ctx, entry.ino)?.kind == FileType::Directory {
            return Err(Error::IsDir);
        }
        remove_entry(ctx, dir, name)?;
        let change = orphan::drop_link(ctx, entry.ino, now, open)?;
        touch_dir(ctx, dir, 0, now)?;
        change.apply(ctx.pages);
        Ok(())
    })
}

/// Removes the empty directory `name` of `dir`.
pub fn rmdir(ctx: &mut LayerCtx<'_>, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
    rmdir_open(ctx, dir, name, now, &|_| false)
}

/// `rmdir`, keeping the directory as an orphan while `open` says it is open.
pub fn rmdir_open(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    now: Timespec,
    open: IsOpen<'_>,
) -> Result<()> {
    atomically(ctx, |ctx| {
        let entry = check_remove(ctx, dir, name)?;
        if load_child(ctx, entry.ino)?.kind != FileType::Directory {
            return Err(Error::NotDir);
        }
        if !is_empty(ctx, entry.ino)? {
            return Err(Error::NotEmpty);
        }
        remove_entry(ctx, dir, name)?;
        let change = orphan::drop_dir(ctx, entry.ino, now, open)?;
        touch_dir(ctx, dir, -1, now)?;
        change.apply(ctx.pages);
        Ok(())
    })
}
