//! `CrashHarness`: the conformance harness (model against engine, every result compared) run
//! over a `SimDevice`, with crash states checked at every crash point, injected I/O errors and
//! power cuts (TESTING.md §4).
//!
//! What each kind of step checks (`steps::Step`):
//! - an operation: its result equals the model's. While it runs, a probe (`tap::Tap`) takes a
//!   crash state at each crash point (one in `probe_every`) with a policy drawn from the seed,
//!   and checks it with `recovery::recover`: fsck clean, the recovered generation names the state
//!   a durability point confirmed (C) or the one in flight (C*), the layers equal it exactly. One
//!   crash state in `recovery_crash_every` is then crashed again during its first checkpoint
//!   after recovery, and checked again;
//! - a fault: the operation either returns the model's result or fails with EIO/EUCLEAN; then
//!   the engine must hold exactly the state before the operation or after it (all or nothing),
//!   and the harness goes on from that state. A misdirected write damages the image: the case
//!   then ends with a damage check (`assess_damage`): fsck and every read either refuse loudly
//!   or answer right, and if fsck finds nothing, every answer is right;
//! - a power cut: the power fails at a crash point of the operation (or right after it), the
//!   device crashes with the step's policy, the harness recovers (same checks) and goes on from
//!   the recovered state, so later operations, and later crashes, start from a recovery.
//!
//! Invariants:
//! - `model` is the engine's in-memory state between steps; `snapshots` the states a crash may
//!   recover (see `recovery::Snapshots`);
//! - every random choice comes from the case's seed (the simulator's generator, and `Rng`
//!   seeded from it), so a case replays exactly.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lcfs::{BlockDevice, Fs, MkfsOptions, MountOptions};
use lcfs_model::{Errno, Model};
use lcfs_sim::{CrashPolicy, FaultRates, Misdirect, SimDevice};

use crate::harness::{compare_all, readable, run_engine, run_model, short, Outcome, Value};
use crate::ops::{self, populate_calls, populate_write, resolve, Call, Op};
use crate::recovery::{self, compare_tolerant, is_refusal, recover, Snapshots};
use crate::steps::{Fault, Policy, Step};
use crate::tap::{Point, Tap};

/// Blocks of the simulated device (1 GiB, sparse: the model has no ENOSPC).
pub const DEVICE_BLOCKS: u64 = 1 << 18;

/// How a run probes.
#[derive(Clone, Debug)]
pub struct Options {
    pub mount: MountOptions,
    /// One crash point in this many is checked (1: every one; 0: none).
    pub probe_every: u64,
    /// One checked crash state in this many is crashed again during recovery.
    pub recovery_crash_every: u64,
    /// Check each crash point under every policy of `EVERY_POLICY` (else under one, drawn).
    pub every_policy: bool,
}

/// The policies a crash point is checked under when `Options::every_policy` is set: nothing
/// survives, everything survives, and the three random ones.
pub const EVERY_POLICY: [CrashPolicy; 5] = [
    CrashPolicy::DropAll,
    CrashPolicy::KEEP_ALL,
    CrashPolicy::Subset,
    CrashPolicy::Torn,
    CrashPolicy::Corrupt,
];

impl Default for Options {
    /// Tiny caches (so that operations read the device) and a small dirty limit (so that
    /// writes trigger checkpoints of their own).
    fn default() -> Self {
        Options {
            mount: MountOptions {
                node_cache_blocks: 16,
                data_cache_blocks: 16,
                dirty_limit_bytes: 256 << 10,
            },
            probe_every: 1,
            recovery_crash_every: 8,
            every_policy: false,
        }
    }
}

/// What runs checked, shared by every case and thread of a test.
#[derive(Debug, Default)]
pub struct Stats {
    /// Crash states checked, by policy (DropAll, Prefix, Subset, Torn, Corrupt).
    by_policy: [AtomicU64; 5],
    /// Crash states taken during a recovery and checked.
    recovery_crashes: AtomicU64,
    /// Power cuts on the main line of a run, recovered from.
    power_cuts: AtomicU64,
    /// Operations that failed with an injected I/O error and were resynced.
    io_errors: AtomicU64,
    /// Damaged images (misdirected writes) checked.
    damage_checks: AtomicU64,
    /// Reads refused on damaged images.
    refusals: AtomicU64,
}

