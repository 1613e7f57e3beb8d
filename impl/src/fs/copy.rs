//! `copy_range`: copy_file_range(2) inside one layer, done by the engine in large chunks
//! instead of through the kernel's page cache. Holes of the source stay holes: only its data
//! ranges (`seek_data`/`seek_hole`) are read and written, and a hole is written as zeros only
//! where the destination already had content.
//!
//! Invariants:
//! - both inodes are in the same layer (the FUSE mount answers EXDEV across layers, and the
//!   kernel falls back to its own copy);
//! - the count copied is `len` clamped to the end of the source; the destination grows to
//!   `dst_offset + count` if it was shorter, as copy_file_range(2) leaves it;
//! - each chunk is one engine write, checked like any write (EROFS on a committed layer,
//!   ENOSPC up front).

use super::Fs;
use crate::error::{Error, Result};
use crate::types::{FileType, Ino, LayerId, SetAttr, Timespec, FILE_SIZE_MAX};

/// Bytes moved per read and write.
const CHUNK_BYTES: u64 = 1 << 20;

/// Where one copy stands.
struct Copy {
    layer: LayerId,
    src: Ino,
    dst: Ino,
    now: Timespec,
}

impl Fs {
    /// Copies up to `len` bytes of `src` from `src_offset` to `dst` at `dst_offset`, both regular
    /// files of `layer` (they may be the same file; the caller keeps the ranges apart, as the
    /// kernel does). Returns the count copied: 0 at or past the end of the source.
    #[expect(clippy::too_many_arguments, reason = "mirrors copy_file_range(2)")]
    pub fn copy_range(
        &self,
        layer: LayerId,
        src: Ino,
        src_offset: u64,
        dst: Ino,
        dst_offset: u64,
        len: u64,
        now: Timespec,
    ) -> Result<u64> {
        let src_attr = self.getattr(layer, src)?;
        for attr in [&src_attr, &self.getattr(layer, dst)?] {
            match attr.kind {
                FileType::Regular => {}
                FileType::Directory => return Err(Error::IsDir),
                _ => return Err(Error::InvalidArgument("copy_range needs regular files")),
            }
        }
        let len = len.min(src_attr.size.saturating_sub(src_offset));
        if len == 0 {
            return Ok(0);
        }
        if dst_offset.checked_add(len).is_none_or(|end| end > FILE_SIZE_MAX) {
            return Err(Error::FileTooBig);
        }
        let copy = Copy { layer, src, dst, now };
        let end = src_offset + len;
        let mut at = src_offset;
        while at < end {
            let data = self.seek_data(layer, src, at)?.unwrap_or(end).min(end);
            if data > at {
                self.zero(&copy, dst_offset + (at - src_offset), data - at)?;
                at = data;
                continue;
            }
            let hole = self.seek_hole(layer, src, at)?.unwrap_or(end).min(end);
            if hole <= at {
                return Err(Error::corrupt(0, format!("seek_hole of inode {} went back", src.0)));
            }
            self.move_bytes(&copy, at, dst_offset + (at - src_offset), hole - at)?;
            at = hole;
        }
        let dst_end = dst_offset + len;
        if self.getattr(layer, dst)?.size < dst_end {
            let set = SetAttr { size: Some(dst_end), ..SetAttr::default() };
            self.setattr(layer, dst, &set, now)?;
        }
        Ok(len)
    }

    /// Copies `len` bytes of data from `from` in the source to `to` in the destination.
    fn move_bytes(&self, copy: &Copy, from: u64, to: u64, len: u64) -> Result<()> {
        let mut done = 0;
        while done < len {
            let want = u32::try_from((len - done).min(CHUNK_BYTES)).unwrap_or(u32::MAX);
            let bytes = self.read(copy.layer, copy.src, from + done, want)?;
            if bytes.is_empty() {
                return Err(Error::corrupt(0, "copy_range: the source ended early"));
            }
            self.write(copy.layer, copy.dst, to + done, &bytes, copy.now)?;
            done += bytes.len() as u64;
        }
        Ok(())
    }

