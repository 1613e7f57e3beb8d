//! Inode operations: each resolves the layer (ENOENT if unknown), refuses changes to a
//! committed layer (EROFS), and hands the rest to `ns` (docs/operations.md, order of checks).

use super::Fs;
use crate::error::Result;
use crate::ns;
use crate::types::{
    Attr, DirEntry, FileType, Ino, LayerId, RenameFlags, SetAttr, Timespec, XattrFlags,
};

impl Fs {
    /// The attributes of `name` in directory `dir`.
    pub fn lookup(&self, layer: LayerId, dir: Ino, name: &[u8]) -> Result<Attr> {
        self.with_layer(layer, false, |ctx| ns::lookup(ctx, dir, name))
    }

    /// The attributes of `ino`.
    pub fn getattr(&self, layer: LayerId, ino: Ino) -> Result<Attr> {
        self.with_layer(layer, false, |ctx| ns::getattr(ctx, ino))
    }

    /// Changes mode, owner, size or times of `ino`.
    pub fn setattr(&self, layer: LayerId, ino: Ino, set: &SetAttr, now: Timespec) -> Result<Attr> {
        self.with_layer(layer, true, |ctx| ns::setattr(ctx, ino, set, now))
    }

    /// Creates a regular file, fifo, socket or device node.
    #[expect(clippy::too_many_arguments, reason = "mirrors mknod(2) plus the caller's identity")]
    pub fn mknod(
        &self,
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
        self.with_layer(layer, true, |ctx| {
            ns::mknod(ctx, dir, name, kind, perm, rdev, uid, gid, now)
        })
    }

    /// Creates a directory.
    #[expect(clippy::too_many_arguments, reason = "mirrors mkdir(2) plus the caller's identity")]
    pub fn mkdir(
        &self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        perm: u16,
        uid: u32,
        gid: u32,
        now: Timespec,
    ) -> Result<Attr> {
        self.with_layer(layer, true, |ctx| ns::mkdir(ctx, dir, name, perm, uid, gid, now))
    }

    /// Creates a symbolic link to `target`.
    #[expect(clippy::too_many_arguments, reason = "mirrors symlink(2) plus the caller's identity")]
    pub fn symlink(
        &self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
        now: Timespec,
    ) -> Result<Attr> {
        self.with_layer(layer, true, |ctx| ns::symlink(ctx, dir, name, target, uid, gid, now))
    }

    /// Adds the name `newname` in `newdir` for `ino`.
    pub fn link(
        &self,
        layer: LayerId,
        ino: Ino,
        newdir: Ino,
        newname: &[u8],
        now: Timespec,
    ) -> Result<Attr> {
        self.with_layer(layer, true, |ctx| ns::link(ctx, ino, newdir, newname, now))
    }

    /// Removes a non-directory entry. An inode whose last link goes while it is open (see
    /// `open`) stays, with nlink 0, until its last `release`.
    pub fn unlink(&self, layer: LayerId, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
        self.unlink_keeping(layer, dir, name, now)
    }

    /// Removes an empty directory (kept with nlink 0 until its last `release` if open).
    pub fn rmdir(&self, layer: LayerId, dir: Ino, name: &[u8], now: Timespec) -> Result<()> {
        self.rmdir_keeping(layer, dir, name, now)
    }

    /// Moves (or with `exchange`, swaps) an entry; a replaced target that is open stays until
    /// its last `release`.
    #[expect(clippy::too_many_arguments, reason = "mirrors renameat2(2)")]
    pub fn rename(
        &self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        newdir: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: Timespec,
    ) -> Result<()> {
        self.rename_keeping(layer, dir, name, newdir, newname, flags, now)
    }

    /// The target of a symbolic link.
    pub fn readlink(&self, layer: LayerId, ino: Ino) -> Result<Vec<u8>> {
        self.with_layer(layer, false, |ctx| ns::readlink(ctx, ino))
    }

    /// Up to `size` bytes of `ino` from `offset` (short at the end of the file).
    pub fn read(&self, layer: LayerId, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.with_layer(layer, false, |ctx| ns::read(ctx, ino, offset, size))
    }

    /// Writes `data` at `offset`; returns the bytes written (all of them).
    pub fn write(
        &self,
        layer: LayerId,
        ino: Ino,
        offset: u64,
        data: &[u8],
        now: Timespec,
    ) -> Result<u32> {
        self.reserve_for_write(data.len())?;
        self.with_layer(layer, true, |ctx| ns::write(ctx, ino, offset, data, now))
    }

    /// Up to `limit` entries of `dir` after the name `after`, sorted by name.
    pub fn readdir(
        &self,
        layer: LayerId,
        dir: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        self.with_layer(layer, false, |ctx| ns::readdir(ctx, dir, after, limit))
    }

    /// Sets an extended attribute.
    pub fn setxattr(
        &self,
        layer: LayerId,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: XattrFlags,
        now: Timespec,
    ) -> Result<()> {
        self.with_layer(layer, true, |ctx| ns::setxattr(ctx, ino, name, value, flags, now))
    }

    /// The value of an extended attribute.
    pub fn getxattr(&self, layer: LayerId, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.with_layer(layer, false, |ctx| ns::getxattr(ctx, ino, name))
    }

    /// The names of every extended attribute, sorted.
    pub fn listxattr(&self, layer: LayerId, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.with_layer(layer, false, |ctx| ns::listxattr(ctx, ino))
    }

    /// Removes an extended attribute.
    pub fn removexattr(&self, layer: LayerId, ino: Ino, name: &[u8], now: Timespec) -> Result<()> {
        self.with_layer(layer, true, |ctx| ns::removexattr(ctx, ino, name, now))
    }

    /// A durability point for `ino`: checks it exists, then checkpoints.
    pub fn fsync(&self, layer: LayerId, ino: Ino) -> Result<()> {
        self.getattr(layer, ino)?;
        self.sync()
    }
}
