//! Layer operations: create (an O(1) clone of a committed parent), commit, rename, remove,
//! list, and a layer's metadata items. Each changing operation but `set_layer_meta` is a
//! durability point: it returns after its checkpoint.
//!
//! Invariants: a child's tree starts as its parent's root pointer (nothing is copied); removal
//! frees exactly the node and data blocks whose owner is the removed layer, found by
//! `Tree::visit_owned`, which never descends into an ancestor's node.

use std::ops::Bound;

use super::{Fs, OpenLayer, State};
use crate::error::{Error, Result};
use crate::layer::{check_meta, check_name, meta_key, name_key, record_key, LayerRecord, NAME_PREFIX};
use crate::ns::{self, DirtyPages};
use crate::tree::{NodePtr, Owned, Tree};
use crate::types::{BlockNo, LayerId, LayerInfo, LayerState, Timespec};

impl Fs {
    /// Creates a writable layer, empty or an O(1) clone of the committed layer `parent`.
    pub fn create_layer(&self, name: &str, parent: Option<&str>) -> Result<LayerId> {
        let mut state = self.lock()?;
        let id = state.create_layer(name, parent)?;
        state.checkpoint(false)?;
        Ok(id)
    }

    /// Makes a writable layer immutable; afterwards it may have children. EBUSY while a file
    /// unlinked in it is still open (a committed layer holds no orphan).
    pub fn commit_layer(&self, name: &str) -> Result<()> {
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        if state.open_layer(id)?.rec.state == LayerState::Committed {
            return Err(Error::InvalidArgument("the layer is already committed"));
        }
        state.settle_orphans(id)?;
        let mut rec = state.open_layer(id)?.rec.clone();
        rec.state = LayerState::Committed;
        state.put_record(rec)?;
        state.checkpoint(false)?;
        Ok(())
    }

    /// Creates a layer as `create_layer` with metadata items `meta`, in one checkpoint (a
    /// crash leaves the layer with all of them or no layer).
    pub fn create_layer_with_meta(
        &self,
        name: &str,
        parent: Option<&str>,
        meta: &[(&[u8], &[u8])],
    ) -> Result<LayerId> {
        for (key, value) in meta {
            check_meta(key, Some(value))?;
        }
        let mut state = self.lock()?;
        let id = state.create_layer(name, parent)?;
        for (key, value) in meta {
            if let Err(e) = state.put_meta(id, key, Some(value)) {
                // Not durable yet: take the layer back so no half-made layer remains.
                let _ = state.remove_layer(name);
                return Err(e);
            }
        }
        state.checkpoint(false)?;
        Ok(id)
    }

    /// Commits the writable layer `name` as `commit_layer`, renames it `new_name` (unless it
    /// is `None` or the same) and applies the metadata changes `meta` (`None` removes an
    /// item), all in one checkpoint: what containerd's Commit asks for.
    pub fn commit_layer_as(
        &self,
        name: &str,
        new_name: Option<&str>,
        meta: &[(&[u8], Option<&[u8]>)],
    ) -> Result<()> {
        for (key, value) in meta {
            check_meta(key, *value)?;
        }
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        if state.open_layer(id)?.rec.state == LayerState::Committed {
            return Err(Error::InvalidArgument("the layer is already committed"));
        }
        if let Some(to) = new_name.filter(|to| *to != name) {
            check_name(to)?;
            if state.system.get(&state.store, &name_key(to))?.is_some() {
                return Err(Error::Exists);
            }
        }
        state.settle_orphans(id)?;
        let mut rec = state.open_layer(id)?.rec.clone();
        rec.state = LayerState::Committed;
        state.put_record(rec)?;
        if let Some(to) = new_name {
            state.rename_layer(name, to)?;
        }
        for (key, value) in meta {
            state.put_meta(id, key, *value)?;
        }
        state.checkpoint(false)?;
        Ok(())
    }

    /// Renames layer `from` to `to` in O(1): its record and name index entry change; its
    /// files, children and metadata stay. NotFound, Exists, and `create_layer`'s name rules.
    pub fn rename_layer(&self, from: &str, to: &str) -> Result<()> {
        let mut state = self.lock()?;
        state.rename_layer(from, to)?;
        state.checkpoint(false)?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) the metadata item `key` of layer `name`, committed
    /// or not. Not a durability point: it is durable with the next checkpoint (any layer
    /// operation, `sync` or `checkpoint`). Keys are 1..=255 bytes, values at most 1024.
    pub fn set_layer_meta(&self, name: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        check_meta(key, value)?;
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        state.put_meta(id, key, value)
    }

    /// Every metadata item of layer `name`, in key order.
    pub fn layer_meta(&self, name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let state = self.lock()?;
        let id = state.layer_id(name)?;
        state.meta_items(id)
    }

