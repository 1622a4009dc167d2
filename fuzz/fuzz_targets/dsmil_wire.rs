//! `cargo fuzz run dsmil_wire`: see `dsmil_tests::fuzzing::dsmil_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsmil_tests::fuzzing::dsmil_wire(data));
