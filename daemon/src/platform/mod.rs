//! Hardware behind small traits: x86 port I/O ([`PortIo`]), a monotonic
//! [`Clock`], the DSMIL legacy SMI path ([`LegacySmi`]), the Dell SMBIOS
//! calling interface ([`CallingInterface`]) and the chunked MMIO window
//! ([`MmioWindow`]), a device's register block ([`DeviceMemory`]) and the
//! scheme's clocks ([`RedoxClock`], [`ManualClock`]).
//!
//! `main.rs` wires the real x86 implementations, `redox-host` the simulated
//! firmware, the tests recorders. Quarantined tokens are refused by every
//! [`TokenIo`] implementation before any port is touched.

mod calling_interface;
mod clocks;
mod device_memory;
mod legacy_smi;
mod mmio_access;
mod mmio_window;
mod port_io;
mod smi_dma_buffer;
mod smi_error;
mod smi_status;
mod smm_thermal;
mod token_io;
mod x86_ports;

pub use calling_interface::{
    BUFFER_PHYS_LIMIT, CALLING_INTERFACE_SIGNATURE, CLASS_TOKEN_READ, CLASS_TOKEN_WRITE,
    CallingInterface, CallingInterfaceBuffer, CallingInterfaceConfig, DmiToken, OUTPUT_UNTOUCHED,
    SELECT_TOKEN_STD, SmiBuffer, SmiRegisters, SmiTrigger,
};
pub use clocks::{ManualClock, RedoxClock};
pub use device_memory::{DEVICE_BLOCK_LEN, DeviceMemory};
pub use legacy_smi::{
    LEGACY_CMD_READ, LEGACY_CMD_WRITE, LEGACY_DATA_PORT, LEGACY_TOKEN_PORT, LegacySmi,
    SMI_COMMAND_PORT, SMI_STATUS_PORT,
};
pub use mmio_access::{MmioAccess, PhysmapChunk, PhysmapMapper};
pub use mmio_window::{
    DEFAULT_MAX_RESIDENT, MMIO_CHUNK_COUNT, MMIO_CHUNK_SIZE, MMIO_WINDOW_SIZE, MmioChunk,
    MmioCounters, MmioWindow, PhysMapper,
};
pub use port_io::{Clock, MonotonicClock, PortIo};
pub use smi_dma_buffer::DmaSmiBuffer;
pub use smi_error::SmiError;
pub use smi_status::{
    DEFAULT_HANG_POLLS, DEFAULT_SMI_BUDGET, DEFAULT_SMI_RETRIES, STATUS_DONE, STATUS_ERROR,
    SmiCounters, SmiPolicy,
};
pub use smm_thermal::{
    I8K_GET_TEMPERATURE, I8K_MAX_TEMPERATURE, I8K_SENSOR_SLOTS, SmmCall, SmmRegisters, SmmThermal,
    read_sensor,
};
pub use token_io::TokenIo;
pub use x86_ports::{X86PortIo, acquire_port_io_rights};

#[cfg(test)]
mod test_doubles;

#[cfg(test)]
mod smi_tests;

#[cfg(test)]
mod ci_tests;

#[cfg(test)]
mod mmio_tests;
