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
