//! Goal: crashes replay from a seed, leave the pre-crash device alone when asked to, and never
//! touch what a flush made durable; the policy drawn from a seed replays too.
//!
//! Method: the same random workload as `crash_policies.rs`, run twice from one seed (and once
//! from another), compared whole. Each random test prints its seed; set `LCFS_SEED` to replay.

#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod common;

use std::collections::BTreeSet;

use common::{random_workload, Workload};
use lcfs_device::{BlockDevice, DeviceResult};
use lcfs_sim::{seed_from_env, CrashPolicy, CrashReport, SimDevice};

const BLOCKS: u64 = 12;
const WRITES: usize = 30;

/// A device with a random workload pending.
fn setup(seed: u64) -> DeviceResult<(SimDevice, Workload)> {
    let dev = SimDevice::new(BLOCKS, seed);
    let workload = random_workload(&dev, seed, BLOCKS, WRITES)?;
    Ok((dev, workload))
}

#[test]
fn the_same_seed_gives_the_same_crash_and_another_seed_another() -> DeviceResult<()> {
    let seed = seed_from_env(9);
    let policies = [CrashPolicy::Subset, CrashPolicy::Torn, CrashPolicy::Corrupt];
    for policy in policies {
        let run = |seed: u64| -> DeviceResult<(CrashReport, Vec<Vec<u8>>)> {
            let (dev, _) = setup(seed)?;
            let report = dev.crash(policy);
            let image = (0..BLOCKS)
                .map(|b| common::durable(&dev, b))
                .collect::<Result<_, _>>()?;
            Ok((report, image))
        };
        let (first, second) = (run(seed)?, run(seed)?);
        assert_eq!(first, second, "{policy} replays from seed {seed}");
        let other = run(seed.wrapping_add(1))?;
        assert_ne!(
            first, other,
            "{policy}: seeds {seed} and the next give different crashes"
        );
    }
    Ok(())
}

#[test]
fn crash_image_leaves_the_pre_crash_device_untouched() -> DeviceResult<()> {
    let seed = seed_from_env(10);
    let (dev, w) = setup(seed)?;
    let before: Vec<Vec<u8>> = (0..BLOCKS)
        .map(|b| common::read(&dev, b))
        .collect::<Result<_, _>>()?;
    let crashed = dev.crash_image(CrashPolicy::DropAll);
    assert_eq!(dev.pending_writes(), w.pending.len());
    assert_eq!(crashed.device.pending_writes(), 0);
    assert_eq!(crashed.device.block_count(), BLOCKS);
    for block in 0..BLOCKS {
        assert_eq!(common::read(&dev, block)?, before[block as usize]);
        let after = common::read(&crashed.device, block)?;
        assert_eq!(
            after,
            common::payload(w.durable[&block]),
            "block {block} seed {seed}"
        );
    }
    Ok(())
}

#[test]
fn a_flush_makes_every_write_durable_under_every_policy() -> DeviceResult<()> {
    let seed = seed_from_env(11);
    let (dev, _) = setup(seed)?;
    let newest: Vec<Vec<u8>> = (0..BLOCKS)
        .map(|b| common::read(&dev, b))
        .collect::<Result<_, _>>()?;
    dev.flush()?;
    assert_eq!(dev.pending_writes(), 0);
    let policies = [
        CrashPolicy::DropAll,
        CrashPolicy::Prefix(0),
        CrashPolicy::Subset,
        CrashPolicy::Torn,
        CrashPolicy::Corrupt,
    ];
    for policy in policies {
        let crashed = dev.crash_image(policy);
        assert!(
            crashed.report.blocks.is_empty(),
            "{policy}: nothing was pending"
        );
        for block in 0..BLOCKS {
            let got = common::durable(&crashed.device, block)?;
            assert_eq!(
                got, newest[block as usize],
                "{policy} block {block} seed {seed}"
            );
        }
    }
    Ok(())
}

#[test]
fn chosen_policies_replay_and_cover_every_kind() -> DeviceResult<()> {
    let seed = seed_from_env(12);
    let draw = |seed: u64| -> DeviceResult<Vec<CrashPolicy>> {
        let (dev, _) = setup(seed)?;
        Ok((0..200).map(|_| dev.choose_crash_policy()).collect())
    };
    let policies = draw(seed)?;
    assert_eq!(policies, draw(seed)?, "seed {seed}");
    let kinds: BTreeSet<&str> = policies
        .iter()
        .map(|p| match p {
            CrashPolicy::DropAll => "drop",
            CrashPolicy::Prefix(k) => {
                assert!(
                    *k <= WRITES,
                    "a prefix within the pending writes (seed {seed})"
                );
                "prefix"
            }
            CrashPolicy::Subset => "subset",
            CrashPolicy::Torn => "torn",
            CrashPolicy::Corrupt => "corrupt",
        })
        .collect();
    assert_eq!(kinds.len(), 5, "{kinds:?} (seed {seed})");
    Ok(())
}

#[test]
fn a_seeded_crash_image_replays_and_leaves_the_generator_alone() -> DeviceResult<()> {
    let seed = seed_from_env(11);
    let image = |dev: &SimDevice| -> DeviceResult<Vec<Vec<u8>>> {
        (0..BLOCKS).map(|b| common::read(dev, b)).collect()
    };
    for policy in [CrashPolicy::Subset, CrashPolicy::Torn, CrashPolicy::Corrupt] {
        let (dev, _) = setup(seed)?;
        let first = dev.crash_image_seeded(policy, 77);
        let again = dev.crash_image_seeded(policy, 77);
        assert_eq!(first.report, again.report, "{policy}: same seed, same crash");
        assert_eq!(image(&first.device)?, image(&again.device)?);
        // The device's own generator was not used: its next crash is the one a twin gives.
        let (twin, _) = setup(seed)?;
        assert_eq!(dev.crash(policy), twin.crash(policy), "{policy}: generator untouched");
    }
    Ok(())
}
