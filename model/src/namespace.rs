//! Namespace operations of one layer: lookup, the creates (mknod, mkdir, symlink), link,
//! unlink, rmdir, readlink, readdir, and the no-op durability points fsync and sync.
//!
//! Every operation runs the common checks first (`docs/operations.md`, "Order of checks"):
//! unknown layer: ENOENT; change to a committed layer: EROFS; bad name: EINVAL or
//! ENAMETOOLONG; inode argument absent: ENOENT. Then its own checks, in the order its doc lists.
//! A failed operation changes nothing, the inode counter included.
//!
//! Invariants kept: a successful create takes the next inode number and bumps the counter by
//! one; a parent directory whose entries change gets mtime = ctime = `now`.

use std::ops::Bound;

use crate::data::FileData;
use crate::errno::{Errno, Result};
use crate::inode::{Body, Inode};
use crate::layer::{check_name, Layer};
use crate::types::{
    Attr, DirEntry, FileType, Ino, LayerId, Statfs, Timespec, BLOCK_SIZE, LINK_MAX, NAME_MAX,
    SYMLINK_MAX,
};
use crate::Model;

impl Layer {
    /// Adds the new inode `inode`, numbered `ino`, under `dir` (a directory without the entry).
    fn insert_new(&mut self, dir: Ino, name: &[u8], ino: Ino, inode: Inode, now: Timespec) -> Attr {
        let attr = inode.attr(ino);
        let is_dir = inode.kind == FileType::Directory;
        self.inodes.insert(ino, inode);
        let parent = self.must_mut(dir);
        parent.entries_mut().expect("checked to be a directory").insert(name.to_vec(), ino);
        if is_dir {
            parent.nlink += 1;
        }
        parent.touch(now);
        attr
    }

    /// Removes the existing entry `name` of `dir` as unlink and rmdir do. A directory inode goes
    /// at once and its parent loses a link; another inode loses a link and goes at 0, else its
    /// ctime becomes `now`. The parent gets mtime = ctime = `now`.
    pub(crate) fn remove_entry(&mut self, dir: Ino, name: &[u8], now: Timespec) {
        let entries = self.must_mut(dir).entries_mut().expect("checked to be a directory");
        let ino = entries.remove(name).expect("checked to exist");
        let inode = self.must_mut(ino);
        if inode.kind == FileType::Directory {
            self.inodes.remove(&ino);
            self.must_mut(dir).nlink -= 1;
        } else {
            inode.nlink -= 1;
            if inode.nlink == 0 {
                self.inodes.remove(&ino);
            } else {
                inode.ctime = now;
            }
        }
        self.must_mut(dir).touch(now);
    }
}

impl Model {
    /// The attributes of the entry `name` of `dir`.
    /// Errors after the common checks: dir not a directory: ENOTDIR; no entry: ENOENT.
    pub fn lookup(&self, layer: LayerId, dir: Ino, name: &[u8]) -> Result<Attr> {
        let layer = self.readable(layer)?;
        check_name(name)?;
        let ino = *layer.get(dir)?.entries()?.get(name).ok_or(Errno::ENOENT)?;
        Ok(layer.must(ino).attr(ino))
    }

    /// Makes a new inode of any type but Directory and Symlink (Regular is `create`). `rdev` is
    /// kept for char and block devices, 0 otherwise. Errors after the common checks: `kind`
    /// Directory or Symlink: EINVAL; dir not a directory: ENOTDIR; name exists: EEXIST.
    #[expect(clippy::too_many_arguments, reason = "mirrors the engine's signature")]
    pub fn mknod(
        &mut self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        kind: FileType,
        perm: u16,
        rdev: u64,
        uid: u32,
        gid: u32,
        now: Timespec,
    ) -> Result<Attr> {
        let ino = Ino(self.next_ino);
        let layer = self.writable(layer)?;
        check_name(name)?;
        let parent = layer.get(dir)?;
        let body = match kind {
            FileType::Directory | FileType::Symlink => return Err(Errno::EINVAL),
            FileType::Regular => Body::Regular(FileData::new()),
            FileType::Fifo | FileType::CharDevice | FileType::BlockDevice | FileType::Socket => {
                Body::Special
            }
        };
        if parent.entries()?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let mut inode = Inode::new(kind, perm, uid, gid, now, body);
        if matches!(kind, FileType::CharDevice | FileType::BlockDevice) {
            inode.rdev = rdev;
        }
        let attr = layer.insert_new(dir, name, ino, inode, now);
        self.next_ino += 1;
        Ok(attr)
    }

    /// Makes a new directory (nlink 2); the parent gains a link. Errors after the common
    /// checks: dir not a directory: ENOTDIR; name exists: EEXIST; parent nlink at LINK_MAX:
    /// EMLINK.
    #[expect(clippy::too_many_arguments, reason = "mirrors the engine's signature")]
    pub fn mkdir(
        &mut self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        perm: u16,
        uid: u32,
        gid: u32,
        now: Timespec,
    ) -> Result<Attr> {
        let ino = Ino(self.next_ino);
        let layer = self.writable(layer)?;
        check_name(name)?;
        let parent = layer.get(dir)?;
        if parent.entries()?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        if parent.nlink >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        let body = Body::Directory(Default::default());
        let inode = Inode::new(FileType::Directory, perm, uid, gid, now, body);
        let attr = layer.insert_new(dir, name, ino, inode, now);
        self.next_ino += 1;
        Ok(attr)
    }

