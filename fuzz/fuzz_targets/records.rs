#![no_main]
//! The `records` target: see `lcfs_fuzz::records`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lcfs_fuzz::records::check(data));
