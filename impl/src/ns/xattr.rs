//! Extended attributes: the item `(ino, Xattr, name) -> value`, on inodes of every type.
//!
//! Invariants: names are 1..=NAME_MAX bytes and values at most XATTR_VALUE_MAX bytes (so an
//! item always fits the tree's limits); `listxattr` returns names in byte order, the tree's order.

use std::ops::Bound;

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, ItemKind, Key};
use crate::ns::item::{self, load_inode, store_inode};
use crate::ns::name::check_xattr_name;
use crate::types::{Ino, Timespec, XattrFlags, XATTR_VALUE_MAX};

/// Most xattrs one `listxattr` scan returns at a time.
const LIST_BATCH: usize = 256;

/// Sets xattr `name` of `ino` to `value`; ctime = `now`. Checks after the name and the inode:
/// `Create` and it exists: EEXIST; `Replace` and it is missing: ENODATA; value too long: ENOSPC.
pub fn setxattr(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    name: &[u8],
    value: &[u8],
    flags: XattrFlags,
    now: Timespec,
) -> Result<()> {
    check_xattr_name(name)?;
    let mut rec = load_inode(ctx, ino)?;
    let key = records::xattr_key(ino, name);
    let exists = item::get(ctx, &key)?.is_some();
    match flags {
        XattrFlags::Create if exists => return Err(Error::Exists),
        XattrFlags::Replace if !exists => return Err(Error::NoData),
        _ => {}
    }
    // Last, as ext4 looks the name up before it tries to fit the value.
    if value.len() > XATTR_VALUE_MAX {
        return Err(Error::NoSpace);
    }
    rec.ctime = now;
    item::atomically(ctx, |ctx| {
        item::put(ctx, &key, value)?;
        store_inode(ctx, ino, &rec)
    })
}

/// The value of xattr `name` of `ino`.
pub fn getxattr(ctx: &mut LayerCtx<'_>, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
    check_xattr_name(name)?;
    load_inode(ctx, ino)?;
    item::get(ctx, &records::xattr_key(ino, name))?.ok_or(Error::NoData)
}

/// The names of the xattrs of `ino`, sorted by bytes.
pub fn listxattr(ctx: &mut LayerCtx<'_>, ino: Ino) -> Result<Vec<Vec<u8>>> {
    load_inode(ctx, ino)?;
    let first = records::key_prefix(ino, ItemKind::Xattr);
    let hi = records::key_prefix_end(ino, ItemKind::Xattr);
    let mut names = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let lo = after.as_deref().map_or(Bound::Included(first.as_slice()), Bound::Excluded);
        let batch = item::scan(ctx, lo, Bound::Excluded(&hi), LIST_BATCH)?;
        let Some((last, _)) = batch.last() else { return Ok(names) };
        // Keys grow strictly from batch to batch, so the loop ends with the xattrs.
        if after.as_ref().is_some_and(|after| last <= after) {
            return Err(Error::corrupt(0, "xattr scan went backwards"));
        }
        after = Some(last.clone());
        for (key, _) in batch {
            match records::decode_key(&key)? {
                Key::Xattr(owner, name) if owner == ino => names.push(name),
                _ => return Err(Error::corrupt(0, "xattr scan returned another item")),
            }
        }
    }
}

/// Removes xattr `name` of `ino`; ctime = `now`.
pub fn removexattr(ctx: &mut LayerCtx<'_>, ino: Ino, name: &[u8], now: Timespec) -> Result<()> {
    check_xattr_name(name)?;
    let mut rec = load_inode(ctx, ino)?;
    let key = records::xattr_key(ino, name);
    if item::get(ctx, &key)?.is_none() {
        return Err(Error::NoData);
    }
    rec.ctime = now;
    item::atomically(ctx, |ctx| {
        item::delete_present(ctx, &key)?;
        store_inode(ctx, ino, &rec)
    })
}
