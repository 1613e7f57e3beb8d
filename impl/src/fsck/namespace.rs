//! fsck of one layer's namespace: every item decodes, every entry names an inode of the layer,
//! and every inode's nlink matches the entries that name it (directories: 2 + subdirectories).

use std::collections::HashMap;
use std::ops::Bound;

use super::{Issue, IssueKind, Report, Severity};
use crate::error::Result;
use crate::format::records::{self, Key};
use crate::store::Store;
use crate::tree::Tree;
use crate::types::{FileType, Ino, LayerId};

#[derive(Default)]
struct Seen {
    inodes: HashMap<Ino, (FileType, u32)>,
    names: HashMap<Ino, u32>,
    subdirs: HashMap<Ino, u32>,
    entries: Vec<(Ino, Vec<u8>, Ino)>,
}

/// Checks the namespace of `layer`; returns the number of inodes it holds.
pub(super) fn check_layer(tree: &Tree, store: &Store, layer: LayerId, report: &mut Report) -> Result<u64> {
    let mut seen = Seen::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let lo = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let batch = match tree.range(store, lo, Bound::Unbounded, 1024) {
            Ok(b) => b,
            Err(e) => {
                issue(report, Severity::Error, IssueKind::BadBlock, layer, vec![], e.to_string());
                break;
            }
        };
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        for (key, value) in batch {
            if let Err(e) = note_item(&mut seen, &key, &value) {
                issue(report, Severity::Error, IssueKind::BadBlock, layer, vec![], e.to_string());
            }
        }
    }
    for (dir, name, child) in &seen.entries {
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
    for (&ino, &(kind, nlink)) in &seen.inodes {
        let names = seen.names.get(&ino).copied().unwrap_or(0);
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
    Ok(seen.inodes.len() as u64)
}

fn note_item(seen: &mut Seen, key: &[u8], value: &[u8]) -> Result<()> {
    match records::decode_key(key)? {
        Key::Inode(ino) => {
            let rec = records::decode_inode(value)?;
            seen.inodes.insert(ino, (rec.kind, rec.nlink));
        }
        Key::DirEntry(dir, name) => {
            let entry = records::decode_dir_entry(value)?;
            *seen.names.entry(entry.ino).or_default() += 1;
            if entry.kind == FileType::Directory {
                *seen.subdirs.entry(dir).or_default() += 1;
            }
            seen.entries.push((dir, name, entry.ino));
        }
        Key::Extent(..) => {
            records::decode_extent(value)?;
        }
        Key::Xattr(..) | Key::SymlinkChunk(..) => {}
    }
    Ok(())
}

fn issue(report: &mut Report, severity: Severity, kind: IssueKind, layer: LayerId, inodes: Vec<Ino>, detail: String) {
    let inodes = inodes.into_iter().map(|i| (layer, i)).collect();
    report.issues.push(Issue { severity, kind, blocks: Vec::new(), inodes, detail: format!("layer {}: {detail}", layer.0) });
}
