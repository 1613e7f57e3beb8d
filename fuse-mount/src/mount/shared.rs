//! What the FUSE session and the control server share: the engine, the slot table, the open
//! handles, the page-cache tracker and the kernel notifier; plus the conversions between
//! engine and FUSE values.
//!
//! Invariants:
//! - no lock of this module is held while the engine runs an operation (the engine has its
//!   own lock; holding ours across it would order the two locks in two ways);
//! - every engine error reaches the kernel through `errno`, the one mapping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType as FuseType, INodeNo, Notifier};
use lcfs::{Attr, FileType, Fs, Ino, LayerId, Timespec};

use super::pagecache::PageShare;
use crate::nodes::{Node, Slots, Stale, LAYERS_NODE, ROOT_NODE};

/// How long the kernel may keep attributes and entries without asking again. Every change
/// goes through this mount, and the kernel drops what a change of its own touches; layer
/// changes made by the CLI are pushed with notifications.
pub const TTL: Duration = Duration::from_secs(1);

/// The one mapping of engine errors to errno.
pub fn errno(e: &lcfs::Error) -> Errno {
    if matches!(e, lcfs::Error::Corrupt { .. } | lcfs::Error::Io(_)) {
        eprintln!("lcfs: {e}");
    }
    Errno::from_i32(e.errno())
}

/// An open file or directory.
#[derive(Debug)]
pub struct Handle {
    /// The engine inode, or `None` for the mount's own directories.
    pub inode: Option<(LayerId, Ino)>,
    /// Directory handles: the names returned so far; offset `3 + i` follows `names[i]`.
    pub names: Vec<Vec<u8>>,
    /// Regular files: the kernel node the handle was opened through, once `pages` tracks it.
    pub node: Option<u64>,
}

/// State shared by every FUSE thread and the control server.
pub struct Shared {
    pub fs: Arc<Fs>,
    /// The slot table; its lock comes from `crate::sync` (the loom model of `nodes.rs`).
    pub slots: crate::sync::Mutex<Slots>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_handle: AtomicU64,
    /// The mount time: times of the mount root.
    pub mounted_at: Timespec,
    /// mtime and ctime of the `layers` directory.
    pub layers_changed: Mutex<Timespec>,
    /// Set once the session exists.
    pub notifier: OnceLock<Notifier>,
    /// Which kernel nodes may cache which shared file's pages (`pagecache.rs`).
    pub pages: PageShare,
    /// Where `drop_pages` sends nodes, for the thread that asks the kernel (set with the
    /// notifier; without a session nothing is dropped).
    page_drops: OnceLock<Sender<u64>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(fs: Arc<Fs>) -> Self {
        let now = Timespec::now();
        Shared {
            fs,
            slots: crate::sync::Mutex::new(Slots::default()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            mounted_at: now,
            layers_changed: Mutex::new(now),
            notifier: OnceLock::new(),
            pages: PageShare::default(),
            page_drops: OnceLock::new(),
        }
    }

    /// Sets the session's notifier, and starts the thread that asks the kernel to drop the
    /// pages of kernel nodes (`drop_pages`). The kernel may wait, while it drops a page, for a
    /// read of that page which a FUSE thread serves, so no FUSE thread sends these itself.
    pub fn set_notifier(&self, notifier: Notifier) -> std::io::Result<()> {
        let (tx, rx) = channel::<u64>();
        let dropper = notifier.clone();
        std::thread::Builder::new()
            .name("lcfs-page-drops".into())
            .spawn(move || {
                for node in rx {
                    // The kernel may have forgotten the node meanwhile: ENOENT is harmless.
                    let _ = dropper.inval_inode(INodeNo(node), 0, 0);
                }
            })?;
        let _ = self.page_drops.set(tx);
        let _ = self.notifier.set(notifier);
        Ok(())
    }

    /// Asks the kernel, from the page-drop thread, to drop the cached pages of `nodes`.
    pub fn drop_pages(&self, nodes: Vec<u64>) {
        if nodes.is_empty() {
            return;
        }
        if let Some(tx) = self.page_drops.get() {
            for node in nodes {
                let _ = tx.send(node);
            }
        }
    }

    /// Handle `fh` on engine inode `ino` was opened through kernel node `node`: tracked for the
    /// page cache from now on.
    pub fn track_open(&self, fh: u64, ino: Ino, node: u64) {
        if let Some(handle) = lock(&self.handles).get_mut(&fh) {
            handle.node = Some(node);
        } else {
            return;
        }
        let drops = self.pages.opened(ino, node);
        self.drop_pages(drops);
    }

    pub fn slots(&self) -> crate::sync::MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What node `id` names: ESTALE for an id of a reused slot, ENOENT for a removed layer.
    pub fn node(&self, id: INodeNo) -> Result<Node, Errno> {
        self.slots().resolve(id.0).map_err(|stale| match stale {
            Stale::Unknown => Errno::ESTALE,
            Stale::Removed => Errno::ENOENT,
        })
    }

    /// The layer inode `id` names; `not_inode` for the mount's own directories.
    pub fn inode(&self, id: INodeNo, not_inode: Errno) -> Result<(u32, LayerId, Ino), Errno> {
        match self.node(id)? {
            Node::Inode { slot, layer, ino } => Ok((slot, layer, ino)),
            Node::Root | Node::Layers => Err(not_inode),
        }
    }

    /// The FUSE attributes of an engine inode of `slot`, and the entry generation.
    pub fn entry(&self, slot: u32, attr: &Attr, remember: bool) -> Result<(FileAttr, u64), Errno> {
        let mut slots = self.slots();
        let id = slots.node_id(slot, attr.ino).ok_or(Errno::EOVERFLOW)?;
        if remember {
            slots.remember(slot);
        }
        Ok((file_attr(id, attr), slots.generation(slot)))
    }

    /// The attributes of the mount root and of the `layers` directory.
    pub fn special_attr(&self, node: Node) -> Result<FileAttr, Errno> {
        let (id, nlink, time) = match node {
            Node::Root => (ROOT_NODE, 3, self.mounted_at),
            Node::Layers => {
                let layers = self.fs.layers().map_err(|e| errno(&e))?.len();
                (LAYERS_NODE, 2 + layers as u32, *lock(&self.layers_changed))
            }
            Node::Inode { .. } => return Err(Errno::EINVAL),
        };
        let attr = Attr {
            ino: Ino(id),
            kind: FileType::Directory,
            perm: 0o755,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
        };
        Ok(file_attr(id, &attr))
    }

    /// Registers an open handle; returns its number.
    pub fn add_handle(&self, handle: Handle) -> u64 {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, handle);
        fh
    }

