//! The operation alphabet of the model-against-engine tests (TESTING.md §2), and how an
//! abstract operation becomes a concrete call against the model's current state.
//!
//! An `Op` names its objects by index (`Pick`), not by value: `resolve` takes each index modulo
//! the length of the model's current list (layers by name; directories, inodes and entries of
//! the chosen layer by inode number and path). So every `Op` is valid in every state, a shrunk
//! sequence stays meaningful, and collisions are common.
//!
//! Invariants:
//! - `resolve` is a pure function of the model and the op: the reference and the harness get
//!   the same `Call` from equal models;
//! - the picks that aim outside the lists (`LayerPick::Id`, `InoPick::Number`, bad names) exist
//!   to reach the error paths, and are drawn rarely by `strategy`.

use lcfs_model::{
    FileType, Ino, LayerDump, LayerId, LayerInfo, LayerState, Model, RenameFlags, SetAttr,
    Timespec, XattrFlags,
};

/// An index into one of the model's current lists, taken modulo its length.
pub type Pick = u16;

/// Names of layers: a small pool, so that names collide.
pub const LAYER_NAMES: [&str; 4] = ["base", "a", "b", "c"];
/// Names of entries: a small pool, so that names collide.
pub const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
/// Names that are never valid entry or layer names.
pub const BAD_NAMES: [&[u8]; 5] = [b"", b".", b"..", b"a/b", b"a\0b"];
/// Symlink targets.
pub const TARGETS: [&str; 4] = ["a", "../b", "/etc/passwd", "x/y/z"];
/// Xattr names.
pub const XATTR_NAMES: [&str; 4] = ["user.a", "user.b", "trusted.c", "security.selinux"];

/// Which layer an operation addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerPick {
    /// One of the current layers, in name order.
    Index(Pick),
    /// One of the writable layers (any layer if none is).
    Writable(Pick),
    /// The id `n % (next id + 1)`: 0 (the system id), removed, live or never handed out.
    Id(Pick),
}

/// Which inode an operation addresses, in the chosen layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InoPick {
    /// One of the layer's directories.
    Dir(Pick),
    /// Any of the layer's inodes.
    Any(Pick),
    /// One of the layer's regular files (any inode if there is none).
    File(Pick),
    /// One of the layer's inodes that are not directories (any inode if there is none).
    NonDir(Pick),
    /// The number `n % (next number + 1)`: 0, root, removed, another layer's, or unused.
    Number(Pick),
}

/// A name for a new or looked-up entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamePick {
    /// One of `NAMES`.
    Pool(Pick),
    /// 255 bytes: the longest valid name.
    Max,
    /// 256 bytes: ENAMETOOLONG.
    Long,
    /// One of `BAD_NAMES`: EINVAL.
    Bad(Pick),
}

/// An existing entry `(directory, name)`, or a made-up one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPick {
    /// One of the layer's entries, in path order.
    Existing(Pick),
    /// One of the layer's entries that name directories (any entry if there is none).
    ExistingDir(Pick),
    /// A name in a directory, which may or may not exist.
    Named(InoPick, NamePick),
}

/// A symlink target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetPick {
    Pool(Pick),
    /// Empty: ENOENT.
    Empty,
    /// `SYMLINK_MAX` bytes.
    Max,
    /// `SYMLINK_MAX + 1` bytes: ENAMETOOLONG.
    Long,
}

/// An xattr name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrPick {
    Pool(Pick),
    /// One of the inode's xattrs (a pool name if it has none).
    Existing(Pick),
    /// Empty: ERANGE.
    Empty,
    /// 255 bytes.
    Max,
    /// 256 bytes: ERANGE.
    Long,
}

