//! Item keys and values of the layer trees (the btrfs fs-tree shape).
//!
//! Every item of an inode sits under a key that starts with the inode number, so the items of one
//! inode are adjacent and each kind of item is one contiguous key range.
//!
//! Key layout (big-endian, so that byte order is numeric order):
//!
//! ```text
//! offset size field
//!      0    8 ino          the inode the item belongs to
//!      8    1 kind         ItemKind
//!      9    n suffix       depends on the kind:
//!                          Inode         none                          (n = 0)
//!                          Xattr         attribute name, 1..=255 bytes
//!                          DirEntry      entry name, 1..=255 bytes
//!                          SymlinkChunk  chunk index, u8, 0..=3         (n = 1)
//!                          Extent        last file block of the extent, u64 BE (n = 8)
//!                          Orphan        the orphaned inode, u64 BE   (n = 8; ino is 0)
//!                          InodeRef      directory u64 BE, entry name (n = 9..=263)
//! ```
//!
//! An inode reference (back-reference) `(ino, InodeRef, dir, name)` with an empty value exists
//! exactly for each directory entry `(dir, DirEntry, name)` that names `ino`, directories
//! included (the root has none). It lets the paths of an inode be found by walking up, without
//! searching the directories (`changes/`); `ns/dir.rs` keeps both sides together.
//!
//! Orphan items all sit under inode 0, which is never handed out, so the orphans of a layer
//! (inodes unlinked while open, kept with nlink 0 until their last release) are one key range.
//!
//! Extents are keyed by their *last* file block so that a forward range scan from the key of
//! block `b` finds the one extent that may cover `b` first. Keys are at most 9 + 8 + 255 = 272
//! bytes.
//!
//! Value layouts (little-endian):
//!
//! ```text
//! Inode (84 bytes)                DirEntry (9 bytes)      Extent (24 + 4 * count bytes)
//!   0  4 mode (S_IFMT | perm)       0 8 child ino           0 8 first disk block
//!   4  4 nlink                      8 1 child FileType code 8 8 block count, 1..=256
//!   8  4 uid                                               16 8 owner LayerId
//!  12  4 gid                                               24 4 crc32c of each block,
//!  16  8 rdev                     Xattr: the value bytes,        `count` of them, in order
//!                                   0..=1024
//!  24  8 size (bytes)             SymlinkChunk: 1..=1024 bytes of the target, in chunk order
//!  32  8 blocks (512-byte units)
//!  40 12 atime (sec i64, nsec u32)
//!  52 12 mtime
//!  64 12 ctime
//!  76  8 parent directory ino (directories; 0 for other types)
//! ```
//!
//! FileType codes: 1 regular, 2 directory, 3 symlink, 4 fifo, 5 char device, 6 block device,
//! 7 socket.
//!
//! Data blocks carry no header; their checksums live in the extent that maps them, so a read
//! verifies every block it takes from the device (a flipped bit, a torn or misdirected data
//! write is `Corrupt`, never returned as file bytes). `EXTENT_BLOCKS_MAX` keeps the largest
//! extent value within the tree's `VALUE_MAX`.
//!
//! Invariants:
//! - `decode_*` take any bytes and return `Error::Corrupt` (block 0: the caller knows no better)
//!   for anything this module would not have written; they never panic;
//! - `encode_*` assert what they are given is encodable (pair assertions).

use crate::error::{Error, Result};
use crate::format::cursor::{self, Writer};
use crate::types::{BlockNo, FileType, Ino, LayerId, Timespec, FILE_SIZE_MAX, NAME_MAX};

