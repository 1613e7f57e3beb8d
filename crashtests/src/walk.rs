//! Walks a layer of a mounted engine through its public API (readdir, lookup, getattr, read,
//! readlink, listxattr, getxattr) and builds the model's canonical `LayerDump` of it, so that
//! the engine and the model compare with `==` (and `compare::diff_layer` says where not).
//!
//! Invariants:
//! - the walk only reads; it never changes the engine;
//! - it is bounded: at most `ENTRIES_MAX` entries, and each directory is entered once (a
//!   directory reached twice is reported, not followed), so a corrupt tree cannot loop;
//! - what the engine says twice must agree: the `DirEntry` of readdir, `lookup` and `getattr`
//!   give the same inode, type and attributes, or the walk fails with a description;
//! - regular files up to `FULL_READ_MAX` bytes are read whole; a larger (sparse) file is read
//!   at its first and last page and around every page the reference dump (`hint`) holds, so a
//!   1 TiB sparse file costs a few reads. Bytes elsewhere in such a file are not compared.

use std::collections::{BTreeMap, BTreeSet};

use lcfs::Fs;
use lcfs_model::{
    child_path, Content, FileData, FileType, Ino, InodeDump, LayerDump, LayerInfo, PAGE_SIZE,
};

use crate::convert;

/// Files up to this size are read whole.
pub const FULL_READ_MAX: u64 = 16 << 20;
/// The most entries a walk visits.
pub const ENTRIES_MAX: usize = 1 << 20;
/// Bytes asked of one `read`.
const CHUNK: u64 = 1 << 20;
/// Entries asked of one `readdir`.
const READDIR_LIMIT: usize = 64;

/// What failed in a walk: an engine error or an inconsistency, described.
pub type WalkResult<T> = Result<T, String>;

/// The dump of the engine's layer `info`. `hint` is the reference's dump of the same layer, used
/// only to choose which pages of very large files to read.
pub fn dump_layer(fs: &Fs, info: &LayerInfo, hint: Option<&LayerDump>) -> WalkResult<LayerDump> {
    let layer = convert::layer_id(info.id);
    let engine_err = |what: &str, e: lcfs::Error| format!("{what}: {e} (errno {})", e.errno());
    let mut paths = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    let mut entered = BTreeSet::new();
    let root =
        fs.getattr(layer, convert::ino(Ino::ROOT)).map_err(|e| engine_err("getattr root", e))?;
    let root = convert::attr_back(root);
    if root.kind != FileType::Directory {
        return Err(format!("the root is a {:?}", root.kind));
    }
    let mut pending = vec![(b"/".to_vec(), root)];
    while let Some((path, attr)) = pending.pop() {
        if paths.len() >= ENTRIES_MAX {
            return Err(format!("more than {ENTRIES_MAX} entries"));
        }
        let ino = attr.ino;
        paths.insert(path.clone(), ino);
        if attr.kind == FileType::Directory {
            if !entered.insert(ino) {
                return Err(format!("directory {ino:?} reached twice (at {})", show(&path)));
            }
            for entry in list_dir(fs, layer, ino)? {
                let child = child_path(&path, &entry.name);
                let found = fs
                    .lookup(layer, convert::ino(ino), &entry.name)
                    .map_err(|e| engine_err(&format!("lookup {}", show(&child)), e))?;
                let found = convert::attr_back(found);
                if (found.ino, found.kind) != (entry.ino, entry.kind) {
                    return Err(format!(
                        "{}: readdir says {:?} {:?}, lookup says {:?} {:?}",
                        show(&child),
                        entry.ino,
                        entry.kind,
                        found.ino,
                        found.kind
                    ));
                }
                pending.push((child, found));
            }
        }
        if let Some(seen) = inodes.get(&ino) {
            let seen: &InodeDump = seen;
            if seen.attr != attr {
                return Err(format!(
                    "{ino:?} has two sets of attributes: {:?} / {attr:?}",
                    seen.attr
                ));
            }
            continue;
        }
        let hint = hint.and_then(|dump| dump.inodes.get(&ino));
        inodes.insert(ino, dump_inode(fs, info, attr, hint)?);
    }
    Ok(LayerDump { info: info.clone(), paths, inodes })
}