/// One abstract operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    CreateLayer {
        name: Pick,
        parent: Option<Pick>,
    },
    CommitLayer {
        name: Pick,
    },
    RemoveLayer {
        name: Pick,
    },
    /// mknod of any type (Regular is `create`; Directory and Symlink give EINVAL).
    Mknod {
        layer: LayerPick,
        dir: InoPick,
        name: NamePick,
        kind: FileType,
        perm: u16,
        rdev: u64,
    },
    Mkdir {
        layer: LayerPick,
        dir: InoPick,
        name: NamePick,
        perm: u16,
    },
    Symlink {
        layer: LayerPick,
        dir: InoPick,
        name: NamePick,
        target: TargetPick,
    },
    Link {
        layer: LayerPick,
        ino: InoPick,
        dir: InoPick,
        name: NamePick,
    },
    Unlink {
        layer: LayerPick,
        entry: EntryPick,
    },
    Rmdir {
        layer: LayerPick,
        entry: EntryPick,
    },
    Rename {
        layer: LayerPick,
        from: EntryPick,
        dir: InoPick,
        name: NamePick,
        flags: RenameFlags,
    },
    /// Writes `len` bytes of a pattern chosen by `fill` (0: zeros) at `offset`.
    Write {
        layer: LayerPick,
        ino: InoPick,
        offset: u64,
        len: u32,
        fill: u8,
    },
    Truncate {
        layer: LayerPick,
        ino: InoPick,
        size: u64,
    },
    SetAttr {
        layer: LayerPick,
        ino: InoPick,
        set: SetAttr,
    },
    SetXattr {
        layer: LayerPick,
        ino: InoPick,
        name: XattrPick,
        len: u16,
        flags: XattrFlags,
    },
    RemoveXattr {
        layer: LayerPick,
        ino: InoPick,
        name: XattrPick,
    },
    Read {
        layer: LayerPick,
        ino: InoPick,
        offset: u64,
        len: u32,
    },
    /// getattr, and readdir, readlink and every xattr as the type allows.
    Inspect {
        layer: LayerPick,
        ino: InoPick,
    },
    Lookup {
        layer: LayerPick,
        entry: EntryPick,
    },
    Fsync {
        layer: LayerPick,
        ino: InoPick,
    },
    /// Creates `count` files named `p000`, `p001`, ... in a directory, each with a little data,
    /// so that trees grow past one node.
    Populate {
        layer: LayerPick,
        dir: InoPick,
        count: u16,
    },
    Sync,
    Checkpoint,
    /// Clean unmount, then mount again over the same device.
    Remount,
    /// Compare every layer of both, now.
    Verify,
}

/// A concrete call, with values taken from the model's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    CreateLayer {
        name: String,
        parent: Option<String>,
    },
    CommitLayer {
        name: String,
    },
    RemoveLayer {
        name: String,
    },
    Mknod {
        layer: LayerId,
        dir: Ino,
        name: Vec<u8>,
        kind: FileType,
        perm: u16,
        rdev: u64,
    },
    Mkdir {
        layer: LayerId,
        dir: Ino,
        name: Vec<u8>,
        perm: u16,
    },
    Symlink {
        layer: LayerId,
        dir: Ino,
        name: Vec<u8>,
        target: Vec<u8>,
    },
    Link {
        layer: LayerId,
        ino: Ino,
        dir: Ino,
        name: Vec<u8>,
    },
    Unlink {
        layer: LayerId,
        dir: Ino,
        name: Vec<u8>,
    },
    Rmdir {
        layer: LayerId,
        dir: Ino,
        name: Vec<u8>,
    },
    Rename {
        layer: LayerId,
        dir: Ino,
        name: Vec<u8>,
        newdir: Ino,
        newname: Vec<u8>,
        flags: RenameFlags,
    },
    Write {
        layer: LayerId,
        ino: Ino,
        offset: u64,
        data: Vec<u8>,
    },
    SetAttr {
        layer: LayerId,
        ino: Ino,
        set: SetAttr,
    },
    SetXattr {
        layer: LayerId,
        ino: Ino,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: XattrFlags,
    },
    RemoveXattr {
        layer: LayerId,
        ino: Ino,
        name: Vec<u8>,
    },
    Read {
        layer: LayerId,
        ino: Ino,
        offset: u64,
        len: u32,
    },
    Inspect {
        layer: LayerId,
        ino: Ino,
    },
    Lookup {
        layer: LayerId,
        dir: Ino,
        name: Vec<u8>,
    },
    Fsync {
        layer: LayerId,
        ino: Ino,
    },
    Populate {
        layer: LayerId,
        dir: Ino,
        count: u16,
    },
    Sync,
    Checkpoint,
    Remount,
    Verify,
}

/// The owner of every inode the harness creates (one caller identity is enough: the engine
/// takes owners as given).
pub const UID: u32 = 1000;
pub const GID: u32 = 100;

