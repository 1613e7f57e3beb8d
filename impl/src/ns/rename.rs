//! rename and renameat2 (`noreplace`, `exchange`).
//!
//! Checks after the common ones, in this order (the model's, which follows Linux's
//! `do_renameat2` and `vfs_rename`): both flags: EINVAL; dir or newdir not a directory: ENOTDIR;
//! source missing: ENOENT; `noreplace` and the target exists: EEXIST; `exchange` and the target
//! is missing: ENOENT; the source is newdir or above it: EINVAL; the target is dir or above it:
//! ENOTEMPTY (EINVAL with `exchange`); source and target the same inode: success, no change;
//! without `exchange`, a directory over a non-directory: ENOTDIR, the reverse: EISDIR; a
//! directory that would gain a subdirectory at LINK_MAX: EMLINK; without `exchange`, a non-empty
//! target directory: ENOTEMPTY.
//!
//! Invariants kept by a successful rename:
//! - directory nlinks follow the subdirectories that moved, and a moved directory's `parent`
//!   names its new directory;
//! - no directory becomes its own ancestor (checked by walking parents up to the root, a bounded
//!   loop);
//! - a replaced target is unlinked as by unlink or rmdir (kept as an orphan if it is open).

use crate::ctx::LayerCtx;
use crate::error::{Error, Result};
use crate::format::records::DirEntryValue;
use crate::ns::dir::{find_entry, is_empty, put_entry, remove_entry, touch_dir};
use crate::ns::item::{atomically, expect_dir, load_child, load_inode, store_inode};
use crate::ns::name::check_name;
use crate::ns::orphan::{self, IsOpen};
use crate::types::{FileType, Ino, RenameFlags, Timespec, LINK_MAX};

/// Deepest directory nesting the ancestor walk accepts before calling the tree corrupt.
const DEPTH_WALK_MAX: u32 = 1 << 24;

/// A rename that passed the checks of its source and target entries.
struct Move<'n> {
    dir: Ino,
    name: &'n [u8],
    newdir: Ino,
    newname: &'n [u8],
    src: DirEntryValue,
    dst: Option<DirEntryValue>,
    src_is_dir: bool,
    dst_is_dir: bool,
    /// Whether an inode is open (a replaced target that is open becomes an orphan).
    open: IsOpen<'n>,
}

/// Moves entry `name` of `dir` to `newname` of `newdir` (see the module doc).
pub fn rename(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    newdir: Ino,
    newname: &[u8],
    flags: RenameFlags,
    now: Timespec,
) -> Result<()> {
    rename_open(ctx, dir, name, newdir, newname, flags, now, &|_| false)
}

/// `rename`, keeping a replaced target as an orphan if its last link goes while it is open.
#[expect(clippy::too_many_arguments, reason = "renameat2(2) plus the open-inode predicate")]
pub fn rename_open(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    newdir: Ino,
    newname: &[u8],
    flags: RenameFlags,
    now: Timespec,
    open: IsOpen<'_>,
) -> Result<()> {
    atomically(ctx, |ctx| rename_in(ctx, dir, name, newdir, newname, flags, now, open))
}

#[expect(clippy::too_many_arguments, reason = "renameat2(2) plus the open-inode predicate")]
fn rename_in(
    ctx: &mut LayerCtx<'_>,
    dir: Ino,
    name: &[u8],
    newdir: Ino,
    newname: &[u8],
    flags: RenameFlags,
    now: Timespec,
    open: IsOpen<'_>,
) -> Result<()> {
    check_name(name)?;
    check_name(newname)?;
    let dir_rec = load_inode(ctx, dir)?;
    let newdir_rec = load_inode(ctx, newdir)?;
    if flags.noreplace && flags.exchange {
        return Err(Error::InvalidArgument("both noreplace and exchange"));
    }
    expect_dir(&dir_rec)?;
    expect_dir(&newdir_rec)?;
    let src = find_entry(ctx, dir, name)?.ok_or(Error::NotFound)?;
    let dst = find_entry(ctx, newdir, newname)?;
    if flags.noreplace && dst.is_some() {
        return Err(Error::Exists);
    }
    if flags.exchange && dst.is_none() {
        return Err(Error::NotFound);
    }
    let src_is_dir = load_child(ctx, src.ino)?.kind == FileType::Directory;
    let dst_is_dir = match dst {
        Some(d) => load_child(ctx, d.ino)?.kind == FileType::Directory,
        None => false,
    };
    let m = Move { dir, name, newdir, newname, src, dst, src_is_dir, dst_is_dir, open };
    check_loops(ctx, &m, flags.exchange)?;
    if dst.is_some_and(|d| d.ino == src.ino) {
        return Ok(());
    }
    if !flags.exchange {
        check_kinds(&m)?;
    }
    check_links(&m, dir_rec.nlink, newdir_rec.nlink, flags.exchange)?;
    if !flags.exchange {
        check_empty(ctx, &m)?;
    }
    if flags.exchange {
        exchange(ctx, &m, now)
    } else {
        replace(ctx, &m, now)
    }
}