    /// Makes a symlink to `target` (perm 0o777, size = target length). Errors after the common
    /// checks: dir not a directory: ENOTDIR; target empty: ENOENT; target longer than
    /// SYMLINK_MAX: ENAMETOOLONG; name exists: EEXIST.
    #[expect(clippy::too_many_arguments, reason = "mirrors the engine's signature")]
    pub fn symlink(
        &mut self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
        now: Timespec,
    ) -> Result<Attr> {
        let ino = Ino(self.next_ino);
        let layer = self.writable(layer)?;
        check_name(name)?;
        let entries = layer.get(dir)?.entries()?;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() > SYMLINK_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let body = Body::Symlink(target.to_vec());
        let inode = Inode::new(FileType::Symlink, 0o777, uid, gid, now, body);
        let attr = layer.insert_new(dir, name, ino, inode, now);
        self.next_ino += 1;
        Ok(attr)
    }

    /// Adds the entry `newname` in `newdir` for the existing inode `ino`: nlink + 1, inode
    /// ctime = `now`. Errors after the common checks: ino a directory: EPERM; newdir not a
    /// directory: ENOTDIR; newname exists: EEXIST; nlink at LINK_MAX: EMLINK.
    pub fn link(
        &mut self,
        layer: LayerId,
        ino: Ino,
        newdir: Ino,
        newname: &[u8],
        now: Timespec,
    ) -> Result<Attr> {
        let layer = self.writable(layer)?;
        check_name(newname)?;
        let inode = layer.get(ino)?;
        let entries = layer.get(newdir)?.entries();
        if inode.kind == FileType::Directory {
            return Err(Errno::EPERM);
        }
        if entries?.contains_key(newname) {
            return Err(Errno::EEXIST);
        }
        if inode.nlink >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        let parent = layer.must_mut(newdir);
        parent.entries_mut()?.insert(newname.to_vec(), ino);
        parent.touch(now);
        let inode = layer.must_mut(ino);
        inode.nlink += 1;
        inode.ctime = now;
        Ok(inode.attr(ino))
    }

    /// Removes the entry `name` of `dir`, not a directory; the inode loses a link (gone at 0).
    /// Errors after the common checks: dir not a directory: ENOTDIR; no entry: ENOENT; entry a
    /// directory: EISDIR.
    pub fn unlink(&mut self, layer: LayerId, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
        let layer = self.writable(layer)?;
        check_name(name)?;
        let ino = *layer.get(dir)?.entries()?.get(name).ok_or(Errno::ENOENT)?;
        if layer.must(ino).kind == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        layer.remove_entry(dir, name, now);
        Ok(())
    }

    /// Removes the empty directory `name` of `dir`; `dir` loses a link and gets mtime = ctime =
    /// `now`. Errors after the common checks: dir not a directory: ENOTDIR; no entry: ENOENT;
    /// entry not a directory: ENOTDIR; not empty: ENOTEMPTY.
    pub fn rmdir(&mut self, layer: LayerId, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
        let layer = self.writable(layer)?;
        check_name(name)?;
        let ino = *layer.get(dir)?.entries()?.get(name).ok_or(Errno::ENOENT)?;
        if !layer.must(ino).entries()?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        layer.remove_entry(dir, name, now);
        Ok(())
    }

    /// The target of a symlink. Errors after the common checks: not a symlink: EINVAL.
    pub fn readlink(&self, layer: LayerId, ino: Ino) -> Result<Vec<u8>> {
        match &self.readable(layer)?.get(ino)?.body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Up to `limit` entries of `dir` whose names sort after `after` (by bytes), in that
    /// order, without `.` and `..`. Errors after the common checks: not a directory: ENOTDIR.
    pub fn readdir(
        &self,
        layer: LayerId,
        dir: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        let layer = self.readable(layer)?;
        let entries = layer.get(dir)?.entries()?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let listed = entries.range::<[u8], _>((start, Bound::Unbounded)).take(limit);
        Ok(listed
            .map(|(name, ino)| DirEntry {
                name: name.clone(),
                ino: *ino,
                kind: layer.must(*ino).kind,
            })
            .collect())
    }

    /// A durability point of one inode: nothing to do in the model. Errors: the common checks
    /// (fsync does not modify, so a committed layer is fine).
    pub fn fsync(&self, layer: LayerId, ino: Ino) -> Result<()> {
        self.readable(layer)?.get(ino)?;
        Ok(())
    }

    /// A durability point of everything: nothing to do in the model, never fails.
    pub fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Filesystem-wide numbers: the model fills only `block_size` (4096) and `name_max` (255).
    pub fn statfs(&self) -> Statfs {
        Statfs {
            block_size: BLOCK_SIZE,
            blocks_total: 0,
            blocks_free: 0,
            blocks_available: 0,
            files: 0,
            files_free: 0,
            name_max: NAME_MAX as u32,
        }
    }
}