/// The calls a `Populate` of `count` files in `dir` stands for: per file, a create, and a
/// write of a few bytes at an offset that grows with the file's index.
pub fn populate_calls(layer: LayerId, dir: Ino, index: u16) -> Call {
    Call::Mknod {
        layer,
        dir,
        name: format!("p{index:03}").into_bytes(),
        kind: FileType::Regular,
        perm: 0o640,
        rdev: 0,
    }
}

/// The write that follows the create of file `index` of a `Populate`.
pub fn populate_write(layer: LayerId, ino: Ino, index: u16) -> Call {
    let fill = (index % 250) as u8 + 1;
    Call::Write { layer, ino, offset: u64::from(index) * 100, data: pattern(fill, 64) }
}

/// The time of step `step` of a case: a logical clock, with nanoseconds that vary.
pub fn now(step: u64) -> Timespec {
    Timespec::new(1_000_000 + step as i64, ((step * 1_000_003) % 1_000_000_000) as u32)
}

/// The bytes a `Write` of `len` bytes with pattern `fill` writes: zeros for fill 0, else bytes
/// that depend on their position, so that misplaced bytes show.
pub fn pattern(fill: u8, len: u32) -> Vec<u8> {
    if fill == 0 {
        return vec![0; len as usize];
    }
    (0..u64::from(len)).map(|i| ((u64::from(fill) * 131 + i) % 251 + 1) as u8).collect()
}

/// The lists of one layer that picks index into.
struct LayerLists {
    dirs: Vec<Ino>,
    files: Vec<Ino>,
    non_dirs: Vec<Ino>,
    inodes: Vec<Ino>,
    /// Every entry `(directory, name)`, in path order.
    entries: Vec<(Ino, Vec<u8>)>,
    /// The entries that name directories.
    dir_entries: Vec<(Ino, Vec<u8>)>,
    dump: Option<LayerDump>,
}

impl LayerLists {
    fn of(dump: Option<LayerDump>) -> Self {
        let mut lists = LayerLists {
            dirs: vec![Ino::ROOT],
            files: Vec::new(),
            non_dirs: Vec::new(),
            inodes: vec![Ino::ROOT],
            entries: Vec::new(),
            dir_entries: Vec::new(),
            dump: None,
        };
        let Some(dump) = dump else { return lists };
        let kind = |ino: &Ino| dump.inodes[ino].attr.kind;
        lists.inodes = dump.inodes.keys().copied().collect();
        lists.dirs =
            lists.inodes.iter().copied().filter(|i| kind(i) == FileType::Directory).collect();
        lists.files =
            lists.inodes.iter().copied().filter(|i| kind(i) == FileType::Regular).collect();
        lists.non_dirs =
            lists.inodes.iter().copied().filter(|i| kind(i) != FileType::Directory).collect();
        for (path, ino) in dump.paths.iter().filter(|(path, _)| path.as_slice() != b"/") {
            let cut = path.iter().rposition(|b| *b == b'/').unwrap_or(0);
            let parent: &[u8] = if cut == 0 { b"/" } else { &path[..cut] };
            let entry = (dump.paths[parent], path[cut + 1..].to_vec());
            if kind(ino) == FileType::Directory {
                lists.dir_entries.push(entry.clone());
            }
            lists.entries.push(entry);
        }
        lists.dump = Some(dump);
        lists
    }

    /// The names of the xattrs of `ino`.
    fn xattrs(&self, ino: Ino) -> Vec<Vec<u8>> {
        let inode = self.dump.as_ref().and_then(|dump| dump.inodes.get(&ino));
        inode.map(|inode| inode.xattrs.keys().cloned().collect()).unwrap_or_default()
    }
}

fn at<T: Clone>(list: &[T], pick: Pick) -> Option<T> {
    (!list.is_empty()).then(|| list[usize::from(pick) % list.len()].clone())
}

/// The concrete call of `op` in the state `model`.
pub fn resolve(model: &Model, op: &Op) -> Call {
    let layer_names = |pick: Pick| LAYER_NAMES[usize::from(pick) % LAYER_NAMES.len()].to_owned();
    match op {
        Op::CreateLayer { name, parent } => {
            let layers = model.layers();
            let parent = parent.and_then(|pick| at(&layers, pick)).map(|info| info.name);
            Call::CreateLayer { name: layer_names(*name), parent }
        }
        Op::CommitLayer { name } => Call::CommitLayer { name: layer_names(*name) },
        Op::RemoveLayer { name } => Call::RemoveLayer { name: layer_names(*name) },
        Op::Sync => Call::Sync,
        Op::Checkpoint => Call::Checkpoint,
        Op::Remount => Call::Remount,
        Op::Verify => Call::Verify,
        _ => resolve_inode_op(model, op),
    }
}

