//! `DirtyPages`: a layer's file data written since the last checkpoint, page by page.
//!
//! Invariants:
//! - every page is exactly `PAGE_SIZE` bytes and belongs to a regular file of the layer;
//! - a page lies inside its file (index < ceil(size / PAGE_SIZE)); bytes of the last page past the
//!   end of the file are zero;
//! - a dirty page shadows whatever extent maps the same file block;
//! - `bytes` is the memory the pages hold, the number the core compares with its dirty limit.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::format::header::BLOCK_SIZE;
use crate::types::Ino;

/// Size of a page of file data: one block.
pub const PAGE_SIZE: usize = BLOCK_SIZE;
/// `PAGE_SIZE` as a u64, for file offsets.
pub const PAGE_BYTES: u64 = PAGE_SIZE as u64;
/// Memory a page costs besides its bytes (map node share, key, box header), an estimate.
const PAGE_OVERHEAD_BYTES: u64 = 64;

/// A layer's file data not yet written to the device.
#[derive(Debug, Default)]
pub struct DirtyPages {
    pages: BTreeMap<(Ino, u64), Box<[u8]>>,
}

impl DirtyPages {
    /// No pages.
    pub fn new() -> Self {
        Self::default()
    }

    /// Memory held by the pages, in bytes (what the dirty limit counts).
    pub fn bytes(&self) -> u64 {
        self.pages.len() as u64 * (PAGE_BYTES + PAGE_OVERHEAD_BYTES)
    }

    /// Whether no page is dirty.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Number of dirty pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Page `index` of `ino`, if dirty.
    pub(crate) fn get(&self, ino: Ino, index: u64) -> Option<&[u8]> {
        self.pages.get(&(ino, index)).map(|p| &**p)
    }

    /// Makes `page` the content of page `index` of `ino`.
    pub(crate) fn insert(&mut self, ino: Ino, index: u64, page: Box<[u8]>) {
        assert_eq!(page.len(), PAGE_SIZE, "a dirty page is one block");
        self.pages.insert((ino, index), page);
    }

    /// Removes the pages of `ino` from `first` on.
    pub(crate) fn remove_from(&mut self, ino: Ino, first: u64) {
        let doomed: Vec<u64> = self.range_from(ino, first).map(|(index, _)| index).collect();
        for index in doomed {
            self.pages.remove(&(ino, index));
        }
    }

    /// The pages of `ino` from `first` on, in index order.
    pub(crate) fn range_from(&self, ino: Ino, first: u64) -> impl Iterator<Item = (u64, &[u8])> {
        self.pages
            .range((Bound::Included((ino, first)), Bound::Unbounded))
            .take_while(move |((page_ino, _), _)| *page_ino == ino)
            .map(|((_, index), page)| (*index, &**page))
    }

    /// Removes page `index` of `ino`.
    pub(crate) fn remove(&mut self, ino: Ino, index: u64) -> Option<Box<[u8]>> {
        self.pages.remove(&(ino, index))
    }

    /// The first dirty run: the first page in (ino, index) order and the pages after it that
    /// continue it (same inode, consecutive indices, same zero-ness), at most `count_max`.
    /// Returns `(ino, first index, count, all zero)`.
    pub(crate) fn first_run(&self, count_max: u64) -> Option<(Ino, u64, u64, bool)> {
        let (&(ino, first), page) = self.pages.first_key_value()?;
        let zero = is_zero(page);
        let mut count = 0u64;
        let later = self.pages.range((Bound::Included((ino, first)), Bound::Unbounded));
        for (&(next_ino, index), page) in later {
            let continues =
                next_ino == ino && Some(index) == first.checked_add(count) && is_zero(page) == zero;
            if !continues || count >= count_max {
                break;
            }
            count += 1;
        }
        Some((ino, first, count, zero))
    }

    /// Every page, for tests that compare states.
    #[cfg(test)]
    pub(crate) fn dump(&self) -> Vec<((Ino, u64), Vec<u8>)> {
        self.pages.iter().map(|(key, page)| (*key, page.to_vec())).collect()
    }

    /// Checks the invariants that do not need the tree.
    pub fn check_invariants(&self) {
        for page in self.pages.values() {
            assert_eq!(page.len(), PAGE_SIZE, "a dirty page is one block");
        }
    }
}

/// Whether every byte of `bytes` is zero.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Changes to the dirty pages of one inode that an operation makes as its last, infallible
/// step, once every tree change has succeeded (so a failed operation leaves the pages alone).
#[derive(Debug)]
#[must_use = "an operation applies its page changes as its last step"]
pub(crate) struct PageChange {
    ino: Ino,
    /// Drop the pages from this index on.
    drop_from: Option<u64>,
    /// Then set these pages.
    set: Vec<(u64, Box<[u8]>)>,
}

impl PageChange {
    /// No change.
    pub fn none(ino: Ino) -> Self {
        Self { ino, drop_from: None, set: Vec::new() }
    }

    /// Drop every page of `ino` (the inode is gone).
    pub fn drop_all(ino: Ino) -> Self {
        Self { ino, drop_from: Some(0), set: Vec::new() }
    }

    /// Drop the pages of the inode from index `first` on.
    pub fn drop_from(&mut self, first: u64) {
        self.drop_from = Some(self.drop_from.map_or(first, |f| f.min(first)));
    }

    /// Set page `index` of the inode to `page`.
    pub fn set(&mut self, index: u64, page: Box<[u8]>) {
        assert_eq!(page.len(), PAGE_SIZE, "a dirty page is one block");
        self.set.push((index, page));
    }

    /// Applies the change.
    pub fn apply(self, pages: &mut DirtyPages) {
        if let Some(first) = self.drop_from {
            pages.remove_from(self.ino, first);
        }
        for (index, page) in self.set {
            pages.insert(self.ino, index, page);
        }
    }
}
