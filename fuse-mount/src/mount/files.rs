//! Open files and directories through the mount: open and release (which keep an unlinked
//! file alive, see `Fs::open`), data, listing, extended attributes, sync, seek and allocate.
//!
//! Directory offsets: `.` is offset 1, `..` offset 2, and the i-th named entry returned on a
//! handle offset 3 + i. The engine lists a directory by name after a cursor name, so a handle
//! remembers the names it returned; resuming at offset `o` continues after the name that had
//! offset `o`. Entries added or removed meanwhile are seen or not, as POSIX allows, and no
//! entry is returned twice or skipped because of them.

use std::os::unix::ffi::OsStrExt;

use fuser::{Errno, FileAttr, FileType as FuseType, INodeNo, OpenAccMode, OpenFlags};
use lcfs::{DirEntry, Ino, LayerId, SetAttr, Timespec, XattrFlags};

use super::shared::{errno, fuse_type, Handle};
use super::LcfsFuse;
use crate::nodes::{slot_for_lookup, Node, SlotLookup, LAYERS_NODE, ROOT_NODE};

/// Entries asked of the engine per batch while filling a listing.
const LIST_BATCH: usize = 128;

/// One entry of a listing, ready for the kernel.
pub struct Listed {
    pub offset: u64,
    pub id: u64,
    pub kind: FuseType,
    pub name: Vec<u8>,
    /// For readdirplus: attributes and generation (not for `.` and `..`).
    pub entry: Option<(FileAttr, u64)>,
    /// The slot whose lookup count the entry adds to, if the kernel keeps it.
    pub slot: Option<u32>,
}

impl LcfsFuse {
    pub(super) fn do_open(&self, id: INodeNo, flags: OpenFlags, dir: bool) -> Result<u64, Errno> {
        let inode = match self.shared.node(id)? {
            Node::Inode { layer, ino, .. } => {
                let attr = self.fs().getattr(layer, ino).map_err(|e| errno(&e))?;
                let is_dir = attr.kind == lcfs::FileType::Directory;
                if dir && !is_dir {
                    return Err(Errno::ENOTDIR);
                }
                let writes =
                    flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
                if writes {
                    // A change to a committed layer fails here, as open(2) on a read-only
                    // filesystem does: an empty setattr changes nothing but checks EROFS.
                    let now = Timespec::now();
                    self.fs()
                        .setattr(layer, ino, &SetAttr::default(), now)
                        .map_err(|e| errno(&e))?;
                }
                self.fs().open(layer, ino).map_err(|e| errno(&e))?;
                Some((layer, ino, attr.kind == lcfs::FileType::Regular))
            }
            Node::Root | Node::Layers if !dir => return Err(Errno::EISDIR),
            Node::Root | Node::Layers => None,
        };
        let fh = self.shared.add_handle(Handle {
            inode: inode.map(|(layer, ino, _)| (layer, ino)),
            names: Vec::new(),
            node: None,
        });
        if let Some((_, ino, true)) = inode {
            self.shared.track_open(fh, ino, id.0);
        }
        Ok(fh)
    }

    /// Opens a handle on an inode just created (for `create`).
    pub(super) fn open_created(&self, layer: LayerId, ino: Ino) -> Result<u64, Errno> {
        self.fs().open(layer, ino).map_err(|e| errno(&e))?;
        Ok(self.shared.add_handle(Handle {
            inode: Some((layer, ino)),
            names: Vec::new(),
            node: None,
        }))
    }

    pub(super) fn do_release(&self, fh: u64) -> Result<(), Errno> {
        match self.shared.remove_handle(fh) {
            Some(Handle {
                inode: Some((layer, ino)),
                node,
                ..
            }) => {
                if let Some(node) = node {
                    let drops = self.shared.pages.released(ino, node);
                    self.shared.drop_pages(drops);
                }
                self.fs().release(layer, ino).map_err(|e| errno(&e))
            }
            Some(_) => Ok(()),
            None => Err(Errno::EBADF),
        }
    }

    pub(super) fn do_read(&self, id: INodeNo, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let (slot, layer, ino) = self.shared.inode(id, Errno::EISDIR)?;
        self.shared.slots().count_read(slot);
        self.fs()
            .read(layer, ino, offset, size)
            .map_err(|e| errno(&e))
    }

    pub(super) fn do_write(&self, id: INodeNo, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let (_, layer, ino) = self.shared.inode(id, Errno::EISDIR)?;
        self.fs()
            .write(layer, ino, offset, data, Timespec::now())
            .map_err(|e| errno(&e))
    }

    /// fsync, fdatasync, fsyncdir: a durability point (a checkpoint of the whole image).
    pub(super) fn do_fsync(&self, id: INodeNo) -> Result<(), Errno> {
        match self.shared.node(id)? {
            Node::Inode { layer, ino, .. } => self.fs().fsync(layer, ino),
            Node::Root | Node::Layers => self.fs().sync(),
        }
        .map_err(|e| errno(&e))
    }

