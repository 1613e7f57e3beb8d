//! The superblock: two copies, A at block 0 and B at block 1.
//!
//! A checkpoint writes its superblock, with a generation above every one issued before, to the
//! slot that does not hold the durable copy; mount takes the valid copy with the highest
//! generation. The durable copy is never overwritten before another one is durable, so no single
//! block (and no torn write) is a point of failure.
//!
//! Payload layout (after the common header, whose generation is the checkpoint generation and
//! whose owner is 0), little-endian:
//!
//! ```text
//! offset size field
//!      0    8 block_count      blocks of the device when formatted
//!      8    8 next_ino         next inode number to hand out
//!     16    8 next_layer       next layer id to hand out
//!     24    8 layer_table      root block of the system tree (layer records)
//!     32    8 free_map         first block of the free-map chain
//!     40    4 free_map_blocks  blocks in the free-map chain
//!     44    4 flags            bit 0: written by a clean unmount
//!     48    8 blocks_free      free blocks recorded by the free map (cross-check)
//!     56    8 created_sec      format time
//!     64   64 label            UTF-8, zero padded
//!    128    8 layer_table_gen  generation that wrote the layer table's root (its header's)
//!    136      reserved, zero, except:
//!  at the start of each 512-byte sector but the first (block offsets 512, 1024, ..., 3584):
//!           8 generation again
//! ```
//!
//! The sector stamps make every sector of a superblock depend on its generation, and no two
//! superblock writes share a generation (the engine never reuses one, and after a crash it
//! starts above any generation the other slot's header shows), so a torn write, which mixes
//! sectors of two writes in one slot, never passes the checksum: not even as the older write
//! whole, which a mix with an all-zero rest could otherwise give back.
//!
//! Invariants: `layer_table`, `free_map` lie inside the device and past the superblocks;
//! `blocks_free < block_count`; checked by `decode` before anything uses them.

use crate::error::{Error, Result};
use crate::format::cursor::{Reader, Writer};
use crate::format::header::{self, BlockKind, Header, BLOCK_SIZE};
use crate::tree::NodePtr;
use crate::types::{BlockNo, Generation, LayerId};

/// Blocks holding superblock copies (A and B).
pub const SUPERBLOCK_SLOTS: [BlockNo; 2] = [BlockNo(0), BlockNo(1)];
const SLOT_A: BlockNo = BlockNo(0);
const SLOT_B: BlockNo = BlockNo(1);
/// The first block the allocator may hand out.
pub const FIRST_DATA_BLOCK: u64 = 2;
/// Generations stay below this: one checkpoint a nanosecond would take 146 years to reach it,
/// so a superblock claiming more is damaged, and `generation + 1` never overflows.
pub const GENERATION_MAX: u64 = 1 << 62;

/// Longest label, in bytes.
pub const LABEL_MAX: usize = 64;
/// Smallest device lcfs formats: 1 MiB.
pub const MIN_BLOCKS: u64 = 256;
/// Flag: the checkpoint was written by a clean unmount.
pub const FLAG_CLEAN: u32 = 1;
/// The unit a device writes atomically; every sector of a superblock carries its generation.
const SECTOR_SIZE: usize = 512;

/// The decoded superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// The slot this copy lives in (the block number its header repeats).
    pub slot: BlockNo,
    pub generation: Generation,
    pub block_count: u64,
    pub next_ino: u64,
    pub next_layer: u64,
    /// The root of the system tree (block and the generation that wrote it).
    pub layer_table: NodePtr,
    pub free_map: BlockNo,
    pub free_map_blocks: u32,
    pub flags: u32,
    pub blocks_free: u64,
    pub created_sec: i64,
    pub label: String,
}

impl Superblock {
    /// The slot this copy lives in.
    pub fn slot(&self) -> BlockNo {
        self.slot
    }

    /// The slot this copy does not live in: where the next checkpoint writes.
    pub fn other_slot(&self) -> BlockNo {
        if self.slot == SLOT_A {
            SLOT_B
        } else {
            SLOT_A
        }
    }

