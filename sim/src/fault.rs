//! The fault schedule: which reads, writes and flushes fail, flip a bit, or land elsewhere.
//!
//! Three ways to schedule a fault, which combine:
//! - by count (`*_after(n)`): one-shot; the next `n` operations of that kind pass and the one
//!   after fails; counts start when the fault is scheduled;
//! - by block (`fail_read`, `flip_bit_on_read`): sticky, like a bad sector; every read of the
//!   block is affected until `clear_faults` or a crash;
//! - by rate (`FaultRates`): each operation draws from the device's generator.
//!
//! Invariants:
//! - a rate of zero draws nothing from the generator, so enabling no fault leaves the random
//!   sequence of crashes unchanged;
//! - every rate lies in `[0, 1]` (checked when set).

use std::collections::BTreeSet;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Probabilities of random faults, each drawn per operation from the device's seed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultRates {
    /// Probability that a read fails.
    pub read_error: f64,
    /// Probability that a write fails (and changes nothing).
    pub write_error: f64,
    /// Probability that a flush fails (and makes nothing durable).
    pub flush_error: f64,
    /// Probability that a read returns one bit flipped.
    pub bit_flip_on_read: f64,
    /// Probability that a write lands on another block, chosen at random.
    pub misdirected_write: f64,
}

impl FaultRates {
    /// No random faults.
    pub const NONE: FaultRates = FaultRates {
        read_error: 0.0,
        write_error: 0.0,
        flush_error: 0.0,
        bit_flip_on_read: 0.0,
        misdirected_write: 0.0,
    };

    fn all(&self) -> [(&'static str, f64); 5] {
        [
            ("read_error", self.read_error),
            ("write_error", self.write_error),
            ("flush_error", self.flush_error),
            ("bit_flip_on_read", self.bit_flip_on_read),
            ("misdirected_write", self.misdirected_write),
        ]
    }
}

/// Where a misdirected write lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misdirect {
    /// On this block (which must be on the device).
    To(u64),
    /// On a block chosen at random among the others (if the device has only one block, the write
    /// is not misdirected).
    Anywhere,
}

/// The faults scheduled on one device.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    rates: FaultRates,
    read_error_in: Option<u64>,
    write_error_in: Option<u64>,
    flush_error_in: Option<u64>,
    bad_reads: BTreeSet<u64>,
    flipped_reads: BTreeSet<u64>,
    misdirect_next: Option<Misdirect>,
}

impl Faults {
    /// Sets the random fault rates.
    ///
    /// # Panics
    ///
    /// If a rate is not in `[0, 1]` (a bug in the test that set it).
    pub(crate) fn set_rates(&mut self, rates: FaultRates) {
        for (name, rate) in rates.all() {
            assert!(
                (0.0..=1.0).contains(&rate),
                "fault rate {name} = {rate} is outside [0, 1]"
            );
        }
        self.rates = rates;
    }

    pub(crate) fn fail_read_after(&mut self, n: u64) {
        self.read_error_in = Some(n);
    }

    pub(crate) fn fail_write_after(&mut self, n: u64) {
        self.write_error_in = Some(n);
    }

    pub(crate) fn fail_flush_after(&mut self, n: u64) {
        self.flush_error_in = Some(n);
    }

    pub(crate) fn fail_read(&mut self, block: u64) {
        self.bad_reads.insert(block);
    }

    pub(crate) fn flip_bit_on_read(&mut self, block: u64) {
        self.flipped_reads.insert(block);
    }

    pub(crate) fn misdirect_next_write(&mut self, target: Misdirect) {
        self.misdirect_next = Some(target);
    }

    /// Whether this read of `block` fails.
    pub(crate) fn read_fails(&mut self, block: u64, rng: &mut ChaCha8Rng) -> bool {
        let counted = count_down(&mut self.read_error_in);
        counted || self.bad_reads.contains(&block) || chance(rng, self.rates.read_error)
    }

    /// Whether this write fails.
    pub(crate) fn write_fails(&mut self, rng: &mut ChaCha8Rng) -> bool {
        count_down(&mut self.write_error_in) || chance(rng, self.rates.write_error)
    }

    /// Whether this flush fails.
    pub(crate) fn flush_fails(&mut self, rng: &mut ChaCha8Rng) -> bool {
        count_down(&mut self.flush_error_in) || chance(rng, self.rates.flush_error)
    }

    /// Whether this (successful) read of `block` returns a flipped bit.
    pub(crate) fn read_flips(&mut self, block: u64, rng: &mut ChaCha8Rng) -> bool {
        self.flipped_reads.contains(&block) || chance(rng, self.rates.bit_flip_on_read)
    }

    /// The block a write meant for `block` lands on, on a device of `block_count` blocks.
    pub(crate) fn write_target(
        &mut self,
        block: u64,
        block_count: u64,
        rng: &mut ChaCha8Rng,
    ) -> u64 {
        let misdirect = match self.misdirect_next.take() {
            Some(target) => Some(target),
            None => chance(rng, self.rates.misdirected_write).then_some(Misdirect::Anywhere),
        };
        match misdirect {
            None => block,
            Some(Misdirect::To(target)) => target,
            Some(Misdirect::Anywhere) if block_count < 2 => block,
            Some(Misdirect::Anywhere) => {
                // Any block but `block`: draw among the others and skip over `block`.
                let other = rng.random_range(0..block_count - 1);
                if other >= block {
                    other + 1
                } else {
                    other
                }
            }
        }
    }
}

/// Ticks a one-shot countdown; true when it reaches its operation (and disarms it).
fn count_down(remaining: &mut Option<u64>) -> bool {
    match *remaining {
        Some(0) => {
            *remaining = None;
            true
        }
        Some(n) => {
            *remaining = Some(n - 1);
            false
        }
        None => false,
    }
}

/// True with probability `p`; draws nothing when `p` is zero.
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    p > 0.0 && rng.random_bool(p)
}
