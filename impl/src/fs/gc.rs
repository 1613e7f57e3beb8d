//! Garbage collection: orphaned layers and unlinked-open leftovers (`lcfs gc`).
//!
//! A layer is **orphaned** when it is writable, has no children, nothing of it is open, no
//! operation of this mount is still creating it, and either
//! - it carries the *unfinished* marker: it was made by `create_layer_unfinished` (an import,
//!   an extract, anything that fills a layer in several steps) and `finish_layer` never ran,
//!   so the operation was cut short (a crash, a killed client); or
//! - its name is a runtime's temporary key, made for one operation and removed by the runtime
//!   when it ends: containerd's `extract-…` keys (the name, or its last part after a `%2F`, the
//!   escaped `/` of a namespaced key such as `default/3/extract-…`, starts with `extract-`), at
//!   least `GcOptions::temporary_age_min_sec` old, so an extract running now through another
//!   path is left alone.
//!
//! Committed layers and layers with children are never orphaned.
//!
//! The marker is the extended attribute `UNFINISHED_XATTR` on the layer's root directory, set
//! in the same checkpoint that creates the layer (so no crash leaves an unmarked half layer),
//! removed by `finish_layer`. Which layers are still being created by this mount is kept in
//! memory (`State::unfinished`): after a crash it is empty, so every marked layer is orphaned.

use std::collections::HashSet;

use super::{Fs, State};
use crate::error::{Error, Result};
use crate::ns;
use crate::types::{Ino, LayerId, LayerState, Timespec, XattrFlags};

/// The extended attribute that marks a layer whose creating operation has not finished; its
/// value says what the operation was (e.g. `import`). `trusted.` names are listed to root only.
pub const UNFINISHED_XATTR: &[u8] = b"trusted.lcfs.unfinished";

/// The prefix of containerd's temporary extract keys (the last part of a namespaced key).
const TEMPORARY_PREFIXES: [&str; 1] = ["extract-"];

/// Options of `Fs::gc_layers`.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// List what would go, remove nothing.
    pub dry_run: bool,
    /// A layer named like a runtime's temporary key must be at least this old (seconds).
    pub temporary_age_min_sec: i64,
    /// The time to measure ages against.
    pub now: Timespec,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions { dry_run: false, temporary_age_min_sec: 3600, now: Timespec::now() }
    }
}

/// A layer gc removed, or would remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanedLayer {
    pub id: LayerId,
    pub name: String,
    /// Why it is orphaned, for people.
    pub reason: String,
}

/// What `Fs::gc_layers` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Orphaned layers: removed, or with `dry_run` the ones that would be.
    pub layers: Vec<OrphanedLayer>,
    /// Writable layers whose unlinked-open leftovers were swept (none with `dry_run`).
    pub layers_swept: u64,
}

/// Whether `name` is a runtime's temporary key (layer names hold no `/`: a namespaced key
/// keeps its parts apart with `%2F`).
fn is_temporary_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let last = lower.rsplit("%2f").next().unwrap_or(&lower);
    TEMPORARY_PREFIXES.iter().any(|prefix| last.starts_with(prefix))
}

impl Fs {
    /// Creates a writable layer (as `create_layer`) marked unfinished: until `finish_layer`,
    /// `gc_layers` counts it orphaned once this mount has forgotten it (after a crash or a
    /// remount). `what` names the operation (`import`, `extract`), for the operator.
    pub fn create_layer_unfinished(
        &self,
        name: &str,
        parent: Option<&str>,
        what: &str,
    ) -> Result<LayerId> {
        let mut state = self.lock()?;
        let id = state.create_layer(name, parent)?;
        let marked = state.with_layer(id, true, |ctx| {
            let now = Timespec::now();
            ns::setxattr(ctx, Ino::ROOT, UNFINISHED_XATTR, what.as_bytes(), XattrFlags::Any, now)
        });
        if let Err(e) = marked {
            // Not durable yet: take the layer back so nothing unmarked remains.
            let _ = state.remove_layer(name);
            return Err(e);
        }
        state.unfinished.insert(id);
        state.checkpoint(false)?;
        Ok(id)
    }