/// Longest chunk of a symlink target stored under one key.
pub const SYMLINK_CHUNK_MAX: usize = 1024;
/// Most chunks of one symlink target (4 * 1024 >= SYMLINK_MAX).
pub const SYMLINK_CHUNKS_MAX: u8 = 4;
/// Bytes of a key before the suffix.
pub const KEY_PREFIX_LEN: usize = 9;
/// Size of an encoded inode record.
pub const INODE_RECORD_LEN: usize = 84;
/// Size of an encoded directory entry value.
pub const DIR_ENTRY_LEN: usize = 9;
/// Size of an encoded extent value before its checksums.
pub const EXTENT_FIXED_LEN: usize = 24;
/// Most blocks one extent maps (1 MiB of data): its checksums fill 1 KiB.
pub const EXTENT_BLOCKS_MAX: u64 = 256;
/// Size of the largest extent value.
pub const EXTENT_LEN_MAX: usize = EXTENT_FIXED_LEN + 4 * EXTENT_BLOCKS_MAX as usize;
const _: () = assert!(EXTENT_LEN_MAX <= crate::tree::VALUE_MAX);

/// The kind of an item, the byte after the inode number in its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ItemKind {
    Inode = 1,
    Xattr = 2,
    DirEntry = 3,
    SymlinkChunk = 4,
    Extent = 5,
    Orphan = 6,
    InodeRef = 7,
}

impl ItemKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Inode),
            2 => Some(Self::Xattr),
            3 => Some(Self::DirEntry),
            4 => Some(Self::SymlinkChunk),
            5 => Some(Self::Extent),
            6 => Some(Self::Orphan),
            7 => Some(Self::InodeRef),
            _ => None,
        }
    }
}

/// A decoded item key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Inode(Ino),
    Xattr(Ino, Vec<u8>),
    DirEntry(Ino, Vec<u8>),
    SymlinkChunk(Ino, u8),
    /// The extent of `Ino` whose last file block is the `u64`.
    Extent(Ino, u64),
    /// The orphan item of `Ino` (an inode with nlink 0 kept for an open file).
    Orphan(Ino),
    /// The back-reference of `Ino` for its entry named `Vec<u8>` in directory `Ino` (second).
    InodeRef(Ino, Ino, Vec<u8>),
}

/// The 9 bytes every key of `kind` for `ino` starts with.
pub fn key_prefix(ino: Ino, kind: ItemKind) -> Vec<u8> {
    let mut key = Vec::with_capacity(KEY_PREFIX_LEN + 8);
    key.extend_from_slice(&ino.0.to_be_bytes());
    key.push(kind as u8);
    key
}

/// A key strictly greater than every key of `kind` for `ino` and no greater than any key of a
/// later kind: the exclusive upper bound of a range scan over one kind.
pub fn key_prefix_end(ino: Ino, kind: ItemKind) -> Vec<u8> {
    let mut key = Vec::with_capacity(KEY_PREFIX_LEN);
    key.extend_from_slice(&ino.0.to_be_bytes());
    key.push(kind as u8 + 1);
    key
}

/// The key of `ino`'s inode record.
pub fn inode_key(ino: Ino) -> Vec<u8> {
    key_prefix(ino, ItemKind::Inode)
}

/// The key of entry `name` in directory `dir`.
pub fn dir_entry_key(dir: Ino, name: &[u8]) -> Vec<u8> {
    assert!(!name.is_empty() && name.len() <= NAME_MAX, "entry names are checked first");
    suffixed(dir, ItemKind::DirEntry, name)
}

/// The key of xattr `name` of `ino`.
pub fn xattr_key(ino: Ino, name: &[u8]) -> Vec<u8> {
    assert!(!name.is_empty() && name.len() <= NAME_MAX, "xattr names are checked first");
    suffixed(ino, ItemKind::Xattr, name)
}

/// The key of chunk `index` of `ino`'s symlink target.
pub fn symlink_key(ino: Ino, index: u8) -> Vec<u8> {
    assert!(index < SYMLINK_CHUNKS_MAX, "symlink targets are checked first");
    suffixed(ino, ItemKind::SymlinkChunk, &[index])
}

