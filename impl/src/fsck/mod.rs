//! fsck: walks every layer and the free map of an unmounted image and reports typed issues.
//!
//! What it checks (`blocks.rs`, `namespace.rs`):
//! - every metadata block it reaches decodes; a bad one is classified by its raw bytes: bad
//!   checksum, misdirected (its header names another block), stale (a valid block of another
//!   generation than its parent's pointer expects), or undecodable;
//! - every data block matches the checksum its extent records;
//! - every block is exactly one of: superblock, free-map block, free, or used by layers (a tree
//!   node, or a data extent); a block both free and used, used by two different things, or in
//!   none of these (leaked) is an issue;
//! - ownership: every node and extent reachable from a layer is owned by that layer or one of
//!   its ancestors;
//! - the layer table: parents exist and are committed, child counts agree;
//! - each layer's namespace: nlink equals the entries naming the inode (directories: 2 plus
//!   subdirectories), no entry names a missing inode or gives it another file type, and the
//!   back-references (inode references) name exactly the directory entries;
//! - counters: the superblock's free count, and the inode and layer counters are past every
//!   number in use (else a number could be handed out twice).
//!
//! Invariants: fsck never writes; every walk uses explicit stacks and bounded loops.

mod blocks;
mod namespace;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lcfs_device::BlockDevice;

use crate::error::{Error, Result};
use crate::fs::{Fs, MountOptions};
use crate::types::{Ino, LayerId};

/// How bad an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Space is wasted or a counter is off; nothing is lost.
    Warning,
    /// The image is inconsistent: data may be wrong or lost.
    Error,
    /// The image cannot be used.
    Fatal,
}

/// What kind of problem fsck found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueKind {
    /// The image does not mount (no valid superblock, or a broken free map).
    Unmountable,
    /// A metadata block fails its checksum.
    BadChecksum,
    /// A metadata block's header names another block: a misdirected write.
    MisdirectedBlock,
    /// A metadata block is valid but of another generation than the pointer to it expects: the
    /// write meant for it was lost or went elsewhere, and it still holds an older node.
    StaleBlock,
    /// A metadata block has a valid checksum but does not decode or breaks tree order.
    BadBlock,
    /// A block is in the free map and used.
    BlockFreeAndUsed,
    /// A block is used by two different things.
    BlockUsedTwice,
    /// A block is neither free nor used.
    BlockLeaked,
    /// A node or extent reachable from a layer is owned by a layer that is not it or an ancestor.
    OwnershipContradiction,
    /// Layer records contradict each other (missing parent, writable parent, child counts).
    LayerTree,
    /// An inode's nlink differs from the number of entries naming it.
    NlinkMismatch,
    /// A directory entry names an inode the layer does not have.
    DanglingEntry,
    /// A directory entry's file type is not its inode's.
    EntryKindMismatch,
    /// A directory entry without its back-reference (inode reference), or a back-reference
    /// without the entry it names: the paths `changes` finds would be wrong.
    BackrefMismatch,
    /// A counter of the superblock disagrees with what the walk found.
    CountersDisagree,
}

/// One problem, with the blocks and inodes involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub kind: IssueKind,
    pub blocks: Vec<u64>,
    pub inodes: Vec<(LayerId, Ino)>,
    pub detail: String,
}

/// What fsck found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub issues: Vec<Issue>,
    pub layers: u64,
    pub node_blocks: u64,
    pub data_blocks: u64,
    pub free_blocks: u64,
    pub inodes: u64,
}

impl Report {
    /// No issue at all.
    pub fn is_clean(&self) -> bool {
        self.issues.is_empty()
    }

