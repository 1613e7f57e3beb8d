//! Layers: their records in the system tree, and the layers opened since mount.
//!
//! The system tree (owner `LayerId::SYSTEM`) holds three kinds of items:
//!
//! ```text
//! key                                   value
//! 'L' id (u64 big-endian)               LayerRecord (below)
//! 'N' name bytes                        id (u64 little-endian)
//! 'M' id (u64 big-endian) meta key      meta value, 0..=META_VALUE_MAX bytes
//! ```
//!
//! Meta items are a layer's own key/value metadata for the runtime that made it (containerd's
//! kind and labels, for one), outside the layer's files: 1..=META_KEY_MAX bytes of key. They go
//! with the layer when it is removed, and a committed layer's may still change.
//!
//! LayerRecord layout, little-endian:
//!
//! ```text
//! offset size field
//!      0    8 id
//!      8    8 parent     id of the parent, 0 for a base layer
//!     16    1 state      0 writable, 1 committed
//!     17    3 reserved   zero
//!     20    4 children   layers whose parent this is
//!     24    8 root       root block of the layer's tree at the last checkpoint
//!     32    8 root_gen   the generation that wrote the root (the root's header must match)
//!     40    8 created    seconds since the epoch
//!     48    2 name_len
//!     50    n name       UTF-8
//! ```
//!
//! Invariants: a record's `children` equals the number of records naming it as parent; only
//! committed layers have children; a layer's tree shares its parent's nodes, never the reverse.

use crate::error::{Error, Result};
use crate::format::cursor::{Reader, Writer};
use crate::tree::NodePtr;
use crate::types::{BlockNo, Generation, LayerId, LayerState, NAME_MAX};

/// Key prefix of layer records.
pub const RECORD_PREFIX: u8 = b'L';
/// Key prefix of the name index.
pub const NAME_PREFIX: u8 = b'N';
/// Key prefix of layer metadata items.
pub const META_PREFIX: u8 = b'M';
/// Longest key of a metadata item.
pub const META_KEY_MAX: usize = 255;
/// Longest value of a metadata item.
pub const META_VALUE_MAX: usize = 1024;
/// Bytes of a record before the name.
const RECORD_FIXED_LEN: usize = 50;

/// A layer as the system tree records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRecord {
    pub id: LayerId,
    pub parent: Option<LayerId>,
    pub state: LayerState,
    pub children: u32,
    /// The root of the layer's tree at the last checkpoint (block and generation).
    pub root: NodePtr,
    pub created_sec: i64,
    pub name: String,
}

/// The system-tree key of layer `id`'s record.
pub fn record_key(id: LayerId) -> Vec<u8> {
    let mut key = vec![RECORD_PREFIX];
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

/// The system-tree key of the name index entry for `name`.
pub fn name_key(name: &str) -> Vec<u8> {
    let mut key = vec![NAME_PREFIX];
    key.extend_from_slice(name.as_bytes());
    key
}

/// The system-tree key of layer `id`'s metadata item `key`; with an empty `key`, the prefix of
/// all of them.
pub fn meta_key(id: LayerId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.push(META_PREFIX);
    out.extend_from_slice(&id.0.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Checks a metadata item: EINVAL for an empty key or a value past `META_VALUE_MAX`,
/// ENAMETOOLONG for a key past `META_KEY_MAX`.
pub fn check_meta(key: &[u8], value: Option<&[u8]>) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("layer metadata keys must be non-empty"));
    }
    if key.len() > META_KEY_MAX {
        return Err(Error::NameTooLong);
    }
    if value.is_some_and(|v| v.len() > META_VALUE_MAX) {
        return Err(Error::InvalidArgument("layer metadata values are at most 1024 bytes"));
    }
    Ok(())
}

/// Checks a layer name: EINVAL for empty, `.`, `..`, `/` or NUL; ENAMETOOLONG past 255 bytes.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::InvalidArgument("layer names must be non-empty, without '/' or NUL"));
    }
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    Ok(())
}

impl LayerRecord {
    /// Encodes the record as a system-tree value.
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.name.len() <= NAME_MAX, "layer names are checked at create");
        let mut out = vec![0u8; RECORD_FIXED_LEN + self.name.len()];
        let mut w = Writer::new(&mut out);
        w.u64(self.id.0);
        w.u64(self.parent.map_or(0, |p| p.0));
        w.u8(match self.state {
            LayerState::Writable => 0,
            LayerState::Committed => 1,
        });
        w.bytes(&[0u8; 3]);
        w.u32(self.children);
        w.u64(self.root.block.0);
        w.u64(self.root.generation.0);
        w.i64(self.created_sec);
        w.u16(self.name.len() as u16);
        w.bytes(self.name.as_bytes());
        out
    }

    /// Decodes and validates a record value (`block` names where it was read, for errors).
    pub fn decode(value: &[u8], block: u64) -> Result<LayerRecord> {
        let mut r = Reader::new(value, block);
        let id = LayerId(r.u64()?);
        let parent = match r.u64()? {
            0 => None,
            p => Some(LayerId(p)),
        };
        let state = match r.u8()? {
            0 => LayerState::Writable,
            1 => LayerState::Committed,
            s => return Err(Error::corrupt(block, format!("layer {} has state {s}", id.0))),
        };
        r.bytes(3)?;
        let children = r.u32()?;
        let root = NodePtr { block: BlockNo(r.u64()?), generation: Generation(r.u64()?) };
        let created_sec = r.i64()?;
        let len = usize::from(r.u16()?);
        let name = std::str::from_utf8(r.bytes(len)?)
            .map_err(|_| Error::corrupt(block, "layer name is not UTF-8"))?
            .to_string();
        if check_name(&name).is_err() || id.0 == 0 || r.remaining() != 0 {
            return Err(Error::corrupt(block, format!("bad record for layer {}", id.0)));
        }
        Ok(LayerRecord { id, parent, state, children, root, created_sec, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    quickcheck! {
        fn layer_record_round_trips(id: u64, parent: u64, committed: bool, children: u32,
                                    root: u64, root_gen: u64, name: String) -> bool {
            let name: String = name.chars().filter(|c| *c != '/' && *c != '\0').take(60).collect();
            if check_name(&name).is_err() {
                return true;
            }
            let rec = LayerRecord {
                id: LayerId(id.max(1)),
                parent: (parent != 0).then_some(LayerId(parent)),
                state: if committed { LayerState::Committed } else { LayerState::Writable },
                children,
                root: NodePtr { block: BlockNo(root), generation: Generation(root_gen) },
                created_sec: 5,
                name,
            };
            LayerRecord::decode(&rec.encode(), 0).ok() == Some(rec)
        }
    }

    #[test]
    fn names_follow_the_contract() {
        assert!(matches!(check_name(""), Err(Error::InvalidArgument(_))));
        assert!(matches!(check_name("a/b"), Err(Error::InvalidArgument(_))));
        assert!(matches!(check_name(".."), Err(Error::InvalidArgument(_))));
        assert!(check_name(&"x".repeat(255)).is_ok());
        assert!(matches!(check_name(&"x".repeat(256)), Err(Error::NameTooLong)));
    }
}
