//! Parsing the MSI (ID 0x05) and MSI-X (ID 0x11) capability structures.
//!
//! MSI layout, from the capability header at `cap`:
//!
//! | offset | 32-bit | 64-bit |
//! |---|---|---|
//! | +2 | control | control |
//! | +4 | address low | address low |
//! | +8 | data | address high |
//! | +0xC | mask (if per-vector masking) | data |
//! | +0x10 | pending (if per-vector masking) | mask |
//! | +0x14 | | pending |
//!
//! Control: bit 0 enable, 3:1 multiple-message capable (log2 of the vectors the
//! function can use), 6:4 multiple-message enable, 7 64-bit, 8 per-vector masking.
//!
//! MSI-X: +2 control (10:0 table size − 1, 14 function mask, 15 enable), +4
//! table BIR (2:0) and offset (31:3), +8 PBA BIR and offset likewise.

use crate::pci::capability::{CAP_ID_MSI, CAP_ID_MSIX};
use crate::pci::config::{ConfigError, ConfigSpace};

/// Why a capability is unusable or an MSI operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiError {
    /// Configuration-space access failed.
    Config(ConfigError),
    /// MMIO access to the MSI-X table or PBA failed.
    Mmio(super::mmio::MmioError),
    /// The capability at this offset has another ID.
    WrongCapability {
        /// Offset given.
        offset: u8,
        /// ID found there.
        found: u8,
    },
    /// The capability does not fit below 0x100.
    Truncated {
        /// Offset of the capability.
        offset: u8,
    },
    /// Multiple-message capable holds a reserved encoding (6 or 7).
    ReservedMultipleMessage(u8),
    /// A BAR indicator above 5.
    BadBir {
        /// The BIR found.
        bir: u8,
    },
    /// The MSI-X table or PBA does not fit in its BAR.
    OutsideBar {
        /// BAR index.
        bir: u8,
        /// First byte past the structure.
        end: u64,
        /// Size of the BAR.
        bar_size: u64,
    },
    /// The MSI-X table and PBA overlap in the same BAR.
    TableOverlapsPba,
    /// The vector count is not a power of two between 1 and what the function supports.
    BadVectorCount {
        /// Count asked for.
        requested: u32,
        /// Most the function supports.
        supported: u32,
    },
    /// In multi-message mode the function ORs the message number into the low
    /// data bits, so the base vector must be aligned to the block size.
    UnalignedVectorBlock {
        /// The base vector.
        vector: u8,
        /// The block size.
        count: u32,
    },
    /// A 32-bit MSI capability cannot send a message with a high address dword.
    AddressNeeds64Bit,
    /// A table entry, vector or pending bit index beyond what the function has.
    IndexOutOfRange {
        /// The index.
        index: u32,
        /// Number of entries/vectors.
        len: u32,
    },
    /// The function has no per-vector mask bits.
    NoPerVectorMasking,
}

impl From<ConfigError> for MsiError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<super::mmio::MmioError> for MsiError {
    fn from(e: super::mmio::MmioError) -> Self {
        Self::Mmio(e)
    }
}

impl core::fmt::Display for MsiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "MSI: {e}"),
            Self::Mmio(e) => write!(f, "MSI-X: {e}"),
            Self::WrongCapability { offset, found } => {
                write!(f, "capability at {offset:#x} has ID {found:#x}")
            }
            Self::Truncated { offset } => write!(f, "capability at {offset:#x} runs past 0xff"),
            Self::ReservedMultipleMessage(v) => write!(f, "reserved multiple-message encoding {v}"),
            Self::BadBir { bir } => write!(f, "BAR indicator {bir} is above 5"),
            Self::OutsideBar { bir, end, bar_size } => {
                write!(
                    f,
                    "MSI-X structure ends at {end:#x}, past BAR{bir} size {bar_size:#x}"
                )
            }
            Self::TableOverlapsPba => write!(f, "MSI-X table and PBA overlap"),
            Self::BadVectorCount {
                requested,
                supported,
            } => {
                write!(
                    f,
                    "{requested} vectors requested, power of two up to {supported} supported"
                )
            }
            Self::UnalignedVectorBlock { vector, count } => {
                write!(
                    f,
                    "base vector {vector:#x} is not aligned to a block of {count}"
                )
            }
            Self::AddressNeeds64Bit => write!(f, "message address needs a 64-bit MSI capability"),
            Self::IndexOutOfRange { index, len } => {
                write!(f, "index {index} out of range 0..{len}")
            }
            Self::NoPerVectorMasking => write!(f, "function has no per-vector masking"),
        }
    }
}

