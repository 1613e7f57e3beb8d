//! fsck's walk of the blocks: the system tree, every layer's tree (shared subtrees once), every
//! data extent, the free map; ownership and counters on the way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use super::{namespace, IssueKind, Report, Severity};
use crate::alloc::Extents;
use crate::error::{Error, Result};
use crate::format::header::{self, BLOCK_SIZE};
use crate::fs::State;
use crate::layer::{check_meta, LayerRecord, META_PREFIX, NAME_PREFIX, RECORD_PREFIX};
use crate::tree::{Node, Tree};
use crate::types::{BlockNo, LayerId, LayerState};

/// Blocks seen so far, and by whom.
#[derive(Default)]
pub(super) struct Usage {
    /// Superblocks, free-map blocks and tree nodes.
    used: Extents,
    nodes: HashSet<u64>,
    /// Data blocks by owner: layers share their ancestors' extents (and trimmed copies of them),
    /// so a data block may be named by many extents, but all of one owner.
    pub(super) data: HashMap<LayerId, Extents>,
    /// Data blocks read and checked, with the checksum they were checked against.
    pub(super) verified: HashSet<(u64, u32)>,
}

impl Usage {
    pub(super) fn mark(&mut self, report: &mut Report, start: u64, len: u64, what: &str) {
        if self.used.overlaps(start, len) {
            report.push(
                Severity::Error,
                IssueKind::BlockUsedTwice,
                vec![start],
                format!("{what} {start}+{len} overlaps blocks already in use"),
            );
            return;
        }
        self.used.insert(start, len);
    }
}

/// Walks everything and fills `report`.
pub(super) fn walk(state: &mut State, report: &mut Report) -> Result<()> {
    let mut usage = Usage::default();
    for slot in [0u64, 1] {
        usage.mark(report, slot, 1, "superblock");
    }
    for block in state.free_map_chain.clone() {
        usage.mark(report, block.0, 1, "free-map block");
    }
    let system = state.system.clone();
    walk_tree(state, &system, LayerId::SYSTEM, &[LayerId::SYSTEM], &mut usage, report)?;
    let records = layer_records(state, report)?;
    check_layer_tree(&records, report);
    check_name_index(state, &records, report)?;
    check_meta_items(state, &records, report)?;
    let mut max_ino = 0;
    for rec in records.values() {
        report.layers += 1;
        let ancestry = ancestry(&records, rec);
        let tree = Tree::from_root(rec.root);
        walk_tree(state, &tree, rec.id, &ancestry, &mut usage, report)?;
        let (inodes, max) =
            namespace::check_layer(&tree, &state.store, &ancestry, &mut usage, report)?;
        report.inodes += inodes;
        max_ino = max_ino.max(max);
    }
    check_counters(state, &records, max_ino, report);
    merge_data(&mut usage, report);
    check_space(state, &usage, report);
    Ok(())
}

/// The layer itself, then its parent, up to the base (bounded by the number of layers).
fn ancestry(records: &BTreeMap<LayerId, LayerRecord>, rec: &LayerRecord) -> Vec<LayerId> {
    let mut out = vec![rec.id];
    let mut at = rec.parent;
    while let Some(id) = at {
        if out.len() > records.len() || out.contains(&id) {
            break;
        }
        out.push(id);
        at = records.get(&id).and_then(|r| r.parent);
    }
    out
}

/// Walks one tree: each node once (shared subtrees are skipped after their first visit), each
/// owner checked against `ancestry`, each data extent marked once.
fn walk_tree(
    state: &State,
    tree: &Tree,
    layer: LayerId,
    ancestry: &[LayerId],
    usage: &mut Usage,
    report: &mut Report,
) -> Result<()> {
    let mut foreign: Vec<(u64, LayerId)> = Vec::new();
    let mut fresh: Vec<u64> = Vec::new();
    let out = tree.check_nodes(&state.store, &mut |block: BlockNo, node: &Node| {
        if !ancestry.contains(&node.owner()) {
            foreign.push((block.0, node.owner()));
        }
        if usage.nodes.contains(&block.0) {
            return Ok(false);
        }
        usage.nodes.insert(block.0);
        fresh.push(block.0);
        Ok(true)
    });
    for block in fresh {
        usage.mark(report, block, 1, "tree node");
        report.node_blocks += 1;
    }
    for (block, owner) in foreign {
        report.push(
            Severity::Error,
            IssueKind::OwnershipContradiction,
            vec![block],
            format!("node {block} in layer {} is owned by layer {}, not an ancestor", layer.0, owner.0),
        );
    }
    if let Err(e) = out {
        bad_block(state, e, report)?;
    }
    Ok(())
}

