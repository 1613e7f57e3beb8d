//! File data: a sparse map of 4096-byte pages, and the `read` and `write` operations.
//!
//! A write at any offset up to `FILE_SIZE_MAX` (2^44) costs only the pages it touches; a page
//! that is absent reads as zeros. `FileData` is canonical, so two files hold the same bytes if
//! and only if their `FileData` values are equal.
//!
//! Invariants (`FileData::check_invariants`):
//! - every stored page is exactly `PAGE_SIZE` bytes and not all zero;
//! - no page starts at or past `size`; bytes of the last page past `size` are zero.

use std::collections::BTreeMap;

use crate::errno::{Errno, Result};
use crate::inode::Body;
use crate::types::{FileType, Ino, LayerId, Timespec, FILE_SIZE_MAX};
use crate::Model;

/// The page size of the sparse map.
pub const PAGE_SIZE: u64 = 4096;

/// The bytes of a regular file: a size and the pages that are not all zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileData {
    size: u64,
    pages: BTreeMap<u64, Vec<u8>>,
}

impl FileData {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The pages that are not all zero: `(page index, PAGE_SIZE bytes)`, by index.
    pub fn pages(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.pages.iter().map(|(index, page)| (*index, page.as_slice()))
    }

    /// Up to `len` bytes from `offset`, cut at the end of the file (empty past it).
    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        let end = self.size.min(offset.saturating_add(len));
        if offset >= end {
            return Vec::new();
        }
        let mut out = vec![0u8; (end - offset) as usize];
        for (index, page) in self.pages.range(offset / PAGE_SIZE..=(end - 1) / PAGE_SIZE) {
            let page_start = index * PAGE_SIZE;
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE_SIZE);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&page[(from - page_start) as usize..(to - page_start) as usize]);
        }
        out
    }

    /// Writes `data` at `offset`, growing the size to `offset + data.len()` if that is larger.
    /// An empty `data` changes nothing. The caller checks `FILE_SIZE_MAX`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (index, in_page) = (pos / PAGE_SIZE, (pos % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - in_page).min(data.len() - done);
            let page = self.pages.entry(index).or_insert_with(|| vec![0; PAGE_SIZE as usize]);
            page[in_page..in_page + n].copy_from_slice(&data[done..done + n]);
            if page.iter().all(|b| *b == 0) {
                self.pages.remove(&index);
            }
            done += n;
        }
        if !data.is_empty() {
            self.size = self.size.max(offset + data.len() as u64);
        }
    }

    /// Sets the size: shrinking drops the bytes past `size`, growing adds zeros.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            self.pages.retain(|index, _| index * PAGE_SIZE < size);
            let (index, in_page) = (size / PAGE_SIZE, (size % PAGE_SIZE) as usize);
            if let Some(page) = self.pages.get_mut(&index) {
                page[in_page..].fill(0);
                if page.iter().all(|b| *b == 0) {
                    self.pages.remove(&index);
                }
            }
        }
        self.size = size;
    }

    /// Panics if an invariant of the module doc is broken.
    pub fn check_invariants(&self) {
        for (index, page) in &self.pages {
            assert_eq!(page.len() as u64, PAGE_SIZE, "page {index} has the wrong length");
            assert!(page.iter().any(|b| *b != 0), "page {index} is all zero but stored");
            let start = index * PAGE_SIZE;
            assert!(start < self.size, "page {index} lies past the size {}", self.size);
            if self.size < start + PAGE_SIZE {
                let tail = &page[(self.size - start) as usize..];
                assert!(tail.iter().all(|b| *b == 0), "bytes past the size in page {index}");
            }
        }
    }
}

impl Model {
    /// Bytes from `offset` up to `size` of them, short or empty at the end of the file; holes
    /// read as zeros. Errors after the common checks: a directory: EISDIR; any other type that
    /// is not regular: EINVAL.
    pub fn read(&self, layer: LayerId, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
        let inode = self.readable(layer)?.get(ino)?;
        match &inode.body {
            Body::Regular(data) => Ok(data.read(offset, u64::from(size))),
            _ => Err(not_regular(inode.kind)),
        }
    }

    /// Writes `data` at `offset` and returns the count written; mtime = ctime = `now`.
    ///
    /// As Linux does: an empty `data` writes nothing and changes nothing (even past the size
    /// limit); a write starting at or past `FILE_SIZE_MAX` fails with EFBIG; a write that
    /// starts below it and ends past it is short, stopping at `FILE_SIZE_MAX`. At most
    /// `u32::MAX` bytes are written (the count must fit the result).
    /// Errors after the common checks: a directory: EISDIR; other non-regular: EINVAL;
    /// `offset >= FILE_SIZE_MAX`: EFBIG.
    pub fn write(
        &mut self,
        layer: LayerId,
        ino: Ino,
        offset: u64,
        data: &[u8],
        now: Timespec,
    ) -> Result<u32> {
        let inode = self.writable(layer)?.get_mut(ino)?;
        let kind = inode.kind;
        let Body::Regular(file) = &mut inode.body else {
            return Err(not_regular(kind));
        };
        if data.is_empty() {
            return Ok(0);
        }
        if offset >= FILE_SIZE_MAX {
            return Err(Errno::EFBIG);
        }
        let count = (data.len() as u64).min(FILE_SIZE_MAX - offset).min(u64::from(u32::MAX));
        file.write(offset, &data[..count as usize]);
        inode.mtime = now;
        inode.ctime = now;
        Ok(count as u32)
    }
}

/// The errno of a data operation on an inode of type `kind`, which is not regular.
pub(crate) fn not_regular(kind: FileType) -> Errno {
    if kind == FileType::Directory {
        Errno::EISDIR
    } else {
        Errno::EINVAL
    }
}
