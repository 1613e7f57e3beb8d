//! The 512-byte tar header block: decode (checksum verified first) and encode.
//!
//! Byte layout (POSIX ustar; GNU and V7 differ only where noted):
//!
//! ```text
//! offset size field
//!      0  100 name (NUL-terminated unless full)
//!    100    8 mode      octal
//!    108    8 uid       octal, or base-256 (first byte has bit 7 set)
//!    116    8 gid       octal, or base-256
//!    124   12 size      octal, or base-256
//!    136   12 mtime     octal, or base-256 (may be negative)
//!    148    8 chksum    octal: the sum of the 512 bytes with this field read as spaces
//!    156    1 typeflag
//!    157  100 linkname
//!    257    6 magic     "ustar\0" (POSIX) or "ustar " (GNU, then version " \0"); V7: zeros
//!    263    2 version
//!    265   32 uname     (ignored: owners are numeric)
//!    297   32 gname     (ignored)
//!    329    8 devmajor  octal, or base-256
//!    337    8 devminor  octal, or base-256
//!    345  155 prefix    POSIX only: the path is prefix/name (GNU keeps atime/ctime here)
//! ```
//!
//! Invariants: decoding never panics and never trusts a field before the checksum matched;
//! numbers outside their type are errors, not truncations.

use super::{TarErrorKind, BLOCK_BYTES};
use crate::types::Timespec;

/// One header block.
pub type Block = [u8; BLOCK_BYTES];

/// The entry types lcfs reads and writes, plus the extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
    /// 'x': PAX records for the next entry.
    PaxLocal,
    /// 'g': PAX records for every following entry.
    PaxGlobal,
    /// 'L': GNU long name of the next entry.
    GnuLongName,
    /// 'K': GNU long link target of the next entry.
    GnuLongLink,
}

impl EntryKind {
    /// The typeflag byte written for this kind.
    pub const fn flag(self) -> u8 {
        match self {
            EntryKind::Regular => b'0',
            EntryKind::HardLink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::CharDevice => b'3',
            EntryKind::BlockDevice => b'4',
            EntryKind::Directory => b'5',
            EntryKind::Fifo => b'6',
            EntryKind::PaxLocal => b'x',
            EntryKind::PaxGlobal => b'g',
            EntryKind::GnuLongName => b'L',
            EntryKind::GnuLongLink => b'K',
        }
    }

    /// Whether the header is followed by no data whatever its size field says (as Go's
    /// archive/tar, which Docker uses, reads them).
    pub const fn header_only(self) -> bool {
        matches!(
            self,
            EntryKind::HardLink
                | EntryKind::Symlink
                | EntryKind::CharDevice
                | EntryKind::BlockDevice
                | EntryKind::Directory
                | EntryKind::Fifo
        )
    }
}

/// The fields of one decoded header block (before PAX and GNU extensions apply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHeader {
    pub kind: EntryKind,
    /// prefix/name for POSIX headers, name otherwise; NUL-free.
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: Timespec,
    pub dev_major: u64,
    pub dev_minor: u64,
}

/// Whether the block is all zeros (the end-of-archive marker is two of them).
pub fn is_zero(block: &Block) -> bool {
    block.iter().all(|&b| b == 0)
}

fn field(block: &Block, start: usize, len: usize) -> &[u8] {
    block.get(start..start + len).unwrap_or(&[])
}

/// The bytes of a string field up to its first NUL.
fn string(block: &Block, start: usize, len: usize) -> Vec<u8> {
    let f = field(block, start, len);
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    f.get(..end).unwrap_or(&[]).to_vec()
}