impl Op {
    /// The layer an inode operation addresses (`None` for the others).
    fn layer(&self) -> Option<LayerPick> {
        match *self {
            Op::Mknod { layer, .. }
            | Op::Mkdir { layer, .. }
            | Op::Symlink { layer, .. }
            | Op::Link { layer, .. }
            | Op::Unlink { layer, .. }
            | Op::Rmdir { layer, .. }
            | Op::Rename { layer, .. }
            | Op::Write { layer, .. }
            | Op::Truncate { layer, .. }
            | Op::SetAttr { layer, .. }
            | Op::SetXattr { layer, .. }
            | Op::RemoveXattr { layer, .. }
            | Op::Read { layer, .. }
            | Op::Inspect { layer, .. }
            | Op::Lookup { layer, .. }
            | Op::Fsync { layer, .. }
            | Op::Populate { layer, .. } => Some(layer),
            Op::CreateLayer { .. }
            | Op::CommitLayer { .. }
            | Op::RemoveLayer { .. }
            | Op::Sync
            | Op::Checkpoint
            | Op::Remount
            | Op::Verify => None,
        }
    }
}

/// Resolves the picks of one inode operation against one layer's lists.
struct Resolver<'m> {
    model: &'m Model,
    lists: LayerLists,
}

impl Resolver<'_> {
    fn ino(&self, pick: InoPick) -> Ino {
        let l = &self.lists;
        match pick {
            InoPick::Dir(n) => at(&l.dirs, n).unwrap_or(Ino::ROOT),
            InoPick::Any(n) => at(&l.inodes, n).unwrap_or(Ino::ROOT),
            InoPick::File(n) => at(&l.files, n).or_else(|| at(&l.inodes, n)).unwrap_or(Ino::ROOT),
            InoPick::NonDir(n) => {
                at(&l.non_dirs, n).or_else(|| at(&l.inodes, n)).unwrap_or(Ino::ROOT)
            }
            InoPick::Number(n) => Ino(u64::from(n) % (self.model.next_ino().0 + 1)),
        }
    }

    fn entry(&self, pick: EntryPick) -> (Ino, Vec<u8>) {
        let l = &self.lists;
        let none = || (Ino::ROOT, NAMES[0].as_bytes().to_vec());
        match pick {
            EntryPick::Existing(n) => at(&l.entries, n).unwrap_or_else(none),
            EntryPick::ExistingDir(n) => {
                at(&l.dir_entries, n).or_else(|| at(&l.entries, n)).unwrap_or_else(none)
            }
            EntryPick::Named(dir, name) => (self.ino(dir), name_bytes(name)),
        }
    }
}