    /// Removes a layer without children, freeing what it owns.
    pub fn remove_layer(&self, name: &str) -> Result<()> {
        let mut state = self.lock()?;
        state.remove_layer(name)?;
        state.checkpoint(false)?;
        Ok(())
    }

    /// The id of the layer called `name`.
    pub fn layer_id(&self, name: &str) -> Result<LayerId> {
        self.lock()?.layer_id(name)
    }

    /// What the engine knows of the layer called `name`.
    pub fn layer(&self, name: &str) -> Result<LayerInfo> {
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        state.layer_info(id)
    }

    /// Every layer, sorted by name.
    pub fn layers(&self) -> Result<Vec<LayerInfo>> {
        let mut state = self.lock()?;
        let mut out = Vec::new();
        for (id, _) in state.layer_names()? {
            out.push(state.layer_info(id)?);
        }
        Ok(out)
    }
}

fn decode_id(value: &[u8], block: u64) -> Result<LayerId> {
    let bytes: [u8; 8] =
        value.try_into().map_err(|_| Error::corrupt(block, "layer name index entry"))?;
    Ok(LayerId(u64::from_le_bytes(bytes)))
}

impl State {
    pub(crate) fn layer_id(&self, name: &str) -> Result<LayerId> {
        if check_name(name).is_err() {
            return Err(Error::NotFound);
        }
        let value = self.system.get(&self.store, &name_key(name))?.ok_or(Error::NotFound)?;
        decode_id(&value, self.sb.layer_table.block.0)
    }

