//! The AMD-Vi (AMD I/O Virtualization) unit as software drives it: MMIO
//! registers, the device table, the command ring and the event log.
//!
//! The registers are reached through [`AmdViMmio`], the one hardware trait of
//! this crate: iommud on Redox implements it over a physmap of the unit's
//! register page ([`crate::physmap::PhysmapMmio`]); `redox-host` implements
//! it with a simulated unit. Everything else — the device table, the ring and
//! the log — lives in ordinary physically contiguous memory that the unit
//! reads and writes by DMA, exactly as on hardware.

pub mod command;
pub mod device_table;
pub mod event;
pub mod unit;

pub use crate::unit::UnitStats;
pub use command::Command;
pub use device_table::DeviceTableEntry;
pub use event::{EventLogEntry, IoPageFault};
pub use unit::AmdViUnit;

/// MMIO register offsets (AMD I/O Virtualization Technology specification,
/// "MMIO registers"), all 64 bits wide.
pub mod reg {
    /// Device Table Base Address: bits 51:12 base, 8:0 size in 4 KiB pages − 1.
    pub const DEVICE_TABLE_BASE: u64 = 0x0000;
    /// Command Buffer Base Address: bits 51:12 base, 59:56 log2 of the entry count.
    pub const COMMAND_BUFFER_BASE: u64 = 0x0008;
    /// Event Log Base Address: bits 51:12 base, 59:56 log2 of the entry count.
    pub const EVENT_LOG_BASE: u64 = 0x0010;
    /// Control register (enables, see [`super::control`]).
    pub const CONTROL: u64 = 0x0018;
    /// Command Buffer Head Pointer: byte offset (bits 18:4), advanced by the unit.
    pub const COMMAND_HEAD: u64 = 0x2000;
    /// Command Buffer Tail Pointer: byte offset, advanced by software.
    pub const COMMAND_TAIL: u64 = 0x2008;
    /// Event Log Head Pointer: byte offset, advanced by software.
    pub const EVENT_HEAD: u64 = 0x2010;
    /// Event Log Tail Pointer: byte offset, advanced by the unit.
    pub const EVENT_TAIL: u64 = 0x2018;
    /// Status register (see [`super::status`]).
    pub const STATUS: u64 = 0x2020;
    /// Bytes of register space iommud maps.
    pub const MMIO_SIZE: u64 = 0x4000;
    /// Head/tail pointer bits (18:4: a byte offset of a 16-byte entry).
    pub const RING_POINTER_MASK: u64 = 0x7_FFF0;
}

/// Control register bits.
pub mod control {
    /// IommuEn: translation on.
    pub const IOMMU_ENABLE: u64 = 1 << 0;
    /// EventLogEn: faults are logged.
    pub const EVENT_LOG_ENABLE: u64 = 1 << 2;
    /// CmdBufEn: the unit fetches commands.
    pub const COMMAND_BUFFER_ENABLE: u64 = 1 << 12;
}

/// Status register bits.
pub mod status {
    /// EventOverflow: an event was lost because the log was full (RW1C).
    pub const EVENT_OVERFLOW: u64 = 1 << 0;
    /// EventLogRun.
    pub const EVENT_LOG_RUN: u64 = 1 << 3;
    /// CmdBufRun.
    pub const COMMAND_BUFFER_RUN: u64 = 1 << 4;
}

/// The unit's MMIO registers: 64-bit reads and writes at the offsets of [`reg`].
///
/// Implementations must tolerate any offset (an unknown one reads 0 and
/// ignores writes) and never panic.
pub trait AmdViMmio: Send {
    /// Reads the register at `offset`.
    fn read_u64(&self, offset: u64) -> u64;
    /// Writes the register at `offset`.
    fn write_u64(&mut self, offset: u64, value: u64);

    /// The IOMMU's PCI capability header (config space at the capability
    /// offset IVHD names): bit 26 NpCache, 27 EFRSup, 24 IotlbSup. `None`
    /// when it cannot be read; the driver then assumes NpCache, the
    /// conservative choice (an extra invalidation per MAP).
    fn capability_header(&self) -> Option<u32> {
        None
    }

    /// Orders the driver's stores to memory the unit reads (device table
    /// entries): every store before it is visible to the unit before any
    /// store after it (Linux's `dma_wmb`; x86 keeps stores in order, so a
    /// fence for the compiler and the CPU). The unit may read memory at any
    /// moment, so the driver calls this between the stores of an ordered
    /// update; a simulated unit reads the entries here.
    fn store_barrier(&mut self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

impl<T: AmdViMmio + ?Sized> AmdViMmio for Box<T> {
    fn read_u64(&self, offset: u64) -> u64 {
        (**self).read_u64(offset)
    }
    fn write_u64(&mut self, offset: u64, value: u64) {
        (**self).write_u64(offset, value)
    }
    fn capability_header(&self) -> Option<u32> {
        (**self).capability_header()
    }
    fn store_barrier(&mut self) {
        (**self).store_barrier()
    }
}

/// Bits of the IOMMU PCI capability header.
pub mod capability {
    /// IotlbSup: remote (device) IOTLBs supported.
    pub const IOTLB_SUP: u32 = 1 << 24;
    /// NpCache: the unit may cache not-present entries.
    pub const NP_CACHE: u32 = 1 << 26;
    /// EFRSup: the extended feature register exists.
    pub const EFR_SUP: u32 = 1 << 27;
}

/// Bytes of one device table entry.
pub const DTE_SIZE: u64 = 32;
/// Entries of a full device table (one per 16-bit requester id).
pub const DEVICE_TABLE_ENTRIES: u64 = 65_536;
/// Bytes of one command or event log entry.
pub const RING_ENTRY_SIZE: u64 = 16;
