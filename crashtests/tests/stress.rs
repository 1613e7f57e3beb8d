//! A multi-threaded stress test of the engine API (TESTING.md §6): writer threads create,
//! write, commit, clone and remove layers while reader threads walk committed layers, all on
//! one mounted engine; then every layer is compared with the model, the image is unmounted,
//! fsck must be clean, and after a mount everything is compared again.
//!
//! Method: each writer thread owns its layers (names prefixed `t<i>-`) and its own model, and
//! draws operations from the conformance alphabet (`lcfs_crashtests::strategy`) with a seeded
//! generator. Inode numbers and layer ids come from filesystem-wide counters, so the engine's
//! differ from the thread's model: the thread maps them (model number to engine number as
//! creates return them; numbers the model never handed out map to numbers the engine never
//! hands out), runs each call on both, and compares the results in the model's terms. A
//! committed layer is published with its expected dump; readers walk published layers at
//! random and must find exactly that dump (a committed layer is immutable), unless its owner
//! removed it meanwhile (it unpublishes first).
//!
//! Seeds: `LCFS_SEED=<n>` replays the operation sequences of every thread exactly (the
//! interleaving is the scheduler's); the seed is printed at the start. `LCFS_STRESS_OPS`
//! sets the operations per writer (1000 by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lcfs::{BlockDevice, Fs, MemDevice, MkfsOptions, MountOptions};
use lcfs_crashtests::compare::diff_layer;
use lcfs_crashtests::harness::{run_engine, run_model, Outcome, Value};
use lcfs_crashtests::ops::{now, populate_calls, populate_write, resolve, Call, Op};
use lcfs_crashtests::{convert, strategy, walk};
use lcfs_model::{DirEntry, Ino, LayerDump, LayerId, LayerInfo, Model};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const WRITERS: u64 = 4;
const READERS: u64 = 2;
/// Engine numbers no counter reaches: where numbers the model never handed out go.
const NEVER: u64 = u64::MAX / 2;

/// A committed layer a writer published: its engine name, and what it must hold (in the
/// model's terms), with the map to read the engine's numbers back.
#[derive(Clone)]
struct Published {
    name: String,
    engine_id: lcfs::LayerId,
    expected: LayerDump,
    back: HashMap<u64, Ino>,
}

type Board = Arc<Mutex<BTreeMap<String, Published>>>;

/// One writer: its model and the maps between the model's numbers and the engine's.
struct Writer {
    prefix: String,
    model: Model,
    step: u64,
    /// Model inode number to engine inode number, and back.
    inos: HashMap<u64, u64>,
    back: HashMap<u64, Ino>,
    /// Model layer id to engine layer id.
    layers: HashMap<u64, u64>,
}

impl Writer {
    fn new(index: u64) -> Self {
        let mut w = Writer {
            prefix: format!("t{index}-"),
            model: Model::new(),
            step: 0,
            inos: HashMap::new(),
            back: HashMap::new(),
            layers: HashMap::new(),
        };
        for n in [0u64, Ino::ROOT.0] {
            w.inos.insert(n, n);
            w.back.insert(n, Ino(n));
        }
        w.layers.insert(0, 0);
        w
    }

    fn ino(&self, ino: Ino) -> lcfs_model::Ino {
        Ino(self.inos.get(&ino.0).copied().unwrap_or(NEVER + ino.0))
    }

