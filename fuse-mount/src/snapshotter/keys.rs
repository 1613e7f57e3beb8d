//! containerd's snapshot keys as layer names, and back.
//!
//! A key is any string; a layer name has no `/` and no NUL, is not `.` or `..`, and is at most
//! 255 bytes. A key is written as a name by escaping `%` as `%25` and `/` as `%2F` (so a
//! namespaced key `default/3/extract-…` becomes `default%2F3%2Fextract-…`, which `lcfs gc`
//! recognises as a temporary layer).
//!
//! Invariants:
//! - `key(&name(k)?) == Some(k)` for every key `name` accepts: the mapping is reversible;
//! - `key(n)` is `Some` exactly for the names some key maps to (every `%` starts `%25` or
//!   `%2F`), so a layer whose name is not such an escape is never taken for a snapshot.

use lcfs::NAME_MAX;

/// Why a key cannot name a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadKey {
    Empty,
    /// `.` and `..` are not directory names.
    Dot,
    Nul,
    /// The escaped name is longer than a layer name may be (its length).
    TooLong(usize),
}

impl std::fmt::Display for BadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadKey::Empty => write!(f, "the key is empty"),
            BadKey::Dot => write!(f, "the key is `.` or `..`"),
            BadKey::Nul => write!(f, "the key holds a NUL byte"),
            BadKey::TooLong(len) => write!(
                f,
                "the key is {len} bytes once `/` and `%` are escaped; at most {NAME_MAX} fit a \
                 layer name"
            ),
        }
    }
}

/// The layer name of snapshot `key`.
pub fn name(key: &str) -> Result<String, BadKey> {
    if key.is_empty() {
        return Err(BadKey::Empty);
    }
    if key == "." || key == ".." {
        return Err(BadKey::Dot);
    }
    if key.contains('\0') {
        return Err(BadKey::Nul);
    }
    let name = key.replace('%', "%25").replace('/', "%2F");
    if name.len() > NAME_MAX {
        return Err(BadKey::TooLong(name.len()));
    }
    Ok(name)
}

/// The snapshot key of layer `name`; `None` when no key maps to it.
pub fn key(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('%') {
        out.push_str(rest.get(..at)?);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "%25" => '%',
            "%2F" => '/',
            _ => return None,
        });
        rest = rest.get(at + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_names() {
        for k in [
            "a",
            "default/3/extract-123 sha256:abc",
            "moby/2/sha256:0123",
            "%",
            "%2F",
            "/%/",
            "100%25/x",
            "ünïcode/ключ",
        ] {
            let n = name(k).expect("a valid key");
            assert!(!n.contains('/'), "{n}");
            assert_eq!(key(&n).as_deref(), Some(k), "{k} -> {n}");
        }
        assert_eq!(name("a/b%c").as_deref(), Ok("a%2Fb%25c"));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(name(""), Err(BadKey::Empty));
        assert_eq!(name("."), Err(BadKey::Dot));
        assert_eq!(name(".."), Err(BadKey::Dot));
        assert_eq!(name("a\0b"), Err(BadKey::Nul));
        assert!(name(&"x".repeat(255)).is_ok());
        assert_eq!(name(&"x".repeat(256)), Err(BadKey::TooLong(256)));
        // 85 slashes are 255 bytes escaped; one more byte is too many.
        assert!(name(&"/".repeat(85)).is_ok());
        assert_eq!(
            name(&format!("{}x", "/".repeat(85))),
            Err(BadKey::TooLong(256))
        );
    }

    #[test]
    fn names_no_key_maps_to_have_no_key() {
        for n in ["a%", "a%2", "a%2f", "%41", "100%", "%%25"] {
            assert_eq!(key(n), None, "{n}");
        }
        assert_eq!(key("plain").as_deref(), Some("plain"));
        // ".." as a name: a key of its own (only `name` refuses it as a key).
        assert_eq!(key("a.b").as_deref(), Some("a.b"));
    }
}
