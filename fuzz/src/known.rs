//! Inputs that hit findings still open, each pinned by an `#[ignore]`d test in
//! `impl/tests/fuzz_regressions.rs`: the targets skip what would only find them again, so a
//! run goes on looking for new ones. Each guard goes away with its fix.

use lcfs::format::header::{BLOCK_SIZE, MAGIC};
use lcfs::BlockDevice;

/// Where the label lies in a superblock block (payload offset 64, 64 bytes).
const LABEL: std::ops::Range<usize> = 112..176;

/// `a_label_that_is_not_utf8_is_refused_or_kept_not_a_panic`: the superblock `block` carries
/// a label that is not UTF-8 (decode keeps it lossily, longer than 64 bytes, and the next
/// encode asserts).
pub fn label_not_utf8(block: &[u8]) -> bool {
    let Some(raw) = block.get(LABEL) else { return false };
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    block.get(..4) == Some(&MAGIC.to_le_bytes()[..])
        && std::str::from_utf8(raw.get(..len).unwrap_or(&[])).is_err()
}

/// The same, for either superblock slot of `dev`.
pub fn image_label_not_utf8(dev: &dyn BlockDevice) -> bool {
    let mut buf = vec![0u8; BLOCK_SIZE];
    [0u64, 1].into_iter().any(|slot| dev.read(slot, &mut buf).is_ok() && label_not_utf8(&buf))
}

/// A finding of the `image` target, not pinned by a test because the superblock layout is
/// changing under it: a superblock generation at `u64::MAX` mounts, and the next checkpoint's
/// generation + 1 overflows (a panic with overflow checks; generation 0 without, which loses
/// to the old superblock at the next mount). True when either slot of `dev` is near the end.
pub fn generation_near_max(dev: &dyn BlockDevice) -> bool {
    let mut buf = vec![0u8; BLOCK_SIZE];
    [0u64, 1].into_iter().any(|slot| {
        let generation = dev.read(slot, &mut buf).ok().and_then(|()| buf.get(16..24));
        let generation = generation.and_then(|g| <[u8; 8]>::try_from(g).ok());
        generation.is_some_and(|g| u64::from_le_bytes(g) > u64::MAX - (1 << 32))
    })
}

/// `a_block_both_free_and_used_is_an_error_not_a_panic`: fsck found a block both free and
/// used; a write that copies the node in it releases the block and `Space::release` asserts.
pub fn free_and_used(report: &lcfs::fsck::Report) -> bool {
    report.kinds().contains(&lcfs::fsck::IssueKind::BlockFreeAndUsed)
}
