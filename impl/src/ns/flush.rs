//! Delayed allocation: the checkpoint turns a layer's dirty pages into extents.
//!
//! Pages are taken in (inode, page index) order as runs of consecutive pages of one file. A run
//! of nonzero pages gets contiguous blocks, `EXTENT_BLOCKS_MAX` at a time (the allocator's next
//! fit keeps them consecutive, so a file written once and flushed once gets one extent per
//! 256 blocks, contiguous on disk), each block's crc32c going into its extent; a run of
//! all-zero pages becomes a hole. Either
//! way the old extents under the run are unmapped first (their blocks freed if the layer owns
//! them; an ancestor's blocks are only no longer referenced).
//!
//! Invariants:
//! - a page leaves `ctx.pages` only once its data is written and its extent is in the tree, and
//!   each run changes the tree all or nothing, so after an error the file contents are
//!   unchanged (the runs before it are in extents, the rest still in pages);
//! - blocks allocated for a run that failed go to `ctx.freed_extents`;
//! - flushing does not change any file's content or `blocks`.

use crate::ctx::{DataSpace, LayerCtx};
use crate::error::{Error, Result};
use crate::format::records::{data_crc, EXTENT_BLOCKS_MAX};
use crate::ns::{extent, item};
use crate::types::{BlockNo, Ino};

/// Longest run asked of the allocator at once (128 MiB of data).
const RUN_PAGES_MAX: u64 = 32 * 1024;

/// Writes every dirty page of the layer to new blocks from `space` (zero pages become holes) and
/// maps them into the files; afterwards `ctx.pages` is empty.
pub fn flush_pages(ctx: &mut LayerCtx<'_>, space: &mut dyn DataSpace) -> Result<()> {
    // Each pass removes at least one page, so the number of pages bounds the loop.
    let passes_max = ctx.pages.len();
    for _ in 0..passes_max {
        let Some((ino, first, count, zero)) = ctx.pages.first_run(RUN_PAGES_MAX) else {
            break;
        };
        if zero {
            item::atomically(ctx, |ctx| extent::punch(ctx, ino, first, first + count))?;
            for index in first..first + count {
                ctx.pages.remove(ino, index);
            }
        } else {
            flush_run(ctx, space, ino, first, count)?;
        }
    }
    assert!(ctx.pages.is_empty(), "every pass flushes at least one page");
    Ok(())
}

/// Writes pages `first..first + count` of `ino` (all nonzero) to as few extents as the allocator
/// allows.
fn flush_run(
    ctx: &mut LayerCtx<'_>,
    space: &mut dyn DataSpace,
    ino: Ino,
    first: u64,
    count: u64,
) -> Result<()> {
    let mut index = first;
    let end = first + count;
    while index < end {
        let want = (end - index).min(EXTENT_BLOCKS_MAX);
        let (disk, got) = space.allocate(want)?;
        if got == 0 || got > want {
            return Err(Error::corrupt(0, format!("allocator returned {got} blocks")));
        }
        let placed = item::atomically(ctx, |ctx| {
            let crcs = write_blocks(ctx, space, ino, index, disk, got)?;
            extent::punch(ctx, ino, index, index + got)?;
            extent::map_new(ctx, ino, index, disk, crcs)
        });
        if let Err(e) = placed {
            ctx.freed_extents.push((disk, got));
            return Err(e);
        }
        for i in index..index + got {
            ctx.pages.remove(ino, i);
        }
        index += got;
    }
    Ok(())
}

/// Writes pages `index..index + count` of `ino` to blocks `disk..`; returns their checksums.
fn write_blocks(
    ctx: &LayerCtx<'_>,
    space: &mut dyn DataSpace,
    ino: Ino,
    index: u64,
    disk: BlockNo,
    count: u64,
) -> Result<Vec<u32>> {
    let pages = (index..index + count)
        .map(|i| {
            ctx.pages
                .get(ino, i)
                .ok_or_else(|| Error::corrupt(0, "dirty run lost a page"))
        })
        .collect::<Result<Vec<&[u8]>>>()?;
    space.write_run(disk, &pages)?;
    Ok(pages.iter().map(|page| data_crc(page)).collect())
}
