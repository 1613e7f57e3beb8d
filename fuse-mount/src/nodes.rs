//! FUSE node ids: which layer and which inode a kernel node names.
//!
//! Layout of a node id (u64):
//!
//! ```text
//! bits 63..44  slot        20 bits: index in the slot table; slot 0 is the global namespace
//! bits 43..40  generation   4 bits: the slot's generation, low bits
//! bits 39..0   inode       40 bits: the engine's inode number in that layer
//! ```
//!
//! Slot 0 holds the mount's own nodes: 1 the mount root (FUSE's root id), 2 the `layers`
//! directory. A layer gets a slot when the kernel first looks it up; the full slot generation
//! goes to the kernel as the entry's generation, so a node of a reused slot is never taken for
//! an older one (the kernel drops a cached inode whose generation differs).
//!
//! Invariants:
//! - a slot is reused only once its layer is gone *and* the kernel has forgotten every node of
//!   it (its lookup count is 0), so a live node id always names the layer it was handed out for;
//! - each reused slot gets a new generation;
//! - the lookup count of a slot is the sum of the kernel's lookup counts of its nodes;
//! - a layer that is gone holds no slot once the lookups racing its removal have ended
//!   (`slot_for_lookup`; checked by the loom model at the end of this file).

use std::collections::HashMap;

use lcfs::{Ino, LayerId};

use crate::sync::Mutex;

/// Node id of the mount root.
pub const ROOT_NODE: u64 = 1;
/// Node id of the `layers` directory.
pub const LAYERS_NODE: u64 = 2;

const INO_BITS: u32 = 40;
const GEN_BITS: u32 = 4;
const SLOT_BITS: u32 = 20;
const INO_MASK: u64 = (1 << INO_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
/// Most slots (layers the kernel knows at once).
pub const SLOTS_MAX: u32 = (1 << SLOT_BITS) - 1;

/// What a node id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// The mount root.
    Root,
    /// The `layers` directory.
    Layers,
    /// Inode `ino` of the layer in slot `slot`.
    Inode { slot: u32, layer: LayerId, ino: Ino },
}

/// Why a node id names nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The id was never handed out or its slot moved on (ESTALE).
    Unknown,
    /// The layer was removed (ENOENT).
    Removed,
}

#[derive(Debug, Default)]
struct Slot {
    layer: Option<LayerId>,
    name: String,
    generation: u64,
    lookups: u64,
    /// The layer was removed; the slot waits for the kernel to forget its nodes.
    removed: bool,
    reads: u64,
}

/// The slot table.
#[derive(Debug, Default)]
pub struct Slots {
    slots: Vec<Slot>,
    by_layer: HashMap<LayerId, u32>,
    free: Vec<u32>,
}

/// The numbers of one layer's slot, for `lcfs stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotStats {
    pub name: String,
    pub reads: u64,
    pub lookups: u64,
}

impl Slots {
    /// The node id of `ino` in slot `slot`.
    pub fn node_id(&self, slot: u32, ino: Ino) -> Option<u64> {
        let s = self.slots.get(slot as usize)?;
        if ino.0 > INO_MASK {
            return None;
        }
        Some(
            (u64::from(slot) << (INO_BITS + GEN_BITS))
                | ((s.generation & GEN_MASK) << INO_BITS)
                | ino.0,
        )
    }

    /// The generation the kernel gets with nodes of `slot`.
    pub fn generation(&self, slot: u32) -> u64 {
        self.slots.get(slot as usize).map_or(0, |s| s.generation)
    }

    /// What node id `id` names.
    pub fn resolve(&self, id: u64) -> Result<Node, Stale> {
        match id {
            ROOT_NODE => return Ok(Node::Root),
            LAYERS_NODE => return Ok(Node::Layers),
            _ => {}
        }
        let slot = (id >> (INO_BITS + GEN_BITS)) as u32;
        let generation = (id >> INO_BITS) & GEN_MASK;
        let ino = Ino(id & INO_MASK);
        let s = self
            .slots
            .get(slot as usize)
            .filter(|_| slot != 0)
            .ok_or(Stale::Unknown)?;
        if s.generation & GEN_MASK != generation {
            return Err(Stale::Unknown);
        }
        match s.layer {
            Some(_) if s.removed => Err(Stale::Removed),
            Some(layer) => Ok(Node::Inode { slot, layer, ino }),
            None => Err(Stale::Unknown),
        }
    }

