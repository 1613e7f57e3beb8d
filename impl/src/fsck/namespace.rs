//! fsck of one layer's namespace: every item decodes, every entry names an inode of the layer,
//! and every inode's nlink matches the entries that name it (directories: 2 + subdirectories),
//! except orphans: an inode with an orphan item has nlink 0 and no entry (ns/orphan.rs). The
//! back-references and the entries agree exactly: `(child, InodeRef, dir, name)` exists when
//! and only when the entry `(dir, name)` names `child`. Every data block an extent names is
//! read once and checked against the extent's checksum.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use super::blocks::Usage;
use super::{Issue, IssueKind, Report, Severity};
use crate::alloc::Extents;
use crate::error::Result;
use crate::format::records::{self, Key};
use crate::store::Store;
use crate::tree::Tree;
use crate::types::{BlockNo, FileType, Ino, LayerId};

#[derive(Default)]
struct Seen {
    inodes: HashMap<Ino, (FileType, u32)>,
    names: HashMap<Ino, u32>,
    subdirs: HashMap<Ino, u32>,
    /// Every entry: directory, name, child and the child's type as the entry gives it.
    entries: Vec<(Ino, Vec<u8>, Ino, FileType)>,
    /// Symlinks: the size their inode gives, and their chunks (index, length) in key order.
    symlink_sizes: HashMap<Ino, u64>,
    symlink_chunks: HashMap<Ino, Vec<(u8, usize)>>,
    /// Inodes named by orphan items.
    orphans: Vec<Ino>,
    /// Back-references: inode, directory, name.
    backrefs: HashSet<(Ino, Ino, Vec<u8>)>,
    /// Extents not yet checked: file, first block, count, owner, checksum of each block.
    extents: Vec<(Ino, u64, u64, LayerId, Vec<u32>)>,
    /// Data blocks this layer's files name.
    data: Extents,
}

/// Checks the extents noted so far: each owned by the layer or an ancestor, none overlapping
/// another of the same layer, every block matching its checksum; records them as used by their
/// owner.
fn check_extents(
    seen: &mut Seen,
    store: &Store,
    ancestry: &[LayerId],
    usage: &mut Usage,
    report: &mut Report,
) {
    let layer = ancestry.first().copied().unwrap_or(LayerId::SYSTEM);
    for (ino, start, len, owner, crcs) in std::mem::take(&mut seen.extents) {
        check_data(store, layer, ino, start, &crcs, usage, report);
        if !ancestry.contains(&owner) {
            let what = format!("extent {start}+{len} of inode {} is owned by layer {}", ino.0, owner.0);
            let kind = IssueKind::OwnershipContradiction;
            issue(report, Severity::Error, kind, layer, vec![ino], what);
        }
        if seen.data.overlaps(start, len) {
            let what = format!("extent {start}+{len} of inode {} overlaps another extent", ino.0);
            issue(report, Severity::Error, IssueKind::BlockUsedTwice, layer, vec![ino], what);
            continue;
        }
        seen.data.insert(start, len);
        usage.data.entry(owner).or_default().insert_union(start, len);
    }
}

/// Checks the namespace of `layer`; returns the number of inodes it holds and the highest
/// inode number among them.
pub(super) fn check_layer(
    tree: &Tree,
    store: &Store,
    ancestry: &[LayerId],
    usage: &mut Usage,
    report: &mut Report,
) -> Result<(u64, u64)> {
    let layer = ancestry.first().copied().unwrap_or(LayerId::SYSTEM);
    let mut seen = Seen::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let lo = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let batch = match tree.range(store, lo, Bound::Unbounded, 1024) {
            Ok(b) => b,
            // The block walk has reported the bad node already.
            Err(_) => break,
        };
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        for (key, value) in batch {
            if let Err(e) = note_item(&mut seen, &key, &value) {
                issue(report, Severity::Error, IssueKind::BadBlock, layer, vec![], e.to_string());
            }
        }
        check_extents(&mut seen, store, ancestry, usage, report);
    }
    for (dir, name, child, kind) in &seen.entries {
        if let Some(&(actual, _)) = seen.inodes.get(child).filter(|(actual, _)| actual != kind) {
            let what = format!(
                "entry {:?} in directory {} says inode {} is a {kind:?}, it is a {actual:?}",
                String::from_utf8_lossy(name),
                dir.0,
                child.0
            );
            let mismatch = IssueKind::EntryKindMismatch;
            issue(report, Severity::Error, mismatch, layer, vec![*dir, *child], what);
        }
        if !seen.inodes.contains_key(child) || !seen.inodes.contains_key(dir) {
            let what = format!(
                "entry {:?} in directory {} names inode {}, which the layer lacks",
                String::from_utf8_lossy(name),
                dir.0,
                child.0
            );
            issue(report, Severity::Error, IssueKind::DanglingEntry, layer, vec![*dir, *child], what);
        }
    }
    check_symlinks(&seen, layer, report);
    check_backrefs(&mut seen, layer, report);
    for ino in &seen.orphans {
        if seen.inodes.get(ino).is_none_or(|&(_, nlink)| nlink != 0) {
            let what = format!("orphan item names inode {}, which is missing or linked", ino.0);
            issue(report, Severity::Error, IssueKind::DanglingEntry, layer, vec![*ino], what);
        }
    }
    for (&ino, &(kind, nlink)) in &seen.inodes {
        let names = seen.names.get(&ino).copied().unwrap_or(0);
        if nlink == 0 && names == 0 && seen.orphans.contains(&ino) {
            continue;
        }
        let expected = match kind {
            FileType::Directory => 2 + seen.subdirs.get(&ino).copied().unwrap_or(0),
            _ => names,
        };
        let orphan_dir = kind == FileType::Directory && ino != Ino::ROOT && names != 1;
        if nlink != expected || orphan_dir {
            let what = format!("inode {} has nlink {nlink}, {names} names, expected {expected}", ino.0);
            issue(report, Severity::Error, IssueKind::NlinkMismatch, layer, vec![ino], what);
        }
    }
    let max = seen.inodes.keys().map(|i| i.0).max().unwrap_or(0);
    Ok((seen.inodes.len() as u64, max))
}

