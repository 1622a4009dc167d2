//! The QEMU suite: the unmodified iommud and driver-sys against QEMU's own IOMMU
//! models, inside a Linux guest (DESIGN §3 "Guest mode", `notes/qemu-hil.md`).
//!
//! * [`model`] — the IOMMU models under test, each with its QEMU device and the
//!   scenarios the guest runs on it (add a model there to extend the suite);
//! * [`guest`] — what runs inside the guest as `/init`: the mocked kernel over the
//!   guest's hardware (`redox_host::guest`), iommud, the [`crate::edu`] driver and
//!   the scenarios, one result line each on the serial console;
//! * [`initramfs`] — a cpio newc writer for the guest's initramfs;
//! * [`harness`] — the host side: builds the static guest binary, boots QEMU, reads
//!   the result lines back, bounded by a timeout.

pub mod guest;
pub mod harness;
pub mod initramfs;
pub mod model;

/// Prefix of every line the guest prints for the harness.
pub const LINE_PREFIX: &str = "DSMIL-QEMU";
