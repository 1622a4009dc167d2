//! The MSI-X table, the pending bit array, and the MSI-X control bits.
//!
//! Each table entry is 16 bytes: message address low, address high, data, and
//! vector control (bit 0 = masked; bits 31:1 reserved and preserved on write).
//! An entry must not be rewritten while it is unmasked — the device could send
//! half an old and half a new message — so [`MsixTable::program`] masks around
//! the write when needed, as the PCI spec asks.
//!
//! Bring-up order: set the function mask and enable MSI-X in config space
//! ([`MsixCapability::set_function_masked`], [`MsixCapability::set_enabled`]),
//! program and unmask the entries, then clear the function mask.

use super::capability::{
    MSIX_CONTROL_ENABLE, MSIX_CONTROL_FUNCTION_MASK, MSIX_ENTRY_SIZE, MsiError, MsixCapability,
};
use super::message::MsiMessage;
use super::mmio::Mmio;
use crate::pci::config::{ConfigSpace, set_intx_disabled};

/// Vector control bit 0: the entry is masked.
pub const VECTOR_CONTROL_MASKED: u32 = 1;

/// One MSI-X table entry, as laid out in the BAR.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsixTableEntry {
    /// Message address, low dword.
    pub address_lo: u32,
    /// Message address, high dword.
    pub address_hi: u32,
    /// Message data.
    pub data: u32,
    /// Vector control: bit 0 masked.
    pub vector_control: u32,
}

const _: () = assert!(core::mem::size_of::<MsixTableEntry>() == 16);

impl MsixTableEntry {
    /// Whether the entry is masked.
    pub fn is_masked(&self) -> bool {
        self.vector_control & VECTOR_CONTROL_MASKED != 0
    }

    /// The message the entry holds.
    pub fn message(&self) -> MsiMessage {
        MsiMessage {
            address: u64::from(self.address_lo) | (u64::from(self.address_hi) << 32),
            data: self.data,
        }
    }

    /// Little-endian wire bytes.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (chunk, v) in out.chunks_exact_mut(4).zip([
            self.address_lo,
            self.address_hi,
            self.data,
            self.vector_control,
        ]) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes little-endian wire bytes.
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            if let Some(src) = bytes.get(i * 4..i * 4 + 4) {
                w.copy_from_slice(src);
            }
            u32::from_le_bytes(w)
        };
        Self {
            address_lo: word(0),
            address_hi: word(1),
            data: word(2),
            vector_control: word(3),
        }
    }
}

/// The MSI-X table of one function, reached through a mapping of its BAR.
pub struct MsixTable<M: Mmio> {
    mmio: M,
    /// Offset of entry 0 within the mapping.
    base: usize,
    len: u16,
}

impl<M: Mmio> MsixTable<M> {
    /// A table of `len` entries starting at byte `base` of `mmio` (the mapping
    /// of BAR `cap.table.bir`; `base` is normally `cap.table.offset`).
    pub fn new(mmio: M, base: usize, len: u16) -> Self {
        Self { mmio, base, len }
    }

    /// The table described by `cap`, when `mmio` maps its whole BAR.
    pub fn from_capability(mmio: M, cap: &MsixCapability) -> Self {
        Self::new(mmio, cap.table.offset as usize, cap.table_size())
    }

