//! `write_diff`: a layer's changes as a layer tar (Docker's Diff), the reverse of `apply_diff`;
//! `write_layer_diff` takes the changes from `Fs::changes`.
//!
//! - changes are written in path order; the parent directories of each change are written
//!   first (once each, with their metadata from the layer), so that the tar applies alone;
//! - Added and Modified entries carry their content and metadata (owner, mode, mtime with
//!   nanoseconds, xattrs, device numbers, symlink target); a directory entry is its header only
//!   (its changed children are changes of their own);
//! - a second name of an inode already written is a tar hard link to the first;
//! - Deleted entries are `.wh.NAME` whiteouts (empty regular files, mode 0, time 0).
//!
//! Invariant: only the target layer is read; the output is a stream `apply_diff` accepts.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use super::apply::split_dev;
use super::header::EntryKind;
use super::path::{self, Components};
use super::writer::{EntrySpec, Writer};
use super::{display_name, TarError, TarErrorKind, TarResult};
use crate::fs::Fs;
use crate::types::{Attr, FileType, Ino, LayerId, Timespec};

/// What happened to a path between a layer and its parent (`Fs::changes`' kinds).
pub use crate::ChangeKind;

/// File data is read from the engine in reads of at most this many bytes.
const CHUNK_BYTES: u32 = 1 << 20;

/// Writes the tar of `changes` (paths relative to the layer root; a leading `/` is allowed) of
/// `layer` to `out`; returns the bytes written.
pub fn write_diff(
    fs: &Fs,
    layer: LayerId,
    changes: &[(Vec<u8>, ChangeKind)],
    out: impl Write,
) -> TarResult<u64> {
    let mut cleaned: Vec<(Components, ChangeKind, &[u8])> = Vec::with_capacity(changes.len());
    for (raw, kind) in changes {
        let components = path::clean(raw, usize::MAX).map_err(|kind| named(raw, kind))?;
        if !components.is_empty() {
            cleaned.push((components, *kind, raw));
        }
    }
    cleaned.sort_by(|a, b| a.0.cmp(&b.0));
    let mut diff = Diff {
        fs,
        layer,
        tar: Writer::new(out),
        written_dirs: HashSet::new(),
        links: HashMap::new(),
    };
    for (components, kind, raw) in &cleaned {
        diff.change(components, *kind).map_err(|e| named(raw, e))?;
    }
    let (_, bytes) = diff.tar.finish().map_err(|e| named(b"", e.into()))?;
    Ok(bytes)
}

/// The tar of everything `layer` changed against its parent, as `Fs::changes` lists it
/// (Docker's Diff); returns the bytes written.
pub fn write_layer_diff(fs: &Fs, layer: LayerId, out: impl Write) -> TarResult<u64> {
    let changes = fs.changes(layer).map_err(|e| named(b"", e.into()))?;
    let pairs: Vec<(Vec<u8>, ChangeKind)> = changes.into_iter().map(|c| (c.path, c.kind)).collect();
    write_diff(fs, layer, &pairs, out)
}

fn named(raw: &[u8], kind: TarErrorKind) -> TarError {
    TarError {
        index: 0,
        offset: 0,
        name: display_name(raw),
        kind,
    }
}

struct Diff<'a, W> {
    fs: &'a Fs,
    layer: LayerId,
    tar: Writer<W>,
    /// Directories already written (by joined path).
    written_dirs: HashSet<Vec<u8>>,
    /// The first path written for each inode, for hard links.
    links: HashMap<Ino, Vec<u8>>,
}

type Step<T> = Result<T, TarErrorKind>;

