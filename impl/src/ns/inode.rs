//! Inodes: the root of a new layer, attributes, and the end of an inode's life.
//!
//! Invariants:
//! - every inode has exactly one inode record, and its other items (entries, xattrs, symlink
//!   chunks, extents) exist only while the record does;
//! - an inode whose nlink reaches 0 is deleted at once with all its items and dirty pages (the
//!   pages last, see `PageChange`); the data extents it owned go to `ctx.freed_extents`,
//!   extents of other owners are only dropped;
//! - the root directory is `Ino::ROOT` and is its own parent.

use std::ops::Bound;

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, InodeRecord};
use crate::ns::data;
use crate::ns::extent::owned_extent;
use crate::ns::item::{self, attr, load_inode, store_inode};
use crate::ns::pages::PageChange;
use crate::types::{Attr, FileType, Ino, SetAttr, Timespec, FILE_SIZE_MAX};

/// Items removed per tree scan when an inode is deleted.
const DELETE_BATCH: usize = 128;

/// A fresh inode record: nlink 1 (2 for a directory), every time `now`, size and blocks 0.
pub(crate) fn new_record(
    kind: FileType,
    perm: u16,
    uid: u32,
    gid: u32,
    now: Timespec,
) -> InodeRecord {
    let directory = kind == FileType::Directory;
    InodeRecord {
        kind,
        perm: perm & 0o7777,
        nlink: if directory { 2 } else { 1 },
        uid,
        gid,
        rdev: 0,
        size: 0,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        parent: Ino(0),
    }
}

/// Creates the root directory of a base layer: ino 1, mode 0o755, uid 0, gid 0, nlink 2, all
/// times 0.
pub fn init_root(ctx: &mut LayerCtx<'_>) -> Result<()> {
    if item::get(ctx, &records::inode_key(Ino::ROOT))?.is_some() {
        return Err(Error::Exists);
    }
    let mut root = new_record(FileType::Directory, 0o755, 0, 0, Timespec::default());
    root.parent = Ino::ROOT;
    store_inode(ctx, Ino::ROOT, &root)
}

/// The attributes of `ino`.
pub fn getattr(ctx: &mut LayerCtx<'_>, ino: Ino) -> Result<Attr> {
    Ok(attr(ino, &load_inode(ctx, ino)?))
}

/// Applies each `Some` field of `set`; a size truncates or extends with zeros and sets mtime to
/// `now`; ctime becomes `now` if anything was given.
pub fn setattr(ctx: &mut LayerCtx<'_>, ino: Ino, set: &SetAttr, now: Timespec) -> Result<Attr> {
    item::atomically(ctx, |ctx| setattr_in(ctx, ino, set, now))
}

fn setattr_in(ctx: &mut LayerCtx<'_>, ino: Ino, set: &SetAttr, now: Timespec) -> Result<Attr> {
    let mut rec = load_inode(ctx, ino)?;
    if let Some(size) = set.size {
        item::expect_regular(&rec)?;
        if size > FILE_SIZE_MAX {
            return Err(Error::FileTooBig);
        }
    }
    if *set == SetAttr::default() {
        return Ok(attr(ino, &rec));
    }
    let mut change = PageChange::none(ino);
    if let Some(size) = set.size {
        change = data::truncate(ctx, ino, &mut rec, size)?;
        rec.mtime = now;
    }
    if let Some(perm) = set.perm {
        rec.perm = perm & 0o7777;
    }
    rec.uid = set.uid.unwrap_or(rec.uid);
    rec.gid = set.gid.unwrap_or(rec.gid);
    rec.atime = set.atime.unwrap_or(rec.atime);
    rec.mtime = set.mtime.unwrap_or(rec.mtime);
    rec.ctime = now;
    store_inode(ctx, ino, &rec)?;
    change.apply(ctx.pages);
    Ok(attr(ino, &rec))
}

/// Drops one link of the non-directory `ino`: deletes it at nlink 0, else sets ctime to `now`.
/// The returned change (applied last) drops the pages of a deleted inode.
pub(crate) fn drop_link(ctx: &mut LayerCtx<'_>, ino: Ino, now: Timespec) -> Result<PageChange> {
    let mut rec = item::load_child(ctx, ino)?;
    rec.nlink = rec.nlink.saturating_sub(1);
    if rec.nlink == 0 {
        return delete_inode(ctx, ino);
    }
    rec.ctime = now;
    store_inode(ctx, ino, &rec)?;
    Ok(PageChange::none(ino))
}

/// Deletes `ino` with all its items; extents it owned go to `freed_extents`. The returned
/// change (applied last) drops its dirty pages.
pub(crate) fn delete_inode(ctx: &mut LayerCtx<'_>, ino: Ino) -> Result<PageChange> {
    let lo = ino.0.to_be_bytes().to_vec();
    let hi = ino.0.checked_add(1).map(|next| next.to_be_bytes().to_vec());
    let hi_bound = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    loop {
        let batch = item::scan(ctx, Bound::Included(&lo), hi_bound, DELETE_BATCH)?;
        if batch.is_empty() {
            return Ok(PageChange::drop_all(ino));
        }
        for (key, value) in batch {
            if let Some(extent) = owned_extent(&key, &value, ctx.layer) {
                ctx.freed_extents.push(extent);
            }
            // Every pass removes what it listed, so the loop ends with the inode's items.
            item::delete_present(ctx, &key)?;
        }
    }
}
