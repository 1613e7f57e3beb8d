//! Applying a crash policy: from the durable image and the pending writes to a post-crash image.
//!
//! Two steps, so that the report and the image cannot disagree:
//! 1. `plan` decides, per block with pending writes, the source of each sector (`BlockFate`);
//! 2. `materialize` writes each block of the image from the sources the plan chose.
//!
//! Invariants:
//! - blocks without pending writes are never touched;
//! - a sector's source is the durable value, one of the block's own pending writes, or (only
//!   under `Corrupt`) garbage: a crash never invents a value from another block;
//! - random draws happen in ascending block order, then sector order, so a seed fixes the result.

use std::collections::BTreeMap;

use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;

use crate::report::{BlockFate, CrashPolicy, CrashReport, SectorSource};
use crate::state::{Image, PendingWrite};
use crate::{SECTORS_PER_BLOCK, SECTOR_SIZE};

/// The pending writes of each block, in issue order, blocks in ascending order.
type Groups<'a> = BTreeMap<u64, Vec<&'a PendingWrite>>;

/// Applies `policy` to `log` (the pending writes, in issue order) over `image`.
pub(crate) fn apply(
    policy: CrashPolicy,
    image: &mut Image,
    log: &[PendingWrite],
    rng: &mut ChaCha8Rng,
) -> CrashReport {
    let mut groups: Groups<'_> = BTreeMap::new();
    for write in log {
        groups.entry(write.block).or_default().push(write);
    }
    let (policy, blocks) = plan(policy, log, &groups, rng);
    materialize(image, &blocks, &groups, rng);
    CrashReport {
        policy,
        pending_writes: log.len(),
        blocks,
    }
}

/// Chooses the fate of every block with pending writes; returns the policy as applied.
fn plan(
    policy: CrashPolicy,
    log: &[PendingWrite],
    groups: &Groups<'_>,
    rng: &mut ChaCha8Rng,
) -> (CrashPolicy, Vec<BlockFate>) {
    match policy {
        CrashPolicy::DropAll => {
            let fates = groups
                .keys()
                .map(|&b| BlockFate::whole(b, SectorSource::Durable));
            (policy, fates.collect())
        }
        CrashPolicy::Prefix(k) => {
            let kept = k.min(log.len());
            (CrashPolicy::Prefix(kept), prefix(log, kept, groups))
        }
        CrashPolicy::Subset => (policy, subset(groups, rng)),
        CrashPolicy::Torn => {
            let mut fates = subset(groups, rng);
            let writes: Vec<&Vec<&PendingWrite>> = groups.values().collect();
            for index in choose_some(fates.len(), rng) {
                if let (Some(fate), Some(writes)) = (fates.get_mut(index), writes.get(index)) {
                    tear(fate, writes, rng);
                }
            }
            (policy, fates)
        }
        CrashPolicy::Corrupt => {
            let mut fates = subset(groups, rng);
            for index in choose_some(fates.len(), rng) {
                if let Some(fate) = fates.get_mut(index) {
                    for sector in choose_some(SECTORS_PER_BLOCK, rng) {
                        if let Some(source) = fate.sectors.get_mut(sector) {
                            *source = SectorSource::Garbage;
                        }
                    }
                }
            }
            (policy, fates)
        }
    }
}

/// The fates under `Prefix(kept)`: each block holds the last of its writes among the first `kept`.
fn prefix(log: &[PendingWrite], kept: usize, groups: &Groups<'_>) -> Vec<BlockFate> {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for write in log.iter().take(kept) {
        last.insert(write.block, write.number);
    }
    groups
        .keys()
        .map(|&block| {
            let source = last
                .get(&block)
                .map_or(SectorSource::Durable, |&n| SectorSource::Write(n));
            BlockFate::whole(block, source)
        })
        .collect()
}

/// The fates under `Subset`: each block holds one of its candidates, drawn uniformly.
fn subset(groups: &Groups<'_>, rng: &mut ChaCha8Rng) -> Vec<BlockFate> {
    groups
        .iter()
        .map(|(&block, writes)| BlockFate::whole(block, pick(writes, rng)))
        .collect()
}

/// Tears `fate`: each sector from any candidate of its block, with at least two sources.
fn tear(fate: &mut BlockFate, writes: &[&PendingWrite], rng: &mut ChaCha8Rng) {
    for sector in fate.sectors.iter_mut() {
        *sector = pick(writes, rng);
    }
    if fate.single_source().is_none() {
        return;
    }
    // Every sector drew the same source: give one sector a different one (there are at least
    // two candidates, the durable value and one pending write).
    let sector = rng.random_range(0..SECTORS_PER_BLOCK);
    if let Some(source) = fate.sectors.get_mut(sector) {
        let others: Vec<SectorSource> = candidates(writes).filter(|c| c != source).collect();
        if !others.is_empty() {
            if let Some(&other) = others.get(rng.random_range(0..others.len())) {
                *source = other;
            }
        }
    }
}

/// The values a block may hold after a crash: durable, then its pending writes in issue order.
fn candidates<'a>(writes: &'a [&'a PendingWrite]) -> impl Iterator<Item = SectorSource> + 'a {
    std::iter::once(SectorSource::Durable)
        .chain(writes.iter().map(|w| SectorSource::Write(w.number)))
}

/// One candidate of a block, drawn uniformly.
fn pick(writes: &[&PendingWrite], rng: &mut ChaCha8Rng) -> SectorSource {
    let index = rng.random_range(0..=writes.len());
    match index.checked_sub(1).and_then(|i| writes.get(i)) {
        Some(write) => SectorSource::Write(write.number),
        None => SectorSource::Durable,
    }
}

/// A non-empty random subset of `0..count` (each index with probability 1/2), ascending; empty
/// only when `count` is zero.
fn choose_some(count: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let mut chosen: Vec<usize> = (0..count).filter(|_| rng.random_bool(0.5)).collect();
    if chosen.is_empty() {
        chosen.push(rng.random_range(0..count));
    }
    chosen
}

/// Writes every changed block of `image` from the sources in `fates`.
fn materialize(image: &mut Image, fates: &[BlockFate], groups: &Groups<'_>, rng: &mut ChaCha8Rng) {
    for fate in fates.iter().filter(|f| !f.is_unchanged()) {
        let writes = groups.get(&fate.block).map_or(&[][..], |w| &w[..]);
        let durable = image.get(&fate.block).cloned();
        let mut block = vec![0u8; lcfs_device::BLOCK_SIZE].into_boxed_slice();
        for (index, (sector, source)) in block
            .chunks_exact_mut(SECTOR_SIZE)
            .zip(fate.sectors.iter())
            .enumerate()
        {
            let range = index * SECTOR_SIZE..(index + 1) * SECTOR_SIZE;
            match source {
                SectorSource::Durable => {
                    if let Some(bytes) = durable.as_deref().and_then(|d| d.get(range)) {
                        sector.copy_from_slice(bytes);
                    }
                }
                SectorSource::Write(number) => {
                    let write = writes.iter().find(|w| w.number == *number);
                    if let Some(bytes) = write.and_then(|w| w.data.get(range)) {
                        sector.copy_from_slice(bytes);
                    }
                }
                SectorSource::Garbage => rng.fill_bytes(sector),
            }
        }
        image.insert(fate.block, block);
    }
}
