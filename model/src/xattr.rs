//! Extended attributes: setxattr, getxattr, listxattr, removexattr.
//!
//! Any name of 1 to 255 bytes is accepted (no namespace prefix is required: the kernel applies
//! its namespace rules before the engine sees a name). The name check takes the place of step 3
//! of the order of checks, so a bad name (ERANGE) is reported before a missing inode (ENOENT).
//!
//! Invariants: every stored name is 1..=255 bytes, every value at most `XATTR_VALUE_MAX` bytes;
//! `listxattr` returns names sorted by bytes; a change sets the inode's ctime to `now`.

use crate::errno::{Errno, Result};
use crate::types::{Ino, LayerId, Timespec, XattrFlags, NAME_MAX, XATTR_VALUE_MAX};
use crate::Model;

/// Step 3 for an xattr name: empty or longer than `NAME_MAX`: ERANGE.
fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(Errno::ERANGE);
    }
    Ok(())
}

impl Model {
    /// Sets the xattr `name` to `value` (an empty value is a value); ctime = `now`. Errors after
    /// the common checks: `Create` and it exists: EEXIST; `Replace` and it is missing: ENODATA;
    /// value longer than XATTR_VALUE_MAX: ENOSPC (last, as in ext4, which looks the name up
    /// before it tries to fit the value).
    pub fn setxattr(
        &mut self,
        layer: LayerId,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: XattrFlags,
        now: Timespec,
    ) -> Result<()> {
        let layer = self.writable(layer)?;
        check_xattr_name(name)?;
        let inode = layer.get_mut(ino)?;
        match (flags, inode.xattrs.contains_key(name)) {
            (XattrFlags::Create, true) => return Err(Errno::EEXIST),
            (XattrFlags::Replace, false) => return Err(Errno::ENODATA),
            _ => {}
        }
        if value.len() > XATTR_VALUE_MAX {
            return Err(Errno::ENOSPC);
        }
        inode.xattrs.insert(name.to_vec(), value.to_vec());
        inode.ctime = now;
        Ok(())
    }

    /// The value of the xattr `name`. Errors after the common checks: missing: ENODATA.
    pub fn getxattr(&self, layer: LayerId, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let layer = self.readable(layer)?;
        check_xattr_name(name)?;
        layer.get(ino)?.xattrs.get(name).cloned().ok_or(Errno::ENODATA)
    }

    /// The names of every xattr of `ino`, sorted by bytes. Errors: the common checks.
    pub fn listxattr(&self, layer: LayerId, ino: Ino) -> Result<Vec<Vec<u8>>> {
        Ok(self.readable(layer)?.get(ino)?.xattrs.keys().cloned().collect())
    }

    /// Removes the xattr `name`; ctime = `now`. Errors after the common checks: missing:
    /// ENODATA.
    pub fn removexattr(
        &mut self,
        layer: LayerId,
        ino: Ino,
        name: &[u8],
        now: Timespec,
    ) -> Result<()> {
        let layer = self.writable(layer)?;
        check_xattr_name(name)?;
        let inode = layer.get_mut(ino)?;
        inode.xattrs.remove(name).ok_or(Errno::ENODATA)?;
        inode.ctime = now;
        Ok(())
    }
}
