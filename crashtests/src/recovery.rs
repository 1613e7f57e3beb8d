//! The crash predicate of TESTING.md §4, checked on one crash state.
//!
//! `Snapshots` keeps the model state each checkpoint generation stands for: the generation a
//! durability point last confirmed (the floor, state `C`) and every later generation whose
//! superblock the engine issued (a checkpoint in flight or one whose flush failed, state `C*`).
//! A generation names one superblock content (the engine never reuses one), so the recovered
//! superblock's generation says exactly which state the image must hold: the check is an
//! equality, not a choice.
//!
//! `recover` checks one crash state: fsck is clean, the image mounts, the generation it
//! recovered (`Fs::recovered_generation`: the mount's own first checkpoint, which reserves
//! generations, holds the same state under a later one) is one the harness knows and not below
//! the floor (forward progress: nothing a durability point confirmed is lost), and every layer
//! equals that generation's model state, committed layers included. `crash_during_recovery`
//! then cuts the power during the next mount (its reserving checkpoint, and the orphan sweep
//! of an unclean image), crashes again and checks the result the same way.
//!
//! `compare_tolerant` serves damaged images (misdirected writes): every answer must be right or
//! a loud refusal (EUCLEAN or EIO), never wrong bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use lcfs::{BlockDevice, Fs, MountOptions};
use lcfs_model::{Content, Errno, LayerId, Model};
use lcfs_sim::SimDevice;

use crate::convert;
use crate::harness::compare_all;

/// Model states by checkpoint generation, from the last durable one on.
#[derive(Clone, Debug)]
pub struct Snapshots {
    floor: u64,
    states: BTreeMap<u64, Arc<Model>>,
}

impl Snapshots {
    /// Generation `generation` is durable and holds `model`.
    pub fn new(generation: u64, model: Arc<Model>) -> Self {
        Snapshots { floor: generation, states: BTreeMap::from([(generation, model)]) }
    }

    /// The generation of the last checkpoint known durable.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The newest generation known (issued, durable or not).
    pub fn newest(&self) -> u64 {
        self.states.keys().next_back().copied().unwrap_or(self.floor)
    }

    /// The engine issued the superblock of generation `generation`, for the state `model`.
    pub fn issued(&mut self, generation: u64, model: Arc<Model>) {
        self.states.insert(generation, model);
    }

    /// Generation `generation` is durable: no earlier one can come back.
    pub fn durable(&mut self, generation: u64) {
        if generation > self.floor {
            self.floor = generation;
            self.states.retain(|g, _| *g >= generation);
        }
    }

    /// The state an image recovered at `generation` must hold. `in_flight` stands for every
    /// generation above those known: the superblocks the operation in progress may issue.
    pub fn expected(
        &self,
        generation: u64,
        in_flight: Option<&Arc<Model>>,
    ) -> Result<Arc<Model>, String> {
        if generation < self.floor {
            return Err(format!(
                "recovered generation {generation}, but a durability point confirmed generation {}: \
                 durable state was lost",
                self.floor
            ));
        }
        if let Some(model) = self.states.get(&generation) {
            return Ok(Arc::clone(model));
        }
        match in_flight {
            Some(model) if generation > self.newest() => Ok(Arc::clone(model)),
            _ => Err(format!(
                "recovered generation {generation}, which the engine never issued (known: {:?})",
                self.states.keys().collect::<Vec<_>>()
            )),
        }
    }
}

/// A crash state recovered and checked.
pub struct Recovered {
    pub generation: u64,
    pub fs: Fs,
    pub model: Arc<Model>,
}

/// Checks the crash state on `dev` against `snapshots` (see the module doc) and returns the
/// mounted engine with the state it holds.
pub fn recover(
    dev: &Arc<dyn BlockDevice>,
    snapshots: &Snapshots,
    in_flight: Option<&Arc<Model>>,
    opts: &MountOptions,
) -> Result<Recovered, String> {
    let report = lcfs::fsck::check(Arc::clone(dev)).map_err(|e| format!("fsck failed: {e}"))?;
    if !report.is_clean() {
        return Err(format!("fsck after the crash: {report}"));
    }
    let fs = Fs::mount(Arc::clone(dev), opts).map_err(|e| format!("mount after the crash: {e}"))?;
    let recovered = fs.recovered_generation().0;
    let model = snapshots.expected(recovered, in_flight)?;
    compare_all(&model, &fs).map_err(|e| format!("recovered generation {recovered}: {e}"))?;
    Ok(Recovered { generation: fs.generation().0, fs, model })
}

