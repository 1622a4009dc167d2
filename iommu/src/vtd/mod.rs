//! The Intel VT-d remapping unit (legacy mode) as software drives it: its
//! MMIO registers, the root and context tables, second-level page-table
//! entries, the queued-invalidation descriptors, and the fault-recording
//! registers. Bit layouts follow the VT-d specification as Linux
//! (`drivers/iommu/intel/iommu.h`) and QEMU (`hw/i386/intel_iommu_internal.h`)
//! spell them; `shared/notes/iommu-hw.md` §A lists them with sources.
//!
//! The registers are reached through [`VtdMmio`]: iommud on Redox implements
//! it over a physmap of the unit's register window, `redox-host` with a
//! simulated unit. Everything else (root table, context tables, page tables,
//! the invalidation queue, the wait status words) lives in ordinary physically
//! contiguous memory the unit reads and writes by DMA.

pub mod cap;
pub mod context;
pub mod descriptor;
pub mod discovery;
pub mod fault;
pub mod format;
pub mod pte;
pub mod registers;
pub mod unit;
pub mod unit_trait;

pub use cap::{Capability, ExtendedCapability, Features};
pub use context::{ContextEntry, RootEntry, TranslationType};
pub use descriptor::{ContextScope, Descriptor, IotlbScope};
pub use fault::{FaultReason, FaultRecord};
pub use registers::Registers;
pub use unit::{VtdStats, VtdUnit};

/// Register offsets from the DRHD register base (VT-d specification chapter
/// 11; Linux `DMAR_*_REG`). The width of each register decides the access
/// width: QEMU 7.2 aborts on an 8-byte access to a 32-bit register, so the
/// 32-bit ones are only ever touched with [`VtdMmio::read_u32`] /
/// [`VtdMmio::write_u32`].
pub mod reg {
    /// Version (32-bit): bits 7:4 major, 3:0 minor.
    pub const VER: u64 = 0x000;
    /// Capability (64-bit), see [`super::Capability`].
    pub const CAP: u64 = 0x008;
    /// Extended capability (64-bit), see [`super::ExtendedCapability`].
    pub const ECAP: u64 = 0x010;
    /// Global command (32-bit, write-only; reads as 0 on QEMU).
    pub const GCMD: u64 = 0x018;
    /// Global status (32-bit).
    pub const GSTS: u64 = 0x01C;
    /// Root-table address (64-bit): bits 63:12 address, 11:10 TTM.
    pub const RTADDR: u64 = 0x020;
    /// Register-based context-cache invalidation (64-bit).
    pub const CCMD: u64 = 0x028;
    /// Fault status (32-bit), see [`super::fsts`].
    pub const FSTS: u64 = 0x034;
    /// Fault-event control (32-bit), see [`super::fectl`].
    pub const FECTL: u64 = 0x038;
    /// Fault-event MSI data (32-bit).
    pub const FEDATA: u64 = 0x03C;
    /// Fault-event MSI address (32-bit).
    pub const FEADDR: u64 = 0x040;
    /// Fault-event MSI upper address (32-bit).
    pub const FEUADDR: u64 = 0x044;
    /// Protected-memory enable (32-bit): bit 31 EPM, bit 0 PRS.
    pub const PMEN: u64 = 0x064;
    /// Invalidation queue head (64-bit): index in bits 18:4.
    pub const IQH: u64 = 0x080;
    /// Invalidation queue tail (64-bit): index in bits 18:4.
    pub const IQT: u64 = 0x088;
    /// Invalidation queue address (64-bit): bits 63:12 base, 11 DW, 2:0 QS.
    pub const IQA: u64 = 0x090;
    /// Invalidation completion status (32-bit): bit 0 IWC.
    pub const ICS: u64 = 0x09C;
    /// Invalidation completion event control (32-bit).
    pub const IECTL: u64 = 0x0A0;
    /// Invalidation queue error record (64-bit).
    pub const IQER: u64 = 0x0B0;
    /// Queue head/tail index bits for 128-bit descriptors.
    pub const QUEUE_POINTER_MASK: u64 = 0x7_FFF0;
}

