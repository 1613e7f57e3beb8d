//! The extent map of a file: which file blocks are stored in which disk blocks.
//!
//! An extent item maps file blocks `start..=last` to disk blocks `disk..disk + count`, names
//! the layer that allocated them (its owner) and holds the crc32c of each block, which every
//! read from the device verifies. It is keyed by `last`, so the first extent at or after the key
//! of block `b` is the only one that can cover `b`.
//!
//! Invariants:
//! - extents of one file never overlap, and `last < FILE_BLOCKS_MAX`;
//! - an extent maps at most `EXTENT_BLOCKS_MAX` blocks and carries exactly one checksum per
//!   block; splitting an extent splits its checksums, merging two concatenates them;
//! - every stored block holds data that is not all zero within the file (zero pages become
//!   holes), and its bytes past the end of the file are zero;
//! - a block whose owner is `ctx.layer` is referenced by at most one extent of the layer: when it
//!   stops being referenced it goes to `ctx.freed_extents`; blocks of other owners never do.

use std::ops::Bound;
use std::sync::Arc;

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::{self, ExtentValue, ItemKind, Key, EXTENT_BLOCKS_MAX};
use crate::ns::item;
use crate::ns::pages::PAGE_BYTES;
use crate::types::{BlockNo, Ino, LayerId, FILE_SIZE_MAX};

/// Number of file blocks of the largest file.
pub const FILE_BLOCKS_MAX: u64 = FILE_SIZE_MAX / PAGE_BYTES;

/// One extent of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    /// First file block mapped.
    pub start: u64,
    /// Blocks mapped (1 to `EXTENT_BLOCKS_MAX`).
    pub count: u64,
    /// Disk block of `start`.
    pub disk: BlockNo,
    /// The layer that allocated the blocks.
    pub owner: LayerId,
    /// The crc32c of each block, `count` of them (shared by the clones a cursor hands out).
    pub crcs: Arc<[u32]>,
}

impl Extent {
    /// The last file block mapped.
    pub fn last(&self) -> u64 {
        self.start + (self.count - 1)
    }

    /// The disk block holding file block `index` (which the extent covers).
    pub fn disk_of(&self, index: u64) -> BlockNo {
        debug_assert!(self.start <= index && index <= self.last());
        BlockNo(self.disk.0 + (index - self.start))
    }

    /// The checksum of file block `index` (which the extent covers).
    pub fn crc_of(&self, index: u64) -> u32 {
        debug_assert!(self.start <= index && index <= self.last());
        let at = usize::try_from(index - self.start).unwrap_or(usize::MAX);
        self.crcs.get(at).copied().unwrap_or_default()
    }

    /// The part of this extent that maps file blocks `first..end` (which it must cover).
    fn slice(&self, first: u64, end: u64) -> Extent {
        assert!(self.start <= first && first < end && end <= self.last() + 1, "slice inside");
        let from = usize::try_from(first - self.start).unwrap_or(0);
        let to = usize::try_from(end - self.start).unwrap_or(0);
        Extent {
            start: first,
            count: end - first,
            disk: self.disk_of(first),
            owner: self.owner,
            crcs: self.crcs.get(from..to).unwrap_or_default().into(),
        }
    }

    /// Validates and decodes an extent item of `ino`.
    fn from_item(ino: Ino, key: &[u8], value: &[u8]) -> Result<Extent> {
        let last = match records::decode_key(key)? {
            Key::Extent(owner_ino, last) if owner_ino == ino => last,
            _ => return Err(Error::corrupt(0, "extent scan returned another item")),
        };
        let v = records::decode_extent(value)?;
        if last >= FILE_BLOCKS_MAX || v.count - 1 > last {
            return Err(Error::corrupt(
                0,
                format!("extent ending at block {last} is out of range"),
            ));
        }
        Ok(Extent {
            start: last - (v.count - 1),
            count: v.count,
            disk: v.disk,
            owner: v.owner,
            crcs: v.crcs.into(),
        })
    }
}

/// The first extent of `ino` whose last block is at or after `index` (it covers `index` if it
/// starts at or before it).
pub(crate) fn find_extent(ctx: &LayerCtx<'_>, ino: Ino, index: u64) -> Result<Option<Extent>> {
    let lo = records::extent_key(ino, index);
    let hi = records::key_prefix_end(ino, ItemKind::Extent);
    let found = item::scan(ctx, Bound::Included(&lo), Bound::Excluded(&hi), 1)?;
    match found.first() {
        Some((key, value)) => Ok(Some(Extent::from_item(ino, key, value)?)),
        None => Ok(None),
    }
}

/// Remembers the last extent or hole looked up, so that a sequential pass over a file costs one
/// tree lookup per extent or hole rather than one per block.
#[derive(Debug)]
pub(crate) struct ExtentCursor {
    ino: Ino,
    /// File blocks `start..end` are mapped by the extent, or are a hole if `None`.
    span: Option<(u64, u64, Option<Extent>)>,
}

impl ExtentCursor {
    /// A cursor over the extents of `ino`.
    pub fn new(ino: Ino) -> Self {
        Self { ino, span: None }
    }