/// The key of the extent of `ino` whose last file block is `last`.
pub fn extent_key(ino: Ino, last: u64) -> Vec<u8> {
    suffixed(ino, ItemKind::Extent, &last.to_be_bytes())
}

/// The key of the orphan item of `ino`: under inode 0, so all orphans form one range.
pub fn orphan_key(ino: Ino) -> Vec<u8> {
    suffixed(Ino(0), ItemKind::Orphan, &ino.0.to_be_bytes())
}

/// The key of the back-reference of `ino` for its entry `name` in directory `dir`.
pub fn inode_ref_key(ino: Ino, dir: Ino, name: &[u8]) -> Vec<u8> {
    assert!(!name.is_empty() && name.len() <= NAME_MAX, "entry names are checked first");
    let mut key = key_prefix(ino, ItemKind::InodeRef);
    key.extend_from_slice(&dir.0.to_be_bytes());
    key.extend_from_slice(name);
    key
}

fn suffixed(ino: Ino, kind: ItemKind, suffix: &[u8]) -> Vec<u8> {
    let mut key = key_prefix(ino, kind);
    key.extend_from_slice(suffix);
    key
}

impl Key {
    /// The encoded key.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Key::Inode(ino) => inode_key(*ino),
            Key::Xattr(ino, name) => xattr_key(*ino, name),
            Key::DirEntry(ino, name) => dir_entry_key(*ino, name),
            Key::SymlinkChunk(ino, index) => symlink_key(*ino, *index),
            Key::Extent(ino, last) => extent_key(*ino, *last),
            Key::Orphan(ino) => orphan_key(*ino),
            Key::InodeRef(ino, dir, name) => inode_ref_key(*ino, *dir, name),
        }
    }

    /// The inode the item belongs to.
    pub fn ino(&self) -> Ino {
        match self {
            Key::Inode(ino)
            | Key::Xattr(ino, _)
            | Key::DirEntry(ino, _)
            | Key::SymlinkChunk(ino, _)
            | Key::Extent(ino, _)
            | Key::InodeRef(ino, _, _) => *ino,
            Key::Orphan(_) => Ino(0),
        }
    }
}

/// Decodes an item key.
pub fn decode_key(bytes: &[u8]) -> Result<Key> {
    let mut r = Reader::new(bytes, "item key");
    let ino = Ino(r.u64_be()?);
    let kind = ItemKind::from_u8(r.u8()?).ok_or_else(|| corrupt("item key: unknown kind"))?;
    let suffix = r.rest();
    let named = |suffix: &[u8]| -> Result<Vec<u8>> {
        if suffix.is_empty() || suffix.len() > NAME_MAX {
            return Err(corrupt(format!("item key: name of {} bytes", suffix.len())));
        }
        Ok(suffix.to_vec())
    };
    match kind {
        ItemKind::Inode if suffix.is_empty() => Ok(Key::Inode(ino)),
        ItemKind::Xattr => Ok(Key::Xattr(ino, named(suffix)?)),
        ItemKind::DirEntry => Ok(Key::DirEntry(ino, named(suffix)?)),
        ItemKind::SymlinkChunk => match suffix {
            [index] if *index < SYMLINK_CHUNKS_MAX => Ok(Key::SymlinkChunk(ino, *index)),
            _ => Err(corrupt("item key: bad symlink chunk index")),
        },
        ItemKind::Extent => {
            let mut r = Reader::new(suffix, "extent key");
            let last = r.u64_be()?;
            r.finish()?;
            Ok(Key::Extent(ino, last))
        }
        ItemKind::Orphan => {
            let mut r = Reader::new(suffix, "orphan key");
            let orphan = r.u64_be()?;
            r.finish()?;
            if ino.0 != 0 || orphan == 0 {
                return Err(corrupt("item key: orphan item outside inode 0"));
            }
            Ok(Key::Orphan(Ino(orphan)))
        }
        ItemKind::InodeRef => {
            let mut r = Reader::new(suffix, "inode reference key");
            let dir = Ino(r.u64_be()?);
            let name = named(r.rest())?;
            if dir.0 == 0 || ino.0 == 0 {
                return Err(corrupt("item key: inode reference with inode 0"));
            }
            Ok(Key::InodeRef(ino, dir, name))
        }
        ItemKind::Inode => Err(corrupt("item key: inode key with a suffix")),
    }
}

