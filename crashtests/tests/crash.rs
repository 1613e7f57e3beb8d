//! Crash consistency: the engine against the model over a simulated device that crashes and
//! fails (TESTING.md §3-4, DESIGN.md §5).
//!
//! Goal: after a crash at any crash point, under every crash policy, and after a crash during
//! recovery, the image mounts, fsck is clean, and every layer equals the model's state at the
//! last durability point that returned (C) or at the checkpoint in flight (C*), the recovered
//! generation saying which; nothing a durability point confirmed is lost; an operation that
//! fails with an injected I/O error did all or nothing; a damaged image (misdirected write)
//! refuses loudly or answers right, never wrong; operations go on after every recovery.
//!
//! Method: proptest generates cases (a device seed and up to `STEPS_MAX` steps from
//! `lcfs_crashtests::steps`: operations of the conformance alphabet, faults and power cuts) and
//! `CrashHarness` runs them, checking a crash state at every crash point of every checkpoint.
//! Two threads run `CASES` cases each, from seeds derived from `LCFS_SEED` (printed; fresh each
//! run unless set), so one seed replays the whole test, shrinking included. A failing case is
//! shrunk, printed, and kept in `crashtests/proptest-regressions/crash.txt`, which later runs
//! replay first. The test prints `N crash points checked` with the count per policy, and fails
//! below `CRASH_POINTS_MIN` when run with the default number of cases.

use std::io::Write;
use std::sync::Arc;

use lcfs_crashtests::crash::{CrashHarness, Options, Stats};
use lcfs_crashtests::steps::{self, Step};
use lcfs_sim::{fresh_seed, seed_from_env};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestRunner};

/// Cases per thread unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 320;
/// Threads, each with its own runner and seed.
const THREADS: u64 = 2;
/// The most steps in one case.
const STEPS_MAX: usize = 48;
/// The fewest crash points a default run must check (issue 3: at least 20,000 in CI).
const CRASH_POINTS_MIN: u64 = 20_000;

/// Runs one case; `Err` describes the first check that failed.
fn run_case(seed: u64, steps: &[Step], stats: &Arc<Stats>) -> Result<(), String> {
    let mut harness = CrashHarness::new(seed, Options::default(), Arc::clone(stats))?;
    harness.step(&Step::Op(lcfs_crashtests::ops::Op::CreateLayer { name: 0, parent: None }))?;
    for (index, step) in steps.iter().enumerate() {
        harness.step(step).map_err(|e| format!("step {index} ({step:?}): {e}"))?;
    }
    harness.finish().map_err(|e| format!("at the end of the case: {e}"))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(CASES)
}

/// One runner: `cases()` cases from `seed`.
fn run_thread(seed: u64, stats: Arc<Stats>) -> Result<(), String> {
    let config = Config {
        cases: cases(),
        rng_seed: RngSeed::Fixed(seed),
        source_file: Some(file!()),
        test_name: Some("crash::crash_consistency"),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/crash.txt",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (any::<u64>(), prop::collection::vec(steps::step(), 1..=STEPS_MAX));
    runner
        .run(&strategy, |(seed, steps)| run_case(seed, &steps, &stats).map_err(TestCaseError::fail))
        .map_err(|e| e.to_string())
}

#[test]
fn crash_consistency() {
    let seed = seed_from_env(fresh_seed());
    let stats = Arc::new(Stats::default());
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let stats = Arc::clone(&stats);
            std::thread::spawn(move || run_thread(seed.wrapping_add(thread), stats))
        })
        .collect();
    let results: Vec<Result<(), String>> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Err("a runner thread panicked".into())))
        .collect();
    // Straight to stderr, past the test harness's capture, so that every run shows it.
    let _ = writeln!(std::io::stderr(), "{}", stats.summary());
    for (thread, result) in results.into_iter().enumerate() {
        if let Err(failure) = result {
            panic!("LCFS_SEED={seed} (thread {thread}): {failure}");
        }
    }
    if cases() == CASES {
        assert!(
            stats.crash_points() >= CRASH_POINTS_MIN,
            "only {} crash points checked, fewer than {CRASH_POINTS_MIN}",
            stats.crash_points()
        );
        assert!(stats.by_policy().iter().all(|n| *n > 0), "a crash policy was never checked");
    }
}