impl Stats {
    fn count(&self, policy: CrashPolicy) {
        let index = match policy {
            CrashPolicy::DropAll => 0,
            CrashPolicy::Prefix(_) => 1,
            CrashPolicy::Subset => 2,
            CrashPolicy::Torn => 3,
            CrashPolicy::Corrupt => 4,
        };
        self.by_policy[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Operations that failed with an injected I/O error (and were resynced).
    pub fn io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }

    /// Crash states checked (probes and main-line power cuts), every policy.
    pub fn crash_points(&self) -> u64 {
        self.by_policy.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Crash states checked under each policy, in the order DropAll, Prefix, Subset, Torn,
    /// Corrupt.
    pub fn by_policy(&self) -> [u64; 5] {
        let mut out = [0; 5];
        for (o, c) in out.iter_mut().zip(&self.by_policy) {
            *o = c.load(Ordering::Relaxed);
        }
        out
    }

    /// One line for the test's output.
    pub fn summary(&self) -> String {
        let [drop_all, prefix, subset, torn, corrupt] = self.by_policy();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} crash points checked (DropAll {drop_all}, Prefix {prefix}, Subset {subset}, \
             Torn {torn}, Corrupt {corrupt}); {} crashes during recovery, {} power cuts \
             recovered on the main line, {} injected I/O errors resynced, {} damaged images \
             checked ({} reads refused)",
            self.crash_points(),
            load(&self.recovery_crashes),
            load(&self.power_cuts),
            load(&self.io_errors),
            load(&self.damage_checks),
            load(&self.refusals),
        )
    }
}

/// SplitMix64: the harness's own choices (which crash states to crash again, where), seeded
/// from the case.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// How a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Crash states are checked at its crash points.
    Probe,
    /// A fault or a power cut is armed: an I/O error is a possible result.
    Injected,
    /// A misdirected write is armed: the device may be damaged. Refusals are accepted and not
    /// resynced, since `assess_damage` ends the case; a wrong answer still fails it.
    Damaging,
}

/// A model and an engine over a simulated device, with crashes.
pub struct CrashHarness {
    tap: Arc<Tap>,
    fs: Option<Fs>,
    model: Model,
    snapshots: Snapshots,
    options: Options,
    stats: Arc<Stats>,
    seed: u64,
    rng: Rng,
    clock: u64,
    /// A misdirected write damaged the image: the case is over.
    damaged: bool,
}