/// A numeric field: octal (padded with spaces or NULs) or GNU base-256. Signed, as mtime may be.
fn number(f: &[u8]) -> Result<i64, TarErrorKind> {
    let Some(&first) = f.first() else {
        return Ok(0);
    };
    if first & 0x80 != 0 {
        return base256(f);
    }
    let trimmed = trim(f);
    let mut value: i64 = 0;
    for &digit in trimmed {
        if !(b'0'..=b'7').contains(&digit) {
            return Err(TarErrorKind::Header(
                "a numeric field holds a non-octal byte",
            ));
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or(TarErrorKind::Header("a numeric field overflows"))?;
    }
    Ok(value)
}

/// `f` without leading and trailing spaces and NULs.
fn trim(f: &[u8]) -> &[u8] {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = f.iter().position(|b| !pad(b)).unwrap_or(f.len());
    let end = f
        .iter()
        .rposition(|b| !pad(b))
        .map_or(start, |last| last + 1);
    f.get(start..end).unwrap_or(&[])
}

/// GNU base-256: bit 7 of the first byte marks it, bit 6 is the sign (two's complement).
fn base256(f: &[u8]) -> Result<i64, TarErrorKind> {
    let negative = f.first().is_some_and(|b| b & 0x40 != 0);
    let invert: u8 = if negative { 0xff } else { 0 };
    let mut value: u64 = 0;
    for (index, &byte) in f.iter().enumerate() {
        let mut byte = byte ^ invert;
        if index == 0 {
            byte &= 0x7f;
        }
        if value >> 56 != 0 {
            return Err(TarErrorKind::Header("a base-256 field overflows"));
        }
        value = (value << 8) | u64::from(byte);
    }
    let value =
        i64::try_from(value).map_err(|_| TarErrorKind::Header("a base-256 field overflows"))?;
    Ok(if negative { !value } else { value })
}

/// A numeric field that must not be negative.
fn unsigned(f: &[u8], what: &'static str) -> Result<u64, TarErrorKind> {
    u64::try_from(number(f)?).map_err(|_| TarErrorKind::Header(what))
}

/// Whether the stored checksum matches (unsigned or signed sum, as historic writers differ).
fn checksum_ok(block: &Block) -> Result<bool, TarErrorKind> {
    let stored = number(field(block, 148, 8))?;
    let mut unsigned_sum: i64 = 0;
    let mut signed_sum: i64 = 0;
    for (index, &byte) in block.iter().enumerate() {
        let byte = if (148..156).contains(&index) {
            b' '
        } else {
            byte
        };
        unsigned_sum += i64::from(byte);
        signed_sum += i64::from(byte as i8);
    }
    Ok(stored == unsigned_sum || stored == signed_sum)
}

/// Decodes a non-zero header block.
pub fn decode(block: &Block) -> Result<RawHeader, TarErrorKind> {
    if !checksum_ok(block)? {
        return Err(TarErrorKind::Header("checksum mismatch"));
    }
    let magic = field(block, 257, 8);
    let posix = magic.starts_with(b"ustar\0");
    let gnu = magic == b"ustar  \0";
    let mut path = string(block, 0, 100);
    if posix {
        let prefix = string(block, 345, 155);
        if !prefix.is_empty() {
            let mut joined = prefix;
            joined.push(b'/');
            joined.extend_from_slice(&path);
            path = joined;
        }
    }
    let flag = field(block, 156, 1).first().copied().unwrap_or(0);
    let kind = match flag {
        b'0' | b'7' => EntryKind::Regular,
        // V7 regular files; a name ending in '/' is a directory (as Go reads it).
        0 if path.ends_with(b"/") => EntryKind::Directory,
        0 => EntryKind::Regular,
        b'1' => EntryKind::HardLink,
        b'2' => EntryKind::Symlink,
        b'3' => EntryKind::CharDevice,
        b'4' => EntryKind::BlockDevice,
        b'5' => EntryKind::Directory,
        b'6' => EntryKind::Fifo,
        b'x' => EntryKind::PaxLocal,
        b'g' => EntryKind::PaxGlobal,
        b'L' => EntryKind::GnuLongName,
        b'K' => EntryKind::GnuLongLink,
        b'S' => return Err(TarErrorKind::Unsupported("GNU sparse files")),
        _ => {
            return Err(TarErrorKind::Unsupported(
                "an entry type other than file, hard link, symlink, device, directory or fifo",
            ))
        }
    };
    let (dev_major, dev_minor) = if posix || gnu {
        (
            unsigned(field(block, 329, 8), "a negative device major")?,
            unsigned(field(block, 337, 8), "a negative device minor")?,
        )
    } else {
        (0, 0)
    };
    let mode = unsigned(field(block, 100, 8), "a negative mode")?;
    Ok(RawHeader {
        kind,
        path,
        link: string(block, 157, 100),
        mode: u32::try_from(mode & 0o7777).unwrap_or(0),
        uid: unsigned(field(block, 108, 8), "a negative uid")?,
        gid: unsigned(field(block, 116, 8), "a negative gid")?,
        size: unsigned(field(block, 124, 12), "a negative size")?,
        mtime: Timespec::new(number(field(block, 136, 12))?, 0),
        dev_major,
        dev_minor,
    })
}

/// Writes `value` into `f` as zero-padded octal with a trailing NUL; false if it does not fit.
fn put_octal(f: &mut [u8], value: u64) -> bool {
    let Some((last, digits)) = f.split_last_mut() else {
        return false;
    };
    *last = 0;
    let mut rest = value;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (rest % 8) as u8;
        rest /= 8;
    }
    rest == 0
}

