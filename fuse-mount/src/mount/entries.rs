//! Namespace operations through the mount: lookup, attributes, creating and removing names.
//!
//! POSIX rules the engine leaves to its caller and the kernel leaves to the filesystem:
//! - a new inode belongs to the caller's uid, and to the caller's gid unless its directory has
//!   the set-group-id bit: then it takes the directory's gid, and a new directory also gets
//!   the bit (Linux's `inode_init_owner`);
//! - the mode arrives with the umask applied by the kernel (no FUSE_DONT_MASK);
//! - links and renames stay inside one layer (EXDEV across layers); the mount's own
//!   directories (`/`, `layers`) cannot be changed through the mount (EPERM).
//!
//! Set-user-id and set-group-id clearing on write, chown and truncate, and the sticky-bit
//! and permission checks, are done by the kernel (`default_permissions`), which sends the mode
//! change as a setattr.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use fuser::{Errno, FileAttr, INodeNo, RenameFlags as FuseRename, Request, TimeOrNow};
use lcfs::{Attr, FileType, Ino, LayerId, RenameFlags, SetAttr, Timespec};

use super::shared::{errno, timespec};
use super::LcfsFuse;
use crate::nodes::{slot_for_lookup, Node, SlotLookup};

const S_ISGID: u16 = 0o2000;

/// A new entry for the kernel: attributes and generation.
pub type Entry = (FileAttr, u64);

/// The changes of a setattr request.
#[derive(Debug, Default)]
pub struct Changes {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
}

fn engine_time(t: TimeOrNow, now: Timespec) -> Timespec {
    match t {
        TimeOrNow::Now => now,
        TimeOrNow::SpecificTime(t) => timespec(t),
    }
}

impl LcfsFuse {
    pub(super) fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> Result<Entry, Errno> {
        match self.shared.node(parent)? {
            Node::Root if name.as_bytes() == b"layers" => {
                Ok((self.shared.special_attr(Node::Layers)?, 0))
            }
            Node::Root => Err(Errno::ENOENT),
            Node::Layers => self.lookup_layer(name),
            Node::Inode { slot, layer, ino } => {
                let attr = self
                    .fs()
                    .lookup(layer, ino, name.as_bytes())
                    .map_err(|e| errno(&e))?;
                self.shared.entry(slot, &attr, true)
            }
        }
    }

    /// The root directory of the layer called `name`.
    fn lookup_layer(&self, name: &OsStr) -> Result<Entry, Errno> {
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let layer = self.fs().layer_id(name).map_err(|e| errno(&e))?;
        let found = slot_for_lookup(
            &self.shared.slots,
            layer,
            name,
            || self.fs().getattr(layer, Ino::ROOT),
            |e| matches!(e, lcfs::Error::NotFound),
            true,
        );
        match found.map_err(|e| errno(&e))? {
            // Counted by `slot_for_lookup`, with the check that the slot is still the layer's.
            SlotLookup::Found(slot, attr) => self.shared.entry(slot, &attr, false),
            SlotLookup::Full => Err(Errno::ENFILE),
            SlotLookup::Gone => Err(Errno::ENOENT),
        }
    }

    pub(super) fn do_getattr(&self, id: INodeNo) -> Result<FileAttr, Errno> {
        match self.shared.node(id)? {
            Node::Inode { slot, layer, ino } => {
                let attr = self.fs().getattr(layer, ino).map_err(|e| errno(&e))?;
                Ok(self.shared.entry(slot, &attr, false)?.0)
            }
            node => self.shared.special_attr(node),
        }
    }

    pub(super) fn do_setattr(&self, id: INodeNo, c: Changes) -> Result<FileAttr, Errno> {
        let (slot, layer, ino) = self.shared.inode(id, Errno::EPERM)?;
        let now = Timespec::now();
        let set = SetAttr {
            perm: c.mode.map(|m| (m & 0o7777) as u16),
            uid: c.uid,
            gid: c.gid,
            size: c.size,
            atime: c.atime.map(|t| engine_time(t, now)),
            mtime: c.mtime.map(|t| engine_time(t, now)),
        };
        let attr = self
            .fs()
            .setattr(layer, ino, &set, now)
            .map_err(|e| errno(&e))?;
        Ok(self.shared.entry(slot, &attr, false)?.0)
    }

    /// The directory `parent` for a create: its slot, layer, inode and the owner and extra
    /// mode bits a new inode of kind `kind` gets there.
    fn create_in(
        &self,
        req: &Request,
        parent: INodeNo,
        kind: FileType,
    ) -> Result<(u32, LayerId, Ino, u32, u32, u16), Errno> {
        let (slot, layer, dir) = self.shared.inode(parent, Errno::EPERM)?;
        let attr = self.fs().getattr(layer, dir).map_err(|e| errno(&e))?;
        let (gid, extra) = match attr.perm & S_ISGID != 0 {
            true if kind == FileType::Directory => (attr.gid, S_ISGID),
            true => (attr.gid, 0),
            false => (req.gid(), 0),
        };
        Ok((slot, layer, dir, req.uid(), gid, extra))
    }

