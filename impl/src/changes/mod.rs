//! `Fs::changes`: what a layer changed against its parent, as `docker diff` and the graph
//! driver's Changes report it, computed from the two trees (docs/layers.md, "Diff").
//!
//! Method:
//! 1. `Tree::diff` of the parent's tree against the layer's, which skips every subtree the two
//!    share (the same block): the items read grow with the change, not with the image. Each
//!    differing item is sorted by its key: a directory entry `(dir, name)` that was added,
//!    removed or repointed is an *entry change*; any other item of an inode (record, xattr,
//!    symlink target, extent) marks the inode *touched*; back-references and orphan items add
//!    nothing (they mirror entries, and orphans have no path).
//! 2. Candidate paths: `dir path + /name` of every entry change, and every path of every
//!    touched inode, found in the layer by walking up the back-references (`view.rs`).
//! 3. Each candidate is resolved in both layers and classified (`classify`); an added
//!    directory brings its whole subtree (Added), a path whose inode was replaced by another
//!    directory is compared name by name below it. Two shortcuts, from what the tree diff
//!    proved (`Steady`): where no entry on the way from the root to a candidate's directory is
//!    an entry change, that directory has the same path in both layers, so the candidate is
//!    one lookup per layer (its last entry) instead of a walk from the root; and where its last
//!    entry is unchanged too, the path names the same inode in both layers: a touched inode's
//!    path is then Modified without a lookup.
//! 4. Every directory above a change is Modified (Docker lists them, so that their mtimes can
//!    be restored), the root excepted.
//!
//! The result, sorted by path bytes (docs/layers.md gives the proof that it equals the
//! path-by-path definition):
//! - `Added`: a path the layer has and its parent lacks;
//! - `Deleted`: a path the parent has and the layer lacks, whose parent path the layer has
//!   (only the top of a deleted subtree);
//! - `Modified`: a path both have, naming different inodes, or the same inode with any item
//!   changed (content, attributes, xattrs), or a directory above another change. Every path of
//!   a changed inode is listed (hard links).
//!
//! Invariants: reads only; every walk over on-disk data is bounded (`view.rs`), and a directory
//! met twice in one subtree walk is `Corrupt`.

#[cfg(test)]
mod tests;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::error::{Error, Result};
use crate::format::records::{self, Key};
use crate::fs::Fs;
use crate::tree::{DiffItem, NodeStore, Tree};
use crate::types::{FileType, Ino, LayerId};

use view::{join, parent, Named, View, DEPTH_WALK_MAX};

/// How a path changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints: `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path of a layer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Absolute, e.g. `/etc/passwd`.
    pub path: Vec<u8>,
    pub kind: ChangeKind,
}

impl Fs {
    /// The changes of layer `layer` against its parent, sorted by path; a layer without parent
    /// has every path Added. See the module doc for the rules.
    pub fn changes(&self, layer: LayerId) -> Result<Vec<Change>> {
        let mut state = self.lock()?;
        let (tree, parent) = {
            let open = state.open_layer(layer)?;
            (open.tree.clone(), open.rec.parent)
        };
        let parent_tree = match parent {
            Some(id) => Some(state.open_layer(id)?.tree.clone()),
            None => None,
        };
        changes_between(&state.store, parent_tree.as_ref(), &tree)
    }
}

/// The changes from `old` (none: an empty layer) to `new`.
pub(crate) fn changes_between(
    store: &dyn NodeStore,
    old: Option<&Tree>,
    new: &Tree,
) -> Result<Vec<Change>> {
    let mut out = Out::default();
    let mut newv = View::new(new, store);
    match old {
        None => {
            let root = Named { ino: Ino::ROOT, kind: FileType::Directory };
            add_subtree(&newv, root, &[], &mut out)?;
        }
        Some(old) => {
            let oldv = View::new(old, store);
            let Differing { entries, touched } = differing(store, old, new)?;
            let mut steady = Steady { entries: &entries, known: HashMap::new() };
            // Each candidate path, with the directory holding its last entry when that
            // directory has the same path in both layers (then one lookup per side finds it).
            let mut candidates: BTreeMap<Vec<u8>, Option<(Ino, Vec<u8>)>> = BTreeMap::new();
            for (dir, name) in &entries {
                if let Some(path) = newv.dir_path(*dir)? {
                    let held = steady.dir(&newv, *dir).then(|| (*dir, name.clone()));
                    candidates.insert(join(&path, name), held);
                }
            }
            for &ino in &touched {
                for (dir, name) in newv.backrefs(ino, usize::MAX)? {
                    let Some(path) = newv.dir_path(dir)? else { continue };
                    let path = join(&path, &name);
                    if !steady.dir(&newv, dir) {
                        candidates.insert(path, None);
                    } else if !entries.contains(&(dir, name.clone())) {
                        // Every entry from the root to it is unchanged: the path names this
                        // inode in both layers, and its items differ.
                        out.put(path, ChangeKind::Modified);
                    } else {
                        candidates.insert(path, Some((dir, name)));
                    }
                }
            }
            let sides = Sides { old: &oldv, new: &newv, touched: &touched };
            for (path, held) in candidates {
                classify(&sides, path, held, &mut out)?;
            }
        }
    }
    Ok(out.finish())
}

