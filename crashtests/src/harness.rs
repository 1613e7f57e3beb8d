//! `Harness`: one model and one engine side by side. Each `Call` runs on both; the results must
//! be equal (values, or errnos for errors), else the step fails with a description. `verify`
//! walks every layer of both and compares everything.
//!
//! Invariants:
//! - the model and the engine receive the same calls with the same `now`, in the same order;
//! - a step that fails leaves the harness unusable (the test stops at the first disagreement);
//! - the engine is always mounted between steps; `remount` and `finish` go through a clean
//!   unmount, and `finish` also runs fsck on the unmounted image.

use std::sync::Arc;

use lcfs::{BlockDevice, Fs, MkfsOptions, MountOptions};
use lcfs_model::{Attr, DirEntry, Errno, LayerId, LayerInfo, Model, Timespec};

use crate::compare::diff_layer;
use crate::convert;
use crate::ops::{populate_calls, populate_write, Call, GID, UID};
use crate::walk;

/// What an operation returned, in a form both sides produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Unit,
    Layer(LayerId),
    /// The layer table after a layer operation.
    Layers(Vec<LayerInfo>),
    Attr(Attr),
    Count(u32),
    Bytes(Vec<u8>),
    /// getattr, then as the type allows: the whole listing, the target; and every xattr.
    Inspect {
        attr: Attr,
        listing: Option<Result<Vec<DirEntry>, Errno>>,
        target: Option<Result<Vec<u8>, Errno>>,
        xattrs: Vec<(Vec<u8>, XattrValue)>,
    },
}

/// A `getxattr` result.
pub type XattrValue = Result<Vec<u8>, Errno>;

/// The result of one call on one side.
pub type Outcome = Result<Value, Errno>;

/// A model and an engine over one device.
pub struct Harness {
    model: Model,
    fs: Option<Fs>,
    dev: Arc<dyn BlockDevice>,
    mount_options: MountOptions,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("model", &self.model).finish_non_exhaustive()
    }
}

impl Harness {
    /// Formats `dev`, mounts it, and starts from an empty model.
    pub fn new(dev: Arc<dyn BlockDevice>, mount_options: MountOptions) -> Result<Self, String> {
        Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).map_err(|e| format!("mkfs: {e}"))?;
        let fs = Fs::mount(Arc::clone(&dev), &mount_options).map_err(|e| format!("mount: {e}"))?;
        Ok(Harness { model: Model::new(), fs: Some(fs), dev, mount_options })
    }

    /// The model's current state.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The mounted engine.
    pub fn fs(&self) -> &Fs {
        self.fs.as_ref().expect("the engine is mounted between steps")
    }

    /// Runs `call` at time `now` on both sides; `Err` describes a disagreement.
    pub fn step(&mut self, call: &Call, now: Timespec) -> Result<(), String> {
        if let Call::Populate { layer, dir, count } = *call {
            for index in 0..count {
                let ino = self.model.next_ino();
                self.step(&populate_calls(layer, dir, index), now)?;
                if self.model.next_ino() != ino {
                    self.step(&populate_write(layer, ino, index), now)?;
                }
            }
            return Ok(());
        }
        let expected = run_model(&mut self.model, call, now);
        let got = match call {
            Call::Remount => self.remount().map(|()| Ok(Value::Unit))?,
            Call::Verify => self.verify().map(|()| Ok(Value::Unit))?,
            _ => run_engine(self.fs(), call, now),
        };
        if expected != got {
            return Err(format!(
                "{} at {now:?}:\n  model:  {}\n  engine: {}",
                readable(&format!("{call:?}")),
                short(&expected),
                short(&got)
            ));
        }
        Ok(())
    }

    /// Compares every layer of the model and the engine, and the `statfs` fields the model
    /// fills (block size and longest name).
    pub fn verify(&self) -> Result<(), String> {
        compare_all(&self.model, self.fs())
    }

    /// Unmounts cleanly and mounts again over the same device, then compares everything.
    pub fn remount(&mut self) -> Result<(), String> {
        let fs = self.fs.take().expect("the engine is mounted between steps");
        fs.unmount().map_err(|e| format!("unmount: {e}"))?;
        let fs = Fs::mount(Arc::clone(&self.dev), &self.mount_options)
            .map_err(|e| format!("mount after a clean unmount: {e}"))?;
        self.fs = Some(fs);
        self.verify().map_err(|e| format!("after a clean remount: {e}"))
    }

    /// The end of a case: compare, unmount, fsck, mount again and compare.
    pub fn finish(mut self) -> Result<(), String> {
        self.verify()?;
        let fs = self.fs.take().expect("the engine is mounted between steps");
        fs.unmount().map_err(|e| format!("unmount: {e}"))?;
        let report = lcfs::fsck::check(Arc::clone(&self.dev)).map_err(|e| format!("fsck: {e}"))?;
        if !report.is_clean() {
            return Err(format!("fsck after a clean unmount: {report}"));
        }
        self.fs = Some(
            Fs::mount(Arc::clone(&self.dev), &self.mount_options)
                .map_err(|e| format!("mount after fsck: {e}"))?,
        );
        self.verify().map_err(|e| format!("after the last remount: {e}"))?;
        let fs = self.fs.take().expect("mounted just above");
        fs.unmount().map_err(|e| format!("last unmount: {e}"))
    }
}