    /// The slot of `layer`, given one if it has none. `None` when every slot is taken.
    pub fn slot_of(&mut self, layer: LayerId, name: &str) -> Option<u32> {
        if let Some(&slot) = self.by_layer.get(&layer) {
            return Some(slot);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.slots.is_empty() {
                    self.slots.push(Slot::default());
                }
                let slot = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|s| *s <= SLOTS_MAX)?;
                self.slots.push(Slot::default());
                slot
            }
        };
        let s = self.slots.get_mut(slot as usize)?;
        s.layer = Some(layer);
        s.name = name.to_string();
        s.removed = false;
        s.lookups = 0;
        s.reads = 0;
        self.by_layer.insert(layer, slot);
        Some(slot)
    }

    /// The kernel got one more reference to a node of `slot`.
    pub fn remember(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.lookups += 1;
        }
    }

    /// The kernel dropped `count` references to node `id`.
    pub fn forget(&mut self, id: u64, count: u64) {
        if id == ROOT_NODE || id == LAYERS_NODE {
            return;
        }
        let slot = (id >> (INO_BITS + GEN_BITS)) as u32;
        let generation = (id >> INO_BITS) & GEN_MASK;
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if s.generation & GEN_MASK != generation || slot == 0 {
            return;
        }
        s.lookups = s.lookups.saturating_sub(count);
        if s.removed && s.lookups == 0 {
            self.release(slot);
        }
    }

    /// The layer of `slot` was removed: its nodes go stale, and the slot is free once the
    /// kernel has forgotten them.
    pub fn layer_removed(&mut self, layer: LayerId) {
        let Some(slot) = self.by_layer.remove(&layer) else {
            return;
        };
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        s.removed = true;
        if s.lookups == 0 {
            self.release(slot);
        }
    }

    fn release(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.layer = None;
            s.removed = false;
            s.generation += 1;
            self.free.push(slot);
        }
    }

    /// Counts a read in `slot`.
    pub fn count_read(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.reads += 1;
        }
    }

    /// Per-layer numbers of every layer that has a slot.
    pub fn stats(&self) -> HashMap<LayerId, SlotStats> {
        self.by_layer
            .iter()
            .filter_map(|(layer, slot)| {
                let s = self.slots.get(*slot as usize)?;
                Some((
                    *layer,
                    SlotStats {
                        name: s.name.clone(),
                        reads: s.reads,
                        lookups: s.lookups,
                    },
                ))
            })
            .collect()
    }
}

/// What `slot_for_lookup` found.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotLookup<A> {
    /// The layer's slot and its root's attributes (the lookup counted, if asked).
    Found(u32, A),
    /// Every slot is taken.
    Full,
    /// The layer was removed meanwhile.
    Gone,
}

