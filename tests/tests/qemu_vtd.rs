//! The QEMU suite on `-device intel-iommu`, with and without `caching-mode=on`:
//! the unmodified iommud finds the unit in QEMU's DMAR and drives it from a Linux
//! guest, QEMU's edu device DMAs through it, and a blocked DMA shows up as a
//! recorded fault (`dsmil_tests::qemu`). Skips with the reason when QEMU or the
//! guest kernel is missing; under `CI=true` that is a failure.

use dsmil_tests::qemu::{harness, model};

fn run(m: &model::Model) {
    match harness::run_model(m) {
        Ok(report) => eprintln!("{report}"),
        Err(failure) => panic!("{failure}"),
    }
}

#[test]
fn intel_iommu_scenarios_pass_on_qemu() {
    run(&model::INTEL_VTD);
}

#[test]
fn intel_iommu_caching_mode_scenarios_pass_on_qemu() {
    run(&model::INTEL_VTD_CM);
}