    pub(super) fn do_mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry, Errno> {
        let kind = FileType::from_mode(mode).ok_or(Errno::EINVAL)?;
        if kind == FileType::Directory {
            return self.do_mkdir(req, parent, name, mode);
        }
        if kind == FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        let (slot, layer, dir, uid, gid, _) = self.create_in(req, parent, kind)?;
        let perm = (mode & 0o7777) as u16;
        let attr = self
            .fs()
            .mknod(
                layer,
                dir,
                name.as_bytes(),
                kind,
                perm,
                u64::from(rdev),
                uid,
                gid,
                Timespec::now(),
            )
            .map_err(|e| errno(&e))?;
        self.shared.entry(slot, &attr, true)
    }

    pub(super) fn do_mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> Result<Entry, Errno> {
        let (slot, layer, dir, uid, gid, extra) =
            self.create_in(req, parent, FileType::Directory)?;
        let perm = (mode & 0o7777) as u16 | extra;
        let attr = self
            .fs()
            .mkdir(layer, dir, name.as_bytes(), perm, uid, gid, Timespec::now())
            .map_err(|e| errno(&e))?;
        self.shared.entry(slot, &attr, true)
    }

    pub(super) fn do_symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        target: &Path,
    ) -> Result<Entry, Errno> {
        let (slot, layer, dir, uid, gid, _) = self.create_in(req, parent, FileType::Symlink)?;
        let target = target.as_os_str().as_bytes();
        let attr = self
            .fs()
            .symlink(
                layer,
                dir,
                name.as_bytes(),
                target,
                uid,
                gid,
                Timespec::now(),
            )
            .map_err(|e| errno(&e))?;
        self.shared.entry(slot, &attr, true)
    }

    /// Creates a regular file and returns its entry and attributes (for `create`).
    pub(super) fn create_file(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> Result<(u32, LayerId, Attr), Errno> {
        let (slot, layer, dir, uid, gid, _) = self.create_in(req, parent, FileType::Regular)?;
        let perm = (mode & 0o7777) as u16;
        let attr = self
            .fs()
            .mknod(
                layer,
                dir,
                name.as_bytes(),
                FileType::Regular,
                perm,
                0,
                uid,
                gid,
                Timespec::now(),
            )
            .map_err(|e| errno(&e))?;
        Ok((slot, layer, attr))
    }

    pub(super) fn do_link(
        &self,
        id: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
    ) -> Result<Entry, Errno> {
        let (slot, layer, ino) = self.shared.inode(id, Errno::EPERM)?;
        let (new_slot, _, newdir) = self.shared.inode(newparent, Errno::EPERM)?;
        if new_slot != slot {
            return Err(Errno::EXDEV);
        }
        let attr = self
            .fs()
            .link(layer, ino, newdir, newname.as_bytes(), Timespec::now())
            .map_err(|e| errno(&e))?;
        self.shared.entry(slot, &attr, true)
    }

    pub(super) fn do_unlink(&self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let (_, layer, parent) = self.shared.inode(parent, Errno::EPERM)?;
        let now = Timespec::now();
        let out = if dir {
            self.fs().rmdir(layer, parent, name.as_bytes(), now)
        } else {
            self.fs().unlink(layer, parent, name.as_bytes(), now)
        };
        out.map_err(|e| errno(&e))
    }

    pub(super) fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: FuseRename,
    ) -> Result<(), Errno> {
        let (slot, layer, dir) = self.shared.inode(parent, Errno::EPERM)?;
        let (new_slot, _, newdir) = self.shared.inode(newparent, Errno::EPERM)?;
        if new_slot != slot {
            return Err(Errno::EXDEV);
        }
        let known = FuseRename::RENAME_NOREPLACE | FuseRename::RENAME_EXCHANGE;
        if !known.contains(flags) {
            return Err(Errno::EINVAL);
        }
        let flags = RenameFlags {
            noreplace: flags.contains(FuseRename::RENAME_NOREPLACE),
            exchange: flags.contains(FuseRename::RENAME_EXCHANGE),
        };
        self.fs()
            .rename(
                layer,
                dir,
                name.as_bytes(),
                newdir,
                newname.as_bytes(),
                flags,
                Timespec::now(),
            )
            .map_err(|e| errno(&e))
    }

    pub(super) fn do_readlink(&self, id: INodeNo) -> Result<Vec<u8>, Errno> {
        let (_, layer, ino) = self.shared.inode(id, Errno::EINVAL)?;
        self.fs().readlink(layer, ino).map_err(|e| errno(&e))
    }
}
