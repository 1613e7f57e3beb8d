//! `FileDevice`: a device over a regular (usually sparse) file or a block device node.
//!
//! Invariants:
//! - the geometry is fixed at open: the file's length (or the block device's size) rounded down
//!   to whole blocks;
//! - `flush` is `fdatasync`, the only durability promise;
//! - positioned I/O (`pread`/`pwrite`), so concurrent readers need no lock.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{check_access, BlockDevice, DeviceError, DeviceResult, BLOCK_SIZE};

/// A block device backed by a file or a block special file.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    path: PathBuf,
    block_count: u64,
}

impl FileDevice {
    /// Creates (or truncates) a sparse image file of `size_bytes` bytes, rounded down to whole
    /// blocks. Refuses to touch anything that is not a regular file.
    pub fn create(path: &Path, size_bytes: u64) -> DeviceResult<Self> {
        if let Ok(meta) = std::fs::metadata(path) {
            if !meta.is_file() {
                return Self::open(path);
            }
        }
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let block_count = size_bytes / BLOCK_SIZE as u64;
        file.set_len(block_count * BLOCK_SIZE as u64)?;
        Ok(Self { file, path: path.to_path_buf(), block_count })
    }

    /// Opens an existing image file or block device.
    pub fn open(path: &Path) -> DeviceResult<Self> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        Ok(Self { file, path: path.to_path_buf(), block_count: len / BLOCK_SIZE as u64 })
    }

    /// The path this device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BlockDevice for FileDevice {
    fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    fn block_count(&self) -> u64 {
        self.block_count
    }

    fn read(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()> {
        check_access(self, block, buf.len())?;
        self.file.read_exact_at(buf, block * BLOCK_SIZE as u64).map_err(DeviceError::Io)
    }

    fn write(&self, block: u64, buf: &[u8]) -> DeviceResult<()> {
        check_access(self, block, buf.len())?;
        self.file.write_all_at(buf, block * BLOCK_SIZE as u64).map_err(DeviceError::Io)
    }

    fn flush(&self) -> DeviceResult<()> {
        self.file.sync_data().map_err(DeviceError::Io)
    }

    /// One `pwrite` for the whole run (a checkpoint writes a file's data in runs of up to 256
    /// blocks; one system call per block was most of an ApplyDiff's time).
    fn write_run(&self, first: u64, bufs: &[&[u8]]) -> DeviceResult<()> {
        for (block, buf) in (first..).zip(bufs) {
            check_access(self, block, buf.len())?;
        }
        let run = bufs.concat();
        self.file.write_all_at(&run, first * BLOCK_SIZE as u64).map_err(DeviceError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_image_round_trips_blocks_across_reopen() -> DeviceResult<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("dev.img");
        let dev = FileDevice::create(&path, 1 << 30)?;
        assert_eq!(dev.block_count(), (1 << 30) / BLOCK_SIZE as u64);
        dev.write(1000, &[5u8; BLOCK_SIZE])?;
        dev.flush()?;
        drop(dev);
        let dev = FileDevice::open(&path)?;
        let mut buf = vec![0u8; BLOCK_SIZE];
        dev.read(1000, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 5));
        dev.read(999, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 0));
        assert!(matches!(dev.read(1 << 18, &mut buf), Err(DeviceError::OutOfRange { .. })));
        Ok(())
    }

    #[test]
    fn a_run_writes_what_block_by_block_writes_would_and_checks_every_block() -> DeviceResult<()> {
        let dir = tempfile::tempdir()?;
        let dev = FileDevice::create(&dir.path().join("dev.img"), 64 * BLOCK_SIZE as u64)?;
        let blocks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i + 1; BLOCK_SIZE]).collect();
        let bufs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        dev.write_run(10, &bufs)?;
        let mut buf = vec![0u8; BLOCK_SIZE];
        for (i, block) in blocks.iter().enumerate() {
            dev.read(10 + i as u64, &mut buf)?;
            assert_eq!(&buf, block, "block {}", 10 + i);
        }
        dev.read(15, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 0), "nothing past the run");
        // A run past the end or with a short buffer writes nothing and says why.
        let three: Vec<&[u8]> = bufs.iter().copied().take(3).collect();
        let past = dev.write_run(62, &three);
        assert!(matches!(past, Err(DeviceError::OutOfRange { block: 64, .. })), "{past:?}");
        dev.read(62, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 0), "a refused run wrote nothing");
        let (full, part) = (vec![1u8; BLOCK_SIZE], vec![1u8; 100]);
        let short = dev.write_run(20, &[&full, &part]);
        assert!(matches!(short, Err(DeviceError::BadBuffer { len: 100, .. })), "{short:?}");
        dev.write_run(30, &[])?;
        Ok(())
    }
}