/// Adds every owner's data blocks to the used set: blocks of two owners, or of an owner and a
/// node, are used twice.
fn merge_data(usage: &mut Usage, report: &mut Report) {
    let mut owners: Vec<LayerId> = usage.data.keys().copied().collect();
    owners.sort();
    for owner in owners {
        let Some(blocks) = usage.data.get(&owner) else { continue };
        let blocks: Vec<(u64, u64)> = blocks.iter().collect();
        for (start, len) in blocks {
            report.data_blocks += len;
            usage.mark(report, start, len, &format!("data of layer {}", owner.0));
        }
    }
}

/// Classifies a corrupt block by its raw bytes and reports it; other errors pass through.
pub(super) fn bad_block(state: &State, e: Error, report: &mut Report) -> Result<()> {
    let Error::Corrupt { block, what } = e else { return Err(e) };
    let raw = state.store.read_raw(BlockNo(block)).unwrap_or_else(|_| vec![0u8; BLOCK_SIZE]);
    let kind = match header::verify_any(&raw, BlockNo(block)) {
        Err(Error::Corrupt { what, .. }) if what.contains("checksum") => IssueKind::BadChecksum,
        Err(Error::Corrupt { what, .. }) if what.contains("misdirected") => IssueKind::MisdirectedBlock,
        Ok(_) if what.starts_with("stale") => IssueKind::StaleBlock,
        _ => IssueKind::BadBlock,
    };
    report.push(Severity::Error, kind, vec![block], what);
    Ok(())
}

fn layer_records(state: &State, report: &mut Report) -> Result<BTreeMap<LayerId, LayerRecord>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    scan_system_prefix(state, RECORD_PREFIX, report, |key, value| {
        match LayerRecord::decode(&value, state.sb.layer_table.block.0) {
            Ok(rec) if key != crate::layer::record_key(rec.id) => problems.push((
                IssueKind::LayerTree,
                format!("layer {}'s record is under another id", rec.id.0),
            )),
            Ok(rec) => {
                out.insert(rec.id, rec);
            }
            Err(e) => problems.push((IssueKind::BadBlock, e.to_string())),
        }
    })?;
    for (kind, what) in problems {
        report.push(Severity::Error, kind, vec![], what);
    }
    Ok(out)
}

/// Every item of the system tree whose key starts with `prefix`, in key order and in batches
/// (bounded by the device's block count); an unreadable node is reported and ends the scan.
fn scan_system_prefix(
    state: &State,
    prefix: u8,
    report: &mut Report,
    mut each: impl FnMut(Vec<u8>, Vec<u8>),
) -> Result<()> {
    let (lo, hi) = ([prefix], [prefix.wrapping_add(1)]);
    let mut after: Option<Vec<u8>> = None;
    for _ in 0..state.sb.block_count {
        let start = after.as_deref().map_or(Bound::Included(&lo[..]), Bound::Excluded);
        let batch = match state.system.range(&state.store, start, Bound::Excluded(&hi[..]), 256) {
            Ok(batch) => batch,
            Err(e) => return bad_block(state, e, report),
        };
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        for (key, value) in batch {
            each(key, value);
        }
    }
    Ok(())
}

/// The layer table's name index against the records: every record is named by exactly one
/// index entry, which names it back; no entry names anything else. (Lookups go through the
/// index, so a layer it lacks is unreachable, and an entry without its record makes every
/// listing fail.)
fn check_name_index(
    state: &State,
    records: &BTreeMap<LayerId, LayerRecord>,
    report: &mut Report,
) -> Result<()> {
    let mut problems = Vec::new();
    let mut named: HashMap<LayerId, u32> = HashMap::new();
    scan_system_prefix(state, NAME_PREFIX, report, |key, value| {
        let name = String::from_utf8_lossy(key.get(1..).unwrap_or(&[])).into_owned();
        let id = <[u8; 8]>::try_from(value.as_slice()).map(|b| LayerId(u64::from_le_bytes(b)));
        match id.ok().and_then(|id| records.get(&id)) {
            Some(rec) if rec.name == name => *named.entry(rec.id).or_default() += 1,
            Some(rec) => problems.push(format!("name '{name}' leads to layer '{}'", rec.name)),
            None => problems.push(format!("name '{name}' leads to no layer record")),
        }
    })?;
    for rec in records.values() {
        let named = named.get(&rec.id).copied().unwrap_or(0);
        if named != 1 {
            problems.push(format!("layer '{}' is named by {named} index entries", rec.name));
        }
    }
    for problem in problems {
        report.push(Severity::Error, IssueKind::LayerTree, vec![], problem);
    }
    Ok(())
}