impl std::error::Error for MsiError {}

/// MSI control bit 0.
pub const MSI_CONTROL_ENABLE: u16 = 1 << 0;
/// MSI control bits 3:1.
pub const MSI_CONTROL_MMC_MASK: u16 = 0b111 << 1;
/// MSI control bits 6:4.
pub const MSI_CONTROL_MME_MASK: u16 = 0b111 << 4;
/// MSI control bit 7.
pub const MSI_CONTROL_64BIT: u16 = 1 << 7;
/// MSI control bit 8.
pub const MSI_CONTROL_PER_VECTOR_MASK: u16 = 1 << 8;

/// MSI-X control bits 10:0.
pub const MSIX_CONTROL_TABLE_SIZE_MASK: u16 = 0x07FF;
/// MSI-X control bit 14.
pub const MSIX_CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// MSI-X control bit 15.
pub const MSIX_CONTROL_ENABLE: u16 = 1 << 15;

/// Size of one MSI-X table entry.
pub const MSIX_ENTRY_SIZE: u64 = 16;

fn check_id<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    offset: u8,
    id: u8,
    len: u16,
) -> Result<(), MsiError> {
    if u16::from(offset) + len > 0x100 {
        return Err(MsiError::Truncated { offset });
    }
    let found = cfg.read_u8(u16::from(offset))?;
    if found != id {
        return Err(MsiError::WrongCapability { offset, found });
    }
    Ok(())
}

/// A parsed MSI capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiCapability {
    /// Config offset of the capability header.
    pub offset: u8,
    /// The control register as read.
    pub control: u16,
}

impl MsiCapability {
    /// Reads and validates the MSI capability at `offset`.
    pub fn parse<C: ConfigSpace + ?Sized>(cfg: &mut C, offset: u8) -> Result<Self, MsiError> {
        check_id(cfg, offset, CAP_ID_MSI, 4)?;
        let control = cfg.read_u16(u16::from(offset) + 2)?;
        Self::from_control(offset, control)
    }

    /// Validates a control value read elsewhere (e.g. from the `pcid` channel).
    pub fn from_control(offset: u8, control: u16) -> Result<Self, MsiError> {
        let cap = Self { offset, control };
        let mmc = cap.multiple_message_capable_log2();
        if mmc > 5 {
            return Err(MsiError::ReservedMultipleMessage(mmc));
        }
        if u16::from(offset) + cap.len() > 0x100 {
            return Err(MsiError::Truncated { offset });
        }
        Ok(cap)
    }

    /// Length of the structure in bytes: 10, 14, 20 or 24.
    pub fn len(&self) -> u16 {
        match (self.is_64bit(), self.has_per_vector_masking()) {
            (false, false) => 0x0A,
            (true, false) => 0x0E,
            (false, true) => 0x14,
            (true, true) => 0x18,
        }
    }

    /// Never true; present for the `len` convention.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether MSI is enabled.
    pub fn is_enabled(&self) -> bool {
        self.control & MSI_CONTROL_ENABLE != 0
    }

    /// Whether the message address has a high dword.
    pub fn is_64bit(&self) -> bool {
        self.control & MSI_CONTROL_64BIT != 0
    }

    /// Whether the mask and pending registers exist.
    pub fn has_per_vector_masking(&self) -> bool {
        self.control & MSI_CONTROL_PER_VECTOR_MASK != 0
    }

    /// log2 of the vectors the function can use (0..=5 once validated).
    pub fn multiple_message_capable_log2(&self) -> u8 {
        ((self.control & MSI_CONTROL_MMC_MASK) >> 1) as u8
    }

