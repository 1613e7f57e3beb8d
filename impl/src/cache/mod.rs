//! Bounded caches keyed by block number: one for decoded tree nodes, one for data blocks.
//!
//! Because layers share blocks, a block read by many layers sits in a cache once.
//!
//! Invariants:
//! - a cache never holds more than its capacity of entries (least recently used goes first);
//! - an entry is the content of its block as last written or read: writers `put` the new
//!   content when they write a block, and freed blocks are `forget`-ten.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A least-recently-used cache of `Arc<V>` keyed by block number.
#[derive(Debug)]
pub struct Lru<V> {
    inner: Mutex<Inner<V>>,
}

#[derive(Debug)]
struct Inner<V> {
    capacity: usize,
    entries: HashMap<u64, (Arc<V>, u64)>,
    by_age: BTreeMap<u64, u64>,
    tick: u64,
    hits: u64,
    misses: u64,
}

/// Counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl<V> Lru<V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Lru {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                entries: HashMap::new(),
                by_age: BTreeMap::new(),
                tick: 0,
                hits: 0,
                misses: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // A poisoned cache is still a valid cache: every update below is a single step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `block`, refreshed as most recently used.
    pub fn get(&self, block: u64) -> Option<Arc<V>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let Some((value, age)) = inner.entries.get_mut(&block) else {
            inner.misses += 1;
            return None;
        };
        let old = std::mem::replace(age, tick);
        let value = Arc::clone(value);
        inner.by_age.remove(&old);
        inner.by_age.insert(tick, block);
        inner.hits += 1;
        Some(value)
    }

    /// Stores `value` as the content of `block`, evicting the least recently used beyond capacity.
    pub fn put(&self, block: u64, value: Arc<V>) {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, old)) = inner.entries.insert(block, (value, tick)) {
            inner.by_age.remove(&old);
        }
        inner.by_age.insert(tick, block);
        while inner.entries.len() > inner.capacity {
            let Some((_, victim)) = inner.by_age.pop_first() else { break };
            inner.entries.remove(&victim);
        }
    }

    /// Drops the entry for `block` (the block was freed).
    pub fn forget(&self, block: u64) {
        let mut inner = self.lock();
        if let Some((_, age)) = inner.entries.remove(&block) {
            inner.by_age.remove(&age);
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.by_age.clear();
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            entries: inner.entries.len(),
            capacity: inner.capacity,
            hits: inner.hits,
            misses: inner.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first_and_the_bound_holds() {
        let cache = Lru::new(2);
        cache.put(1, Arc::new("a"));
        cache.put(2, Arc::new("b"));
        assert!(cache.get(1).is_some());
        cache.put(3, Arc::new("c"));
        assert!(cache.get(2).is_none(), "2 was least recently used");
        assert!(cache.get(1).is_some() && cache.get(3).is_some());
        for i in 10..1000 {
            cache.put(i, Arc::new("x"));
        }
        assert_eq!(cache.stats().entries, 2);
        cache.forget(999);
        assert!(cache.get(999).is_none());
    }
}