    /// Ends the operation that created `name` with `create_layer_unfinished`: the marker goes
    /// (durable with the next checkpoint, at the latest the layer's commit).
    pub fn finish_layer(&self, name: &str) -> Result<()> {
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        state.with_layer(id, true, |ctx| {
            ns::removexattr(ctx, Ino::ROOT, UNFINISHED_XATTR, Timespec::now())
        })?;
        state.unfinished.remove(&id);
        Ok(())
    }

    /// What the creating operation of `name` was, if it has not finished.
    pub fn unfinished(&self, name: &str) -> Result<Option<String>> {
        let mut state = self.lock()?;
        let id = state.layer_id(name)?;
        state.marker(id)
    }

    /// Removes the orphaned layers (module doc), then deletes the orphans (inodes unlinked
    /// while open) no handle holds any more in every remaining writable layer. With
    /// `dry_run`, only lists the layers.
    pub fn gc_layers(&self, opts: &GcOptions) -> Result<GcReport> {
        let mut report = GcReport::default();
        {
            let mut state = self.lock()?;
            report.layers = state.orphaned_layers(opts)?;
            if !opts.dry_run && !report.layers.is_empty() {
                for layer in &report.layers {
                    state.remove_layer(&layer.name)?;
                }
                state.checkpoint(false)?;
            }
        }
        if !opts.dry_run {
            report.layers_swept = self.gc()?;
        }
        Ok(report)
    }

    /// Deletes the orphans (inodes unlinked while open, see `open.rs`) that no handle holds
    /// any more in every writable layer; returns how many layers it looked at.
    pub fn gc(&self) -> Result<u64> {
        let mut looked = 0;
        for info in self.layers()? {
            if info.state == LayerState::Writable {
                self.lock()?.settle_orphans(info.id).or_else(|e| match e {
                    Error::Busy(_) => Ok(()),
                    e => Err(e),
                })?;
                looked += 1;
            }
        }
        Ok(looked)
    }
}

