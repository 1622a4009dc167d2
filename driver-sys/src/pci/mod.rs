//! PCI function access: configuration space, the capability list and BARs.
//!
//! Everything here works on a [`ConfigSpace`], so it runs unchanged against the
//! `pcid` channel of a real function, the mocked `pci` scheme, or the in-memory
//! [`MemoryConfigSpace`] used by tests.

pub mod bar;
pub mod capability;
pub mod config;
pub mod function;
pub mod pcid_wire;

pub use bar::{Bar, BarError, BarKind, read_bars};
pub use capability::{
    CAP_ID_MSI, CAP_ID_MSIX, Capability, CapabilityError, CapabilityWalk, capabilities,
    find_capability,
};
pub use config::{
    COMMAND_INTX_DISABLE, ConfigError, ConfigSpace, MemoryConfigSpace, PCI_CONFIG_SPACE_SIZE,
    REG_COMMAND, REG_STATUS, set_intx_disabled,
};
pub use function::{MappedBar, PCID_CLIENT_CHANNEL, PciFunction, PcidError, bar_mmap_offset};
pub use pcid_wire::{PciAddress, PcidBar};
