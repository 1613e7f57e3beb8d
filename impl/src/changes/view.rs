//! `View`: one layer's namespace read straight from its tree, for `changes`: lookups, listings,
//! back-references, the paths of an inode (walking up), the inode a path names (walking down).
//!
//! Paths are absolute byte strings without a trailing slash; the root is the empty path here
//! (it is never reported) and a child of the root is `/name`.
//!
//! Invariants:
//! - every walk is bounded: walking up stops after `DEPTH_WALK_MAX` steps and on any directory
//!   seen twice (a cycle), walking down takes one step per path component; corrupt data gives
//!   `Error::Corrupt`, never a loop or a panic;
//! - reads only: a view never changes its tree.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use crate::error::{Error, Result};
use crate::format::records::{self, DirEntryValue, ItemKind, Key};
use crate::tree::{NodeStore, Tree};
use crate::types::{FileType, Ino};

/// Deepest directory nesting a walk accepts before calling the tree corrupt (as rename's).
pub(crate) const DEPTH_WALK_MAX: usize = 1 << 24;

/// Items read per range scan.
const BATCH: usize = 512;

/// What a path names: the inode and its type as the directory entry gives it.
pub(crate) type Named = DirEntryValue;

/// One layer's namespace.
pub(crate) struct View<'a> {
    tree: &'a Tree,
    store: &'a dyn NodeStore,
    /// Paths of directories found so far (`None`: not reachable, e.g. an orphan).
    dir_paths: HashMap<Ino, Option<Vec<u8>>>,
    /// The entry naming each directory walked up through: (its directory, its name).
    links: HashMap<Ino, (Ino, Vec<u8>)>,
}

impl<'a> View<'a> {
    pub(crate) fn new(tree: &'a Tree, store: &'a dyn NodeStore) -> Self {
        View { tree, store, dir_paths: HashMap::new(), links: HashMap::new() }
    }

    /// The entry `name` of directory `dir`.
    pub(crate) fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<Named>> {
        match self.tree.get(self.store, &records::dir_entry_key(dir, name))? {
            Some(value) => Ok(Some(records::decode_dir_entry(&value)?)),
            None => Ok(None),
        }
    }

    /// Every entry of directory `dir`, in name order.
    pub(crate) fn entries(&self, dir: Ino) -> Result<Vec<(Vec<u8>, Named)>> {
        let lo = records::key_prefix(dir, ItemKind::DirEntry);
        let hi = records::key_prefix_end(dir, ItemKind::DirEntry);
        let mut out = Vec::new();
        self.scan(&lo, &hi, |key, value| match records::decode_key(key)? {
            Key::DirEntry(owner, name) if owner == dir => {
                out.push((name, records::decode_dir_entry(value)?));
                Ok(())
            }
            _ => Err(Error::corrupt(0, "directory scan returned another item")),
        })?;
        Ok(out)
    }

    /// The back-references of `ino`: (directory, name) of every entry naming it.
    pub(crate) fn backrefs(&self, ino: Ino, limit: usize) -> Result<Vec<(Ino, Vec<u8>)>> {
        let lo = records::key_prefix(ino, ItemKind::InodeRef);
        let hi = records::key_prefix_end(ino, ItemKind::InodeRef);
        let mut out = Vec::new();
        self.scan_limited(&lo, &hi, limit, |key, _| match records::decode_key(key)? {
            Key::InodeRef(owner, dir, name) if owner == ino => {
                out.push((dir, name));
                Ok(())
            }
            _ => Err(Error::corrupt(0, "back-reference scan returned another item")),
        })?;
        Ok(out)
    }

    /// The path of directory `dir`, walking up its back-references (a directory has exactly
    /// one name); `None` if it has none (an orphan, or not in the layer).
    pub(crate) fn dir_path(&mut self, dir: Ino) -> Result<Option<Vec<u8>>> {
        let mut chain: Vec<(Ino, Vec<u8>)> = Vec::new();
        let mut seen = HashSet::new();
        let mut ino = dir;
        let base = loop {
            if ino == Ino::ROOT {
                break Some(Vec::new());
            }
            if let Some(known) = self.dir_paths.get(&ino) {
                break known.clone();
            }
            if chain.len() >= DEPTH_WALK_MAX || !seen.insert(ino) {
                let what = format!("directory {} does not reach the root", dir.0);
                return Err(Error::corrupt(0, what));
            }
            let refs = self.backrefs(ino, 2)?;
            match refs.as_slice() {
                [] => break None,
                [(parent, name)] => {
                    chain.push((ino, name.clone()));
                    ino = *parent;
                }
                _ => {
                    return Err(Error::corrupt(0, format!("directory {} has two names", ino.0)));
                }
            }
        };
        let mut path = base;
        let mut above = ino;
        for (ino, name) in chain.into_iter().rev() {
            if let Some(path) = path.as_mut() {
                path.push(b'/');
                path.extend_from_slice(&name);
            }
            self.dir_paths.insert(ino, path.clone());
            self.links.insert(ino, (above, name));
            above = ino;
        }
        Ok(path)
    }

    /// The entry naming directory `dir` (its directory and its name), known once `dir_path`
    /// has walked through `dir` and found it reachable or not; `None` for the root and for
    /// directories not walked yet.
    pub(crate) fn link(&self, dir: Ino) -> Option<&(Ino, Vec<u8>)> {
        self.links.get(&dir)
    }

    /// What `path` names, walking down from the root; `None` if a component is missing or a
    /// directory on the way is not one. The empty path names the root.
    pub(crate) fn resolve(&self, path: &[u8]) -> Result<Option<Named>> {
        let mut here = Named { ino: Ino::ROOT, kind: FileType::Directory };
        for name in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            if here.kind != FileType::Directory {
                return Ok(None);
            }
            match self.lookup(here.ino, name)? {
                Some(next) => here = next,
                None => return Ok(None),
            }
        }
        Ok(Some(here))
    }

    fn scan(
        &self,
        lo: &[u8],
        hi: &[u8],
        each: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.scan_limited(lo, hi, usize::MAX, each)
    }

    /// Calls `each` on up to `limit` items in `[lo, hi)`, reading them in batches.
    fn scan_limited(
        &self,
        lo: &[u8],
        hi: &[u8],
        limit: usize,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut after: Option<Vec<u8>> = None;
        let mut left = limit;
        while left > 0 {
            let start = after.as_deref().map_or(Bound::Included(lo), Bound::Excluded);
            let asked = left.min(BATCH);
            let batch = self.tree.range(self.store, start, Bound::Excluded(hi), asked)?;
            for (key, value) in &batch {
                each(key, value)?;
            }
            // A short batch is the end of the range: no second descent to find it empty.
            let Some((last, _)) = batch.last().filter(|_| batch.len() == asked) else {
                return Ok(());
            };
            after = Some(last.clone());
            left = left.saturating_sub(batch.len());
        }
        Ok(())
    }
}

/// `path` with `/name` appended.
pub(crate) fn join(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 1 + name.len());
    out.extend_from_slice(path);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// The directory part of `path` (the empty path, the root, for `/name`).
pub(crate) fn parent(path: &[u8]) -> &[u8] {
    let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
    path.get(..cut).unwrap_or(&[])
}
