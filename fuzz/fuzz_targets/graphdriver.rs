#![no_main]
//! The `graphdriver` target: see `lcfs_fuzz::graphdriver`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lcfs_fuzz::graphdriver::check(data));
