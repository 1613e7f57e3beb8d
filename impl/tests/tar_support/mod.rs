//! Shared helpers of the tar tests: a fresh engine, fsck, a canonical dump of a layer (so two
//! layers compare whatever their inode numbers), a stream builder over `lcfs::tar::Writer`, and
//! hand-built header blocks for the malformed cases.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lcfs::tar::{ApplyOptions, EntryKind, EntrySpec, Limits, Writer};
use lcfs::{
    fsck, BlockDevice, Error, FileType, Fs, Ino, LayerId, MemDevice, MkfsOptions, MountOptions,
    Timespec,
};

pub fn now() -> Timespec {
    Timespec::new(1_700_000_000, 7)
}

pub fn opts() -> ApplyOptions {
    ApplyOptions {
        now: now(),
        limits: Limits::default(),
    }
}

pub fn fresh() -> (Arc<dyn BlockDevice>, Fs) {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(1 << 15));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let fs = Fs::mount(Arc::clone(&dev), &MountOptions::default()).unwrap();
    (dev, fs)
}

/// Unmounts and checks the image.
pub fn unmount_clean(dev: &Arc<dyn BlockDevice>, fs: Fs) {
    fs.unmount().unwrap();
    let report = fsck::check(Arc::clone(dev)).unwrap();
    assert!(report.is_clean(), "{report}");
}

/// What a path of a layer holds, without its inode number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: FileType,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub rdev: u64,
    pub nlink: u32,
    /// File data or symlink target.
    pub bytes: Vec<u8>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The first path (in walk order) of the same inode, for hard links.
    pub same_as: Option<Vec<u8>>,
}

/// Every path of `layer` (the root as "") and what it holds.
pub fn dump(fs: &Fs, layer: LayerId) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut first: HashMap<Ino, Vec<u8>> = HashMap::new();
    let mut inos = Vec::new();
    let mut work = vec![(Ino::ROOT, Vec::new())];
    while let Some((ino, path)) = work.pop() {
        let attr = fs.getattr(layer, ino).unwrap();
        let bytes = match attr.kind {
            FileType::Regular => fs.read(layer, ino, 0, attr.size as u32).unwrap(),
            FileType::Symlink => fs.readlink(layer, ino).unwrap(),
            _ => Vec::new(),
        };
        let mut xattrs = BTreeMap::new();
        for name in fs.listxattr(layer, ino).unwrap() {
            let value = fs.getxattr(layer, ino, &name).unwrap();
            xattrs.insert(name, value);
        }
        // The smallest path of an inode names its hard-link group (walk order does not matter).
        let smallest = first.entry(ino).or_insert_with(|| path.clone());
        if path < *smallest {
            *smallest = path.clone();
        }
        inos.push((path.clone(), ino));
        let same_as = None;
        if attr.kind == FileType::Directory {
            for e in fs.readdir(layer, ino, None, usize::MAX).unwrap() {
                let mut child = path.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&e.name);
                work.push((e.ino, child));
            }
        }
        let node = Node {
            kind: attr.kind,
            perm: attr.perm,
            uid: attr.uid,
            gid: attr.gid,
            mtime: attr.mtime,
            rdev: attr.rdev,
            nlink: attr.nlink,
            bytes,
            xattrs,
            same_as,
        };
        out.insert(path, node);
    }
    link_groups(&mut out, &inos, &first);
    out
}

/// Sets `same_as` of every path whose inode has a smaller path.
pub fn link_groups<K: Eq + std::hash::Hash>(
    out: &mut BTreeMap<Vec<u8>, Node>,
    inos: &[(Vec<u8>, K)],
    smallest: &HashMap<K, Vec<u8>>,
) {
    for (path, ino) in inos {
        let first = &smallest[ino];
        if first != path {
            out.get_mut(path).unwrap().same_as = Some(first.clone());
        }
    }
}

/// The inode of `path` in `layer` (components split at '/').
pub fn resolve(fs: &Fs, layer: LayerId, path: &[u8]) -> Result<lcfs::Attr, Error> {
    let mut attr = fs.getattr(layer, Ino::ROOT)?;
    for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        attr = fs.lookup(layer, attr.ino, name)?;
    }
    Ok(attr)
}

/// A stream built entry by entry with lcfs's own writer.
pub struct Build {
    w: Writer<Vec<u8>>,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            w: Writer::new(Vec::new()),
        }
    }
}

pub fn spec(kind: EntryKind, path: &[u8]) -> EntrySpec<'_> {
    EntrySpec {
        kind,
        path,
        link: b"",
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: Timespec::new(1_600_000_000, 0),
        dev_major: 0,
        dev_minor: 0,
        xattrs: &[],
    }
}