impl<W: Write> Diff<'_, W> {
    fn change(&mut self, components: &[Vec<u8>], kind: ChangeKind) -> Step<()> {
        let Some((base, parents)) = components.split_last() else {
            return Ok(());
        };
        let Some(parent) = self.parents(parents)? else {
            // The parent is gone: its own deletion covers this one.
            return Ok(());
        };
        if kind == ChangeKind::Deleted {
            let mut name = parents.to_vec();
            let mut whiteout = b".wh.".to_vec();
            whiteout.extend_from_slice(base);
            name.push(whiteout);
            let spec = EntrySpec {
                kind: EntryKind::Regular,
                path: &path::join(&name),
                link: b"",
                mode: 0,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: Timespec::default(),
                dev_major: 0,
                dev_minor: 0,
                xattrs: &[],
            };
            return Ok(self.tar.append(&spec)?);
        }
        let attr = self.fs.lookup(self.layer, parent, base)?;
        let joined = path::join(components);
        if attr.kind == FileType::Directory {
            if self.written_dirs.insert(joined.clone()) {
                self.entry(&joined, &attr)?;
            }
            return Ok(());
        }
        self.entry(&joined, &attr)
    }

    /// Writes the parent directories not yet written; the innermost one's inode, or `None` if
    /// one of them is missing.
    fn parents(&mut self, parents: &[Vec<u8>]) -> Step<Option<Ino>> {
        let mut dir = Ino::ROOT;
        for depth in 0..parents.len() {
            let Some(name) = parents.get(depth) else {
                break;
            };
            let attr = match self.fs.lookup(self.layer, dir, name) {
                Ok(attr) => attr,
                Err(crate::Error::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if attr.kind != FileType::Directory {
                return Ok(None);
            }
            let joined = path::join(parents.get(..=depth).unwrap_or(&[]));
            if self.written_dirs.insert(joined.clone()) {
                self.entry(&joined, &attr)?;
            }
            dir = attr.ino;
        }
        Ok(Some(dir))
    }

    /// Writes one entry with its metadata (and data for a regular file).
    fn entry(&mut self, joined: &[u8], attr: &Attr) -> Step<()> {
        let (fs, layer) = (self.fs, self.layer);
        let mut xattrs = Vec::new();
        for name in fs.listxattr(layer, attr.ino)? {
            let value = fs.getxattr(layer, attr.ino, &name)?;
            xattrs.push((name, value));
        }
        let (dev_major, dev_minor) = split_dev(attr.rdev);
        let mut spec = EntrySpec {
            kind: EntryKind::Regular,
            path: joined,
            link: b"",
            mode: u32::from(attr.perm),
            uid: attr.uid,
            gid: attr.gid,
            size: 0,
            mtime: attr.mtime,
            dev_major: 0,
            dev_minor: 0,
            xattrs: &xattrs,
        };
        if attr.kind != FileType::Directory && attr.nlink > 1 {
            if let Some(first) = self.links.get(&attr.ino) {
                let first = first.clone();
                spec.kind = EntryKind::HardLink;
                spec.link = &first;
                spec.xattrs = &[];
                return Ok(self.tar.append(&spec)?);
            }
            self.links.insert(attr.ino, joined.to_vec());
        }
        let target;
        match attr.kind {
            FileType::Directory => spec.kind = EntryKind::Directory,
            FileType::Fifo => spec.kind = EntryKind::Fifo,
            FileType::Socket => return Ok(()), // tar has no socket type; Docker skips them too
            FileType::CharDevice | FileType::BlockDevice => {
                spec.kind = if attr.kind == FileType::CharDevice {
                    EntryKind::CharDevice
                } else {
                    EntryKind::BlockDevice
                };
                (spec.dev_major, spec.dev_minor) = (dev_major, dev_minor);
            }
            FileType::Symlink => {
                target = fs.readlink(layer, attr.ino)?;
                spec.kind = EntryKind::Symlink;
                spec.link = &target;
            }
            FileType::Regular => {
                spec.size = attr.size;
                self.tar.append(&spec)?;
                return self.data(attr);
            }
        }
        Ok(self.tar.append(&spec)?)
    }

    /// Copies a regular file's data from the layer into the stream.
    fn data(&mut self, attr: &Attr) -> Step<()> {
        let mut offset = 0u64;
        while offset < attr.size {
            let want = u32::try_from((attr.size - offset).min(u64::from(CHUNK_BYTES)))
                .unwrap_or(CHUNK_BYTES);
            let chunk = self.fs.read(self.layer, attr.ino, offset, want)?;
            if chunk.is_empty() {
                return Err(TarErrorKind::Engine(crate::Error::corrupt(
                    0,
                    "a file read short of its size",
                )));
            }
            let take = chunk
                .get(..usize::try_from(u64::from(want)).unwrap_or(0))
                .unwrap_or(&chunk);
            self.tar.write_data(take)?;
            offset += take.len() as u64;
        }
        Ok(())
    }
}