    /// Every layer's id and name, sorted by name (a scan of the name index).
    pub(crate) fn layer_names(&self) -> Result<Vec<(LayerId, String)>> {
        let lo = [NAME_PREFIX];
        let hi = [NAME_PREFIX + 1];
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let start = match &after {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Included(&lo[..]),
            };
            let batch = self.system.range(&self.store, start, Bound::Excluded(&hi[..]), 256)?;
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.clone());
            for (key, value) in batch {
                let id = decode_id(&value, self.sb.layer_table.block.0)?;
                let name = String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned();
                out.push((id, name));
            }
        }
        Ok(out)
    }

    /// Layer `id`'s metadata items (keys without their system-tree prefix), in key order.
    pub(crate) fn meta_items(&self, id: LayerId) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let lo = meta_key(id, &[]);
        let hi = meta_key(LayerId(id.0 + 1), &[]);
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let start = after.as_deref().map_or(Bound::Included(lo.as_slice()), Bound::Excluded);
            let batch = self.system.range(&self.store, start, Bound::Excluded(hi.as_slice()), 256)?;
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.clone());
            out.extend(batch.into_iter().map(|(k, v)| (k.get(lo.len()..).unwrap_or_default().to_vec(), v)));
        }
        Ok(out)
    }

    /// Sets or removes one metadata item of layer `id` (checked by the caller).
    fn put_meta(&mut self, id: LayerId, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let mut freed = Vec::new();
        let key = meta_key(id, key);
        match value {
            Some(value) => self.system.insert(&self.store, LayerId::SYSTEM, &key, value, &mut freed)?,
            None => self.system.remove(&self.store, LayerId::SYSTEM, &key, &mut freed)?,
        };
        self.release_nodes(freed);
        Ok(())
    }

    fn rename_layer(&mut self, from: &str, to: &str) -> Result<()> {
        let id = self.layer_id(from)?;
        check_name(to)?;
        if from == to {
            return Ok(());
        }
        if self.system.get(&self.store, &name_key(to))?.is_some() {
            return Err(Error::Exists);
        }
        let mut rec = self.open_layer(id)?.rec.clone();
        let mut freed = Vec::new();
        self.system.remove(&self.store, LayerId::SYSTEM, &name_key(from), &mut freed)?;
        self.system.insert(&self.store, LayerId::SYSTEM, &name_key(to), &id.0.to_le_bytes(), &mut freed)?;
        self.release_nodes(freed);
        rec.name = to.to_string();
        self.put_record(rec)
    }

    fn layer_info(&mut self, id: LayerId) -> Result<LayerInfo> {
        let rec = self.open_layer(id)?.rec.clone();
        let parent = match rec.parent {
            Some(p) => Some(self.open_layer(p)?.rec.name.clone()),
            None => None,
        };
        Ok(LayerInfo { id, name: rec.name, parent, state: rec.state, children: rec.children })
    }

    /// Stores `rec` in the layer table and in the open layer.
    pub(crate) fn put_record(&mut self, rec: LayerRecord) -> Result<()> {
        let mut freed = Vec::new();
        let key = record_key(rec.id);
        self.system.insert(&self.store, LayerId::SYSTEM, &key, &rec.encode(), &mut freed)?;
        self.release_nodes(freed);
        if let Some(open) = self.open.get_mut(&rec.id) {
            open.rec = rec;
        }
        Ok(())
    }

    fn release_nodes(&mut self, freed: Vec<BlockNo>) {
        for block in freed {
            self.space.release(block, 1);
            self.store.forget(block, 1);
        }
    }

    pub(super) fn create_layer(&mut self, name: &str, parent: Option<&str>) -> Result<LayerId> {
        check_name(name)?;
        if self.system.get(&self.store, &name_key(name))?.is_some() {
            return Err(Error::Exists);
        }
        let parent_rec = match parent {
            Some(p) => {
                let pid = self.layer_id(p)?;
                let rec = self.open_layer(pid)?.rec.clone();
                if rec.state != LayerState::Committed {
                    return Err(Error::InvalidArgument("the parent layer is not committed"));
                }
                Some(rec)
            }
            None => None,
        };
        if let Some(p) = &parent_rec {
            // A clone starts from the parent's written tree. A commit checkpoints the parent,
            // but if that checkpoint failed (an I/O error), the committed parent may still hold
            // dirty pages and nodes the clone would not see: write them first, as the first
            // steps of the checkpoint that makes this layer durable (no superblock between, so
            // a crash recovers the state before or after the creation, nothing in between).
            let open = self.open_layer(p.id)?;
            if open.tree.is_dirty() || !open.pages.is_empty() || open.tree.root_block().is_none() {
                self.write_layers()?;
            }
        }
        let id = LayerId(self.next_layer);
        let tree = match &parent_rec {
            Some(p) => {
                let open = self.open_layer(p.id)?;
                match open.tree.root_block() {
                    Some(root) => Tree::from_root(root),
                    // A committed layer is checkpointed by its commit; keep going if not.
                    None => open.tree.clone(),
                }
            }
            None => Tree::new(id),
        };
        let rec = LayerRecord {
            id,
            parent: parent_rec.as_ref().map(|p| p.id),
            state: LayerState::Writable,
            children: 0,
            // A clone shares its parent's root from the start: a child that is never written
            // must still name a tree at the next checkpoint (its tree is not dirty).
            root: tree.root_block().unwrap_or(NodePtr::NONE),
            created_sec: Timespec::now().sec,
            name: name.to_string(),
        };
        self.make_room();
        self.open.insert(id, OpenLayer { rec: rec.clone(), tree, pages: DirtyPages::default() });
        if parent_rec.is_none() {
            self.with_layer(id, true, ns::init_root)?;
        }
        self.next_layer += 1;
        let mut freed = Vec::new();
        self.system.insert(&self.store, LayerId::SYSTEM, &name_key(name), &id.0.to_le_bytes(), &mut freed)?;
        self.release_nodes(freed);
        self.put_record(rec)?;
        if let Some(mut p) = parent_rec {
            p.children += 1;
            self.put_record(p)?;
        }
        Ok(id)
    }

    pub(super) fn remove_layer(&mut self, name: &str) -> Result<()> {
        let id = self.layer_id(name)?;
        let rec = self.open_layer(id)?.rec.clone();
        if rec.children > 0 {
            return Err(Error::Busy("the layer has children"));
        }
        self.free_owned(id)?;
        let mut freed = Vec::new();
        self.system.remove(&self.store, LayerId::SYSTEM, &record_key(id), &mut freed)?;
        self.system.remove(&self.store, LayerId::SYSTEM, &name_key(name), &mut freed)?;
        for (key, _) in self.meta_items(id)? {
            self.system.remove(&self.store, LayerId::SYSTEM, &meta_key(id, &key), &mut freed)?;
        }
        self.release_nodes(freed);
        self.open.remove(&id);
        self.views.remove(&id);
        self.unfinished.remove(&id);
        if let Some(pid) = rec.parent {
            let mut p = self.open_layer(pid)?.rec.clone();
            p.children = p.children.saturating_sub(1);
            self.put_record(p)?;
        }
        Ok(())
    }

    /// Releases every node and data block owned by layer `id`.
    fn free_owned(&mut self, id: LayerId) -> Result<()> {
        let State { store, space, open, .. } = self;
        let Some(layer) = open.get_mut(&id) else { return Ok(()) };
        // Unwritten pages have no blocks; dirty tree nodes are visited in memory.
        layer.pages = DirtyPages::default();
        let mut blocks: Vec<(BlockNo, u64)> = Vec::new();
        layer.tree.visit_owned(&*store, id, &mut |owned| {
            match owned {
                Owned::Node(block) => blocks.push((block, 1)),
                Owned::Item { key, value } => {
                    if let Some(extent) = ns::owned_extent(key, value, id) {
                        blocks.push(extent);
                    }
                }
            }
            Ok(())
        })?;
        for (start, len) in blocks {
            space.release(start, len);
            store.forget(start, len);
        }
        Ok(())
    }
}
