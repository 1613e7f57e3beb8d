//! The test hooks of `SimDevice`: crashes, power cuts, fault scheduling and inspection.
//!
//! Invariants:
//! - hooks are inherent methods, never part of `BlockDevice`: the engine cannot call them;
//! - after `crash`, the device holds only the durable result, the power is on, and no fault or
//!   power cut is scheduled (the harness schedules afresh for recovery); the counters go on;
//! - `crash_image` and `fork` leave this device untouched except for its generator, from which
//!   the new device's seed is drawn, so a whole tree of crash states replays from one seed;
//!   `crash_image_seeded` leaves even the generator untouched;
//! - misuse by a test (a fault rate outside `[0, 1]`, a misdirection off the device, a power cut
//!   scheduled while the power is off) is a bug in the test and panics with a message.

use lcfs_device::{check_access, BlockDevice, DeviceResult};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::counters::Counters;
use crate::crash;
use crate::device::SimDevice;
use crate::fault::{FaultRates, Faults, Misdirect};
use crate::report::{CrashPolicy, CrashReport};
use crate::state::{Power, State};

/// A crash state: a new device holding the post-crash image, and what the crash kept.
#[derive(Debug)]
pub struct Crashed {
    /// The device after the crash: durable image only, power on, no fault scheduled.
    pub device: SimDevice,
    /// What survived of the pending writes.
    pub report: CrashReport,
}

/// Crashes.
impl SimDevice {
    /// Crashes this device: applies `policy` to the pending writes, keeps only the durable result,
    /// turns the power back on and clears every scheduled fault and power cut.
    pub fn crash(&self, policy: CrashPolicy) -> CrashReport {
        let mut guard = self.lock();
        let state = &mut *guard;
        let log = state.pending.take();
        let report = crash::apply(policy, &mut state.durable, &log, &mut state.rng);
        state.faults = Faults::default();
        state.power = Power::On;
        state.counters.crashes += 1;
        report
    }

    /// The state a crash under `policy` would leave, as a new device; this device keeps its
    /// pending writes (and its power state), so a harness can take many crash states from it.
    pub fn crash_image(&self, policy: CrashPolicy) -> Crashed {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut image = state.durable.clone();
        let report = crash::apply(policy, &mut image, state.pending.log(), &mut state.rng);
        state.counters.crashes += 1;
        let seed = state.rng.next_u64();
        Crashed {
            device: SimDevice::with_image(self.block_count(), seed, image),
            report,
        }
    }

    /// `crash_image` with its random choices drawn from a generator seeded with `seed`, this
    /// device's own generator left untouched: a harness that derives `seed` from what it tests
    /// gets the same crash state for the same test however many crash states it took before
    /// (which keeps a failing case failing while proptest shrinks it).
    pub fn crash_image_seeded(&self, policy: CrashPolicy, seed: u64) -> Crashed {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut image = state.durable.clone();
        let report = crash::apply(policy, &mut image, state.pending.log(), &mut rng);
        state.counters.crashes += 1;
        Crashed {
            device: SimDevice::with_image(self.block_count(), rng.next_u64(), image),
            report,
        }
    }

    /// A crash policy drawn from the seed: each kind equally likely, and for `Prefix` a length
    /// between 0 and the number of pending writes.
    pub fn choose_crash_policy(&self) -> CrashPolicy {
        let mut guard = self.lock();
        let state = &mut *guard;
        match state.rng.random_range(0..5u8) {
            0 => CrashPolicy::DropAll,
            1 => CrashPolicy::Prefix(state.rng.random_range(0..=state.pending.log().len())),
            2 => CrashPolicy::Subset,
            3 => CrashPolicy::Torn,
            _ => CrashPolicy::Corrupt,
        }
    }

    /// An exact copy of this device's content (durable image and pending writes) and counters,
    /// with the power on, no fault scheduled, and a seed drawn from this device's generator.
    pub fn fork(&self) -> SimDevice {
        let mut guard = self.lock();
        let seed = guard.rng.next_u64();
        let copy = SimDevice::with_image(self.block_count(), seed, guard.durable.clone());
        let mut copy_state = copy.lock();
        copy_state.pending = guard.pending.clone();
        copy_state.counters = guard.counters;
        drop(copy_state);
        copy
    }
}