/// What the tree diff found (module doc, step 1).
struct Differing {
    /// Directory entries added, removed or repointed: (directory, name).
    entries: BTreeSet<(Ino, Vec<u8>)>,
    /// Inodes with any other item changed.
    touched: HashSet<Ino>,
}

/// The entry changes and the touched inodes of the tree diff.
fn differing(store: &dyn NodeStore, old: &Tree, new: &Tree) -> Result<Differing> {
    let mut entries = BTreeSet::new();
    let mut touched = HashSet::new();
    old.diff(new, store, &mut |item| {
        let key = match item {
            DiffItem::Added { key, .. }
            | DiffItem::Removed { key, .. }
            | DiffItem::Changed { key, .. } => key,
        };
        match records::decode_key(key)? {
            Key::DirEntry(dir, name) => {
                entries.insert((dir, name));
            }
            Key::Inode(ino)
            | Key::Xattr(ino, _)
            | Key::SymlinkChunk(ino, _)
            | Key::Extent(ino, _) => {
                touched.insert(ino);
            }
            Key::InodeRef(..) | Key::Orphan(_) => {}
        }
        Ok(())
    })?;
    Ok(Differing { entries, touched })
}

/// Which directories have the same path in both layers, known without reading either: a
/// directory whose every entry from the root down is not an entry change (the tree diff
/// proves those entries equal in both). Walks the links `View::dir_path` recorded.
struct Steady<'e> {
    entries: &'e BTreeSet<(Ino, Vec<u8>)>,
    known: HashMap<Ino, bool>,
}

impl Steady<'_> {
    /// Whether `dir`, whose path in `view` was found, has that path in both layers. Not
    /// knowing (a link not walked, a walk longer than any real tree) answers no: the caller
    /// then resolves the path in full.
    fn dir(&mut self, view: &View<'_>, dir: Ino) -> bool {
        let mut below = Vec::new();
        let mut at = dir;
        let steady = loop {
            if at == Ino::ROOT {
                break true;
            }
            if let Some(&known) = self.known.get(&at) {
                break known;
            }
            let Some((up, name)) = view.link(at).filter(|_| below.len() < DEPTH_WALK_MAX) else {
                break false;
            };
            below.push(at);
            if self.entries.contains(&(*up, name.clone())) {
                break false;
            }
            at = *up;
        };
        for ino in below {
            self.known.insert(ino, steady);
        }
        steady
    }
}

/// Both layers and the inodes whose items differ.
struct Sides<'v, 'a> {
    old: &'v View<'a>,
    new: &'v View<'a>,
    touched: &'v HashSet<Ino>,
}

/// The changes found so far, by path.
#[derive(Default)]
struct Out {
    by_path: BTreeMap<Vec<u8>, ChangeKind>,
}

impl Out {
    fn put(&mut self, path: Vec<u8>, kind: ChangeKind) {
        assert!(!path.is_empty(), "the root is never a change");
        self.by_path.insert(path, kind);
    }

    /// Adds every directory above a change as Modified (step 4) and lists the changes.
    fn finish(mut self) -> Vec<Change> {
        let listed: Vec<Vec<u8>> = self.by_path.keys().cloned().collect();
        for path in listed {
            let mut up = parent(&path);
            // An ancestor already present is either listed (its own turn comes) or was added
            // here together with everything above it.
            while !up.is_empty() && !self.by_path.contains_key(up) {
                self.by_path.insert(up.to_vec(), ChangeKind::Modified);
                up = parent(up);
            }
        }
        self.by_path.into_iter().map(|(path, kind)| Change { path, kind }).collect()
    }
}