/// The slot for a kernel lookup (or, with `remember` false, a listing) of layer `layer`,
/// found by name in the engine a moment ago, and its root's attributes from `root`. The
/// engine lock is not held across the steps, so the layer may be removed in between, and its
/// removal may run `layer_removed` (and release the slot) before or after this gives it one.
/// So: a `root` failing with an error `gone` calls the layer's absence gives the slot up again
/// as `layer_removed` would have; and the lookup is counted only if the slot still belongs to
/// the layer, in the same critical section that checks it, so a released slot never carries a
/// count the kernel holds (it would be reused, under the same generation, for another layer).
pub fn slot_for_lookup<A, E>(
    slots: &Mutex<Slots>,
    layer: LayerId,
    name: &str,
    root: impl FnOnce() -> Result<A, E>,
    gone: impl FnOnce(&E) -> bool,
    remember: bool,
) -> Result<SlotLookup<A>, E> {
    let lock = || slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(slot) = lock().slot_of(layer, name) else {
        return Ok(SlotLookup::Full);
    };
    let attr = match root() {
        Ok(attr) => attr,
        Err(e) if gone(&e) => {
            lock().layer_removed(layer);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let mut slots = lock();
    if slots.by_layer.get(&layer) != Some(&slot) {
        return Ok(SlotLookup::Gone);
    }
    if remember {
        slots.remember(slot);
    }
    Ok(SlotLookup::Found(slot, attr))
}

/// loom model of node-id reuse (`RUSTFLAGS="--cfg lcfs_loom" cargo test -p lcfs-fuse
/// --release --lib loom`): a kernel lookup of layer `a`'s directory races the removal of
/// `a` and a lookup of layer `b`. In every interleaving, while the kernel still holds the node
/// ids it got, `a`'s never names `b`'s layer (nor a live `a`), and `b`'s names `b`; once the
/// kernel has forgotten `a`'s, `a` holds no slot.
///
/// Found by this model (fixed above): the lookup counted itself on a slot the removal had
/// already released; the slot went to `b` under the same generation, so the kernel's node of
/// `a`'s directory showed `b`'s files.
#[cfg(all(test, lcfs_loom))]
mod loom_model {
    use super::*;
    use loom::sync::Arc;
    use std::collections::HashSet;

    /// The engine's layer table, as far as this protocol sees it.
    type Engine = Mutex<HashSet<LayerId>>;

    fn exists(engine: &Engine, layer: LayerId) -> Result<(), ()> {
        let layers = engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if layers.contains(&layer) {
            Ok(())
        } else {
            Err(())
        }
    }

    /// The kernel looks `layer` up: the engine finds it by name, then the slot; its node id.
    fn kernel_lookup(engine: &Engine, slots: &Mutex<Slots>, layer: LayerId) -> Option<u64> {
        exists(engine, layer).ok()?;
        let found = slot_for_lookup(slots, layer, "x", || exists(engine, layer), |()| true, true);
        let SlotLookup::Found(slot, ()) = found.ok()? else { return None };
        let s = slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.node_id(slot, Ino(1))
    }

    #[test]
    fn loom_a_lookup_racing_a_removal_never_hands_out_a_node_of_another_layer() {
        // Three threads of a dozen lock operations each: every interleaving with up to three
        // preemptions (loom's advice for bounded runs; the bug below needs one).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let (a, b) = (LayerId(1), LayerId(2));
            let engine: Arc<Engine> = Arc::new(Mutex::new(HashSet::from([a, b])));
            let slots: Arc<Mutex<Slots>> = Arc::new(Mutex::new(Slots::default()));
            let lookup_a = {
                let (engine, slots) = (Arc::clone(&engine), Arc::clone(&slots));
                loom::thread::spawn(move || kernel_lookup(&engine, &slots, a))
            };
            let remove_a = {
                let (engine, slots) = (Arc::clone(&engine), Arc::clone(&slots));
                loom::thread::spawn(move || {
                    engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&a);
                    let mut s = slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    s.layer_removed(a);
                })
            };
            let lookup_b = {
                let (engine, slots) = (Arc::clone(&engine), Arc::clone(&slots));
                loom::thread::spawn(move || kernel_lookup(&engine, &slots, b))
            };
            let node_a = lookup_a.join().unwrap_or(None);
            remove_a.join().unwrap_or(());
            let node_b = lookup_b.join().unwrap_or(None);
            let mut s = slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let id_b = node_b.unwrap_or(0);
            assert!(
                matches!(s.resolve(id_b), Ok(Node::Inode { layer, .. }) if layer == b),
                "b's node does not name b"
            );
            if let Some(id) = node_a {
                assert!(s.resolve(id).is_err(), "the removed layer's node still names a layer");
                s.forget(id, 1);
            }
            assert_eq!(s.by_layer.keys().copied().collect::<Vec<_>>(), [b], "slots after a went");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_round_trips_through_its_slot() {
        let mut slots = Slots::default();
        let slot = slots.slot_of(LayerId(7), "a").unwrap_or(0);
        let id = slots.node_id(slot, Ino(123_456)).unwrap_or(0);
        assert_eq!(
            slots.resolve(id),
            Ok(Node::Inode {
                slot,
                layer: LayerId(7),
                ino: Ino(123_456)
            })
        );
        assert_eq!(slots.resolve(ROOT_NODE), Ok(Node::Root));
        assert_eq!(slots.resolve(LAYERS_NODE), Ok(Node::Layers));
        assert_eq!(slots.resolve(id + (1 << 44)), Err(Stale::Unknown));
    }

    #[test]
    fn a_slot_is_reused_only_after_the_kernel_forgot_it_and_with_a_new_generation() {
        let mut slots = Slots::default();
        let slot = slots.slot_of(LayerId(1), "a").unwrap_or(0);
        let old = slots.node_id(slot, Ino(5)).unwrap_or(0);
        slots.remember(slot);
        slots.layer_removed(LayerId(1));
        assert_eq!(slots.resolve(old), Err(Stale::Removed));
        let other = slots.slot_of(LayerId(2), "b").unwrap_or(0);
        assert_ne!(other, slot, "the kernel still holds a node of the old slot");
        slots.forget(old, 1);
        let reused = slots.slot_of(LayerId(3), "c").unwrap_or(0);
        assert_eq!(reused, slot);
        assert_eq!(slots.generation(reused), 1);
        let new = slots.node_id(reused, Ino(5)).unwrap_or(0);
        assert_ne!(new, old);
        assert_eq!(slots.resolve(old), Err(Stale::Unknown));
        assert_eq!(
            slots.resolve(new),
            Ok(Node::Inode {
                slot,
                layer: LayerId(3),
                ino: Ino(5)
            })
        );
    }

    #[test]
    fn inode_numbers_past_40_bits_have_no_node_id() {
        let mut slots = Slots::default();
        let slot = slots.slot_of(LayerId(1), "a").unwrap_or(0);
        assert!(slots.node_id(slot, Ino(1 << 40)).is_none());
    }
}
