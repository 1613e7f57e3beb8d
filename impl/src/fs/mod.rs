//! `Fs`: the engine's public face. It formats and mounts a device, resolves layers, checks the
//! first two steps of the order of checks (layer exists, layer writable), hands inode operations
//! to `ns` with a `LayerCtx`, and runs checkpoints.
//!
//! Invariants:
//! - one lock (`state`) guards the whole engine: operations are linearizable;
//! - nothing reaches the device between checkpoints: the durable image is always exactly the
//!   last checkpoint;
//! - a block released by an operation goes to `Space::release` (pending), never straight back
//!   to the free map.

mod copy;
mod gc;
mod layers;
mod open;
mod ops;
mod seek;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;

use lcfs_device::BlockDevice;

use crate::alloc::{freemap, Space};
use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::header::BLOCK_SIZE;
use crate::format::superblock::{Superblock, FIRST_DATA_BLOCK, LABEL_MAX, MIN_BLOCKS, SUPERBLOCK_SLOTS};
use crate::layer::{record_key, LayerRecord};
use crate::ns::DirtyPages;
use crate::store::Store;
use crate::sync::{Mutex, MutexGuard};
use crate::tree::{NodePtr, Tree};
use crate::types::{BlockNo, Generation, LayerId, LayerState, Statfs, NAME_MAX};

pub use gc::{GcOptions, GcReport, OrphanedLayer, UNFINISHED_XATTR};
pub use usage::{LayerUsage, LayerView};

/// Options of `Fs::mkfs`.
#[derive(Clone, Debug, Default)]
pub struct MkfsOptions {
    /// A label of at most 64 bytes.
    pub label: String,
}

/// Options of `Fs::mount`.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Tree nodes kept in memory (4 KiB each).
    pub node_cache_blocks: usize,
    /// Data blocks kept in memory (4 KiB each).
    pub data_cache_blocks: usize,
    /// Unwritten file data that triggers a checkpoint.
    pub dirty_limit_bytes: u64,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            node_cache_blocks: 16 * 1024,
            data_cache_blocks: 16 * 1024,
            dirty_limit_bytes: 256 << 20,
        }
    }
}

/// Open layers kept in memory before clean ones are forgotten.
const OPEN_LAYERS_MAX: usize = 1024;

/// Blocks kept free for the metadata a checkpoint writes (tree paths, layer table, free map),
/// so that a full device can still checkpoint, and so unlink can free space.
const METADATA_RESERVE_BLOCKS: u64 = 128;

/// A layer touched since mount: its record, its tree and its unwritten data.
pub(crate) struct OpenLayer {
    pub(crate) rec: LayerRecord,
    pub(crate) tree: Tree,
    pub(crate) pages: DirtyPages,
}

/// Everything the engine keeps in memory.
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) space: Space,
    /// The last durable superblock.
    pub(crate) sb: Superblock,
    /// The highest generation anything was written under, durable or not: a checkpoint that
    /// failed part way (an I/O error) may have left blocks, or a superblock pending, stamped
    /// with its generation, so the next one takes a later generation, and no generation ever
    /// stamps two different contents of one block (docs/crash.md, "Generations").
    pub(crate) generation_used: Generation,
    /// The generation of the durable checkpoint this mount started from.
    pub(crate) recovered: Generation,
    /// Blocks of the free-map chain the durable superblock names.
    pub(crate) free_map_chain: Vec<BlockNo>,
    pub(crate) next_ino: u64,
    pub(crate) next_layer: u64,
    /// The layer table.
    pub(crate) system: Tree,
    pub(crate) open: HashMap<LayerId, OpenLayer>,
    pub(crate) opts: MountOptions,
    /// File handles per inode (`Fs::open`/`Fs::release`); in memory only (see `open.rs`).
    pub(crate) handles: open::Handles,
    /// Views of committed layers, remembered (`usage.rs`).
    pub(crate) views: usage::Views,
    /// Layers made by `create_layer_unfinished` whose operation is still running (`gc.rs`).
    pub(crate) unfinished: gc::Unfinished,
}

/// A mounted lcfs filesystem.
pub struct Fs {
    state: Mutex<State>,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs").finish_non_exhaustive()
    }
}

