//! Writing a tar stream: POSIX ustar headers, with a PAX 'x' header before an entry whenever a
//! value does not fit ustar (long path or link, large ids or size, times with nanoseconds or
//! before the epoch) or the entry has xattrs (`SCHILY.xattr.*`). Device numbers too large for
//! octal are written in GNU base-256, which the reader also takes.
//!
//! Invariants: an entry's data is exactly the `size` its header announced (a short or long
//! write is an error before anything more is written); `finish` writes the end-of-archive
//! marker (two zero blocks).

use std::io::{self, Write};

use super::header::{self, octal_max, EntryKind};
use super::pax::{self, XATTR_PREFIX};
use super::reader::padding;
use super::BLOCK_BYTES;
use crate::types::Timespec;

/// One entry to write.
#[derive(Clone, Debug)]
pub struct EntrySpec<'a> {
    pub kind: EntryKind,
    /// The path inside the layer, without a leading or trailing `/`.
    pub path: &'a [u8],
    /// A hard link's or symlink's target.
    pub link: &'a [u8],
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of data the caller writes next (regular files only).
    pub size: u64,
    pub mtime: Timespec,
    pub dev_major: u64,
    pub dev_minor: u64,
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// A tar writer over any byte sink.
pub struct Writer<W> {
    out: W,
    written: u64,
    data_left: u64,
    padding_left: u64,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl<W: Write> Writer<W> {
    /// A writer at the start of a stream.
    pub fn new(out: W) -> Self {
        Writer {
            out,
            written: 0,
            data_left: 0,
            padding_left: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Ends the previous entry's data with its padding.
    fn close_entry(&mut self) -> io::Result<()> {
        if self.data_left != 0 {
            return Err(invalid(
                "the previous entry's data is shorter than its size",
            ));
        }
        let zeros = [0u8; BLOCK_BYTES];
        let pad = usize::try_from(self.padding_left).unwrap_or(0);
        self.put(zeros.get(..pad).unwrap_or(&[]))?;
        self.padding_left = 0;
        Ok(())
    }

    /// Writes the header(s) of an entry; a regular file's `size` bytes follow by `write_data`.
    pub fn append(&mut self, spec: &EntrySpec<'_>) -> io::Result<()> {
        self.close_entry()?;
        let size = if spec.kind == EntryKind::Regular {
            spec.size
        } else {
            0
        };
        let mut path = spec.path.to_vec();
        if spec.kind == EntryKind::Directory {
            path.push(b'/');
        }
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let (prefix, name) = split_ustar(&path).unwrap_or_else(|| {
            records.push((b"path".to_vec(), path.clone()));
            (&[][..], path.get(..100).unwrap_or(&path))
        });
        if spec.link.len() > 100 {
            records.push((b"linkpath".to_vec(), spec.link.to_vec()));
        }
        for (key, value) in [
            (&b"uid"[..], u64::from(spec.uid)),
            (b"gid", u64::from(spec.gid)),
        ] {
            if value > octal_max(8) {
                records.push((key.to_vec(), value.to_string().into_bytes()));
            }
        }
        if size > octal_max(12) {
            records.push((b"size".to_vec(), size.to_string().into_bytes()));
        }
        let mtime_sec = u64::try_from(spec.mtime.sec)
            .ok()
            .filter(|&s| s <= octal_max(12));
        if mtime_sec.is_none() || spec.mtime.nsec != 0 {
            records.push((b"mtime".to_vec(), pax::format_time(spec.mtime)));
        }
        for (xattr, value) in spec.xattrs {
            let mut key = XATTR_PREFIX.to_vec();
            key.extend_from_slice(xattr);
            records.push((key, value.clone()));
        }
        if !records.is_empty() {
            let data = pax::encode(&records);
            let pax_header = header::encode(&header::Encode {
                kind: EntryKind::PaxLocal,
                name: b"././@PaxHeader",
                prefix: b"",
                link: b"",
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: data.len() as u64,
                mtime_sec: 0,
                dev_major: 0,
                dev_minor: 0,
            });
            self.put(&pax_header)?;
            self.put(&data)?;
            let zeros = [0u8; BLOCK_BYTES];
            let pad = usize::try_from(padding(data.len() as u64)).unwrap_or(0);
            self.put(zeros.get(..pad).unwrap_or(&[]))?;
        }
        let block = header::encode(&header::Encode {
            kind: spec.kind,
            name,
            prefix,
            link: spec.link.get(..100).unwrap_or(spec.link),
            mode: spec.mode & 0o7777,
            uid: u64::from(spec.uid),
            gid: u64::from(spec.gid),
            size,
            mtime_sec: mtime_sec.unwrap_or(0),
            dev_major: spec.dev_major,
            dev_minor: spec.dev_minor,
        });
        self.put(&block)?;
        self.data_left = size;
        self.padding_left = padding(size);
        Ok(())
    }

    /// Writes the next part of the current entry's data.
    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() as u64 > self.data_left {
            return Err(invalid("data beyond the entry's size"));
        }
        self.put(data)?;
        self.data_left -= data.len() as u64;
        Ok(())
    }

    /// Writes the end-of-archive marker; returns the sink and the bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.close_entry()?;
        self.put(&[0u8; 2 * BLOCK_BYTES])?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

/// `path` as ustar (prefix, name), if it fits: name up to 100 bytes, or split at a `/` into a
/// prefix of up to 155 and a non-empty name of up to 100.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((&[], path));
    }
    // The name part must hold more than the trailing '/' of a directory.
    let body = path.strip_suffix(b"/").unwrap_or(path);
    body.iter()
        .enumerate()
        .rev()
        .filter(|&(_, &b)| b == b'/')
        .find_map(|(slash, _)| {
            let prefix = path.get(..slash)?;
            let name = path.get(slash + 1..)?;
            (prefix.len() <= 155 && name.len() <= 100 && !prefix.is_empty())
                .then_some((prefix, name))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn long_paths_split_or_go_to_pax() {
        let mut p = vec![b'a'; 150];
        p.push(b'/');
        p.extend_from_slice(&[b'b'; 90]);
        let (prefix, name) = split_ustar(&p).unwrap();
        assert_eq!((prefix.len(), name.len()), (150, 90));
        assert!(split_ustar(&[b'c'; 101]).is_none());
        assert!(split_ustar(&[b'c'; 300]).is_none());
    }
}
