//! Layer operations: create (an O(1) clone of a committed parent), commit, remove, list.
//! Each is a durability point: it returns after its checkpoint.
//!
//! Invariants: a child's tree starts as its parent's root pointer (nothing is copied); removal
//! frees exactly the node and data blocks whose owner is the removed layer, found by
//! `Tree::visit_owned`, which never descends into an ancestor's node.

use std::ops::Bound;

use super::{Fs, OpenLayer, State};
use crate::error::{Error, Result};
use crate::layer::{check_name, name_key, record_key, LayerRecord, NAME_PREFIX};
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
