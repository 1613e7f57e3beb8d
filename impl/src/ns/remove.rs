//! Removing entries: unlink and rmdir.
//!
//! Invariants: the entry goes first, then the link it held (`drop_link` deletes an inode whose
//! nlink reaches 0, with its items, pages and owned extents); the directory gets
//! mtime = ctime = `now`; the pages of a deleted inode go last, once nothing can fail.

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::DirEntryValue;
use crate::ns::dir::{find_entry, is_empty, remove_entry, touch_dir};
use crate::ns::inode::{delete_inode, drop_link};
use crate::ns::item::{atomically, expect_dir, load_child, load_inode};
use crate::ns::name::check_name;
use crate::types::{FileType, Ino, Timespec};

/// The checks shared by unlink and rmdir; returns the entry `name` of `dir`.
fn check_remove(ctx: &LayerCtx<'_>, dir: Ino, name: &[u8]) -> Result<DirEntryValue> {
    check_name(name)?;
    expect_dir(&load_inode(ctx, dir)?)?;
    find_entry(ctx, dir, name)?.ok_or(Error::NotFound)
}

/// Removes the entry `name` of `dir`, which is not a directory, and drops its link.
pub fn unlink(ctx: &mut LayerCtx<'_>, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
    atomically(ctx, |ctx| {
        let entry = check_remove(ctx, dir, name)?;
        if load_child(ctx, entry.ino)?.kind == FileType::Directory {
            return Err(Error::IsDir);
        }
        remove_entry(ctx, dir, name)?;
        let change = drop_link(ctx, entry.ino, now)?;
        touch_dir(ctx, dir, 0, now)?;
        change.apply(ctx.pages);
        Ok(())
    })
}

/// Removes the empty directory `name` of `dir`.
pub fn rmdir(ctx: &mut LayerCtx<'_>, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
    atomically(ctx, |ctx| {
        let entry = check_remove(ctx, dir, name)?;
        if load_child(ctx, entry.ino)?.kind != FileType::Directory {
            return Err(Error::NotDir);
        }
        if !is_empty(ctx, entry.ino)? {
            return Err(Error::NotEmpty);
        }
        remove_entry(ctx, dir, name)?;
        let change = delete_inode(ctx, entry.ino)?;
        touch_dir(ctx, dir, -1, now)?;
        change.apply(ctx.pages);
        Ok(())
    })
}
