//! The entries of a node in memory, packed: every key and value of a node in one byte buffer,
//! plus one small slot per entry (where its key starts, the key's and the value's lengths, and
//! what the entry points to: nothing for a leaf item, the child for an internal entry).
//!
//! Why: a node held as one `Vec` per key and per value costs one heap allocation per entry on
//! every decode and every copy-on-write clone, which dominated the time of layer operations and
//! of the layer diff. Packed, a node decodes and clones with two allocations whatever its size.
//!
//! Invariants:
//! - the buffer holds the entries' keys and values in entry order, each key followed by its
//!   value, back to back with no gap: entry `i` starts where entry `i - 1` ends, the first at 0,
//!   and the buffer ends where the last entry ends (so its length is the sum of the keys' and
//!   values' lengths, and a clone copies nothing dead);
//! - every key and value is at most `u16::MAX` bytes (callers bound them by `KEY_MAX` and
//!   `VALUE_MAX`), the whole buffer at most `u32::MAX` (a node is a block, or two before a
//!   split);
//! - entries are kept in the order they are inserted at: key order is the caller's concern
//!   (nodes keep it, `Node::check_invariants` and `Node::decode` check it).
//!
//! The encoding on disk does not depend on this representation (see `node.rs`).

use super::node::{Child, Item};
use super::NodeRef;

/// Where an entry lives in the buffer, and what it points to.
#[derive(Clone, Debug)]
struct Slot<T> {
    start: u32,
    key_len: u16,
    value_len: u16,
    link: T,
}

impl<T> Slot<T> {
    fn start(&self) -> usize {
        self.start as usize
    }

    fn key_end(&self) -> usize {
        self.start() + usize::from(self.key_len)
    }

    fn end(&self) -> usize {
        self.key_end() + usize::from(self.value_len)
    }

    fn size(&self) -> usize {
        usize::from(self.key_len) + usize::from(self.value_len)
    }
}

/// Entries of a node, packed (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct Packed<T> {
    bytes: Vec<u8>,
    slots: Vec<Slot<T>>,
}

/// The items of a leaf.
pub(crate) type Items = Packed<()>;
/// The separators and children of an internal node (values are always empty).
pub(crate) type Children = Packed<NodeRef>;

/// One entry, borrowed from its node.
#[derive(Debug)]
pub(crate) struct Entry<'a, T> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// The child of an internal entry (`()` for a leaf item).
    pub node: &'a T,
}

impl<T> Clone for Entry<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Entry<'_, T> {}

impl<T> Default for Packed<T> {
    fn default() -> Self {
        Packed::new()
    }
}

/// Moves the start of every slot in `slots` by `grow - shrink` bytes.
fn shift<T>(slots: &mut [Slot<T>], grow: usize, shrink: usize) {
    for slot in slots {
        slot.start = (slot.start() + grow - shrink) as u32;
    }
}

impl<T> Packed<T> {
    /// No entries.
    pub(crate) const fn new() -> Self {
        Packed { bytes: Vec::new(), slots: Vec::new() }
    }

    /// No entries, with room for `entries` entries of `bytes` bytes in all.
    pub(crate) fn with_capacity(entries: usize, bytes: usize) -> Self {
        Packed { bytes: Vec::with_capacity(bytes), slots: Vec::with_capacity(entries) }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes of all keys and values together.
    pub(crate) fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    fn key_of(&self, slot: &Slot<T>) -> &[u8] {
        self.bytes.get(slot.start()..slot.key_end()).unwrap_or_default()
    }

    fn entry<'a>(&'a self, slot: &'a Slot<T>) -> Entry<'a, T> {
        Entry {
            key: self.key_of(slot),
            value: self.bytes.get(slot.key_end()..slot.end()).unwrap_or_default(),
            node: &slot.link,
        }
    }

    /// Entry `i`.
    pub(crate) fn get(&self, i: usize) -> Option<Entry<'_, T>> {
        self.slots.get(i).map(|slot| self.entry(slot))
    }