impl std::fmt::Debug for CrashHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashHarness").field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl CrashHarness {
    /// Formats a simulated device seeded with `seed`, mounts it, starts from an empty model.
    pub fn new(seed: u64, options: Options, stats: Arc<Stats>) -> Result<Self, String> {
        let sim = Arc::new(SimDevice::new(DEVICE_BLOCKS, seed));
        let tap = Arc::new(Tap::new(sim));
        let dev: Arc<dyn BlockDevice> = Arc::clone(&tap) as Arc<dyn BlockDevice>;
        Fs::mkfs(Arc::clone(&dev), &MkfsOptions::default()).map_err(|e| format!("mkfs: {e}"))?;
        let fs = Fs::mount(dev, &options.mount).map_err(|e| format!("mount: {e}"))?;
        tap.take_issued();
        let model = Model::new();
        let snapshots = Snapshots::new(fs.generation().0, Arc::new(model.clone()));
        Ok(CrashHarness {
            tap,
            fs: Some(fs),
            model,
            snapshots,
            options,
            stats,
            seed,
            rng: Rng(seed ^ 0x5EED),
            clock: 0,
            damaged: false,
        })
    }

    /// The model's current state (the engine's, between steps).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The simulated device.
    pub fn sim(&self) -> &Arc<SimDevice> {
        self.tap.sim()
    }

    /// Probes one crash point in `every` from now on (0: none).
    pub fn set_probe_every(&mut self, every: u64) {
        self.options.probe_every = every;
    }

    /// Checks the crash states the device holds now, between operations, under every policy of
    /// `EVERY_POLICY`, without crashing the run: after a durability point returned, each must
    /// recover exactly its state (forward progress).
    pub fn check_crash_here(&mut self) -> Result<(), String> {
        let sim = Arc::clone(self.tap.sim());
        for (index, policy) in EVERY_POLICY.into_iter().enumerate() {
            let crashed = sim.crash_image_seeded(policy, self.seed.wrapping_add(index as u64));
            let dev: Arc<dyn BlockDevice> = Arc::new(crashed.device);
            recover(&dev, &self.snapshots, None, &self.options.mount)
                .map_err(|e| format!("crash between operations ({}): {e}", crashed.report))?;
            self.stats.count(policy);
        }
        Ok(())
    }

    /// Whether a misdirected write ended the case.
    pub fn damaged(&self) -> bool {
        self.damaged
    }

    fn fs(&self) -> Result<&Fs, String> {
        self.fs.as_ref().ok_or_else(|| "the engine is not mounted".to_string())
    }

    /// Runs one step; `Err` describes what broke.
    pub fn step(&mut self, step: &Step) -> Result<(), String> {
        if self.damaged {
            return Ok(());
        }
        match step {
            Step::Op(op) => self.run_op(op, Mode::Probe),
            Step::Fault { fault, after, op } => self.fault(*fault, *after, op),
            Step::PowerCut { after, policy, op } => self.power_cut(*after, *policy, op.as_ref()),
        }
    }

    /// The end of a case: compare, unmount cleanly (crash points checked), mount, compare,
    /// unmount, fsck clean.
    pub fn finish(mut self) -> Result<(), String> {
        if self.damaged {
            return Ok(());
        }
        compare_all(&self.model, self.fs()?)?;
        self.run_call(&Call::Remount, Mode::Probe)?;
        let fs = self.fs.take().ok_or("the engine is not mounted")?;
        fs.unmount().map_err(|e| format!("last unmount: {e}"))?;
        let dev: Arc<dyn BlockDevice> = Arc::clone(&self.tap) as Arc<dyn BlockDevice>;
        let report = lcfs::fsck::check(dev).map_err(|e| format!("fsck: {e}"))?;
        if !report.is_clean() {
            return Err(format!("fsck after the last clean unmount: {report}"));
        }
        self.assess_rot()
    }

    /// One bit of rot in one metadata block written during the case (superblocks skipped, as
    /// for misdirected writes; a non-zero byte, since a node's zero tail changes nothing a
    /// reader uses), on a copy of the final image: a fresh mount must refuse loudly or answer
    /// right, and if fsck finds nothing, answer everything right. This is what catches a node
    /// checksum that is not checked: a correct engine never reads a torn node, and random bit
    /// flips on reads rarely land on one. The block is picked from the written blocks by the
    /// case's generator, so shrinking a case may move the pick.
    fn assess_rot(&mut self) -> Result<(), String> {
        let pick = self.rng.next_u64();
        let Some(block) = (0..64u64)
            .filter_map(|i| self.tap.written_block(pick.wrapping_add(i)))
            .find(|b| *b >= 2)
        else {
            return Ok(());
        };
        let sim = self.tap.sim().crash_image(CrashPolicy::KEEP_ALL).device;
        let mut buf = vec![0u8; 4096];
        sim.read(block, &mut buf).map_err(|e| format!("rot: read: {e}"))?;
        if buf.get(0..4) != Some(&[0x4c, 0x43, 0x46, 0x53][..]) {
            return Ok(());
        }
        let used: Vec<usize> = (0..buf.len()).filter(|i| buf[*i] != 0).collect();
        let at = used[(pick as usize / 64) % used.len()];
        buf[at] ^= 1 << ((pick >> 40) % 8);
        sim.write(block, &buf).map_err(|e| format!("rot: write: {e}"))?;
        sim.flush().map_err(|e| format!("rot: flush: {e}"))?;
        self.stats.damage_checks.fetch_add(1, Ordering::Relaxed);
        let dev: Arc<dyn BlockDevice> = Arc::new(sim);
        let report = lcfs::fsck::check(Arc::clone(&dev))
            .map_err(|e| format!("fsck of a rotten image failed instead of reporting: {e}"))?;
        let fs = match Fs::mount(dev, &self.options.mount) {
            Ok(fs) => fs,
            Err(e) if is_refusal(Errno(e.errno())) && !report.is_clean() => return Ok(()),
            Err(e) => return Err(format!("mount of a rotten image ({report}): {e}")),
        };
        // The final clean unmount's generation holds the harness's model.
        let model: Model = match self.snapshots.expected(fs.recovered_generation().0, None) {
            Ok(m) => Model::clone(&m),
            Err(_) => Model::clone(&self.model),
        };
        compare_tolerant(&model, &fs).map_err(|e| {
            format!("one flipped bit at byte {at} of block {block}: an image answered wrong: {e}")
        })?;
        if report.is_clean() {
            compare_all(&model, &fs).map_err(|e| {
                format!("one flipped bit at byte {at} of block {block}: fsck is clean, yet: {e}")
            })?;
        }
        Ok(())
    }

    /// Runs the calls `op` stands for (a `Populate` is one create and one write per file).
    fn run_op(&mut self, op: &Op, mode: Mode) -> Result<(), String> {
        let call = resolve(&self.model, op);
        let Call::Populate { layer, dir, count } = call else {
            return self.run_call(&call, mode);
        };
        for index in 0..count {
            if self.tap.sim().powered_off_at().is_some() {
                break;
            }
            let ino = self.model.next_ino();
            self.run_call(&populate_calls(layer, dir, index), mode)?;
            if self.model.next_ino() != ino {
                self.run_call(&populate_write(layer, ino, index), mode)?;
            }
        }
        Ok(())
    }

    /// Runs one call on both sides and checks what the operation and its crash points leave.
    fn run_call(&mut self, call: &Call, mode: Mode) -> Result<(), String> {
        if self.tap.sim().powered_off_at().is_some() {
            return Ok(());
        }
        if let Call::Remount = call {
            return self.remount(mode);
        }
        self.clock += 1;
        let now = ops::now(self.clock);
        let mut after = self.model.clone();
        let expected = run_model(&mut after, call, now);
        let after = Arc::new(after);
        let failures = self.probing(mode).then(|| self.install_probe(&after, call));
        let generation = self.fs()?.generation();
        let got = match call {
            // Under a fault, every answer must be right or a refusal, never wrong.
            Call::Verify if mode != Mode::Probe => {
                compare_tolerant(&self.model, self.fs()?).map(|_| Ok(Value::Unit))?
            }
            Call::Verify => compare_all(&self.model, self.fs()?).map(|()| Ok(Value::Unit))?,
            _ => run_engine(self.fs()?, call, now),
        };
        self.check_probes(failures, call)?;
        let issued = self.tap.take_issued();
        if got == expected {
            self.model = Arc::unwrap_or_clone(Arc::clone(&after));
        } else {
            let injected = mode != Mode::Probe;
            if !matches!(got, Err(errno) if injected && is_refusal(errno)) {
                return Err(disagreement(call, &expected, &got));
            }
            self.stats.io_errors.fetch_add(1, Ordering::Relaxed);
            if mode == Mode::Damaging || self.tap.sim().powered_off_at().is_some() {
                // The engine cannot be read now; the crash that follows decides.
                for generation in issued {
                    self.snapshots.issued(generation, Arc::clone(&after));
                }
                return Ok(());
            }
            self.resync(call, &got, &after, !issued.is_empty())?;
        }
        for generation in issued {
            self.snapshots.issued(generation, Arc::clone(&after));
        }
        // A checkpoint that returned is durable.
        let now = self.fs()?.generation();
        if now != generation {
            self.snapshots.durable(now.0);
        }
        Ok(())
    }

    /// After `call` failed with an injected I/O error: the engine holds exactly the state before
    /// it or after it; the model becomes that state.
    fn resync(
        &mut self,
        call: &Call,
        got: &Outcome,
        after: &Arc<Model>,
        issued: bool,
    ) -> Result<(), String> {
        self.tap.sim().clear_faults();
        let fs = self.fs()?;
        match compare_all(after, fs) {
            Ok(()) => self.model = Model::clone(after),
            Err(not_after) => {
                compare_all(&self.model, fs).map_err(|not_before| {
                    format!(
                        "after {} failed with {got:?}, the engine holds neither the state before \
                         nor after it:\n  against after: {not_after}\n  against before: \
                         {not_before}",
                        readable(&format!("{call:?}"))
                    )
                })?;
                if issued {
                    return Err(format!(
                        "{} failed and left the state before it, but issued a superblock for \
                         the state after it",
                        readable(&format!("{call:?}"))
                    ));
                }
            }
        }
        Ok(())
    }

    /// A clean unmount and a mount. If the unmount fails (an injected error), the mount finds
    /// whatever the device holds, like a recovery, and the model becomes that state.
    fn remount(&mut self, mode: Mode) -> Result<(), String> {
        let state = Arc::new(self.model.clone());
        let failures = self.probing(mode).then(|| self.install_probe(&state, &Call::Remount));
        let fs = self.fs.take().ok_or("the engine is not mounted")?;
        let unmounted = fs.unmount();
        self.check_probes(failures, &Call::Remount)?;
        for generation in self.tap.take_issued() {
            self.snapshots.issued(generation, Arc::clone(&state));
        }
        if let Err(e) = &unmounted {
            if mode == Mode::Probe {
                return Err(format!("clean unmount: {e}"));
            }
            self.stats.io_errors.fetch_add(1, Ordering::Relaxed);
            if self.tap.sim().powered_off_at().is_some() {
                return Ok(());
            }
            self.tap.sim().clear_faults();
        }
        let dev: Arc<dyn BlockDevice> = Arc::clone(&self.tap) as Arc<dyn BlockDevice>;
        let fs = match Fs::mount(Arc::clone(&dev), &self.options.mount) {
            Ok(fs) => fs,
            // A mount refused for an injected error: mount again without it. Its reserving
            // checkpoint may have issued a superblock of the state it found, which is the
            // newest the harness knows (its first flush made every issued one durable).
            Err(e) if mode != Mode::Probe && is_refusal(Errno(e.errno())) => {
                let found = self.snapshots.expected(self.snapshots.newest(), None)?;
                for generation in self.tap.take_issued() {
                    self.snapshots.issued(generation, Arc::clone(&found));
                }
                self.stats.io_errors.fetch_add(1, Ordering::Relaxed);
                if mode == Mode::Damaging || self.tap.sim().powered_off_at().is_some() {
                    return Ok(());
                }
                self.tap.sim().clear_faults();
                Fs::mount(dev, &self.options.mount).map_err(|e| format!("remount: {e}"))?
            }
            Err(e) => return Err(format!("remount: {e}")),
        };
        // The fault was the operation's; what follows is the harness's check.
        self.tap.sim().clear_faults();
        let generation = fs.recovered_generation().0;
        let model = self.snapshots.expected(generation, None)?;
        if unmounted.is_ok() && generation != self.snapshots.newest() {
            return Err(format!("a clean unmount left generation {generation}, not the newest"));
        }
        if mode != Mode::Damaging {
            compare_all(&model, &fs).map_err(|e| format!("after a remount: {e}"))?;
        }
        self.model = Model::clone(&model);
        // Mount flushes before it reads: what it found is durable, failed unmount or not; its
        // own checkpoints (the reservation, an orphan sweep) hold the same state, durable too.
        self.snapshots.durable(generation);
        for issued in self.tap.take_issued() {
            self.snapshots.issued(issued, Arc::clone(&model));
        }
        self.snapshots.durable(fs.generation().0);
        self.fs = Some(fs);
        Ok(())
    }

    fn probing(&self, mode: Mode) -> bool {
        mode == Mode::Probe && self.options.probe_every > 0
    }

    /// Installs the crash-state probe for `call`, whose checkpoints capture `in_flight`. Its
    /// random choices come from the case's seed and the call, not from the simulator's
    /// generator, so they stay the same while proptest shrinks the steps around the call.
    fn install_probe(&mut self, in_flight: &Arc<Model>, call: &Call) -> Arc<Mutex<Vec<String>>> {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut hasher = DefaultHasher::new();
        (self.seed, format!("{call:?}")).hash(&mut hasher);
        let mut probe = CrashProbe {
            snapshots: self.snapshots.clone(),
            in_flight: Arc::clone(in_flight),
            options: self.options.clone(),
            stats: Arc::clone(&self.stats),
            failures: Arc::clone(&failures),
            rng: Rng(hasher.finish()),
            points: 0,
        };
        self.tap.set_probe(Some(Box::new(move |sim, point| probe.at(sim, point))));
        failures
    }

    /// Removes the probe; `Err` with the first crash state that failed, if any.
    fn check_probes(
        &mut self,
        failures: Option<Arc<Mutex<Vec<String>>>>,
        call: &Call,
    ) -> Result<(), String> {
        self.tap.set_probe(None);
        let Some(failures) = failures else { return Ok(()) };
        let failures = failures.lock().unwrap_or_else(PoisonError::into_inner);
        match failures.first() {
            Some(failure) => Err(format!("during {}: {failure}", readable(&format!("{call:?}")))),
            None => Ok(()),
        }
    }

    /// Runs `op` under `fault`.
    fn fault(&mut self, fault: Fault, after: u8, op: &Op) -> Result<(), String> {
        let sim = Arc::clone(self.tap.sim());
        let n = u64::from(after);
        let misdirected = sim.counters().misdirected_writes;
        match fault {
            Fault::ReadError => sim.fail_read_after(n),
            Fault::WriteError => sim.fail_write_after(n),
            Fault::FlushError => sim.fail_flush_after(n),
            Fault::BitFlip => sim.set_fault_rates(FaultRates {
                bit_flip_on_read: 1.0 / f64::from(16u32 << (n % 3)),
                ..FaultRates::NONE
            }),
            Fault::Misdirect => self.arm_misdirect(n),
        }
        let mode = if fault == Fault::Misdirect { Mode::Damaging } else { Mode::Injected };
        let out = self.run_op(op, mode);
        self.tap.set_probe(None);
        sim.clear_faults();
        out?;
        if sim.counters().misdirected_writes > misdirected {
            self.damaged = true;
            return self.assess_damage();
        }
        Ok(())
    }

    /// Makes write `n` from now (superblocks skipped) land on a block written earlier.
    fn arm_misdirect(&mut self, n: u64) {
        let pick = self.rng.next_u64();
        let tap = Arc::downgrade(&self.tap);
        let mut writes = 0u64;
        let mut armed = false;
        self.tap.set_probe(Some(Box::new(move |sim, point| {
            let Point::Write(block) = point else { return };
            if armed || block < 2 {
                return;
            }
            if writes == n {
                let target = tap.upgrade().and_then(|tap| tap.written_block(pick));
                if let Some(target) = target.filter(|t| *t != block) {
                    sim.misdirect_next_write(Misdirect::To(target));
                    armed = true;
                }
            }
            writes += 1;
        })));
    }

    /// A misdirected write damaged the image: a fresh engine over everything written must
    /// refuse loudly or answer right, and if fsck finds nothing wrong, answer everything right.
    fn assess_damage(&mut self) -> Result<(), String> {
        self.stats.damage_checks.fetch_add(1, Ordering::Relaxed);
        let crashed = self.tap.sim().crash_image(CrashPolicy::KEEP_ALL);
        let dev: Arc<dyn BlockDevice> = Arc::new(crashed.device);
        let report = lcfs::fsck::check(Arc::clone(&dev))
            .map_err(|e| format!("fsck of a damaged image failed instead of reporting: {e}"))?;
        let fs = match Fs::mount(dev, &self.options.mount) {
            Ok(fs) => fs,
            Err(e) if is_refusal(Errno(e.errno())) && !report.is_clean() => return Ok(()),
            Err(e) => return Err(format!("mount of a damaged image ({report}): {e}")),
        };
        let generation = fs.recovered_generation().0;
        let model = self.snapshots.expected(generation, None)?;
        let refusals = compare_tolerant(&model, &fs)
            .map_err(|e| format!("a damaged image answered wrong: {e}"))?;
        self.stats.refusals.fetch_add(refusals, Ordering::Relaxed);
        if report.is_clean() {
            compare_all(&model, &fs).map_err(|e| format!("fsck is clean, yet: {e}"))?;
        }
        Ok(())
    }

    /// Cuts the power at crash point `after` of `op` (or after it), crashes with `policy`,
    /// recovers and goes on from the recovered state.
    fn power_cut(&mut self, after: u16, policy: Policy, op: Option<&Op>) -> Result<(), String> {
        if let Some(op) = op {
            self.tap.sim().set_crash_at(u64::from(after));
            self.run_op(op, Mode::Injected)?;
        }
        self.crash_and_recover(policy.crash_policy())
    }

    fn crash_and_recover(&mut self, policy: CrashPolicy) -> Result<(), String> {
        drop(self.fs.take());
        let sim = Arc::clone(self.tap.sim());
        let cut = sim.powered_off_at();
        let report = sim.crash(policy);
        self.stats.power_cuts.fetch_add(1, Ordering::Relaxed);
        let dev: Arc<dyn BlockDevice> = Arc::clone(&self.tap) as Arc<dyn BlockDevice>;
        let recovered = recover(&dev, &self.snapshots, None, &self.options.mount)
            .map_err(|e| format!("power cut at {cut:?}, {report}: {e}"))?;
        self.stats.count(policy);
        // The mount's own checkpoints: durable, and `recovered.generation` is the last.
        self.tap.take_issued();
        self.model = Model::clone(&recovered.model);
        self.snapshots = Snapshots::new(recovered.generation, recovered.model);
        self.fs = Some(recovered.fs);
        Ok(())
    }
}

