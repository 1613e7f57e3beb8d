//! `SimDevice`: a deterministic block-device simulator that injects crashes and faults.
//!
//! The simulator keeps the *durable image* (what the media holds for certain) and, per block, the
//! writes issued since the last flush, in issue order. Reads see the newest value. A crash turns
//! the unflushed writes into one of the states real hardware could leave behind, chosen by a
//! [`CrashPolicy`]. Every random choice (which writes survive, which sectors tear, which bit flips)
//! comes from one `ChaCha8Rng` seeded by a `u64`, so one seed replays one run exactly: a failing
//! test prints `LCFS_SEED=<n>` (see [`seed_from_env`]) and setting that variable replays it.
//!
//! # Media assumptions
//!
//! - Only a successful flush makes the writes issued before it durable.
//! - A 512-byte sector write is atomic: a sector holds either its old or its new bytes.
//! - Nothing else is atomic or ordered: not a 4096-byte block, not two writes in issue order.
//!
//! # Crash policies and what the engine must reach
//!
//! After any crash, recovery must mount the image, fsck must be clean, and the state must be that
//! of the last durable checkpoint (C) or of the checkpoint in flight (C*), the recovered
//! superblock generation saying which (DESIGN.md section 5, TESTING.md section 4).
//!
//! - `DropAll`: nothing of the unflushed writes survives. The engine recovers C exactly.
//! - `Prefix(k)`: the first `k` writes survive, in issue order (ordered media). The engine
//!   recovers C, or C* once the new superblock is among the `k`.
//! - `Subset`: per block, any one of its pending values or the durable one survives, whatever the
//!   issue order. The engine recovers C or C*: it must never rely on an unflushed block, nor on
//!   the order of two writes without a flush between them.
//! - `Torn`: `Subset`, and some pending blocks mix sectors of different values. The engine detects
//!   a torn metadata block by its checksum and never uses it (a torn superblock slot falls back
//!   to the other slot).
//! - `Corrupt`: `Subset`, and garbage in some sectors of pending blocks. The engine detects the
//!   garbage by checksum: it recovers, or refuses loudly (`Error::Corrupt`), and never returns
//!   the garbage as data.
//!
//! A crash never changes a durable block that was not written since: blocks written before the
//! last flush and not since read back exactly. The [`CrashReport`] says, sector by sector, where
//! each pending block's bytes came from.
//!
//! # Faults and what the engine must do
//!
//! - **Read error** ([`SimDevice::fail_read`], [`SimDevice::fail_read_after`],
//!   [`FaultRates::read_error`]): `read` returns `DeviceError::Fault`. The engine surfaces it as
//!   an I/O error (`Error::Io`, EIO), never as corruption, never by panicking, and never uses the
//!   buffer.
//! - **Write error** ([`SimDevice::fail_write_after`], [`FaultRates::write_error`]): `write`
//!   returns `DeviceError::Fault` and changes nothing. The engine surfaces EIO; the operation did
//!   nothing or everything, and the next checkpoint does not count on the failed block.
//! - **Flush error** ([`SimDevice::fail_flush_after`], [`FaultRates::flush_error`]): `flush`
//!   returns `DeviceError::Fault` and makes nothing durable; the writes stay pending, and a later
//!   crash may keep any subset of them. The engine must not report the checkpoint durable.
//! - **Bit flip on read** ([`SimDevice::flip_bit_on_read`], [`FaultRates::bit_flip_on_read`]):
//!   `read` succeeds with one bit of the buffer flipped; the stored block is intact. The checksum
//!   catches it and the engine refuses loudly (`Error::Corrupt`); it never returns the bytes as
//!   data.
//! - **Misdirected write** ([`SimDevice::misdirect_next_write`],
//!   [`FaultRates::misdirected_write`]): `write` succeeds but the data lands on another block; the
//!   intended block keeps its old value. The block-number field of the header catches the block
//!   that received foreign data; the parent's pointer (generation or checksum) catches the stale
//!   one.
//!
//! A read of a block never written returns zeros. Block-number and buffer-length checks come
//! first: `OutOfRange` and `BadBuffer` are never faults, are not counted and draw nothing from
//! the seed. Without a fault rate, reads and writes draw nothing either, so adding a read to a
//! test does not change which crash its seed gives.
//!
//! # Crash points and bounded exhaustive testing
//!
//! Each write and each flush is a *crash point*: the power could fail just before it takes effect.
//! [`Counters::crash_points`] counts the points passed. [`SimDevice::set_crash_at`] (any point) and
//! [`SimDevice::set_crash_at_write`] (writes only) cut the power just before the n-th point from
//! now: that operation and every later one fail, and the device keeps exactly the state of that
//! moment, from which [`SimDevice::crash_image`] derives as many crash states as the harness wants.
//!
//! ```
//! use lcfs_device::{BlockDevice, DeviceResult, BLOCK_SIZE};
//! use lcfs_sim::{CrashPolicy, SimDevice};
//!
//! // A toy workload between two durability points: three writes, then a flush.
//! fn workload(dev: &SimDevice) -> DeviceResult<()> {
//!     for block in 0..3 {
//!         dev.write(block, &[block as u8 + 1; BLOCK_SIZE])?;
//!     }
//!     dev.flush()
//! }
//!
//! // A dry run counts the crash points of the workload.
//! let dry = SimDevice::new(8, 42);
//! workload(&dry).expect("the dry run injects no fault");
//! let points = dry.counters().crash_points;
//! assert_eq!(points, 4);
//! // Then crash before each point in turn (and once at the end, on the dry run itself).
//! for point in 0..points {
//!     let dev = SimDevice::new(8, 42);
//!     dev.set_crash_at(point);
//!     assert!(workload(&dev).is_err(), "the power fails before point {point}");
//!     let crashed = dev.crash_image(CrashPolicy::Subset);
//!     // ... mount crashed.device, check the crash predicate ...
//!     assert!(crashed.report.pending_writes as u64 <= point);
//! }
//! ```

mod counters;
mod crash;
mod device;
mod fault;
mod hooks;
mod report;
mod seed;
mod state;

pub use counters::Counters;
pub use device::SimDevice;
pub use fault::{FaultRates, Misdirect};
pub use hooks::Crashed;
pub use report::{BlockFate, CrashPolicy, CrashReport, SectorSource};
pub use seed::{fresh_seed, seed_from_env, SEED_VAR};

/// The size of the unit the media writes atomically.
pub const SECTOR_SIZE: usize = 512;

/// The number of sectors in one block.
pub const SECTORS_PER_BLOCK: usize = lcfs_device::BLOCK_SIZE / SECTOR_SIZE;