    /// The entries of directory `id` from `offset` on, as long as `add` accepts them (it
    /// returns false when the reply is full).
    pub(super) fn do_list(
        &self,
        id: INodeNo,
        fh: u64,
        offset: u64,
        plus: bool,
        add: &mut dyn FnMut(&Listed) -> bool,
    ) -> Result<(), Errno> {
        let node = self.shared.node(id)?;
        let mut names = self.shared.take_names(fh)?;
        let out = self.list_into(node, id.0, &mut names, offset, plus, add);
        self.shared.put_names(fh, names);
        out
    }

    fn list_into(
        &self,
        node: Node,
        id: u64,
        names: &mut Vec<Vec<u8>>,
        offset: u64,
        plus: bool,
        add: &mut dyn FnMut(&Listed) -> bool,
    ) -> Result<(), Errno> {
        let parent = match node {
            Node::Root => ROOT_NODE,
            Node::Layers => ROOT_NODE,
            Node::Inode { ino, .. } if ino == Ino::ROOT => LAYERS_NODE,
            Node::Inode { .. } => id,
        };
        for (dot_offset, dot_id, dot_name) in [(1, id, &b"."[..]), (2, parent, &b".."[..])] {
            if offset < dot_offset {
                let listed = Listed {
                    offset: dot_offset,
                    id: dot_id,
                    kind: FuseType::Directory,
                    name: dot_name.to_vec(),
                    entry: None,
                    slot: None,
                };
                if !add(&listed) {
                    return Ok(());
                }
            }
        }
        let index = offset.saturating_sub(2) as usize;
        if index > names.len() {
            return Ok(());
        }
        names.truncate(index);
        loop {
            let after = names.last().cloned();
            let batch = self.batch(node, after.as_deref(), plus)?;
            if batch.is_empty() {
                return Ok(());
            }
            for mut listed in batch {
                listed.offset = names.len() as u64 + 3;
                if !add(&listed) {
                    return Ok(());
                }
                if let Some(slot) = listed.slot {
                    self.shared.slots().remember(slot);
                }
                names.push(listed.name);
            }
        }
    }

    /// The next entries of a directory after the name `after`.
    fn batch(&self, node: Node, after: Option<&[u8]>, plus: bool) -> Result<Vec<Listed>, Errno> {
        match node {
            Node::Root => Ok(match after {
                None => vec![self.layers_listed(plus)?],
                Some(_) => Vec::new(),
            }),
            Node::Layers => self.layers_batch(after, plus),
            Node::Inode { slot, layer, ino } => {
                let entries = self
                    .fs()
                    .readdir(layer, ino, after, LIST_BATCH)
                    .map_err(|e| errno(&e))?;
                entries
                    .into_iter()
                    .map(|e| self.inode_listed(slot, layer, e, plus))
                    .collect()
            }
        }
    }

    fn layers_listed(&self, plus: bool) -> Result<Listed, Errno> {
        let entry = match plus {
            true => Some((self.shared.special_attr(Node::Layers)?, 0)),
            false => None,
        };
        let name = b"layers".to_vec();
        Ok(Listed {
            offset: 0,
            id: LAYERS_NODE,
            kind: FuseType::Directory,
            name,
            entry,
            slot: None,
        })
    }

    fn layers_batch(&self, after: Option<&[u8]>, plus: bool) -> Result<Vec<Listed>, Errno> {
        let layers = self.fs().layers().map_err(|e| errno(&e))?;
        let mut out = Vec::new();
        for info in layers
            .into_iter()
            .filter(|l| after.is_none_or(|a| l.name.as_bytes() > a))
        {
            let found = slot_for_lookup(
                &self.shared.slots,
                info.id,
                &info.name,
                || self.fs().getattr(info.id, Ino::ROOT),
                |e| matches!(e, lcfs::Error::NotFound),
                false,
            );
            let (slot, attr) = match found {
                Ok(SlotLookup::Found(slot, attr)) => (slot, attr),
                Ok(SlotLookup::Full) => return Err(Errno::ENFILE),
                // Removed meanwhile.
                Ok(SlotLookup::Gone) | Err(_) => continue,
            };
            let (file_attr, generation) = self.shared.entry(slot, &attr, false)?;
            out.push(Listed {
                offset: 0,
                id: file_attr.ino.0,
                kind: FuseType::Directory,
                name: info.name.into_bytes(),
                entry: plus.then_some((file_attr, generation)),
                slot: plus.then_some(slot),
            });
            if out.len() >= LIST_BATCH {
                break;
            }
        }
        Ok(out)
    }

    fn inode_listed(
        &self,
        slot: u32,
        layer: LayerId,
        e: DirEntry,
        plus: bool,
    ) -> Result<Listed, Errno> {
        let (id, entry) = if plus {
            let attr = self.fs().getattr(layer, e.ino).map_err(|e| errno(&e))?;
            let (file_attr, generation) = self.shared.entry(slot, &attr, false)?;
            (file_attr.ino.0, Some((file_attr, generation)))
        } else {
            let id = self
                .shared
                .slots()
                .node_id(slot, e.ino)
                .ok_or(Errno::EOVERFLOW)?;
            (id, None)
        };
        Ok(Listed {
            offset: 0,
            id,
            kind: fuse_type(e.kind),
            name: e.name,
            entry,
            slot: plus.then_some(slot),
        })
    }

