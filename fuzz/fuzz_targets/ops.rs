#![no_main]
//! The `ops` target: see `lcfs_fuzz::check_ops`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lcfs_fuzz::check_ops(data));
