//! The on-disk format: the common block header, the superblock, and the record codecs.
//! Byte layouts are in each file's doc and in `docs/layout.md`.

pub mod cursor;
pub mod header;
pub mod records;
pub mod superblock;