/// Every entry has its back-reference and every back-reference its entry. Consumes the
/// back-references noted.
fn check_backrefs(seen: &mut Seen, layer: LayerId, report: &mut Report) {
    let mut backrefs = std::mem::take(&mut seen.backrefs);
    for (dir, name, child, _) in &seen.entries {
        // An entry naming a missing inode is a DanglingEntry; its back-reference went with it.
        if backrefs.remove(&(*child, *dir, name.clone())) || !seen.inodes.contains_key(child) {
            continue;
        }
        let what = format!(
            "entry {:?} in directory {} names inode {}, which has no back-reference for it",
            String::from_utf8_lossy(name),
            dir.0,
            child.0
        );
        issue(report, Severity::Error, IssueKind::BackrefMismatch, layer, vec![*dir, *child], what);
    }
    let mut extra: Vec<_> = backrefs.into_iter().collect();
    extra.sort();
    for (child, dir, name) in extra {
        let what = format!(
            "inode {} has a back-reference to entry {:?} of directory {}, which does not name it",
            child.0,
            String::from_utf8_lossy(&name),
            dir.0
        );
        issue(report, Severity::Error, IssueKind::BackrefMismatch, layer, vec![dir, child], what);
    }
}

/// Every symlink's target as `readlink` reads it: chunks 0, 1, ... in order, each full but the
/// last, none empty, adding up to the inode's size (at least one byte).
fn check_symlinks(seen: &Seen, layer: LayerId, report: &mut Report) {
    let chunk_max = records::SYMLINK_CHUNK_MAX as u64;
    for (&ino, &size) in &seen.symlink_sizes {
        let chunks = seen.symlink_chunks.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
        let mut total = 0u64;
        let mut good = !chunks.is_empty();
        for (expected, &(index, len)) in (0u8..).zip(chunks) {
            let full_before = total == u64::from(expected) * chunk_max;
            good &= index == expected && full_before && len > 0 && len as u64 <= chunk_max;
            total += len as u64;
        }
        if !good || total != size {
            let what = format!("symlink {}: a target of {total} bytes, size {size}", ino.0);
            issue(report, Severity::Error, IssueKind::BadBlock, layer, vec![ino], what);
        }
    }
}

fn note_item(seen: &mut Seen, key: &[u8], value: &[u8]) -> Result<()> {
    match records::decode_key(key)? {
        Key::Inode(ino) => {
            let rec = records::decode_inode(value)?;
            seen.inodes.insert(ino, (rec.kind, rec.nlink));
            if rec.kind == FileType::Symlink {
                seen.symlink_sizes.insert(ino, rec.size);
            }
        }
        Key::DirEntry(dir, name) => {
            let entry = records::decode_dir_entry(value)?;
            *seen.names.entry(entry.ino).or_default() += 1;
            if entry.kind == FileType::Directory {
                *seen.subdirs.entry(dir).or_default() += 1;
            }
            seen.entries.push((dir, name, entry.ino, entry.kind));
        }
        Key::Extent(ino, last) => {
            let e = records::decode_extent(value)?;
            // What reads accept (`ns::extent`): the file blocks `last - count + 1 ..= last`.
            if last >= crate::ns::FILE_BLOCKS_MAX || e.count - 1 > last {
                let what = format!("extent of inode {} ending at file block {last}", ino.0);
                return Err(crate::error::Error::corrupt(0, format!("{what} is out of range")));
            }
            seen.extents.push((ino, e.disk.0, e.count, e.owner, e.crcs));
        }
        Key::Orphan(ino) => seen.orphans.push(ino),
        Key::SymlinkChunk(ino, index) => {
            seen.symlink_chunks.entry(ino).or_default().push((index, value.len()));
        }
        Key::InodeRef(ino, dir, name) => {
            seen.backrefs.insert((ino, dir, name));
        }
        Key::Xattr(..) => {}
    }
    Ok(())
}

/// Reads each block of an extent (once per block and checksum, however many layers share it)
/// and reports the blocks whose bytes do not match their checksum.
fn check_data(
    store: &Store,
    layer: LayerId,
    ino: Ino,
    start: u64,
    crcs: &[u32],
    usage: &mut Usage,
    report: &mut Report,
) {
    for (block, crc) in (start..).zip(crcs.iter().copied()) {
        if !usage.verified.insert((block, crc)) {
            continue;
        }
        let found = store.read_raw(BlockNo(block)).map(|bytes| records::data_crc(&bytes));
        if found.as_ref().is_ok_and(|found| *found == crc) {
            continue;
        }
        let what = match found {
            Ok(found) => format!("data block {block}: checksum {found:#010x}, extent says {crc:#010x}"),
            Err(e) => format!("data block {block}: {e}"),
        };
        report.issues.push(Issue {
            severity: Severity::Error,
            kind: IssueKind::BadChecksum,
            blocks: vec![block],
            inodes: vec![(layer, ino)],
            detail: format!("layer {}: inode {}: {what}", layer.0, ino.0),
        });
    }
}

fn issue(report: &mut Report, severity: Severity, kind: IssueKind, layer: LayerId, inodes: Vec<Ino>, detail: String) {
    let inodes = inodes.into_iter().map(|i| (layer, i)).collect();
    report.issues.push(Issue { severity, kind, blocks: Vec::new(), inodes, detail: format!("layer {}: {detail}", layer.0) });
}
