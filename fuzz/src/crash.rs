//! `CrashCase`: the model and the engine over a `SimDevice`, side by side, with power cuts and
//! crashes, checked against the crash predicate of TESTING.md §4.
//!
//! Every call runs on both and the results must be equal. The case keeps the generation of the
//! last durable checkpoint and the model states that checkpoint may hold. A checkpoint taken by
//! an explicit durability point (layer create/commit/remove, fsync, sync, checkpoint, unmount)
//! holds the state after the call; one the engine takes on its own inside another call (dirty
//! limit, room for a write) holds the state before or after that call, since it may run on
//! either side of the call's change.
//!
//! After a crash the image must pass fsck and mount; the recovered generation says which
//! checkpoint landed: the last durable one (`C`), or the one in flight (`C*`, generation + 1).
//! The engine's layers must then equal one of that checkpoint's model states exactly, and the
//! case goes on from it. Under the `Corrupt` policy, mount may refuse with `Corrupt`; then the
//! case ends there.
//!
//! Invariants:
//! - the engine is mounted between steps, except after a refused recovery (the case is over);
//! - a call that meets the power cut is not compared: the device is crashed and recovered;
//! - the end of a case compares everything, unmounts cleanly, runs fsck, mounts and compares.

use std::sync::Arc;

use lcfs::{BlockDevice, Fs, Generation, MkfsOptions, MountOptions};
use lcfs_crashtests::compare::diff_layer;
use lcfs_crashtests::convert;
use lcfs_crashtests::harness::{run_engine, run_model, Outcome, Value};
use lcfs_crashtests::ops::{now, populate_calls, populate_write, resolve, Call, Op};
use lcfs_crashtests::walk;
use lcfs_model::{LayerInfo, Model};
use lcfs_sim::SimDevice;

use crate::input::{PolicyPick, Step};

/// Blocks of the simulated device: 1 GiB, sparse, so no case runs out of space (the model has
/// no ENOSPC).
pub const DEVICE_BLOCKS: u64 = 1 << 18;

/// Tiny caches and a small dirty limit: evictions and checkpoints in the middle of calls.
pub fn mount_options() -> MountOptions {
    MountOptions { node_cache_blocks: 8, data_cache_blocks: 8, dirty_limit_bytes: 128 << 10 }
}

/// One fuzz case in progress.
pub struct CrashCase {
    model: Model,
    /// The logical clock.
    step: u64,
    fs: Option<Fs>,
    dev: Arc<SimDevice>,
    /// The generation of the last durable checkpoint and the model states it may hold.
    durable: (Generation, Vec<Model>),
    /// The policy of the armed power cut, if one is armed.
    armed: Option<PolicyPick>,
    /// Whether a recovery refused to mount (allowed under `Corrupt`): the case is over.
    refused: bool,
    /// Crashes recovered so far.
    pub crashes: u32,
}

impl CrashCase {
    /// A freshly formatted device with one writable layer "base", as conformance starts.
    pub fn new(seed: u64) -> Result<Self, String> {
        let dev = Arc::new(SimDevice::new(DEVICE_BLOCKS, seed));
        Fs::mkfs(as_dyn(&dev), &MkfsOptions::default()).map_err(|e| format!("mkfs: {e}"))?;
        let fs = Fs::mount(as_dyn(&dev), &mount_options()).map_err(|e| format!("mount: {e}"))?;
        let generation = fs.generation();
        let mut case = CrashCase {
            model: Model::new(),
            step: 0,
            fs: Some(fs),
            dev,
            durable: (generation, vec![Model::new()]),
            armed: None,
            refused: false,
            crashes: 0,
        };
        let base = Call::CreateLayer { name: "base".into(), parent: None };
        case.call(&base, now(0))?;
        Ok(case)
    }

    /// Runs one step.
    pub fn run(&mut self, step: &Step) -> Result<(), String> {
        if self.refused {
            return Ok(());
        }
        match *step {
            Step::Op(ref op) => self.op(op),
            Step::PowerCut { point, policy } => {
                self.dev.set_crash_at(u64::from(point));
                self.armed = Some(policy);
                Ok(())
            }
            Step::Crash { policy } => {
                // Nothing is in flight between calls: only the durable checkpoint can come back.
                let candidates = self.durable.clone();
                self.recover(policy, candidates, None)
            }
        }
    }