/// Classifies one candidate path (module doc, step 3); `held`: the directory holding its last
/// entry and its name, when that directory has the same path in both layers.
fn classify(
    sides: &Sides<'_, '_>,
    path: Vec<u8>,
    held: Option<(Ino, Vec<u8>)>,
    out: &mut Out,
) -> Result<()> {
    let (before, after) = match &held {
        Some((dir, name)) => (sides.old.lookup(*dir, name)?, sides.new.lookup(*dir, name)?),
        None => (sides.old.resolve(&path)?, sides.new.resolve(&path)?),
    };
    match (before, after) {
        (None, None) => {}
        (None, Some(after)) => {
            out.put(path.clone(), ChangeKind::Added);
            add_subtree(sides.new, after, &path, out)?;
        }
        (Some(_), None) => {
            if held.is_some() || sides.new.resolve(parent(&path))?.is_some() {
                out.put(path, ChangeKind::Deleted);
            }
        }
        (Some(before), Some(after)) if before.ino == after.ino => {
            if sides.touched.contains(&after.ino) {
                out.put(path, ChangeKind::Modified);
            }
        }
        (Some(before), Some(after)) => {
            out.put(path.clone(), ChangeKind::Modified);
            if is_dir(before) || is_dir(after) {
                compare_below(sides, before, after, path, out)?;
            }
        }
    }
    Ok(())
}

/// Lists everything below `top` (a directory, else nothing) in the new layer as Added.
fn add_subtree(view: &View<'_>, top: Named, path: &[u8], out: &mut Out) -> Result<()> {
    let mut seen = HashSet::new();
    let mut stack = vec![(top, path.to_vec(), 0usize)];
    while let Some((dir, path, depth)) = stack.pop() {
        if dir.kind != FileType::Directory {
            continue;
        }
        check_walk(&mut seen, dir.ino, depth)?;
        for (name, child) in view.entries(dir.ino)? {
            let child_path = join(&path, &name);
            out.put(child_path.clone(), ChangeKind::Added);
            stack.push((child, child_path, depth + 1));
        }
    }
    Ok(())
}

/// Compares, name by name, what lies below one path in the two layers where it names two
/// different inodes (a replaced directory, a RENAME_EXCHANGE): descends while the inodes
/// differ; where they are the same, the entry changes and touched inodes found below cover it.
fn compare_below(
    sides: &Sides<'_, '_>,
    before: Named,
    after: Named,
    path: Vec<u8>,
    out: &mut Out,
) -> Result<()> {
    let (mut seen_old, mut seen_new) = (HashSet::new(), HashSet::new());
    let mut stack = vec![(before, after, path, 0usize)];
    while let Some((before, after, path, depth)) = stack.pop() {
        if before.kind == FileType::Directory {
            check_walk(&mut seen_old, before.ino, depth)?;
        }
        if after.kind == FileType::Directory {
            check_walk(&mut seen_new, after.ino, depth)?;
        }
        let old_entries = listing(sides.old, before)?;
        let new_entries = listing(sides.new, after)?;
        let mut old_iter = old_entries.into_iter().peekable();
        let mut new_iter = new_entries.into_iter().peekable();
        loop {
            let order = match (old_iter.peek(), new_iter.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let Some((name, _)) = old_iter.next() else { break };
                    out.put(join(&path, &name), ChangeKind::Deleted);
                }
                std::cmp::Ordering::Greater => {
                    let Some((name, child)) = new_iter.next() else { break };
                    let child_path = join(&path, &name);
                    out.put(child_path.clone(), ChangeKind::Added);
                    add_subtree(sides.new, child, &child_path, out)?;
                }
                std::cmp::Ordering::Equal => {
                    let (Some((name, was)), Some((_, now))) = (old_iter.next(), new_iter.next())
                    else {
                        break;
                    };
                    let child_path = join(&path, &name);
                    if was.ino != now.ino {
                        out.put(child_path.clone(), ChangeKind::Modified);
                        if is_dir(was) || is_dir(now) {
                            stack.push((was, now, child_path, depth + 1));
                        }
                    } else if sides.touched.contains(&now.ino) {
                        out.put(child_path, ChangeKind::Modified);
                    }
                }
            }
        }
    }
    Ok(())
}

fn is_dir(named: Named) -> bool {
    named.kind == FileType::Directory
}

/// The entries of `named` if it is a directory, none otherwise.
fn listing(view: &View<'_>, named: Named) -> Result<Vec<(Vec<u8>, Named)>> {
    if named.kind == FileType::Directory {
        view.entries(named.ino)
    } else {
        Ok(Vec::new())
    }
}

/// One step of a subtree walk: a directory met twice, or a walk deeper than any directory
/// tree the engine makes, is a corrupt tree (a cycle).
fn check_walk(seen: &mut HashSet<Ino>, dir: Ino, depth: usize) -> Result<()> {
    if depth > DEPTH_WALK_MAX || !seen.insert(dir) {
        return Err(Error::corrupt(0, format!("directory {} is below itself", dir.0)));
    }
    Ok(())
}
