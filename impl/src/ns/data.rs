//! File data: read, write and truncate over dirty pages and extents.
//!
//! The content of file block `i` is its dirty page if there is one, else the disk block of the
//! extent covering it, else zeros (a hole). Writes only ever produce dirty pages; the checkpoint
//! turns them into extents (`flush.rs`).
//!
//! Invariants:
//! - `blocks` of an inode is 8 times the number of its file blocks whose content is not all zero
//!   (a nonzero dirty page, or an extent block with no dirty page over it), so it does not change
//!   when the checkpoint flushes pages;
//! - bytes past the end of a file read as zero even inside its last block (truncate zeroes them);
//! - work is proportional to the bytes read or written and to the extents touched, never to the
//!   size of a hole.

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::InodeRecord;
use crate::ns::extent::{self, ExtentCursor, FILE_BLOCKS_MAX};
use crate::ns::item::{expect_regular, load_inode, store_inode};
use crate::ns::pages::{is_zero, PageChange, PAGE_BYTES, PAGE_SIZE};
use crate::types::{Ino, Timespec, FILE_SIZE_MAX};

/// 512-byte units in one page.
const SECTORS_PER_PAGE: u64 = PAGE_BYTES / 512;

/// Where the current content of a page came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Dirty,
    Stored,
    Hole,
}

impl Source {
    /// Whether the page counts in `blocks` (see the module invariants).
    fn counted(self, page: &[u8]) -> bool {
        match self {
            Source::Dirty => !is_zero(page),
            Source::Stored => true,
            Source::Hole => false,
        }
    }
}

/// Copies the current content of page `index` of `ino` into `page` and says where it came from.
fn load_page(
    ctx: &LayerCtx<'_>,
    cursor: &mut ExtentCursor,
    ino: Ino,
    index: u64,
    page: &mut [u8],
) -> Result<Source> {
    if let Some(dirty) = ctx.pages.get(ino, index) {
        page.copy_from_slice(dirty);
        return Ok(Source::Dirty);
    }
    match cursor.at(ctx, index)? {
        Some(extent) => {
            ctx.data.read_block(extent.disk_of(index), extent.crc_of(index), page)?;
            Ok(Source::Stored)
        }
        None => {
            page.fill(0);
            Ok(Source::Hole)
        }
    }
}

