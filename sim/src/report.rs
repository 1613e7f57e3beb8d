//! Crash policies and the report of what a crash kept.
//!
//! Invariants of a `CrashReport`:
//! - `blocks` has one `BlockFate` per block that had pending writes, in ascending block order;
//! - a sector whose source is `Write(n)` holds exactly the bytes write number `n` gave it;
//!   `Durable` means the bytes the block held at the last flush (zeros if never written);
//!   `Garbage` means random bytes from the seed;
//! - under `DropAll`, `Prefix` and `Subset`, every block's sectors share one source (no tearing).

use std::fmt;

use crate::SECTORS_PER_BLOCK;

/// What survives of the writes issued since the last flush when the power fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashPolicy {
    /// Nothing survives.
    DropAll,
    /// The first `k` pending writes survive, in issue order (all of them if there are fewer).
    Prefix(usize),
    /// Per block, any one of its pending values or its durable value survives.
    Subset,
    /// `Subset`, and at least one pending block is torn: each of its sectors comes from any of its
    /// pending values or its durable value, with at least two different sources.
    Torn,
    /// `Subset`, and some sectors of at least one pending block hold garbage.
    Corrupt,
}

impl CrashPolicy {
    /// `Prefix` keeping every pending write: the state "the power failed right here, after the
    /// media wrote everything it was given".
    pub const KEEP_ALL: CrashPolicy = CrashPolicy::Prefix(usize::MAX);
}

impl fmt::Display for CrashPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashPolicy::DropAll => write!(f, "DropAll"),
            CrashPolicy::Prefix(k) if *k == usize::MAX => write!(f, "Prefix(all)"),
            CrashPolicy::Prefix(k) => write!(f, "Prefix({k})"),
            CrashPolicy::Subset => write!(f, "Subset"),
            CrashPolicy::Torn => write!(f, "Torn"),
            CrashPolicy::Corrupt => write!(f, "Corrupt"),
        }
    }
}

/// Where the bytes of one sector came from after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectorSource {
    /// The value the block held at the last flush.
    Durable,
    /// The given write (numbered from 0 over every write the device was issued).
    Write(u64),
    /// Random bytes (the `Corrupt` policy).
    Garbage,
}

/// What one block with pending writes holds after a crash, sector by sector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockFate {
    /// The block number.
    pub block: u64,
    /// The source of each 512-byte sector, in order.
    pub sectors: [SectorSource; SECTORS_PER_BLOCK],
}

impl BlockFate {
    /// A block whose every sector comes from `source`.
    pub fn whole(block: u64, source: SectorSource) -> Self {
        Self {
            block,
            sectors: [source; SECTORS_PER_BLOCK],
        }
    }

    /// The one source of every sector, or `None` if the block mixes sources.
    pub fn single_source(&self) -> Option<SectorSource> {
        let (first, rest) = self.sectors.split_first()?;
        rest.iter().all(|s| s == first).then_some(*first)
    }

    /// Whether sectors of this block come from different writes (or the durable value).
    pub fn is_torn(&self) -> bool {
        self.single_source().is_none() && !self.is_corrupt()
    }

    /// Whether some sector of this block holds garbage.
    pub fn is_corrupt(&self) -> bool {
        self.sectors.contains(&SectorSource::Garbage)
    }

    /// Whether the block kept its durable value entirely.
    pub fn is_unchanged(&self) -> bool {
        self.single_source() == Some(SectorSource::Durable)
    }
}

/// What a crash kept of the pending writes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrashReport {
    /// The policy applied (a `Prefix` is clamped to the number of pending writes).
    pub policy: CrashPolicy,
    /// The number of writes pending (issued since the last flush) at the crash.
    pub pending_writes: usize,
    /// One entry per block that had pending writes, in ascending block order.
    pub blocks: Vec<BlockFate>,
}

impl CrashReport {
    /// The number of blocks that kept their durable value entirely.
    pub fn unchanged_blocks(&self) -> usize {
        self.blocks.iter().filter(|b| b.is_unchanged()).count()
    }

    /// The number of blocks mixing sectors of different values (without garbage).
    pub fn torn_blocks(&self) -> usize {
        self.blocks.iter().filter(|b| b.is_torn()).count()
    }

    /// The number of blocks with garbage in some sector.
    pub fn corrupt_blocks(&self) -> usize {
        self.blocks.iter().filter(|b| b.is_corrupt()).count()
    }

    /// The fate of `block`, if it had pending writes.
    pub fn fate(&self, block: u64) -> Option<&BlockFate> {
        self.blocks
            .binary_search_by_key(&block, |f| f.block)
            .ok()
            .and_then(|i| self.blocks.get(i))
    }
}

impl fmt::Display for CrashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crash {}: {} pending writes over {} blocks; {} unchanged, {} torn, {} corrupt",
            self.policy,
            self.pending_writes,
            self.blocks.len(),
            self.unchanged_blocks(),
            self.torn_blocks(),
            self.corrupt_blocks(),
        )
    }
}
