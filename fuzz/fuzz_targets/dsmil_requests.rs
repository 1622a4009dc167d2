//! `cargo fuzz run dsmil_requests`: see `dsmil_tests::fuzzing::dsmil_requests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsmil_tests::fuzzing::dsmil_requests(data));
