//! Reading the entries of a tar stream: header blocks, the extension headers that precede an
//! entry (PAX 'x' and 'g', GNU 'L' and 'K'), and the entry's data.
//!
//! Invariants:
//! - every header counts against `Limits::headers_max`; extension data is bounded by
//!   `extension_bytes_max` before it is read, and at most `extensions_in_a_row_max` of them
//!   precede one entry;
//! - an entry's data is exactly `size` bytes, padded to the block size; `next_entry` skips what
//!   the caller did not read; the stream ending inside it is `Truncated`;
//! - the stream must end with the end-of-archive marker (one or two zero blocks): a stream cut
//!   at a header boundary is `Truncated`, not a shorter layer;
//! - after an error the reader returns that error's kind again rather than guessing where the
//!   next header is.

use std::io::Read;

use super::header::{self, Block, EntryKind};
use super::pax::{self, Records, XATTR_PREFIX};
use super::{display_name, Limits, TarError, TarErrorKind, TarResult, BLOCK_BYTES};
use crate::types::Timespec;

/// One entry, with its extension headers applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// The path as the stream gave it (not yet cleaned).
    pub path: Vec<u8>,
    /// The hard-link or symlink target, raw.
    pub link: Vec<u8>,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of data that follow (0 for header-only kinds).
    pub size: u64,
    pub mtime: Timespec,
    pub atime: Option<Timespec>,
    pub dev_major: u64,
    pub dev_minor: u64,
    /// `SCHILY.xattr.*` records: (name, value), in stream order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The index (counting every header) and byte offset of the entry's own header.
    pub index: u64,
    pub offset: u64,
}

/// What the extension headers before an entry said.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Records,
}

/// A reader of tar entries over any byte stream.
pub struct Reader<R> {
    inner: R,
    limits: Limits,
    /// Bytes consumed so far.
    offset: u64,
    headers: u64,
    /// Data bytes of the current entry not yet read, then its padding.
    data_left: u64,
    padding_left: u64,
    global: Records,
    finished: bool,
    failed: bool,
}

impl<R: Read> Reader<R> {
    /// A reader with the given bounds.
    pub fn new(inner: R, limits: Limits) -> Self {
        Reader {
            inner,
            limits,
            offset: 0,
            headers: 0,
            data_left: 0,
            padding_left: 0,
            global: Records::new(),
            finished: false,
            failed: false,
        }
    }

