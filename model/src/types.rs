//! The vocabulary of the model: the same shapes, under the same names, as `impl/src/types.rs`.
//!
//! The conformance harness converts between these and the engine's types field by field, so a
//! field added on one side must be added on the other. Invariants the model keeps for values it
//! returns:
//! - `Attr.perm` never has bits above `0o7777`;
//! - `Attr.blocks` is always 0 (block accounting is the engine's business; the harness ignores it);
//! - `Attr.size` is the byte count of a regular file, the target length of a symlink, else 0.

/// An inode number. One filesystem-wide counter, never reused; every layer's root is [`Ino::ROOT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino(pub u64);

impl Ino {
    /// The root directory of every layer.
    pub const ROOT: Ino = Ino(1);
    /// The first number the inode counter hands out.
    pub const FIRST: Ino = Ino(2);
}

/// A layer's stable numeric id: from a counter starting at 1, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerId(pub u64);

impl LayerId {
    /// The owner of the engine's system metadata; never the id of a layer.
    pub const SYSTEM: LayerId = LayerId(0);
    /// The first id the layer counter hands out.
    pub const FIRST: LayerId = LayerId(1);
}

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    /// A time from seconds and nanoseconds (`nsec` below 1e9).
    pub const fn new(sec: i64, nsec: u32) -> Self {
        Self { sec, nsec }
    }
}

/// The type of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileType {
    /// Every type, in declaration order.
    pub const ALL: [FileType; 7] = [
        FileType::Regular,
        FileType::Directory,
        FileType::Symlink,
        FileType::Fifo,
        FileType::CharDevice,
        FileType::BlockDevice,
        FileType::Socket,
    ];

    /// The `S_IFMT` bits of this type.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => 0o100000,
            FileType::Directory => 0o040000,
            FileType::Symlink => 0o120000,
            FileType::Fifo => 0o010000,
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Socket => 0o140000,
        }
    }

    /// The type named by the `S_IFMT` bits of `mode`, if any.
    pub const fn from_mode(mode: u32) -> Option<FileType> {
        match mode & 0o170000 {
            0o100000 => Some(FileType::Regular),
            0o040000 => Some(FileType::Directory),
            0o120000 => Some(FileType::Symlink),
            0o010000 => Some(FileType::Fifo),
            0o020000 => Some(FileType::CharDevice),
            0o060000 => Some(FileType::BlockDevice),
            0o140000 => Some(FileType::Socket),
            _ => None,
        }
    }
}

/// The attributes of an inode, as `getattr` returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileType,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    /// Bytes for a regular file, the target length for a symlink, 0 for everything else.
    pub size: u64,
    /// 512-byte units allocated. Always 0 in the model.
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

/// The changes of a `setattr`; `None` leaves a field alone. Any change sets ctime to `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (`& 0o7777`); the type bits cannot change.
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncate or extend a regular file (also sets mtime to `now`).
    pub size: Option<u64>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
}

/// A layer's state: writable while being filled, committed (immutable) after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerState {
    Writable,
    Committed,
}

/// What `layer` and `layers` report about a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    pub id: LayerId,
    pub name: String,
    pub parent: Option<String>,
    pub state: LayerState,
    /// Number of layers whose parent this is.
    pub children: u32,
}

/// One entry of a directory listing (no `.` or `..`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: Ino,
    pub kind: FileType,
}

/// `renameat2` flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// RENAME_NOREPLACE: fail with EEXIST if the target exists.
    pub noreplace: bool,
    /// RENAME_EXCHANGE: swap source and target atomically; both must exist.
    pub exchange: bool,
}

/// `setxattr` flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XattrFlags {
    /// Create or replace.
    #[default]
    Any,
    /// XATTR_CREATE: fail with EEXIST if it exists.
    Create,
    /// XATTR_REPLACE: fail with ENODATA if it does not exist.
    Replace,
}

/// Filesystem-wide numbers, as `statfs` reports them. The model fills only `block_size` and
/// `name_max`; the other fields are 0 and the harness does not compare them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statfs {
    pub block_size: u32,
    pub blocks_total: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    /// Inodes in use across all layers (an inode shared by layers counts once).
    pub files: u64,
    pub files_free: u64,
    pub name_max: u32,
}

/// Longest name of a directory entry, layer or xattr, in bytes.
pub const NAME_MAX: usize = 255;
/// Longest symlink target, in bytes.
pub const SYMLINK_MAX: usize = 4095;
/// Longest xattr value, in bytes (ENOSPC above, as ext4 does when a value does not fit).
pub const XATTR_VALUE_MAX: usize = 1024;
/// Largest file size: 16 TiB (EFBIG past it).
pub const FILE_SIZE_MAX: u64 = 1 << 44;
/// Most hard links to one inode (EMLINK past it).
pub const LINK_MAX: u32 = 65000;
/// The block size `statfs` reports, and the page size of the model's sparse file data.
pub const BLOCK_SIZE: u32 = 4096;