    fn op(&mut self, op: &Op) -> Result<(), String> {
        let call = resolve(&self.model, op);
        self.step += 1;
        let now = now(self.step);
        let Call::Populate { layer, dir, count } = call else {
            return self.call(&call, now);
        };
        for index in 0..count {
            let ino = self.model.next_ino();
            self.call(&populate_calls(layer, dir, index), now)?;
            if self.refused {
                break;
            }
            if self.model.next_ino() != ino {
                self.call(&populate_write(layer, ino, index), now)?;
            }
        }
        Ok(())
    }

    /// Runs `call` on both sides and compares, or recovers if it met the power cut.
    fn call(&mut self, call: &Call, now: lcfs_model::Timespec) -> Result<(), String> {
        if self.refused {
            return Ok(());
        }
        let before = self.model.clone();
        let generation_before = self.fs()?.generation();
        let expected = run_model(&mut self.model, call, now);
        let got: Outcome = match call {
            Call::Remount => self.remount(),
            Call::Verify => match self.verify_against(&self.model) {
                Ok(()) => Ok(Value::Unit),
                Err(e) => return Err(format!("Verify: {e}")),
            },
            _ => run_engine(self.fs()?, call, now),
        };
        let after = || dedup(vec![before.clone(), self.model.clone()]);
        let states = if is_durability_point(call) { vec![self.model.clone()] } else { after() };
        if self.dev.powered_off_at().is_some() {
            let policy = self.armed.take().unwrap_or(PolicyPick::DropAll);
            let generation = match &self.fs {
                Some(fs) => fs.generation(),
                None => generation_before,
            };
            let durable = if generation == self.durable.0 {
                self.durable.clone()
            } else {
                (generation, states.clone())
            };
            let in_flight = (Generation(generation.0 + 1), states);
            return self.recover(policy, durable, Some(in_flight));
        }
        if expected != got {
            return Err(format!(
                "{}:\n  model:  {expected:?}\n  engine: {got:?}",
                lcfs_crashtests::harness::readable(&format!("{call:?}"))
            ));
        }
        let generation = self.fs()?.generation();
        if generation != generation_before {
            self.durable = (generation, states);
        }
        Ok(())
    }

    /// A clean unmount and a mount over the same device, then a comparison.
    fn remount(&mut self) -> Outcome {
        let Some(fs) = self.fs.take() else { return Ok(Value::Unit) };
        let fail = |e: lcfs::Error| Err(convert::errno(&e));
        if let Err(e) = fs.unmount() {
            return fail(e);
        }
        match Fs::mount(as_dyn(&self.dev), &mount_options()) {
            Ok(fs) => self.fs = Some(fs),
            Err(e) => return fail(e),
        }
        Ok(Value::Unit)
    }

    /// Crashes the device under `policy`, runs fsck, mounts, and checks that the engine holds
    /// exactly one of the states of the checkpoint whose generation it recovered.
    fn recover(
        &mut self,
        policy: PolicyPick,
        durable: (Generation, Vec<Model>),
        in_flight: Option<(Generation, Vec<Model>)>,
    ) -> Result<(), String> {
        self.crashes += 1;
        self.fs = None;
        let policy = policy.policy(self.dev.pending_writes());
        let crashed = self.dev.crash_image(policy);
        self.dev = Arc::new(crashed.device);
        let report = lcfs::fsck::check(as_dyn(&self.dev))
            .map_err(|e| format!("fsck after a crash ({policy:?}): {e}"))?;
        let fs = match Fs::mount(as_dyn(&self.dev), &mount_options()) {
            Ok(fs) => fs,
            Err(lcfs::Error::Corrupt { .. }) if policy == lcfs_sim::CrashPolicy::Corrupt => {
                self.refused = true;
                return Ok(());
            }
            Err(e) => return Err(format!("mount after a crash ({policy:?}): {e}")),
        };
        if !report.is_clean() {
            return Err(format!("fsck after a crash ({policy:?}): {report}"));
        }
        // The mount's own first checkpoint (it reserves generations) holds the state it found
        // under a later generation: what was recovered is `recovered_generation`.
        let generation = fs.recovered_generation();
        let now_durable = fs.generation();
        self.fs = Some(fs);
        let candidates = match in_flight {
            // Above the in-flight checkpoint only the same call's later ones (a remount's
            // reservation), which hold the same states.
            Some((g, states)) if generation >= g => states,
            _ if durable.0 == generation => durable.1,
            _ => {
                return Err(format!(
                    "after a crash ({policy:?}) the engine recovered generation {}, \
                     expected {} (durable) or {} (in flight)",
                    generation.0,
                    durable.0 .0,
                    durable.0 .0 + 1
                ))
            }
        };
        let mut disagreements = Vec::new();
        for candidate in candidates {
            match self.verify_against(&candidate) {
                Ok(()) => {
                    self.model = candidate.clone();
                    self.durable = (now_durable, vec![candidate]);
                    return Ok(());
                }
                Err(e) => disagreements.push(e),
            }
        }
        Err(format!(
            "after a crash ({policy:?}), generation {}: the engine matches no state of that \
             checkpoint:\n{}",
            generation.0,
            disagreements.join("\n--\n")
        ))
    }

