//! Orphans: inodes whose last name went away while a file handle still held them open.
//!
//! POSIX keeps such a file readable and writable until its last close. When unlink, rmdir or a
//! rename over a target removes the last name of an inode that the caller reports open, the
//! inode is kept with nlink 0 and an orphan item `(0, Orphan, ino)` is added to the layer's
//! tree; the last release deletes it (`release`). A crash leaves the orphan items on disk, and
//! the mount after an unclean unmount deletes them (`sweep`), as ext4 and btrfs do with their
//! orphan lists.
//!
//! Invariants:
//! - an orphan item exists exactly for the inodes of the layer with nlink 0, and such an inode
//!   has no directory entry naming it;
//! - callers that never report an open inode get exactly the behaviour of `docs/operations.md`
//!   (the inode is deleted when its nlink reaches 0);
//! - `release` and `sweep` run all or nothing, like every modifying operation.

use std::ops::Bound;

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, InodeRecord, ItemKind, Key};
use crate::ns::inode::{delete_inode, drop_link as drop_link_now};
use crate::ns::item::{self, atomically, load_child, store_inode};
use crate::ns::pages::PageChange;
use crate::types::{Ino, Timespec};

/// Tells whether an inode of the layer is open (held by a file handle).
pub type IsOpen<'a> = &'a dyn Fn(Ino) -> bool;

/// Orphans deleted per scan of the orphan range.
const SWEEP_BATCH: usize = 128;

/// Drops one link of the non-directory `ino`. At nlink 0 an open inode becomes an orphan (its
/// ctime is `now`), any other is deleted. The change (applied last) drops a deleted inode's pages.
pub(crate) fn drop_link(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    now: Timespec,
    open: IsOpen<'_>,
) -> Result<PageChange> {
    let rec = load_child(ctx, ino)?;
    if rec.nlink <= 1 && open(ino) {
        keep(ctx, ino, rec, now)?;
        return Ok(PageChange::none(ino));
    }
    drop_link_now(ctx, ino, now)
}

/// Removes the empty directory `ino` (rmdir, or a rename over it): an open one becomes an
/// orphan, any other is deleted.
pub(crate) fn drop_dir(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    now: Timespec,
    open: IsOpen<'_>,
) -> Result<PageChange> {
    if open(ino) {
        let rec = load_child(ctx, ino)?;
        keep(ctx, ino, rec, now)?;
        return Ok(PageChange::none(ino));
    }
    delete_inode(ctx, ino)
}

/// Keeps `ino` with nlink 0 and records it in the orphan range.
fn keep(ctx: &mut LayerCtx<'_>, ino: Ino, mut rec: InodeRecord, now: Timespec) -> Result<()> {
    rec.nlink = 0;
    rec.ctime = now;
    store_inode(ctx, ino, &rec)?;
    item::put(ctx, &records::orphan_key(ino), &[])?;
    Ok(())
}

/// The last handle of `ino` went away: deletes it if it is an orphan. Returns whether it was.
pub fn release(ctx: &mut LayerCtx<'_>, ino: Ino) -> Result<bool> {
    atomically(ctx, |ctx| {
        let key = records::orphan_key(ino);
        if item::get(ctx, &key)?.is_none() {
            return Ok(false);
        }
        item::delete_present(ctx, &key)?;
        let change = delete_inode(ctx, ino)?;
        change.apply(ctx.pages);
        Ok(true)
    })
}

/// Up to `limit` orphans of the layer with numbers above `after`, in inode order.
pub fn orphans(ctx: &LayerCtx<'_>, after: Option<Ino>, limit: usize) -> Result<Vec<Ino>> {
    let lo = match after {
        Some(ino) => Bound::Excluded(records::orphan_key(ino)),
        None => Bound::Included(records::key_prefix(Ino(0), ItemKind::Orphan)),
    };
    let hi = records::key_prefix_end(Ino(0), ItemKind::Orphan);
    let items = item::scan(
        ctx,
        lo.as_ref().map(Vec::as_slice),
        Bound::Excluded(&hi),
        limit,
    )?;
    items
        .iter()
        .map(|(key, _)| match records::decode_key(key)? {
            Key::Orphan(ino) => Ok(ino),
            _ => Err(Error::corrupt(0, "orphan scan returned another item")),
        })
        .collect()
}

/// Deletes every orphan of the layer that is not open; returns how many it deleted and how
/// many open ones it left.
pub fn sweep(ctx: &mut LayerCtx<'_>, open: IsOpen<'_>) -> Result<(u64, u64)> {
    let (mut deleted, mut kept) = (0u64, 0u64);
    let mut after = None;
    loop {
        let batch = orphans(ctx, after, SWEEP_BATCH)?;
        let Some(&last) = batch.last() else {
            return Ok((deleted, kept));
        };
        after = Some(last);
        for ino in batch {
            if open(ino) {
                kept += 1;
            } else if release(ctx, ino)? {
                deleted += 1;
            }
        }
    }
}