    fn layer(&self, id: LayerId) -> LayerId {
        LayerId(self.layers.get(&id.0).copied().unwrap_or(NEVER + id.0))
    }

    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The call in the engine's terms.
    fn to_engine(&self, call: &Call) -> Call {
        let mut call = call.clone();
        match &mut call {
            Call::CreateLayer { name, parent } => {
                *name = self.name(name);
                *parent = parent.as_deref().map(|p| self.name(p));
            }
            Call::CommitLayer { name } | Call::RemoveLayer { name } => *name = self.name(name),
            Call::Mknod { layer, dir, .. }
            | Call::Mkdir { layer, dir, .. }
            | Call::Symlink { layer, dir, .. }
            | Call::Unlink { layer, dir, .. }
            | Call::Rmdir { layer, dir, .. }
            | Call::Lookup { layer, dir, .. } => {
                *layer = self.layer(*layer);
                *dir = self.ino(*dir);
            }
            Call::Link { layer, ino, dir, .. } => {
                *layer = self.layer(*layer);
                *ino = self.ino(*ino);
                *dir = self.ino(*dir);
            }
            Call::Rename { layer, dir, newdir, .. } => {
                *layer = self.layer(*layer);
                *dir = self.ino(*dir);
                *newdir = self.ino(*newdir);
            }
            Call::Write { layer, ino, .. }
            | Call::SetAttr { layer, ino, .. }
            | Call::SetXattr { layer, ino, .. }
            | Call::RemoveXattr { layer, ino, .. }
            | Call::Read { layer, ino, .. }
            | Call::Inspect { layer, ino }
            | Call::Fsync { layer, ino } => {
                *layer = self.layer(*layer);
                *ino = self.ino(*ino);
            }
            Call::Populate { .. }
            | Call::Sync
            | Call::Checkpoint
            | Call::Remount
            | Call::Verify => {}
        }
        call
    }

    /// An engine result in the model's terms (`Err` for a number the thread never saw).
    fn to_model(&self, outcome: Outcome) -> Result<Outcome, String> {
        let back = |n: Ino| self.back.get(&n.0).copied().ok_or(format!("unknown inode {}", n.0));
        let Ok(value) = outcome else { return Ok(outcome) };
        Ok(Ok(match value {
            Value::Attr(mut attr) => {
                attr.ino = back(attr.ino)?;
                Value::Attr(attr)
            }
            Value::Layers(all) => Value::Layers(self.own_layers(all)),
            Value::Inspect { mut attr, listing, target, xattrs } => {
                attr.ino = back(attr.ino)?;
                let listing = match listing {
                    Some(Ok(entries)) => Some(Ok(entries
                        .into_iter()
                        .map(|e| Ok(DirEntry { ino: back(e.ino)?, ..e }))
                        .collect::<Result<Vec<_>, String>>()?)),
                    other => other,
                };
                Value::Inspect { attr, listing, target, xattrs }
            }
            other => other,
        }))
    }

    /// This thread's layers of an engine layer table, in the model's terms.
    fn own_layers(&self, all: Vec<LayerInfo>) -> Vec<LayerInfo> {
        let strip = |name: &str| name.strip_prefix(&self.prefix).map(str::to_owned);
        let back: HashMap<u64, u64> = self.layers.iter().map(|(m, e)| (*e, *m)).collect();
        all.into_iter()
            .filter_map(|info| {
                let name = strip(&info.name)?;
                let id = LayerId(back.get(&info.id.0).copied().unwrap_or(u64::MAX));
                let parent = info.parent.as_deref().and_then(strip);
                Some(LayerInfo { id, name, parent, ..info })
            })
            .collect()
    }

    /// Runs one model call on both sides; `Err` describes a disagreement.
    fn call(&mut self, fs: &Fs, call: &Call, board: &Board) -> Result<(), String> {
        let now = now(self.step);
        if let Call::RemoveLayer { name } = call {
            board.lock().unwrap().remove(&self.name(name));
        }
        let engine_call = self.to_engine(call);
        let next_ino = self.model.next_ino();
        let expected = run_model(&mut self.model, call, now);
        let got = run_engine(fs, &engine_call, now);
        self.learn(fs, call, &expected, &got, next_ino)?;
        let got = self.to_model(got)?;
        if expected != got {
            return Err(format!("{call:?}:\n  model:  {expected:?}\n  engine: {got:?}"));
        }
        if let (Call::CommitLayer { name }, Ok(_)) = (call, &expected) {
            self.publish(fs, name, board)?;
        }
        Ok(())
    }

    /// Records the numbers a successful create or layer create handed out on both sides.
    fn learn(
        &mut self,
        fs: &Fs,
        call: &Call,
        expected: &Outcome,
        got: &Outcome,
        next_ino: Ino,
    ) -> Result<(), String> {
        match (call, expected, got) {
            (
                Call::Mknod { .. } | Call::Mkdir { .. } | Call::Symlink { .. },
                Ok(_),
                Ok(Value::Attr(attr)),
            ) if self.model.next_ino() != next_ino => {
                self.inos.insert(next_ino.0, attr.ino.0);
                self.back.insert(attr.ino.0, next_ino);
            }
            (Call::CreateLayer { name, .. }, Ok(_), Ok(_)) => {
                let model_id = self.model.layer_id(name).map_err(|e| format!("{e}"))?;
                let engine_id = fs.layer_id(&self.name(name)).map_err(|e| format!("{e}"))?;
                self.layers.insert(model_id.0, engine_id.0);
            }
            _ => {}
        }
        Ok(())
    }

