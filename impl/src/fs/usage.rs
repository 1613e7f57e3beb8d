//! What a layer costs and what it holds, for `lcfs stats` and the runtimes' Usage calls.
//!
//! - `layer_usage`: the blocks the layer owns (its private nodes and data), found by the same
//!   walk as layer removal (`Tree::visit_owned`), so the cost is proportional to what the layer
//!   wrote, never to what it inherited.
//! - `layer_view`: the inodes and file bytes the layer *sees* (inherited or not). A committed
//!   layer never changes, so its view is computed once and remembered (keyed by its root
//!   block); a writable layer's view is its parent's remembered view plus a tree diff against
//!   the parent (`Tree::diff` skips shared subtrees), so its cost grows with what the layer
//!   changed. Only a layer with nothing remembered to start from is walked whole, once: one
//!   layer's tree, never a chain of ancestors.
//!
//! Invariants: the remembered views are in memory only; an entry names the root it was
//! computed from and is used only while the layer's tree is still that root.

use std::collections::HashMap;
use std::ops::Bound;

use super::{Fs, State};
use crate::error::Result;
use crate::format::records::{self, Key};
use crate::ns;
use crate::tree::{DiffItem, NodePtr, Owned, Tree};
use crate::types::{FileType, LayerId, LayerState};

/// The private footprint of one layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerUsage {
    /// Tree node blocks the layer owns.
    pub node_blocks: u64,
    /// Data blocks the layer owns.
    pub data_blocks: u64,
    /// File data written since the last checkpoint (not yet in blocks).
    pub unwritten_bytes: u64,
}

impl LayerUsage {
    /// Bytes on the device that only this layer holds (or will, after the next checkpoint).
    pub fn private_bytes(&self) -> u64 {
        (self.node_blocks + self.data_blocks) * 4096 + self.unwritten_bytes
    }
}

/// What a layer's directory tree holds, as a reader of the layer sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerView {
    /// Inodes (files, directories, links, devices; open-but-unlinked ones too).
    pub inodes: u64,
    /// The sizes of its regular files and symbolic links added up (apparent bytes: holes
    /// count, as `du --apparent-size` counts them).
    pub bytes: u64,
}

/// Items read per batch when a tree is walked whole.
const WALK_BATCH: usize = 1024;

/// Views remembered per layer, with the root they were computed from.
pub(crate) type Views = HashMap<LayerId, (NodePtr, LayerView)>;

/// What one inode item adds to a view.
fn inode_view(key: &[u8], value: &[u8]) -> Result<Option<LayerView>> {
    if !matches!(records::decode_key(key), Ok(Key::Inode(_))) {
        return Ok(None);
    }
    let rec = records::decode_inode(value)?;
    let bytes = match rec.kind {
        FileType::Regular | FileType::Symlink => rec.size,
        _ => 0,
    };
    Ok(Some(LayerView { inodes: 1, bytes }))
}

impl Fs {
    /// The private footprint of the layer called `name`.
    pub fn layer_usage(&self, name: &str) -> Result<LayerUsage> {
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        state.open_layer(id)?;
        let super::State { store, open, .. } = &*state;
        let Some(layer) = open.get(&id) else {
            return Ok(LayerUsage::default());
        };
        let mut usage = LayerUsage {
            unwritten_bytes: layer.pages.bytes(),
            ..LayerUsage::default()
        };
        layer.tree.visit_owned(store, id, &mut |owned| {
            match owned {
                Owned::Node(_) => usage.node_blocks += 1,
                Owned::Item { key, value } => {
                    if let Some((_, len)) = ns::owned_extent(key, value, id) {
                        usage.data_blocks += len;
                    }
                }
            }
            Ok(())
        })?;
        Ok(usage)
    }

    /// The inodes and bytes the layer called `name` holds, inherited ones included (see the
    /// module doc for the cost).
    pub fn layer_view(&self, name: &str) -> Result<LayerView> {
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        state.layer_view(id)
    }
}

