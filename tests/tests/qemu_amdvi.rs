//! The QEMU suite on `-device amd-iommu`: the unmodified iommud and driver-sys drive
//! QEMU's AMD-Vi model from a Linux guest, and QEMU's edu device DMAs through it
//! (`dsmil_tests::qemu`). Skips with the reason when QEMU or the guest kernel is
//! missing; under `CI=true` that is a failure.

use dsmil_tests::qemu::{harness, model};

#[test]
fn amd_vi_scenarios_pass_on_qemu() {
    match harness::run_model(&model::AMD_VI) {
        Ok(report) => eprintln!("{report}"),
        Err(failure) => panic!("{failure}"),
    }
}
