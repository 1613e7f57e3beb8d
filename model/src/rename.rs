//! rename (renameat2): move an entry, replace a target, or exchange two entries.
//!
//! The checks follow Linux's `do_renameat2` and `vfs_rename`, in this order, after the common
//! checks (layer, EROFS, both names, both directories present):
//! 1. both `noreplace` and `exchange`: EINVAL;
//! 2. dir or newdir not a directory: ENOTDIR;
//! 3. source missing: ENOENT;
//! 4. `noreplace` and the target exists: EEXIST;
//! 5. `exchange` and the target is missing: ENOENT;
//! 6. the source is newdir or above it: EINVAL;
//! 7. the target is dir or above it: ENOTEMPTY (EINVAL with `exchange`);
//! 8. source and target are the same inode: success, nothing changes;
//! 9. without `exchange`: source a directory, target not: ENOTDIR; source not a directory,
//!    target one: EISDIR;
//! 10. dir and newdir differ and one of them would gain a subdirectory while its nlink is at
//!     LINK_MAX: EMLINK;
//! 11. without `exchange`: target a non-empty directory: ENOTEMPTY.
//!
//! Effect: a replaced target is removed as unlink or rmdir would; the entries move (or swap);
//! directory nlinks follow the moved directories; moved inodes and a replaced inode that
//! survives get ctime = `now`; both parents get mtime = ctime = `now`.

use crate::errno::{Errno, Result};
use crate::layer::{check_name, Layer};
use crate::types::{FileType, Ino, LayerId, RenameFlags, Timespec, LINK_MAX};
use crate::Model;

impl Model {
    /// Renames `dir/name` to `newdir/newname`; see the module doc for the checks and effect.
    #[expect(clippy::too_many_arguments, reason = "mirrors the engine's signature")]
    pub fn rename(
        &mut self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        newdir: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: Timespec,
    ) -> Result<()> {
        let layer = self.writable(layer)?;
        check_name(name)?;
        check_name(newname)?;
        layer.get(dir)?;
        layer.get(newdir)?;
        if flags.noreplace && flags.exchange {
            return Err(Errno::EINVAL);
        }
        let (from, to) = (layer.must(dir).entries()?, layer.must(newdir).entries()?);
        let source = *from.get(name).ok_or(Errno::ENOENT)?;
        let target = to.get(newname).copied();
        check(layer, (dir, source), (newdir, target), flags)?;
        if target == Some(source) {
            return Ok(());
        }
        match target {
            Some(target) if flags.exchange => {
                exchange(layer, (dir, name, source), (newdir, newname, target), now);
            }
            _ => {
                if target.is_some() {
                    layer.remove_entry(newdir, newname, now);
                }
                move_entry(layer, (dir, name, source), (newdir, newname), now);
            }
        }
        Ok(())
    }
}

/// Checks 4 to 11 of the module doc. `Ok` with `target == Some(source)` means "do nothing".
fn check(
    layer: &Layer,
    (dir, source): (Ino, Ino),
    (newdir, target): (Ino, Option<Ino>),
    flags: RenameFlags,
) -> Result<()> {
    if flags.noreplace && target.is_some() {
        return Err(Errno::EEXIST);
    }
    if flags.exchange && target.is_none() {
        return Err(Errno::ENOENT);
    }
    if layer.is_ancestor_or_self(source, newdir) {
        return Err(Errno::EINVAL);
    }
    if let Some(target) = target {
        if layer.is_ancestor_or_self(target, dir) {
            return Err(if flags.exchange { Errno::EINVAL } else { Errno::ENOTEMPTY });
        }
    }
    if target == Some(source) {
        return Ok(());
    }
    let is_dir = |ino: Ino| layer.must(ino).kind == FileType::Directory;
    let source_dir = is_dir(source);
    let target_dir = target.is_some_and(is_dir);
    if !flags.exchange && target.is_some() {
        if source_dir && !target_dir {
            return Err(Errno::ENOTDIR);
        }
        if !source_dir && target_dir {
            return Err(Errno::EISDIR);
        }
    }
    if dir != newdir {
        let newdir_gains = source_dir && !target_dir;
        let dir_gains = flags.exchange && target_dir && !source_dir;
        if (newdir_gains && layer.must(newdir).nlink >= LINK_MAX)
            || (dir_gains && layer.must(dir).nlink >= LINK_MAX)
        {
            return Err(Errno::EMLINK);
        }
    }
    if let (false, Some(target), true) = (flags.exchange, target, target_dir) {
        if !layer.must(target).entries()?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
    }
    Ok(())
}

/// Moves the entry `name` (inode `source`) of `dir` to `newname` in `newdir` (now free).
fn move_entry(
    layer: &mut Layer,
    (dir, name, source): (Ino, &[u8], Ino),
    (newdir, newname): (Ino, &[u8]),
    now: Timespec,
) {
    let moves_dir = layer.must(source).kind == FileType::Directory && dir != newdir;
    let from = layer.must_mut(dir);
    from.entries_mut().expect("checked to be a directory").remove(name);
    if moves_dir {
        from.nlink -= 1;
    }
    from.touch(now);
    let to = layer.must_mut(newdir);
    to.entries_mut().expect("checked to be a directory").insert(newname.to_vec(), source);
    if moves_dir {
        to.nlink += 1;
    }
    to.touch(now);
    layer.must_mut(source).ctime = now;
}

/// Swaps the inodes named by `dir/name` and `newdir/newname`.
fn exchange(
    layer: &mut Layer,
    (dir, name, source): (Ino, &[u8], Ino),
    (newdir, newname, target): (Ino, &[u8], Ino),
    now: Timespec,
) {
    let is_dir = |layer: &Layer, ino: Ino| layer.must(ino).kind == FileType::Directory;
    // Subdirectories each parent gains (+1) or loses (-1) by the swap.
    let shift = i64::from(is_dir(layer, target)) - i64::from(is_dir(layer, source));
    let from = layer.must_mut(dir);
    from.entries_mut().expect("checked to be a directory").insert(name.to_vec(), target);
    from.touch(now);
    if dir != newdir {
        from.nlink = (i64::from(from.nlink) + shift) as u32;
    }
    let to = layer.must_mut(newdir);
    to.entries_mut().expect("checked to be a directory").insert(newname.to_vec(), source);
    to.touch(now);
    if dir != newdir {
        to.nlink = (i64::from(to.nlink) - shift) as u32;
    }
    layer.must_mut(source).ctime = now;
    layer.must_mut(target).ctime = now;
}
