//! `SimDevice` and its `BlockDevice` implementation: reads, writes and flushes through the fault
//! schedule and the power switch.
//!
//! Invariants:
//! - argument checks (`check_access`) come first: a bad call is rejected before it is counted,
//!   faulted or allowed to draw from the generator;
//! - a read returns the newest value of the block (pending, else durable, else zeros), unless a
//!   fault fails it or flips one bit of a non-zero byte of the returned copy (never of the
//!   stored block);
//! - a failed write or flush changes no block, durable or pending;
//! - a successful flush moves every pending write, in issue order, into the durable image.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use lcfs_device::{check_access, BlockDevice, DeviceError, DeviceResult, BLOCK_SIZE};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::state::{Image, PendingWrite, PointKind, State};

/// A deterministic simulated block device with crash and fault injection.
///
/// All test hooks (crash, faults, counters, power cuts) are inherent methods; the engine sees only
/// the `BlockDevice` trait. The device is `Send + Sync`: every operation takes one lock, so
/// operations from several threads are serialized in the order they take it.
pub struct SimDevice {
    block_count: u64,
    seed: u64,
    state: Mutex<State>,
}

impl SimDevice {
    /// A zeroed device of `block_count` blocks of 4096 bytes whose every random choice comes from
    /// `seed`.
    pub fn new(block_count: u64, seed: u64) -> Self {
        Self::with_image(block_count, seed, Image::new())
    }

    /// A device holding `image` as its durable content, with nothing pending.
    pub(crate) fn with_image(block_count: u64, seed: u64, image: Image) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(seed);
        Self {
            block_count,
            seed,
            state: Mutex::new(State::new(image, rng)),
        }
    }

    /// The seed this device's generator started from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Locks the state. A poisoned lock is taken over: every critical section leaves the state
    /// consistent before anything in it can panic, and the panic has already failed the test.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimDevice")
            .field("block_count", &self.block_count)
            .field("seed", &self.seed)
            .field("durable_blocks", &state.durable.len())
            .field("pending_writes", &state.pending.log().len())
            .field("power", &state.power)
            .field("counters", &state.counters)
            .finish_non_exhaustive()
    }
}

impl BlockDevice for SimDevice {
    fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    fn block_count(&self) -> u64 {
        self.block_count
    }

    fn read(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()> {
        check_access(self, block, buf.len())?;
        let mut guard = self.lock();
        let state = &mut *guard;
        state.check_power()?;
        state.counters.reads += 1;
        if state.faults.read_fails(block, &mut state.rng) {
            state.counters.read_errors += 1;
            return Err(DeviceError::Fault(format!(
                "injected read error at block {block}"
            )));
        }
        match state.newest(block) {
            Some(data) => buf.copy_from_slice(data),
            None => buf.fill(0),
        }
        if state.faults.read_flips(block, &mut state.rng) {
            state.counters.bit_flips += 1;
            // Flip a bit of a byte that holds something (a zero tail of a node or a block
            // changes nothing a reader uses); a block of zeros gets any bit.
            let used: Vec<usize> =
                buf.iter().enumerate().filter(|(_, b)| **b != 0).map(|(i, _)| i).collect();
            let bit = state.rng.random_range(0..8usize);
            let at = if used.is_empty() {
                state.rng.random_range(0..buf.len())
            } else {
                used.get(state.rng.random_range(0..used.len())).copied().unwrap_or(0)
            };
            if let Some(byte) = buf.get_mut(at) {
                *byte ^= 1 << bit;
            }
        }
        Ok(())
    }

    fn write(&self, block: u64, buf: &[u8]) -> DeviceResult<()> {
        check_access(self, block, buf.len())?;
        let mut guard = self.lock();
        let state = &mut *guard;
        let number = state.counters.writes;
        state.pass_crash_point(PointKind::Write)?;
        if state.faults.write_fails(&mut state.rng) {
            state.counters.write_errors += 1;
            return Err(DeviceError::Fault(format!(
                "injected write error at block {block} (write {number})"
            )));
        }
        let target = state
            .faults
            .write_target(block, self.block_count, &mut state.rng);
        if target != block {
            state.counters.misdirected_writes += 1;
        }
        state.pending.push(PendingWrite {
            number,
            block: target,
            data: buf.into(),
        });
        Ok(())
    }

    fn flush(&self) -> DeviceResult<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.pass_crash_point(PointKind::Flush)?;
        if state.faults.flush_fails(&mut state.rng) {
            state.counters.flush_errors += 1;
            let pending = state.pending.log().len();
            return Err(DeviceError::Fault(format!(
                "injected flush error ({pending} writes stay pending)"
            )));
        }
        for write in state.pending.take() {
            state.durable.insert(write.block, write.data);
        }
        Ok(())
    }
}
