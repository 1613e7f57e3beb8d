//! Conformance: the engine (`lcfs::Fs`) against the executable model (`lcfs_model::Model`).
//!
//! Goal: every operation of docs/operations.md returns the same result on both (values equal,
//! `Attr` without `blocks`; errors as the same errno), and the whole observable state stays the
//! same: after `Verify` and `Remount` steps, and at the end of every case (then again after a
//! clean unmount, fsck and a mount), every layer of both is walked and compared: tree shape,
//! names, bytes, size, mode, uid, gid, nlink, rdev, times, symlink targets, xattrs, layer
//! parent and state.
//!
//! Method: a proptest-state-machine test. The reference state machine is the model; the system
//! under test is a `Harness` (a model copy plus the engine over a device). Operations come from
//! `lcfs_crashtests::strategy` (TESTING.md §2 alphabet and bias) and pick their objects by
//! index modulo the model's current lists, so shrinking keeps sequences meaningful. Two runs:
//! over `MemDevice` with tiny caches and a small dirty limit (evictions and checkpoints in the
//! middle of writes), and over `FileDevice` on a temporary file with default options.
//!
//! Budget: `PROPTEST_CASES` cases (256 by default) of 1 to 200 operations per device. Each test
//! prints to stderr how many cases and operations it ran. Failures are persisted under
//! `crashtests/proptest-regressions/` and replayed first on later runs.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lcfs::{BlockDevice, FileDevice, MemDevice, MountOptions};
use lcfs_crashtests::harness::{run_model, Harness};
use lcfs_crashtests::ops::{now, resolve, Call, Op};
use lcfs_crashtests::strategy;
use lcfs_model::Model;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

/// The most operations in one case.
const OPS_MAX: usize = 200;
/// The device size: large enough that no case runs out of space (the model has no ENOSPC).
const DEVICE_BYTES: u64 = 1 << 30;

/// The reference: the model and the step counter that drives the logical clock.
#[derive(Clone)]
struct Reference {
    model: Model,
    step: u64,
}

/// Short, because proptest prints the initial state of a failing case (always the same).
impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.model.layers().into_iter().map(|info| info.name).collect();
        write!(f, "Reference {{ step: {}, layers: {names:?} }}", self.step)
    }
}

/// One transition: an `Op`, printed on one line in proptest's reports.
#[derive(Clone)]
struct Step(Op);

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The call every case starts with, at step 0: one writable layer named "base".
fn first_call() -> Call {
    Call::CreateLayer { name: "base".to_owned(), parent: None }
}

struct ModelMachine;

impl ReferenceStateMachine for ModelMachine {
    type State = Reference;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Reference> {
        let mut model = Model::new();
        run_model(&mut model, &first_call(), now(0)).expect("the first layer");
        Just(Reference { model, step: 0 }).boxed()
    }

    fn transitions(_: &Reference) -> BoxedStrategy<Step> {
        strategy::op().prop_map(Step).boxed()
    }

    fn apply(mut state: Reference, step: &Step) -> Reference {
        let call = resolve(&state.model, &step.0);
        state.step += 1;
        // Errors are results too: the harness compares them; the reference only moves on.
        let _ = run_model(&mut state.model, &call, now(state.step));
        state
    }
}

/// The device a run uses, and what it counts.
trait Device: 'static {
    const NAME: &'static str;
    const TEST_NAME: &'static str;
    /// Where failing cases are kept (relative to crashtests/, where cargo runs the test).
    const REGRESSIONS: &'static str;
    /// A fresh device, and the temporary file behind it if any (deleted on drop).
    fn create() -> (Arc<dyn BlockDevice>, Option<tempfile::TempPath>);
    fn mount_options() -> MountOptions;
    /// Cases started (shrinking runs included) and operations applied.
    fn counters() -> &'static [AtomicU64; 2];
}

struct OverMem;

