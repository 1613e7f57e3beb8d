//! What the snapshotter keeps of a snapshot besides its layer: the engine's metadata items of
//! the layer (`Fs::set_layer_meta`), so they live and die with it and survive a remount.
//!
//! ```text
//! item key                    value
//! containerd.kind             "view" (only views carry it)
//! containerd.created          "SECONDS.NANOSECONDS" since the Unix epoch, decimal
//! containerd.updated          the same
//! containerd.label.<label>    the label's value (UTF-8)
//! ```
//!
//! Invariants:
//! - the kind comes first from the engine: a committed layer is a committed snapshot, a
//!   writable one is a view if marked so and active otherwise; so a crash between the layer
//!   and its items, or a layer made with `lcfs layer create`, never shows a wrong kind;
//! - decoding never fails: an item it does not understand is ignored, a missing time is the
//!   epoch (created) or the created time (updated);
//! - a label fits an item: key at most `META_KEY_MAX - 17` bytes, value at most
//!   `META_VALUE_MAX` bytes; larger ones are refused before anything changes.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_snapshots::Kind;
use lcfs::layer::{META_KEY_MAX, META_VALUE_MAX};
use lcfs::LayerState;

/// Marks a view (`KIND_VIEW`); active and committed snapshots need no mark.
pub const KIND: &[u8] = b"containerd.kind";
const KIND_VIEW: &[u8] = b"view";
pub const CREATED: &[u8] = b"containerd.created";
pub const UPDATED: &[u8] = b"containerd.updated";
/// Followed by the label's key.
pub const LABEL_PREFIX: &[u8] = b"containerd.label.";

/// A metadata item: key and value.
pub type Item = (Vec<u8>, Vec<u8>);

/// The snapshot facts decoded from a layer's items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub view: bool,
    pub created: Option<SystemTime>,
    pub updated: Option<SystemTime>,
    pub labels: HashMap<String, String>,
}

impl Stored {
    /// Reads the items of one layer (`Fs::layer_meta`); what it does not know it skips.
    pub fn decode(items: &[Item]) -> Stored {
        let mut stored = Stored::default();
        for (key, value) in items {
            if key == KIND {
                stored.view = value == KIND_VIEW;
            } else if key == CREATED {
                stored.created = parse_time(value);
            } else if key == UPDATED {
                stored.updated = parse_time(value);
            } else if let Some(label) = key.strip_prefix(LABEL_PREFIX) {
                if let (Ok(k), Ok(v)) = (std::str::from_utf8(label), std::str::from_utf8(value)) {
                    stored.labels.insert(k.to_string(), v.to_string());
                }
            }
        }
        stored
    }

    /// The snapshot's kind, the engine's state first (module doc).
    pub fn kind(&self, state: LayerState) -> Kind {
        match state {
            LayerState::Committed => Kind::Committed,
            LayerState::Writable if self.view => Kind::View,
            LayerState::Writable => Kind::Active,
        }
    }

    pub fn created(&self) -> SystemTime {
        self.created.unwrap_or(UNIX_EPOCH)
    }

    pub fn updated(&self) -> SystemTime {
        self.updated.unwrap_or_else(|| self.created())
    }
}

/// The items of a new snapshot: its kind mark, both times set to `now`, and its labels.
pub fn new_items(view: bool, now: SystemTime, labels: &HashMap<String, String>) -> Vec<Item> {
    let mut items = vec![
        (CREATED.to_vec(), time_value(now)),
        (UPDATED.to_vec(), time_value(now)),
    ];
    if view {
        items.push((KIND.to_vec(), KIND_VIEW.to_vec()));
    }
    items.extend(label_items(labels));
    items
}

/// One item per label.
pub fn label_items(labels: &HashMap<String, String>) -> impl Iterator<Item = Item> + '_ {
    labels
        .iter()
        .map(|(k, v)| (label_key(k), v.as_bytes().to_vec()))
}

/// The item key of label `key`.
pub fn label_key(key: &str) -> Vec<u8> {
    let mut out = LABEL_PREFIX.to_vec();
    out.extend_from_slice(key.as_bytes());
    out
}

/// Checks that every label fits an item; says which does not and why.
pub fn check_labels(labels: &HashMap<String, String>) -> Result<(), String> {
    let key_max = META_KEY_MAX - LABEL_PREFIX.len();
    for (k, v) in labels {
        if k.is_empty() {
            return Err("a label key is empty".to_string());
        }
        if k.len() > key_max {
            return Err(format!(
                "label key {:?}… is {} bytes; lcfs stores label keys of at most {key_max} bytes",
                prefix(k),
                k.len()
            ));
        }
        if v.len() > META_VALUE_MAX {
            return Err(format!(
                "the value of label {:?} is {} bytes; lcfs stores label values of at most \
                 {META_VALUE_MAX} bytes",
                prefix(k),
                v.len()
            ));
        }
    }
    Ok(())
}

/// At most 64 bytes of `s`, for messages.
fn prefix(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// `t` as an item value.
pub fn time_value(t: SystemTime) -> Vec<u8> {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos()).into_bytes()
}

fn parse_time(value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, nanos) = text.split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    let nanos: u32 = nanos.parse().ok()?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn new_items_decode_to_what_was_given() {
        let now = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let given = labels(&[("containerd.io/snapshot.ref", "sha256:1"), ("a", "")]);
        let stored = Stored::decode(&new_items(true, now, &given));
        assert!(stored.view);
        assert_eq!(stored.created, Some(now));
        assert_eq!(stored.updated, Some(now));
        assert_eq!(stored.labels, given);
        assert_eq!(stored.kind(LayerState::Writable), Kind::View);
        assert_eq!(stored.kind(LayerState::Committed), Kind::Committed);
    }

    #[test]
    fn a_layer_without_items_still_has_a_kind_and_times() {
        let stored = Stored::decode(&[]);
        assert_eq!(stored.kind(LayerState::Writable), Kind::Active);
        assert_eq!(stored.kind(LayerState::Committed), Kind::Committed);
        assert_eq!(stored.created(), UNIX_EPOCH);
        assert_eq!(stored.updated(), UNIX_EPOCH);
    }

    #[test]
    fn damaged_or_foreign_items_are_skipped() {
        let items = vec![
            (CREATED.to_vec(), b"yesterday".to_vec()),
            (UPDATED.to_vec(), b"1.1000000000".to_vec()),
            (KIND.to_vec(), b"sideways".to_vec()),
            (label_key("bad"), vec![0xff, 0xfe]),
            (b"other.tool".to_vec(), b"x".to_vec()),
            (label_key("good"), b"yes".to_vec()),
        ];
        let stored = Stored::decode(&items);
        assert_eq!(stored.created, None);
        assert_eq!(stored.updated, None);
        assert!(!stored.view);
        assert_eq!(stored.labels, labels(&[("good", "yes")]));
    }

    #[test]
    fn labels_that_do_not_fit_an_item_are_refused() {
        let key_max = META_KEY_MAX - LABEL_PREFIX.len();
        assert!(check_labels(&labels(&[(&"k".repeat(key_max), &"v".repeat(1024))])).is_ok());
        let long_key = "k".repeat(key_max + 1);
        let e = check_labels(&labels(&[(&long_key, "v")])).unwrap_err();
        assert!(e.contains("at most 238 bytes"), "{e}");
        let e = check_labels(&labels(&[("k", &"v".repeat(1025))])).unwrap_err();
        assert!(e.contains("1025 bytes"), "{e}");
        assert!(check_labels(&labels(&[("", "v")])).is_err());
    }
}