    /// Vectors the function can use: 1, 2, 4, 8, 16 or 32.
    pub fn max_vectors(&self) -> u32 {
        1 << self.multiple_message_capable_log2().min(5)
    }

    /// log2 of the vectors software enabled.
    pub fn multiple_message_enable_log2(&self) -> u8 {
        ((self.control & MSI_CONTROL_MME_MASK) >> 4) as u8
    }

    /// Vectors software enabled (reserved encodings clamp to 32).
    pub fn enabled_vectors(&self) -> u32 {
        1 << self.multiple_message_enable_log2().min(5)
    }

    /// Config offset of the control register.
    pub fn control_offset(&self) -> u16 {
        u16::from(self.offset) + 2
    }

    /// Config offset of the message address low dword.
    pub fn address_lo_offset(&self) -> u16 {
        u16::from(self.offset) + 4
    }

    /// Config offset of the message address high dword, if 64-bit.
    pub fn address_hi_offset(&self) -> Option<u16> {
        self.is_64bit().then(|| u16::from(self.offset) + 8)
    }

    /// Config offset of the 16-bit message data register.
    pub fn data_offset(&self) -> u16 {
        u16::from(self.offset) + if self.is_64bit() { 0x0C } else { 0x08 }
    }

    /// Config offset of the mask-bits register, if per-vector masking.
    pub fn mask_offset(&self) -> Option<u16> {
        self.has_per_vector_masking()
            .then(|| u16::from(self.offset) + if self.is_64bit() { 0x10 } else { 0x0C })
    }

    /// Config offset of the pending-bits register, if per-vector masking.
    pub fn pending_offset(&self) -> Option<u16> {
        self.mask_offset().map(|m| m + 4)
    }
}

/// Where an MSI-X structure lives: a BAR and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixRegion {
    /// BAR indicator, 0..=5.
    pub bir: u8,
    /// Byte offset in the BAR, 8-byte aligned.
    pub offset: u32,
}

impl MsixRegion {
    fn decode(raw: u32) -> Result<Self, MsiError> {
        let bir = (raw & 0x7) as u8;
        if bir > 5 {
            return Err(MsiError::BadBir { bir });
        }
        Ok(Self {
            bir,
            offset: raw & !0x7,
        })
    }
}

/// A parsed MSI-X capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixCapability {
    /// Config offset of the capability header.
    pub offset: u8,
    /// The control register as read.
    pub control: u16,
    /// Where the table is.
    pub table: MsixRegion,
    /// Where the pending bit array is.
    pub pba: MsixRegion,
}

impl MsixCapability {
    /// Reads and validates the MSI-X capability at `offset` (BIRs only; call
    /// [`MsixCapability::validate_bars`] once BAR sizes are known).
    pub fn parse<C: ConfigSpace + ?Sized>(cfg: &mut C, offset: u8) -> Result<Self, MsiError> {
        check_id(cfg, offset, CAP_ID_MSIX, 12)?;
        let base = u16::from(offset);
        let control = cfg.read_u16(base + 2)?;
        let table = cfg.read_u32(base + 4)?;
        let pba = cfg.read_u32(base + 8)?;
        Self::from_registers(offset, control, table, pba)
    }

    /// Validates register values read elsewhere.
    pub fn from_registers(
        offset: u8,
        control: u16,
        table: u32,
        pba: u32,
    ) -> Result<Self, MsiError> {
        Ok(Self {
            offset,
            control,
            table: MsixRegion::decode(table)?,
            pba: MsixRegion::decode(pba)?,
        })
    }

    /// Number of table entries, 1..=2048.
    pub fn table_size(&self) -> u16 {
        (self.control & MSIX_CONTROL_TABLE_SIZE_MASK) + 1
    }

    /// Whether MSI-X is enabled.
    pub fn is_enabled(&self) -> bool {
        self.control & MSIX_CONTROL_ENABLE != 0
    }

    /// Whether all vectors are masked by the function mask.
    pub fn is_function_masked(&self) -> bool {
        self.control & MSIX_CONTROL_FUNCTION_MASK != 0
    }

