//! Bounded caches keyed by block number: one for decoded tree nodes, one for data blocks.
//!
//! Because layers share blocks, a block read by many layers sits in a cache once.
//!
//! Invariants:
//! - a cache never holds more than its capacity of entries (least recently used goes first);
//!   `index` names every slot of `slots` once, and the recency list (`newer`/`older` links,
//!   `newest` to `oldest`) runs through every slot once (`check_invariants`);
//! - an entry is the content of its block as last written or read: writers `put` the new
//!   content when they write a block, and freed blocks are `forget`-ten;
//! - a reader that missed and loaded a block itself (`get_or_load`) caches what it loaded only
//!   if no `put`, `forget` or `clear` happened since its miss: a write that lands between the
//!   miss and the fill would otherwise be shadowed by the older content the reader loaded.
//!   Any such change counts (one epoch counter for the whole cache), which keeps memory
//!   bounded at the price of a few fills skipped. Modelled with loom (`loom_models` below).
//! - an entry handed out stays valid for its holder after eviction (`Arc`).
//!
//! Why a list and not an ordered map of ages: every tree node a lookup reads is a hit here, so a
//! hit must cost the same in a cache of 20 entries and in one of 16,384. Moving an entry to the
//! front of a list is a few stores; re-keying it in a `BTreeMap` of ages walked a tree whose
//! depth and cold cache lines grew with the cache (a third of a layer diff's time in a full
//! cache, docs/benchmarks.md "Layer diff").

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::sync::{Mutex, MutexGuard};

/// No slot (the end of the recency list).
const NIL: usize = usize::MAX;

/// A least-recently-used cache of `Arc<V>` keyed by block number.
#[derive(Debug)]
pub struct Lru<V> {
    inner: Mutex<Inner<V>>,
}

/// One cached block and its neighbours in recency order.
#[derive(Debug)]
struct Slot<V> {
    block: u64,
    value: Arc<V>,
    /// The slot used just after this one (`NIL`: this is the newest).
    newer: usize,
    /// The slot used just before this one (`NIL`: this is the oldest).
    older: usize,
}

#[derive(Debug)]
struct Inner<V> {
    capacity: usize,
    /// Block number to its slot.
    index: HashMap<u64, usize, BuildHasherDefault<BlockHasher>>,
    /// The entries, dense (a removal moves the last slot into the hole).
    slots: Vec<Slot<V>>,
    newest: usize,
    oldest: usize,
    /// Bumped by every change of content (`put`, `forget`, `clear`), not by fills.
    epoch: u64,
    hits: u64,
    misses: u64,
}

/// Hashes a block number with one multiplication (Fibonacci hashing, high half folded into the
/// low one): block numbers come from the allocator, and SipHash cost as much as the rest of a
/// hit.
#[derive(Default)]
struct BlockHasher(u64);

impl Hasher for BlockHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

/// Counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

#[expect(
    clippy::indexing_slicing,
    reason = "slot numbers come from `index` and the list links, which every method keeps \
              within `slots` (check_invariants)"
)]
impl<V> Inner<V> {
    /// Takes slot `i` out of the recency list (it stays in `slots`).
    fn unlink(&mut self, i: usize) {
        let (newer, older) = (self.slots[i].newer, self.slots[i].older);
        if newer == NIL {
            self.newest = older;
        } else {
            self.slots[newer].older = older;
        }
        if older == NIL {
            self.oldest = newer;
        } else {
            self.slots[older].newer = newer;
        }
    }

    /// Puts slot `i` (out of the list) at its newest end.
    fn push_newest(&mut self, i: usize) {
        self.slots[i].newer = NIL;
        self.slots[i].older = self.newest;
        if self.newest == NIL {
            self.oldest = i;
        } else {
            self.slots[self.newest].newer = i;
        }
        self.newest = i;
    }

    /// Marks slot `i` as the most recently used.
    fn touch(&mut self, i: usize) {
        if self.newest != i {
            self.unlink(i);
            self.push_newest(i);
        }
    }

