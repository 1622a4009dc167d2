//! The DSMIL PCI controller path: device table and device data DMA'd by the
//! controller into IOMMU-mapped buffers, completion by interrupt.
//!
//! * [`registers`]: the BAR0 register map and command protocol (the contract the
//!   simulated controller in `redox-host` implements too).
//! * [`DsmilController`]: bring-up through driver-sys (pcid channel, MSI-X → MSI →
//!   INTx, `IommuDmaAllocator`) and the two commands, `read_device_table` and
//!   `read_device_data`.
//! * [`DeviceMemory`](crate::platform::DeviceMemory) for [`DsmilController`]:
//!   read sessions capture device data blocks DMA'd by the controller
//!   (`Hardware::device_memory(Box::new(controller))`).
//!
//! The function is found by its ids, [`crate::client::PCI_VENDOR_ID`] and
//! [`crate::client::PCI_DEVICE_ID`] (what `pcid-spawner` matches).

mod completion;
mod device_memory;
mod driver;
pub mod registers;

pub use driver::{
    ControllerConfig, ControllerStats, DEFAULT_COMMAND_TIMEOUT_MS, DMA_ADDRESS_BITS,
    DsmilController,
};
pub use registers::{Command, DEVICE_DATA_LEN, DEVICE_TABLE_LEN, ErrorCode};
