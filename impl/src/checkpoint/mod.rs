//! The checkpoint: the only way anything becomes durable.
//!
//! Steps (docs/crash.md argues each against where a crash could land):
//! 1. every open layer's dirty pages become extents in fresh blocks (delayed allocation);
//! 2. every dirty layer tree is written bottom-up to fresh blocks; its record gets the new root;
//! 3. the system tree (layer table) is written the same way;
//! 4. the free map, as it will be once this checkpoint is durable (free + pending + the old
//!    free-map chain), is written to fresh blocks;
//! 5. flush; 6. the superblock with the next generation goes to the slot that does not hold
//!    the durable one; 7. flush;
//! 8. only now do pending blocks and the old free-map chain become reusable.
//!
//! Invariants:
//! - no block referenced by the durable superblock is written before step 6 returns;
//! - a failed checkpoint leaves the durable image untouched and the in-memory state consistent,
//!   so it can be retried, and leaks nothing: a tree whose `write_dirty` fails is left as it
//!   was, so the node blocks allocated for it go straight back to the free map; a tree written
//!   whose record could not be updated is taken again by the next checkpoint;
//! - a generation names one superblock content: once a superblock write was issued, its
//!   generation is used up even if the flush after it fails (that superblock may still land,
//!   or may be lost, as a failed fsync may drop writes), so the retry takes the next
//!   generation, in the same slot: the durable superblock is never overwritten before another
//!   is durable.

use crate::alloc::freemap;
use crate::error::{Error, Result};
use crate::fs::State;
use crate::layer::record_key;
use crate::ns;
use crate::store::BlockWriter;
use crate::types::{BlockNo, Generation, LayerId};

/// How many generations a mount reserves: its first checkpoint takes the generation this far
/// past any the image shows, so that none of the checkpoints an earlier mount tried and lost
/// (at most this many since its last durable one) shares a generation with this mount's.
pub const GENERATION_RESERVE: u64 = 1 << 20;

impl State {
    /// The first checkpoint of a read-write mount, before anything is written under another
    /// generation: it holds the state found, under a generation `GENERATION_RESERVE` past the
    /// highest one the image shows. Without it, a mount after checkpoints that failed part way
    /// (a failed unmount, then a mount) would stamp blocks with their generations again, and
    /// a stale block they left, where a write of this mount went astray, would pass as new.
    pub(crate) fn reserve_generations(&mut self) -> Result<Generation> {
        // Past the guard of `next_generation`: a failed reservation fails the mount, and the
        // next mount writes the very same blocks again under the same generation.
        let base = self.sb.generation.0.max(self.generation_used.0);
        self.attempt(Generation(base + GENERATION_RESERVE), false)
    }

    /// Runs one checkpoint; `clean` marks it as written by a clean unmount. A failed one uses
    /// its generation up (`generation_used`).
    pub(crate) fn checkpoint(&mut self, clean: bool) -> Result<Generation> {
        let generation = self.next_generation()?;
        self.attempt(generation, clean)
    }

    /// One checkpoint under `generation`, used up whether it lands or not.
    fn attempt(&mut self, generation: Generation, clean: bool) -> Result<Generation> {
        let done = self.checkpoint_as(generation, clean);
        self.used_up_on_error(generation, done)
    }

