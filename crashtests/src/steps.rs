//! The alphabet of the crash-consistency test: the operations of the conformance alphabet
//! (`ops::Op`), plus crashes and I/O errors (TESTING.md §3-4), with their proptest strategies.
//!
//! - `Step::Op`: an operation; the harness checks a crash state at every crash point of the
//!   checkpoints it runs (a probe, on a copy: the run itself goes on);
//! - `Step::Fault`: an operation under one injected fault (read, write or flush error, bit flips
//!   on reads, or a misdirected write);
//! - `Step::PowerCut`: the power fails at a crash point of an operation (or right after it, or
//!   with no operation at all), the device crashes with a policy, and the run goes on from the
//!   recovered state.
//!
//! Invariant: every step is valid in every state (operations pick their objects by index, see
//! `ops`), so shrinking keeps sequences meaningful.

use lcfs_sim::CrashPolicy;
use proptest::prelude::*;

use crate::ops::Op;
use crate::strategy;

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The read after `after` reads fails (EIO).
    ReadError,
    /// The write after `after` writes fails and changes nothing.
    WriteError,
    /// The flush after `after` flushes fails and makes nothing durable (a checkpoint has two).
    FlushError,
    /// Reads return one bit flipped, each with a probability of 1 in 16, 32 or 64 (as `after`
    /// says, modulo 3).
    BitFlip,
    /// The write after `after` writes (superblocks skipped) lands on a block written before.
    Misdirect,
}

/// A crash policy, as a step names it (`Prefix` counts the pending writes kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    DropAll,
    Prefix(u16),
    Subset,
    Torn,
    Corrupt,
}

impl Policy {
    /// The simulator's policy.
    pub fn crash_policy(self) -> CrashPolicy {
        match self {
            Policy::DropAll => CrashPolicy::DropAll,
            Policy::Prefix(k) => CrashPolicy::Prefix(usize::from(k)),
            Policy::Subset => CrashPolicy::Subset,
            Policy::Torn => CrashPolicy::Torn,
            Policy::Corrupt => CrashPolicy::Corrupt,
        }
    }
}

/// One step of a crash-consistency case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An operation, with every crash point of its checkpoints checked.
    Op(Op),
    /// An operation under `fault`, armed `after` operations of its kind from now.
    Fault { fault: Fault, after: u8, op: Op },
    /// The power fails before crash point `after` of `op` (after `op` if it has fewer, now if
    /// there is no `op`); the device crashes under `policy`; the run recovers and goes on.
    PowerCut { after: u16, policy: Policy, op: Option<Op> },
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::DropAll),
        (0..64u16).prop_map(Policy::Prefix),
        Just(Policy::Subset),
        Just(Policy::Torn),
        Just(Policy::Corrupt),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::ReadError),
        3 => Just(Fault::WriteError),
        3 => Just(Fault::FlushError),
        3 => Just(Fault::BitFlip),
        2 => Just(Fault::Misdirect),
    ]
}

/// An operation that writes: a durability point, or one that changes a layer.
fn writing_op() -> BoxedStrategy<Op> {
    prop_oneof![
        2 => strategy::op(),
        1 => prop_oneof![
            Just(Op::Sync),
            Just(Op::Checkpoint),
            Just(Op::Remount),
            (any::<u16>(), prop::option::of(any::<u16>()))
                .prop_map(|(name, parent)| Op::CreateLayer { name, parent }),
            any::<u16>().prop_map(|name| Op::CommitLayer { name }),
            any::<u16>().prop_map(|name| Op::RemoveLayer { name }),
        ],
    ]
    .boxed()
}

/// One step: mostly operations, now and then a fault or a power cut.
pub fn step() -> BoxedStrategy<Step> {
    prop_oneof![
        40 => strategy::op().prop_map(Step::Op),
        8 => (fault(), 0..8u8, writing_op())
            .prop_map(|(fault, after, op)| Step::Fault { fault, after, op }),
        4 => (0..48u16, policy(), prop::option::weighted(0.85, writing_op()))
            .prop_map(|(after, policy, op)| Step::PowerCut { after, policy, op }),
    ]
    .boxed()
}
