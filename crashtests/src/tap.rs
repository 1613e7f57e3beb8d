//! `Tap`: the block device the crash harness gives the engine. It forwards everything to a
//! `SimDevice` and, before each write and flush (each crash point), calls a probe with the
//! simulator as it is at that instant, so that `SimDevice::crash_image` there yields exactly the
//! states a power failure at that point can leave. It also notes the generation of every
//! superblock the engine hands to the device, which tells the harness which model state each
//! generation stands for.
//!
//! Invariants:
//! - the engine sees only `BlockDevice`; the probe and the notes are the harness's side;
//! - the probe runs before the simulator counts the point, with the tap's lock released, so it
//!   may do anything with the simulator that does not write through this tap;
//! - a superblock write is noted only if the simulator accepted it (a failed write changed
//!   nothing, so its generation was never issued).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lcfs::format::superblock::{Superblock, SUPERBLOCK_SLOTS};
use lcfs::BlockNo;
use lcfs_device::{BlockDevice, DeviceResult};
use lcfs_sim::SimDevice;

/// A crash point as the tap sees it: the write (of which block) or flush about to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    Write(u64),
    Flush,
}

/// What the harness runs at each crash point.
pub type Probe = Box<dyn FnMut(&SimDevice, Point) + Send>;

/// A `BlockDevice` in front of a `SimDevice`, with a probe at every crash point.
pub struct Tap {
    sim: Arc<SimDevice>,
    state: Mutex<TapState>,
}

#[derive(Default)]
struct TapState {
    probe: Option<Probe>,
    /// Generations of the superblocks issued since the last `take_issued`, in issue order.
    issued: Vec<u64>,
    /// Every block written through the tap (past the superblocks), in first-write order.
    written: Vec<u64>,
    seen: HashSet<u64>,
}

impl Tap {
    /// A tap over `sim`, with no probe.
    pub fn new(sim: Arc<SimDevice>) -> Self {
        Tap { sim, state: Mutex::new(TapState::default()) }
    }

    /// The simulator behind the tap.
    pub fn sim(&self) -> &Arc<SimDevice> {
        &self.sim
    }

    /// Installs `probe` (or none); returns the previous one.
    pub fn set_probe(&self, probe: Option<Probe>) -> Option<Probe> {
        std::mem::replace(&mut self.lock().probe, probe)
    }

    /// The generations of the superblocks issued since the last call, in issue order.
    pub fn take_issued(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().issued)
    }

    /// The `n`-th block (modulo their number) among those ever written past the superblocks.
    pub fn written_block(&self, n: u64) -> Option<u64> {
        let state = self.lock();
        let count = state.written.len() as u64;
        (count > 0).then(|| state.written[(n % count) as usize])
    }

    fn lock(&self) -> MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the probe, if any, without holding the lock.
    fn probe(&self, point: Point) {
        let probe = self.lock().probe.take();
        if let Some(mut probe) = probe {
            probe(&self.sim, point);
            let mut state = self.lock();
            if state.probe.is_none() {
                state.probe = Some(probe);
            }
        }
    }
}

impl BlockDevice for Tap {
    fn block_size(&self) -> usize {
        self.sim.block_size()
    }

    fn block_count(&self) -> u64 {
        self.sim.block_count()
    }

    fn read(&self, block: u64, buf: &mut [u8]) -> DeviceResult<()> {
        self.sim.read(block, buf)
    }

    fn write(&self, block: u64, buf: &[u8]) -> DeviceResult<()> {
        self.probe(Point::Write(block));
        self.sim.write(block, buf)?;
        let slot = SUPERBLOCK_SLOTS.iter().any(|s| s.0 == block);
        let mut state = self.lock();
        if slot {
            if let Ok(sb) = Superblock::decode(buf, BlockNo(block), self.sim.block_count()) {
                state.issued.push(sb.generation.0);
            }
        } else if state.seen.insert(block) {
            state.written.push(block);
        }
        Ok(())
    }

    fn flush(&self) -> DeviceResult<()> {
        self.probe(Point::Flush);
        self.sim.flush()
    }
}