    /// The first entry.
    pub(crate) fn first(&self) -> Option<Entry<'_, T>> {
        self.get(0)
    }

    /// The last entry.
    pub(crate) fn last(&self) -> Option<Entry<'_, T>> {
        self.slots.last().map(|slot| self.entry(slot))
    }

    /// The entries in order.
    pub(crate) fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = Entry<'_, T>> + ExactSizeIterator + '_ {
        self.slots.iter().map(|slot| self.entry(slot))
    }

    /// The index of the first entry whose key fails `pred` (keys must be partitioned by it).
    pub(crate) fn partition_point(&self, mut pred: impl FnMut(&[u8]) -> bool) -> usize {
        self.slots.partition_point(|slot| pred(self.key_of(slot)))
    }

    /// Binary search of `key` among keys in increasing order.
    pub(crate) fn binary_search(&self, key: &[u8]) -> Result<usize, usize> {
        self.slots.binary_search_by(|slot| self.key_of(slot).cmp(key))
    }

    /// Appends an entry.
    pub(crate) fn push(&mut self, key: &[u8], value: &[u8], link: T) {
        self.insert(self.len(), key, value, link);
    }

    /// Inserts an entry before entry `i` (at the end if `i` is the length; panics past it, like
    /// `Vec::insert`).
    pub(crate) fn insert(&mut self, i: usize, key: &[u8], value: &[u8], link: T) {
        assert!(i <= self.len(), "packed insert at {i} of {}", self.len());
        assert!(key.len() <= usize::from(u16::MAX) && value.len() <= usize::from(u16::MAX));
        let added = key.len() + value.len();
        assert!(self.bytes.len() + added <= u32::MAX as usize, "packed node too large");
        let at = self.slots.get(i).map_or(self.bytes.len(), Slot::start);
        if at == self.bytes.len() {
            self.bytes.extend_from_slice(key);
            self.bytes.extend_from_slice(value);
        } else {
            self.bytes.splice(at..at, key.iter().chain(value).copied());
            shift(self.slots.get_mut(i..).unwrap_or_default(), added, 0);
        }
        let slot = Slot {
            start: at as u32,
            key_len: key.len() as u16,
            value_len: value.len() as u16,
            link,
        };
        self.slots.insert(i, slot);
    }

    /// Removes entry `i` and returns its key, value and link (none if there is no entry `i`).
    pub(crate) fn remove(&mut self, i: usize) -> Option<(Vec<u8>, Vec<u8>, T)> {
        if i >= self.len() {
            return None;
        }
        let slot = self.slots.remove(i);
        let mut key: Vec<u8> = self.bytes.drain(slot.start()..slot.end()).collect();
        let value = key.split_off(usize::from(slot.key_len));
        shift(self.slots.get_mut(i..).unwrap_or_default(), 0, slot.size());
        Some((key, value, slot.link))
    }

    /// Removes the last entry.
    pub(crate) fn pop(&mut self) -> Option<(Vec<u8>, Vec<u8>, T)> {
        self.len().checked_sub(1).and_then(|i| self.remove(i))
    }

    /// Replaces the key (`key` true) or the value of entry `i` by `new`; returns the old one
    /// (none if there is no entry `i`).
    fn replace(&mut self, i: usize, key: bool, new: &[u8]) -> Option<Vec<u8>> {
        assert!(new.len() <= usize::from(u16::MAX));
        let slot = self.slots.get_mut(i)?;
        let range = if key { slot.start()..slot.key_end() } else { slot.key_end()..slot.end() };
        let old_len = range.len();
        assert!(self.bytes.len() - old_len + new.len() <= u32::MAX as usize);
        if key {
            slot.key_len = new.len() as u16;
        } else {
            slot.value_len = new.len() as u16;
        }
        let old: Vec<u8> = self.bytes.splice(range, new.iter().copied()).collect();
        shift(self.slots.get_mut(i + 1..).unwrap_or_default(), new.len(), old_len);
        Some(old)
    }

    /// Replaces the value of entry `i`; returns the old value.
    pub(crate) fn replace_value(&mut self, i: usize, value: &[u8]) -> Option<Vec<u8>> {
        self.replace(i, false, value)
    }

    /// Replaces the key of entry `i`; returns the old key.
    pub(crate) fn replace_key(&mut self, i: usize, key: &[u8]) -> Option<Vec<u8>> {
        self.replace(i, true, key)
    }

    /// Splits off the entries from `i` on (all of them if `i` is 0, none if past the end).
    pub(crate) fn split_off(&mut self, i: usize) -> Packed<T> {
        let i = i.min(self.len());
        let cut = self.slots.get(i).map_or(self.bytes.len(), Slot::start);
        let bytes = self.bytes.split_off(cut);
        let mut slots = self.slots.split_off(i);
        shift(&mut slots, 0, cut);
        Packed { bytes, slots }
    }

    /// Appends the entries of `other`.
    pub(crate) fn append(&mut self, other: Packed<T>) {
        let base = self.bytes.len();
        assert!(base + other.bytes.len() <= u32::MAX as usize, "packed node too large");
        let Packed { bytes, mut slots } = other;
        shift(&mut slots, base, 0);
        self.bytes.extend_from_slice(&bytes);
        self.slots.extend(slots);
    }

    /// The same keys and values, with the links `links` gives in order (as many as entries).
    pub(crate) fn relink<U>(&self, links: impl IntoIterator<Item = U>) -> Packed<U> {
        let slots = self
            .slots
            .iter()
            .zip(links)
            .map(|(s, link)| Slot {
                start: s.start,
                key_len: s.key_len,
                value_len: s.value_len,
                link,
            })
            .collect::<Vec<_>>();
        assert_eq!(slots.len(), self.slots.len(), "relink: too few links");
        Packed { bytes: self.bytes.clone(), slots }
    }
}