    /// Encodes into one sealed block.
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.label.len() <= LABEL_MAX, "label checked at mkfs");
        let mut block = vec![0u8; BLOCK_SIZE];
        let mut w = Writer::new(header::payload_mut(&mut block));
        w.u64(self.block_count);
        w.u64(self.next_ino);
        w.u64(self.next_layer);
        w.u64(self.layer_table.block.0);
        w.u64(self.free_map.0);
        w.u32(self.free_map_blocks);
        w.u32(self.flags);
        w.u64(self.blocks_free);
        w.i64(self.created_sec);
        let mut label = [0u8; LABEL_MAX];
        if let Some(dst) = label.get_mut(..self.label.len()) {
            dst.copy_from_slice(self.label.as_bytes());
        }
        w.bytes(&label);
        w.u64(self.layer_table.generation.0);
        for sector in block.chunks_exact_mut(SECTOR_SIZE).skip(1) {
            if let Some(stamp) = sector.get_mut(..8) {
                stamp.copy_from_slice(&self.generation.0.to_le_bytes());
            }
        }
        let header = Header {
            kind: BlockKind::Superblock,
            block: self.slot(),
            generation: self.generation,
            owner: LayerId::SYSTEM,
        };
        header::seal(&mut block, &header);
        block
    }

    /// Decodes and validates the superblock read from `at`, for a device of `device_blocks`.
    pub fn decode(block: &[u8], at: BlockNo, device_blocks: u64) -> Result<Superblock> {
        let header = header::verify(block, at, BlockKind::Superblock)?;
        let mut r = Reader::new(header::payload(block), at.0);
        let mut sb = Superblock {
            slot: at,
            generation: header.generation,
            block_count: r.u64()?,
            next_ino: r.u64()?,
            next_layer: r.u64()?,
            layer_table: NodePtr { block: BlockNo(r.u64()?), generation: Generation(0) },
            free_map: BlockNo(r.u64()?),
            free_map_blocks: r.u32()?,
            flags: r.u32()?,
            blocks_free: r.u64()?,
            created_sec: r.i64()?,
            label: {
                let raw = r.bytes(LABEL_MAX)?;
                let len = raw.iter().position(|&b| b == 0).unwrap_or(LABEL_MAX);
                match std::str::from_utf8(raw.get(..len).unwrap_or(&[])) {
                    Ok(label) => label.to_owned(),
                    Err(_) => return Err(Error::corrupt(at.0, "the label is not UTF-8")),
                }
            },
        };
        sb.layer_table.generation = Generation(r.u64()?);
        for (index, sector) in block.chunks_exact(SECTOR_SIZE).enumerate().skip(1) {
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(sector.get(..8).unwrap_or(&[0; 8]));
            if u64::from_le_bytes(stamp) != sb.generation.0 {
                return Err(Error::corrupt(at.0, format!("sector {index} of the superblock is torn")));
            }
        }
        sb.validate(at, device_blocks)?;
        Ok(sb)
    }

    /// The generation the header of a raw superblock slot claims, checked or not: after a
    /// crash, the slot that was being written may hold a torn superblock whose first sector
    /// survived; a checkpoint writing that slot again must take a later generation.
    pub fn claimed_generation(block: &[u8]) -> Option<Generation> {
        let bytes: [u8; 8] = block.get(16..24)?.try_into().ok()?;
        Some(Generation(u64::from_le_bytes(bytes)))
    }

    fn validate(&self, at: BlockNo, device_blocks: u64) -> Result<()> {
        let bad = |what: String| Err(Error::corrupt(at.0, what));
        if self.block_count > device_blocks {
            return bad(format!(
                "image was formatted for {} blocks but the device has {device_blocks}",
                self.block_count
            ));
        }
        if self.block_count < MIN_BLOCKS {
            return bad(format!("block count {} is below the minimum", self.block_count));
        }
        let inside = |b: BlockNo| b.0 >= FIRST_DATA_BLOCK && b.0 < self.block_count;
        if !inside(self.layer_table.block) {
            let root = self.layer_table.block.0;
            return bad(format!("layer table root {root} outside the device"));
        }
        if self.generation.0 >= GENERATION_MAX {
            return bad(format!("generation {} is beyond any a checkpoint issues", self.generation.0));
        }
        if self.layer_table.generation > self.generation {
            return bad("layer table written by a later generation than the superblock".into());
        }
        if self.free_map_blocks > 0 && !inside(self.free_map) {
            return bad(format!("free map {} outside the device", self.free_map.0));
        }
        if self.blocks_free >= self.block_count || self.next_ino < 2 || self.next_layer < 1 {
            return bad("counters out of range".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use quickcheck::quickcheck;

    fn sample(generation: u64, next_ino: u64, label: String) -> Superblock {
        // Any generation a checkpoint can issue (beyond GENERATION_MAX is damage).
        let generation = generation % GENERATION_MAX;
        Superblock {
            slot: if generation.is_multiple_of(3) { SLOT_A } else { SLOT_B },
            generation: Generation(generation),
            block_count: 1 << 20,
            next_ino: next_ino.max(2),
            next_layer: 3,
            layer_table: NodePtr { block: BlockNo(10), generation: Generation(generation) },
            free_map: BlockNo(11),
            free_map_blocks: 1,
            flags: FLAG_CLEAN,
            blocks_free: 1000,
            created_sec: 1_700_000_000,
            label: label.chars().filter(|c| *c != '\0').take(16).collect(),
        }
    }

    #[test]
    fn a_generation_beyond_the_range_is_refused() {
        let mut sb = sample(1, 2, String::new());
        sb.generation = Generation(GENERATION_MAX);
        let err = Superblock::decode(&sb.encode(), sb.slot(), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("beyond any"), "{err}");
    }

    quickcheck! {
        fn superblock_round_trips(generation: u64, next_ino: u64, label: String) -> bool {
            let sb = sample(generation, next_ino, label);
            let block = sb.encode();
            Superblock::decode(&block, sb.slot(), 1 << 20).ok() == Some(sb)
        }
    }

    #[test]
    fn a_superblock_for_a_bigger_device_is_refused() {
        let sb = sample(1, 5, "x".into());
        let block = sb.encode();
        assert!(Superblock::decode(&block, sb.slot(), 1 << 10).is_err());
        assert!(Superblock::decode(&block, BlockNo(0), 1 << 20).is_err(), "wrong slot");
    }

    /// Found by the exhaustive crash test: with a superblock that fits its first sector and
    /// zeros after, a torn write over a torn earlier one could give the earlier one back whole.
    /// Every sector now carries the generation, so no mix of two writes decodes.
    #[test]
    fn no_mix_of_the_sectors_of_two_superblocks_decodes() {
        let old = sample(5, 9, "a".into());
        let new = Superblock { generation: Generation(6), next_ino: 10, ..old.clone() };
        let (a, b) = (old.encode(), new.encode());
        let sectors = BLOCK_SIZE / SECTOR_SIZE;
        for mask in 1..(1u32 << sectors) - 1 {
            let mut mix = a.clone();
            for s in (0..sectors).filter(|s| mask & (1 << s) != 0) {
                mix[s * SECTOR_SIZE..(s + 1) * SECTOR_SIZE]
                    .copy_from_slice(&b[s * SECTOR_SIZE..(s + 1) * SECTOR_SIZE]);
            }
            assert!(Superblock::decode(&mix, old.slot(), 1 << 20).is_err(), "mask {mask:#x}");
        }
        let mut first_sector_only = vec![0u8; BLOCK_SIZE];
        first_sector_only[..SECTOR_SIZE].copy_from_slice(&a[..SECTOR_SIZE]);
        assert!(Superblock::decode(&first_sector_only, old.slot(), 1 << 20).is_err());
        assert_eq!(Superblock::claimed_generation(&first_sector_only), Some(Generation(5)));
    }
}