    /// `result` of writing under `generation`: on an error the generation counts as used, as
    /// blocks may carry it.
    fn used_up_on_error<T>(&mut self, generation: Generation, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.generation_used = self.generation_used.max(generation);
        }
        result
    }

    fn checkpoint_as(&mut self, generation: Generation, clean: bool) -> Result<Generation> {
        self.write_layers_as(generation)?;
        let layer_table = {
            let mut writer = BlockWriter::new(&self.store, &mut self.space);
            let written = self.system.write_dirty(&mut writer, generation);
            if written.is_err() {
                writer.give_back_nodes();
            }
            written?
        };
        let (chain, free_blocks) = self.write_free_map(generation)?;
        let mut sb = self.sb.clone();
        sb.slot = self.sb.other_slot();
        sb.generation = generation;
        sb.layer_table = layer_table;
        sb.free_map = chain.first().copied().unwrap_or(BlockNo(0));
        sb.free_map_blocks = chain.len() as u32;
        sb.blocks_free = free_blocks;
        sb.next_ino = self.next_ino;
        sb.next_layer = self.next_layer;
        sb.flags = if clean { crate::format::superblock::FLAG_CLEAN } else { 0 };
        let dev = self.store.device();
        if let Err(e) = dev.flush() {
            self.give_back(&chain);
            return Err(e.into());
        }
        let landed = dev.write(sb.slot().0, &sb.encode()).map(|()| {
            self.generation_used = generation;
        });
        if let Err(e) = landed.and_then(|()| dev.flush()) {
            // The superblock may or may not have landed. The old free-map chain stays in use,
            // and the new one waits for the next durable checkpoint like any freed block, so
            // whichever generation wins at mount finds its free map intact.
            for block in &chain {
                self.space.release(*block, 1);
            }
            return Err(e.into());
        }
        for block in std::mem::replace(&mut self.free_map_chain, chain) {
            self.space.release(block, 1);
        }
        self.space.checkpoint_done();
        self.sb = sb;
        Ok(generation)
    }

    /// The generation the next checkpoint takes: past every one used. EBUSY once the
    /// checkpoints that failed since the last durable one would run past this mount's
    /// reservation (a million I/O errors in a row): a mount starts a new one.
    fn next_generation(&self) -> Result<Generation> {
        let next = self.sb.generation.0.max(self.generation_used.0) + 1;
        if next - self.sb.generation.0 >= GENERATION_RESERVE {
            return Err(Error::Busy(
                "too many checkpoints failed since the last durable one: unmount and mount again",
            ));
        }
        Ok(Generation(next))
    }

    /// The first two steps of the next checkpoint, without its superblock: every layer's dirty
    /// pages and tree written, under the generation that checkpoint will take (nothing issues
    /// a superblock in between, so it takes the same one). Afterwards every open layer's tree
    /// is clean and its root names all of its content, which a clone needs.
    pub(crate) fn write_layers(&mut self) -> Result<()> {
        let generation = self.next_generation()?;
        let written = self.write_layers_as(generation);
        self.used_up_on_error(generation, written)
    }

    /// Every layer's dirty pages and tree, under `generation`.
    fn write_layers_as(&mut self, generation: Generation) -> Result<()> {
        self.space.check_damage()?;
        self.flush_layer_data()?;
        self.write_layer_trees(generation)
    }

    fn flush_layer_data(&mut self) -> Result<()> {
        let mut ids: Vec<LayerId> =
            self.open.iter().filter(|(_, l)| !l.pages.is_empty()).map(|(id, _)| *id).collect();
        // `open` is a HashMap: take the layers in id order, not in its per-instance random
        // order, so that a checkpoint's block layout (and its lock sequence) is reproducible.
        ids.sort_unstable();
        for id in ids {
            let State { store, space, open, next_ino, .. } = self;
            let Some(layer) = open.get_mut(&id) else { continue };
            let mut freed_nodes = Vec::new();
            let mut freed_extents = Vec::new();
            let mut ctx = crate::ctx::LayerCtx {
                layer: id,
                tree: &mut layer.tree,
                store: &*store,
                data: &*store,
                pages: &mut layer.pages,
                freed_nodes: &mut freed_nodes,
                freed_extents: &mut freed_extents,
                next_ino,
            };
            let mut writer = BlockWriter::new(store, space);
            let out = ns::flush_pages(&mut ctx, &mut writer);
            for block in freed_nodes {
                space.release(block, 1);
            }
            for (start, len) in freed_extents {
                space.release(start, len);
                store.forget(start, len);
            }
            out?;
        }
        Ok(())
    }

    /// Writes every dirty layer tree and points its record at the new root. A layer whose
    /// tree was written by a checkpoint that failed before its record changed (the layer table
    /// could not be read, say) has a clean tree whose root its record does not name yet: it is
    /// taken again, so its record is never left behind.
    fn write_layer_trees(&mut self, generation: Generation) -> Result<()> {
        let mut ids: Vec<LayerId> = self
            .open
            .iter()
            .filter(|(_, l)| l.tree.is_dirty() || l.tree.root_block() != Some(l.rec.root))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            let Some(layer) = self.open.get_mut(&id) else { continue };
            let mut writer = BlockWriter::new(&self.store, &mut self.space);
            let written = layer.tree.write_dirty(&mut writer, generation);
            if written.is_err() {
                writer.give_back_nodes();
            }
            let mut rec = layer.rec.clone();
            rec.root = written?;
            let mut freed = Vec::new();
            let key = record_key(id);
            self.system.insert(&self.store, LayerId::SYSTEM, &key, &rec.encode(), &mut freed)?;
            for block in freed {
                self.space.release(block, 1);
            }
            if let Some(layer) = self.open.get_mut(&id) {
                layer.rec = rec;
            }
        }
        Ok(())
    }

    /// Writes the free map as it will be after this checkpoint; returns its chain and the
    /// number of free blocks it records.
    fn write_free_map(&mut self, generation: Generation) -> Result<(Vec<BlockNo>, u64)> {
        let mut chain: Vec<BlockNo> = Vec::new();
        let persisted = loop {
            let mut persisted = self.space.free_after_checkpoint();
            for block in &self.free_map_chain {
                persisted.insert(block.0, 1);
            }
            if freemap::blocks_needed(persisted.len()) <= chain.len() as u64 {
                break persisted;
            }
            match self.space.allocate(1) {
                Ok((block, _)) => chain.push(block),
                Err(e) => {
                    self.give_back(&chain);
                    return Err(e);
                }
            }
        };
        for (block, bytes) in chain.iter().zip(freemap::encode(&persisted, &chain, generation)) {
            if let Err(e) = self.store.device().write(block.0, &bytes) {
                self.give_back(&chain);
                return Err(e.into());
            }
        }
        Ok((chain, persisted.blocks()))
    }

    /// Returns blocks allocated by a checkpoint that failed before anything durable named them.
    fn give_back(&mut self, blocks: &[BlockNo]) {
        for block in blocks {
            self.space.unallocate(block.0, 1);
        }
    }
}