/// The inode record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InodeRecord {
    pub kind: FileType,
    /// `mode & 0o7777`.
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    /// Bytes for a regular file, target length for a symlink, 0 otherwise.
    pub size: u64,
    /// 512-byte units of data stored.
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// The parent directory of a directory (the root is its own parent); `Ino(0)` otherwise.
    pub parent: Ino,
}

/// Encodes an inode record.
pub fn encode_inode(rec: &InodeRecord) -> Vec<u8> {
    assert!(rec.perm <= 0o7777, "perm bits only");
    assert!(rec.size <= FILE_SIZE_MAX, "size within FILE_SIZE_MAX");
    let mut out = vec![0u8; INODE_RECORD_LEN];
    let mut w = Writer::new(&mut out);
    w.u32(rec.kind.mode_bits() | u32::from(rec.perm));
    for v in [rec.nlink, rec.uid, rec.gid] {
        w.u32(v);
    }
    for v in [rec.rdev, rec.size, rec.blocks] {
        w.u64(v);
    }
    for t in [rec.atime, rec.mtime, rec.ctime] {
        assert!(t.nsec < 1_000_000_000, "nsec below one second");
        w.i64(t.sec);
        w.u32(t.nsec);
    }
    w.u64(rec.parent.0);
    assert_eq!(w.position(), INODE_RECORD_LEN, "inode record layout");
    out
}

/// Decodes an inode record.
pub fn decode_inode(bytes: &[u8]) -> Result<InodeRecord> {
    let mut r = Reader::new(bytes, "inode record");
    let mode = r.u32()?;
    let kind = FileType::from_mode(mode).ok_or_else(|| corrupt("inode record: bad type bits"))?;
    if mode & !0o177777 != 0 {
        return Err(corrupt("inode record: unknown mode bits"));
    }
    let rec = InodeRecord {
        kind,
        perm: (mode & 0o7777) as u16,
        nlink: r.u32()?,
        uid: r.u32()?,
        gid: r.u32()?,
        rdev: r.u64()?,
        size: r.u64()?,
        blocks: r.u64()?,
        atime: r.timespec()?,
        mtime: r.timespec()?,
        ctime: r.timespec()?,
        parent: Ino(r.u64()?),
    };
    r.finish()?;
    if rec.size > FILE_SIZE_MAX {
        return Err(corrupt("inode record: size past FILE_SIZE_MAX"));
    }
    Ok(rec)
}

/// A directory entry's value: the child and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntryValue {
    pub ino: Ino,
    pub kind: FileType,
}

/// Encodes a directory entry value.
pub fn encode_dir_entry(entry: &DirEntryValue) -> Vec<u8> {
    assert!(entry.ino.0 != 0, "inode 0 is never handed out");
    let mut out = vec![0u8; DIR_ENTRY_LEN];
    let mut w = Writer::new(&mut out);
    w.u64(entry.ino.0);
    w.u8(type_code(entry.kind));
    out
}

/// Decodes a directory entry value.
pub fn decode_dir_entry(bytes: &[u8]) -> Result<DirEntryValue> {
    let mut r = Reader::new(bytes, "directory entry");
    let ino = Ino(r.u64()?);
    let kind = type_from_code(r.u8()?).ok_or_else(|| corrupt("directory entry: bad type"))?;
    r.finish()?;
    if ino.0 == 0 {
        return Err(corrupt("directory entry: inode 0"));
    }
    Ok(DirEntryValue { ino, kind })
}