impl Fs {
    /// Formats `dev`: an empty layer table, everything else free, generation 1.
    pub fn mkfs(dev: Arc<dyn BlockDevice>, opts: &MkfsOptions) -> Result<()> {
        let blocks = dev.block_count();
        if dev.block_size() != BLOCK_SIZE {
            return Err(Error::InvalidArgument("lcfs needs a device with 4096-byte blocks"));
        }
        if blocks < MIN_BLOCKS {
            return Err(Error::InvalidArgument("the device is smaller than 1 MiB"));
        }
        if opts.label.len() > LABEL_MAX {
            return Err(Error::InvalidArgument("labels are at most 64 bytes"));
        }
        // Generation 0 is never written: it stands in slot A so that the first goes to slot B.
        let sb = Superblock {
            slot: SUPERBLOCK_SLOTS[0],
            generation: Generation(0),
            block_count: blocks,
            next_ino: crate::types::Ino::FIRST.0,
            next_layer: 1,
            layer_table: NodePtr::NONE,
            free_map: BlockNo(0),
            free_map_blocks: 0,
            flags: 0,
            blocks_free: 0,
            created_sec: crate::types::Timespec::now().sec,
            label: opts.label.clone(),
        };
        let mut state = State {
            store: Store::new(Arc::clone(&dev), 64, 64),
            space: Space::new_free(FIRST_DATA_BLOCK, blocks),
            sb: sb.clone(),
            generation_used: sb.generation,
            recovered: sb.generation,
            free_map_chain: Vec::new(),
            next_ino: sb.next_ino,
            next_layer: sb.next_layer,
            system: Tree::new(LayerId::SYSTEM),
            open: HashMap::new(),
            opts: MountOptions::default(),
            handles: open::Handles::default(),
            views: usage::Views::default(),
            unfinished: gc::Unfinished::default(),
        };
        // The other slot may hold a superblock of an earlier filesystem: erase it first.
        for slot in SUPERBLOCK_SLOTS {
            dev.write(slot.0, &[0u8; BLOCK_SIZE])?;
        }
        state.checkpoint(false)?;
        Ok(())
    }

    /// Whether `dev` holds an lcfs filesystem: the generation of its newest valid superblock.
    /// Reads the superblocks only, writes nothing (a mount writes its reserving checkpoint).
    pub fn probe(dev: &dyn BlockDevice) -> Result<Generation> {
        read_superblock(dev).map(|(sb, _)| sb.generation)
    }

    /// Mounts the filesystem on `dev`: the newest valid superblock wins. The device is flushed
    /// first, so that the state the mount starts from is durable (docs/crash.md).
    pub fn mount(dev: Arc<dyn BlockDevice>, opts: &MountOptions) -> Result<Fs> {
        Self::mount_checked(dev, opts, true)
    }

    /// Mounts; with `strict` false a free-block count that disagrees with the free map is
    /// accepted (fsck reports it instead).
    pub(crate) fn mount_checked(
        dev: Arc<dyn BlockDevice>,
        opts: &MountOptions,
        strict: bool,
    ) -> Result<Fs> {
        // A failed flush (an unmount that failed, say) may have left writes pending in the
        // device, a superblock among them: reading it and building on it as if it were durable
        // would reuse blocks the durable checkpoint still needs. Make it durable first.
        dev.flush()?;
        let (sb, claimed) = read_superblock(dev.as_ref())?;
        let (free, free_map_chain) =
            freemap::load_of_generation(
                dev.as_ref(),
                sb.free_map,
                sb.free_map_blocks,
                sb.block_count,
                sb.generation,
            )?;
        if strict && free.blocks() != sb.blocks_free {
            return Err(Error::corrupt(
                sb.free_map.0,
                format!("free map holds {} blocks, superblock says {}", free.blocks(), sb.blocks_free),
            ));
        }
        let store = Store::new(dev, opts.node_cache_blocks, opts.data_cache_blocks);
        let state = State {
            store,
            space: Space::from_free(free),
            system: Tree::from_root(sb.layer_table),
            next_ino: sb.next_ino,
            next_layer: sb.next_layer,
            free_map_chain,
            generation_used: claimed,
            recovered: sb.generation,
            sb,
            open: HashMap::new(),
            opts: opts.clone(),
            handles: open::Handles::default(),
            views: usage::Views::default(),
            unfinished: gc::Unfinished::default(),
        };
        let clean = state.sb.flags & crate::format::superblock::FLAG_CLEAN != 0;
        let fs = Fs { state: Mutex::new(state) };
        if strict {
            fs.lock()?.reserve_generations()?;
            if !clean {
                fs.sweep_orphans()?;
            }
        }
        Ok(fs)
    }

    /// Writes a last checkpoint (marked clean) and releases the device.
    pub fn unmount(self) -> Result<()> {
        let mut state = self.lock()?;
        state.release_all()?;
        state.checkpoint(true)?;
        Ok(())
    }

    /// Makes everything done so far durable; returns the new generation.
    pub fn checkpoint(&self) -> Result<Generation> {
        self.lock()?.checkpoint(false)
    }

    /// A durability point: the same as `checkpoint`.
    pub fn sync(&self) -> Result<()> {
        self.checkpoint().map(|_| ())
    }

