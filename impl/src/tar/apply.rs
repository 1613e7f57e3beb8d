//! `apply_diff`: extracting an OCI/Docker layer tar into a writable layer (Docker's
//! ApplyDiff), through the public `Fs` API.
//!
//! Per entry, after `path::clean`:
//! - a base name `.wh..wh..opq` clears its directory of everything this stream did not create;
//!   another `.wh..wh.*` (AUFS metadata) is skipped; `.wh.NAME` removes NAME, a directory with
//!   everything under it; a whiteout of a missing name does nothing;
//! - otherwise missing parent directories are created (0755, root), an existing entry of the
//!   path is replaced (a directory over a directory keeps its content and takes the new owner,
//!   mode and xattrs), and the entry is created with its owner, mode, xattrs and times.
//!
//! Invariants:
//! - a path is resolved one component at a time from the layer root with `lookup`; a component
//!   that is a symlink or not a directory is an error, so nothing is reached through a symlink;
//! - a hard link's target is resolved by the same rules and must exist and not be a directory;
//! - directory times are set after the last entry (creating entries moves them), so the times
//!   the stream gives are the ones that remain;
//! - the sets this keeps (unpacked paths, directory times) grow by at most one item per header
//!   (plus the parents it creates), which `Limits::headers_max` bounds, and the unpacked paths
//!   by `Limits::tracked_path_bytes_max` in bytes.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::header::EntryKind;
use super::path::{self, Components};
use super::reader::{Entry, Reader};
use super::{display_name, Limits, TarError, TarErrorKind, TarResult};
use crate::error::Error;
use crate::fs::Fs;
use crate::types::{
    Attr, FileType, Ino, LayerId, SetAttr, Timespec, XattrFlags, NAME_MAX, SYMLINK_MAX,
};

/// Options of `apply_diff_with`.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The time of the changes the stream does not date (ctime, created parents).
    pub now: Timespec,
    pub limits: Limits,
}