/// Power cuts: enumerating crash points.
impl SimDevice {
    /// Cuts the power just before the `n`-th crash point from now (0: the next write or flush).
    /// That operation and every later one fail with `DeviceError::Fault`; `crash` or
    /// `crash_image` then give the states a crash at that point can leave.
    ///
    /// # Panics
    ///
    /// If the power is already off.
    pub fn set_crash_at(&self, n: u64) {
        let mut state = self.lock();
        assert_power_on(&state);
        state.power = Power::CutAtPoint(state.counters.crash_points.saturating_add(n));
    }

    /// Cuts the power just before the `n`-th write from now (0: the next write); flushes before
    /// it still happen. Otherwise as [`SimDevice::set_crash_at`].
    ///
    /// # Panics
    ///
    /// If the power is already off.
    pub fn set_crash_at_write(&self, n: u64) {
        let mut state = self.lock();
        assert_power_on(&state);
        state.power = Power::CutAtWrite(state.counters.writes.saturating_add(n));
    }

    /// The crash point at which the power failed, if it is off.
    pub fn powered_off_at(&self) -> Option<u64> {
        match self.lock().power {
            Power::Off(point) => Some(point),
            Power::On | Power::CutAtPoint(_) | Power::CutAtWrite(_) => None,
        }
    }
}

/// Faults (see the crate documentation for what the engine must do about each).
impl SimDevice {
    /// The read after the next `n` reads fails (one-shot).
    pub fn fail_read_after(&self, n: u64) {
        self.lock().faults.fail_read_after(n);
    }

    /// The write after the next `n` writes fails and changes nothing (one-shot).
    pub fn fail_write_after(&self, n: u64) {
        self.lock().faults.fail_write_after(n);
    }

    /// The flush after the next `n` flushes fails and makes nothing durable (one-shot).
    pub fn fail_flush_after(&self, n: u64) {
        self.lock().faults.fail_flush_after(n);
    }

    /// Every read of `block` fails until the faults are cleared (a bad sector).
    pub fn fail_read(&self, block: u64) {
        self.lock().faults.fail_read(block);
    }

    /// Every read of `block` returns one bit flipped (a different random bit each time) until the
    /// faults are cleared; the stored block stays intact.
    pub fn flip_bit_on_read(&self, block: u64) {
        self.lock().faults.flip_bit_on_read(block);
    }

    /// The next write lands on `target` instead of its own block, which keeps its old value.
    ///
    /// # Panics
    ///
    /// If `target` is `Misdirect::To` a block past the end of the device.
    pub fn misdirect_next_write(&self, target: Misdirect) {
        if let Misdirect::To(block) = target {
            assert!(
                block < self.block_count(),
                "misdirection to block {block}, off the device"
            );
        }
        self.lock().faults.misdirect_next_write(target);
    }

    /// Sets the probabilities of random faults, drawn per operation from the seed.
    ///
    /// # Panics
    ///
    /// If a rate is outside `[0, 1]`.
    pub fn set_fault_rates(&self, rates: FaultRates) {
        self.lock().faults.set_rates(rates);
    }

    /// Removes every scheduled fault and sets every fault rate to zero (power cuts stay).
    pub fn clear_faults(&self) {
        self.lock().faults = Faults::default();
    }
}

/// Inspection.
impl SimDevice {
    /// The counts of operations, crash points, crashes and faults so far.
    pub fn counters(&self) -> Counters {
        self.lock().counters
    }

    /// The number of writes issued since the last successful flush.
    pub fn pending_writes(&self) -> usize {
        self.lock().pending.log().len()
    }

    /// Reads the durable value of `block` (what a `DropAll` crash would leave), bypassing pending
    /// writes, faults, counters and the power switch.
    pub fn read_durable(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()> {
        check_access(self, block, buf.len())?;
        match self.lock().durable.get(&block) {
            Some(data) => buf.copy_from_slice(data),
            None => buf.fill(0),
        }
        Ok(())
    }
}

fn assert_power_on(state: &State) {
    assert!(
        !matches!(state.power, Power::Off(_)),
        "a power cut scheduled on a device whose power is off: crash it first"
    );
}
