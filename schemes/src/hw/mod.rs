//! Simulated hardware of the host machine: devices the unmodified daemons drive
//! through the mocked kernel (PCI functions, SMM firmware, the IOMMU unit).

pub mod amdvi;
pub mod dsmil_controller;
pub mod dsmil_mmio;
pub mod ivrs;
pub mod pci_function;
pub mod smm;
pub mod smm_calling_interface;
pub mod thermal;
pub mod vtd;
