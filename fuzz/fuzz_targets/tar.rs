#![no_main]
//! The `tar` target: see `lcfs_fuzz::tar`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lcfs_fuzz::tar::check(data));
