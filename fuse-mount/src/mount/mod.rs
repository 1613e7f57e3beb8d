//! The FUSE adapter: serves one `lcfs::Fs` as one mount where every layer is the directory
//! `layers/<name>` (DESIGN.md §3, §7).
//!
//! Each request resolves its node id (`nodes.rs`), calls the engine, and replies; the work is
//! in `entries.rs` (names and attributes) and `files.rs` (open files, data, listings, xattrs).
//!
//! Invariants:
//! - every reply that gives the kernel a node (lookup, create, mknod, mkdir, symlink, link,
//!   readdirplus entries other than `.` and `..`) adds one to its slot's lookup count, and
//!   forget takes it back, so a slot outlives every node id the kernel holds;
//! - every open (open, opendir, create) is matched by one engine `open`, and its release by
//!   one engine `release`, so an unlinked file lives exactly as long as its handles;
//! - the engine runs every check of docs/operations.md; permissions are the kernel's
//!   (`default_permissions`).

mod entries;
mod files;
pub mod pagecache;
pub mod shared;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use lcfs::Fs;

use self::entries::Changes;
use self::shared::{Shared, TTL};

/// The `fuser::Filesystem` of an lcfs mount.
#[derive(Debug)]
pub struct LcfsFuse {
    shared: Arc<Shared>,
}

impl LcfsFuse {
    pub fn new(shared: Arc<Shared>) -> Self {
        LcfsFuse { shared }
    }

    fn fs(&self) -> &Fs {
        &self.shared.fs
    }
}

fn reply_entry(reply: ReplyEntry, out: Result<(fuser::FileAttr, u64), Errno>) {
    match out {
        Ok((attr, generation)) => reply.entry(&TTL, &attr, Generation(generation)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, out: Result<(), Errno>) {
    match out {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn reply_attr(reply: ReplyAttr, out: Result<fuser::FileAttr, Errno>) {
    match out {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(e) => reply.error(e),
    }
}

/// Replies to getxattr or listxattr: the size when asked for 0 bytes, ERANGE when the value
/// does not fit.
fn reply_xattr(reply: ReplyXattr, size: u32, out: Result<Vec<u8>, Errno>) {
    match out {
        Ok(value) if size == 0 => reply.size(value.len() as u32),
        Ok(value) if value.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(value) => reply.data(&value),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for LcfsFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Listings that carry attributes save a lookup per entry; an old kernel may lack it.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.fs().checkpoint() {
            eprintln!("lcfs: the checkpoint at unmount failed: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(reply, self.do_lookup(parent, name));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.slots().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(reply, self.do_getattr(ino));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = Changes {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        reply_attr(reply, self.do_setattr(ino, changes));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.do_readlink(ino) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, self.do_mknod(req, parent, name, mode, rdev));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, self.do_mkdir(req, parent, name, mode));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.do_unlink(parent, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.do_unlink(parent, name, true));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, self.do_symlink(req, parent, link_name, target));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.do_rename(parent, name, newparent, newname, flags),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, self.do_link(ino, newparent, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.do_open(ino, flags, false) {
            // Keep the kernel's page cache of the file across opens: every change to a file's
            // bytes goes through this mount's kernel inode (writes, truncates, copy_file_range,
            // which the kernel invalidates), except a tar applied by the engine into a fresh
            // layer, whose entries the runtime services drop first. Without it every open
            // dropped the cache and warm reads went to the daemon (docs/caching.md). Pages of
            // a file shared by layers are dropped at its last close instead (pagecache.rs).
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.do_read(ino, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.do_write(ino, offset, data) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Data goes to the engine at each write; durability is fsync's. ENOSYS (not ok) makes
        // the kernel stop sending FLUSH at all (fc->no_flush; close still returns 0): one round
        // trip less per close(). No lock ops are implemented, so the kernel keeps POSIX locks.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.do_release(fh.0));
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.do_fsync(ino));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.do_open(ino, flags, true) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut add = |l: &files::Listed| {
            !reply.add(INodeNo(l.id), l.offset, l.kind, OsStr::from_bytes(&l.name))
        };
        match self.do_list(ino, fh.0, offset, false, &mut add) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let dot_attr = self.do_getattr(ino);
        let mut add = |l: &files::Listed| {
            let name = OsStr::from_bytes(&l.name);
            let full = match (&l.entry, &dot_attr) {
                (Some((attr, generation)), _) => reply.add(
                    INodeNo(l.id),
                    l.offset,
                    name,
                    &TTL,
                    attr,
                    Generation(*generation),
                ),
                // `.` and `..`: the kernel takes neither their attributes nor a reference.
                (None, Ok(attr)) => {
                    let mut attr = *attr;
                    attr.ino = INodeNo(l.id);
                    reply.add(
                        INodeNo(l.id),
                        l.offset,
                        name,
                        &std::time::Duration::ZERO,
                        &attr,
                        Generation(0),
                    )
                }
                (None, Err(_)) => true,
            };
            !full
        };
        match self.do_list(ino, fh.0, offset, true, &mut add) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.do_release(fh.0));
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.do_fsync(ino));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs().statfs();
        reply.statfs(
            s.blocks_total,
            s.blocks_free,
            s.blocks_available,
            s.files,
            s.files_free,
            s.block_size,
            s.name_max,
            s.block_size,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.do_setxattr(ino, name, value, flags));
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, size, self.do_getxattr(ino, name));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, size, self.do_listxattr(ino));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.do_removexattr(ino, name));
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Permissions are the kernel's (default_permissions); this only checks existence.
        reply_empty(reply, self.do_getattr(ino).map(|_| ()));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let out = self
            .create_file(req, parent, name, mode)
            .and_then(|(slot, layer, attr)| {
                let fh = self.open_created(layer, attr.ino)?;
                let entry = self.shared.entry(slot, &attr, true);
                match &entry {
                    Ok((fuse_attr, _)) => self.shared.track_open(fh, attr.ino, fuse_attr.ino.0),
                    Err(_) => {
                        let _ = self.do_release(fh);
                    }
                }
                entry.map(|e| (e, fh))
            });
        match out {
            Ok(((attr, generation), fh)) => reply.created(
                &TTL,
                &attr,
                Generation(generation),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.do_fallocate(ino, offset, length, mode));
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self.do_lseek(ino, offset, whence) {
            Ok(offset) => reply.offset(offset),
            Err(e) => reply.error(e),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let out = self.do_copy_file_range(
            (ino_in, offset_in),
            (ino_out, offset_out),
            len,
            flags.bits(),
        );
        match out {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }
}
