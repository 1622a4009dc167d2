//! MSI and MSI-X: capabilities, x86 messages, and programming them.
//!
//! * [`capability`]: parsing and validating the two capability structures.
//! * [`message`]: the x86 message address/data layout (Intel SDM vol. 3, "Message
//!   Signalled Interrupts").
//! * [`mmio`]: the [`Mmio`] trait through which the MSI-X table and PBA are reached.
//! * [`msix_table`]: MSI-X table entries, per-entry masking, the PBA, and the
//!   function mask / enable bits.
//! * [`msi_program`]: programming plain MSI, including multi-message blocks.

pub mod capability;
pub mod message;
pub mod mmio;
pub mod msi_program;
pub mod msix_table;

pub use capability::{MsiCapability, MsiError, MsixCapability, MsixRegion};
pub use message::{
    DeliveryMode, DestinationMode, MsiMessage, MsiMessageError, TriggerMode, X86MsiTarget,
};
pub use mmio::{MemoryMmio, Mmio, MmioError};
pub use msix_table::{MsixPba, MsixTable, MsixTableEntry};
