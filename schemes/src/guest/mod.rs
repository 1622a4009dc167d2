//! Guest mode: the mocked kernel inside a Linux guest under QEMU, with real
//! (emulated) hardware behind its schemes, so the unmodified iommud and driver-sys
//! drive QEMU's IOMMU models and devices (DESIGN §3 "Guest mode",
//! `notes/qemu-hil.md`).
//!
//! [`boot`] starts a [`Kernel`] whose schemes reach the guest's hardware:
//! * `memory` — [`memory::GuestMemoryScheme`], the simulated scheme's rules over
//!   [`ram::GuestRam`] (locked pages, frames from `/proc/self/pagemap`) and
//!   `physical@` physmaps over `/dev/mem` ([`devmem::DevMem`]);
//! * `pci` — the simulated pcid scheme over [`pci::SysfsFunction`]s
//!   (`/sys/bus/pci/devices`);
//! * `acpi` — the simulated acpid scheme, serving QEMU's own tables from
//!   `/sys/firmware/acpi/tables` ([`acpi::publish_sysfs_tables`]).
//!
//! `irq` and `time` stay the mocked kernel's own. This is host world: Linux calls are
//! fine here and never reach a product crate. Needs root, `/dev/mem` and a kernel
//! booted with `iomem=relaxed`.

pub mod acpi;
pub mod devmem;
pub mod memory;
pub mod pci;
pub mod ram;

use std::path::Path;
use std::sync::Arc;

use crate::kernel::{Kernel, MachineConfig};

/// A booted guest machine.
pub struct GuestMachine {
    /// The mocked kernel with the guest schemes.
    pub kernel: Arc<Kernel>,
    /// The RAM `memory` allocates from.
    pub ram: Arc<ram::GuestRam>,
}

/// Boots the mocked kernel over the guest's hardware, reserving `ram_bytes` of
/// locked memory for the `memory` scheme.
pub fn boot(ram_bytes: usize) -> std::io::Result<GuestMachine> {
    let kernel = Kernel::boot_with(MachineConfig {
        cpus: 1,
        // No simulated RAM: every allocation comes from guest RAM.
        low_memory: 0,
        high_memory: 0,
        ..MachineConfig::default()
    });
    let ram = Arc::new(ram::GuestRam::reserve(ram_bytes)?);
    let devmem = devmem::DevMem::open()?;
    kernel.replace_kernel_scheme(
        "memory",
        Arc::new(memory::GuestMemoryScheme::guest(ram.clone(), devmem)),
    );
    kernel.replace_kernel_scheme("pci", Arc::new(pci::scan(Path::new(pci::SYSFS_PCI))?));
    // The simulated machine has no AMD-Vi unit, so its firmware publishes no IVRS of
    // its own: the tables served are exactly QEMU's.
    acpi::publish_sysfs_tables(kernel.acpi(), Path::new(acpi::SYSFS_ACPI_TABLES))?;
    Ok(GuestMachine { kernel, ram })
}
