//! Where data and holes are in a file: `SEEK_DATA` and `SEEK_HOLE` of lseek(2).
//!
//! A file block is data if it has a dirty page (written since the last checkpoint, whatever its
//! bytes) or an extent maps it; it is a hole otherwise. The end of the file counts as a hole
//! (lseek's "virtual hole"), and the last, partial block is data or hole as a whole.
//!
//! Invariants:
//! - both answers are offsets in `offset..size`; `None` means ENXIO (the offset is at or past the
//!   end, or no data follows it);
//! - work is proportional to the extents and dirty pages passed over, never to the size of a
//!   hole (the extent map is keyed by last block, so one lookup finds the next extent);
//! - nothing changes: the context is only read.

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::ns::extent::{find_extent, FILE_BLOCKS_MAX};
use crate::ns::item::{expect_regular, load_inode};
use crate::ns::pages::PAGE_BYTES;
use crate::types::Ino;

/// The size of regular file `ino` and the number of blocks it spans.
fn extent_of(ctx: &LayerCtx<'_>, ino: Ino) -> Result<(u64, u64)> {
    let rec = load_inode(ctx, ino)?;
    expect_regular(&rec)?;
    Ok((rec.size, rec.size.div_ceil(PAGE_BYTES)))
}

/// The first offset at or after `offset` that holds data; `None` if there is none before the
/// end of the file (ENXIO).
pub fn seek_data(ctx: &LayerCtx<'_>, ino: Ino, offset: u64) -> Result<Option<u64>> {
    let (size, blocks) = extent_of(ctx, ino)?;
    if offset >= size {
        return Ok(None);
    }
    let first = offset / PAGE_BYTES;
    let dirty = ctx.pages.range_from(ino, first).next().map(|(index, _)| index);
    let stored = find_extent(ctx, ino, first)?.map(|e| e.start.max(first));
    let found = match (dirty, stored) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Ok(None),
    };
    if found >= blocks {
        return Ok(None);
    }
    Ok(Some(offset.max(found * PAGE_BYTES)))
}

/// The first offset at or after `offset` in a hole, the end of the file if no hole comes
/// before it; `None` if `offset` is at or past the end (ENXIO).
pub fn seek_hole(ctx: &LayerCtx<'_>, ino: Ino, offset: u64) -> Result<Option<u64>> {
    let (size, blocks) = extent_of(ctx, ino)?;
    if offset >= size {
        return Ok(None);
    }
    let mut index = offset / PAGE_BYTES;
    let mut dirty = ctx.pages.range_from(ino, index).map(|(i, _)| i).peekable();
    // Each pass moves `index` forward by at least one block, and it stays below
    // FILE_BLOCKS_MAX, so a longer loop means a corrupt extent map.
    for _ in 0..=FILE_BLOCKS_MAX {
        if index >= blocks {
            return Ok(Some(size));
        }
        while dirty.next_if(|&i| i < index).is_some() {}
        if dirty.next_if_eq(&index).is_some() {
            index += 1;
            continue;
        }
        match find_extent(ctx, ino, index)? {
            Some(extent) if extent.start <= index => index = extent.last() + 1,
            _ => return Ok(Some(offset.max(index * PAGE_BYTES).min(size))),
        }
    }
    Err(Error::corrupt(0, format!("extent map of inode {} does not end", ino.0)))
}
