//! Cleaning a path of the stream into components inside the layer.
//!
//! Rules (docs/tar.md, "Hostile input"):
//! - leading `/` are stripped, as Docker does: an absolute path names the same entry relative
//!   to the layer root;
//! - empty and `.` components are dropped; `..` removes the previous component, and a `..` with
//!   nothing left to remove (climbing above the layer root) is an error, not clamped;
//! - a NUL byte, a component over `NAME_MAX` bytes (plus 4 for a `.wh.` whiteout in the last
//!   component) or a path over the limit is an error;
//! - bytes are kept as they are (names need not be UTF-8: the engine stores bytes).
//!
//! The result is purely lexical: symlinks are never consulted here, and `apply` refuses a
//! symlink wherever a directory is needed.

use super::TarErrorKind;
use crate::types::NAME_MAX;

/// A cleaned path: its components, none empty, `.` or `..`, none holding `/` or NUL.
pub type Components = Vec<Vec<u8>>;

/// Cleans `raw`; an empty result names the layer root.
pub fn clean(raw: &[u8], path_bytes_max: usize) -> Result<Components, TarErrorKind> {
    if raw.len() > path_bytes_max {
        return Err(TarErrorKind::Limit("a path is longer than PATH_MAX"));
    }
    if raw.contains(&0) {
        return Err(TarErrorKind::Unsafe("a NUL byte in a path"));
    }
    let mut components = Components::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() {
                    return Err(TarErrorKind::Unsafe("a '..' climbs above the layer root"));
                }
            }
            // A whiteout names a name of up to NAME_MAX bytes after its prefix.
            name if name.len() > NAME_MAX + whiteout_extra(name) => {
                return Err(TarErrorKind::Limit(
                    "a path component is longer than 255 bytes",
                ));
            }
            name => components.push(name.to_vec()),
        }
    }
    // Only the last component can be a whiteout: a longer one above it names no directory.
    let above = components.len().saturating_sub(1);
    if components
        .iter()
        .take(above)
        .any(|name| name.len() > NAME_MAX)
    {
        return Err(TarErrorKind::Limit(
            "a path component is longer than 255 bytes",
        ));
    }
    Ok(components)
}

/// The bytes a whiteout's `.wh.` prefix adds to a name.
fn whiteout_extra(name: &[u8]) -> usize {
    if name.starts_with(b".wh.") {
        4
    } else {
        0
    }
}

/// The components joined with `/` (the key of `apply`'s set of unpacked paths).
pub fn join(components: &[Vec<u8>]) -> Vec<u8> {
    components.join(&b'/')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ok(raw: &[u8]) -> Vec<u8> {
        join(&clean(raw, 4096).unwrap())
    }

    #[test]
    fn paths_clean_like_docker() {
        assert_eq!(ok(b"/etc//passwd"), b"etc/passwd");
        assert_eq!(ok(b"./a/./b/"), b"a/b");
        assert_eq!(ok(b"a/b/../c"), b"a/c");
        assert_eq!(ok(b"a/.."), b"");
        assert_eq!(ok(b"/"), b"");
        assert_eq!(ok(b"caf\xe9"), b"caf\xe9");
    }

    #[test]
    fn climbing_nul_and_lengths_are_refused() {
        assert!(matches!(clean(b"../x", 4096), Err(TarErrorKind::Unsafe(_))));
        assert!(matches!(
            clean(b"a/../../x", 4096),
            Err(TarErrorKind::Unsafe(_))
        ));
        assert!(matches!(
            clean(b"/../x", 4096),
            Err(TarErrorKind::Unsafe(_))
        ));
        assert!(matches!(clean(b"a\0b", 4096), Err(TarErrorKind::Unsafe(_))));
        assert!(matches!(
            clean(&[b'n'; 256], 4096),
            Err(TarErrorKind::Limit(_))
        ));
        assert!(clean(&[b'n'; 255], 4096).is_ok());
        let whiteout: Vec<u8> = [&b".wh."[..], &[b'n'; 255]].concat();
        assert!(
            clean(&whiteout, 4096).is_ok(),
            "a whiteout of a 255-byte name"
        );
        let above: Vec<u8> = [&whiteout[..], b"/x"].concat();
        assert!(matches!(clean(&above, 4096), Err(TarErrorKind::Limit(_))));
        assert!(matches!(
            clean(&[b'/'; 4097], 4096),
            Err(TarErrorKind::Limit(_))
        ));
    }
}