/// Writes `value` into `f` as GNU base-256 (positive only).
fn put_base256(f: &mut [u8], value: u64) {
    let mut rest = value;
    for slot in f.iter_mut().rev() {
        *slot = (rest & 0xff) as u8;
        rest >>= 8;
    }
    if let Some(first) = f.first_mut() {
        *first = 0x80;
    }
}

/// The fields of a header to encode; anything that does not fit is the caller's PAX record.
pub struct Encode<'a> {
    pub kind: EntryKind,
    pub name: &'a [u8],
    pub prefix: &'a [u8],
    pub link: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime_sec: u64,
    pub dev_major: u64,
    pub dev_minor: u64,
}

/// Encodes a POSIX ustar header. Fields too long are cut and numbers too large are written as 0
/// (octal) or base-256 (device numbers): the writer puts the exact values in PAX records first.
pub fn encode(h: &Encode<'_>) -> Block {
    let mut block = [0u8; BLOCK_BYTES];
    let mut put = |start: usize, bytes: &[u8], len: usize| {
        let n = bytes.len().min(len);
        if let (Some(dst), Some(src)) = (block.get_mut(start..start + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
    };
    put(0, h.name, 100);
    put(157, h.link, 100);
    put(257, b"ustar\0", 6);
    put(263, b"00", 2);
    put(345, h.prefix, 155);
    let numbers: [(usize, usize, u64); 5] = [
        (100, 8, u64::from(h.mode)),
        (108, 8, h.uid),
        (116, 8, h.gid),
        (124, 12, h.size),
        (136, 12, h.mtime_sec),
    ];
    for (start, len, value) in numbers {
        if let Some(f) = block.get_mut(start..start + len) {
            if !put_octal(f, value) {
                put_octal(f, 0);
            }
        }
    }
    for (start, value) in [(329, h.dev_major), (337, h.dev_minor)] {
        if let Some(f) = block.get_mut(start..start + 8) {
            if !put_octal(f, value) {
                put_base256(f, value);
            }
        }
    }
    if let Some(flag) = block.get_mut(156) {
        *flag = h.kind.flag();
    }
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    if let Some(f) = block.get_mut(148..155) {
        put_octal(f, sum);
    }
    if let Some(f) = block.get_mut(155) {
        *f = b' ';
    }
    block
}

/// The largest value an octal field of `len` bytes holds (len - 1 digits).
pub const fn octal_max(len: u32) -> u64 {
    (1u64 << (3 * (len - 1))) - 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn sample() -> Encode<'static> {
        Encode {
            kind: EntryKind::Regular,
            name: b"etc/passwd",
            prefix: b"",
            link: b"",
            mode: 0o4755,
            uid: 1000,
            gid: 100,
            size: 12345,
            mtime_sec: 1_700_000_000,
            dev_major: 8,
            dev_minor: 1 << 22,
        }
    }

    #[test]
    fn a_header_round_trips() {
        let block = encode(&sample());
        let h = decode(&block).unwrap();
        assert_eq!(h.path, b"etc/passwd");
        assert_eq!((h.mode, h.uid, h.gid, h.size), (0o4755, 1000, 100, 12345));
        assert_eq!(h.mtime, Timespec::new(1_700_000_000, 0));
        assert_eq!((h.dev_major, h.dev_minor), (8, 1 << 22), "base-256 minor");
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut block = encode(&sample());
        block[3] ^= 1;
        assert!(matches!(
            decode(&block),
            Err(TarErrorKind::Header("checksum mismatch"))
        ));
    }

    #[test]
    fn base256_reads_negative_and_large_values() {
        assert_eq!(base256(&[0xff; 8]).unwrap(), -1);
        assert_eq!(base256(&[0x80, 0, 0, 0, 0, 0, 1, 0]).unwrap(), 256);
        assert!(base256(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(number(b" 0755 \0").unwrap(), 0o755);
        assert!(number(b"12x4").is_err());
    }
}