    /// Drops slot `i`; the last slot moves into its place.
    fn remove_slot(&mut self, i: usize) {
        self.unlink(i);
        let gone = self.slots.swap_remove(i);
        self.index.remove(&gone.block);
        if i == self.slots.len() {
            return;
        }
        // The slot that was last now sits at `i`: repoint whatever named it.
        let (block, newer, older) = (self.slots[i].block, self.slots[i].newer, self.slots[i].older);
        self.index.insert(block, i);
        if newer == NIL {
            self.newest = i;
        } else {
            self.slots[newer].older = i;
        }
        if older == NIL {
            self.oldest = i;
        } else {
            self.slots[older].newer = i;
        }
    }

    /// The entry for `block`, refreshed as most recently used; counts the hit or miss.
    fn lookup(&mut self, block: u64) -> Option<Arc<V>> {
        let Some(&i) = self.index.get(&block) else {
            self.misses += 1;
            return None;
        };
        self.touch(i);
        self.hits += 1;
        Some(Arc::clone(&self.slots[i].value))
    }

    /// Stores `value` for `block` as most recently used and evicts beyond capacity.
    fn insert(&mut self, block: u64, value: Arc<V>) {
        if let Some(&i) = self.index.get(&block) {
            self.slots[i].value = value;
            self.touch(i);
            return;
        }
        let i = self.slots.len();
        self.slots.push(Slot { block, value, newer: NIL, older: NIL });
        self.index.insert(block, i);
        self.push_newest(i);
        while self.slots.len() > self.capacity && self.oldest != NIL {
            self.remove_slot(self.oldest);
        }
    }
}

impl<V> Lru<V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Lru {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                index: HashMap::default(),
                slots: Vec::new(),
                newest: NIL,
                oldest: NIL,
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
        if let Some(&i) = inner.index.get(&block) {
            inner.remove_slot(i);
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.index.clear();
        inner.slots.clear();
        inner.newest = NIL;
        inner.oldest = NIL;
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            entries: inner.slots.len(),
            capacity: inner.capacity,
            hits: inner.hits,
            misses: inner.misses,
        }
    }

    /// Asserts the invariants: within capacity, `index` names each slot once, and the recency
    /// list runs through every slot once, its links agreeing in both directions.
    pub fn check_invariants(&self) {
        let inner = self.lock();
        let len = inner.slots.len();
        assert!(len <= inner.capacity, "{len} entries");
        assert_eq!(inner.index.len(), len, "index and slots");
        for (block, &i) in &inner.index {
            assert_eq!(inner.slots.get(i).map(|s| s.block), Some(*block), "block {block} at {i}");
        }
        let (mut at, mut newer, mut walked) = (inner.newest, NIL, 0usize);
        while at != NIL {
            assert!(walked < len, "the recency list loops");
            let slot = inner.slots.get(at);
            assert_eq!(slot.map(|s| s.newer), Some(newer), "slot {at} links back wrong");
            (newer, at, walked) = (at, slot.map_or(NIL, |s| s.older), walked + 1);
        }
        assert_eq!(walked, len, "the recency list misses slots");
        assert_eq!(inner.oldest, newer, "the oldest end");
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

    /// Random gets, puts and forgets against a list kept in recency order by hand: the same
    /// entries, evicted in the same order. Replayable: the seed is printed.
    #[test]
    fn random_operations_match_a_recency_list() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        println!("seed {seed}");
        let mut state = seed;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let cache = Lru::new(8);
        // Oldest first.
        let mut model: Vec<(u64, u64)> = Vec::new();
        for step in 0..20_000u64 {
            let block = next(24);
            match next(3) {
                0 => {
                    let got = cache.get(block).map(|v| *v);
                    let at = model.iter().position(|(b, _)| *b == block);
                    let want = at.and_then(|at| model.get(at)).map(|e| e.1);
                    assert_eq!(got, want, "seed {seed} step {step}");
                    if let Some(at) = at {
                        let entry = model.remove(at);
                        model.push(entry);
                    }
                }
                1 => {
                    cache.put(block, Arc::new(step));
                    model.retain(|(b, _)| *b != block);
                    model.push((block, step));
                    if model.len() > 8 {
                        model.remove(0);
                    }
                }
                _ => {
                    cache.forget(block);
                    model.retain(|(b, _)| *b != block);
                }
            }
            assert_eq!(cache.stats().entries, model.len(), "seed {seed} step {step}");
            if step % 97 == 0 {
                cache.check_invariants();
            }
        }
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