impl Children {
    /// Inserts `child` before entry `i`.
    pub(crate) fn insert_child(&mut self, i: usize, child: Child) {
        self.insert(i, &child.key, &[], child.node);
    }
}

impl FromIterator<Item> for Items {
    fn from_iter<I: IntoIterator<Item = Item>>(iter: I) -> Self {
        let mut items = Items::new();
        for item in iter {
            items.push(&item.key, &item.value, ());
        }
        items
    }
}

impl FromIterator<Child> for Children {
    fn from_iter<I: IntoIterator<Item = Child>>(iter: I) -> Self {
        let mut children = Children::new();
        for child in iter {
            children.push(&child.key, &[], child.node);
        }
        children
    }
}

#[cfg(test)]
mod tests {
    use super::Items;

    fn contents(items: &Items) -> Vec<(Vec<u8>, Vec<u8>)> {
        items.iter().map(|e| (e.key.to_vec(), e.value.to_vec())).collect()
    }

    #[test]
    fn edits_keep_entries_packed_and_in_place() {
        let mut items = Items::new();
        items.push(b"b", b"22", ());
        items.insert(0, b"a", b"1", ());
        items.insert(2, b"d", b"4444", ());
        items.insert(2, b"c", b"333", ());
        assert_eq!(items.bytes_len(), 4 + 1 + 2 + 3 + 4);
        assert_eq!(items.replace_value(1, b"x"), Some(b"22".to_vec()));
        assert_eq!(items.replace_key(0, b""), Some(b"a".to_vec()));
        assert_eq!(items.remove(2), Some((b"c".to_vec(), b"333".to_vec(), ())));
        assert_eq!(items.remove(9), None);
        let want = |v: &[(&[u8], &[u8])]| {
            v.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect::<Vec<_>>()
        };
        assert_eq!(contents(&items), want(&[(b"", b"1"), (b"b", b"x"), (b"d", b"4444")]));
        assert_eq!(items.bytes_len(), 1 + 2 + 5);
        let right = items.split_off(1);
        assert_eq!(contents(&items), want(&[(b"", b"1")]));
        assert_eq!(contents(&right), want(&[(b"b", b"x"), (b"d", b"4444")]));
        assert_eq!(right.binary_search(b"d"), Ok(1));
        assert_eq!(right.partition_point(|k| k < b"c".as_slice()), 1);
        items.append(right);
        assert_eq!(items.pop(), Some((b"d".to_vec(), b"4444".to_vec(), ())));
        assert_eq!(contents(&items), want(&[(b"", b"1"), (b"b", b"x")]));
        assert_eq!(items.bytes_len(), 3);
    }
}
