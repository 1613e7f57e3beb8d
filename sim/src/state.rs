//! The simulator's mutable state, kept behind one lock: durable image, pending writes, faults,
//! counters, power, and the one random generator.
//!
//! Invariants:
//! - `durable` is what the media holds for certain; only a flush or a crash changes it;
//! - `pending.log` holds the writes issued since the last successful flush, in issue order, with
//!   strictly increasing write numbers;
//! - `pending.newest[b]` is the index in `log` of the last write to block `b`, for exactly the
//!   blocks that appear in `log`;
//! - every random choice is drawn from `rng`, in an order fixed by the sequence of calls (maps are
//!   `BTreeMap`s wherever iteration order feeds the generator).

use std::collections::{BTreeMap, HashMap};

use rand_chacha::ChaCha8Rng;

use crate::counters::Counters;
use crate::fault::Faults;

/// Block contents by block number; a missing block reads as zeros.
pub(crate) type Image = BTreeMap<u64, Box<[u8]>>;

/// One write issued since the last flush.
#[derive(Clone, Debug)]
pub(crate) struct PendingWrite {
    /// The write's number among all writes issued to the device (0 is the first).
    pub(crate) number: u64,
    /// The block the data landed on (after any misdirection).
    pub(crate) block: u64,
    /// One block of data.
    pub(crate) data: Box<[u8]>,
}

/// The writes issued since the last flush.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    log: Vec<PendingWrite>,
    newest: HashMap<u64, usize>,
}

impl Pending {
    /// Records a write as the newest value of its block.
    pub(crate) fn push(&mut self, write: PendingWrite) {
        debug_assert!(self.log.last().is_none_or(|w| w.number < write.number));
        self.newest.insert(write.block, self.log.len());
        self.log.push(write);
    }

    /// The newest pending value of `block`, if it has one.
    pub(crate) fn newest(&self, block: u64) -> Option<&[u8]> {
        let index = *self.newest.get(&block)?;
        self.log.get(index).map(|w| &*w.data)
    }

    /// The pending writes in issue order.
    pub(crate) fn log(&self) -> &[PendingWrite] {
        &self.log
    }

    /// Removes and returns every pending write, in issue order.
    pub(crate) fn take(&mut self) -> Vec<PendingWrite> {
        self.newest.clear();
        std::mem::take(&mut self.log)
    }
}

/// When the power fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Power {
    /// On, with no cut scheduled.
    On,
    /// On until the crash point with this number (`Counters::crash_points`) arrives.
    CutAtPoint(u64),
    /// On until the write with this number (`Counters::writes`) arrives.
    CutAtWrite(u64),
    /// Off since the crash point with this number: every operation fails.
    Off(u64),
}

/// Everything the lock guards.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) durable: Image,
    pub(crate) pending: Pending,
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    pub(crate) power: Power,
    pub(crate) rng: ChaCha8Rng,
}

/// The kind of a crash point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PointKind {
    Write,
    Flush,
}

impl State {
    /// A state with `durable` as its image and nothing pending.
    pub(crate) fn new(durable: Image, rng: ChaCha8Rng) -> Self {
        Self {
            durable,
            pending: Pending::default(),
            faults: Faults::default(),
            counters: Counters::default(),
            power: Power::On,
            rng,
        }
    }

    /// The newest value of `block`: pending if any, else durable; `None` reads as zeros.
    pub(crate) fn newest(&self, block: u64) -> Option<&[u8]> {
        self.pending
            .newest(block)
            .or_else(|| self.durable.get(&block).map(|d| &**d))
    }

    /// `Err` if the power is off.
    pub(crate) fn check_power(&self) -> Result<(), lcfs_device::DeviceError> {
        match self.power {
            Power::Off(point) => Err(power_off(point)),
            _ => Ok(()),
        }
    }

    /// Passes the crash point of a write or flush: cuts the power if it was scheduled here,
    /// else counts the point. `Err` if the power is (now) off.
    pub(crate) fn pass_crash_point(
        &mut self,
        kind: PointKind,
    ) -> Result<(), lcfs_device::DeviceError> {
        self.check_power()?;
        let point = self.counters.crash_points;
        let cut = match self.power {
            Power::CutAtPoint(at) => at == point,
            Power::CutAtWrite(at) => kind == PointKind::Write && at == self.counters.writes,
            Power::On | Power::Off(_) => false,
        };
        if cut {
            self.power = Power::Off(point);
            return Err(power_off(point));
        }
        self.counters.crash_points += 1;
        match kind {
            PointKind::Write => self.counters.writes += 1,
            PointKind::Flush => self.counters.flushes += 1,
        }
        Ok(())
    }
}

fn power_off(point: u64) -> lcfs_device::DeviceError {
    lcfs_device::DeviceError::Fault(format!(
        "simulated power loss: the device is off since crash point {point}"
    ))
}