    /// The kinds of the issues found, in order, without repeats.
    pub fn kinds(&self) -> Vec<IssueKind> {
        let mut kinds: Vec<IssueKind> = Vec::new();
        for issue in &self.issues {
            if !kinds.contains(&issue.kind) {
                kinds.push(issue.kind);
            }
        }
        kinds
    }

    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.issues.iter().map(|i| i.severity).max()
    }

    pub(crate) fn push(&mut self, severity: Severity, kind: IssueKind, blocks: Vec<u64>, detail: String) {
        self.issues.push(Issue { severity, kind, blocks, inodes: Vec::new(), detail });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fsck: {} layers, {} inodes, {} node blocks, {} data blocks, {} free blocks: ",
            self.layers, self.inodes, self.node_blocks, self.data_blocks, self.free_blocks
        )?;
        if self.is_clean() {
            return write!(f, "clean");
        }
        write!(f, "{} issues", self.issues.len())?;
        for issue in self.issues.iter().take(20) {
            write!(f, "\n  {:?} {:?}: {}", issue.severity, issue.kind, issue.detail)?;
        }
        Ok(())
    }
}

/// Checks the image on `dev` (which must not be mounted elsewhere). Never writes.
pub fn check(dev: Arc<dyn BlockDevice>) -> Result<Report> {
    check_reporting(dev, &|_| {})
}

/// How far a check has come, for a progress bar (`check_with_progress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Blocks read from the device so far (a block read again after the cache dropped it
    /// counts again, so this may pass `blocks_used` a little before the end).
    pub blocks_read: u64,
    /// Blocks in use on the image, what the walk reads at least once; 0 until known.
    pub blocks_used: u64,
    /// The check is over (the last report).
    pub done: bool,
}

/// What `check_with_progress` calls with each report.
pub type ProgressFn = dyn Fn(Progress) + Send + Sync;

/// Blocks read between two reports.
const PROGRESS_EVERY_BLOCKS: u64 = 256;

/// `check`, calling `progress` every few hundred blocks read and once at the end.
pub fn check_with_progress(
    dev: Arc<dyn BlockDevice>,
    progress: Arc<ProgressFn>,
) -> Result<Report> {
    let counting = Arc::new(Counting {
        dev,
        read: AtomicU64::new(0),
        used: AtomicU64::new(0),
        progress,
    });
    let dev: Arc<dyn BlockDevice> = counting.clone();
    let report = check_reporting(dev, &|used| counting.used.store(used, Ordering::Relaxed))?;
    counting.report(true);
    Ok(report)
}

/// A device that counts the blocks read through it and reports progress.
struct Counting {
    dev: Arc<dyn BlockDevice>,
    read: AtomicU64,
    used: AtomicU64,
    progress: Arc<ProgressFn>,
}

impl Counting {
    fn report(&self, done: bool) {
        (self.progress)(Progress {
            blocks_read: self.read.load(Ordering::Relaxed),
            blocks_used: self.used.load(Ordering::Relaxed),
            done,
        });
    }
}

impl BlockDevice for Counting {
    fn block_size(&self) -> usize {
        self.dev.block_size()
    }

    fn block_count(&self) -> u64 {
        self.dev.block_count()
    }

    fn read(&self, block: u64, buf: &mut [u8]) -> lcfs_device::DeviceResult<()> {
        self.dev.read(block, buf)?;
        let before = self.read.fetch_add(1, Ordering::Relaxed);
        if (before + 1).is_multiple_of(PROGRESS_EVERY_BLOCKS) {
            self.report(false);
        }
        Ok(())
    }

    fn write(&self, block: u64, buf: &[u8]) -> lcfs_device::DeviceResult<()> {
        self.dev.write(block, buf)
    }

    fn flush(&self) -> lcfs_device::DeviceResult<()> {
        self.dev.flush()
    }
}

/// `check`; `mounted` learns the number of blocks in use once the image is mounted.
fn check_reporting(dev: Arc<dyn BlockDevice>, mounted: &dyn Fn(u64)) -> Result<Report> {
    let mut report = Report::default();
    let fs = match Fs::mount_checked(dev, &MountOptions::default(), false) {
        Ok(fs) => fs,
        Err(e @ (Error::Corrupt { .. } | Error::NotLcfs(_))) => {
            let block = match &e {
                Error::Corrupt { block, .. } => vec![*block],
                _ => Vec::new(),
            };
            report.push(Severity::Fatal, IssueKind::Unmountable, block, e.to_string());
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let statfs = fs.statfs();
    mounted(statfs.blocks_total.saturating_sub(statfs.blocks_free));
    let mut state = fs.lock()?;
    blocks::walk(&mut state, &mut report)?;
    Ok(report)
}