/// Global command / status bits (same positions in GCMD and GSTS).
pub mod gcmd {
    /// Translation enable (persistent) / TES.
    pub const TE: u32 = 1 << 31;
    /// Set root-table pointer (one-shot) / RTPS.
    pub const SRTP: u32 = 1 << 30;
    /// Set fault log (one-shot, legacy) / FLS.
    pub const SFL: u32 = 1 << 29;
    /// Enable advanced fault logging (persistent) / AFLS.
    pub const EAFL: u32 = 1 << 28;
    /// Write-buffer flush (one-shot) / WBFS, which clears when done.
    pub const WBF: u32 = 1 << 27;
    /// Queued-invalidation enable (persistent) / QIES.
    pub const QIE: u32 = 1 << 26;
    /// Interrupt-remapping enable (persistent) / IRES.
    pub const IRE: u32 = 1 << 25;
    /// Set interrupt-remap table pointer (one-shot) / IRTPS.
    pub const SIRTP: u32 = 1 << 24;
    /// Compatibility-format interrupts (persistent) / CFIS.
    pub const CFI: u32 = 1 << 23;
    /// The persistent bits: the ones a GCMD shadow carries into every write.
    pub const PERSISTENT: u32 = TE | EAFL | QIE | IRE | CFI;
}

/// Fault-status bits.
pub mod fsts {
    /// Primary fault overflow (write 1 to clear).
    pub const PFO: u32 = 1 << 0;
    /// Primary pending fault (read-only: some record has F set).
    pub const PPF: u32 = 1 << 1;
    /// Advanced fault overflow.
    pub const AFO: u32 = 1 << 2;
    /// Advanced pending fault.
    pub const APF: u32 = 1 << 3;
    /// Invalidation queue error (write 1 to clear).
    pub const IQE: u32 = 1 << 4;
    /// Invalidation completion error (write 1 to clear).
    pub const ICE: u32 = 1 << 5;
    /// Invalidation time-out error (write 1 to clear).
    pub const ITE: u32 = 1 << 6;
    /// Page-request overflow (Linux's `DMA_FSTS_PRO`).
    pub const PRO: u32 = 1 << 7;
    /// First bit of FRI, the index of the first pending fault record.
    pub const FRI_SHIFT: u32 = 8;
}

/// Fault-event control bits.
pub mod fectl {
    /// Interrupt mask.
    pub const IM: u32 = 1 << 31;
    /// Interrupt pending (read-only).
    pub const IP: u32 = 1 << 30;
}

/// A VT-d unit's MMIO registers.
///
/// 32-bit registers are accessed with the `u32` methods, 64-bit ones with
/// the `u64` methods, at the offsets of [`reg`] (fault records sit at
/// `CAP.FRO × 16`, the IOTLB registers at `ECAP.IRO × 16`).
/// Implementations must tolerate any offset (an unknown one reads 0 and
/// ignores writes) and never panic on behalf of the caller.
pub trait VtdMmio: Send {
    /// Reads the 32-bit register at `offset`.
    fn read_u32(&self, offset: u64) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write_u32(&mut self, offset: u64, value: u32);
    /// Reads the 64-bit register at `offset`.
    fn read_u64(&self, offset: u64) -> u64;
    /// Writes the 64-bit register at `offset`.
    fn write_u64(&mut self, offset: u64, value: u64);
}

impl<T: VtdMmio + ?Sized> VtdMmio for Box<T> {
    fn read_u32(&self, offset: u64) -> u32 {
        (**self).read_u32(offset)
    }
    fn write_u32(&mut self, offset: u64, value: u32) {
        (**self).write_u32(offset, value)
    }
    fn read_u64(&self, offset: u64) -> u64 {
        (**self).read_u64(offset)
    }
    fn write_u64(&mut self, offset: u64, value: u64) {
        (**self).write_u64(offset, value)
    }
}

/// Bytes of a root or context entry.
pub const ENTRY_SIZE: u64 = 16;
/// Entries of the root table (one per bus) and of a context table (one per devfn).
pub const TABLE_ENTRIES: u64 = 256;
/// Bytes of one legacy (128-bit) invalidation descriptor.
pub const DESCRIPTOR_SIZE: u64 = 16;
/// Descriptors of the invalidation queue iommud sets up (QS = 0: one 4 KiB page).
pub const QUEUE_ENTRIES: u64 = 256;
