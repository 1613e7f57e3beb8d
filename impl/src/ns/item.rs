//! Access to the items of the layer's tree: raw get/put/delete/scan through the context, and the
//! inode record as the operations see it.
//!
//! Invariants:
//! - every modification is made as `ctx.layer`, and the node blocks it releases go to
//!   `ctx.freed_nodes`;
//! - an inode is present in the layer exactly when its inode record is in the tree.

use std::ops::Bound;

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, InodeRecord};
use crate::types::{Attr, FileType, Ino};

/// The value under `key`.
pub(crate) fn get(ctx: &LayerCtx<'_>, key: &[u8]) -> Result<Option<Vec<u8>>> {
    ctx.tree.get(ctx.store, key)
}

/// Inserts or replaces `key`; returns the old value.
pub(crate) fn put(ctx: &mut LayerCtx<'_>, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
    ctx.tree.insert(ctx.store, ctx.layer, key, value, ctx.freed_nodes)
}

/// Removes `key`; returns the old value.
pub(crate) fn delete(ctx: &mut LayerCtx<'_>, key: &[u8]) -> Result<Option<Vec<u8>>> {
    ctx.tree.remove(ctx.store, ctx.layer, key, ctx.freed_nodes)
}

/// Removes `key`, which a scan has just returned: its absence is a corrupt tree.
pub(crate) fn delete_present(ctx: &mut LayerCtx<'_>, key: &[u8]) -> Result<Vec<u8>> {
    delete(ctx, key)?.ok_or_else(|| Error::corrupt(0, "tree lost an item it just listed"))
}

/// Up to `limit` items with keys in `(lo, hi)`, in key order.
pub(crate) fn scan(
    ctx: &LayerCtx<'_>,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    ctx.tree.range(ctx.store, lo, hi, limit)
}

/// The inode record of `ino`; `NotFound` if the inode is not in the layer.
pub(crate) fn load_inode(ctx: &LayerCtx<'_>, ino: Ino) -> Result<InodeRecord> {
    let value = get(ctx, &records::inode_key(ino))?.ok_or(Error::NotFound)?;
    records::decode_inode(&value)
}

/// Writes the inode record of `ino`.
pub(crate) fn store_inode(ctx: &mut LayerCtx<'_>, ino: Ino, rec: &InodeRecord) -> Result<()> {
    put(ctx, &records::inode_key(ino), &records::encode_inode(rec))?;
    Ok(())
}

/// The record of the inode a directory entry names: a missing one is a dangling entry.
pub(crate) fn load_child(ctx: &LayerCtx<'_>, ino: Ino) -> Result<InodeRecord> {
    match load_inode(ctx, ino) {
        Err(Error::NotFound) => {
            Err(Error::corrupt(0, format!("entry names missing inode {}", ino.0)))
        }
        other => other,
    }
}

/// `Ok` for a directory, `NotDir` for anything else.
pub(crate) fn expect_dir(rec: &InodeRecord) -> Result<()> {
    match rec.kind {
        FileType::Directory => Ok(()),
        _ => Err(Error::NotDir),
    }
}

/// `Ok` for a regular file, `IsDir` for a directory, `InvalidArgument` for other types.
pub(crate) fn expect_regular(rec: &InodeRecord) -> Result<()> {
    match rec.kind {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(Error::IsDir),
        _ => Err(Error::InvalidArgument("not a regular file")),
    }
}

/// The attributes of `ino` as `getattr` reports them.
pub(crate) fn attr(ino: Ino, rec: &InodeRecord) -> Attr {
    Attr {
        ino,
        kind: rec.kind,
        perm: rec.perm,
        nlink: rec.nlink,
        uid: rec.uid,
        gid: rec.gid,
        rdev: rec.rdev,
        size: rec.size,
        blocks: rec.blocks,
        atime: rec.atime,
        mtime: rec.mtime,
        ctime: rec.ctime,
    }
}

/// Runs the modifying operation `f` all or nothing: if it fails, the tree is put back as it
/// was (an O(1) clone of the root) and the blocks it reported freed are forgotten, since the
/// restored tree references them again. Operations keep `ctx.pages` and `ctx.next_ino` for
/// their last, infallible step, so those need no undo.
pub(crate) fn atomically<T>(
    ctx: &mut LayerCtx<'_>,
    f: impl FnOnce(&mut LayerCtx<'_>) -> Result<T>,
) -> Result<T> {
    let saved = ctx.tree.clone();
    let (nodes, extents) = (ctx.freed_nodes.len(), ctx.freed_extents.len());
    let out = f(ctx);
    if out.is_err() {
        *ctx.tree = saved;
        ctx.freed_nodes.truncate(nodes);
        ctx.freed_extents.truncate(extents);
    }
    out
}