impl ApplyOptions {
    /// The default limits, with the current time.
    pub fn new() -> Self {
        ApplyOptions {
            now: Timespec::now(),
            limits: Limits::default(),
        }
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The base name of an opaque-directory marker.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of AUFS metadata names (skipped).
const AUFS_META: &[u8] = b".wh..wh.";
/// The prefix of a whiteout.
const WHITEOUT: &[u8] = b".wh.";
/// File data goes to the engine in writes of at most this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// Runs of zeros this long and aligned are left as holes.
const HOLE_BYTES: usize = 4096;
/// Entries asked of `readdir` at a time.
const READDIR_BATCH: usize = 256;

/// Extracts the layer tar `reader` into the writable layer `layer`, with the current time and
/// the default limits. Returns the bytes of regular-file data applied.
pub fn apply_diff(fs: &Fs, layer: LayerId, reader: impl Read) -> TarResult<u64> {
    apply_diff_with(fs, layer, reader, &ApplyOptions::new())
}

/// `apply_diff` with explicit options. On an error, the entries applied before it remain (the
/// engine stays consistent); the caller removes the layer.
pub fn apply_diff_with(
    fs: &Fs,
    layer: LayerId,
    reader: impl Read,
    opts: &ApplyOptions,
) -> TarResult<u64> {
    let whole = |kind: TarErrorKind| TarError {
        index: 0,
        offset: 0,
        name: String::new(),
        kind,
    };
    // The layer exists and is writable (an empty setattr changes nothing).
    fs.setattr(layer, Ino::ROOT, &SetAttr::default(), opts.now)
        .map_err(|e| whole(e.into()))?;
    let mut tar = Reader::new(reader, opts.limits.clone());
    let mut apply = Apply {
        fs,
        layer,
        now: opts.now,
        path_bytes_max: opts.limits.path_bytes_max,
        tracked_bytes_max: opts.limits.tracked_path_bytes_max,
        tracked_bytes: 0,
        unpacked: HashSet::new(),
        dir_times: HashMap::new(),
        applied_bytes: 0,
    };
    while let Some(entry) = tar.next_entry()? {
        if let Err(kind) = apply.entry(&mut tar, &entry) {
            return Err(TarError {
                index: entry.index,
                offset: entry.offset,
                name: display_name(&entry.path),
                kind,
            });
        }
    }
    apply.finish().map_err(whole)?;
    Ok(apply.applied_bytes)
}

/// The state of one apply.
struct Apply<'a> {
    fs: &'a Fs,
    layer: LayerId,
    now: Timespec,
    path_bytes_max: usize,
    tracked_bytes_max: usize,
    /// Bytes of the paths in `unpacked` (never decreased: a bound, not a measure).
    tracked_bytes: usize,
    /// Paths this stream created (an opaque marker keeps them).
    unpacked: HashSet<Vec<u8>>,
    /// Directories of the stream and their (atime, mtime), set at the end.
    dir_times: HashMap<Ino, (Timespec, Timespec)>,
    applied_bytes: u64,
}

type Step<T> = Result<T, TarErrorKind>;

/// `lookup` with ENOENT as `None`.
fn lookup(fs: &Fs, layer: LayerId, dir: Ino, name: &[u8]) -> Step<Option<Attr>> {
    match fs.lookup(layer, dir, name) {
        Ok(attr) => Ok(Some(attr)),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A directory on the way to an entry: a symlink or another type there is an error.
fn expect_dir(attr: &Attr) -> Step<()> {
    match attr.kind {
        FileType::Directory => Ok(()),
        FileType::Symlink => Err(TarErrorKind::Unsafe("a path component is a symlink")),
        _ => Err(TarErrorKind::Unsafe("a path component is not a directory")),
    }
}

impl Apply<'_> {
    /// Applies one entry.
    fn entry<R: Read>(&mut self, tar: &mut Reader<R>, entry: &Entry) -> Step<()> {
        let components = path::clean(&entry.path, self.path_bytes_max)?;
        let Some((base, parents)) = components.split_last() else {
            return self.root(entry);
        };
        // Docker writes whiteouts as empty regular files; any type is taken as one, as it does.
        if let Some(name) = base.strip_prefix(WHITEOUT) {
            return self.whiteout(parents, base, name);
        }
        let parent = self.make_parents(parents)?;
        let existing = lookup(self.fs, self.layer, parent, base)?;
        let attr = match entry.kind {
            EntryKind::Directory => self.directory(parent, base, existing, entry)?,
            EntryKind::HardLink => {
                self.hard_link(&components, parent, existing, entry)?;
                return self.track(path::join(&components));
            }
            _ => {
                if let Some(old) = existing {
                    self.remove(parent, base, &old)?;
                }
                self.create(tar, parent, base, entry)?
            }
        };
        for (name, value) in &entry.xattrs {
            if name.is_empty() || name.len() > NAME_MAX {
                return Err(TarErrorKind::Limit(
                    "an xattr name is empty or longer than 255 bytes",
                ));
            }
            if value.len() > crate::types::XATTR_VALUE_MAX {
                return Err(TarErrorKind::Limit(
                    "an xattr value is longer than 1024 bytes",
                ));
            }
            self.fs
                .setxattr(self.layer, attr.ino, name, value, XattrFlags::Any, self.now)?;
        }
        let atime = entry.atime.unwrap_or(entry.mtime);
        if attr.kind == FileType::Directory {
            self.dir_times.insert(attr.ino, (atime, entry.mtime));
        } else {
            let set = SetAttr {
                atime: Some(atime),
                mtime: Some(entry.mtime),
                ..SetAttr::default()
            };
            self.fs.setattr(self.layer, attr.ino, &set, self.now)?;
        }
        self.track(path::join(&components))
    }

    /// Remembers a path the stream created, within `tracked_path_bytes_max`.
    fn track(&mut self, path: Vec<u8>) -> Step<()> {
        self.tracked_bytes += path.len();
        if self.tracked_bytes > self.tracked_bytes_max {
            return Err(TarErrorKind::Limit(
                "the stream creates more paths than an apply tracks",
            ));
        }
        self.unpacked.insert(path);
        Ok(())
    }

    /// An entry naming the layer root: a directory updates its metadata; anything else is
    /// refused (the root cannot be replaced).
    fn root(&mut self, entry: &Entry) -> Step<()> {
        if entry.kind != EntryKind::Directory {
            return Err(TarErrorKind::Unsafe(
                "an entry other than a directory names the layer root",
            ));
        }
        let set = owner_and_mode(entry);
        self.fs.setattr(self.layer, Ino::ROOT, &set, self.now)?;
        let atime = entry.atime.unwrap_or(entry.mtime);
        self.dir_times.insert(Ino::ROOT, (atime, entry.mtime));
        Ok(())
    }

    /// `.wh.NAME` and `.wh..wh..opq`.
    fn whiteout(&mut self, parents: &[Vec<u8>], base: &[u8], name: &[u8]) -> Step<()> {
        let Some(dir) = self.resolve_dir(parents)? else {
            return Ok(());
        };
        if base == OPAQUE {
            return self.clear_opaque(dir, parents);
        }
        if base.starts_with(AUFS_META) {
            return Ok(());
        }
        if name.is_empty() || name == b"." || name == b".." {
            return Err(TarErrorKind::Unsafe(
                "a whiteout of an empty name, '.' or '..'",
            ));
        }
        if let Some(old) = lookup(self.fs, self.layer, dir, name)? {
            self.remove(dir, name, &old)?;
        }
        let mut gone = parents.to_vec();
        gone.push(name.to_vec());
        self.unpacked.remove(&path::join(&gone));
        Ok(())
    }

    /// The directory `components` names, without creating anything; `None` if missing.
    fn resolve_dir(&self, components: &[Vec<u8>]) -> Step<Option<Ino>> {
        let mut dir = Ino::ROOT;
        for name in components {
            let Some(attr) = lookup(self.fs, self.layer, dir, name)? else {
                return Ok(None);
            };
            expect_dir(&attr)?;
            dir = attr.ino;
        }
        Ok(Some(dir))
    }

    /// The directory `components` names, creating the missing ones (0755, root, `now`).
    fn make_parents(&mut self, components: &[Vec<u8>]) -> Step<Ino> {
        let mut dir = Ino::ROOT;
        for (depth, name) in components.iter().enumerate() {
            dir = match lookup(self.fs, self.layer, dir, name)? {
                Some(attr) => {
                    expect_dir(&attr)?;
                    attr.ino
                }
                None => {
                    let made = self
                        .fs
                        .mkdir(self.layer, dir, name, 0o755, 0, 0, self.now)?;
                    self.track(path::join(components.get(..=depth).unwrap_or(&[])))?;
                    made.ino
                }
            };
        }
        Ok(dir)
    }

    /// A directory entry: kept (with new owner and mode) over a directory, created otherwise.
    fn directory(
        &mut self,
        parent: Ino,
        name: &[u8],
        existing: Option<Attr>,
        entry: &Entry,
    ) -> Step<Attr> {
        if let Some(old) = existing {
            if old.kind == FileType::Directory {
                return Ok(self.fs.setattr(
                    self.layer,
                    old.ino,
                    &owner_and_mode(entry),
                    self.now,
                )?);
            }
            self.remove(parent, name, &old)?;
        }
        let perm = perm(entry);
        Ok(self.fs.mkdir(
            self.layer, parent, name, perm, entry.uid, entry.gid, self.now,
        )?)
    }

    /// A hard link to an earlier name of the layer (inherited or from this stream).
    fn hard_link(
        &mut self,
        components: &[Vec<u8>],
        parent: Ino,
        existing: Option<Attr>,
        entry: &Entry,
    ) -> Step<()> {
        let name = components.last().map_or(&[][..], Vec::as_slice);
        let target_path = path::clean(&entry.link, self.path_bytes_max)?;
        if target_path.len() > components.len() && target_path.starts_with(components) {
            // Replacing the entry's path would remove the target first.
            return Err(TarErrorKind::Unsafe(
                "a hard link to a name inside the entry it replaces",
            ));
        }
        let Some((target_base, target_parents)) = target_path.split_last() else {
            return Err(TarErrorKind::Unsafe("a hard link to the layer root"));
        };
        if target_base.len() > NAME_MAX {
            return Err(TarErrorKind::Limit(
                "a hard link target's name is longer than 255 bytes",
            ));
        }
        let missing = TarErrorKind::Unsafe("a hard link to a missing name");
        let target_dir = self.resolve_dir(target_parents)?.ok_or(missing)?;
        let target = lookup(self.fs, self.layer, target_dir, target_base)?
            .ok_or(TarErrorKind::Unsafe("a hard link to a missing name"))?;
        if target.kind == FileType::Directory {
            return Err(TarErrorKind::Unsafe("a hard link to a directory"));
        }
        if let Some(old) = existing {
            if old.ino == target.ino {
                return Ok(());
            }
            self.remove(parent, name, &old)?;
        }
        self.fs
            .link(self.layer, target.ino, parent, name, self.now)?;
        Ok(())
    }

    /// Creates a non-directory entry (and writes a regular file's data).
    fn create<R: Read>(
        &mut self,
        tar: &mut Reader<R>,
        parent: Ino,
        name: &[u8],
        entry: &Entry,
    ) -> Step<Attr> {
        let (fs, layer, now) = (self.fs, self.layer, self.now);
        let (uid, gid, perm) = (entry.uid, entry.gid, perm(entry));
        let node = |kind, rdev| fs.mknod(layer, parent, name, kind, perm, rdev, uid, gid, now);
        let attr = match entry.kind {
            EntryKind::Symlink => {
                // The engine's ENOENT and ENAMETOOLONG would not say that the stream is at fault.
                if entry.link.is_empty() {
                    return Err(TarErrorKind::Header("a symlink with an empty target"));
                }
                if entry.link.len() > SYMLINK_MAX {
                    return Err(TarErrorKind::Limit(
                        "a symlink target is longer than 4095 bytes",
                    ));
                }
                fs.symlink(layer, parent, name, &entry.link, uid, gid, now)?
            }
            EntryKind::Fifo => node(FileType::Fifo, 0)?,
            EntryKind::CharDevice => node(FileType::CharDevice, device(entry)?)?,
            EntryKind::BlockDevice => node(FileType::BlockDevice, device(entry)?)?,
            EntryKind::Regular => {
                let attr = node(FileType::Regular, 0)?;
                self.write_data(tar, attr.ino, entry.size)?;
                attr
            }
            _ => return Err(TarErrorKind::Unsupported("this entry type in a layer")),
        };
        Ok(attr)
    }

    /// Copies `size` bytes of data from the stream into `ino`, leaving aligned zeros as holes.
    fn write_data<R: Read>(&mut self, tar: &mut Reader<R>, ino: Ino, size: u64) -> Step<()> {
        let mut buf = vec![0u8; CHUNK_BYTES.min(usize::try_from(size).unwrap_or(CHUNK_BYTES))];
        let mut offset: u64 = 0;
        while offset < size {
            let mut filled = 0;
            while filled < buf.len() {
                let Some(rest) = buf.get_mut(filled..) else {
                    break;
                };
                let n = tar.read_data(rest).map_err(|e| e.kind)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Err(TarErrorKind::Truncated("an entry's data"));
            }
            self.write_runs(ino, offset, buf.get(..filled).unwrap_or(&[]))?;
            offset += filled as u64;
        }
        if size > 0 {
            let set = SetAttr {
                size: Some(size),
                ..SetAttr::default()
            };
            self.fs.setattr(self.layer, ino, &set, self.now)?;
        }
        self.applied_bytes += size;
        Ok(())
    }

    /// Writes the parts of `data` that are not whole zero blocks.
    fn write_runs(&self, ino: Ino, offset: u64, data: &[u8]) -> Step<()> {
        let mut start: Option<usize> = None;
        let blocks: Vec<&[u8]> = data.chunks(HOLE_BYTES).collect();
        for (index, block) in blocks.iter().enumerate() {
            let zero = block.len() == HOLE_BYTES && block.iter().all(|&b| b == 0);
            match (zero, start) {
                (false, None) => start = Some(index * HOLE_BYTES),
                (true, Some(from)) => {
                    self.write_at(
                        ino,
                        offset,
                        data.get(from..index * HOLE_BYTES).unwrap_or(&[]),
                        from,
                    )?;
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(from) = start {
            self.write_at(ino, offset, data.get(from..).unwrap_or(&[]), from)?;
        }
        Ok(())
    }

    fn write_at(&self, ino: Ino, base: u64, data: &[u8], from: usize) -> Step<()> {
        self.fs
            .write(self.layer, ino, base + from as u64, data, self.now)?;
        Ok(())
    }

    /// Removes `name` from `dir`: a directory with everything under it, without recursion.
    fn remove(&self, dir: Ino, name: &[u8], attr: &Attr) -> Step<()> {
        if attr.kind != FileType::Directory {
            self.fs.unlink(self.layer, dir, name, self.now)?;
            return Ok(());
        }
        let mut stack: Vec<(Ino, Vec<u8>, Ino)> = vec![(dir, name.to_vec(), attr.ino)];
        while let Some((parent, dir_name, ino)) = stack.last().cloned() {
            let entries = self.fs.readdir(self.layer, ino, None, READDIR_BATCH)?;
            if entries.is_empty() {
                self.fs.rmdir(self.layer, parent, &dir_name, self.now)?;
                stack.pop();
                continue;
            }
            let mut subdir = None;
            for e in entries {
                if e.kind == FileType::Directory {
                    subdir.get_or_insert((ino, e.name, e.ino));
                } else {
                    self.fs.unlink(self.layer, ino, &e.name, self.now)?;
                }
            }
            stack.extend(subdir);
        }
        Ok(())
    }

    /// `.wh..wh..opq` in `dir`: removes everything under it this stream did not create.
    fn clear_opaque(&mut self, dir: Ino, dir_path: &[Vec<u8>]) -> Step<()> {
        let mut work: Vec<(Ino, Components)> = vec![(dir, dir_path.to_vec())];
        while let Some((ino, at)) = work.pop() {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let entries = self
                    .fs
                    .readdir(self.layer, ino, after.as_deref(), READDIR_BATCH)?;
                let Some(last) = entries.last() else { break };
                after = Some(last.name.clone());
                for e in entries {
                    let mut child = at.clone();
                    child.push(e.name.clone());
                    if !self.unpacked.contains(&path::join(&child)) {
                        let attr = self.fs.getattr(self.layer, e.ino)?;
                        self.remove(ino, &e.name, &attr)?;
                    } else if e.kind == FileType::Directory {
                        work.push((e.ino, child));
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets the directory times the stream gave, now that no more entries move them.
    fn finish(&mut self) -> Step<()> {
        for (&ino, &(atime, mtime)) in &self.dir_times {
            let set = SetAttr {
                atime: Some(atime),
                mtime: Some(mtime),
                ..SetAttr::default()
            };
            match self.fs.setattr(self.layer, ino, &set, self.now) {
                Ok(_) | Err(Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The permission bits of an entry (setuid, setgid and sticky included).
fn perm(entry: &Entry) -> u16 {
    u16::try_from(entry.mode & 0o7777).unwrap_or(0)
}

/// Owner and mode of an entry as a `setattr`.
fn owner_and_mode(entry: &Entry) -> SetAttr {
    SetAttr {
        perm: Some(perm(entry)),
        uid: Some(entry.uid),
        gid: Some(entry.gid),
        ..SetAttr::default()
    }
}

/// The device number of a device entry, as Linux and glibc's `makedev` encode it.
fn device(entry: &Entry) -> Step<u64> {
    let (major, minor) = (entry.dev_major, entry.dev_minor);
    if major > u64::from(u32::MAX) || minor > u64::from(u32::MAX) {
        return Err(TarErrorKind::Limit(
            "a device major or minor above 2^32 - 1",
        ));
    }
    Ok(makedev(major, minor))
}

/// glibc's `makedev` (compatible with the kernel's 32-bit encoding for majors below 4096 and
/// minors below 2^20).
pub fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

/// glibc's `major` and `minor`.
pub fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}
