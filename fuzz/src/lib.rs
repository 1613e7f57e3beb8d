//! The fuzz targets of lcfs, as library code so that the corpus generator and the targets
//! share it (`fuzz_targets/*.rs` are one call each).
//!
//! - `ops` (`input`, `crash`): operation sequences on layers and files, with power cuts and
//!   crashes through `SimDevice`, run on the model and the engine and compared; the crash
//!   predicate after every crash; fsck at the end;
//! - `image`: fsck and mount of a mutated image: an error or a consistent filesystem;
//! - `records`: every on-disk decoder, with the round trip where decoding succeeds;
//! - `tar`: layer tar streams into `apply_diff`; nothing outside the target layer changes;
//! - `graphdriver`: bytes of a connection to Docker's graph-driver plugin API, through the
//!   daemon's HTTP parser and calls: a reply to every request, fsck clean;
//! - `snapshotter`: containerd snapshot operations and List filters through the daemon's
//!   snapshotter: its documented error codes, List agrees with Stat and filter.rs, fsck clean;
//!
//! Invariant: a broken property panics (that is how libFuzzer learns of it); nothing else
//! here panics on any input.

pub mod crash;
pub mod graphdriver;
pub mod image;
pub mod input;
pub mod records;
pub mod snapshotter;
pub mod tar;

/// Runs one `ops` input: a seed for the simulator (8 bytes), then the steps.
pub fn check_ops(data: &[u8]) {
    run_ops(data);
}

/// `check_ops`, returning how many crashes the case recovered from.
pub fn run_ops(data: &[u8]) -> u32 {
    let mut u = arbitrary::Unstructured::new(data);
    let seed = u.arbitrary::<u64>().unwrap_or(0);
    let steps = input::steps(&mut u);
    let mut case = crash::CrashCase::new(seed).unwrap_or_else(|e| panic!("setup: {e}"));
    for (index, step) in steps.iter().enumerate() {
        if let Err(e) = case.run(step) {
            panic!("step {index} ({step:?}) of {steps:#?}\n{e}");
        }
    }
    case.finish().unwrap_or_else(|e| panic!("at the end of {steps:#?}\n{e}"))
}
