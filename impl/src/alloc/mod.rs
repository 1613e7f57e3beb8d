//! Free space: an in-memory free-extent map, persisted by each checkpoint as a chain of
//! `FreeMap` blocks (see `freemap.rs`).
//!
//! Invariants:
//! - `free` holds disjoint, non-adjacent extents `start -> length` (adjacent ones are merged);
//! - a block freed since the last durable checkpoint sits in `pending`, never in `free`: the
//!   durable checkpoint may still reference it, so it is not reused until the next checkpoint
//!   is durable (`checkpoint_done` moves `pending` into `free`);
//! - a block is in at most one of `free` and `pending`, and never in either while referenced.

pub mod freemap;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::types::BlockNo;

/// The free-space map of one filesystem.
#[derive(Clone, Debug, Default)]
pub struct Space {
    free: Extents,
    pending: Extents,
    /// Where the next search for contiguous space starts (next fit keeps files together).
    cursor: u64,
    /// The first block released while already free or pending: the free map read from disk
    /// disagrees with the trees (a damaged image). Checkpoints refuse to run once it is set.
    damaged: Option<u64>,
}

/// A set of disjoint, merged extents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extents {
    map: BTreeMap<u64, u64>,
    blocks: u64,
}

impl Extents {
    /// Adds `[start, start + len)`, which must not overlap anything already present.
    pub fn insert(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let added = len;
        let mut start = start;
        let mut len = len;
        if let Some((&prev, &prev_len)) = self.map.range(..=start).next_back() {
            assert!(prev + prev_len <= start, "extent {start}+{len} overlaps {prev}+{prev_len}");
            if prev + prev_len == start {
                self.map.remove(&prev);
                start = prev;
                len += prev_len;
            }
        }
        if let Some((&next, &next_len)) = self.map.range(start + 1..).next() {
            assert!(start + len <= next, "extent {start}+{len} overlaps {next}");
            if start + len == next {
                self.map.remove(&next);
                len += next_len;
            }
        }
        self.map.insert(start, len);
        self.blocks += added;
    }

    /// Removes `[start, start + len)`, which must be wholly present.
    pub fn remove(&mut self, start: u64, len: u64) {
        let Some((&at, &at_len)) = self.map.range(..=start).next_back() else {
            unreachable_extent(start, len);
        };
        if at + at_len < start + len {
            unreachable_extent(start, len);
        }
        self.map.remove(&at);
        if start > at {
            self.map.insert(at, start - at);
        }
        if at + at_len > start + len {
            self.map.insert(start + len, at + at_len - start - len);
        }
        self.blocks -= len;
    }

    /// Whether every block of `[start, start + len)` is present.
    pub fn contains(&self, start: u64, len: u64) -> bool {
        match self.map.range(..=start).next_back() {
            Some((&at, &at_len)) => at + at_len >= start + len,
            None => false,
        }
    }

    /// Whether any block of `[start, start + len)` is present.
    pub fn overlaps(&self, start: u64, len: u64) -> bool {
        if let Some((&at, &at_len)) = self.map.range(..=start).next_back() {
            if at + at_len > start {
                return true;
            }
        }
        self.map.range(start..start.saturating_add(len)).next().is_some()
    }

    /// Total blocks present.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Number of extents.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The extents in block order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(&s, &l)| (s, l))
    }

    /// Adds `[start, start + len)`, whether or not parts of it are present already.
    pub fn insert_union(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        let mut at = start;
        while at < end {
            // Skip the part covered by the extent holding `at`, if any.
            if let Some((&s, &l)) = self.map.range(..=at).next_back() {
                if s + l > at {
                    at = s + l;
                    continue;
                }
            }
            let next = self.map.range(at..end).next().map_or(end, |(&s, _)| s);
            self.insert(at, next - at);
            at = next;
        }
    }

    /// Adds everything of `other`.
    pub fn absorb(&mut self, other: &Extents) {
        for (s, l) in other.iter() {
            self.insert(s, l);
        }
    }
}

#[expect(clippy::panic, reason = "freeing what is not allocated is a programmer error")]
fn unreachable_extent(start: u64, len: u64) -> ! {
    panic!("extent {start}+{len} is not in the set")
}

impl Space {
    /// A map where `[first, end)` is free.
    pub fn new_free(first: u64, end: u64) -> Space {
        let mut free = Extents::default();
        free.insert(first, end.saturating_sub(first));
        Space { free, pending: Extents::default(), cursor: first, damaged: None }
    }

    /// A map with exactly `free` free (as loaded at mount).
    pub fn from_free(free: Extents) -> Space {
        let cursor = free.iter().next().map(|(s, _)| s).unwrap_or(0);
        Space { free, pending: Extents::default(), cursor, damaged: None }
    }