    /// Config offset of the control register.
    pub fn control_offset(&self) -> u16 {
        u16::from(self.offset) + 2
    }

    /// Bytes the table occupies.
    pub fn table_len(&self) -> u64 {
        u64::from(self.table_size()) * MSIX_ENTRY_SIZE
    }

    /// Bytes the PBA occupies: one bit per entry, in whole qwords.
    pub fn pba_len(&self) -> u64 {
        u64::from(self.table_size()).div_ceil(64) * 8
    }

    /// Checks the table and PBA against the sizes of the function's BARs
    /// (`None` = size unknown, skipped) and against each other.
    pub fn validate_bars(&self, bar_sizes: &[Option<u64>; 6]) -> Result<(), MsiError> {
        for (region, len) in [(self.table, self.table_len()), (self.pba, self.pba_len())] {
            let end = u64::from(region.offset) + len;
            if let Some(Some(bar_size)) = bar_sizes.get(usize::from(region.bir))
                && end > *bar_size
            {
                return Err(MsiError::OutsideBar {
                    bir: region.bir,
                    end,
                    bar_size: *bar_size,
                });
            }
        }
        if self.table.bir == self.pba.bir {
            let t = u64::from(self.table.offset)..u64::from(self.table.offset) + self.table_len();
            let p = u64::from(self.pba.offset)..u64::from(self.pba.offset) + self.pba_len();
            if t.start < p.end && p.start < t.end {
                return Err(MsiError::TableOverlapsPba);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::MemoryConfigSpace;

    fn msi_at(offset: u8, control: u16) -> MemoryConfigSpace {
        let mut cfg = MemoryConfigSpace::new();
        cfg.write_u8(u16::from(offset), CAP_ID_MSI).unwrap();
        cfg.write_u16(u16::from(offset) + 2, control).unwrap();
        cfg
    }

    #[test]
    fn msi_32bit_plain() {
        let mut cfg = msi_at(0x50, 0x0000);
        let cap = MsiCapability::parse(&mut cfg, 0x50).unwrap();
        assert!(!cap.is_64bit() && !cap.has_per_vector_masking() && !cap.is_enabled());
        assert_eq!(cap.max_vectors(), 1);
        assert_eq!(cap.address_lo_offset(), 0x54);
        assert_eq!(cap.address_hi_offset(), None);
        assert_eq!(cap.data_offset(), 0x58);
        assert_eq!(cap.mask_offset(), None);
        assert_eq!(cap.pending_offset(), None);
        assert_eq!(cap.len(), 10);
    }

    #[test]
    fn msi_64bit_masked_multi_message() {
        // 64-bit, per-vector masking, MMC = 5 (32 vectors), MME = 2 (4), enabled.
        let mut cfg = msi_at(0x60, 0x0100 | 0x0080 | (5 << 1) | (2 << 4) | 1);
        let cap = MsiCapability::parse(&mut cfg, 0x60).unwrap();
        assert!(cap.is_64bit() && cap.has_per_vector_masking() && cap.is_enabled());
        assert_eq!(cap.max_vectors(), 32);
        assert_eq!(cap.enabled_vectors(), 4);
        assert_eq!(cap.address_lo_offset(), 0x64);
        assert_eq!(cap.address_hi_offset(), Some(0x68));
        assert_eq!(cap.data_offset(), 0x6C);
        assert_eq!(cap.mask_offset(), Some(0x70));
        assert_eq!(cap.pending_offset(), Some(0x74));
        assert_eq!(cap.len(), 24);
    }

    #[test]
    fn msi_32bit_masked() {
        let mut cfg = msi_at(0x50, 0x0100 | (3 << 1));
        let cap = MsiCapability::parse(&mut cfg, 0x50).unwrap();
        assert_eq!(cap.max_vectors(), 8);
        assert_eq!(cap.data_offset(), 0x58);
        assert_eq!(cap.mask_offset(), Some(0x5C));
        assert_eq!(cap.pending_offset(), Some(0x60));
    }

    #[test]
    fn msi_rejects_reserved_mmc_wrong_id_and_truncation() {
        let mut cfg = msi_at(0x50, 6 << 1);
        assert_eq!(
            MsiCapability::parse(&mut cfg, 0x50),
            Err(MsiError::ReservedMultipleMessage(6))
        );
        cfg.write_u8(0x50, CAP_ID_MSIX).unwrap();
        assert_eq!(
            MsiCapability::parse(&mut cfg, 0x50),
            Err(MsiError::WrongCapability {
                offset: 0x50,
                found: CAP_ID_MSIX
            })
        );
        // A 64-bit masked MSI needs 24 bytes; at 0xF0 it would run past 0xFF.
        let mut cfg = msi_at(0xF0, 0x0180);
        assert_eq!(
            MsiCapability::parse(&mut cfg, 0xF0),
            Err(MsiError::Truncated { offset: 0xF0 })
        );
    }

    fn msix_at(offset: u8, control: u16, table: u32, pba: u32) -> MemoryConfigSpace {
        let mut cfg = MemoryConfigSpace::new();
        let o = u16::from(offset);
        cfg.write_u8(o, CAP_ID_MSIX).unwrap();
        cfg.write_u16(o + 2, control).unwrap();
        cfg.write_u32(o + 4, table).unwrap();
        cfg.write_u32(o + 8, pba).unwrap();
        cfg
    }

    #[test]
    fn msix_table_and_pba_in_different_bars() {
        // 65 entries; table in BAR0 at 0x2000, PBA in BAR4 at 0x800.
        let mut cfg = msix_at(0x70, 64 | MSIX_CONTROL_FUNCTION_MASK, 0x2000, 0x800 | 4);
        let cap = MsixCapability::parse(&mut cfg, 0x70).unwrap();
        assert_eq!(cap.table_size(), 65);
        assert!(cap.is_function_masked() && !cap.is_enabled());
        assert_eq!(
            cap.table,
            MsixRegion {
                bir: 0,
                offset: 0x2000
            }
        );
        assert_eq!(
            cap.pba,
            MsixRegion {
                bir: 4,
                offset: 0x800
            }
        );
        assert_eq!(cap.table_len(), 65 * 16);
        assert_eq!(cap.pba_len(), 16, "65 bits need two qwords");
        let mut sizes = [None; 6];
        sizes[0] = Some(0x4000);
        sizes[4] = Some(0x1000);
        cap.validate_bars(&sizes).unwrap();
        // BAR4 of 2 KiB cannot hold a PBA at 0x800.
        sizes[4] = Some(0x800);
        assert_eq!(
            cap.validate_bars(&sizes),
            Err(MsiError::OutsideBar {
                bir: 4,
                end: 0x810,
                bar_size: 0x800
            })
        );
        // Unknown sizes are not checked.
        cap.validate_bars(&[None; 6]).unwrap();
    }

    #[test]
    fn msix_rejects_bad_bir_table_past_bar_and_overlap() {
        let mut cfg = msix_at(0x70, 7, 6, 0x1000);
        assert_eq!(
            MsixCapability::parse(&mut cfg, 0x70),
            Err(MsiError::BadBir { bir: 6 })
        );
        let mut cfg = msix_at(0x70, 7, 0x0, 0x1000 | 7);
        assert_eq!(
            MsixCapability::parse(&mut cfg, 0x70),
            Err(MsiError::BadBir { bir: 7 })
        );

        // Table of 2048 entries (32 KiB) in a 16 KiB BAR.
        let cap = MsixCapability::from_registers(0x70, 0x7FF, 0x0, 0x8000).unwrap();
        assert_eq!(cap.table_size(), 2048);
        let mut sizes = [None; 6];
        sizes[0] = Some(0x4000);
        assert_eq!(
            cap.validate_bars(&sizes),
            Err(MsiError::OutsideBar {
                bir: 0,
                end: 0x8000,
                bar_size: 0x4000
            })
        );

        // 8 entries at 0x0..0x80 and a PBA at 0x40 in the same BAR.
        let cap = MsixCapability::from_registers(0x70, 7, 0x0, 0x40).unwrap();
        assert_eq!(
            cap.validate_bars(&[None; 6]),
            Err(MsiError::TableOverlapsPba)
        );
    }
}
