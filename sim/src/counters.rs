//! What a `SimDevice` has done: operations, crash points, crashes and injected faults.
//!
//! Invariants:
//! - an operation rejected for its arguments (`OutOfRange`, `BadBuffer`) or because the power is
//!   off is not counted anywhere;
//! - every other read, write and flush is counted, whether or not a fault made it fail;
//! - `crash_points == writes + flushes`: each write and each flush is one point where the power
//!   could fail, so a write's number (in a `CrashReport`) is its index among all writes.

/// Counts of operations and injected faults since the device was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Reads issued (including failed ones).
    pub reads: u64,
    /// Writes issued (including failed and misdirected ones).
    pub writes: u64,
    /// Flushes issued (including failed ones).
    pub flushes: u64,
    /// Crash points passed: one per write and per flush.
    pub crash_points: u64,
    /// Crashes taken (`crash` and `crash_image` calls).
    pub crashes: u64,
    /// Reads that returned an injected error.
    pub read_errors: u64,
    /// Writes that returned an injected error.
    pub write_errors: u64,
    /// Flushes that returned an injected error.
    pub flush_errors: u64,
    /// Reads that returned a buffer with one bit flipped.
    pub bit_flips: u64,
    /// Writes that landed on a block other than the one asked for.
    pub misdirected_writes: u64,
}