    /// Allocates between 1 and `want` contiguous blocks: the first extent at or after the cursor
    /// that holds `want`, else the largest extent. `Error::NoSpace` when nothing is free.
    pub fn allocate(&mut self, want: u64) -> Result<(BlockNo, u64)> {
        let want = want.max(1);
        let fits = |(&s, &l): (&u64, &u64)| (l >= want).then_some((s, want));
        let found = self
            .free
            .map
            .range(self.cursor..)
            .find_map(fits)
            .or_else(|| self.free.map.range(..self.cursor).find_map(fits))
            .or_else(|| {
                let best = self.free.map.iter().max_by_key(|(_, &l)| l);
                best.map(|(&s, &l)| (s, l.min(want)))
            });
        let (start, len) = found.ok_or(Error::NoSpace)?;
        self.free.remove(start, len);
        self.cursor = start + len;
        Ok((BlockNo(start), len))
    }

    /// Releases blocks the durable checkpoint may still reference: reusable only after the
    /// next checkpoint is durable.
    /// A block already free or pending can only come from a damaged image (the trees and the
    /// free map both claim it): it is not released twice, and `check_damage` reports it.
    pub fn release(&mut self, start: BlockNo, len: u64) {
        if self.free.overlaps(start.0, len) || self.pending.overlaps(start.0, len) {
            self.damaged.get_or_insert(start.0);
            return;
        }
        self.pending.insert(start.0, len);
    }

    /// `Corrupt` once a release found a block both free and in use: writing a checkpoint would
    /// make the damage durable under a new generation.
    pub fn check_damage(&self) -> Result<()> {
        match self.damaged {
            Some(block) => Err(Error::corrupt(
                block,
                "the block is both free and in use (the free map disagrees with a tree); \
                 nothing more is written: run `lcfs fsck` on the image",
            )),
            None => Ok(()),
        }
    }

    /// Returns blocks that were allocated but never named by anything durable.
    pub fn unallocate(&mut self, start: u64, len: u64) {
        self.free.insert(start, len);
    }

    /// The map to persist in the checkpoint being written: what will be free once it is durable.
    pub fn free_after_checkpoint(&self) -> Extents {
        let mut all = self.free.clone();
        all.absorb(&self.pending);
        all
    }

    /// The checkpoint is durable: pending blocks become reusable.
    pub fn checkpoint_done(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.free.absorb(&pending);
    }

    /// Blocks free now plus blocks free after the next checkpoint.
    pub fn blocks_free(&self) -> u64 {
        self.free.blocks() + self.pending.blocks()
    }

    /// Blocks allocatable right now.
    pub fn blocks_allocatable(&self) -> u64 {
        self.free.blocks()
    }

    /// The free extents (not counting pending ones).
    pub fn free(&self) -> &Extents {
        &self.free
    }

    /// The pending extents.
    pub fn pending(&self) -> &Extents {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn freed_blocks_wait_for_the_checkpoint() {
        let mut space = Space::new_free(2, 10);
        let (a, n) = space.allocate(8).unwrap();
        assert_eq!((a.0, n), (2, 8));
        assert!(space.allocate(1).is_err());
        space.release(a, 4);
        assert!(matches!(space.allocate(1), Err(Error::NoSpace)), "pending blocks are not reused");
        assert_eq!(space.free_after_checkpoint().blocks(), 4);
        space.checkpoint_done();
        assert_eq!(space.allocate(4).unwrap(), (BlockNo(2), 4));
    }

    quickcheck! {
        fn extents_agree_with_a_bitmap(ops: Vec<(bool, u8, u8)>) -> bool {
            let mut set = Extents::default();
            let mut bits = [false; 300];
            for (add, start, len) in ops {
                let (start, len) = (u64::from(start), u64::from(len % 16) + 1);
                let range = start as usize..(start + len) as usize;
                if add && !set.overlaps(start, len) {
                    set.insert(start, len);
                    bits[range].iter_mut().for_each(|b| *b = true);
                } else if !add && set.contains(start, len) {
                    set.remove(start, len);
                    bits[range].iter_mut().for_each(|b| *b = false);
                }
            }
            let mut union = set.clone();
            union.insert_union(5, 40);
            union.insert_union(3, 1);
            let mut bits_union = bits;
            bits_union[5..45].iter_mut().for_each(|b| *b = true);
            bits_union[3] = true;
            let mut ok_union = union.blocks() == bits_union.iter().filter(|&&b| b).count() as u64;
            for (i, &b) in bits_union.iter().enumerate() {
                ok_union &= union.contains(i as u64, 1) == b;
            }
            let from_bits = bits.iter().filter(|&&b| b).count() as u64;
            let mut ok = set.blocks() == from_bits && ok_union;
            for (i, &b) in bits.iter().enumerate() {
                ok &= set.contains(i as u64, 1) == b;
            }
            let mut last_end = None;
            for (s, l) in set.iter() {
                ok &= last_end.is_none_or(|e| e < s) && l > 0;
                last_end = Some(s + l);
            }
            ok
        }
    }
}
