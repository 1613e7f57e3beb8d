//! Symbolic links: the target is stored in chunks of at most `SYMLINK_CHUNK_MAX` bytes under
//! `(ino, SymlinkChunk, chunk index)`.
//!
//! Invariants: a symlink's chunks are numbered from 0 without gaps, every chunk but the last is
//! full, and their lengths add up to the inode's size (1..=SYMLINK_MAX).

use std::ops::Bound;

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, ItemKind, Key, SYMLINK_CHUNKS_MAX, SYMLINK_CHUNK_MAX};
use crate::ns::create::{add_child, check_create};
use crate::ns::inode::new_record;
use crate::ns::item::{self, load_inode};
use crate::ns::name::check_name;
use crate::types::{Attr, FileType, Ino, Timespec, SYMLINK_MAX};

/// Creates the symlink `name` in `dir` pointing at `target` (perm 0o777, size = target length).
pub fn symlink(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    target: &[u8],
    uid: u32,
    gid: u32,
    now: Timespec,
) -> Result<Attr> {
    check_name(name)?;
    let parent = load_inode(ctx, dir)?;
    item::expect_dir(&parent)?;
    if target.is_empty() {
        return Err(Error::NotFound);
    }
    if target.len() > SYMLINK_MAX {
        return Err(Error::NameTooLong);
    }
    check_create(ctx, dir, name)?;
    let mut rec = new_record(FileType::Symlink, 0o777, uid, gid, now);
    rec.size = target.len() as u64;
    let store_target = |ctx: &mut LayerCtx<'_>, ino: Ino| {
        for (index, chunk) in (0u8..).zip(target.chunks(SYMLINK_CHUNK_MAX)) {
            item::put(ctx, &records::symlink_key(ino, index), chunk)?;
        }
        Ok(())
    };
    item::atomically(ctx, |ctx| add_child(ctx, dir, name, &rec, now, store_target))
}

/// The target of symlink `ino`.
pub fn readlink(ctx: &mut LayerCtx<'_>, ino: Ino) -> Result<Vec<u8>> {
    let rec = load_inode(ctx, ino)?;
    if rec.kind != FileType::Symlink {
        return Err(Error::InvalidArgument("not a symlink"));
    }
    let lo = records::key_prefix(ino, ItemKind::SymlinkChunk);
    let hi = records::key_prefix_end(ino, ItemKind::SymlinkChunk);
    let limit = usize::from(SYMLINK_CHUNKS_MAX);
    let chunks = item::scan(ctx, Bound::Included(&lo), Bound::Excluded(&hi), limit)?;
    let mut target = Vec::with_capacity(SYMLINK_MAX);
    for (expected, (key, chunk)) in (0u8..).zip(&chunks) {
        let in_order = records::decode_key(key)? == Key::SymlinkChunk(ino, expected);
        let full_before = target.len() == usize::from(expected) * SYMLINK_CHUNK_MAX;
        if !in_order || !full_before || chunk.is_empty() || chunk.len() > SYMLINK_CHUNK_MAX {
            return Err(Error::corrupt(0, format!("symlink {} has a bad chunk", ino.0)));
        }
        target.extend_from_slice(chunk);
    }
    if target.is_empty() || target.len() as u64 != rec.size {
        return Err(Error::corrupt(0, format!("symlink {} target does not match its size", ino.0)));
    }
    Ok(target)
}
