//! `cargo fuzz run pcid_wire`: see `dsmil_tests::fuzzing::pcid_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsmil_tests::fuzzing::pcid_wire(data));
