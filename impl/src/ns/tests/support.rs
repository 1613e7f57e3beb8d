//! The test fixture: layers over `MemNodeStore` and `MemData`, with checkpoints and clones.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::ctx::{DataSource, DataSpace, LayerCtx};
use crate::error::{Error, Result};
use crate::ns::{self, DirtyPages, PAGE_SIZE};
use crate::tree::{MemNodeStore, Tree};
use crate::types::{Attr, BlockNo, FileType, Generation, Ino, LayerId, Timespec};

/// Data blocks in memory, with the layer that allocated each.
#[derive(Debug, Default)]
pub struct MemData {
    blocks: RefCell<HashMap<BlockNo, (LayerId, Vec<u8>)>>,
    next: RefCell<u64>,
    /// Most blocks one `allocate` hands out (0: no limit).
    pub run_max: u64,
    /// Whether allocations follow each other on disk (by default a gap keeps them apart, so
    /// separate runs never merge by accident).
    pub contiguous: bool,
}

impl MemData {
    /// Frees `count` blocks from `first`, which `layer` must have allocated.
    pub fn free(&self, first: BlockNo, count: u64, layer: LayerId) {
        let mut blocks = self.blocks.borrow_mut();
        for b in first.0..first.0 + count {
            match blocks.remove(&BlockNo(b)) {
                Some((owner, _)) => assert_eq!(owner, layer, "block {b} freed by a non-owner"),
                None => panic!("block {b} freed twice or never written"),
            }
        }
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.borrow().len()
    }

    /// The owner of `block`, if held.
    pub fn owner(&self, block: BlockNo) -> Option<LayerId> {
        self.blocks.borrow().get(&block).map(|(owner, _)| *owner)
    }
}

impl DataSource for MemData {
    fn read_block(&self, block: BlockNo, crc: u32, buf: &mut [u8]) -> Result<()> {
        let blocks = self.blocks.borrow();
        let (_, data) =
            blocks.get(&block).ok_or_else(|| Error::corrupt(block.0, "no data block"))?;
        assert_eq!(crate::format::records::data_crc(data), crc, "extent checksum of {block:?}");
        buf.copy_from_slice(data);
        Ok(())
    }
}

/// The checkpoint's view of `MemData` for one layer.
pub struct Space<'a> {
    pub data: &'a MemData,
    pub layer: LayerId,
    pub allocated: Vec<(BlockNo, u64)>,
}

impl DataSpace for Space<'_> {
    fn allocate(&mut self, want: u64) -> Result<(BlockNo, u64)> {
        let got = if self.data.run_max == 0 { want } else { want.min(self.data.run_max) };
        let mut next = self.data.next.borrow_mut();
        let first = BlockNo(*next + 1000);
        *next += got + u64::from(!self.data.contiguous);
        self.allocated.push((first, got));
        Ok((first, got))
    }

    fn write_block(&mut self, block: BlockNo, data: &[u8]) -> Result<()> {
        assert_eq!(data.len(), PAGE_SIZE);
        let mut blocks = self.data.blocks.borrow_mut();
        assert!(!blocks.contains_key(&block), "block {} written twice", block.0);
        blocks.insert(block, (self.layer, data.to_vec()));
        Ok(())
    }
}

/// One layer as the core holds it.
pub struct Layer {
    pub id: LayerId,
    pub tree: Tree,
    pub pages: DirtyPages,
    pub freed_nodes: Vec<BlockNo>,
    pub freed_extents: Vec<(BlockNo, u64)>,
    /// Every data extent this layer ever reported freed.
    pub all_freed_extents: Vec<(BlockNo, u64)>,
}

/// The engine core, reduced to what the namespace operations need.
pub struct Fixture {
    pub store: MemNodeStore,
    pub data: MemData,
    pub next_ino: u64,
    pub generation: u64,
    pub layers: Vec<Layer>,
}

/// A time for tests: `sec` seconds.
pub fn t(sec: i64) -> Timespec {
    Timespec::new(sec, 0)
}

impl Fixture {
    /// A base layer (index 0, id 1) with its root directory.
    pub fn new() -> Self {
        let mut fx = Fixture {
            store: MemNodeStore::new(),
            data: MemData::default(),
            next_ino: Ino::FIRST.0,
            generation: 0,
            layers: Vec::new(),
        };
        fx.layers.push(Layer::new(LayerId(1), Tree::new(LayerId(1))));
        fx.with(0, ns::init_root).expect("root");
        fx
    }

