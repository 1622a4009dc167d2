//! Guest mode: the mocked kernel inside a Linux guest under QEMU, with real
//! (emulated) hardware behind its schemes, so the unmodified iommud and driver-sys
//! drive QEMU's IOMMU models and devices (DESIGN §3 "Guest mode",
//! `notes/qemu-hil.md`).
//!
//! [`boot`] starts a [`Kernel`] whose `memory`, `pci` and `acpi` schemes are replaced:
//! * `memory` — [`memory::GuestMemoryScheme`]: allocations from [`ram::GuestRam`]
//!   (locked pages, frames from `/proc/self/pagemap`), `translation`, and `physical@`
//!   physmaps over `/dev/mem` ([`devmem::DevMem`]);
//! * `pci` — [`pci::SysfsPciScheme`]: pcid's channel over `/sys/bus/pci/devices`;
//! * `acpi` — [`acpi::SysfsAcpiScheme`]: QEMU's tables from `/sys/firmware/acpi/tables`.
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
    });
    let ram = Arc::new(ram::GuestRam::reserve(ram_bytes)?);
    let devmem = devmem::DevMem::open()?;
    kernel.replace_kernel_scheme(
        "memory",
        Arc::new(memory::GuestMemoryScheme::new(ram.clone(), devmem)),
    );
    kernel.replace_kernel_scheme(
        "pci",
        Arc::new(pci::SysfsPciScheme::scan(Path::new(pci::SYSFS_PCI))?),
    );
    kernel.replace_kernel_scheme(
        "acpi",
        Arc::new(acpi::SysfsAcpiScheme::load(Path::new(
            acpi::SYSFS_ACPI_TABLES,
        ))?),
    );
    Ok(GuestMachine { kernel, ram })
}
