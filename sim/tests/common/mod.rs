//! Helpers shared by the simulator's tests: self-describing block payloads and random workloads.
//!
//! Every block a test writes is a `payload(tag)`: each 512-byte sector carries the tag, its own
//! sector index, and a filler derived from the tag. So a sector read back after a crash says which
//! write it came from (`sector_tag`), and garbage is recognisable because it says nothing.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::collections::BTreeMap;

use lcfs_device::{BlockDevice, DeviceResult, BLOCK_SIZE};
use lcfs_sim::{SimDevice, SECTORS_PER_BLOCK, SECTOR_SIZE};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One block whose every sector names `tag` and its own index.
pub fn payload(tag: u64) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK_SIZE];
    for (index, sector) in block.chunks_exact_mut(SECTOR_SIZE).enumerate() {
        sector.fill(filler(tag));
        sector[..8].copy_from_slice(&tag.to_le_bytes());
        sector[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    }
    block
}

fn filler(tag: u64) -> u8 {
    (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 | 1
}

/// The tag of each sector of `block`, `None` for a sector that is not part of any payload
/// (garbage, or zeros).
pub fn sector_tags(block: &[u8]) -> Vec<Option<u64>> {
    block
        .chunks_exact(SECTOR_SIZE)
        .enumerate()
        .map(|(index, sector)| {
            let tag = u64::from_le_bytes(sector[..8].try_into().expect("8 bytes"));
            let own_index = u64::from_le_bytes(sector[8..16].try_into().expect("8 bytes"));
            let filled = sector[16..].iter().all(|&b| b == filler(tag));
            (own_index == index as u64 && filled).then_some(tag)
        })
        .collect()
}

/// Reads `block` through the device.
pub fn read(dev: &SimDevice, block: u64) -> DeviceResult<Vec<u8>> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    dev.read(block, &mut buf)?;
    Ok(buf)
}

/// Reads the durable value of `block`.
pub fn durable(dev: &SimDevice, block: u64) -> DeviceResult<Vec<u8>> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    dev.read_durable(block, &mut buf)?;
    Ok(buf)
}

/// What a random workload did: per block, the durable tag and the pending tags in issue order;
/// and the pending writes as `(block, tag)` in issue order. Tags are write numbers.
#[derive(Debug, Default)]
pub struct Workload {
    pub durable: BTreeMap<u64, u64>,
    pub pending_by_block: BTreeMap<u64, Vec<u64>>,
    pub pending: Vec<(u64, u64)>,
}

impl Workload {
    /// Every tag block `block` may legally hold after a crash (durable first).
    pub fn candidates(&self, block: u64) -> Vec<u64> {
        let mut tags: Vec<u64> = self.durable.get(&block).copied().into_iter().collect();
        tags.extend(
            self.pending_by_block
                .get(&block)
                .into_iter()
                .flatten()
                .copied(),
        );
        tags
    }
}

/// On a fresh device of `blocks` blocks: writes every block and flushes (durable tags), then
/// issues `writes` unflushed writes to random blocks. Tags are the write numbers the device gives.
pub fn random_workload(
    dev: &SimDevice,
    seed: u64,
    blocks: u64,
    writes: usize,
) -> DeviceResult<Workload> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
    let mut workload = Workload::default();
    for block in 0..blocks {
        let tag = dev.counters().writes;
        dev.write(block, &payload(tag))?;
        workload.durable.insert(block, tag);
    }
    dev.flush()?;
    for _ in 0..writes {
        let block = rng.random_range(0..blocks);
        let tag = dev.counters().writes;
        dev.write(block, &payload(tag))?;
        workload
            .pending_by_block
            .entry(block)
            .or_default()
            .push(tag);
        workload.pending.push((block, tag));
    }
    Ok(workload)
}

/// The sector tags of every block `0..blocks` of `dev`'s durable image.
pub fn durable_tags(dev: &SimDevice, blocks: u64) -> DeviceResult<Vec<Vec<Option<u64>>>> {
    (0..blocks)
        .map(|b| durable(dev, b).map(|d| sector_tags(&d)))
        .collect()
}

/// Asserts that every block of `tags` holds whole values.
pub fn assert_no_tearing(tags: &[Vec<Option<u64>>], seed: u64) {
    for (block, sectors) in tags.iter().enumerate() {
        let first = sectors[0];
        assert!(
            first.is_some(),
            "block {block} lost its payload (seed {seed})"
        );
        assert!(
            sectors.iter().all(|s| *s == first),
            "block {block} is torn: {sectors:?} (seed {seed})"
        );
        assert_eq!(sectors.len(), SECTORS_PER_BLOCK);
    }
}