    /// The extent covering file block `index`, `None` for a hole.
    pub fn at(&mut self, ctx: &LayerCtx<'_>, index: u64) -> Result<Option<Extent>> {
        if let Some((start, end, extent)) = &self.span {
            if *start <= index && index < *end {
                return Ok(extent.clone());
            }
        }
        let span = match find_extent(ctx, self.ino, index)? {
            None => (index, u64::MAX, None),
            Some(e) if e.start > index => (index, e.start, None),
            Some(e) => (e.start, e.last() + 1, Some(e)),
        };
        let extent = span.2.clone();
        self.span = Some(span);
        Ok(extent)
    }
}

fn put_extent(ctx: &mut LayerCtx<'_>, ino: Ino, extent: &Extent) -> Result<()> {
    assert!(extent.count >= 1 && extent.last() < FILE_BLOCKS_MAX, "extent inside the file");
    let value = ExtentValue {
        disk: extent.disk,
        count: extent.count,
        owner: extent.owner,
        crcs: extent.crcs.to_vec(),
    };
    item::put(ctx, &records::extent_key(ino, extent.last()), &records::encode_extent(&value))?;
    Ok(())
}

fn remove_extent(ctx: &mut LayerCtx<'_>, ino: Ino, extent: &Extent) -> Result<()> {
    item::delete_present(ctx, &records::extent_key(ino, extent.last()))?;
    Ok(())
}

/// Unmaps file blocks `first..end` of `ino`, splitting the extents that straddle the bounds.
/// Unmapped blocks the layer owns go to `freed_extents`. Returns the number of blocks unmapped.
pub(crate) fn punch(ctx: &mut LayerCtx<'_>, ino: Ino, first: u64, end: u64) -> Result<u64> {
    let mut unmapped = 0u64;
    // Each pass removes one extent that overlaps the range; a file has at most
    // FILE_BLOCKS_MAX of them, so a longer loop means a corrupt tree.
    for _ in 0..=FILE_BLOCKS_MAX {
        let Some(extent) = find_extent(ctx, ino, first)? else { return Ok(unmapped) };
        if extent.start >= end {
            return Ok(unmapped);
        }
        remove_extent(ctx, ino, &extent)?;
        if extent.start < first {
            put_extent(ctx, ino, &extent.slice(extent.start, first))?;
        }
        if extent.last() >= end {
            put_extent(ctx, ino, &extent.slice(end, extent.last() + 1))?;
        }
        let cut_start = extent.start.max(first);
        let cut_count = (extent.last() + 1).min(end) - cut_start;
        unmapped += cut_count;
        if extent.owner == ctx.layer {
            ctx.freed_extents.push((extent.disk_of(cut_start), cut_count));
        }
    }
    Err(Error::corrupt(0, format!("extent map of inode {} does not shrink", ino.0)))
}

/// Maps the unmapped file blocks `start..start + crcs.len()` of `ino` to the layer's new disk
/// blocks `disk..`, whose checksums are `crcs` (at most `EXTENT_BLOCKS_MAX` of them), merging
/// with a neighbour extent of the layer that continues on disk while the result stays within
/// `EXTENT_BLOCKS_MAX` blocks.
pub(crate) fn map_new(
    ctx: &mut LayerCtx<'_>,
    ino: Ino,
    start: u64,
    disk: BlockNo,
    crcs: Vec<u32>,
) -> Result<()> {
    let count = crcs.len() as u64;
    assert!((1..=EXTENT_BLOCKS_MAX).contains(&count), "a new extent of 1 to 256 blocks");
    let mut new = Extent { start, count, disk, owner: ctx.layer, crcs: crcs.into() };
    let joins = |a: &Extent, b: &Extent| {
        a.owner == b.owner
            && a.last() + 1 == b.start
            && a.disk.0.checked_add(a.count) == Some(b.disk.0)
            && a.count + b.count <= EXTENT_BLOCKS_MAX
    };
    if let Some(before) = start.checked_sub(1) {
        if let Some(prev) = find_extent(ctx, ino, before)? {
            if joins(&prev, &new) {
                remove_extent(ctx, ino, &prev)?;
                new = joined(&prev, &new);
            }
        }
    }
    if let Some(next) = find_extent(ctx, ino, new.last() + 1)? {
        if joins(&new, &next) {
            remove_extent(ctx, ino, &next)?;
            new = joined(&new, &next);
        }
    }
    put_extent(ctx, ino, &new)
}

/// `a` followed by `b`, which continues it in the file and on disk.
fn joined(a: &Extent, b: &Extent) -> Extent {
    let crcs: Vec<u32> = a.crcs.iter().chain(b.crcs.iter()).copied().collect();
    Extent { start: a.start, count: a.count + b.count, disk: a.disk, owner: a.owner, crcs: crcs.into() }
}

/// The data extent `(first block, count)` an item names, if it is an extent owned by `owner`.
/// Layer removal calls this for every item of the leaves the layer owns.
pub fn owned_extent(key: &[u8], value: &[u8], owner: LayerId) -> Option<(BlockNo, u64)> {
    match records::decode_key(key) {
        Ok(Key::Extent(..)) => {}
        _ => return None,
    }
    let extent = records::decode_extent(value).ok()?;
    (extent.owner == owner).then_some((extent.disk, extent.count))
}
