//! Step 3 of the order of checks: the name arguments.
//!
//! Entry names: empty, `.`, `..`, or containing `/` or NUL is EINVAL; past `NAME_MAX` bytes is
//! ENAMETOOLONG (in that order). Xattr names: empty or past `NAME_MAX` is ERANGE.

use crate::error::{Error, Result};
use crate::types::NAME_MAX;

/// Checks a directory entry name.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidArgument("empty name"));
    }
    if name == b"." || name == b".." {
        return Err(Error::InvalidArgument("name is . or .."));
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(Error::InvalidArgument("name contains / or NUL"));
    }
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    Ok(())
}

/// Checks an xattr name.
pub(crate) fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(Error::Range);
    }
    Ok(())
}