    /// Publishes the committed layer `name` with its expected dump.
    fn publish(&self, fs: &Fs, name: &str, board: &Board) -> Result<(), String> {
        let id = self.model.layer_id(name).map_err(|e| format!("{e}"))?;
        let expected = self.model.dump_layer(id).map_err(|e| format!("{e}"))?;
        let engine_id = fs.layer_id(&self.name(name)).map_err(|e| format!("{e}"))?;
        let entry =
            Published { name: self.name(name), engine_id, expected, back: self.back.clone() };
        board.lock().unwrap().insert(self.name(name), entry);
        Ok(())
    }

    /// Every layer of this thread, walked in the engine and compared with the model.
    fn verify(&self, fs: &Fs) -> Result<(), String> {
        let engine = self.own_layers(
            fs.layers()
                .map_err(|e| format!("{e}"))?
                .into_iter()
                .map(convert::layer_info_back)
                .collect(),
        );
        let expected = self.model.layers();
        if engine != expected {
            return Err(format!("layers: model {expected:?}, engine {engine:?}"));
        }
        for info in &expected {
            let want = self.model.dump_layer(info.id).map_err(|e| format!("{e}"))?;
            let engine_id = lcfs::LayerId(self.layer(info.id).0);
            compare_dump(fs, engine_id, &want, &self.back)?;
        }
        Ok(())
    }
}

/// Walks the engine's layer `engine_id` and compares it, in the model's terms, with `want`.
fn compare_dump(
    fs: &Fs,
    engine_id: lcfs::LayerId,
    want: &LayerDump,
    back: &HashMap<u64, Ino>,
) -> Result<(), String> {
    let mut info = want.info.clone();
    info.id = LayerId(engine_id.0);
    // The walk reads very large files only where the hint has pages: the hint in the engine's
    // numbers.
    let forward: HashMap<Ino, u64> = back.iter().map(|(e, m)| (*m, *e)).collect();
    let hint_inodes =
        want.inodes.iter().filter_map(|(m, d)| Some((Ino(*forward.get(m)?), d.clone())));
    let hint =
        LayerDump { info: info.clone(), paths: BTreeMap::new(), inodes: hint_inodes.collect() };
    let got = walk::dump_layer(fs, &info, Some(&hint))?;
    let map = |n: Ino| back.get(&n.0).copied().ok_or(format!("unknown inode {}", n.0));
    let mut inodes = BTreeMap::new();
    for (ino, mut dump) in got.inodes {
        dump.attr.ino = map(ino)?;
        inodes.insert(map(ino)?, dump);
    }
    let paths =
        got.paths.into_iter().map(|(p, i)| Ok((p, map(i)?))).collect::<Result<_, String>>()?;
    let got = LayerDump { info: want.info.clone(), paths, inodes };
    match diff_layer(want, &got) {
        Some(diff) => Err(format!("layer {:?}: {diff}", want.info.name)),
        None => Ok(()),
    }
}

/// The operations of one writer: the conformance alphabet without remounts (the engine is
/// shared) and without picks of numbers the model never handed out in another layer.
fn writer_ops(seed: u64, count: usize) -> Vec<Op> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let ops = strategy::op();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let op = ops.new_tree(&mut runner).unwrap().current();
        if !matches!(op, Op::Remount) {
            out.push(op);
        }
    }
    out
}

