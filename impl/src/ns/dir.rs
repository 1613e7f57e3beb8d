//! Directories: entries, lookup and listing.
//!
//! An entry is the item `(dir, DirEntry, name) -> (child ino, child type)`; the tree keeps the
//! entries of a directory sorted by name bytes, which is the order `readdir` returns.
//!
//! Every entry has a back-reference `(child, InodeRef, dir, name)` (format/records.rs): the
//! three functions that change entries (`put_entry`, `remove_entry`, and through them every
//! namespace operation) change both, so the back-references of an inode name exactly the
//! entries that name it.
//!
//! Invariants:
//! - an entry's type is its child's type, and its child exists;
//! - an entry `(dir, name) -> child` exists exactly when `(child, InodeRef, dir, name)` does;
//! - a directory's nlink is 2 plus the number of its subdirectories, and each subdirectory's
//!   `parent` field names it.

use std::ops::Bound;

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, DirEntryValue, ItemKind, Key};
use crate::ns::item::{self, attr, expect_dir, load_child, load_inode};
use crate::ns::name::check_name;
use crate::types::{Attr, DirEntry, Ino, Timespec, NAME_MAX};

/// The entry `name` of directory `dir`, if any.
pub(crate) fn find_entry(
    ctx: &LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
) -> Result<Option<DirEntryValue>> {
    match item::get(ctx, &records::dir_entry_key(dir, name))? {
        Some(value) => Ok(Some(records::decode_dir_entry(&value)?)),
        None => Ok(None),
    }
}

/// Sets the entry `name` of `dir` to `entry`, and the back-references to match: the inode the
/// entry named before (if any) loses its reference, `entry.ino` gains one.
pub(crate) fn put_entry(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    entry: &DirEntryValue,
) -> Result<()> {
    let key = records::dir_entry_key(dir, name);
    if let Some(old) = item::put(ctx, &key, &records::encode_dir_entry(entry))? {
        drop_backref(ctx, records::decode_dir_entry(&old)?.ino, dir, name)?;
    }
    item::put(ctx, &records::inode_ref_key(entry.ino, dir, name), &[])?;
    Ok(())
}

/// Removes the entry `name` of `dir`, which exists, and its child's back-reference.
pub(crate) fn remove_entry(ctx: &mut LayerCtx<'_>, dir: Ino, name: &[u8]) -> Result<()> {
    let old = item::delete_present(ctx, &records::dir_entry_key(dir, name))?;
    drop_backref(ctx, records::decode_dir_entry(&old)?.ino, dir, name)
}

/// Removes the back-reference of `child` for entry `name` of `dir`. It may be gone already: a
/// rename over a target deletes the target inode (with all its items) before it replaces the
/// entry that named it.
fn drop_backref(ctx: &mut LayerCtx<'_>, child: Ino, dir: Ino, name: &[u8]) -> Result<()> {
    item::delete(ctx, &records::inode_ref_key(child, dir, name))?;
    Ok(())
}

/// Whether directory `dir` has no entries.
pub(crate) fn is_empty(ctx: &LayerCtx<'_>, dir: Ino) -> Result<bool> {
    let lo = records::key_prefix(dir, ItemKind::DirEntry);
    let hi = records::key_prefix_end(dir, ItemKind::DirEntry);
    Ok(item::scan(ctx, Bound::Included(&lo), Bound::Excluded(&hi), 1)?.is_empty())
}

/// Adds `delta` to the nlink of directory `dir` and sets its mtime and ctime to `now`.
pub(crate) fn touch_dir(ctx: &mut LayerCtx<'_>, dir: Ino, delta: i32, now: Timespec) -> Result<()> {
    let mut rec = load_child(ctx, dir)?;
    rec.nlink = rec.nlink.saturating_add_signed(delta);
    rec.mtime = now;
    rec.ctime = now;
    item::store_inode(ctx, dir, &rec)
}

/// The attributes of the inode `name` names in `dir`.
pub fn lookup(ctx: &mut LayerCtx<'_>, dir: Ino, name: &[u8]) -> Result<Attr> {
    check_name(name)?;
    expect_dir(&load_inode(ctx, dir)?)?;
    let entry = find_entry(ctx, dir, name)?.ok_or(Error::NotFound)?;
    Ok(attr(entry.ino, &load_child(ctx, entry.ino)?))
}

/// Up to `limit` entries of `dir` whose names sort after `after`, in name order.
pub fn readdir(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<DirEntry>> {
    expect_dir(&load_inode(ctx, dir)?)?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Names are at most NAME_MAX bytes, so the names after a longer `after` are the names after
    // its first NAME_MAX bytes (excluding that prefix itself).
    let lo = match after {
        Some(after) if !after.is_empty() => {
            let after = after.get(..NAME_MAX).unwrap_or(after);
            Bound::Excluded(records::dir_entry_key(dir, after))
        }
        _ => Bound::Included(records::key_prefix(dir, ItemKind::DirEntry)),
    };
    let hi = records::key_prefix_end(dir, ItemKind::DirEntry);
    let items = item::scan(ctx, lo.as_ref().map(Vec::as_slice), Bound::Excluded(&hi), limit)?;
    items
        .into_iter()
        .map(|(key, value)| {
            let entry = records::decode_dir_entry(&value)?;
            match records::decode_key(&key)? {
                Key::DirEntry(owner, name) if owner == dir => {
                    Ok(DirEntry { name, ino: entry.ino, kind: entry.kind })
                }
                _ => Err(Error::corrupt(0, "directory scan returned another item")),
            }
        })
        .collect()
}