/// Up to `size` bytes of `ino` from `offset`; short or empty past the end of the file.
pub fn read(ctx: &mut LayerCtx<'_>, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
    let rec = load_inode(ctx, ino)?;
    expect_regular(&rec)?;
    let end = rec.size.min(offset.saturating_add(u64::from(size)));
    if offset >= end {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(usize::try_from(end - offset).unwrap_or(0));
    let mut cursor = ExtentCursor::new(ino);
    let mut page = vec![0u8; PAGE_SIZE];
    let mut pos = offset;
    while pos < end {
        let (index, within, take) = span(pos, end);
        load_page(ctx, &mut cursor, ino, index, &mut page)?;
        out.extend_from_slice(page.get(within..within + take).unwrap_or_default());
        pos += take as u64;
    }
    Ok(out)
}

/// The page of `pos`, the offset of `pos` in it, and how many bytes of `pos..end` it holds.
fn span(pos: u64, end: u64) -> (u64, usize, usize) {
    let within = (pos % PAGE_BYTES) as usize;
    let take = (PAGE_BYTES - pos % PAGE_BYTES).min(end - pos) as usize;
    (pos / PAGE_BYTES, within, take)
}

/// Writes `data` at `offset`, extending the file, and returns the count written; mtime = ctime =
/// `now`. As Linux: an empty `data` changes nothing (even past the size limit); a write starting
/// at or past FILE_SIZE_MAX is EFBIG; one that ends past it is short, stopping at the limit; at
/// most `u32::MAX` bytes are written.
pub fn write(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    offset: u64,
    data: &[u8],
    now: Timespec,
) -> Result<u32> {
    let mut rec = load_inode(ctx, ino)?;
    expect_regular(&rec)?;
    if data.is_empty() {
        return Ok(0);
    }
    if offset >= FILE_SIZE_MAX {
        return Err(Error::FileTooBig);
    }
    let count = (data.len() as u64).min(FILE_SIZE_MAX - offset).min(u64::from(u32::MAX));
    let written = u32::try_from(count).map_err(|_| Error::InvalidArgument("write count"))?;
    let end = offset + count;
    let mut change = PageChange::none(ino);
    let mut cursor = ExtentCursor::new(ino);
    let mut rest = data;
    let mut pos = offset;
    while pos < end {
        let (index, within, take) = span(pos, end);
        let (chunk, tail) = rest.split_at_checked(take).ok_or(Error::InvalidArgument("write"))?;
        let page = write_page(ctx, &mut cursor, &mut rec, ino, index, within, chunk)?;
        change.set(index, page);
        rest = tail;
        pos += take as u64;
    }
    rec.size = rec.size.max(end);
    rec.mtime = now;
    rec.ctime = now;
    store_inode(ctx, ino, &rec)?;
    change.apply(ctx.pages);
    Ok(written)
}

/// The new content of page `index` with `chunk` written at `within`; keeps `rec.blocks` in step.
fn write_page(
    ctx: &LayerCtx<'_>,
    cursor: &mut ExtentCursor,
    rec: &mut InodeRecord,
    ino: Ino,
    index: u64,
    within: usize,
    chunk: &[u8],
) -> Result<Box<[u8]>> {
    let mut page = vec![0u8; PAGE_SIZE].into_boxed_slice();
    let source = if chunk.len() < PAGE_SIZE || ctx.pages.get(ino, index).is_some() {
        load_page(ctx, cursor, ino, index, &mut page)?
    } else if cursor.at(ctx, index)?.is_some() {
        Source::Stored
    } else {
        Source::Hole
    };
    let was = source.counted(&page);
    let target = within..within + chunk.len();
    page.get_mut(target).ok_or(Error::InvalidArgument("write"))?.copy_from_slice(chunk);
    count_change(rec, was, !is_zero(&page));
    Ok(page)
}

/// Adjusts `rec.blocks` for a page that went from counted `was` to counted `now`.
fn count_change(rec: &mut InodeRecord, was: bool, now: bool) {
    match (was, now) {
        (false, true) => rec.blocks = rec.blocks.saturating_add(SECTORS_PER_PAGE),
        (true, false) => rec.blocks = rec.blocks.saturating_sub(SECTORS_PER_PAGE),
        _ => {}
    }
}

/// Sets the size of the regular file `ino` to `size` (at most FILE_SIZE_MAX): extents past it
/// are dropped now, and the returned change drops the pages past it and zeroes the tail of a
/// partial last block. Updates `rec.size` and `rec.blocks`; the caller stores `rec`, then
/// applies the change.
pub(crate) fn truncate(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    rec: &mut InodeRecord,
    size: u64,
) -> Result<PageChange> {
    assert!(size <= FILE_SIZE_MAX, "size checked by the caller");
    let mut change = PageChange::none(ino);
    if size < rec.size {
        let first = size.div_ceil(PAGE_BYTES);
        drop_blocks_from(ctx, ino, rec, first)?;
        change.drop_from(first);
        if !size.is_multiple_of(PAGE_BYTES) {
            if let Some(page) = zero_tail(ctx, ino, rec, size)? {
                change.set(size / PAGE_BYTES, page);
            }
        }
    }
    rec.size = size;
    Ok(change)
}

/// Unmaps the extents of `ino` from file block `first` on and takes the blocks there out of
/// `rec.blocks` (the caller drops the pages).
fn drop_blocks_from(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    rec: &mut InodeRecord,
    first: u64,
) -> Result<()> {
    let mut cursor = ExtentCursor::new(ino);
    let (mut counted, mut shadowed) = (0u64, 0u64);
    for (index, page) in ctx.pages.range_from(ino, first) {
        counted += u64::from(!is_zero(page));
        shadowed += u64::from(cursor.at(ctx, index)?.is_some());
    }
    let unmapped = extent::punch(ctx, ino, first, FILE_BLOCKS_MAX)?;
    counted += unmapped.saturating_sub(shadowed);
    rec.blocks = rec.blocks.saturating_sub(counted.saturating_mul(SECTORS_PER_PAGE));
    Ok(())
}

/// The last page with its bytes from `size` on zeroed, if they were not zero already.
fn zero_tail(
    ctx: &LayerCtx<'_>,
    ino: Ino,
    rec: &mut InodeRecord,
    size: u64,
) -> Result<Option<Box<[u8]>>> {
    let (index, within) = (size / PAGE_BYTES, (size % PAGE_BYTES) as usize);
    let mut page = vec![0u8; PAGE_SIZE].into_boxed_slice();
    let source = load_page(ctx, &mut ExtentCursor::new(ino), ino, index, &mut page)?;
    if is_zero(page.get(within..).unwrap_or_default()) {
        return Ok(None);
    }
    let was = source.counted(&page);
    page.get_mut(within..).unwrap_or_default().fill(0);
    count_change(rec, was, !is_zero(&page));
    Ok(Some(page))
}