    /// Bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// An error at the current header, with `name` if known.
    fn error(&mut self, name: &[u8], kind: TarErrorKind) -> TarError {
        self.failed = true;
        TarError {
            index: self.headers,
            offset: self.offset,
            name: display_name(name),
            kind,
        }
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` if the stream ended before the first one.
    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<bool, TarErrorKind> {
        let mut done = 0;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            match self.inner.read(rest) {
                Ok(0) if done == 0 => return Ok(false),
                Ok(0) => return Err(TarErrorKind::Truncated(what)),
                Ok(n) => {
                    done += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarErrorKind::Io(e)),
            }
        }
        Ok(true)
    }

    /// Skips `count` bytes of data or padding.
    fn skip(&mut self, mut count: u64) -> Result<(), TarErrorKind> {
        let mut scratch = [0u8; 8192];
        while count > 0 {
            let n = usize::try_from(count.min(scratch.len() as u64)).unwrap_or(scratch.len());
            let Some(part) = scratch.get_mut(..n) else {
                break;
            };
            if !self.fill(part, "an entry's data")? {
                return Err(TarErrorKind::Truncated("an entry's data"));
            }
            count -= n as u64;
        }
        Ok(())
    }

    /// Reads up to `buf.len()` bytes of the current entry's data; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> TarResult<usize> {
        let n = usize::try_from(self.data_left.min(buf.len() as u64)).unwrap_or(buf.len());
        let Some(part) = buf.get_mut(..n) else {
            return Ok(0);
        };
        match self.fill(part, "an entry's data") {
            Ok(true) => {}
            Ok(false) if n == 0 => {}
            Ok(false) => return Err(self.error(b"", TarErrorKind::Truncated("an entry's data"))),
            Err(kind) => return Err(self.error(b"", kind)),
        }
        self.data_left -= n as u64;
        Ok(n)
    }

    /// The next entry, or `None` after the end-of-archive marker.
    pub fn next_entry(&mut self) -> TarResult<Option<Entry>> {
        if self.failed {
            return Err(self.error(b"", TarErrorKind::Header("the stream already failed")));
        }
        if self.finished {
            return Ok(None);
        }
        let rest = self.data_left + self.padding_left;
        self.data_left = 0;
        self.padding_left = 0;
        if let Err(kind) = self.skip(rest) {
            return Err(self.error(b"", kind));
        }
        let mut pending = Pending::default();
        let mut extensions = 0u32;
        loop {
            let start = (self.headers, self.offset);
            let raw = match self.next_header() {
                Ok(Some(raw)) => raw,
                Ok(None) => return Ok(None),
                Err(kind) => return Err(self.error(b"", kind)),
            };
            let ext = matches!(
                raw.kind,
                EntryKind::PaxLocal
                    | EntryKind::PaxGlobal
                    | EntryKind::GnuLongName
                    | EntryKind::GnuLongLink
            );
            if !ext {
                let path = pending
                    .long_name
                    .clone()
                    .unwrap_or_else(|| raw.path.clone());
                return match self.entry(raw, pending, start) {
                    Ok(entry) => Ok(Some(entry)),
                    Err(kind) => Err(self.error(&path, kind)),
                };
            }
            extensions += 1;
            if extensions > self.limits.extensions_in_a_row_max {
                let kind = TarErrorKind::Limit("too many extension headers before an entry");
                return Err(self.error(&raw.path, kind));
            }
            if let Err(kind) = self.extension(&raw, &mut pending) {
                return Err(self.error(&raw.path, kind));
            }
        }
    }

    /// Reads one header block: `None` at the end-of-archive marker.
    fn next_header(&mut self) -> Result<Option<header::RawHeader>, TarErrorKind> {
        if self.headers >= self.limits.headers_max {
            return Err(TarErrorKind::Limit("too many headers in the stream"));
        }
        let mut block: Block = [0; BLOCK_BYTES];
        if !self.fill(&mut block, "a header")? {
            return Err(TarErrorKind::Truncated("no end-of-archive marker"));
        }
        if header::is_zero(&block) {
            // The marker is two zero blocks; accept one at the very end, as GNU tar does.
            let mut second: Block = [0; BLOCK_BYTES];
            if self.fill(&mut second, "the end-of-archive marker")? && !header::is_zero(&second) {
                return Err(TarErrorKind::Header(
                    "a lone zero block before more headers",
                ));
            }
            self.finished = true;
            return Ok(None);
        }
        self.headers += 1;
        header::decode(&block).map(Some)
    }

    /// Reads the data of an extension header into `pending`.
    fn extension(
        &mut self,
        raw: &header::RawHeader,
        pending: &mut Pending,
    ) -> Result<(), TarErrorKind> {
        if raw.size > self.limits.extension_bytes_max {
            return Err(TarErrorKind::Limit(
                "an extension header is larger than the limit",
            ));
        }
        let size = usize::try_from(raw.size).map_err(|_| TarErrorKind::Limit("extension size"))?;
        let mut data = vec![0u8; size];
        if size > 0 && !self.fill(&mut data, "an extension header's data")? {
            return Err(TarErrorKind::Truncated("an extension header's data"));
        }
        self.skip(padding(raw.size))?;
        match raw.kind {
            EntryKind::GnuLongName => pending.long_name = Some(gnu_string(data)?),
            EntryKind::GnuLongLink => pending.long_link = Some(gnu_string(data)?),
            EntryKind::PaxLocal => pending.pax.extend(pax::decode(&data)?),
            _ => {
                let records = pax::decode(&data)?;
                let total: usize = self
                    .global
                    .iter()
                    .chain(&records)
                    .map(|(k, v)| k.len() + v.len())
                    .sum();
                if total as u64 > self.limits.extension_bytes_max {
                    return Err(TarErrorKind::Limit(
                        "global PAX records larger than the limit",
                    ));
                }
                self.global.extend(records);
            }
        }
        Ok(())
    }

    /// Builds the entry from its header and the extensions before it.
    fn entry(
        &mut self,
        raw: header::RawHeader,
        pending: Pending,
        start: (u64, u64),
    ) -> Result<Entry, TarErrorKind> {
        let mut entry = Entry {
            kind: raw.kind,
            path: pending.long_name.unwrap_or(raw.path),
            link: pending.long_link.unwrap_or(raw.link),
            mode: raw.mode,
            uid: id(raw.uid)?,
            gid: id(raw.gid)?,
            size: raw.size,
            mtime: raw.mtime,
            atime: None,
            dev_major: raw.dev_major,
            dev_minor: raw.dev_minor,
            xattrs: Vec::new(),
            index: start.0,
            offset: start.1,
        };
        // Global records first, the entry's own after (a later key wins); a global path, link
        // or size would name every later entry alike, so those keys only count locally.
        for (key, value) in &self.global {
            if !matches!(key.as_slice(), b"path" | b"linkpath" | b"size") {
                apply_record(&mut entry, key, value, &self.limits)?;
            }
        }
        for (key, value) in &pending.pax {
            apply_record(&mut entry, key, value, &self.limits)?;
        }
        if entry.kind.header_only() {
            entry.size = 0;
        }
        if entry.size > self.limits.file_bytes_max {
            return Err(TarErrorKind::Limit(
                "a file is larger than the largest file size",
            ));
        }
        self.data_left = entry.size;
        self.padding_left = padding(entry.size);
        Ok(entry)
    }
}

/// Applies one PAX record to an entry.
fn apply_record(
    entry: &mut Entry,
    key: &[u8],
    value: &[u8],
    limits: &Limits,
) -> Result<(), TarErrorKind> {
    let no_nul = |v: &[u8]| {
        if v.contains(&0) {
            Err(TarErrorKind::Unsafe("a NUL byte in a PAX path"))
        } else {
            Ok(v.to_vec())
        }
    };
    match key {
        b"path" => entry.path = no_nul(value)?,
        b"linkpath" => entry.link = no_nul(value)?,
        b"size" => entry.size = pax::parse_unsigned(value)?,
        b"uid" => entry.uid = id(pax::parse_unsigned(value)?)?,
        b"gid" => entry.gid = id(pax::parse_unsigned(value)?)?,
        b"mtime" => entry.mtime = pax::parse_time(value)?,
        b"atime" => entry.atime = Some(pax::parse_time(value)?),
        _ => {
            if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                entry.xattrs.retain(|(n, _)| n.as_slice() != name);
                if entry.xattrs.len() >= limits.xattrs_per_entry_max {
                    return Err(TarErrorKind::Limit(
                        "too many extended attributes on one entry",
                    ));
                }
                entry.xattrs.push((name.to_vec(), value.to_vec()));
            }
        }
    }
    Ok(())
}

/// A uid or gid, which must fit 32 bits.
fn id(value: u64) -> Result<u32, TarErrorKind> {
    u32::try_from(value).map_err(|_| TarErrorKind::Header("a uid or gid above 2^32 - 1"))
}

/// The bytes that pad `size` to the block size.
pub fn padding(size: u64) -> u64 {
    (BLOCK_BYTES as u64 - size % BLOCK_BYTES as u64) % BLOCK_BYTES as u64
}

/// A GNU long name: NUL-terminated (trailing NULs dropped); a NUL inside is an error.
fn gnu_string(mut data: Vec<u8>) -> Result<Vec<u8>, TarErrorKind> {
    while data.last() == Some(&0) {
        data.pop();
    }
    if data.contains(&0) {
        return Err(TarErrorKind::Unsafe("a NUL byte inside a GNU long name"));
    }
    Ok(data)
}
