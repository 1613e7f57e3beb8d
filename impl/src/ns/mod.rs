//! Namespace operations of one layer: inodes, directories, file data, xattrs, rename.
//!
//! Each operation is a free function over a `LayerCtx` and implements steps 3 onward of the
//! order of checks of `docs/operations.md` (the core has checked that the layer exists and, for
//! a modifying operation, that it is writable). The tree items are laid out in
//! `format/records.rs`.
//!
//! Invariants (each module lists its own):
//! - every check comes before the first change, and a failed operation changes nothing even when
//!   the tree or the device fails under it: a modifying operation runs under
//!   `item::atomically` (the tree is restored from an O(1) clone, the frees it reported are
//!   forgotten), and it changes `ctx.pages` and `ctx.next_ino` only as its last, infallible step;
//! - inode numbers come from `ctx.next_ino`, which moves only when a create succeeds;
//! - file data lives in `DirtyPages` until the checkpoint calls `flush_pages`;
//! - data blocks the layer owned and no longer references go to `ctx.freed_extents`; blocks of
//!   other layers never do.

mod create;
mod data;
mod dir;
mod extent;
mod flush;
mod inode;
mod item;
mod name;
mod orphan;
mod pages;
mod remove;
mod rename;
mod seek;
mod symlink;
mod xattr;

#[cfg(test)]
mod tests;

pub use create::{link, mkdir, mknod};
pub use data::{read, write};
pub use dir::{lookup, readdir};
pub use extent::{owned_extent, FILE_BLOCKS_MAX};
pub use flush::flush_pages;
pub use inode::{getattr, init_root, setattr};
pub use pages::{DirtyPages, PAGE_SIZE};
pub use orphan::{orphans, release, sweep, IsOpen};
pub use remove::{rmdir, rmdir_open, unlink, unlink_open};
pub use rename::{rename, rename_open};
pub use seek::{seek_data, seek_hole};
pub use symlink::{readlink, symlink};
pub use xattr::{getxattr, listxattr, removexattr, setxattr};
