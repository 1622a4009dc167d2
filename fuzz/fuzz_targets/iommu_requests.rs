//! `cargo fuzz run iommu_requests`: see `dsmil_tests::fuzzing::iommu_requests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsmil_tests::fuzzing::iommu_requests(data));
