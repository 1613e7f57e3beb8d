//! Inodes: what one inode of one layer holds, and the attribute operations `getattr` and
//! `setattr`.
//!
//! Invariants (checked by `Model::check_invariants`):
//! - `body` matches `kind`: `Regular` for regular files, `Directory` for directories, `Symlink`
//!   for symlinks, `Special` for fifos, sockets and devices;
//! - `perm <= 0o7777`; `rdev == 0` unless the inode is a char or block device;
//! - `nlink` is the number of entries naming the inode, plus 2 and the number of
//!   subdirectories for a directory (the root has no entry naming it and still counts 2).

use std::collections::BTreeMap;

use crate::data::FileData;
use crate::errno::{Errno, Result};
use crate::types::{Attr, FileType, Ino, LayerId, SetAttr, Timespec, FILE_SIZE_MAX};
use crate::Model;

/// One inode of one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inode {
    pub kind: FileType,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub body: Body,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// What an inode holds besides its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Regular(FileData),
    /// Entries by name (no `.` or `..`).
    Directory(BTreeMap<Vec<u8>, Ino>),
    /// The target.
    Symlink(Vec<u8>),
    /// Fifo, socket, char or block device: attributes only.
    Special,
}

impl Inode {
    /// A new inode as every create makes it: nlink 1 (2 for a directory), all times `now`,
    /// `perm & 0o7777`, no xattrs.
    pub fn new(kind: FileType, perm: u16, uid: u32, gid: u32, now: Timespec, body: Body) -> Self {
        let nlink = if kind == FileType::Directory { 2 } else { 1 };
        Inode {
            kind,
            perm: perm & 0o7777,
            nlink,
            uid,
            gid,
            rdev: 0,
            atime: now,
            mtime: now,
            ctime: now,
            body,
            xattrs: BTreeMap::new(),
        }
    }

    /// The attributes of this inode, numbered `ino`.
    pub fn attr(&self, ino: Ino) -> Attr {
        let size = match &self.body {
            Body::Regular(data) => data.size(),
            Body::Symlink(target) => target.len() as u64,
            Body::Directory(_) | Body::Special => 0,
        };
        Attr {
            ino,
            kind: self.kind,
            perm: self.perm,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            size,
            blocks: 0,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }

    /// The entries of a directory, or ENOTDIR.
    pub fn entries(&self) -> Result<&BTreeMap<Vec<u8>, Ino>> {
        match &self.body {
            Body::Directory(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// The entries of a directory to change, or ENOTDIR.
    pub fn entries_mut(&mut self) -> Result<&mut BTreeMap<Vec<u8>, Ino>> {
        match &mut self.body {
            Body::Directory(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Marks a directory whose entries changed: mtime = ctime = `now`.
    pub fn touch(&mut self, now: Timespec) {
        self.mtime = now;
        self.ctime = now;
    }
}

impl Model {
    /// The attributes of `ino`. Errors: only the common checks.
    pub fn getattr(&self, layer: LayerId, ino: Ino) -> Result<Attr> {
        Ok(self.readable(layer)?.get(ino)?.attr(ino))
    }

    /// Applies each `Some` field of `set` and returns the new attributes.
    ///
    /// `perm` is masked with `0o7777`. `size` truncates or extends with zeros and sets
    /// mtime = `now` (even if the size does not change, as truncate(2) does); an explicit
    /// `mtime` given with it wins. ctime = `now` if any field was given; an empty `SetAttr`
    /// changes nothing. Set-user-ID and set-group-ID bits are not cleared here: the kernel sends
    /// the mode change itself. Errors after the common checks: `size` on a directory: EISDIR;
    /// `size` on another non-regular type: EINVAL; `size > FILE_SIZE_MAX`: EFBIG.
    pub fn setattr(
        &mut self,
        layer: LayerId,
        ino: Ino,
        set: &SetAttr,
        now: Timespec,
    ) -> Result<Attr> {
        let inode = self.writable(layer)?.get_mut(ino)?;
        if let Some(size) = set.size {
            if inode.kind != FileType::Regular {
                return Err(crate::data::not_regular(inode.kind));
            }
            if size > FILE_SIZE_MAX {
                return Err(Errno::EFBIG);
            }
        }
        if let Some(perm) = set.perm {
            inode.perm = perm & 0o7777;
        }
        if let Some(uid) = set.uid {
            inode.uid = uid;
        }
        if let Some(gid) = set.gid {
            inode.gid = gid;
        }
        if let (Some(size), Body::Regular(data)) = (set.size, &mut inode.body) {
            data.truncate(size);
            inode.mtime = now;
        }
        if let Some(atime) = set.atime {
            inode.atime = atime;
        }
        if let Some(mtime) = set.mtime {
            inode.mtime = mtime;
        }
        if *set != SetAttr::default() {
            inode.ctime = now;
        }
        Ok(inode.attr(ino))
    }
}
