//! Open files: how many handles hold each inode, so that an inode unlinked while open stays
//! readable and writable until its last release (POSIX), as an orphan (`ns/orphan.rs`).
//!
//! Invariants:
//! - the handle counts live in memory only, under the engine lock, so the decision "open or
//!   not" and the unlink that depends on it are one atomic step;
//! - a committed layer never holds an orphan: committing a layer deletes its orphans that are
//!   no longer open and refuses (EBUSY) while one is still open;
//! - a clean unmount deletes every orphan first, so orphan items survive only a crash, and the
//!   mount after an unclean unmount sweeps them.

use std::collections::HashMap;

use super::{Fs, State};
use crate::error::{Error, Result};
use crate::ns;
use crate::types::{Ino, LayerId, LayerState, RenameFlags, Timespec};

/// Handle counts per `(layer, inode)`; an inode with no handle has no entry.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    counts: HashMap<(LayerId, Ino), u32>,
}

impl Handles {
    fn is_open(&self, layer: LayerId, ino: Ino) -> bool {
        self.counts.contains_key(&(layer, ino))
    }

    /// The layers with at least one open handle.
    pub(crate) fn open_layers(&self) -> std::collections::HashSet<LayerId> {
        self.counts.keys().map(|(layer, _)| *layer).collect()
    }
}

impl Fs {
    /// Notes one more handle on `ino` (open, opendir, create). The inode must exist.
    pub fn open(&self, layer: LayerId, ino: Ino) -> Result<()> {
        let mut state = self.lock()?;
        state.with_layer(layer, false, |ctx| ns::getattr(ctx, ino))?;
        *state.handles.counts.entry((layer, ino)).or_default() += 1;
        Ok(())
    }

    /// Drops one handle of `ino`; the last one deletes the inode if it is an orphan. A release
    /// of a layer removed meanwhile does nothing.
    pub fn release(&self, layer: LayerId, ino: Ino) -> Result<()> {
        let mut state = self.lock()?;
        let Some(count) = state.handles.counts.get_mut(&(layer, ino)) else {
            return Err(Error::InvalidArgument(
                "release of an inode that is not open",
            ));
        };
        *count -= 1;
        if *count > 0 {
            return Ok(());
        }
        state.handles.counts.remove(&(layer, ino));
        match state.open_layer(layer) {
            Err(Error::NotFound) => return Ok(()),
            Err(e) => return Err(e),
            Ok(open) if open.rec.state == LayerState::Committed => return Ok(()),
            Ok(_) => {}
        }
        state.with_layer(layer, true, |ctx| ns::release(ctx, ino))?;
        Ok(())
    }

    /// The number of handles on `ino`.
    pub fn open_count(&self, layer: LayerId, ino: Ino) -> u32 {
        self.lock()
            .map(|s| s.handles.counts.get(&(layer, ino)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The orphans of a layer: inodes with nlink 0 kept for open handles.
    pub fn orphans(&self, layer: LayerId) -> Result<Vec<Ino>> {
        self.with_layer(layer, false, |ctx| ns::orphans(ctx, None, usize::MAX))
    }

    /// `unlink`; an inode whose last link goes while it is open becomes an orphan.
    pub(super) fn unlink_keeping(
        &self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        now: Timespec,
    ) -> Result<()> {
        self.with_handles(layer, |ctx, open| {
            ns::unlink_open(ctx, dir, name, now, open)
        })
    }

    /// `rmdir`; an open directory becomes an orphan.
    pub(super) fn rmdir_keeping(
        &self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        now: Timespec,
    ) -> Result<()> {
        self.with_handles(layer, |ctx, open| ns::rmdir_open(ctx, dir, name, now, open))
    }

    /// `rename`; a replaced target that is open becomes an orphan.
    #[expect(clippy::too_many_arguments, reason = "mirrors renameat2(2)")]
    pub(super) fn rename_keeping(
        &self,
        layer: LayerId,
        dir: Ino,
        name: &[u8],
        newdir: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: Timespec,
    ) -> Result<()> {
        self.with_handles(layer, |ctx, open| {
            ns::rename_open(ctx, dir, name, newdir, newname, flags, now, open)
        })
    }

    /// Runs a modifying operation that needs to know which inodes of `layer` are open.
    fn with_handles<T>(
        &self,
        layer: LayerId,
        f: impl FnOnce(&mut crate::ctx::LayerCtx<'_>, ns::IsOpen<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.lock()?;
        let handles = std::mem::take(&mut state.handles);
        let is_open = |ino: Ino| handles.is_open(layer, ino);
        let out = state.with_layer(layer, true, |ctx| f(ctx, &is_open));
        state.handles = handles;
        let out = out?;
        state.checkpoint_if_dirty_limit()?;
        Ok(out)
    }

    /// Deletes the orphans of every writable layer that are not open (mount after a crash).
    pub(super) fn sweep_orphans(&self) -> Result<()> {
        for info in self.layers()? {
            if info.state == LayerState::Writable {
                let mut state = self.lock()?;
                state.settle_orphans(info.id)?;
            }
        }
        Ok(())
    }
}

impl State {
    /// Deletes the orphans of layer `id` that are not open; EBUSY if one is still open (the
    /// layer is about to be committed).
    pub(crate) fn settle_orphans(&mut self, id: LayerId) -> Result<()> {
        let handles = std::mem::take(&mut self.handles);
        let is_open = |ino: Ino| handles.is_open(id, ino);
        let out = self.with_layer(id, true, |ctx| ns::sweep(ctx, &is_open));
        self.handles = handles;
        match out? {
            (_, 0) => Ok(()),
            _ => Err(Error::Busy("a file unlinked in the layer is still open")),
        }
    }

    /// Forgets every handle and deletes every orphan (clean unmount).
    pub(crate) fn release_all(&mut self) -> Result<()> {
        let handles = std::mem::take(&mut self.handles);
        let mut layers: Vec<LayerId> = handles.counts.keys().map(|(l, _)| *l).collect();
        layers.sort_unstable();
        layers.dedup();
        for layer in layers {
            match self.open_layer(layer) {
                Ok(open) if open.rec.state == LayerState::Writable => self.settle_orphans(layer)?,
                Ok(_) | Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