    /// The generation of the last durable checkpoint.
    pub fn generation(&self) -> Generation {
        self.lock().map(|s| s.sb.generation).unwrap_or(Generation(0))
    }

    /// The generation of the durable checkpoint this mount found (its own first checkpoint,
    /// which reserves generations, holds the same state under a later one).
    pub fn recovered_generation(&self) -> Generation {
        self.lock().map(|s| s.recovered).unwrap_or(Generation(0))
    }

    /// The label given at mkfs.
    pub fn label(&self) -> String {
        self.lock().map(|s| s.sb.label.clone()).unwrap_or_default()
    }

    /// Filesystem-wide numbers.
    pub fn statfs(&self) -> Statfs {
        let Ok(state) = self.lock() else {
            return Statfs {
                block_size: BLOCK_SIZE as u32,
                blocks_total: 0,
                blocks_free: 0,
                blocks_available: 0,
                files: 0,
                files_free: 0,
                name_max: NAME_MAX as u32,
            };
        };
        let free = state.space.blocks_free();
        Statfs {
            block_size: BLOCK_SIZE as u32,
            blocks_total: state.sb.block_count,
            blocks_free: free,
            blocks_available: free,
            files: state.next_ino.saturating_sub(1),
            files_free: free,
            name_max: NAME_MAX as u32,
        }
    }

    /// Counters of the node cache and the data cache.
    pub fn cache_stats(&self) -> Result<(crate::cache::CacheStats, crate::cache::CacheStats)> {
        Ok(self.lock()?.store.cache_stats())
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Busy("the engine stopped after an internal panic"))
    }

    /// Makes sure the device can take `bytes` more of file data on top of what is already
    /// unwritten, checkpointing first if that frees enough; `NoSpace` otherwise. Writes call it
    /// so that a full device refuses them up front instead of failing the next checkpoint.
    pub(crate) fn reserve_for_write(&self, bytes: usize) -> Result<()> {
        let mut state = self.lock()?;
        let wanted = (bytes as u64).div_ceil(BLOCK_SIZE as u64) + 1;
        if state.room_for(wanted) {
            return Ok(());
        }
        state.checkpoint(false)?;
        if state.room_for(wanted) {
            Ok(())
        } else {
            Err(Error::NoSpace)
        }
    }

    /// Runs `f` on layer `layer` with the first two checks of the contract done.
    fn with_layer<T>(
        &self,
        layer: LayerId,
        modify: bool,
        f: impl FnOnce(&mut LayerCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.lock()?;
        let out = state.with_layer(layer, modify, f)?;
        if modify {
            state.checkpoint_if_dirty_limit()?;
        }
        Ok(out)
    }
}

impl State {
    /// The open layer `id`, loading its record from the layer table on first use.
    pub(crate) fn open_layer(&mut self, id: LayerId) -> Result<&mut OpenLayer> {
        if !self.open.contains_key(&id) {
            let value = self.system.get(&self.store, &record_key(id))?.ok_or(Error::NotFound)?;
            let rec = LayerRecord::decode(&value, self.sb.layer_table.block.0)?;
            let tree = Tree::from_root(rec.root);
            self.make_room();
            self.open.insert(id, OpenLayer { rec, tree, pages: DirtyPages::default() });
        }
        self.open.get_mut(&id).ok_or(Error::NotFound)
    }

    /// Before a layer is opened: past `OPEN_LAYERS_MAX`, forgets open layers that hold nothing
    /// the layer table lacks (a clean tree whose root the record names, no unwritten pages), so
    /// memory does not grow with the number of layers used.
    pub(crate) fn make_room(&mut self) {
        if self.open.len() < OPEN_LAYERS_MAX {
            return;
        }
        self.open.retain(|_, l| {
            let current = l.tree.root_block() == Some(l.rec.root);
            !(current && l.pages.is_empty())
        });
    }

