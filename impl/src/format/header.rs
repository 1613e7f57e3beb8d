//! The common header at the start of every metadata block.
//!
//! Byte layout (all integers little-endian):
//!
//! ```text
//! offset size field
//!      0    4 magic        0x5346_434C ("LCFS")
//!      4    2 kind         BlockKind
//!      6    2 version      FORMAT_VERSION
//!      8    8 block        the block's own number (catches misdirected writes)
//!     16    8 generation   checkpoint generation that wrote it
//!     24    8 owner        LayerId that allocated it (0 = system)
//!     32    4 checksum     crc32c of the whole block with this field zeroed
//!     36   12 reserved     zero
//!     48      payload
//! ```
//!
//! Invariants: `seal` is the only way a header is written and `verify` the only way one is read;
//! `verify` checks magic, version, kind, block number and checksum before anything is trusted.

use crate::error::{Error, Result};
use crate::types::{BlockNo, Generation, LayerId};

/// Size of one block.
pub const BLOCK_SIZE: usize = 4096;
/// Size of the common header.
pub const HEADER_SIZE: usize = 48;
/// Bytes after the header.
pub const PAYLOAD_SIZE: usize = BLOCK_SIZE - HEADER_SIZE;
/// "LCFS" little-endian.
pub const MAGIC: u32 = 0x5346_434C;
/// The on-disk format version this code writes and reads (docs/layout.md, "Format versions").
/// Images of other versions are refused: there is no migration (no release ever wrote one).
pub const FORMAT_VERSION: u16 = 2;

/// What a metadata block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum BlockKind {
    Superblock = 1,
    TreeLeaf = 2,
    TreeInternal = 3,
    FreeMap = 4,
}

impl BlockKind {
    fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::Superblock),
            2 => Some(Self::TreeLeaf),
            3 => Some(Self::TreeInternal),
            4 => Some(Self::FreeMap),
            _ => None,
        }
    }
}

/// The decoded header of a metadata block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: BlockKind,
    pub block: BlockNo,
    pub generation: Generation,
    pub owner: LayerId,
}

fn get_u16(buf: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(s) = buf.get(at..at + 2) {
        b.copy_from_slice(s);
    }
    u16::from_le_bytes(b)
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = buf.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = buf.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(s) = buf.get_mut(at..at + bytes.len()) {
        s.copy_from_slice(bytes);
    }
}

/// crc32c of `block` with the checksum field taken as zero.
fn checksum(block: &[u8]) -> u32 {
    let head = block.get(..32).unwrap_or(&[]);
    let tail = block.get(36..).unwrap_or(&[]);
    let crc = crc32c::crc32c(head);
    let crc = crc32c::crc32c_append(crc, &[0u8; 4]);
    crc32c::crc32c_append(crc, tail)
}

/// Writes `header` into the first bytes of `block` (one whole block) and seals it with its
/// checksum. Call after the payload is in place.
pub fn seal(block: &mut [u8], header: &Header) {
    assert_eq!(block.len(), BLOCK_SIZE, "seal takes one whole block");
    put(block, 0, &MAGIC.to_le_bytes());
    put(block, 4, &(header.kind as u16).to_le_bytes());
    put(block, 6, &FORMAT_VERSION.to_le_bytes());
    put(block, 8, &header.block.0.to_le_bytes());
    put(block, 16, &header.generation.0.to_le_bytes());
    put(block, 24, &header.owner.0.to_le_bytes());
    put(block, 32, &[0u8; 16]);
    let crc = checksum(block);
    put(block, 32, &crc.to_le_bytes());
}

/// Checks the header of `block`, read from block number `at`, and that it holds `kind`.
pub fn verify(block: &[u8], at: BlockNo, kind: BlockKind) -> Result<Header> {
    let header = verify_any(block, at)?;
    if header.kind != kind {
        return Err(Error::corrupt(at.0, format!("expected a {kind:?} block, found {:?}", header.kind)));
    }
    Ok(header)
}

/// Checks the header of `block`, read from block number `at`, whatever its kind.
pub fn verify_any(block: &[u8], at: BlockNo) -> Result<Header> {
    if block.len() != BLOCK_SIZE {
        return Err(Error::corrupt(at.0, format!("block of {} bytes", block.len())));
    }
    if get_u32(block, 0) != MAGIC {
        return Err(Error::corrupt(at.0, "bad magic (not an lcfs metadata block)"));
    }
    let stored = get_u32(block, 32);
    if stored != checksum(block) {
        return Err(Error::corrupt(at.0, "checksum mismatch"));
    }
    let version = get_u16(block, 6);
    if version != FORMAT_VERSION {
        return Err(Error::corrupt(
            at.0,
            format!(
                "format version {version} is not supported: this lcfs reads version \
                 {FORMAT_VERSION} only; make the image again with `lcfs mkfs`"
            ),
        ));
    }
    let kind = BlockKind::from_u16(get_u16(block, 4))
        .ok_or_else(|| Error::corrupt(at.0, "unknown block kind"))?;
    let block_no = get_u64(block, 8);
    if block_no != at.0 {
        return Err(Error::corrupt(at.0, format!("misdirected write: block says it is {block_no}")));
    }
    Ok(Header {
        kind,
        block: at,
        generation: Generation(get_u64(block, 16)),
        owner: LayerId(get_u64(block, 24)),
    })
}

/// The payload of a block (everything after the header).
pub fn payload(block: &[u8]) -> &[u8] {
    block.get(HEADER_SIZE..).unwrap_or(&[])
}

/// The payload of a block, mutable.
pub fn payload_mut(block: &mut [u8]) -> &mut [u8] {
    block.get_mut(HEADER_SIZE..).unwrap_or(&mut [])
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn sealed(kind: BlockKind, block: u64, generation: u64, owner: u64, fill: u8) -> Vec<u8> {
        let mut buf = vec![fill; BLOCK_SIZE];
        let header = Header {
            kind,
            block: BlockNo(block),
            generation: Generation(generation),
            owner: LayerId(owner),
        };
        seal(&mut buf, &header);
        buf
    }

    quickcheck! {
        fn header_round_trips(block: u64, generation: u64, owner: u64, fill: u8) -> bool {
            let buf = sealed(BlockKind::TreeLeaf, block, generation, owner, fill);
            match verify(&buf, BlockNo(block), BlockKind::TreeLeaf) {
                Ok(h) => h.generation.0 == generation && h.owner.0 == owner
                    && payload(&buf).iter().all(|&b| b == fill),
                Err(_) => false,
            }
        }

        fn any_flipped_bit_is_caught(byte: u16, bit: u8) -> bool {
            let mut buf = sealed(BlockKind::FreeMap, 7, 3, 0, 0xAB);
            let at = usize::from(byte) % BLOCK_SIZE;
            if let Some(b) = buf.get_mut(at) { *b ^= 1 << (bit % 8); }
            verify(&buf, BlockNo(7), BlockKind::FreeMap).is_err()
        }
    }

    #[test]
    fn misdirected_and_wrong_kind_blocks_are_refused() {
        let buf = sealed(BlockKind::TreeLeaf, 10, 1, 1, 0);
        assert!(matches!(verify(&buf, BlockNo(11), BlockKind::TreeLeaf), Err(Error::Corrupt { .. })));
        assert!(matches!(verify(&buf, BlockNo(10), BlockKind::TreeInternal), Err(Error::Corrupt { .. })));
        assert!(verify(&vec![0u8; BLOCK_SIZE], BlockNo(0), BlockKind::Superblock).is_err());
    }
}
