//! `cargo fuzz run ivrs`: see `dsmil_tests::fuzzing::ivrs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsmil_tests::fuzzing::ivrs(data));