    pub(crate) fn with_layer<T>(
        &mut self,
        layer: LayerId,
        modify: bool,
        f: impl FnOnce(&mut LayerCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        let committed = self.open_layer(layer)?.rec.state == LayerState::Committed;
        if modify && committed {
            return Err(Error::ReadOnly);
        }
        let State { store, space, open, next_ino, .. } = self;
        let open = open.get_mut(&layer).ok_or(Error::NotFound)?;
        let mut freed_nodes = Vec::new();
        let mut freed_extents = Vec::new();
        let mut ctx = LayerCtx {
            layer,
            tree: &mut open.tree,
            store: &*store,
            data: &*store,
            pages: &mut open.pages,
            freed_nodes: &mut freed_nodes,
            freed_extents: &mut freed_extents,
            next_ino,
        };
        let out = f(&mut ctx);
        for block in freed_nodes {
            space.release(block, 1);
            store.forget(block, 1);
        }
        for (start, len) in freed_extents {
            space.release(start, len);
            store.forget(start, len);
        }
        out
    }

    /// Whether `pages` more dirty pages can still be written by the next checkpoint, with room
    /// left for the tree nodes, layer table and free map it writes too.
    fn room_for(&self, pages: u64) -> bool {
        let dirty_pages = self.dirty_bytes() / BLOCK_SIZE as u64;
        let metadata = METADATA_RESERVE_BLOCKS + (dirty_pages + pages) / 16;
        dirty_pages + pages + metadata <= self.space.blocks_allocatable()
    }

    /// Unwritten data held by every open layer.
    fn dirty_bytes(&self) -> u64 {
        self.open.values().map(|l| l.pages.bytes()).sum()
    }

    fn checkpoint_if_dirty_limit(&mut self) -> Result<()> {
        if self.dirty_bytes() > self.opts.dirty_limit_bytes {
            self.checkpoint(false)?;
        }
        Ok(())
    }
}

/// Reads both superblock slots and returns the valid one with the highest generation.
/// Reads of a superblock slot that fails its checksum before it counts as torn.
const SLOT_READS_MAX: usize = 4;
/// How far past the chosen superblock's generation a torn slot's claim is believed (past it,
/// the claim is garbage: no run of failed checkpoints issues that many superblocks).
const CLAIM_MAX: u64 = 1 << 32;

/// What one superblock slot holds: the decoded copy or why not, and the generation its header
/// claims, checked or not.
struct Slot {
    decoded: Result<Superblock>,
    claimed: Option<Generation>,
}

/// The superblock in `slot`, `None` if the slot is zero. A copy that fails to decode is read
/// again (up to `SLOT_READS_MAX` reads): a torn slot stays torn, but a transient error on the
/// way must not make mount fall back to the older slot, which would silently roll the
/// filesystem back one checkpoint.
fn read_slot(dev: &dyn BlockDevice, slot: BlockNo, blocks: u64) -> Result<Option<Slot>> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let mut found = None;
    for _ in 0..SLOT_READS_MAX {
        dev.read(slot.0, &mut buf)?;
        if buf.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let decoded = Superblock::decode(&buf, slot, blocks);
        // Any damage is read again, not only a checksum failure: the header check tests the
        // magic first, so a flip there fails before the checksum is looked at.
        let retry = matches!(&decoded, Err(Error::Corrupt { .. }));
        found = Some(Slot { decoded, claimed: Superblock::claimed_generation(&buf) });
        if !retry {
            break;
        }
    }
    Ok(found)
}

/// Reads both slots; returns the valid superblock with the highest generation, and the highest
/// generation any slot's header claims within `CLAIM_MAX` of it (a torn superblock of a
/// checkpoint the crash interrupted may claim one above it: the next checkpoint must not issue
/// that generation again, see format/superblock.rs).
fn read_superblock(dev: &dyn BlockDevice) -> Result<(Superblock, Generation)> {
    let blocks = dev.block_count();
    if blocks < MIN_BLOCKS {
        return Err(Error::NotLcfs(format!(
            "the device holds {} bytes, less than the 1 MiB of the smallest lcfs image",
            blocks * BLOCK_SIZE as u64
        )));
    }
    let mut best: Option<Superblock> = None;
    let mut errors = Vec::new();
    let mut claims = Vec::new();
    let mut zeroed = 0;
    for slot in SUPERBLOCK_SLOTS {
        let Some(read) = read_slot(dev, slot, blocks)? else {
            zeroed += 1;
            continue;
        };
        claims.extend(read.claimed);
        match read.decoded {
            Ok(sb) if best.as_ref().is_none_or(|b| sb.generation > b.generation) => {
                best = Some(sb)
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    match best {
        Some(sb) => {
            let limit = sb.generation.0.saturating_add(CLAIM_MAX);
            let claimed = claims.into_iter().filter(|g| g.0 <= limit).max();
            let claimed = claimed.map_or(sb.generation, |g| g.max(sb.generation));
            Ok((sb, claimed))
        }
        None if zeroed == 2 => {
            Err(Error::NotLcfs("both superblocks are zero: the device was never formatted".into()))
        }
        None => match errors.into_iter().next() {
            Some(Error::Corrupt { what, .. }) if what.starts_with("format version") => {
                Err(Error::NotLcfs(format!("an lcfs image of another format: {what}")))
            }
            Some(Error::Corrupt { what, .. }) if what.contains("magic") => {
                Err(Error::NotLcfs("no lcfs superblock found (foreign or damaged image)".into()))
            }
            Some(e) => Err(e),
            None => Err(Error::NotLcfs("no valid superblock".into())),
        },
    }
}