/// A file extent's value: `count` blocks from `disk`, allocated by `owner`, and the crc32c of
/// each block's 4096 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentValue {
    pub disk: BlockNo,
    pub count: u64,
    pub owner: LayerId,
    /// One checksum per block, `count` of them.
    pub crcs: Vec<u32>,
}

/// Encodes an extent value.
pub fn encode_extent(extent: &ExtentValue) -> Vec<u8> {
    assert!((1..=EXTENT_BLOCKS_MAX).contains(&extent.count), "1 to 256 blocks per extent");
    assert!(extent.disk.0.checked_add(extent.count).is_some(), "extent inside u64");
    assert_eq!(extent.crcs.len() as u64, extent.count, "one checksum per block");
    let mut out = vec![0u8; EXTENT_FIXED_LEN + 4 * extent.crcs.len()];
    let mut w = Writer::new(&mut out);
    for v in [extent.disk.0, extent.count, extent.owner.0] {
        w.u64(v);
    }
    for crc in &extent.crcs {
        w.u32(*crc);
    }
    out
}

/// The checksum of a data block, as its extent records it: crc32c of the block's bytes.
pub fn data_crc(block: &[u8]) -> u32 {
    crc32c::crc32c(block)
}

/// Decodes an extent value.
pub fn decode_extent(bytes: &[u8]) -> Result<ExtentValue> {
    let mut r = Reader::new(bytes, "extent");
    let (disk, count, owner) = (BlockNo(r.u64()?), r.u64()?, LayerId(r.u64()?));
    if count == 0 || count > EXTENT_BLOCKS_MAX || disk.0.checked_add(count).is_none() {
        return Err(corrupt("extent: bad block range"));
    }
    let crcs = (0..count).map(|_| r.u32()).collect::<Result<Vec<u32>>>()?;
    r.finish()?;
    Ok(ExtentValue { disk, count, owner, crcs })
}

/// The one-byte code of a file type in a directory entry.
pub fn type_code(kind: FileType) -> u8 {
    match kind {
        FileType::Regular => 1,
        FileType::Directory => 2,
        FileType::Symlink => 3,
        FileType::Fifo => 4,
        FileType::CharDevice => 5,
        FileType::BlockDevice => 6,
        FileType::Socket => 7,
    }
}

/// The file type of a one-byte code.
pub fn type_from_code(code: u8) -> Option<FileType> {
    match code {
        1 => Some(FileType::Regular),
        2 => Some(FileType::Directory),
        3 => Some(FileType::Symlink),
        4 => Some(FileType::Fifo),
        5 => Some(FileType::CharDevice),
        6 => Some(FileType::BlockDevice),
        7 => Some(FileType::Socket),
        _ => None,
    }
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::corrupt(0, what)
}