/// A description of a disagreement between the model and the engine.
fn disagreement(call: &Call, expected: &Outcome, got: &Outcome) -> String {
    format!(
        "{}:\n  model:  {}\n  engine: {}",
        readable(&format!("{call:?}")),
        short(expected),
        short(got)
    )
}

/// The probe of one call: checks a crash state at its crash points.
struct CrashProbe {
    snapshots: Snapshots,
    in_flight: Arc<Model>,
    options: Options,
    stats: Arc<Stats>,
    failures: Arc<Mutex<Vec<String>>>,
    rng: Rng,
    points: u64,
}

impl CrashProbe {
    fn at(&mut self, sim: &SimDevice, point: Point) {
        self.points += 1;
        let failed = !self.failures.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
        if failed || (self.points - 1) % self.options.probe_every.max(1) != 0 {
            return;
        }
        let policies = if self.options.every_policy {
            EVERY_POLICY.to_vec()
        } else {
            let pending = sim.pending_writes() as u64;
            vec![match self.rng.next_u64() % 5 {
                0 => CrashPolicy::DropAll,
                1 => CrashPolicy::Prefix((self.rng.next_u64() % (pending + 1)) as usize),
                2 => CrashPolicy::Subset,
                3 => CrashPolicy::Torn,
                _ => CrashPolicy::Corrupt,
            }]
        };
        for policy in policies {
            let crashed = sim.crash_image_seeded(policy, self.rng.next_u64());
            let dev = Arc::new(crashed.device);
            match self.check(&dev) {
                Ok(()) => self.stats.count(policy),
                Err(e) => {
                    let what = format!("crash before {point:?} ({}): {e}", crashed.report);
                    self.failures.lock().unwrap_or_else(PoisonError::into_inner).push(what);
                    return;
                }
            }
        }
    }

    fn check(&mut self, dev: &Arc<SimDevice>) -> Result<(), String> {
        let as_dev: Arc<dyn BlockDevice> = Arc::clone(dev) as Arc<dyn BlockDevice>;
        let recovered =
            recover(&as_dev, &self.snapshots, Some(&self.in_flight), &self.options.mount)?;
        if self.rng.next_u64() % self.options.recovery_crash_every.max(1) == 0 {
            let cut = self.rng.next_u64() % 16;
            recovery::crash_during_recovery(dev, recovered, cut, &self.options.mount)?;
            self.stats.recovery_crashes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