    /// Number of entries.
    pub fn len(&self) -> u16 {
        self.len
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn entry_offset(&self, index: u16) -> Result<usize, MsiError> {
        if index >= self.len {
            return Err(MsiError::IndexOutOfRange {
                index: u32::from(index),
                len: u32::from(self.len),
            });
        }
        Ok(self.base + usize::from(index) * MSIX_ENTRY_SIZE as usize)
    }

    /// Reads entry `index`.
    pub fn read_entry(&self, index: u16) -> Result<MsixTableEntry, MsiError> {
        let o = self.entry_offset(index)?;
        Ok(MsixTableEntry {
            address_lo: self.mmio.read_u32(o)?,
            address_hi: self.mmio.read_u32(o + 4)?,
            data: self.mmio.read_u32(o + 8)?,
            vector_control: self.mmio.read_u32(o + 12)?,
        })
    }

    fn write_control(&self, o: usize, masked: bool) -> Result<u32, MsiError> {
        let control = self.mmio.read_u32(o + 12)?;
        let new = if masked {
            control | VECTOR_CONTROL_MASKED
        } else {
            control & !VECTOR_CONTROL_MASKED
        };
        if new != control {
            self.mmio.write_u32(o + 12, new)?;
        }
        Ok(control)
    }

    /// Writes `message` into entry `index`. The entry's mask state is kept;
    /// an unmasked entry is masked for the duration of the write.
    pub fn program(&self, index: u16, message: &MsiMessage) -> Result<(), MsiError> {
        let o = self.entry_offset(index)?;
        let before = self.write_control(o, true)?;
        self.mmio.write_u32(o, message.address_lo())?;
        self.mmio.write_u32(o + 4, message.address_hi())?;
        self.mmio.write_u32(o + 8, message.data)?;
        if before & VECTOR_CONTROL_MASKED == 0 {
            self.write_control(o, false)?;
        }
        Ok(())
    }

    /// Masks entry `index`.
    pub fn mask(&self, index: u16) -> Result<(), MsiError> {
        let o = self.entry_offset(index)?;
        self.write_control(o, true).map(drop)
    }

    /// Unmasks entry `index`.
    pub fn unmask(&self, index: u16) -> Result<(), MsiError> {
        let o = self.entry_offset(index)?;
        self.write_control(o, false).map(drop)
    }

    /// Whether entry `index` is masked.
    pub fn is_masked(&self, index: u16) -> Result<bool, MsiError> {
        let o = self.entry_offset(index)?;
        Ok(self.mmio.read_u32(o + 12)? & VECTOR_CONTROL_MASKED != 0)
    }

    /// Masks every entry (what a driver does before handing out vectors).
    pub fn mask_all(&self) -> Result<(), MsiError> {
        (0..self.len).try_for_each(|i| self.mask(i))
    }
}

/// The pending bit array: bit `n` set = entry `n` has a message pending
/// (it fired while masked).
pub struct MsixPba<M: Mmio> {
    mmio: M,
    base: usize,
    len: u16,
}

impl<M: Mmio> MsixPba<M> {
    /// The PBA for `len` entries at byte `base` of `mmio`.
    pub fn new(mmio: M, base: usize, len: u16) -> Self {
        Self { mmio, base, len }
    }

    /// The PBA described by `cap`, when `mmio` maps its whole BAR.
    pub fn from_capability(mmio: M, cap: &MsixCapability) -> Self {
        Self::new(mmio, cap.pba.offset as usize, cap.table_size())
    }

    /// Whether entry `index` has a pending message. Read as dwords; bit `n`
    /// of the qword array is bit `n % 32` of dword `n / 32`.
    pub fn is_pending(&self, index: u16) -> Result<bool, MsiError> {
        if index >= self.len {
            return Err(MsiError::IndexOutOfRange {
                index: u32::from(index),
                len: u32::from(self.len),
            });
        }
        let dword = self
            .mmio
            .read_u32(self.base + usize::from(index / 32) * 4)?;
        Ok(dword & (1 << (index % 32)) != 0)
    }
}

impl MsixCapability {
    fn update_control<C: ConfigSpace + ?Sized>(
        &mut self,
        cfg: &mut C,
        bit: u16,
        set: bool,
    ) -> Result<(), MsiError> {
        let control = cfg.read_u16(self.control_offset())?;
        let new = if set { control | bit } else { control & !bit };
        if new != control {
            cfg.write_u16(self.control_offset(), new)?;
        }
        self.control = new;
        Ok(())
    }

    /// Sets or clears the function mask (masks every vector at once without
    /// touching the per-entry bits).
    pub fn set_function_masked<C: ConfigSpace + ?Sized>(
        &mut self,
        cfg: &mut C,
        masked: bool,
    ) -> Result<(), MsiError> {
        self.update_control(cfg, MSIX_CONTROL_FUNCTION_MASK, masked)
    }