/// A bounded reader over one record (the shared cursor, plus what the keys need).
struct Reader<'a> {
    inner: cursor::Reader<'a>,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { inner: cursor::Reader::new(buf, 0), what }
    }

    fn wrap<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|_| corrupt(format!("{}: truncated", self.what)))
    }

    fn u8(&mut self) -> Result<u8> {
        let r = self.inner.u8();
        self.wrap(r)
    }

    fn u32(&mut self) -> Result<u32> {
        let r = self.inner.u32();
        self.wrap(r)
    }

    fn u64(&mut self) -> Result<u64> {
        let r = self.inner.u64();
        self.wrap(r)
    }

    fn u64_be(&mut self) -> Result<u64> {
        Ok(self.u64()?.swap_bytes())
    }

    fn timespec(&mut self) -> Result<Timespec> {
        let r = self.inner.i64();
        let sec = self.wrap(r)?;
        let nsec = self.u32()?;
        if nsec >= 1_000_000_000 {
            return Err(corrupt(format!("{}: nsec out of range", self.what)));
        }
        Ok(Timespec { sec, nsec })
    }

    fn rest(&mut self) -> &'a [u8] {
        let n = self.inner.remaining();
        self.inner.bytes(n).unwrap_or(&[])
    }

    fn finish(self) -> Result<()> {
        match self.inner.remaining() {
            0 => Ok(()),
            n => Err(corrupt(format!("{}: {n} trailing bytes", self.what))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, Arbitrary, Gen};

    const TYPES: [FileType; 7] = [
        FileType::Regular,
        FileType::Directory,
        FileType::Symlink,
        FileType::Fifo,
        FileType::CharDevice,
        FileType::BlockDevice,
        FileType::Socket,
    ];

    fn any_type(g: &mut Gen) -> FileType {
        *g.choose(&TYPES).unwrap_or(&FileType::Regular)
    }

    fn any_time(g: &mut Gen) -> Timespec {
        Timespec { sec: i64::arbitrary(g), nsec: u32::arbitrary(g) % 1_000_000_000 }
    }

    #[derive(Clone, Debug)]
    struct AnyInode(InodeRecord);

    impl Arbitrary for AnyInode {
        fn arbitrary(g: &mut Gen) -> Self {
            AnyInode(InodeRecord {
                kind: any_type(g),
                perm: u16::arbitrary(g) & 0o7777,
                nlink: u32::arbitrary(g),
                uid: u32::arbitrary(g),
                gid: u32::arbitrary(g),
                rdev: u64::arbitrary(g),
                size: u64::arbitrary(g) % (FILE_SIZE_MAX + 1),
                blocks: u64::arbitrary(g),
                atime: any_time(g),
                mtime: any_time(g),
                ctime: any_time(g),
                parent: Ino(u64::arbitrary(g)),
            })
        }
    }

    fn any_name(bytes: Vec<u8>) -> Vec<u8> {
        let mut name: Vec<u8> = bytes.into_iter().take(NAME_MAX).collect();
        if name.is_empty() {
            name.push(b'x');
        }
        name
    }

    quickcheck! {
        fn inode_round_trips(rec: AnyInode) -> bool {
            let bytes = encode_inode(&rec.0);
            bytes.len() == INODE_RECORD_LEN && decode_inode(&bytes).ok() == Some(rec.0)
        }

        fn dir_entry_round_trips(ino: u64, code: u8) -> bool {
            let kind = type_from_code(code % 7 + 1).unwrap_or(FileType::Regular);
            let entry = DirEntryValue { ino: Ino(ino.max(1)), kind };
            decode_dir_entry(&encode_dir_entry(&entry)).ok() == Some(entry)
        }

        fn extent_round_trips(disk: u64, count: u64, owner: u64, seed: u32) -> bool {
            let count = count % EXTENT_BLOCKS_MAX + 1;
            let crcs = (0..count).map(|i| seed.wrapping_mul(i as u32 + 1)).collect();
            let extent = ExtentValue {
                disk: BlockNo(disk.min(u64::MAX - count)), count, owner: LayerId(owner), crcs
            };
            let bytes = encode_extent(&extent);
            bytes.len() <= EXTENT_LEN_MAX && decode_extent(&bytes).ok() == Some(extent)
        }

        fn keys_round_trip(ino: u64, name: Vec<u8>, last: u64, chunk: u8) -> bool {
            let ino = Ino(ino);
            let name = any_name(name);
            let keys = [
                Key::Inode(ino),
                Key::Xattr(ino, name.clone()),
                Key::DirEntry(ino, name),
                Key::SymlinkChunk(ino, chunk % SYMLINK_CHUNKS_MAX),
                Key::Extent(ino, last),
                Key::Orphan(Ino(ino.0.max(1))),
                Key::InodeRef(Ino(ino.0.max(1)), Ino(last.max(1)), any_name(vec![chunk])),
            ];
            keys.iter().all(|k| {
                let bytes = k.encode();
                bytes.len() <= crate::tree::KEY_MAX && decode_key(&bytes).ok().as_ref() == Some(k)
            })
        }

        fn key_order_is_ino_then_kind_then_suffix(a: u64, b: u64, x: u64, y: u64) -> bool {
            let ka = extent_key(Ino(a), x);
            let kb = extent_key(Ino(b), y);
            (ka < kb) == ((a, x) < (b, y))
                && inode_key(Ino(a)) < ka
                && key_prefix_end(Ino(a), ItemKind::Extent) > ka
        }

        fn entry_keys_sort_by_name(a: Vec<u8>, b: Vec<u8>) -> bool {
            let (a, b) = (any_name(a), any_name(b));
            (dir_entry_key(Ino(5), &a) < dir_entry_key(Ino(5), &b)) == (a < b)
        }

        fn decoders_never_panic(bytes: Vec<u8>) -> bool {
            let _ = decode_key(&bytes);
            let _ = decode_inode(&bytes);
            let _ = decode_dir_entry(&bytes);
            let _ = decode_extent(&bytes);
            true
        }
    }

    #[test]
    fn bad_records_are_corrupt_not_panics() {
        let good = encode_inode(&InodeRecord {
            kind: FileType::Regular,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            blocks: 0,
            atime: Timespec::default(),
            mtime: Timespec::default(),
            ctime: Timespec::default(),
            parent: Ino(0),
        });
        let corrupt = |r: Result<InodeRecord>| matches!(r, Err(Error::Corrupt { block: 0, .. }));
        assert!(corrupt(decode_inode(&good[..INODE_RECORD_LEN - 1])));
        let mut long = good.clone();
        long.push(0);
        assert!(corrupt(decode_inode(&long)));
        let mut no_type = good.clone();
        no_type[..4].copy_from_slice(&0o644u32.to_le_bytes());
        assert!(corrupt(decode_inode(&no_type)));
        let mut big = good;
        big[24..32].copy_from_slice(&(FILE_SIZE_MAX + 1).to_le_bytes());
        assert!(corrupt(decode_inode(&big)));
        let one = ExtentValue { disk: BlockNo(1), count: 1, owner: LayerId(1), crcs: vec![7] };
        let bytes = encode_extent(&one);
        assert!(decode_extent(&bytes[..8]).is_err());
        assert!(decode_extent(&bytes[..EXTENT_FIXED_LEN + 3]).is_err(), "checksum cut short");
        assert!(decode_extent(&[&bytes[..], &[0; 4]].concat()).is_err(), "a checksum too many");
        assert!(decode_extent(&[0u8; EXTENT_FIXED_LEN]).is_err(), "count 0");
        let mut long = bytes;
        long[8..16].copy_from_slice(&(EXTENT_BLOCKS_MAX + 1).to_le_bytes());
        assert!(decode_extent(&long).is_err(), "more blocks than an extent may map");
        assert!(decode_dir_entry(&[0u8; DIR_ENTRY_LEN]).is_err(), "inode 0");
        assert!(decode_key(&[0, 0, 0, 0, 0, 0, 0, 1, 9]).is_err(), "unknown kind");
        assert!(decode_key(&inode_key(Ino(1))[..8]).is_err(), "short key");
        assert!(decode_key(&key_prefix(Ino(1), ItemKind::DirEntry)).is_err(), "empty name");
        assert!(decode_key(&[&symlink_key(Ino(1), 0)[..9], &[4]].concat()).is_err());
        let backref = inode_ref_key(Ino(5), Ino(1), b"f");
        assert_eq!(decode_key(&backref).ok(), Some(Key::InodeRef(Ino(5), Ino(1), b"f".to_vec())));
        assert!(decode_key(&backref[..17]).is_err(), "inode reference without a name");
        assert!(decode_key(&backref[..12]).is_err(), "inode reference cut in its directory");
        let mut dir0 = backref;
        dir0[9..17].fill(0);
        assert!(decode_key(&dir0).is_err(), "directory 0");
    }
}