    /// Makes `to..to + len` of the destination read as zeros: writes zeros over the part
    /// inside its current size (past it, the final size change leaves a hole).
    fn zero(&self, copy: &Copy, to: u64, len: u64) -> Result<()> {
        let size = self.getattr(copy.layer, copy.dst)?.size;
        let end = (to + len).min(size);
        let mut at = to;
        while at < end {
            let chunk = (end - at).min(CHUNK_BYTES);
            let zeros = vec![0u8; usize::try_from(chunk).unwrap_or(0)];
            self.write(copy.layer, copy.dst, at, &zeros, copy.now)?;
            at += chunk;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The copy must read back byte for byte as the source range, keep holes as holes, and
    //! leave the rest of the destination alone.
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use std::sync::Arc;

    use crate::fs::{Fs, MkfsOptions, MountOptions};
    use crate::types::{FileType, Ino, LayerId, Timespec};
    use crate::{Error, MemDevice};

    const B: u64 = 4096;

    fn mounted() -> (Fs, LayerId) {
        let dev = Arc::new(MemDevice::new(8192));
        Fs::mkfs(dev.clone(), &MkfsOptions::default()).unwrap();
        let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
        let layer = fs.create_layer("l", None).unwrap();
        (fs, layer)
    }

    fn file(fs: &Fs, layer: LayerId, name: &[u8]) -> Ino {
        let now = Timespec::now();
        fs.mknod(layer, Ino::ROOT, name, FileType::Regular, 0o644, 0, 0, 0, now).unwrap().ino
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1).collect()
    }

    fn read_all(fs: &Fs, layer: LayerId, ino: Ino) -> Vec<u8> {
        let size = fs.getattr(layer, ino).unwrap().size;
        fs.read(layer, ino, 0, u32::try_from(size).unwrap()).unwrap()
    }

    #[test]
    fn copies_data_and_keeps_holes() {
        let (fs, layer) = mounted();
        let (src, dst) = (file(&fs, layer, b"src"), file(&fs, layer, b"dst"));
        let now = Timespec::now();
        fs.write(layer, src, 0, &pattern(5000, 1), now).unwrap();
        fs.write(layer, src, 3_000_000, &pattern(3 * B as usize, 2), now).unwrap();
        fs.checkpoint().unwrap();
        let size = fs.getattr(layer, src).unwrap().size;
        assert_eq!(fs.copy_range(layer, src, 0, dst, 0, u64::MAX, now).unwrap(), size);
        assert_eq!(read_all(&fs, layer, dst), read_all(&fs, layer, src));
        fs.checkpoint().unwrap();
        assert_eq!(fs.seek_hole(layer, dst, 0).unwrap(), Some(2 * B));
        assert_eq!(fs.seek_data(layer, dst, 2 * B).unwrap(), Some(3_000_000 / B * B));
        let blocks = |ino| fs.getattr(layer, ino).unwrap().blocks;
        assert_eq!(blocks(dst), blocks(src));
    }

    #[test]
    fn a_range_into_the_middle_of_a_longer_file() {
        let (fs, layer) = mounted();
        let (src, dst) = (file(&fs, layer, b"src"), file(&fs, layer, b"dst"));
        let now = Timespec::now();
        let mut sparse = vec![0u8; 20_000];
        sparse[..100].copy_from_slice(&pattern(100, 3));
        sparse[15_000..].copy_from_slice(&pattern(5_000, 4));
        fs.write(layer, src, 0, &pattern(100, 3), now).unwrap();
        fs.write(layer, src, 15_000, &pattern(5_000, 4), now).unwrap();
        let before = pattern(50_000, 5);
        fs.write(layer, dst, 0, &before, now).unwrap();
        assert_eq!(fs.copy_range(layer, src, 50, dst, 1_000, 19_000, now).unwrap(), 19_000);
        let mut expect = before;
        expect[1_000..20_000].copy_from_slice(&sparse[50..19_050]);
        assert_eq!(read_all(&fs, layer, dst), expect);
    }

    #[test]
    fn within_one_file_and_past_its_end() {
        let (fs, layer) = mounted();
        let f = file(&fs, layer, b"f");
        let now = Timespec::now();
        let data = pattern(10_000, 6);
        fs.write(layer, f, 0, &data, now).unwrap();
        assert_eq!(fs.copy_range(layer, f, 0, f, 20_000, 10_000, now).unwrap(), 10_000);
        let all = read_all(&fs, layer, f);
        assert_eq!(all.len(), 30_000);
        assert_eq!(&all[20_000..], &data[..]);
        assert!(all[10_000..20_000].iter().all(|&b| b == 0));
        assert_eq!(fs.copy_range(layer, f, 30_000, f, 0, 10, now).unwrap(), 0);
        assert_eq!(fs.copy_range(layer, f, 29_990, f, 0, 100, now).unwrap(), 10);
    }

    #[test]
    fn a_committed_layer_is_read_only_and_directories_are_refused() {
        let (fs, layer) = mounted();
        let (src, dst) = (file(&fs, layer, b"src"), file(&fs, layer, b"dst"));
        let now = Timespec::now();
        fs.write(layer, src, 0, b"hello", now).unwrap();
        fs.commit_layer("l").unwrap();
        assert!(matches!(fs.copy_range(layer, src, 0, dst, 0, 5, now), Err(Error::ReadOnly)));
        let child = fs.create_layer("c", Some("l")).unwrap();
        assert_eq!(fs.copy_range(child, src, 0, dst, 0, 5, now).unwrap(), 5);
        assert_eq!(read_all(&fs, child, dst), b"hello");
        assert!(read_all(&fs, layer, dst).is_empty());
        assert!(matches!(fs.copy_range(child, src, 0, Ino::ROOT, 0, 5, now), Err(Error::IsDir)));
    }
}