/// Compares every layer of `model` and `fs` (layer table, then each layer walked whole), and
/// the `statfs` fields the model fills (block size and longest name).
pub fn compare_all(model: &Model, fs: &Fs) -> Result<(), String> {
    let (model_statfs, engine_statfs) = (model.statfs(), fs.statfs());
    if (model_statfs.block_size, model_statfs.name_max)
        != (engine_statfs.block_size, engine_statfs.name_max)
    {
        return Err(format!("statfs: model {model_statfs:?}, engine {engine_statfs:?}"));
    }
    let engine_layers = fs.layers().map_err(|e| format!("layers: {e}"))?;
    let engine_layers: Vec<LayerInfo> =
        engine_layers.into_iter().map(convert::layer_info_back).collect();
    let model_layers = model.layers();
    if engine_layers != model_layers {
        return Err(format!(
            "layer tables differ:\n  model:  {model_layers:?}\n  engine: {engine_layers:?}"
        ));
    }
    for info in &model_layers {
        let expected = model.dump_layer(info.id).map_err(|e| format!("{e}"))?;
        let got = walk::dump_layer(fs, info, Some(&expected))
            .map_err(|e| format!("walking layer {:?} of the engine: {e}", info.name))?;
        if let Some(diff) = diff_layer(&expected, &got) {
            return Err(diff);
        }
    }
    Ok(())
}