/// The source must not be newdir or above it (EINVAL); the target must not be dir or above it
/// (ENOTEMPTY, or EINVAL with `exchange`), as Linux's lock_rename trap checks.
fn check_loops(ctx: &LayerCtx<'_>, m: &Move<'_>, exchange: bool) -> Result<()> {
    // Within one directory, neither entry can be above that directory.
    if m.dir == m.newdir {
        return Ok(());
    }
    if m.src_is_dir && is_within(ctx, m.src.ino, m.newdir)? {
        return Err(Error::InvalidArgument("directory moved below itself"));
    }
    if let Some(dst) = m.dst.filter(|_| m.dst_is_dir) {
        if is_within(ctx, dst.ino, m.dir)? {
            return Err(if exchange {
                Error::InvalidArgument("directory moved below itself")
            } else {
                Error::NotEmpty
            });
        }
    }
    Ok(())
}

/// Without `exchange`: a target must be of the source's kind.
fn check_kinds(m: &Move<'_>) -> Result<()> {
    match (m.dst.is_some(), m.src_is_dir, m.dst_is_dir) {
        (true, true, false) => Err(Error::NotDir),
        (true, false, true) => Err(Error::IsDir),
        _ => Ok(()),
    }
}

/// Without `exchange`: a target directory must be empty.
fn check_empty(ctx: &LayerCtx<'_>, m: &Move<'_>) -> Result<()> {
    match m.dst {
        Some(dst) if m.dst_is_dir && !is_empty(ctx, dst.ino)? => Err(Error::NotEmpty),
        _ => Ok(()),
    }
}

/// A directory that gains a subdirectory must not be at LINK_MAX (as Linux's `vfs_rename`: a
/// replaced or exchanged directory leaves the count unchanged).
fn check_links(m: &Move<'_>, dir_nlink: u32, newdir_nlink: u32, exchange: bool) -> Result<()> {
    if m.dir == m.newdir {
        return Ok(());
    }
    let newdir_gains = m.src_is_dir && !m.dst_is_dir;
    let dir_gains = exchange && m.dst_is_dir && !m.src_is_dir;
    if (newdir_gains && newdir_nlink >= LINK_MAX) || (dir_gains && dir_nlink >= LINK_MAX) {
        return Err(Error::TooManyLinks);
    }
    Ok(())
}

/// Whether `start` is `ancestor` or lies below it.
fn is_within(ctx: &LayerCtx<'_>, ancestor: Ino, start: Ino) -> Result<bool> {
    let mut ino = start;
    for _ in 0..DEPTH_WALK_MAX {
        if ino == ancestor {
            return Ok(true);
        }
        if ino == Ino::ROOT {
            return Ok(false);
        }
        let rec = load_child(ctx, ino)?;
        if rec.kind != FileType::Directory {
            return Err(Error::corrupt(0, format!("parent {} is not a directory", ino.0)));
        }
        ino = rec.parent;
    }
    Err(Error::corrupt(0, "directory parents do not reach the root"))
}

/// Sets ctime of a moved inode and, for a directory that changed parent, its `parent`.
fn mark_moved(ctx: &mut LayerCtx<'_>, ino: Ino, parent: Option<Ino>, now: Timespec) -> Result<()> {
    let mut rec = load_child(ctx, ino)?;
    rec.ctime = now;
    if let Some(parent) = parent {
        rec.parent = parent;
    }
    store_inode(ctx, ino, &rec)
}

/// Moves the source over the target (unlinked first, if any).
fn replace(ctx: &mut LayerCtx<'_>, m: &Move<'_>, now: Timespec) -> Result<()> {
    let change = match m.dst {
        Some(dst) if m.dst_is_dir => Some(orphan::drop_dir(ctx, dst.ino, now, m.open)?),
        Some(dst) => Some(orphan::drop_link(ctx, dst.ino, now, m.open)?),
        None => None,
    };
    remove_entry(ctx, m.dir, m.name)?;
    put_entry(ctx, m.newdir, m.newname, &m.src)?;
    let moved_dir = m.src_is_dir && m.dir != m.newdir;
    mark_moved(ctx, m.src.ino, moved_dir.then_some(m.newdir), now)?;
    let (src_dirs, dst_dirs) = (i32::from(m.src_is_dir), i32::from(m.dst_is_dir));
    if m.dir == m.newdir {
        touch_dir(ctx, m.dir, -dst_dirs, now)?;
    } else {
        touch_dir(ctx, m.dir, -src_dirs, now)?;
        touch_dir(ctx, m.newdir, src_dirs - dst_dirs, now)?;
    }
    if let Some(change) = change {
        change.apply(ctx.pages);
    }
    Ok(())
}

/// Swaps the source and target entries.
fn exchange(ctx: &mut LayerCtx<'_>, m: &Move<'_>, now: Timespec) -> Result<()> {
    let Some(dst) = m.dst else { return Err(Error::NotFound) };
    put_entry(ctx, m.dir, m.name, &dst)?;
    put_entry(ctx, m.newdir, m.newname, &m.src)?;
    let crosses = m.dir != m.newdir;
    mark_moved(ctx, m.src.ino, (m.src_is_dir && crosses).then_some(m.newdir), now)?;
    mark_moved(ctx, dst.ino, (m.dst_is_dir && crosses).then_some(m.dir), now)?;
    let (src_dirs, dst_dirs) = (i32::from(m.src_is_dir), i32::from(m.dst_is_dir));
    if crosses {
        touch_dir(ctx, m.dir, dst_dirs - src_dirs, now)?;
        touch_dir(ctx, m.newdir, src_dirs - dst_dirs, now)
    } else {
        touch_dir(ctx, m.dir, 0, now)
    }
}