    /// Compares the engine's layer table and every layer with `model`.
    fn verify_against(&self, model: &Model) -> Result<(), String> {
        let fs = self.fs()?;
        let engine: Vec<LayerInfo> = fs
            .layers()
            .map_err(|e| format!("layers: {e}"))?
            .into_iter()
            .map(convert::layer_info_back)
            .collect();
        let expected = model.layers();
        if engine != expected {
            return Err(format!(
                "layer tables differ:\n  model:  {expected:?}\n  engine: {engine:?}"
            ));
        }
        for info in &expected {
            let want = model.dump_layer(info.id).map_err(|e| format!("{e}"))?;
            let got = walk::dump_layer(fs, info, Some(&want))
                .map_err(|e| format!("walking layer {:?}: {e}", info.name))?;
            if let Some(diff) = diff_layer(&want, &got) {
                return Err(diff);
            }
        }
        Ok(())
    }

    /// The end of a case: compare, unmount cleanly, fsck, mount, compare, unmount. A power cut
    /// still armed may hit the unmount: then recover and finish again.
    pub fn finish(mut self) -> Result<u32, String> {
        for _ in 0..2 {
            if self.refused {
                return Ok(self.crashes);
            }
            self.verify_against(&self.model).map_err(|e| format!("at the end: {e}"))?;
            let fs = self.fs.take().ok_or("not mounted")?;
            let generation = fs.generation();
            let unmounted = fs.unmount();
            if self.dev.powered_off_at().is_some() {
                let policy = self.armed.take().unwrap_or(PolicyPick::DropAll);
                let states = vec![self.model.clone()];
                let in_flight = (Generation(generation.0 + 1), states);
                self.recover(policy, self.durable.clone(), Some(in_flight))?;
                continue;
            }
            unmounted.map_err(|e| format!("unmount: {e}"))?;
            // A power cut still armed belongs to the case's operations, not to the checks.
            self.dev.set_crash_at(u64::MAX);
            self.armed = None;
            let report = lcfs::fsck::check(as_dyn(&self.dev)).map_err(|e| format!("fsck: {e}"))?;
            if !report.is_clean() {
                return Err(format!("fsck after a clean unmount: {report}"));
            }
            self.fs = Some(
                Fs::mount(as_dyn(&self.dev), &mount_options())
                    .map_err(|e| format!("mount after fsck: {e}"))?,
            );
            self.verify_against(&self.model).map_err(|e| format!("after the last mount: {e}"))?;
            return Ok(self.crashes);
        }
        Err("a power cut hit the unmount twice".into())
    }

    fn fs(&self) -> Result<&Fs, String> {
        self.fs.as_ref().ok_or_else(|| "the engine is not mounted".to_owned())
    }
}

/// Calls that return only once their checkpoint is durable: that checkpoint holds the state
/// after the call.
fn is_durability_point(call: &Call) -> bool {
    matches!(
        call,
        Call::CreateLayer { .. }
            | Call::CommitLayer { .. }
            | Call::RemoveLayer { .. }
            | Call::Fsync { .. }
            | Call::Sync
            | Call::Checkpoint
            | Call::Remount
    )
}

fn dedup(mut states: Vec<Model>) -> Vec<Model> {
    states.dedup();
    states
}

fn as_dyn(dev: &Arc<SimDevice>) -> Arc<dyn BlockDevice> {
    Arc::clone(dev) as Arc<dyn BlockDevice>
}