/// `debug` (a `Debug` rendering) with each list of byte values shown as a string when it is
/// short printable ASCII, and as its length and first bytes when it is long.
pub fn readable(debug: &str) -> String {
    let mut out = String::new();
    let mut rest = debug;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']').map(|c| open + c) else { break };
        let inner = &rest[open + 1..close];
        let bytes: Option<Vec<u8>> = inner.split(", ").map(|n| n.parse::<u8>().ok()).collect();
        match bytes {
            Some(bytes) if bytes.len() <= 40 && bytes.iter().all(|b| b.is_ascii_graphic()) => {
                out.push_str(&format!("b{:?}", String::from_utf8_lossy(&bytes)))
            }
            Some(bytes) if bytes.len() > 40 => {
                out.push_str(&format!("<{} bytes: {:?}..>", bytes.len(), &bytes[..8]))
            }
            _ => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A result for messages, with long byte strings cut.
pub fn short(outcome: &Outcome) -> String {
    match outcome {
        Ok(Value::Bytes(bytes)) if bytes.len() > 32 => {
            let nonzero = bytes.iter().filter(|b| **b != 0).count();
            format!("Ok({} bytes, {nonzero} non-zero, first {:?})", bytes.len(), &bytes[..16])
        }
        other => format!("{other:?}"),
    }
}

/// Runs `call` on the model.
pub fn run_model(m: &mut Model, call: &Call, now: Timespec) -> Outcome {
    let unit = |r: Result<(), Errno>| r.map(|()| Value::Unit);
    match call.clone() {
        Call::CreateLayer { name, parent } => {
            m.create_layer(&name, parent.as_deref()).map(|_| Value::Layers(m.layers()))
        }
        Call::CommitLayer { name } => m.commit_layer(&name).map(|()| Value::Layers(m.layers())),
        Call::RemoveLayer { name } => m.remove_layer(&name).map(|()| Value::Layers(m.layers())),
        Call::Mknod { layer, dir, name, kind, perm, rdev } => {
            m.mknod(layer, dir, &name, kind, perm, rdev, UID, GID, now).map(Value::Attr)
        }
        Call::Mkdir { layer, dir, name, perm } => {
            m.mkdir(layer, dir, &name, perm, UID, GID, now).map(Value::Attr)
        }
        Call::Symlink { layer, dir, name, target } => {
            m.symlink(layer, dir, &name, &target, UID, GID, now).map(Value::Attr)
        }
        Call::Link { layer, ino, dir, name } => {
            m.link(layer, ino, dir, &name, now).map(Value::Attr)
        }
        Call::Unlink { layer, dir, name } => unit(m.unlink(layer, dir, &name, now)),
        Call::Rmdir { layer, dir, name } => unit(m.rmdir(layer, dir, &name, now)),
        Call::Rename { layer, dir, name, newdir, newname, flags } => {
            unit(m.rename(layer, dir, &name, newdir, &newname, flags, now))
        }
        Call::Write { layer, ino, offset, data } => {
            m.write(layer, ino, offset, &data, now).map(Value::Count)
        }
        Call::SetAttr { layer, ino, set } => m.setattr(layer, ino, &set, now).map(Value::Attr),
        Call::SetXattr { layer, ino, name, value, flags } => {
            unit(m.setxattr(layer, ino, &name, &value, flags, now))
        }
        Call::RemoveXattr { layer, ino, name } => unit(m.removexattr(layer, ino, &name, now)),
        Call::Read { layer, ino, offset, len } => m.read(layer, ino, offset, len).map(Value::Bytes),
        Call::Inspect { layer, ino } => {
            let attr = m.getattr(layer, ino)?;
            let is = |kind| attr.kind == kind;
            let listing = is(lcfs_model::FileType::Directory)
                .then(|| m.readdir(layer, ino, None, LISTING_MAX));
            let target = is(lcfs_model::FileType::Symlink).then(|| m.readlink(layer, ino));
            let names = m.listxattr(layer, ino)?;
            let xattrs =
                names.into_iter().map(|n| (n.clone(), m.getxattr(layer, ino, &n))).collect();
            Ok(Value::Inspect { attr, listing, target, xattrs })
        }
        Call::Lookup { layer, dir, name } => m.lookup(layer, dir, &name).map(Value::Attr),
        Call::Fsync { layer, ino } => unit(m.fsync(layer, ino)),
        Call::Sync => unit(m.sync()),
        Call::Populate { layer, dir, count } => {
            for index in 0..count {
                // As `Harness::step` does: a write after each create that succeeded.
                if let Ok(Value::Attr(attr)) = run_model(m, &populate_calls(layer, dir, index), now)
                {
                    let _ = run_model(m, &populate_write(layer, attr.ino, index), now);
                }
            }
            Ok(Value::Unit)
        }
        Call::Checkpoint | Call::Remount | Call::Verify => Ok(Value::Unit),
    }
}

/// The most entries `Inspect` lists.
const LISTING_MAX: usize = 10_000;

/// Runs `call` on the engine (not `Remount` or `Verify`: the harness does those).
pub fn run_engine(fs: &Fs, call: &Call, now: Timespec) -> Outcome {
    use convert::{attr_back, ino as i, result};
    let t = convert::timespec(now);
    let l = convert::layer_id;
    let unit = |r: lcfs::Result<()>| result(r, |()| Value::Unit);
    let layers = |fs: &Fs| {
        result(fs.layers(), |all| {
            Value::Layers(all.into_iter().map(convert::layer_info_back).collect())
        })
    };
    match call.clone() {
        Call::CreateLayer { name, parent } => {
            result(fs.create_layer(&name, parent.as_deref()), drop).and_then(|()| layers(fs))
        }
        Call::CommitLayer { name } => {
            result(fs.commit_layer(&name), drop).and_then(|()| layers(fs))
        }
        Call::RemoveLayer { name } => {
            result(fs.remove_layer(&name), drop).and_then(|()| layers(fs))
        }
        Call::Mknod { layer, dir, name, kind, perm, rdev } => result(
            fs.mknod(l(layer), i(dir), &name, convert::file_type(kind), perm, rdev, UID, GID, t),
            |a| Value::Attr(attr_back(a)),
        ),
        Call::Mkdir { layer, dir, name, perm } => {
            result(fs.mkdir(l(layer), i(dir), &name, perm, UID, GID, t), |a| {
                Value::Attr(attr_back(a))
            })
        }
        Call::Symlink { layer, dir, name, target } => {
            result(fs.symlink(l(layer), i(dir), &name, &target, UID, GID, t), |a| {
                Value::Attr(attr_back(a))
            })
        }
        Call::Link { layer, ino, dir, name } => {
            result(fs.link(l(layer), i(ino), i(dir), &name, t), |a| Value::Attr(attr_back(a)))
        }
        Call::Unlink { layer, dir, name } => unit(fs.unlink(l(layer), i(dir), &name, t)),
        Call::Rmdir { layer, dir, name } => unit(fs.rmdir(l(layer), i(dir), &name, t)),
        Call::Rename { layer, dir, name, newdir, newname, flags } => unit(fs.rename(
            l(layer),
            i(dir),
            &name,
            i(newdir),
            &newname,
            convert::rename_flags(flags),
            t,
        )),
        Call::Write { layer, ino, offset, data } => {
            result(fs.write(l(layer), i(ino), offset, &data, t), Value::Count)
        }
        Call::SetAttr { layer, ino, set } => {
            result(fs.setattr(l(layer), i(ino), &convert::set_attr(&set), t), |a| {
                Value::Attr(attr_back(a))
            })
        }
        Call::SetXattr { layer, ino, name, value, flags } => {
            unit(fs.setxattr(l(layer), i(ino), &name, &value, convert::xattr_flags(flags), t))
        }
        Call::RemoveXattr { layer, ino, name } => unit(fs.removexattr(l(layer), i(ino), &name, t)),
        Call::Read { layer, ino, offset, len } => {
            result(fs.read(l(layer), i(ino), offset, len), Value::Bytes)
        }
        Call::Inspect { layer, ino } => inspect_engine(fs, l(layer), i(ino)),
        Call::Lookup { layer, dir, name } => {
            result(fs.lookup(l(layer), i(dir), &name), |a| Value::Attr(attr_back(a)))
        }
        Call::Fsync { layer, ino } => unit(fs.fsync(l(layer), i(ino))),
        Call::Sync => unit(fs.sync()),
        Call::Checkpoint => result(fs.checkpoint(), |_| Value::Unit),
        Call::Populate { .. } | Call::Remount | Call::Verify => {
            unreachable!("the harness runs these itself")
        }
    }
}

fn inspect_engine(fs: &Fs, layer: lcfs::LayerId, ino: lcfs::Ino) -> Outcome {
    use convert::result;
    let attr = result(fs.getattr(layer, ino), convert::attr_back)?;
    let is = |kind| attr.kind == kind;
    let listing = is(lcfs_model::FileType::Directory).then(|| {
        result(fs.readdir(layer, ino, None, LISTING_MAX), |all| {
            all.into_iter().map(convert::dir_entry_back).collect()
        })
    });
    let target = is(lcfs_model::FileType::Symlink).then(|| result(fs.readlink(layer, ino), |t| t));
    let names = result(fs.listxattr(layer, ino), |n| n)?;
    let xattrs = names
        .into_iter()
        .map(|n| (n.clone(), result(fs.getxattr(layer, ino, &n), |v| v)))
        .collect();
    Ok(Value::Inspect { attr, listing, target, xattrs })
}
