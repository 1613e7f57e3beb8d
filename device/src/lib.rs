//! Block devices for lcfs.
//!
//! The engine sees storage only through [`BlockDevice`]: fixed-size blocks addressed by a `u64`
//! block number, read and written whole, and a `flush` that makes every earlier write durable.
//!
//! Invariants every implementation keeps:
//! - `read` and `write` take exactly one block (`buf.len() == block_size()`), else `InvalidArgument`;
//! - a block number at or past `block_count()` is `OutOfRange`, never a silent wrap;
//! - a read returns the newest value written, durable or not;
//! - only `flush` promises durability of the writes issued before it.
//!
//! Test hooks (crash, fault injection) belong to the simulator (`lcfs-sim`), never to this trait.

mod file;
mod mem;

pub use file::FileDevice;
pub use mem::MemDevice;

/// The block size every lcfs device uses.
pub const BLOCK_SIZE: usize = 4096;

/// An error from a block device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The operating system reported an I/O error.
    #[error("device I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A block number past the end of the device.
    #[error("block {block} is past the end of the device ({count} blocks)")]
    OutOfRange { block: u64, count: u64 },
    /// A buffer whose length is not one block.
    #[error("buffer of {len} bytes where one block of {block_size} bytes was expected")]
    BadBuffer { len: usize, block_size: usize },
    /// An injected or simulated fault (used by simulators).
    #[error("injected device fault: {0}")]
    Fault(String),
}

/// A result of a block-device operation.
pub type DeviceResult<T> = Result<T, DeviceError>;

/// Storage addressed in fixed-size blocks.
pub trait BlockDevice: Send + Sync {
    /// The size of one block in bytes (4096 for every lcfs device).
    fn block_size(&self) -> usize;
    /// The number of blocks on the device.
    fn block_count(&self) -> u64;
    /// Reads block `block` into `buf` (exactly one block long).
    fn read(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()>;
    /// Writes `buf` (exactly one block long) to block `block`. Not durable until `flush`.
    fn write(&self, block: u64, buf: &[u8]) -> DeviceResult<()>;
    /// Makes every write issued before this call durable.
    fn flush(&self) -> DeviceResult<()>;
    /// Writes `bufs` (each exactly one block long) to blocks `first`, `first + 1`, ...: the same
    /// as one `write` per block in order, which is what this default does, and with the same
    /// promise (none until `flush`: a crash may keep any subset, as of separate writes). A
    /// device may issue the run as one request.
    fn write_run(&self, first: u64, bufs: &[&[u8]]) -> DeviceResult<()> {
        for (block, buf) in (first..).zip(bufs) {
            self.write(block, buf)?;
        }
        Ok(())
    }
}

/// Checks a block number and buffer length against a device's geometry.
pub fn check_access(dev: &dyn BlockDevice, block: u64, len: usize) -> DeviceResult<()> {
    if len != dev.block_size() {
        return Err(DeviceError::BadBuffer { len, block_size: dev.block_size() });
    }
    if block >= dev.block_count() {
        return Err(DeviceError::OutOfRange { block, count: dev.block_count() });
    }
    Ok(())
}

impl<D: BlockDevice + ?Sized> BlockDevice for std::sync::Arc<D> {
    fn block_size(&self) -> usize {
        (**self).block_size()
    }
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn read(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()> {
        (**self).read(block, buf)
    }
    fn write(&self, block: u64, buf: &[u8]) -> DeviceResult<()> {
        (**self).write(block, buf)
    }
    fn flush(&self) -> DeviceResult<()> {
        (**self).flush()
    }
    fn write_run(&self, first: u64, bufs: &[&[u8]]) -> DeviceResult<()> {
        (**self).write_run(first, bufs)
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for Box<D> {
    fn block_size(&self) -> usize {
        (**self).block_size()
    }
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn read(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()> {
        (**self).read(block, buf)
    }
    fn write(&self, block: u64, buf: &[u8]) -> DeviceResult<()> {
        (**self).write(block, buf)
    }
    fn flush(&self) -> DeviceResult<()> {
        (**self).flush()
    }
    fn write_run(&self, first: u64, bufs: &[&[u8]]) -> DeviceResult<()> {
        (**self).write_run(first, bufs)
    }
}