    pub(super) fn do_setxattr(
        &self,
        id: INodeNo,
        name: &std::ffi::OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        let (_, layer, ino) = self.shared.inode(id, Errno::EPERM)?;
        let flags = match flags {
            0 => XattrFlags::Any,
            libc::XATTR_CREATE => XattrFlags::Create,
            libc::XATTR_REPLACE => XattrFlags::Replace,
            _ => return Err(Errno::EINVAL),
        };
        self.fs()
            .setxattr(layer, ino, name.as_bytes(), value, flags, Timespec::now())
            .map_err(|e| errno(&e))
    }

    pub(super) fn do_getxattr(
        &self,
        id: INodeNo,
        name: &std::ffi::OsStr,
    ) -> Result<Vec<u8>, Errno> {
        match self.shared.node(id)? {
            Node::Inode { layer, ino, .. } => self
                .fs()
                .getxattr(layer, ino, name.as_bytes())
                .map_err(|e| errno(&e)),
            Node::Root | Node::Layers => Err(Errno::NO_XATTR),
        }
    }

    pub(super) fn do_listxattr(&self, id: INodeNo) -> Result<Vec<u8>, Errno> {
        let names = match self.shared.node(id)? {
            Node::Inode { layer, ino, .. } => {
                self.fs().listxattr(layer, ino).map_err(|e| errno(&e))?
            }
            Node::Root | Node::Layers => Vec::new(),
        };
        let mut out = Vec::new();
        for name in names {
            out.extend_from_slice(&name);
            out.push(0);
        }
        Ok(out)
    }

    pub(super) fn do_removexattr(&self, id: INodeNo, name: &std::ffi::OsStr) -> Result<(), Errno> {
        let (_, layer, ino) = self.shared.inode(id, Errno::EPERM)?;
        self.fs()
            .removexattr(layer, ino, name.as_bytes(), Timespec::now())
            .map_err(|e| errno(&e))
    }

    /// lseek SEEK_DATA and SEEK_HOLE, from the engine's extents and dirty pages; ENXIO at or
    /// past the end (and for SEEK_DATA when only holes follow). Other whences are the kernel's.
    pub(super) fn do_lseek(&self, id: INodeNo, offset: i64, whence: i32) -> Result<i64, Errno> {
        let (_, layer, ino) = self.shared.inode(id, Errno::EINVAL)?;
        let offset = u64::try_from(offset).map_err(|_| Errno::ENXIO)?;
        let found = match whence {
            libc::SEEK_DATA => self.fs().seek_data(layer, ino, offset),
            libc::SEEK_HOLE => self.fs().seek_hole(layer, ino, offset),
            _ => return Err(Errno::EINVAL),
        };
        let found = found.map_err(|e| errno(&e))?.ok_or(Errno::ENXIO)?;
        i64::try_from(found).map_err(|_| Errno::EOVERFLOW)
    }

    /// copy_file_range inside one layer: the engine copies in large chunks and keeps holes.
    /// Across layers: EXDEV, and the kernel falls back to its own copy (read and write).
    pub(super) fn do_copy_file_range(
        &self,
        from: (INodeNo, u64),
        to: (INodeNo, u64),
        len: u64,
        flags: u64,
    ) -> Result<u32, Errno> {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let (_, layer, src) = self.shared.inode(from.0, Errno::EISDIR)?;
        let (_, layer_out, dst) = self.shared.inode(to.0, Errno::EISDIR)?;
        if layer != layer_out {
            return Err(Errno::EXDEV);
        }
        // The reply carries a u32; keep the count page-aligned below it.
        let len = len.min(u64::from(u32::MAX) & !4095);
        let copied = self
            .fs()
            .copy_range(layer, src, from.1, dst, to.1, len, Timespec::now())
            .map_err(|e| errno(&e))?;
        u32::try_from(copied).map_err(|_| Errno::EOVERFLOW)
    }

    /// fallocate: mode 0 extends the size (blocks are given at the next checkpoint, as every
    /// write's are: lcfs does not reserve space ahead); KEEP_SIZE alone has nothing to do;
    /// every other mode is EOPNOTSUPP.
    pub(super) fn do_fallocate(
        &self,
        id: INodeNo,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let (_, layer, ino) = self.shared.inode(id, Errno::ENODEV)?;
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        let attr = self.fs().getattr(layer, ino).map_err(|e| errno(&e))?;
        if attr.kind != lcfs::FileType::Regular {
            return Err(Errno::ENODEV);
        }
        let now = Timespec::now();
        match mode {
            0 if end > attr.size => {
                let set = SetAttr {
                    size: Some(end),
                    ..SetAttr::default()
                };
                self.fs()
                    .setattr(layer, ino, &set, now)
                    .map(|_| ())
                    .map_err(|e| errno(&e))
            }
            0 | libc::FALLOC_FL_KEEP_SIZE => {
                // Nothing to allocate ahead; still refuse a committed layer.
                let out = self.fs().setattr(layer, ino, &SetAttr::default(), now);
                out.map(|_| ()).map_err(|e| errno(&e))
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }
}
