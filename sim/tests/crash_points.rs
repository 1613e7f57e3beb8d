//! Goal: crash points can be enumerated deterministically, so a harness can crash at every write
//! and flush between two durability points (TESTING.md section 4, bounded exhaustive mode).
//!
//! Method: a fixed workload with two durability points; a dry run counts its crash points, then
//! one run per point cuts the power there, and the crash images are compared with the state the
//! workload had reached at that point.

#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod common;

use std::collections::BTreeMap;

use common::{durable, payload, read};
use lcfs_device::{BlockDevice, DeviceError, DeviceResult, BLOCK_SIZE};
use lcfs_sim::{CrashPolicy, SimDevice};

/// One step of the workload: `Some((block, tag))` writes, `None` flushes.
const WORKLOAD: [Option<(u64, u64)>; 9] = [
    Some((0, 1)),
    Some((1, 2)),
    Some((0, 3)),
    Some((2, 4)),
    None,
    Some((1, 5)),
    Some((3, 6)),
    Some((2, 7)),
    None,
];

/// Runs the workload until the first error.
fn run(dev: &SimDevice) -> DeviceResult<()> {
    for step in WORKLOAD {
        match step {
            Some((block, tag)) => dev.write(block, &payload(tag))?,
            None => dev.flush()?,
        }
    }
    Ok(())
}

/// The images after the first `steps` steps: (everything issued, what the last flush made durable).
fn expected(steps: usize) -> (BTreeMap<u64, u64>, BTreeMap<u64, u64>) {
    let (mut issued, mut flushed) = (BTreeMap::new(), BTreeMap::new());
    for step in WORKLOAD.iter().take(steps) {
        match step {
            Some((block, tag)) => drop(issued.insert(*block, *tag)),
            None => flushed.clone_from(&issued),
        }
    }
    (issued, flushed)
}

fn assert_image(dev: &SimDevice, image: &BTreeMap<u64, u64>, what: &str) -> DeviceResult<()> {
    for block in 0..dev.block_count() {
        let want = image
            .get(&block)
            .map_or_else(|| vec![0; BLOCK_SIZE], |t| payload(*t));
        assert_eq!(durable(dev, block)?, want, "{what}: block {block}");
    }
    Ok(())
}

#[test]
fn every_crash_point_of_a_workload_can_be_visited_in_turn() -> DeviceResult<()> {
    let dry = SimDevice::new(4, 1);
    run(&dry)?;
    let points = dry.counters().crash_points;
    assert_eq!(
        points,
        WORKLOAD.len() as u64,
        "one crash point per write and per flush"
    );
    for point in 0..points {
        let dev = SimDevice::new(4, 1);
        dev.set_crash_at(point);
        assert!(
            matches!(run(&dev), Err(DeviceError::Fault(_))),
            "point {point}"
        );
        assert_eq!(dev.powered_off_at(), Some(point));
        assert_eq!(
            dev.counters().crash_points,
            point,
            "no point passes after the cut"
        );
        let (issued, flushed) = expected(point as usize);
        let all = dev.crash_image(CrashPolicy::KEEP_ALL);
        assert_image(
            &all.device,
            &issued,
            &format!("point {point}, everything kept"),
        )?;
        let none = dev.crash_image(CrashPolicy::DropAll);
        assert_image(
            &none.device,
            &flushed,
            &format!("point {point}, nothing kept"),
        )?;
    }
    Ok(())
}

#[test]
fn a_cut_at_a_write_lets_the_flushes_before_it_pass() -> DeviceResult<()> {
    let dev = SimDevice::new(4, 1);
    dev.set_crash_at_write(4);
    assert!(run(&dev).is_err());
    assert_eq!(
        dev.powered_off_at(),
        Some(5),
        "the fifth write comes after the first flush"
    );
    assert_eq!((dev.counters().writes, dev.counters().flushes), (4, 1));
    assert_image(&dev, &expected(5).1, "the first durability point")?;
    Ok(())
}

#[test]
fn the_power_stays_off_for_every_operation_until_a_crash() -> DeviceResult<()> {
    let dev = SimDevice::new(4, 1);
    dev.write(0, &payload(1))?;
    dev.set_crash_at(0);
    assert!(matches!(dev.flush(), Err(DeviceError::Fault(_))));
    assert!(matches!(read(&dev, 0), Err(DeviceError::Fault(_))));
    assert!(matches!(
        dev.write(1, &payload(2)),
        Err(DeviceError::Fault(_))
    ));
    let counters = dev.counters();
    assert_eq!(
        (counters.reads, counters.writes, counters.flushes),
        (0, 1, 0)
    );
    assert_eq!(
        dev.pending_writes(),
        1,
        "the state of the moment of the cut is kept"
    );
    let report = dev.crash(CrashPolicy::KEEP_ALL);
    assert_eq!(report.pending_writes, 1);
    assert_eq!(
        dev.powered_off_at(),
        None,
        "a crash turns the power back on"
    );
    assert_eq!(read(&dev, 0)?, payload(1));
    dev.write(1, &payload(2))?;
    dev.flush()?;
    Ok(())
}

#[test]
fn a_crash_cancels_a_cut_not_yet_reached_and_a_new_one_can_follow() -> DeviceResult<()> {
    let dev = SimDevice::new(4, 1);
    dev.set_crash_at(3);
    dev.write(0, &payload(1))?;
    dev.crash(CrashPolicy::DropAll);
    for i in 0..6 {
        dev.write(i % 4, &payload(i))?;
    }
    // A crash during recovery: schedule another cut on the recovered device.
    dev.set_crash_at(1);
    dev.write(0, &payload(9))?;
    assert!(dev.flush().is_err());
    assert_eq!(dev.powered_off_at(), Some(8));
    Ok(())
}

#[test]
#[should_panic(expected = "power is off")]
fn scheduling_a_cut_while_the_power_is_off_is_a_test_bug() {
    let dev = SimDevice::new(4, 1);
    dev.set_crash_at(0);
    assert!(dev.flush().is_err());
    dev.set_crash_at(2);
}
