//! fsck: walks every layer and the free map of an unmounted image and reports typed issues.
//!
//! What it checks:
//! - every metadata block it reaches decodes (header, checksum, own block number);
//! - every block is exactly one of: superblock, free-map chain, free, or owned by one layer
//!   (a tree node or a data extent); a block both free and used, used twice, or in none of
//!   these (leaked) is an issue;
//! - the layer table: parents exist and are committed, `children` counts agree;
//! - each layer's namespace (`namespace.rs`): nlink equals the entries naming the inode,
//!   directory nlink is 2 plus subdirectories, no entry names a missing inode;
//! - the superblock's counters agree with what the walk found.
//!
//! Invariants: fsck never writes; every loop over on-disk data is bounded by the device size.

mod namespace;

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use lcfs_device::BlockDevice;

use crate::alloc::Extents;
use crate::error::{Error, Result};
use crate::fs::{Fs, MountOptions};
use crate::layer::{LayerRecord, RECORD_PREFIX};
use crate::ns;
use crate::tree::{Owned, Tree};
use crate::types::{BlockNo, Ino, LayerId, LayerState};

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
    /// The image does not mount (bad superblocks or free map).
    Unmountable,
    /// A metadata block fails its checksum, header or decoding.
    BadBlock,
    /// A block is in the free map and used.
    BlockFreeAndUsed,
    /// A block is used twice (by two owners or twice by one).
    BlockUsedTwice,
    /// A block is neither free nor used.
    BlockLeaked,
    /// Layer records contradict each other (missing parent, writable parent, child counts).
    LayerTree,
    /// An inode's nlink differs from the number of entries naming it.
    NlinkMismatch,
    /// A directory entry names an inode the layer does not have.
    DanglingEntry,
    /// The superblock's counters disagree with the walk.
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

    /// The issues of `kind`.
    pub fn of_kind(&self, kind: IssueKind) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(move |i| i.kind == kind)
    }

    fn push(&mut self, severity: Severity, kind: IssueKind, blocks: Vec<u64>, detail: String) {
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

/// Checks the image on `dev` (which must not be mounted elsewhere).
pub fn check(dev: Arc<dyn BlockDevice>) -> Result<Report> {
    let mut report = Report::default();
    let fs = match Fs::mount(dev, &MountOptions::default()) {
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
    fs.fsck_walk(&mut report)?;
    Ok(report)
}

/// Blocks seen so far, and by whom.
struct Usage {
    used: Extents,
    owner_of: HashMap<u64, LayerId>,
}

impl Usage {
    fn mark(&mut self, report: &mut Report, start: BlockNo, len: u64, owner: LayerId, what: &str) {
        if self.used.overlaps(start.0, len) {
            let first = self.owner_of.get(&start.0).map_or(0, |l| l.0);
            report.push(
                Severity::Error,
                IssueKind::BlockUsedTwice,
                vec![start.0],
                format!("{what} {}+{len} of layer {} is also used (by layer {first})", start.0, owner.0),
            );
            return;
        }
        self.used.insert(start.0, len);
        self.owner_of.insert(start.0, owner);
    }
}

impl Fs {
    fn fsck_walk(&self, report: &mut Report) -> Result<()> {
        let mut state = self.lock()?;
        let state = &mut *state;
        let mut usage = Usage { used: Extents::default(), owner_of: HashMap::new() };
        for slot in [0u64, 1] {
            usage.mark(report, BlockNo(slot), 1, LayerId::SYSTEM, "superblock");
        }
        for &block in &state.free_map_chain {
            usage.mark(report, block, 1, LayerId::SYSTEM, "free-map block");
        }
        let mut system_nodes = Vec::new();
        walk_owned(&state.system, &state.store, LayerId::SYSTEM, report, &mut |o| {
            if let Owned::Node(b) = o {
                system_nodes.push(b);
            }
        })?;
        for block in system_nodes {
            usage.mark(report, block, 1, LayerId::SYSTEM, "layer-table node");
            report.node_blocks += 1;
        }
        let records = layer_records(state, report)?;
        check_layer_tree(&records, report);
        for rec in records.values() {
            report.layers += 1;
            let tree = Tree::from_root(rec.root);
            let mut owned: Vec<(BlockNo, u64, bool)> = Vec::new();
            walk_owned(&tree, &state.store, rec.id, report, &mut |o| match o {
                Owned::Node(b) => owned.push((b, 1, true)),
                Owned::Item { key, value } => {
                    if let Some((b, n)) = ns::owned_extent(key, value, rec.id) {
                        owned.push((b, n, false));
                    }
                }
            })?;
            for (block, len, node) in owned {
                let what = if node { "tree node" } else { "data extent" };
                usage.mark(report, block, len, rec.id, what);
                if node {
                    report.node_blocks += 1;
                } else {
                    report.data_blocks += len;
                }
            }
            report.inodes += namespace::check_layer(&tree, &state.store, rec.id, report)?;
        }
        check_space(state, &usage, report);
        Ok(())
    }
}

/// Runs `Tree::visit_owned`, turning a corrupt block into a reported issue.
fn walk_owned(
    tree: &Tree,
    store: &crate::store::Store,
    owner: LayerId,
    report: &mut Report,
    visit: &mut dyn FnMut(Owned<'_>),
) -> Result<()> {
    let out = tree.visit_owned(store, owner, &mut |o| {
        visit(o);
        Ok(())
    });
    match out {
        Err(Error::Corrupt { block, what }) => {
            report.push(Severity::Error, IssueKind::BadBlock, vec![block], what);
            Ok(())
        }
        other => other,
    }
}

fn layer_records(
    state: &crate::fs::State,
    report: &mut Report,
) -> Result<std::collections::BTreeMap<LayerId, LayerRecord>> {
    let mut out = std::collections::BTreeMap::new();
    let lo = [RECORD_PREFIX];
    let hi = [RECORD_PREFIX + 1];
    let mut after: Option<Vec<u8>> = None;
    let limit = state.sb.block_count;
    while (out.len() as u64) < limit {
        let start = after.as_deref().map_or(Bound::Included(&lo[..]), Bound::Excluded);
        let batch = state.system.range(&state.store, start, Bound::Excluded(&hi[..]), 256)?;
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        for (_, value) in batch {
            match LayerRecord::decode(&value, state.sb.layer_table.0) {
                Ok(rec) => {
                    out.insert(rec.id, rec);
                }
                Err(e) => report.push(Severity::Error, IssueKind::BadBlock, vec![], e.to_string()),
            }
        }
    }
    Ok(out)
}

fn check_layer_tree(records: &std::collections::BTreeMap<LayerId, LayerRecord>, report: &mut Report) {
    let mut children: HashMap<LayerId, u32> = HashMap::new();
    for rec in records.values() {
        let Some(pid) = rec.parent else { continue };
        *children.entry(pid).or_default() += 1;
        match records.get(&pid) {
            None => report.push(
                Severity::Error,
                IssueKind::LayerTree,
                vec![],
                format!("layer '{}' names a missing parent {}", rec.name, pid.0),
            ),
            Some(p) if p.state != LayerState::Committed => report.push(
                Severity::Error,
                IssueKind::LayerTree,
                vec![],
                format!("layer '{}' has a writable parent '{}'", rec.name, p.name),
            ),
            Some(_) => {}
        }
    }
    for rec in records.values() {
        let found = children.get(&rec.id).copied().unwrap_or(0);
        if found != rec.children {
            report.push(
                Severity::Warning,
                IssueKind::LayerTree,
                vec![],
                format!("layer '{}' records {} children, {found} found", rec.name, rec.children),
            );
        }
    }
}

fn check_space(state: &crate::fs::State, usage: &Usage, report: &mut Report) {
    let free = state.space.free_after_checkpoint();
    report.free_blocks = free.blocks();
    for (start, len) in free.iter() {
        if usage.used.overlaps(start, len) {
            report.push(
                Severity::Error,
                IssueKind::BlockFreeAndUsed,
                vec![start],
                format!("free extent {start}+{len} overlaps used blocks"),
            );
        }
    }
    let total = state.sb.block_count;
    let accounted = usage.used.blocks() + free.blocks();
    if accounted < total {
        let mut all = usage.used.clone();
        let mut leaked = Vec::new();
        for (s, l) in free.iter() {
            if !all.overlaps(s, l) {
                all.insert(s, l);
            }
        }
        let mut at = 0;
        for (s, l) in all.iter() {
            if s > at {
                leaked.push((at, s - at));
            }
            at = s + l;
        }
        if at < total {
            leaked.push((at, total - at));
        }
        let count: u64 = leaked.iter().map(|(_, l)| l).sum();
        report.push(
            Severity::Warning,
            IssueKind::BlockLeaked,
            leaked.iter().take(16).map(|(s, _)| *s).collect(),
            format!("{count} blocks are neither free nor used, first extents {leaked:?}"),
        );
    }
    if state.sb.blocks_free != free.blocks() {
        report.push(
            Severity::Warning,
            IssueKind::CountersDisagree,
            vec![0, 1],
            format!("superblock says {} free blocks, the free map {}", state.sb.blocks_free, free.blocks()),
        );
    }
}
