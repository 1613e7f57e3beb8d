//! `LayerDump`: a canonical, comparable description of a whole layer, and the model's
//! self-check `check_invariants`.
//!
//! Two layers hold the same observable state if and only if their dumps are equal: the layer's
//! description, every path and the inode it names (hard links show as paths sharing an inode
//! number), and per inode its attributes (with `blocks` = 0), content and xattrs. The harness
//! builds the same shape from the engine by walking it with readdir, lookup, read, readlink and
//! the xattr calls.
//!
//! Invariants checked by `Model::check_invariants` are listed in the docs of `lib.rs`,
//! `layer.rs`, `inode.rs` and `data.rs`.

use std::collections::BTreeMap;

use crate::data::FileData;
use crate::errno::Result;
use crate::inode::Body;
use crate::layer::Layer;
use crate::types::{Attr, FileType, Ino, LayerId, LayerInfo, LayerState};
use crate::Model;

/// The observable state of one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDump {
    pub info: LayerInfo,
    /// Every path (`/` for the root, `/a/b` below it) and the inode it names.
    pub paths: BTreeMap<Vec<u8>, Ino>,
    /// Every inode reachable from the root.
    pub inodes: BTreeMap<Ino, InodeDump>,
}

/// The observable state of one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InodeDump {
    /// With `blocks` = 0.
    pub attr: Attr,
    pub content: Content,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// What an inode holds besides attributes and xattrs. Directory entries are in `paths`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Regular(FileData),
    Directory,
    Symlink(Vec<u8>),
    /// Fifo, socket, char or block device.
    Special,
}

/// The path of the entry `name` in the directory whose path is `dir`.
pub fn child_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = dir.to_vec();
    if path != b"/" {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

impl Model {
    /// The observable state of the layer `layer`. Errors: unknown layer: ENOENT.
    pub fn dump_layer(&self, layer: LayerId) -> Result<LayerDump> {
        let l = self.readable(layer)?;
        let info = self.layer(&l.name)?;
        let mut paths = BTreeMap::new();
        let mut inodes = BTreeMap::new();
        let mut pending = vec![(b"/".to_vec(), Ino::ROOT)];
        while let Some((path, ino)) = pending.pop() {
            let inode = l.must(ino);
            if let Body::Directory(entries) = &inode.body {
                for (name, child) in entries {
                    pending.push((child_path(&path, name), *child));
                }
            }
            let content = match &inode.body {
                Body::Regular(data) => Content::Regular(data.clone()),
                Body::Directory(_) => Content::Directory,
                Body::Symlink(target) => Content::Symlink(target.clone()),
                Body::Special => Content::Special,
            };
            let dump = InodeDump { attr: inode.attr(ino), content, xattrs: inode.xattrs.clone() };
            inodes.insert(ino, dump);
            paths.insert(path, ino);
        }
        Ok(LayerDump { info, paths, inodes })
    }

    /// The dumps of every layer, sorted by layer name.
    pub fn dump(&self) -> Vec<LayerDump> {
        self.layers()
            .iter()
            .map(|info| self.dump_layer(info.id).expect("listed layers exist"))
            .collect()
    }

    /// Panics if the model's state breaks one of its invariants (a model bug).
    pub fn check_invariants(&self) {
        let mut names = std::collections::BTreeSet::new();
        for (id, layer) in &self.layers {
            assert_eq!(*id, layer.id);
            assert!(id.0 >= 1 && id.0 < self.next_layer, "layer id {id:?} out of range");
            assert!(names.insert(layer.name.clone()), "two layers named {}", layer.name);
            if let Some(parent) = layer.parent {
                let parent = self.layers.get(&parent).expect("the parent of a layer exists");
                assert_eq!(parent.state, LayerState::Committed, "a writable layer has children");
            }
            check_layer(layer, self.next_ino);
        }
    }
}

/// The invariants of one layer's tree; `next_ino` is the inode counter.
fn check_layer(layer: &Layer, next_ino: u64) {
    let root = layer.inodes.get(&Ino::ROOT).expect("every layer has a root");
    assert_eq!(root.kind, FileType::Directory, "the root is a directory");
    // Links counted from the entries: the root counts 2 for itself, as a directory does.
    let mut links: BTreeMap<Ino, u32> = BTreeMap::from([(Ino::ROOT, 2)]);
    // The directory holding each directory's entry.
    let mut parents: BTreeMap<Ino, Ino> = BTreeMap::new();
    for (ino, inode) in &layer.inodes {
        assert!(*ino == Ino::ROOT || (ino.0 >= Ino::FIRST.0 && ino.0 < next_ino), "{ino:?}");
        assert!(inode.perm <= 0o7777, "{ino:?} perm {:o}", inode.perm);
        let devices = [FileType::CharDevice, FileType::BlockDevice];
        assert!(inode.rdev == 0 || devices.contains(&inode.kind), "{ino:?} rdev");
        let body_kind = match &inode.body {
            Body::Regular(data) => {
                data.check_invariants();
                FileType::Regular
            }
            Body::Directory(entries) => {
                for (name, child) in entries {
                    crate::layer::check_name(name).expect("entry names are valid");
                    let child_inode = layer.inodes.get(child).expect("no dangling entry");
                    let is_dir = child_inode.kind == FileType::Directory;
                    *links.entry(*child).or_insert(0) += if is_dir { 2 } else { 1 };
                    if is_dir {
                        *links.entry(*ino).or_insert(0) += 1;
                        parents.insert(*child, *ino);
                    }
                }
                FileType::Directory
            }
            Body::Symlink(target) => {
                assert!(!target.is_empty() && target.len() <= crate::types::SYMLINK_MAX);
                FileType::Symlink
            }
            Body::Special => inode.kind,
        };
        assert_eq!(body_kind, inode.kind, "{ino:?}: body does not match kind");
        for (name, value) in &inode.xattrs {
            assert!(!name.is_empty() && name.len() <= crate::types::NAME_MAX);
            assert!(value.len() <= crate::types::XATTR_VALUE_MAX);
        }
    }
    for (ino, inode) in &layer.inodes {
        // A directory named by two entries would count 4 here and fail.
        assert_eq!(links.get(ino).copied(), Some(inode.nlink), "{ino:?}: nlink or orphan");
    }
    for dir in parents.keys() {
        let mut at = *dir;
        for _ in 0..parents.len() {
            match parents.get(&at) {
                Some(parent) => at = *parent,
                None => break,
            }
        }
        assert_eq!(at, Ino::ROOT, "{dir:?} is not under the root");
    }
}