/// Every layer metadata item belongs to a layer record and is within the limits
/// `set_layer_meta` keeps (a removed layer takes its items along).
fn check_meta_items(
    state: &State,
    records: &BTreeMap<LayerId, LayerRecord>,
    report: &mut Report,
) -> Result<()> {
    let mut problems = Vec::new();
    scan_system_prefix(state, META_PREFIX, report, |key, value| {
        let id = key.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
        let item = key.get(9..).unwrap_or(&[]);
        match id.map(LayerId) {
            Some(id) if !records.contains_key(&id) => {
                problems.push(format!("a metadata item of layer {} which does not exist", id.0));
            }
            Some(id) if check_meta(item, Some(&value)).is_err() => problems.push(format!(
                "layer {}'s metadata item '{}' is out of bounds ({} bytes of value)",
                id.0,
                String::from_utf8_lossy(item),
                value.len()
            )),
            Some(_) => {}
            None => problems.push("a metadata item with a short key".to_string()),
        }
    })?;
    for problem in problems {
        report.push(Severity::Error, IssueKind::LayerTree, vec![], problem);
    }
    Ok(())
}

fn check_layer_tree(records: &BTreeMap<LayerId, LayerRecord>, report: &mut Report) {
    let mut children: HashMap<LayerId, u32> = HashMap::new();
    for rec in records.values() {
        let Some(pid) = rec.parent else { continue };
        *children.entry(pid).or_default() += 1;
        let problem = match records.get(&pid) {
            None => format!("layer '{}' names a missing parent {}", rec.name, pid.0),
            Some(p) if p.state != LayerState::Committed => {
                format!("layer '{}' has a writable parent '{}'", rec.name, p.name)
            }
            Some(_) => continue,
        };
        report.push(Severity::Error, IssueKind::LayerTree, vec![], problem);
    }
    for rec in records.values() {
        let found = children.get(&rec.id).copied().unwrap_or(0);
        if found != rec.children {
            let what = format!("layer '{}' records {} children, {found} found", rec.name, rec.children);
            report.push(Severity::Warning, IssueKind::LayerTree, vec![], what);
        }
    }
}

fn check_counters(state: &State, records: &BTreeMap<LayerId, LayerRecord>, max_ino: u64, report: &mut Report) {
    if max_ino >= state.sb.next_ino {
        let what = format!("inode {max_ino} is in use but the counter would hand out {}", state.sb.next_ino);
        report.push(Severity::Error, IssueKind::CountersDisagree, vec![0, 1], what);
    }
    if let Some(max) = records.keys().next_back() {
        if max.0 >= state.sb.next_layer {
            let what = format!("layer {} exists but the counter would hand out {}", max.0, state.sb.next_layer);
            report.push(Severity::Error, IssueKind::CountersDisagree, vec![0, 1], what);
        }
    }
}

fn check_space(state: &State, usage: &Usage, report: &mut Report) {
    let free = state.space.free_after_checkpoint();
    report.free_blocks = free.blocks();
    for (start, len) in free.iter() {
        if usage.used.overlaps(start, len) {
            let what = format!("free extent {start}+{len} overlaps used blocks");
            report.push(Severity::Error, IssueKind::BlockFreeAndUsed, vec![start], what);
        }
    }
    let mut all = usage.used.clone();
    for (s, l) in free.iter() {
        if !all.overlaps(s, l) {
            all.insert(s, l);
        }
    }
    let mut leaked = Vec::new();
    let mut at = 0;
    for (s, l) in all.iter() {
        if s > at {
            leaked.push((at, s - at));
        }
        at = s + l;
    }
    if at < state.sb.block_count {
        leaked.push((at, state.sb.block_count - at));
    }
    // A bad node hides its subtree: the blocks below it look leaked but are not known to be.
    let walk_complete = !report.issues.iter().any(|i| {
        use IssueKind::{BadBlock, BadChecksum, MisdirectedBlock, StaleBlock};
        matches!(i.kind, BadChecksum | MisdirectedBlock | StaleBlock | BadBlock)
    });
    if !leaked.is_empty() && walk_complete {
        let count: u64 = leaked.iter().map(|(_, l)| l).sum();
        let first: Vec<(u64, u64)> = leaked.iter().take(8).copied().collect();
        report.push(
            Severity::Warning,
            IssueKind::BlockLeaked,
            leaked.iter().take(16).map(|(s, _)| *s).collect(),
            format!("{count} blocks are neither free nor used, first extents {first:?}"),
        );
    }
    if state.sb.blocks_free != free.blocks() {
        let what = format!("superblock says {} free blocks, the free map {}", state.sb.blocks_free, free.blocks());
        report.push(Severity::Warning, IssueKind::CountersDisagree, vec![0, 1], what);
    }
}
