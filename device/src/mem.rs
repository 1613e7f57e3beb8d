//! `MemDevice`: a device held in memory, for tests and benchmarks.
//!
//! Invariants:
//! - blocks never written read as zeros and take no memory;
//! - every write is immediately "durable" (there is no crash to lose it; see `lcfs-sim` for that).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{check_access, BlockDevice, DeviceError, DeviceResult, BLOCK_SIZE};

/// A sparse in-memory block device.
#[derive(Debug)]
pub struct MemDevice {
    block_count: u64,
    blocks: Mutex<HashMap<u64, Box<[u8]>>>,
}

impl MemDevice {
    /// A zeroed device of `block_count` blocks of 4096 bytes.
    pub fn new(block_count: u64) -> Self {
        Self { block_count, blocks: Mutex::new(HashMap::new()) }
    }

    /// A zeroed device of at least `bytes` bytes (rounded up to whole blocks).
    pub fn with_size(bytes: u64) -> Self {
        Self::new(bytes.div_ceil(BLOCK_SIZE as u64))
    }

    /// The number of blocks that hold data (were ever written).
    pub fn blocks_in_use(&self) -> usize {
        self.blocks.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// A copy of the whole device (for tests that corrupt or compare images).
    pub fn snapshot(&self) -> MemDevice {
        let blocks = self.blocks.lock().map(|b| b.clone()).unwrap_or_default();
        MemDevice { block_count: self.block_count, blocks: Mutex::new(blocks) }
    }

    fn lock(&self) -> DeviceResult<std::sync::MutexGuard<'_, HashMap<u64, Box<[u8]>>>> {
        self.blocks.lock().map_err(|_| DeviceError::Fault("memory device lock poisoned".into()))
    }
}

impl BlockDevice for MemDevice {
    fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    fn block_count(&self) -> u64 {
        self.block_count
    }

    fn read(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()> {
        check_access(self, block, buf.len())?;
        match self.lock()?.get(&block) {
            Some(data) => buf.copy_from_slice(data),
            None => buf.fill(0),
        }
        Ok(())
    }

    fn write(&self, block: u64, buf: &[u8]) -> DeviceResult<()> {
        check_access(self, block, buf.len())?;
        let mut blocks = self.lock()?;
        if buf.iter().all(|&b| b == 0) {
            blocks.remove(&block);
        } else {
            blocks.insert(block, buf.into());
        }
        Ok(())
    }

    fn flush(&self) -> DeviceResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritten_blocks_read_as_zero_and_writes_read_back() -> DeviceResult<()> {
        let dev = MemDevice::new(4);
        let mut buf = vec![7u8; BLOCK_SIZE];
        dev.read(3, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 0));
        dev.write(2, &[9u8; BLOCK_SIZE])?;
        dev.read(2, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 9));
        assert_eq!(dev.blocks_in_use(), 1);
        Ok(())
    }

    #[test]
    fn out_of_range_and_short_buffers_are_errors() {
        let dev = MemDevice::new(4);
        let mut buf = vec![0u8; BLOCK_SIZE];
        assert!(matches!(dev.read(4, &mut buf), Err(DeviceError::OutOfRange { .. })));
        assert!(matches!(dev.write(0, &[0u8; 10]), Err(DeviceError::BadBuffer { .. })));
    }
}
