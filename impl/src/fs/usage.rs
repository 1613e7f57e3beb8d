//! What a layer costs: the blocks it owns (its private nodes and data), found by the same walk
//! as layer removal (`Tree::visit_owned`), so the cost is proportional to what the layer
//! wrote, never to what it inherited. Used by `lcfs stats` and the runtimes' Usage calls.

use super::Fs;
use crate::error::Result;
use crate::ns;
use crate::tree::Owned;

/// The private footprint of one layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerUsage {
    /// Tree node blocks the layer owns.
    pub node_blocks: u64,
    /// Data blocks the layer owns.
    pub data_blocks: u64,
    /// File data written since the last checkpoint (not yet in blocks).
    pub unwritten_bytes: u64,
}

impl LayerUsage {
    /// Bytes on the device that only this layer holds (or will, after the next checkpoint).
    pub fn private_bytes(&self) -> u64 {
        (self.node_blocks + self.data_blocks) * 4096 + self.unwritten_bytes
    }
}

impl Fs {
    /// The private footprint of the layer called `name`.
    pub fn layer_usage(&self, name: &str) -> Result<LayerUsage> {
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        state.open_layer(id)?;
        let super::State { store, open, .. } = &*state;
        let Some(layer) = open.get(&id) else {
            return Ok(LayerUsage::default());
        };
        let mut usage = LayerUsage {
            unwritten_bytes: layer.pages.bytes(),
            ..LayerUsage::default()
        };
        layer.tree.visit_owned(store, id, &mut |owned| {
            match owned {
                Owned::Node(_) => usage.node_blocks += 1,
                Owned::Item { key, value } => {
                    if let Some((_, len)) = ns::owned_extent(key, value, id) {
                        usage.data_blocks += len;
                    }
                }
            }
            Ok(())
        })?;
        Ok(usage)
    }

    /// Deletes the orphans (inodes unlinked while open, see `open.rs`) that no handle holds
    /// any more in every writable layer; returns how many layers it looked at.
    pub fn gc(&self) -> Result<u64> {
        let mut looked = 0;
        for info in self.layers()? {
            if info.state == crate::types::LayerState::Writable {
                self.lock()?.settle_orphans(info.id).or_else(|e| match e {
                    crate::error::Error::Busy(_) => Ok(()),
                    e => Err(e),
                })?;
                looked += 1;
            }
        }
        Ok(looked)
    }
}