    /// Runs `f` on layer `index` as the core would.
    pub fn with<R>(&mut self, index: usize, f: impl FnOnce(&mut LayerCtx<'_>) -> R) -> R {
        let layer = &mut self.layers[index];
        let mut ctx = LayerCtx {
            layer: layer.id,
            tree: &mut layer.tree,
            store: &self.store,
            data: &self.data,
            pages: &mut layer.pages,
            freed_nodes: &mut layer.freed_nodes,
            freed_extents: &mut layer.freed_extents,
            next_ino: &mut self.next_ino,
        };
        f(&mut ctx)
    }

    /// Flushes the pages of layer `index`, writes its tree, and frees what it released.
    pub fn checkpoint(&mut self, index: usize) -> Vec<(BlockNo, u64)> {
        let layer = &mut self.layers[index];
        let mut space = Space { data: &self.data, layer: layer.id, allocated: Vec::new() };
        let mut ctx = LayerCtx {
            layer: layer.id,
            tree: &mut layer.tree,
            store: &self.store,
            data: &self.data,
            pages: &mut layer.pages,
            freed_nodes: &mut layer.freed_nodes,
            freed_extents: &mut layer.freed_extents,
            next_ino: &mut self.next_ino,
        };
        ns::flush_pages(&mut ctx, &mut space).expect("flush");
        assert!(layer.pages.is_empty(), "flush empties the pages");
        self.generation += 1;
        layer.tree.write_dirty(&mut self.store, Generation(self.generation)).expect("write");
        for block in layer.freed_nodes.drain(..) {
            assert!(self.store.free(block), "node {} freed twice", block.0);
        }
        for (first, count) in layer.freed_extents.drain(..) {
            self.data.free(first, count, layer.id);
            layer.all_freed_extents.push((first, count));
        }
        space.allocated
    }

    /// Checkpoints layer `parent` and adds a child layer cloned from it; returns its index.
    pub fn clone_layer(&mut self, parent: usize) -> usize {
        self.checkpoint(parent);
        let root = self.layers[parent].tree.root_block().expect("clean after checkpoint");
        let id = LayerId(self.layers.len() as u64 + 1);
        self.layers.push(Layer::new(id, Tree::from_root(root)));
        self.layers.len() - 1
    }

    /// Creates regular file `name` in `dir` of layer `index`.
    pub fn create(&mut self, index: usize, dir: Ino, name: &[u8]) -> Attr {
        self.with(index, |c| ns::mknod(c, dir, name, FileType::Regular, 0o644, 0, 7, 8, t(1)))
            .expect("create")
    }

    /// Creates directory `name` in `dir` of layer `index`.
    pub fn mkdir(&mut self, index: usize, dir: Ino, name: &[u8]) -> Attr {
        self.with(index, |c| ns::mkdir(c, dir, name, 0o755, 7, 8, t(1))).expect("mkdir")
    }

    /// The whole content of file `ino` in layer `index`.
    pub fn read_all(&mut self, index: usize, ino: Ino) -> Vec<u8> {
        let size = self.with(index, |c| ns::getattr(c, ino)).expect("getattr").size;
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            let chunk =
                self.with(index, |c| ns::read(c, ino, out.len() as u64, 1 << 20)).expect("read");
            assert!(!chunk.is_empty(), "read inside the file returned nothing");
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// Every (key, value) item of layer `index`'s tree.
    pub fn items(&self, index: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        use std::ops::Bound;
        self.layers[index]
            .tree
            .range(&self.store, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .expect("range")
    }

    /// Number of extent items of `ino` in layer `index`.
    pub fn extents(&self, index: usize, ino: Ino) -> Vec<(u64, u64, BlockNo, LayerId)> {
        use crate::format::records::{decode_extent, decode_key, Key};
        self.items(index)
            .into_iter()
            .filter_map(|(k, v)| match decode_key(&k).expect("key") {
                Key::Extent(i, last) if i == ino => {
                    let e = decode_extent(&v).expect("extent");
                    Some((last + 1 - e.count, e.count, e.disk, e.owner))
                }
                _ => None,
            })
            .collect()
    }
}

impl Layer {
    fn new(id: LayerId, tree: Tree) -> Self {
        Layer {
            id,
            tree,
            pages: DirtyPages::new(),
            freed_nodes: Vec::new(),
            freed_extents: Vec::new(),
            all_freed_extents: Vec::new(),
        }
    }
}

/// The errno of a result, 0 for success.
pub fn errno<T>(r: Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.errno(),
    }
}

pub const ENOENT: i32 = 2;
pub const EPERM: i32 = 1;
pub const EEXIST: i32 = 17;
pub const ENOTDIR: i32 = 20;
pub const EISDIR: i32 = 21;
pub const EINVAL: i32 = 22;
pub const EFBIG: i32 = 27;
pub const ENOSPC: i32 = 28;
pub const EMLINK: i32 = 31;
pub const ERANGE: i32 = 34;
pub const ENAMETOOLONG: i32 = 36;
pub const ENOTEMPTY: i32 = 39;
pub const ENODATA: i32 = 61;
