//! The persisted free map: a chain of `FreeMap` blocks written by every checkpoint.
//!
//! Payload layout of one block (after the common header, owner 0), little-endian:
//!
//! ```text
//! offset size field
//!      0    8 next      next block of the chain, 0 at the end
//!      8    4 count     extents in this block (at most PER_BLOCK)
//!     12    4 reserved  zero
//!     16   16 extent    start u64, length u64; `count` of them, in block order
//! ```
//!
//! Invariants checked at load: the chain has exactly the length the superblock records (so a
//! cycle cannot loop), every extent is non-empty, inside the device, past the superblocks, and
//! disjoint from every other. A checkpoint writes its whole chain, so at mount every block of
//! it carries the superblock's generation (`load_of_generation`): a block that kept an older
//! free-map block (a lost or misdirected write) is refused, never used.

use crate::error::{Error, Result};
use crate::format::cursor::{Reader, Writer};
use crate::format::header::{self, BlockKind, Header, BLOCK_SIZE, PAYLOAD_SIZE};
use crate::format::superblock::FIRST_DATA_BLOCK;
use crate::types::{BlockNo, Generation, LayerId};
use lcfs_device::BlockDevice;

use super::Extents;

/// Extents one block holds.
pub const PER_BLOCK: usize = (PAYLOAD_SIZE - 16) / 16;

/// Blocks needed to hold `extents` extents (at least one).
pub fn blocks_needed(extents: usize) -> u64 {
    extents.div_ceil(PER_BLOCK).max(1) as u64
}

/// Encodes `extents` into one sealed block for each of `blocks`, chained in order.
/// `blocks` must be enough (`blocks_needed`); spare blocks are written empty.
pub fn encode(extents: &Extents, blocks: &[BlockNo], generation: Generation) -> Vec<Vec<u8>> {
    assert!(blocks_needed(extents.len()) <= blocks.len() as u64, "free map does not fit");
    let mut all = extents.iter();
    let mut out = Vec::with_capacity(blocks.len());
    for (i, &at) in blocks.iter().enumerate() {
        let mut block = vec![0u8; BLOCK_SIZE];
        let chunk: Vec<(u64, u64)> = all.by_ref().take(PER_BLOCK).collect();
        let mut w = Writer::new(header::payload_mut(&mut block));
        w.u64(blocks.get(i + 1).map_or(0, |b| b.0));
        w.u32(chunk.len() as u32);
        w.u32(0);
        for (start, len) in chunk {
            w.u64(start);
            w.u64(len);
        }
        let header = Header { kind: BlockKind::FreeMap, block: at, generation, owner: LayerId::SYSTEM };
        header::seal(&mut block, &header);
        out.push(block);
    }
    out
}

/// Reads the chain of `count` blocks starting at `head` on a device of `block_count` blocks,
/// whatever generation wrote them (tools and fuzzing; mount uses `load_of_generation`);
/// returns the free extents and the blocks of the chain.
pub fn load(
    dev: &dyn BlockDevice,
    head: BlockNo,
    count: u32,
    block_count: u64,
) -> Result<(Extents, Vec<BlockNo>)> {
    load_checked(dev, head, count, block_count, None)
}

/// `load`, checking that every block of the chain was written by `generation` (the superblock's).
pub fn load_of_generation(
    dev: &dyn BlockDevice,
    head: BlockNo,
    count: u32,
    block_count: u64,
    generation: Generation,
) -> Result<(Extents, Vec<BlockNo>)> {
    load_checked(dev, head, count, block_count, Some(generation))
}