fn resolve_inode_op(model: &Model, op: &Op) -> Call {
    let pick = op.layer().expect("an inode operation");
    let layer = match pick {
        LayerPick::Index(n) => at(&model.layers(), n).map_or(LayerId(1), |info| info.id),
        LayerPick::Writable(n) => {
            let all = model.layers();
            let writable: Vec<LayerInfo> =
                all.iter().filter(|i| i.state == LayerState::Writable).cloned().collect();
            at(&writable, n).or_else(|| at(&all, n)).map_or(LayerId(1), |info| info.id)
        }
        LayerPick::Id(n) => LayerId(u64::from(n) % (model.next_layer_id().0 + 1)),
    };
    let r = Resolver { model, lists: LayerLists::of(model.dump_layer(layer).ok()) };
    match *op {
        Op::Mknod { dir, name, kind, perm, rdev, .. } => {
            Call::Mknod { layer, dir: r.ino(dir), name: name_bytes(name), kind, perm, rdev }
        }
        Op::Mkdir { dir, name, perm, .. } => {
            Call::Mkdir { layer, dir: r.ino(dir), name: name_bytes(name), perm }
        }
        Op::Symlink { dir, name, target, .. } => {
            let (dir, name, target) = (r.ino(dir), name_bytes(name), target_bytes(target));
            Call::Symlink { layer, dir, name, target }
        }
        Op::Link { ino, dir, name, .. } => {
            Call::Link { layer, ino: r.ino(ino), dir: r.ino(dir), name: name_bytes(name) }
        }
        Op::Unlink { entry, .. } => {
            let (dir, name) = r.entry(entry);
            Call::Unlink { layer, dir, name }
        }
        Op::Rmdir { entry, .. } => {
            let (dir, name) = r.entry(entry);
            Call::Rmdir { layer, dir, name }
        }
        Op::Rename { from, dir: to, name: newname, flags, .. } => {
            let (dir, name) = r.entry(from);
            let (newdir, newname) = (r.ino(to), name_bytes(newname));
            Call::Rename { layer, dir, name, newdir, newname, flags }
        }
        Op::Write { ino, offset, len, fill, .. } => {
            Call::Write { layer, ino: r.ino(ino), offset, data: pattern(fill, len) }
        }
        Op::Truncate { ino, size, .. } => {
            let set = SetAttr { size: Some(size), ..Default::default() };
            Call::SetAttr { layer, ino: r.ino(ino), set }
        }
        Op::SetAttr { ino, ref set, .. } => {
            Call::SetAttr { layer, ino: r.ino(ino), set: set.clone() }
        }
        Op::SetXattr { ino, name, len, flags, .. } => {
            let (ino, value) = (r.ino(ino), pattern(name_seed(name), u32::from(len)));
            Call::SetXattr { layer, ino, name: xattr_name(&r.lists, ino, name), value, flags }
        }
        Op::RemoveXattr { ino, name, .. } => {
            let ino = r.ino(ino);
            Call::RemoveXattr { layer, ino, name: xattr_name(&r.lists, ino, name) }
        }
        Op::Read { ino, offset, len, .. } => Call::Read { layer, ino: r.ino(ino), offset, len },
        Op::Inspect { ino, .. } => Call::Inspect { layer, ino: r.ino(ino) },
        Op::Lookup { entry, .. } => {
            let (dir, name) = r.entry(entry);
            Call::Lookup { layer, dir, name }
        }
        Op::Fsync { ino, .. } => Call::Fsync { layer, ino: r.ino(ino) },
        Op::Populate { dir, count, .. } => Call::Populate { layer, dir: r.ino(dir), count },
        Op::CreateLayer { .. }
        | Op::CommitLayer { .. }
        | Op::RemoveLayer { .. }
        | Op::Sync
        | Op::Checkpoint
        | Op::Remount
        | Op::Verify => unreachable!("resolved by `resolve`"),
    }
}

fn name_bytes(pick: NamePick) -> Vec<u8> {
    match pick {
        NamePick::Pool(n) => NAMES[usize::from(n) % NAMES.len()].as_bytes().to_vec(),
        NamePick::Max => vec![b'm'; lcfs_model::NAME_MAX],
        NamePick::Long => vec![b'l'; lcfs_model::NAME_MAX + 1],
        NamePick::Bad(n) => BAD_NAMES[usize::from(n) % BAD_NAMES.len()].to_vec(),
    }
}

fn target_bytes(pick: TargetPick) -> Vec<u8> {
    match pick {
        TargetPick::Pool(n) => TARGETS[usize::from(n) % TARGETS.len()].as_bytes().to_vec(),
        TargetPick::Empty => Vec::new(),
        TargetPick::Max => vec![b't'; lcfs_model::SYMLINK_MAX],
        TargetPick::Long => vec![b't'; lcfs_model::SYMLINK_MAX + 1],
    }
}

fn xattr_name(l: &LayerLists, ino: Ino, pick: XattrPick) -> Vec<u8> {
    let pool = |n: Pick| XATTR_NAMES[usize::from(n) % XATTR_NAMES.len()].as_bytes().to_vec();
    match pick {
        XattrPick::Pool(n) => pool(n),
        XattrPick::Existing(n) => at(&l.xattrs(ino), n).unwrap_or_else(|| pool(n)),
        XattrPick::Empty => Vec::new(),
        XattrPick::Max => vec![b'x'; lcfs_model::NAME_MAX],
        XattrPick::Long => vec![b'x'; lcfs_model::NAME_MAX + 1],
    }
}

/// A value pattern per xattr name, so that values of different names differ.
fn name_seed(pick: XattrPick) -> u8 {
    match pick {
        XattrPick::Pool(n) | XattrPick::Existing(n) => (n % 200) as u8 + 1,
        XattrPick::Empty => 201,
        XattrPick::Max => 202,
        XattrPick::Long => 203,
    }
}