impl State {
    fn layer_view(&mut self, id: LayerId) -> Result<LayerView> {
        let layer = self.open_layer(id)?;
        let (rec, tree) = (layer.rec.clone(), layer.tree.clone());
        let root = tree.root_block();
        if let (Some(root), Some((seen, view))) = (root, self.views.get(&id)) {
            if *seen == root {
                return Ok(*view);
            }
        }
        let view = match rec.parent {
            Some(parent) => {
                let parent_tree = self.open_layer(parent)?.tree.clone();
                let base = self.remembered_view(parent)?;
                diff_view(self, &parent_tree, &tree, base)?
            }
            None => walk_view(self, &tree)?,
        };
        if let (Some(root), LayerState::Committed) = (root, rec.state) {
            self.views.insert(id, (root, view));
        }
        Ok(view)
    }

    /// The view of committed layer `id`, remembered, or computed by walking its own tree once.
    fn remembered_view(&mut self, id: LayerId) -> Result<LayerView> {
        let tree = self.open_layer(id)?.tree.clone();
        let root = tree.root_block();
        if let (Some(root), Some((seen, view))) = (root, self.views.get(&id)) {
            if *seen == root {
                return Ok(*view);
            }
        }
        let view = walk_view(self, &tree)?;
        if let Some(root) = root {
            self.views.insert(id, (root, view));
        }
        Ok(view)
    }
}

/// The view of `tree`, by reading every item of it.
fn walk_view(state: &State, tree: &Tree) -> Result<LayerView> {
    let mut view = LayerView::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let lo = match &after {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        let batch = tree.range(&state.store, lo, Bound::Unbounded, WALK_BATCH)?;
        let Some((last, _)) = batch.last() else { return Ok(view) };
        after = Some(last.clone());
        for (key, value) in &batch {
            if let Some(item) = inode_view(key, value)? {
                view.inodes += item.inodes;
                view.bytes = view.bytes.saturating_add(item.bytes);
            }
        }
    }
}

/// `base` (the view of `parent`) changed by every inode item `tree` adds, removes or changes.
fn diff_view(state: &State, parent: &Tree, tree: &Tree, base: LayerView) -> Result<LayerView> {
    let (mut inodes, mut bytes) = (i128::from(base.inodes), i128::from(base.bytes));
    parent.diff(tree, &state.store, &mut |item| {
        let (gone, came) = match item {
            DiffItem::Added { key, value } => (None, inode_view(key, value)?),
            DiffItem::Removed { key, value } => (inode_view(key, value)?, None),
            DiffItem::Changed { key, old, new } => (inode_view(key, old)?, inode_view(key, new)?),
        };
        for (sign, view) in [(-1i128, gone), (1, came)] {
            if let Some(view) = view {
                inodes += sign * i128::from(view.inodes);
                bytes += sign * i128::from(view.bytes);
            }
        }
        Ok(())
    })?;
    let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
    Ok(LayerView { inodes: clamp(inodes), bytes: clamp(bytes) })
}

#[cfg(test)]
mod tests {
    //! A layer's view counted from its parent's remembered view plus a diff must equal the
    //! view counted by walking the layer's own tree whole, before and after a checkpoint.
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use std::sync::Arc;

    use super::{walk_view, LayerView};
    use crate::fs::{Fs, MkfsOptions, MountOptions};
    use crate::types::{FileType, Ino, LayerId, SetAttr, Timespec};
    use crate::MemDevice;

    fn walked(fs: &Fs, id: LayerId) -> LayerView {
        let mut state = fs.lock().unwrap();
        let tree = state.open_layer(id).unwrap().tree.clone();
        walk_view(&state, &tree).unwrap()
    }