/// Every entry of `dir`, in pages of `READDIR_LIMIT`; checks they come sorted by name.
fn list_dir(fs: &Fs, layer: lcfs::LayerId, dir: Ino) -> WalkResult<Vec<lcfs_model::DirEntry>> {
    let mut all: Vec<lcfs_model::DirEntry> = Vec::new();
    loop {
        let after = all.last().map(|entry| entry.name.as_slice());
        let page = fs
            .readdir(layer, convert::ino(dir), after, READDIR_LIMIT)
            .map_err(|e| format!("readdir {dir:?}: {e}"))?;
        if page.len() > READDIR_LIMIT {
            return Err(format!("readdir {dir:?} returned {} > limit entries", page.len()));
        }
        if page.is_empty() {
            return Ok(all);
        }
        for entry in page {
            let entry = convert::dir_entry_back(entry);
            if all.last().is_some_and(|last| last.name >= entry.name) {
                return Err(format!("readdir {dir:?}: {} out of order", show(&entry.name)));
            }
            all.push(entry);
            if all.len() > ENTRIES_MAX {
                return Err(format!("readdir {dir:?}: more than {ENTRIES_MAX} entries"));
            }
        }
    }
}

/// The content, attributes (checked against getattr) and xattrs of one inode.
fn dump_inode(
    fs: &Fs,
    info: &LayerInfo,
    attr: lcfs_model::Attr,
    hint: Option<&InodeDump>,
) -> WalkResult<InodeDump> {
    let (layer, ino) = (convert::layer_id(info.id), convert::ino(attr.ino));
    let got = fs.getattr(layer, ino).map_err(|e| format!("getattr {ino:?}: {e}"))?;
    if convert::attr_back(got.clone()) != attr {
        return Err(format!("{ino:?}: lookup says {attr:?}, getattr says {got:?}"));
    }
    let content = match attr.kind {
        FileType::Regular => {
            let hint = hint.and_then(|dump| match &dump.content {
                Content::Regular(data) => Some(data),
                _ => None,
            });
            Content::Regular(read_file(fs, layer, ino, attr.size, hint)?)
        }
        FileType::Directory => Content::Directory,
        FileType::Symlink => {
            Content::Symlink(fs.readlink(layer, ino).map_err(|e| format!("readlink {ino:?}: {e}"))?)
        }
        FileType::Fifo | FileType::CharDevice | FileType::BlockDevice | FileType::Socket => {
            Content::Special
        }
    };
    let mut xattrs = BTreeMap::new();
    for name in fs.listxattr(layer, ino).map_err(|e| format!("listxattr {ino:?}: {e}"))? {
        let value = fs
            .getxattr(layer, ino, &name)
            .map_err(|e| format!("getxattr {ino:?} {}: {e}", show(&name)))?;
        if xattrs.insert(name.clone(), value).is_some() {
            return Err(format!("listxattr {ino:?} lists {} twice", show(&name)));
        }
    }
    Ok(InodeDump { attr, content, xattrs })
}

/// The bytes of a regular file of `size` bytes (see the module doc for large files).
fn read_file(
    fs: &Fs,
    layer: lcfs::LayerId,
    ino: lcfs::Ino,
    size: u64,
    hint: Option<&FileData>,
) -> WalkResult<FileData> {
    let mut data = FileData::new();
    for (start, end) in ranges_to_read(size, hint) {
        let mut offset = start;
        while offset < end {
            let want = CHUNK.min(end - offset);
            let bytes = fs
                .read(layer, ino, offset, want as u32)
                .map_err(|e| format!("read {ino:?} at {offset}: {e}"))?;
            if bytes.len() as u64 != want {
                return Err(format!(
                    "read {ino:?} at {offset} of {want} bytes (size {size}) gave {}",
                    bytes.len()
                ));
            }
            data.write(offset, &bytes);
            offset += want;
        }
    }
    let past = fs.read(layer, ino, size, 4096).map_err(|e| format!("read {ino:?} at EOF: {e}"))?;
    if !past.is_empty() {
        return Err(format!("read {ino:?} at its size {size} gave {} bytes", past.len()));
    }
    data.truncate(size);
    Ok(data)
}

/// Byte ranges `[start, end)` to read of a file of `size` bytes.
fn ranges_to_read(size: u64, hint: Option<&FileData>) -> Vec<(u64, u64)> {
    if size <= FULL_READ_MAX {
        return vec![(0, size)];
    }
    let last = (size - 1) / PAGE_SIZE;
    let mut pages = BTreeSet::from([0, last]);
    for (index, _) in hint.into_iter().flat_map(|data| data.pages()) {
        pages
            .extend([index.saturating_sub(1), index, index + 1].into_iter().filter(|p| *p <= last));
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for page in pages {
        let (start, end) = (page * PAGE_SIZE, ((page + 1) * PAGE_SIZE).min(size));
        match ranges.last_mut() {
            Some(range) if range.1 == start => range.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

/// A path or name for messages.
pub fn show(bytes: &[u8]) -> String {
    if bytes.len() > 40 {
        return format!("{}…({} bytes)", String::from_utf8_lossy(&bytes[..20]), bytes.len());
    }
    String::from_utf8_lossy(bytes).into_owned()
}
