//! `cargo fuzz run iommu_wire`: see `dsmil_tests::fuzzing::iommu_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsmil_tests::fuzzing::iommu_wire(data));
