//! Bounded caches keyed by block number: one for decoded tree nodes, one for data blocks.
//!
//! Because layers share blocks, a block read by many layers sits in a cache once.
//!
//! Invariants:
//! - a cache never holds more than its capacity of entries (least recently used goes first);
//!   `entries` and `by_age` always describe the same set (`check_invariants`);
//! - an entry is the content of its block as last written or read: writers `put` the new
//!   content when they write a block, and freed blocks are `forget`-ten;
//! - a reader that missed and loaded a block itself (`get_or_load`) caches what it loaded only
//!   if no `put`, `forget` or `clear` happened since its miss: a write that lands between the
//!   miss and the fill would otherwise be shadowed by the older content the reader loaded.
//!   Any such change counts (one epoch counter for the whole cache), which keeps memory
//!   bounded at the price of a few fills skipped. Modelled with loom (`loom_models` below).
//! - an entry handed out stays valid for its holder after eviction (`Arc`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::sync::{Mutex, MutexGuard};

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
    /// Bumped by every change of content (`put`, `forget`, `clear`), not by fills.
    epoch: u64,
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

impl<V> Inner<V> {
    /// The entry for `block`, refreshed as most recently used; counts the hit or miss.
    fn lookup(&mut self, block: u64) -> Option<Arc<V>> {
        self.tick += 1;
        let tick = self.tick;
        let Some((value, age)) = self.entries.get_mut(&block) else {
            self.misses += 1;
            return None;
        };
        let old = std::mem::replace(age, tick);
        let value = Arc::clone(value);
        self.by_age.remove(&old);
        self.by_age.insert(tick, block);
        self.hits += 1;
        Some(value)
    }

    /// Stores `value` for `block` as most recently used and evicts beyond capacity.
    fn insert(&mut self, block: u64, value: Arc<V>) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, old)) = self.entries.insert(block, (value, tick)) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(tick, block);
        while self.entries.len() > self.capacity {
            let Some((_, victim)) = self.by_age.pop_first() else { break };
            self.entries.remove(&victim);
        }
    }
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
                epoch: 0,
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
        self.lock().lookup(block)
    }

    /// The entry for `block`; on a miss, `load()`'s value, which is cached unless the cache's
    /// content changed while `load` ran (then a concurrent writer may have put newer content
    /// that `load` did not see). `load` runs without the cache's lock.
    pub fn get_or_load<E>(
        &self,
        block: u64,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let epoch = {
            let mut inner = self.lock();
            if let Some(value) = inner.lookup(block) {
                return Ok(value);
            }
            inner.epoch
        };
        let value = Arc::new(load()?);
        let mut inner = self.lock();
        if inner.epoch == epoch {
            inner.insert(block, Arc::clone(&value));
        }
        Ok(value)
    }

    /// Stores `value` as the content of `block`, evicting the least recently used beyond capacity.
    pub fn put(&self, block: u64, value: Arc<V>) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.insert(block, value);
    }

    /// Drops the entry for `block` (the block was freed).
    pub fn forget(&self, block: u64) {
        let mut inner = self.lock();
        inner.epoch += 1;
        if let Some((_, age)) = inner.entries.remove(&block) {
            inner.by_age.remove(&age);
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
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

    /// Asserts the invariants: within capacity, and `entries` and `by_age` describe the same
    /// entries with the same ages.
    pub fn check_invariants(&self) {
        let inner = self.lock();
        assert!(inner.entries.len() <= inner.capacity, "{} entries", inner.entries.len());
        assert_eq!(inner.entries.len(), inner.by_age.len(), "entries and ages");
        for (age, block) in &inner.by_age {
            let entry_age = inner.entries.get(block).map(|(_, age)| *age);
            assert_eq!(entry_age, Some(*age), "block {block} listed at age {age}");
            assert!(*age <= inner.tick, "age {age} after tick {}", inner.tick);
        }
    }
}

#[cfg(all(test, not(loom)))]
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
        cache.check_invariants();
    }

    #[test]
    fn a_fill_is_cached_unless_the_content_changed_while_loading() {
        let cache = Lru::new(4);
        let loaded = cache.get_or_load(1, || Ok::<_, ()>("disk")).unwrap();
        assert_eq!(*loaded, "disk");
        assert_eq!(cache.get(1).as_deref(), Some(&"disk"), "a quiet fill is cached");
        let hit = cache.get_or_load(1, || Err(())).unwrap();
        assert_eq!(*hit, "disk", "a hit does not load");
        // A writer puts block 2's new content while a reader is loading the old one.
        let stale = cache
            .get_or_load(2, || {
                cache.put(2, Arc::new("new"));
                Ok::<_, ()>("old")
            })
            .unwrap();
        assert_eq!(*stale, "old", "the reader gets what it loaded");
        assert_eq!(cache.get(2).as_deref(), Some(&"new"), "but the cache keeps the write");
        assert!(cache.get_or_load(3, || Err::<&str, _>("io")).is_err());
        assert!(cache.get(3).is_none(), "a failed load caches nothing");
        cache.check_invariants();
    }
}

/// Loom models of the cache: every interleaving of readers that miss and fill, writers that
/// put new content, and eviction, on the real `Lru`.
#[cfg(all(test, loom))]
mod loom_models {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use loom::thread;

    /// A one-block "device" whose content is a version number, behind its own lock.
    type Device = std::sync::Arc<Mutex<u64>>;

    /// A reader misses block 1 and fills it from the device while a writer writes version 2 to
    /// the device and puts it in the cache (the store's write path). Whatever the
    /// interleaving, the reader sees version 1 or 2, and afterwards the cache holds no
    /// version older than the device's.
    #[test]
    fn loom_a_fill_never_shadows_a_concurrent_write() {
        loom::model(|| {
            let cache = std::sync::Arc::new(Lru::<u64>::new(2));
            let device: Device = std::sync::Arc::new(Mutex::new(1));
            let reader = {
                let (cache, device) = (cache.clone(), device.clone());
                thread::spawn(move || {
                    let seen = cache.get_or_load(1, || Ok::<_, ()>(*device.lock().unwrap()));
                    *seen.unwrap()
                })
            };
            cache.put(1, Arc::new(2));
            *device.lock().unwrap() = 2;
            let seen = reader.join().unwrap();
            assert!(seen == 1 || seen == 2, "the reader saw version {seen}");
            let cached = cache.get(1).map(|v| *v);
            assert!(cached.is_none() || cached == Some(2), "cache holds stale {cached:?}");
            cache.check_invariants();
        });
    }

    /// Two threads fill and put different blocks into a cache of one entry while a third
    /// holds an entry it got before; eviction keeps the bound and the two maps consistent, and
    /// an evicted entry stays readable by whoever holds it.
    #[test]
    fn loom_eviction_keeps_the_bound_and_held_entries() {
        loom::model(|| {
            let cache = std::sync::Arc::new(Lru::<u64>::new(1));
            cache.put(7, Arc::new(70));
            let held = cache.get(7).unwrap();
            let threads: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|block| {
                    let cache = cache.clone();
                    thread::spawn(move || {
                        let got = cache.get_or_load(block, || Ok::<_, ()>(block * 10)).unwrap();
                        assert_eq!(*got, block * 10);
                        cache.put(block + 100, Arc::new(block));
                        cache.check_invariants();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(*held, 70, "an evicted entry stays valid for its holder");
            assert!(cache.stats().entries <= 1);
            cache.check_invariants();
        });
    }
}