impl Device for OverMem {
    const NAME: &'static str = "MemDevice";
    const TEST_NAME: &'static str = "conformance::conformance_over_mem_device";
    const REGRESSIONS: &'static str = "proptest-regressions/conformance-mem.txt";
    fn create() -> (Arc<dyn BlockDevice>, Option<tempfile::TempPath>) {
        (Arc::new(MemDevice::with_size(DEVICE_BYTES)), None)
    }
    fn mount_options() -> MountOptions {
        MountOptions { node_cache_blocks: 16, data_cache_blocks: 16, dirty_limit_bytes: 256 << 10 }
    }
    fn counters() -> &'static [AtomicU64; 2] {
        static COUNTERS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
        &COUNTERS
    }
}

struct OverFile;

impl Device for OverFile {
    const NAME: &'static str = "FileDevice";
    const TEST_NAME: &'static str = "conformance::conformance_over_file_device";
    const REGRESSIONS: &'static str = "proptest-regressions/conformance-file.txt";
    fn create() -> (Arc<dyn BlockDevice>, Option<tempfile::TempPath>) {
        let path = tempfile::NamedTempFile::new().expect("a temporary file").into_temp_path();
        let dev = FileDevice::create(&path, DEVICE_BYTES).expect("a file device");
        (Arc::new(dev), Some(path))
    }
    fn mount_options() -> MountOptions {
        MountOptions::default()
    }
    fn counters() -> &'static [AtomicU64; 2] {
        static COUNTERS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
        &COUNTERS
    }
}

/// The system under test: the harness and its clock.
struct Sut {
    harness: Harness,
    step: u64,
    _image: Option<tempfile::TempPath>,
}

struct Conformance<D>(std::marker::PhantomData<D>);

impl<D: Device> StateMachineTest for Conformance<D> {
    type SystemUnderTest = Sut;
    type Reference = ModelMachine;

    fn init_test(reference: &Reference) -> Sut {
        D::counters()[0].fetch_add(1, Ordering::Relaxed);
        let (dev, image) = D::create();
        let mut harness = Harness::new(dev, D::mount_options()).unwrap_or_else(|e| panic!("{e}"));
        harness.step(&first_call(), now(0)).unwrap_or_else(|e| panic!("step 0: {e}"));
        assert_eq!(harness.model(), &reference.model);
        Sut { harness, step: 0, _image: image }
    }

    fn apply(mut sut: Sut, reference: &Reference, Step(op): Step) -> Sut {
        D::counters()[1].fetch_add(1, Ordering::Relaxed);
        let call = resolve(sut.harness.model(), &op);
        sut.step += 1;
        if let Err(disagreement) = sut.harness.step(&call, now(sut.step)) {
            panic!("step {} ({op:?}): {disagreement}", sut.step);
        }
        assert_eq!(sut.harness.model(), &reference.model, "the harness's model left the reference");
        sut
    }

    fn teardown(sut: Sut, _: Reference) {
        if let Err(disagreement) = sut.harness.finish() {
            panic!("at the end of the case (step {}): {disagreement}", sut.step);
        }
    }
}

fn run<D: Device>() {
    let config = Config {
        source_file: Some(file!()),
        test_name: Some(D::TEST_NAME),
        // SourceParallel cannot place files for tests/ (no lib.rs beside them): name the file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(D::REGRESSIONS))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let strategy = ModelMachine::sequential_strategy(1..=OPS_MAX);
    let result = runner.run(&strategy, |(initial, transitions, seen)| {
        Conformance::<D>::test_sequential(config.clone(), initial, transitions, seen);
        Ok(())
    });
    let [cases, ops] = D::counters();
    // Straight to stderr, past the test harness's capture, so that every run shows it.
    let _ = writeln!(
        std::io::stderr(),
        "conformance over {}: {} cases asked, {} cases run (shrinking included), {} operations",
        D::NAME,
        config.cases,
        cases.load(Ordering::Relaxed),
        ops.load(Ordering::Relaxed)
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn conformance_over_mem_device() {
    run::<OverMem>();
}

#[test]
fn conformance_over_file_device() {
    run::<OverFile>();
}