    #[test]
    fn views_follow_creates_writes_truncates_and_removals() {
        let dev = Arc::new(MemDevice::new(8192));
        Fs::mkfs(dev.clone(), &MkfsOptions::default()).unwrap();
        let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
        let now = Timespec::now();
        let base = fs.create_layer("base", None).unwrap();
        let dir = fs.mkdir(base, Ino::ROOT, b"d", 0o755, 0, 0, now).unwrap().ino;
        let mut files = Vec::new();
        for i in 0..300u32 {
            let name = format!("f{i}");
            let f = fs.mknod(base, dir, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now);
            let f = f.unwrap().ino;
            fs.write(base, f, 0, &vec![1u8; i as usize * 10], now).unwrap();
            files.push(f);
        }
        fs.symlink(base, Ino::ROOT, b"s", b"d/f1", 0, 0, now).unwrap();
        let expect = LayerView { inodes: 303, bytes: (0..300u64).map(|i| i * 10).sum::<u64>() + 4 };
        assert_eq!(fs.layer_view("base").unwrap(), expect);
        fs.commit_layer("base").unwrap();
        assert_eq!(fs.layer_view("base").unwrap(), expect);

        let child = fs.create_layer("child", Some("base")).unwrap();
        assert_eq!(fs.layer_view("child").unwrap(), expect);
        fs.write(child, files[5], 0, &[2u8; 100_000], now).unwrap();
        let set = SetAttr { size: Some(0), ..SetAttr::default() };
        fs.setattr(child, files[299], &set, now).unwrap();
        fs.unlink(child, dir, b"f7", now).unwrap();
        fs.mknod(child, Ino::ROOT, b"new", FileType::Fifo, 0o644, 0, 0, 0, now).unwrap();
        let changed = LayerView {
            inodes: 303,
            bytes: expect.bytes - 50 + 100_000 - 2990 - 70,
        };
        for round in 0..2 {
            assert_eq!(fs.layer_view("child").unwrap(), changed, "round {round}");
            assert_eq!(walked(&fs, child), changed, "round {round}");
            fs.checkpoint().unwrap();
        }
        assert_eq!(fs.layer_view("base").unwrap(), expect);
    }
    /// Node lookups (cache hits and misses) so far.
    fn node_lookups(fs: &Fs) -> u64 {
        let (nodes, _) = fs.cache_stats().unwrap();
        nodes.hits + nodes.misses
    }

    #[test]
    fn a_deep_layer_costs_one_tree_walk_at_most_and_then_only_its_changes() {
        let dev = Arc::new(MemDevice::new(16_384));
        Fs::mkfs(dev.clone(), &MkfsOptions::default()).unwrap();
        let fs = Fs::mount(dev.clone(), &MountOptions::default()).unwrap();
        let now = Timespec::now();
        let base = fs.create_layer("l0", None).unwrap();
        for i in 0..3000u32 {
            let name = format!("file-with-a-long-name-{i:05}");
            fs.mknod(base, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now)
                .unwrap();
        }
        fs.commit_layer("l0").unwrap();
        let depth = 30;
        for i in 1..=depth {
            let id = fs.create_layer(&format!("l{i}"), Some(&format!("l{}", i - 1))).unwrap();
            let name = format!("added-{i}");
            fs.mknod(id, Ino::ROOT, name.as_bytes(), FileType::Regular, 0o644, 0, 0, 0, now)
                .unwrap();
            fs.commit_layer(&format!("l{i}")).unwrap();
        }
        let top = fs.create_layer("top", Some(&format!("l{depth}"))).unwrap();
        fs.mknod(top, Ino::ROOT, b"mine", FileType::Regular, 0o644, 0, 0, 0, now).unwrap();
        fs.unmount().unwrap();

        // A fresh mount remembers nothing: the first count walks the parent's tree once (not
        // the chain of 31 ancestors), then diffs.
        let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
        let before = node_lookups(&fs);
        let view = fs.layer_view("top").unwrap();
        let first = node_lookups(&fs) - before;
        assert_eq!(view.inodes, 1 + 3000 + depth + 1);
        let before = node_lookups(&fs);
        assert_eq!(walked(&fs, top), view);
        let full = node_lookups(&fs) - before;
        assert!(full > 20, "the tree has many nodes: {full}");
        let why = format!("one walk and a diff, not {depth} walks: {first} vs {full}");
        assert!(first <= 2 * full + 10, "{why}");

        // Afterwards: only what changed since the remembered parent.
        fs.mknod(top, Ino::ROOT, b"more", FileType::Regular, 0o644, 0, 0, 0, now).unwrap();
        let before = node_lookups(&fs);
        assert_eq!(fs.layer_view("top").unwrap().inodes, view.inodes + 1);
        let again = node_lookups(&fs) - before;
        eprintln!("node lookups: first count {first}, a full walk {full}, after a change {again}");
        assert!(again * 4 < full, "a diff against the remembered parent: {again} vs {full}");
    }
}
