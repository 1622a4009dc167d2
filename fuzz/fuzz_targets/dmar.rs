//! `cargo fuzz run dmar`: see `dsmil_tests::fuzzing::dmar`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsmil_tests::fuzzing::dmar(data));
