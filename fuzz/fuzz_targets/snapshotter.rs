#![no_main]
//! The `snapshotter` target: see `lcfs_fuzz::snapshotter`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lcfs_fuzz::snapshotter::check(data));
