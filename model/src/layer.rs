//! The layer table: create, commit, remove and describe layers; and the first two steps of the
//! order of checks (unknown layer: ENOENT; change to a committed layer: EROFS).
//!
//! Invariants (checked by `Model::check_invariants`):
//! - layer ids are below the layer counter and names are unique;
//! - a layer's parent exists and is committed, so a layer with children is committed;
//! - every layer holds its root, `Ino::ROOT`, a directory;
//! - a clone is a deep copy: after `create_layer`, nothing a layer does is seen by another.

use std::collections::BTreeMap;

use crate::errno::{Errno, Result};
use crate::inode::{Body, Inode};
use crate::types::{FileType, Ino, LayerId, LayerInfo, LayerState, Timespec, NAME_MAX};
use crate::Model;

/// One layer: its identity and its whole tree of inodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layer {
    pub id: LayerId,
    pub name: String,
    pub parent: Option<LayerId>,
    pub state: LayerState,
    pub inodes: BTreeMap<Ino, Inode>,
}

impl Layer {
    /// The inode `ino`, or ENOENT (step 4 of the order of checks).
    pub fn get(&self, ino: Ino) -> Result<&Inode> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    /// The inode `ino` to change, or ENOENT.
    pub fn get_mut(&mut self, ino: Ino) -> Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    /// The inode of an entry that the caller knows exists (a broken tree is a model bug).
    pub fn must(&self, ino: Ino) -> &Inode {
        self.inodes.get(&ino).unwrap_or_else(|| panic!("dangling inode {ino:?}"))
    }

    /// Like `must`, to change.
    pub fn must_mut(&mut self, ino: Ino) -> &mut Inode {
        self.inodes.get_mut(&ino).unwrap_or_else(|| panic!("dangling inode {ino:?}"))
    }

    /// The directory holding the entry of directory `dir` (`None` for the root).
    pub fn parent_of(&self, dir: Ino) -> Option<Ino> {
        self.inodes.iter().find_map(|(parent, inode)| match &inode.body {
            Body::Directory(entries) if entries.values().any(|child| *child == dir) => {
                Some(*parent)
            }
            _ => None,
        })
    }

    /// Whether `ancestor` is `dir` or one of the directories above it.
    pub fn is_ancestor_or_self(&self, ancestor: Ino, dir: Ino) -> bool {
        let mut at = Some(dir);
        for _ in 0..=self.inodes.len() {
            match at {
                Some(ino) if ino == ancestor => return true,
                Some(ino) => at = self.parent_of(ino),
                None => return false,
            }
        }
        panic!("a cycle of directories above {dir:?}");
    }
}

/// Step 3 of the order of checks for an entry name: empty, `.`, `..`, or holding `/` or NUL:
/// EINVAL; longer than `NAME_MAX`: ENAMETOOLONG.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl Model {
    /// Step 1: the layer, or ENOENT.
    pub(crate) fn readable(&self, layer: LayerId) -> Result<&Layer> {
        self.layers.get(&layer).ok_or(Errno::ENOENT)
    }

    /// Steps 1 and 2: the layer, or ENOENT; EROFS if it is committed.
    pub(crate) fn writable(&mut self, layer: LayerId) -> Result<&mut Layer> {
        let layer = self.layers.get_mut(&layer).ok_or(Errno::ENOENT)?;
        match layer.state {
            LayerState::Writable => Ok(layer),
            LayerState::Committed => Err(Errno::EROFS),
        }
    }

    fn by_name(&self, name: &str) -> Result<&Layer> {
        self.layers.values().find(|layer| layer.name == name).ok_or(Errno::ENOENT)
    }

    fn info(&self, layer: &Layer) -> LayerInfo {
        let children = self.layers.values().filter(|l| l.parent == Some(layer.id)).count();
        LayerInfo {
            id: layer.id,
            name: layer.name.clone(),
            parent: layer.parent.map(|parent| self.layers[&parent].name.clone()),
            state: layer.state,
            children: children as u32,
        }
    }

    /// Creates a writable layer named `name`. Without a parent its root is an empty directory
    /// (mode 0o755, uid 0, gid 0, nlink 2, all times 0); with one it is a copy of the parent's
    /// whole tree, inode numbers included. Errors: name empty, `.`, `..`, holding `/` or NUL:
    /// EINVAL; longer than 255: ENAMETOOLONG; taken: EEXIST; parent unknown: ENOENT; parent
    /// writable: EINVAL.
    pub fn create_layer(&mut self, name: &str, parent: Option<&str>) -> Result<LayerId> {
        check_name(name.as_bytes())?;
        if self.by_name(name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let (parent, inodes) = match parent {
            None => {
                let root = Inode::new(
                    FileType::Directory,
                    0o755,
                    0,
                    0,
                    Timespec::default(),
                    Body::Directory(BTreeMap::new()),
                );
                (None, BTreeMap::from([(Ino::ROOT, root)]))
            }
            Some(parent) => {
                let parent = self.by_name(parent)?;
                if parent.state != LayerState::Committed {
                    return Err(Errno::EINVAL);
                }
                (Some(parent.id), parent.inodes.clone())
            }
        };
        let id = LayerId(self.next_layer);
        let state = LayerState::Writable;
        self.layers.insert(id, Layer { id, name: name.to_owned(), parent, state, inodes });
        self.next_layer += 1;
        Ok(id)
    }

    /// Makes a layer committed (immutable). Errors: unknown: ENOENT; already committed: EINVAL.
    pub fn commit_layer(&mut self, name: &str) -> Result<()> {
        let id = self.by_name(name)?.id;
        let layer = self.layers.get_mut(&id).ok_or(Errno::ENOENT)?;
        if layer.state == LayerState::Committed {
            return Err(Errno::EINVAL);
        }
        layer.state = LayerState::Committed;
        Ok(())
    }

    /// Removes a layer and everything in it. Errors: unknown: ENOENT; has children: EBUSY.
    pub fn remove_layer(&mut self, name: &str) -> Result<()> {
        let id = self.by_name(name)?.id;
        if self.layers.values().any(|layer| layer.parent == Some(id)) {
            return Err(Errno::EBUSY);
        }
        self.layers.remove(&id);
        Ok(())
    }

    /// What is known of the layer `name`. Errors: unknown: ENOENT.
    pub fn layer(&self, name: &str) -> Result<LayerInfo> {
        Ok(self.info(self.by_name(name)?))
    }

    /// Every layer, sorted by name.
    pub fn layers(&self) -> Vec<LayerInfo> {
        let mut all: Vec<LayerInfo> = self.layers.values().map(|layer| self.info(layer)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The id of the layer `name`. Errors: unknown: ENOENT.
    pub fn layer_id(&self, name: &str) -> Result<LayerId> {
        Ok(self.by_name(name)?.id)
    }
}
