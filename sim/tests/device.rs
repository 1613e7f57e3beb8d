//! Goal: without faults, `SimDevice` is a correct `BlockDevice` (the invariants of the trait's
//! documentation) whose counters count, and whose copies (`fork`, `crash_image`) are independent.
//!
//! Method: direct calls on small devices, compared with the values written.

#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod common;

use std::sync::Arc;

use common::{durable, payload, read};
use lcfs_device::{BlockDevice, DeviceError, DeviceResult, BLOCK_SIZE};
use lcfs_sim::{seed_from_env, CrashPolicy, SimDevice};

#[test]
fn geometry_is_4096_byte_blocks_and_the_count_asked_for() {
    let dev = SimDevice::new(10, 1);
    assert_eq!(
        (dev.block_size(), dev.block_count(), dev.seed()),
        (BLOCK_SIZE, 10, 1)
    );
    let mut buf = vec![0u8; BLOCK_SIZE];
    assert!(matches!(
        dev.read(10, &mut buf),
        Err(DeviceError::OutOfRange { block: 10, .. })
    ));
    assert!(matches!(
        dev.write(0, &buf[..512]),
        Err(DeviceError::BadBuffer { len: 512, .. })
    ));
}

#[test]
fn reads_see_the_newest_value_and_unwritten_blocks_read_zero() -> DeviceResult<()> {
    let dev = SimDevice::new(4, 1);
    assert_eq!(read(&dev, 3)?, vec![0; BLOCK_SIZE]);
    dev.write(1, &payload(1))?;
    dev.flush()?;
    assert_eq!(read(&dev, 1)?, payload(1));
    dev.write(1, &payload(2))?;
    dev.write(1, &payload(3))?;
    assert_eq!(read(&dev, 1)?, payload(3), "the newest pending value");
    assert_eq!(
        durable(&dev, 1)?,
        payload(1),
        "while the durable one is older"
    );
    assert_eq!(dev.pending_writes(), 2);
    Ok(())
}

#[test]
fn a_flush_makes_every_earlier_write_durable_in_issue_order() -> DeviceResult<()> {
    let dev = SimDevice::new(4, 1);
    for (block, tag) in [(0, 1), (1, 2), (0, 3)] {
        dev.write(block, &payload(tag))?;
    }
    dev.flush()?;
    assert_eq!(dev.pending_writes(), 0);
    assert_eq!(
        (durable(&dev, 0)?, durable(&dev, 1)?),
        (payload(3), payload(2))
    );
    let report = dev.crash(CrashPolicy::DropAll);
    assert_eq!(report.pending_writes, 0);
    assert_eq!(
        read(&dev, 0)?,
        payload(3),
        "what a flush made durable survives any crash"
    );
    Ok(())
}

#[test]
fn counters_count_every_operation() -> DeviceResult<()> {
    let dev = SimDevice::new(4, 1);
    for i in 0..5 {
        dev.write(i % 4, &payload(i))?;
    }
    dev.flush()?;
    for i in 0..7 {
        read(&dev, i % 4)?;
    }
    dev.flush()?;
    dev.crash_image(CrashPolicy::Subset);
    dev.crash(CrashPolicy::DropAll);
    let c = dev.counters();
    assert_eq!(
        (c.reads, c.writes, c.flushes, c.crash_points, c.crashes),
        (7, 5, 2, 7, 2)
    );
    assert_eq!((c.read_errors, c.write_errors, c.flush_errors), (0, 0, 0));
    assert_eq!((c.bit_flips, c.misdirected_writes), (0, 0));
    Ok(())
}

#[test]
fn a_fork_is_an_independent_copy_with_the_pending_writes() -> DeviceResult<()> {
    let seed = seed_from_env(31);
    let dev = SimDevice::new(4, seed);
    dev.write(0, &payload(1))?;
    dev.flush()?;
    dev.write(1, &payload(2))?;
    let fork = dev.fork();
    assert_eq!(fork.pending_writes(), 1);
    assert_eq!(fork.counters(), dev.counters());
    fork.write(2, &payload(3))?;
    fork.flush()?;
    assert_eq!(
        read(&dev, 2)?,
        vec![0; BLOCK_SIZE],
        "the original does not see the fork"
    );
    assert_eq!(dev.pending_writes(), 1);
    dev.crash(CrashPolicy::DropAll);
    assert_eq!(
        read(&fork, 1)?,
        payload(2),
        "the fork does not see the original's crash"
    );
    assert_ne!(
        dev.fork().seed(),
        dev.fork().seed(),
        "each fork draws its own seed"
    );
    Ok(())
}

#[test]
fn crash_images_get_distinct_seeds_drawn_from_the_parent() -> DeviceResult<()> {
    let seed = seed_from_env(32);
    let seeds = |seed: u64| -> Vec<u64> {
        let dev = SimDevice::new(4, seed);
        (0..3)
            .map(|_| dev.crash_image(CrashPolicy::DropAll).device.seed())
            .collect()
    };
    let first = seeds(seed);
    assert_eq!(first, seeds(seed), "seed {seed}");
    assert!(
        first[0] != first[1] && first[1] != first[2],
        "{first:?} (seed {seed})"
    );
    Ok(())
}

#[test]
fn the_device_serves_several_threads() -> DeviceResult<()> {
    let dev = Arc::new(SimDevice::new(64, 1));
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let dev = Arc::clone(&dev);
            std::thread::spawn(move || -> DeviceResult<()> {
                for i in 0..16 {
                    dev.write(t * 16 + i, &payload(t * 16 + i))?;
                }
                dev.flush()
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("no worker panics")?;
    }
    for block in 0..64 {
        assert_eq!(durable(&dev, block)?, payload(block));
    }
    assert_eq!((dev.counters().writes, dev.counters().flushes), (64, 4));
    Ok(())
}

#[test]
fn debug_shows_the_seed_and_the_pending_count() -> DeviceResult<()> {
    let dev = SimDevice::new(4, 77);
    dev.write(0, &payload(1))?;
    let text = format!("{dev:?}");
    assert!(
        text.contains("seed: 77") && text.contains("pending_writes: 1"),
        "{text}"
    );
    Ok(())
}