impl Build {
    pub fn entry(mut self, spec: &EntrySpec<'_>, data: &[u8]) -> Self {
        let mut spec = spec.clone();
        spec.size = data.len() as u64;
        self.w.append(&spec).unwrap();
        self.w.write_data(data).unwrap();
        self
    }
    pub fn file(self, path: &[u8], data: &[u8]) -> Self {
        self.entry(&spec(EntryKind::Regular, path), data)
    }
    pub fn dir(self, path: &[u8]) -> Self {
        self.entry(
            &EntrySpec {
                mode: 0o755,
                ..spec(EntryKind::Directory, path)
            },
            b"",
        )
    }
    pub fn symlink(self, path: &[u8], target: &[u8]) -> Self {
        self.entry(
            &EntrySpec {
                link: target,
                ..spec(EntryKind::Symlink, path)
            },
            b"",
        )
    }
    pub fn hardlink(self, path: &[u8], target: &[u8]) -> Self {
        self.entry(
            &EntrySpec {
                link: target,
                ..spec(EntryKind::HardLink, path)
            },
            b"",
        )
    }
    /// Raw bytes in the stream (hand-built headers).
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        // Writer has no raw API: finish into the vector, then drop the end marker.
        let w = std::mem::replace(&mut self.w, Writer::new(Vec::new()));
        let (mut v, _) = w.finish().unwrap();
        v.truncate(v.len() - 1024);
        v.extend_from_slice(bytes);
        self.w = Writer::new(v);
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.w.finish().unwrap().0
    }
}

/// A ustar header block with a valid checksum.
pub fn header(name: &[u8], flag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    b[100..108].copy_from_slice(b"0000644\0");
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    let size = format!("{size:011o}\0");
    b[124..136].copy_from_slice(size.as_bytes());
    b[136..148].copy_from_slice(b"14000000000\0");
    b[156] = flag;
    b[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    seal(&mut b);
    b
}

/// Recomputes the checksum of a header block.
pub fn seal(b: &mut [u8; 512]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// `data` padded to whole blocks.
pub fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

/// The end-of-archive marker.
pub const END: [u8; 1024] = [0; 1024];

/// A PAX 'x' header and its data.
pub fn pax(records: &[u8]) -> Vec<u8> {
    let mut v = header(b"././@PaxHeader", b'x', records.len() as u64, b"").to_vec();
    v.extend_from_slice(&padded(records));
    v
}

/// One PAX record with its length computed.
pub fn record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut v = format!("{len} {key}=").into_bytes();
    v.extend_from_slice(value);
    v.push(b'\n');
    v
}

/// An engine with a committed base layer (files and a directory), a sibling layer with a change
/// of its own, and a writable target layer, both children of base.
pub struct Stage {
    pub dev: Arc<dyn BlockDevice>,
    pub fs: Fs,
    pub base: LayerId,
    pub sibling: LayerId,
    pub target: LayerId,
    base_dump: BTreeMap<Vec<u8>, Node>,
    sibling_dump: BTreeMap<Vec<u8>, Node>,
}

impl Stage {
    pub fn new() -> Stage {
        let (dev, fs) = fresh();
        let base = fs.create_layer("base", None).unwrap();
        let dir = fs
            .mkdir(base, Ino::ROOT, b"etc", 0o755, 0, 0, now())
            .unwrap();
        let f = fs
            .mknod(
                base,
                dir.ino,
                b"passwd",
                FileType::Regular,
                0o644,
                0,
                0,
                0,
                now(),
            )
            .unwrap();
        fs.write(base, f.ino, 0, b"root:x:0:0\n", now()).unwrap();
        let sub = fs.mkdir(base, dir.ino, b"sub", 0o700, 0, 0, now()).unwrap();
        fs.mknod(
            base,
            sub.ino,
            b"deep",
            FileType::Regular,
            0o600,
            0,
            0,
            0,
            now(),
        )
        .unwrap();
        fs.symlink(base, Ino::ROOT, b"escape", b"/", 0, 0, now())
            .unwrap();
        fs.symlink(base, Ino::ROOT, b"up", b"../../..", 0, 0, now())
            .unwrap();
        fs.commit_layer("base").unwrap();
        let sibling = fs.create_layer("sibling", Some("base")).unwrap();
        fs.mknod(
            sibling,
            Ino::ROOT,
            b"mine",
            FileType::Regular,
            0o644,
            0,
            0,
            0,
            now(),
        )
        .unwrap();
        let target = fs.create_layer("target", Some("base")).unwrap();
        let (base_dump, sibling_dump) = (dump(&fs, base), dump(&fs, sibling));
        assert_eq!((base_dump.len(), sibling_dump.len()), (7, 8));
        Stage {
            dev,
            fs,
            base,
            sibling,
            target,
            base_dump,
            sibling_dump,
        }
    }

    /// Applies `tar` to the target layer.
    pub fn apply(&self, tar: &[u8]) -> Result<u64, lcfs::tar::TarError> {
        lcfs::tar::apply_diff_with(&self.fs, self.target, tar, &opts())
    }

    /// Applies, expects an EINVAL-shaped error naming `name`, and returns its message.
    pub fn refuses(&self, tar: &[u8], name: &str) -> String {
        let err = self.apply(tar).expect_err("the stream must be refused");
        let message = err.to_string();
        assert_eq!(err.errno(), 22, "{message}");
        assert!(
            err.name.contains(name),
            "the error names {name:?}: {message}"
        );
        message
    }

    /// Checks the base and sibling layers kept their content, unmounts and runs fsck.
    pub fn finish(self) {
        assert_eq!(
            dump(&self.fs, self.base),
            self.base_dump,
            "the base layer changed"
        );
        assert_eq!(
            dump(&self.fs, self.sibling),
            self.sibling_dump,
            "the sibling layer changed"
        );
        unmount_clean(&self.dev, self.fs);
    }
}