    pub fn remove_handle(&self, fh: u64) -> Option<Handle> {
        lock(&self.handles).remove(&fh)
    }

    /// Takes the names of directory handle `fh` (give them back with `put_names`).
    pub fn take_names(&self, fh: u64) -> Result<Vec<Vec<u8>>, Errno> {
        let mut handles = lock(&self.handles);
        let handle = handles.get_mut(&fh).ok_or(Errno::EBADF)?;
        Ok(std::mem::take(&mut handle.names))
    }

    pub fn put_names(&self, fh: u64, names: Vec<Vec<u8>>) {
        if let Some(handle) = lock(&self.handles).get_mut(&fh) {
            handle.names = names;
        }
    }

    /// Layer `id`, called `name`, was removed from the engine: its slot goes stale (its node ids
    /// answer ENOENT, the slot is reused once the kernel forgot them) and the kernel forgets
    /// the entry. Every path that removes a layer calls this before it replies.
    pub fn layer_gone(&self, id: LayerId, name: &str) {
        self.slots().layer_removed(id);
        self.layers_changed(name);
    }

    /// The layers directory changed (a layer came or went): new times, and the kernel forgets
    /// its entry `name` and the directory's attributes.
    pub fn layers_changed(&self, name: &str) {
        *lock(&self.layers_changed) = Timespec::now();
        if let Some(notifier) = self.notifier.get() {
            // The kernel may not know the entry: ENOENT is expected and harmless.
            let _ = notifier.inval_entry(INodeNo(LAYERS_NODE), std::ffi::OsStr::new(name));
            let _ = notifier.inval_inode(INodeNo(LAYERS_NODE), 0, 0);
        }
    }
}

/// The engine's time as a `SystemTime`.
pub fn system_time(t: Timespec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        let before =
            Duration::from_secs(t.sec.unsigned_abs()) - Duration::from_nanos(u64::from(t.nsec));
        UNIX_EPOCH.checked_sub(before).unwrap_or(UNIX_EPOCH)
    }
}

/// A `SystemTime` as the engine's time.
pub fn timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec::new(d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            if d.subsec_nanos() == 0 {
                Timespec::new(-(d.as_secs() as i64), 0)
            } else {
                Timespec::new(-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    }
}

pub fn fuse_type(kind: FileType) -> FuseType {
    match kind {
        FileType::Regular => FuseType::RegularFile,
        FileType::Directory => FuseType::Directory,
        FileType::Symlink => FuseType::Symlink,
        FileType::Fifo => FuseType::NamedPipe,
        FileType::CharDevice => FuseType::CharDevice,
        FileType::BlockDevice => FuseType::BlockDevice,
        FileType::Socket => FuseType::Socket,
    }
}

/// The FUSE attributes of node `id` whose engine attributes are `attr`.
pub fn file_attr(id: u64, attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(id),
        size: attr.size,
        blocks: attr.blocks,
        atime: system_time(attr.atime),
        mtime: system_time(attr.mtime),
        ctime: system_time(attr.ctime),
        crtime: system_time(attr.ctime),
        kind: fuse_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_including_before_the_epoch() {
        for t in [
            Timespec::new(0, 0),
            Timespec::new(1_700_000_000, 123_456_789),
            Timespec::new(-1, 999_999_999),
            Timespec::new(-100, 5),
            Timespec::new(-100, 0),
        ] {
            assert_eq!(timespec(system_time(t)), t);
        }
    }
}