fn load_checked(
    dev: &dyn BlockDevice,
    head: BlockNo,
    count: u32,
    block_count: u64,
    generation: Option<Generation>,
) -> Result<(Extents, Vec<BlockNo>)> {
    let mut extents = Extents::default();
    let mut chain = Vec::new();
    let mut at = head;
    let mut buf = vec![0u8; BLOCK_SIZE];
    for i in 0..count {
        if at.0 < FIRST_DATA_BLOCK || at.0 >= block_count {
            return Err(Error::corrupt(at.0, "free-map chain points outside the device"));
        }
        dev.read(at.0, &mut buf)?;
        let found = header::verify(&buf, at, BlockKind::FreeMap)?.generation;
        if generation.is_some_and(|want| want != found) {
            return Err(Error::corrupt(
                at.0,
                format!(
                    "stale free-map block of generation {} in the chain of generation {}",
                    found.0,
                    generation.map_or(0, |g| g.0)
                ),
            ));
        }
        chain.push(at);
        let mut r = Reader::new(header::payload(&buf), at.0);
        let next = r.u64()?;
        let n = r.u32()? as usize;
        r.u32()?;
        if n > PER_BLOCK {
            return Err(Error::corrupt(at.0, format!("free-map block claims {n} extents")));
        }
        for _ in 0..n {
            let (start, len) = (r.u64()?, r.u64()?);
            let end = start.checked_add(len);
            if len == 0 || start < FIRST_DATA_BLOCK || end.is_none_or(|e| e > block_count) {
                return Err(Error::corrupt(at.0, format!("free extent {start}+{len} out of range")));
            }
            if extents.overlaps(start, len) {
                return Err(Error::corrupt(at.0, format!("free extent {start}+{len} overlaps")));
            }
            extents.insert(start, len);
        }
        let last = i + 1 == count;
        if last != (next == 0) {
            return Err(Error::corrupt(at.0, "free-map chain length disagrees with superblock"));
        }
        at = BlockNo(next);
    }
    Ok((extents, chain))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use lcfs_device::MemDevice;
    use quickcheck::quickcheck;

    quickcheck! {
        fn free_map_round_trips(raw: Vec<(u16, u8)>) -> bool {
            let mut extents = Extents::default();
            for (start, len) in raw {
                let (start, len) = (u64::from(start) * 300 + 10, u64::from(len) + 1);
                if !extents.overlaps(start, len) {
                    extents.insert(start, len);
                }
            }
            let dev = MemDevice::new(1 << 25);
            let n = blocks_needed(extents.len());
            let blocks: Vec<BlockNo> = (0..n).map(|i| BlockNo(2 + i)).collect();
            for (b, bytes) in blocks.iter().zip(encode(&extents, &blocks, Generation(4))) {
                dev.write(b.0, &bytes).unwrap();
            }
            load(&dev, blocks[0], n as u32, 1 << 25).ok() == Some((extents, blocks))
        }
    }

    #[test]
    fn a_chain_longer_than_recorded_is_corrupt() {
        let dev = MemDevice::new(100);
        let mut extents = Extents::default();
        extents.insert(50, 10);
        let blocks = [BlockNo(2), BlockNo(3)];
        for (b, bytes) in blocks.iter().zip(encode(&extents, &blocks, Generation(1))) {
            dev.write(b.0, &bytes).unwrap();
        }
        assert!(load(&dev, BlockNo(2), 1, 100).is_err());
        assert!(load(&dev, BlockNo(2), 2, 100).is_ok());
        assert!(load(&dev, BlockNo(2), 2, 55).is_err(), "extent past the device");
    }

    /// A chain block that kept the content of an earlier checkpoint (its write was lost or went
    /// elsewhere) is valid on its own; the superblock's generation catches it.
    #[test]
    fn a_stale_chain_block_is_corrupt() {
        let dev = MemDevice::new(100);
        let mut extents = Extents::default();
        extents.insert(50, 10);
        let blocks = [BlockNo(2), BlockNo(3)];
        for (b, bytes) in blocks.iter().zip(encode(&extents, &blocks, Generation(7))) {
            dev.write(b.0, &bytes).unwrap();
        }
        assert!(load_of_generation(&dev, BlockNo(2), 2, 100, Generation(7)).is_ok());
        let older = encode(&extents, &blocks, Generation(6));
        dev.write(3, &older[1]).unwrap();
        assert!(load(&dev, BlockNo(2), 2, 100).is_ok(), "valid on its own");
        let e = load_of_generation(&dev, BlockNo(2), 2, 100, Generation(7));
        assert!(matches!(e, Err(Error::Corrupt { block: 3, .. })), "{e:?}");
    }
}