    /// Enables or disables MSI-X. Enabling also sets the command register's
    /// INTx-disable bit; disabling clears it again.
    pub fn set_enabled<C: ConfigSpace + ?Sized>(
        &mut self,
        cfg: &mut C,
        enabled: bool,
    ) -> Result<(), MsiError> {
        if enabled {
            set_intx_disabled(cfg, true)?;
        }
        self.update_control(cfg, MSIX_CONTROL_ENABLE, enabled)?;
        if !enabled {
            set_intx_disabled(cfg, false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msi::message::X86MsiTarget;
    use crate::msi::mmio::MemoryMmio;
    use crate::pci::capability::CAP_ID_MSIX;
    use crate::pci::config::{MemoryConfigSpace, REG_COMMAND};

    /// Records every write so ordering can be checked.
    struct Recording<'a> {
        inner: &'a MemoryMmio,
        log: std::sync::Mutex<Vec<(usize, u32)>>,
    }

    impl Mmio for Recording<'_> {
        fn read_u32(&self, offset: usize) -> Result<u32, crate::msi::MmioError> {
            self.inner.read_u32(offset)
        }
        fn write_u32(&self, offset: usize, value: u32) -> Result<(), crate::msi::MmioError> {
            if let Ok(mut log) = self.log.lock() {
                log.push((offset, value));
            }
            self.inner.write_u32(offset, value)
        }
    }

    #[test]
    fn entry_wire_layout() {
        let e = MsixTableEntry {
            address_lo: 0xFEE0_1000,
            address_hi: 0,
            data: 0x41,
            vector_control: 1,
        };
        let bytes = e.to_bytes();
        assert_eq!(bytes[..4], [0x00, 0x10, 0xE0, 0xFE]);
        assert_eq!(bytes[8], 0x41);
        assert_eq!(bytes[12], 1);
        assert_eq!(MsixTableEntry::from_bytes(&bytes), e);
        assert!(e.is_masked());
    }

    #[test]
    fn program_an_unmasked_entry_masks_around_the_write() {
        let bar = MemoryMmio::new(0x1000);
        // Entry 2 at table base 0x200 is unmasked, reserved control bits set.
        bar.write_u32(0x200 + 2 * 16 + 12, 0xA0).unwrap();
        let rec = Recording {
            inner: &bar,
            log: Default::default(),
        };
        let table = MsixTable::new(&rec, 0x200, 4);
        let msg = X86MsiTarget::fixed(1, 0x45).compose().unwrap();
        table.program(2, &msg).unwrap();
        let ctl = 0x200 + 2 * 16 + 12;
        let log = rec.log.lock().unwrap().clone();
        assert_eq!(
            log,
            vec![
                (ctl, 0xA1),
                (0x220, 0xFEE0_1000),
                (0x224, 0),
                (0x228, 0x45),
                (ctl, 0xA0)
            ],
            "mask, write, unmask; reserved bits preserved"
        );
        let e = table.read_entry(2).unwrap();
        assert_eq!(e.message(), msg);
        assert!(!e.is_masked());
    }

    #[test]
    fn program_a_masked_entry_leaves_it_masked() {
        let bar = MemoryMmio::new(0x100);
        let table = MsixTable::new(&bar, 0, 8);
        table.mask_all().unwrap();
        let msg = X86MsiTarget::fixed(0, 0x30).compose().unwrap();
        table.program(7, &msg).unwrap();
        assert!(table.is_masked(7).unwrap());
        table.unmask(7).unwrap();
        assert!(!table.is_masked(7).unwrap());
        assert!(table.is_masked(6).unwrap());
        table.mask(7).unwrap();
        assert!(table.is_masked(7).unwrap());
        assert_eq!(
            table.read_entry(8),
            Err(MsiError::IndexOutOfRange { index: 8, len: 8 })
        );
    }

    #[test]
    fn table_beyond_the_mapping_is_an_error() {
        let bar = MemoryMmio::new(0x40);
        let table = MsixTable::new(&bar, 0x30, 4);
        assert!(matches!(table.read_entry(1), Err(MsiError::Mmio(_))));
    }

    #[test]
    fn pba_bits_across_dwords_and_qwords() {
        let bar = MemoryMmio::new(0x40);
        // Entries 0, 33 and 64 pending: dword 0 bit 0, dword 1 bit 1, dword 2 bit 0.
        bar.write_u32(0x20, 1).unwrap();
        bar.write_u32(0x24, 1 << 1).unwrap();
        bar.write_u32(0x28, 1).unwrap();
        let pba = MsixPba::new(&bar, 0x20, 65);
        assert!(pba.is_pending(0).unwrap());
        assert!(!pba.is_pending(1).unwrap());
        assert!(pba.is_pending(33).unwrap());
        assert!(pba.is_pending(64).unwrap());
        assert!(pba.is_pending(65).is_err());
    }

    #[test]
    fn function_mask_and_enable_in_config_space() {
        let mut cfg = MemoryConfigSpace::new();
        cfg.write_u8(0x70, CAP_ID_MSIX).unwrap();
        cfg.write_u16(0x72, 15).unwrap();
        let mut cap = MsixCapability::parse(&mut cfg, 0x70).unwrap();
        cap.set_function_masked(&mut cfg, true).unwrap();
        cap.set_enabled(&mut cfg, true).unwrap();
        assert_eq!(cfg.read_u16(0x72).unwrap(), 0xC00F);
        assert!(cap.is_enabled() && cap.is_function_masked());
        assert_eq!(cfg.read_u16(REG_COMMAND).unwrap() & (1 << 10), 1 << 10);
        cap.set_function_masked(&mut cfg, false).unwrap();
        assert_eq!(cfg.read_u16(0x72).unwrap(), 0x800F);
        cap.set_enabled(&mut cfg, false).unwrap();
        assert_eq!(cfg.read_u16(0x72).unwrap(), 0x000F);
        assert_eq!(cfg.read_u16(REG_COMMAND).unwrap() & (1 << 10), 0);
    }
}