/// Cuts the power at crash point `cut` of the mount after the recovery `first` (or right after
/// it, if it has fewer points), crashes `dev` with a policy drawn from its seed, and checks the
/// result: the same state, at the recovered generation or a later one.
pub fn crash_during_recovery(
    dev: &Arc<SimDevice>,
    first: Recovered,
    cut: u64,
    opts: &MountOptions,
) -> Result<Recovered, String> {
    drop(first.fs);
    dev.set_crash_at(cut);
    // The mount fails if the power goes first; either way the crash decides.
    let as_dev: Arc<dyn BlockDevice> = Arc::clone(dev) as Arc<dyn BlockDevice>;
    drop(Fs::mount(Arc::clone(&as_dev), opts));
    let policy = dev.choose_crash_policy();
    let report = dev.crash(policy);
    let snapshots = Snapshots::new(first.generation, Arc::clone(&first.model));
    recover(&as_dev, &snapshots, Some(&first.model), opts)
        .map_err(|e| format!("after a crash ({report}) at point {cut} of recovery: {e}"))
}

/// Whether an engine error is a loud refusal of damaged data.
pub fn is_refusal(errno: Errno) -> bool {
    errno == Errno(117) || errno == Errno(5)
}

/// Compares what `fs` answers with `model`, accepting a refusal (EUCLEAN, EIO) in place of any
/// answer but never a wrong one. Returns the number of refusals.
pub fn compare_tolerant(model: &Model, fs: &Fs) -> Result<u64, String> {
    let mut refusals = 0u64;
    let mut check =
        |what: String, got: Result<String, Errno>, want: String| -> Result<(), String> {
            match got {
                Ok(got) if got == want => Ok(()),
                Ok(got) => Err(format!("{what}: wrong answer {got}, expected {want}")),
                Err(errno) if is_refusal(errno) => {
                    refusals += 1;
                    Ok(())
                }
                Err(errno) => Err(format!("{what}: errno {}, expected {want}", errno.0)),
            }
        };
    let layers = convert::result(fs.layers(), |all| {
        let all: Vec<_> = all.into_iter().map(convert::layer_info_back).collect();
        format!("{all:?}")
    });
    check("layers".into(), layers, format!("{:?}", model.layers()))?;
    for info in model.layers() {
        let dump = model.dump_layer(info.id).map_err(|e| format!("model: {e}"))?;
        for (ino, inode) in &dump.inodes {
            compare_inode(fs, model, info.id, *ino, &inode.content, &mut check)?;
        }
    }
    Ok(refusals)
}

type Check<'a> = dyn FnMut(String, Result<String, Errno>, String) -> Result<(), String> + 'a;

fn compare_inode(
    fs: &Fs,
    model: &Model,
    layer: LayerId,
    ino: lcfs_model::Ino,
    content: &Content,
    check: &mut Check<'_>,
) -> Result<(), String> {
    let (l, i) = (convert::layer_id(layer), convert::ino(ino));
    let at = format!("layer {} inode {}", layer.0, ino.0);
    let show = |value: &dyn std::fmt::Debug| format!("{value:?}");
    let want_attr = model.getattr(layer, ino).map_err(|e| format!("model: {e}"))?;
    let got = convert::result(fs.getattr(l, i), |a| show(&convert::attr_back(a)));
    check(format!("{at} getattr"), got, show(&lcfs_model::Attr { blocks: 0, ..want_attr }))?;
    match content {
        Content::Regular(data) => {
            let pages: Vec<u64> = std::iter::once(0).chain(data.pages().map(|(p, _)| p)).collect();
            for page in pages {
                let offset = page * lcfs_model::PAGE_SIZE;
                let want =
                    model.read(layer, ino, offset, 4096).map_err(|e| format!("model: {e}"))?;
                let got = convert::result(fs.read(l, i, offset, 4096), |b| show(&b));
                check(format!("{at} read at {offset}"), got, show(&want))?;
            }
        }
        Content::Directory => {
            let want = model.readdir(layer, ino, None, usize::MAX).map_err(|e| format!("{e}"))?;
            let got = convert::result(fs.readdir(l, i, None, usize::MAX), |all| {
                show(&all.into_iter().map(convert::dir_entry_back).collect::<Vec<_>>())
            });
            check(format!("{at} readdir"), got, show(&want))?;
        }
        Content::Symlink(target) => {
            let got = convert::result(fs.readlink(l, i), |t| show(&t));
            check(format!("{at} readlink"), got, show(target))?;
        }
        Content::Special => {}
    }
    let names = model.listxattr(layer, ino).map_err(|e| format!("model: {e}"))?;
    let got = convert::result(fs.listxattr(l, i), |n| show(&n));
    check(format!("{at} listxattr"), got, show(&names))?;
    for name in names {
        let want = model.getxattr(layer, ino, &name).map_err(|e| format!("model: {e}"))?;
        let got = convert::result(fs.getxattr(l, i, &name), |v| show(&v));
        check(format!("{at} getxattr"), got, show(&want))?;
    }
    Ok(())
}