impl State {
    /// The value of the unfinished marker of layer `id`, if it has one.
    fn marker(&mut self, id: LayerId) -> Result<Option<String>> {
        let value = self.with_layer(id, false, |ctx| {
            ns::getxattr(ctx, Ino::ROOT, UNFINISHED_XATTR)
        });
        match value {
            Ok(value) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
            Err(Error::NoData) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The layers `gc_layers` removes (module doc), sorted by name.
    fn orphaned_layers(&mut self, opts: &GcOptions) -> Result<Vec<OrphanedLayer>> {
        let open: HashSet<LayerId> = self.handles.open_layers();
        let mut out = Vec::new();
        for (id, name) in self.layer_names()? {
            let rec = self.open_layer(id)?.rec.clone();
            let busy = open.contains(&id) || self.unfinished.contains(&id);
            if rec.state != LayerState::Writable || rec.children > 0 || busy {
                continue;
            }
            let age = opts.now.sec.saturating_sub(rec.created_sec);
            let reason = match self.marker(id)? {
                Some(what) => format!("its creating operation ({what}) never finished"),
                None if is_temporary_name(&name) && age >= opts.temporary_age_min_sec => {
                    format!("a runtime's temporary layer left behind ({age} s old)")
                }
                None => continue,
            };
            out.push(OrphanedLayer { id, name, reason });
        }
        Ok(out)
    }
}

/// Keeps the `unfinished` set's type in one place.
pub(crate) type Unfinished = HashSet<LayerId>;

#[cfg(test)]
mod tests {
    //! The orphan rule, case by case: marked and interrupted (a crash: the Fs is dropped
    //! without unmount), marked and still running, finished, temporary names young and old,
    //! committed, open, and the dry run.
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use std::sync::Arc;

    use super::{GcOptions, UNFINISHED_XATTR};
    use crate::fs::{Fs, MkfsOptions, MountOptions};
    use crate::types::{FileType, Ino, Timespec};
    use crate::MemDevice;

    fn image() -> (Arc<MemDevice>, Fs) {
        let dev = Arc::new(MemDevice::new(4096));
        Fs::mkfs(dev.clone(), &MkfsOptions::default()).unwrap();
        let fs = Fs::mount(dev.clone(), &MountOptions::default()).unwrap();
        (dev, fs)
    }

    fn names(fs: &Fs, opts: &GcOptions) -> Vec<String> {
        fs.gc_layers(opts).unwrap().layers.into_iter().map(|l| l.name).collect()
    }

    fn dry() -> GcOptions {
        GcOptions { dry_run: true, ..GcOptions::default() }
    }

    #[test]
    fn an_interrupted_import_is_orphaned_after_a_crash() {
        let (dev, fs) = image();
        fs.create_layer("base", None).unwrap();
        fs.commit_layer("base").unwrap();
        let id = fs.create_layer_unfinished("import-1", Some("base"), "import").unwrap();
        let now = Timespec::now();
        let f = fs.mknod(id, Ino::ROOT, b"half", FileType::Regular, 0o644, 0, 0, 0, now).unwrap();
        fs.write(id, f.ino, 0, &[1u8; 10_000], now).unwrap();
        // Still running in this mount: not orphaned.
        assert!(names(&fs, &dry()).is_empty());
        fs.checkpoint().unwrap();
        drop(fs); // a crash: no unmount, no finish
        let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
        assert_eq!(fs.unfinished("import-1").unwrap().as_deref(), Some("import"));
        assert_eq!(names(&fs, &dry()), ["import-1"]);
        assert!(fs.layer("import-1").is_ok(), "a dry run removes nothing");
        let report = fs.gc_layers(&GcOptions::default()).unwrap();
        assert_eq!(report.layers.len(), 1);
        assert!(report.layers[0].reason.contains("import"));
        assert!(fs.layer("import-1").is_err());
        assert_eq!(fs.layer("base").unwrap().children, 0);
        fs.unmount().unwrap();
    }

    #[test]
    fn a_finished_layer_is_kept_and_loses_its_marker() {
        let (dev, fs) = image();
        let id = fs.create_layer_unfinished("done", None, "import").unwrap();
        fs.finish_layer("done").unwrap();
        assert!(fs.unfinished("done").unwrap().is_none());
        assert!(fs.listxattr(id, Ino::ROOT).unwrap().iter().all(|n| n != UNFINISHED_XATTR));
        fs.commit_layer("done").unwrap();
        drop(fs);
        let fs = Fs::mount(dev, &MountOptions::default()).unwrap();
        assert!(names(&fs, &dry()).is_empty());
        assert!(fs.gc_layers(&GcOptions::default()).unwrap().layers.is_empty());
    }

    #[test]
    fn temporary_names_go_once_old_enough_and_never_when_committed_or_open() {
        let (_dev, fs) = image();
        for name in ["default%2F3%2Fextract-123-abc sha256:1", "extract-9", "web", "my-extract-1"] {
            fs.create_layer(name, None).unwrap();
        }
        fs.create_layer("moby%2F5%2Fextract-77", None).unwrap();
        fs.commit_layer("moby%2F5%2Fextract-77").unwrap();
        let open = fs.create_layer("k8s%2F1%2Fextract-open", None).unwrap();
        fs.open(open, Ino::ROOT).unwrap();
        // Younger than the minimum age: kept.
        assert!(names(&fs, &dry()).is_empty());
        let old = GcOptions { temporary_age_min_sec: 0, ..dry() };
        assert_eq!(names(&fs, &old), ["default%2F3%2Fextract-123-abc sha256:1", "extract-9"]);
        fs.release(open, Ino::ROOT).unwrap();
        let all = GcOptions { temporary_age_min_sec: 0, ..GcOptions::default() };
        assert_eq!(names(&fs, &all).len(), 3);
        let left: Vec<String> = fs.layers().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(left, ["moby%2F5%2Fextract-77", "my-extract-1", "web"]);
    }
}
