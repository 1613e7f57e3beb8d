#![no_main]
//! The `image` target: see `lcfs_fuzz::image`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lcfs_fuzz::image::check(data));