fn run_writer(fs: &Fs, index: u64, ops: &[Op], board: &Board) -> Result<Writer, String> {
    let mut w = Writer::new(index);
    w.call(fs, &Call::CreateLayer { name: "base".into(), parent: None }, board)?;
    for (n, op) in ops.iter().enumerate() {
        w.step += 1;
        let call = resolve(&w.model, op);
        let fail = |e: String| format!("writer {index}, op {n} ({op:?}): {e}");
        match call {
            Call::Populate { layer, dir, count } => {
                for i in 0..count.min(64) {
                    let ino = w.model.next_ino();
                    w.call(fs, &populate_calls(layer, dir, i), board).map_err(fail)?;
                    if w.model.next_ino() != ino {
                        w.call(fs, &populate_write(layer, ino, i), board).map_err(fail)?;
                    }
                }
            }
            Call::Verify => w.verify(fs).map_err(fail)?,
            call => w.call(fs, &call, board).map_err(fail)?,
        }
    }
    Ok(w)
}

/// Walks published layers until `done`; returns how many walks it made.
fn run_reader(fs: &Fs, seed: u64, board: &Board, done: &AtomicBool) -> Result<u64, String> {
    let mut state = seed | 1;
    let mut walks = 0;
    while !done.load(Ordering::Relaxed) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let chosen = {
            let board = board.lock().unwrap();
            let n = board.len() as u64;
            (n > 0).then(|| board.values().nth((state % n) as usize).cloned()).flatten()
        };
        let Some(p) = chosen else {
            std::thread::yield_now();
            continue;
        };
        if let Err(e) = compare_dump(fs, p.engine_id, &p.expected, &p.back) {
            // Unless its owner removed it meanwhile (a layer of the same name may be back).
            let board = board.lock().unwrap();
            if board.get(&p.name).is_some_and(|now| now.engine_id == p.engine_id) {
                return Err(format!("reader: committed layer {} changed: {e}", p.name));
            }
        }
        walks += 1;
    }
    Ok(walks)
}

#[test]
fn threads_create_write_commit_clone_and_remove_layers_while_others_read() {
    let seed = lcfs_sim::seed_from_env(lcfs_sim::fresh_seed());
    let ops_per_writer: usize =
        std::env::var("LCFS_STRESS_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let _ =
        writeln!(std::io::stderr(), "stress: LCFS_SEED={seed} ({ops_per_writer} ops per writer)");
    let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::with_size(1 << 30));
    Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).unwrap();
    let options =
        MountOptions { node_cache_blocks: 64, data_cache_blocks: 64, dirty_limit_bytes: 1 << 20 };
    let fs = Fs::mount(Arc::clone(&dev), &options).unwrap();
    let board: Board = Arc::default();
    let done = AtomicBool::new(false);
    let walks = AtomicU64::new(0);
    let writers = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (fs, board, done, walks) = (&fs, &board, &done, &walks);
                s.spawn(move || {
                    let n = run_reader(fs, seed ^ ((r + 1) * 0x9e37_79b9), board, done)?;
                    walks.fetch_add(n, Ordering::Relaxed);
                    Ok::<(), String>(())
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| {
                let ops = writer_ops(seed.wrapping_add(i), ops_per_writer);
                let (fs, board) = (&fs, &board);
                s.spawn(move || run_writer(fs, i, &ops, board))
            })
            .collect();
        let writers: Vec<Result<Writer, String>> =
            writers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        for r in readers {
            if let Err(e) = r.join().unwrap() {
                panic!("LCFS_SEED={seed}: {e}");
            }
        }
        writers
    });
    let writers: Vec<Writer> = writers
        .into_iter()
        .map(|w| w.unwrap_or_else(|e| panic!("LCFS_SEED={seed}: {e}")))
        .collect();
    for w in &writers {
        w.verify(&fs).unwrap_or_else(|e| panic!("LCFS_SEED={seed}: at the end: {e}"));
    }
    fs.unmount().unwrap();
    let report = lcfs::fsck::check(Arc::clone(&dev)).unwrap();
    assert!(report.is_clean(), "LCFS_SEED={seed}: {report}");
    let fs = Fs::mount(Arc::clone(&dev), &options).unwrap();
    for w in &writers {
        w.verify(&fs).unwrap_or_else(|e| panic!("LCFS_SEED={seed}: after a remount: {e}"));
    }
    let layers: usize = writers.iter().map(|w| w.model.layers().len()).sum();
    let _ = writeln!(
        std::io::stderr(),
        "stress: {WRITERS} writers x {ops_per_writer} ops, {} reader walks of committed layers, \
         {layers} layers at the end, fsck clean",
        walks.load(Ordering::Relaxed)
    );
    fs.unmount().unwrap();
}
