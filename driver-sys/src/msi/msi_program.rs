//! Programming plain MSI through configuration space.
//!
//! With multi-message MSI the function sends `count` different messages by
//! replacing the low log2(count) bits of the data with the message number, so
//! the driver must own an aligned power-of-two block of vectors (see
//! [`crate::vector::VectorMatrix::alloc_block`]) and write the block's first
//! vector. The address is shared: every vector of the block goes to one CPU.

use super::capability::{MSI_CONTROL_ENABLE, MSI_CONTROL_MME_MASK, MsiCapability, MsiError};
use super::message::MsiMessage;
use crate::pci::config::{ConfigSpace, set_intx_disabled};

impl MsiCapability {
    /// Writes the message and the multiple-message-enable field for a block of
    /// `count` vectors (a power of two, at most [`MsiCapability::max_vectors`],
    /// base vector aligned to `count`). MSI is disabled while the registers
    /// change and left disabled; call [`MsiCapability::set_enabled`] after.
    pub fn program<C: ConfigSpace + ?Sized>(
        &mut self,
        cfg: &mut C,
        message: &MsiMessage,
        count: u32,
    ) -> Result<(), MsiError> {
        let supported = self.max_vectors();
        if count == 0 || !count.is_power_of_two() || count > supported {
            return Err(MsiError::BadVectorCount {
                requested: count,
                supported,
            });
        }
        if u32::from(message.vector()) & (count - 1) != 0 {
            return Err(MsiError::UnalignedVectorBlock {
                vector: message.vector(),
                count,
            });
        }
        if message.address_hi() != 0 && !self.is_64bit() {
            return Err(MsiError::AddressNeeds64Bit);
        }
        let control = cfg.read_u16(self.control_offset())? & !MSI_CONTROL_ENABLE;
        cfg.write_u16(self.control_offset(), control)?;
        cfg.write_u32(self.address_lo_offset(), message.address_lo())?;
        if let Some(hi) = self.address_hi_offset() {
            cfg.write_u32(hi, message.address_hi())?;
        }
        // The MSI data register is 16 bits wide.
        cfg.write_u16(self.data_offset(), message.data as u16)?;
        let mme = (count.trailing_zeros() as u16) << 4;
        let control = (control & !MSI_CONTROL_MME_MASK) | mme;
        cfg.write_u16(self.control_offset(), control)?;
        self.control = control;
        Ok(())
    }

    /// Enables or disables MSI. Enabling also sets the command register's
    /// INTx-disable bit; disabling clears it again.
    pub fn set_enabled<C: ConfigSpace + ?Sized>(
        &mut self,
        cfg: &mut C,
        enabled: bool,
    ) -> Result<(), MsiError> {
        if enabled {
            set_intx_disabled(cfg, true)?;
        }
        let control = cfg.read_u16(self.control_offset())?;
        let new = if enabled {
            control | MSI_CONTROL_ENABLE
        } else {
            control & !MSI_CONTROL_ENABLE
        };
        cfg.write_u16(self.control_offset(), new)?;
        self.control = new;
        if !enabled {
            set_intx_disabled(cfg, false)?;
        }
        Ok(())
    }

    fn mask_register(&self) -> Result<u16, MsiError> {
        self.mask_offset().ok_or(MsiError::NoPerVectorMasking)
    }

    fn check_vector(&self, index: u32) -> Result<(), MsiError> {
        let len = self.max_vectors();
        if index >= len {
            return Err(MsiError::IndexOutOfRange { index, len });
        }
        Ok(())
    }

    /// Masks (`true`) or unmasks vector `index` of the block.
    pub fn set_vector_masked<C: ConfigSpace + ?Sized>(
        &self,
        cfg: &mut C,
        index: u32,
        masked: bool,
    ) -> Result<(), MsiError> {
        let reg = self.mask_register()?;
        self.check_vector(index)?;
        let bits = cfg.read_u32(reg)?;
        let new = if masked {
            bits | (1 << index)
        } else {
            bits & !(1 << index)
        };
        if new != bits {
            cfg.write_u32(reg, new)?;
        }
        Ok(())
    }

    /// Whether vector `index` is masked.
    pub fn is_vector_masked<C: ConfigSpace + ?Sized>(
        &self,
        cfg: &mut C,
        index: u32,
    ) -> Result<bool, MsiError> {
        let reg = self.mask_register()?;
        self.check_vector(index)?;
        Ok(cfg.read_u32(reg)? & (1 << index) != 0)
    }

    /// Whether vector `index` has a message pending (fired while masked).
    pub fn is_vector_pending<C: ConfigSpace + ?Sized>(
        &self,
        cfg: &mut C,
        index: u32,
    ) -> Result<bool, MsiError> {
        let reg = self.pending_offset().ok_or(MsiError::NoPerVectorMasking)?;
        self.check_vector(index)?;
        Ok(cfg.read_u32(reg)? & (1 << index) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msi::message::X86MsiTarget;
    use crate::pci::capability::CAP_ID_MSI;
    use crate::pci::config::{MemoryConfigSpace, REG_COMMAND};

    fn msi(control: u16) -> (MemoryConfigSpace, MsiCapability) {
        let mut cfg = MemoryConfigSpace::new();
        cfg.write_u8(0x50, CAP_ID_MSI).unwrap();
        cfg.write_u16(0x52, control).unwrap();
        let cap = MsiCapability::parse(&mut cfg, 0x50).unwrap();
        (cfg, cap)
    }

    #[test]
    fn program_64bit_block_of_eight() {
        // 64-bit, masking, MMC 8 vectors.
        let (mut cfg, mut cap) = msi(0x0180 | (3 << 1));
        let msg = X86MsiTarget::fixed(2, 0x48).compose().unwrap();
        cap.program(&mut cfg, &msg, 8).unwrap();
        assert_eq!(cfg.read_u32(0x54).unwrap(), 0xFEE0_2000);
        assert_eq!(cfg.read_u32(0x58).unwrap(), 0);
        assert_eq!(cfg.read_u16(0x5C).unwrap(), 0x48);
        let control = cfg.read_u16(0x52).unwrap();
        assert_eq!((control >> 4) & 7, 3, "MME = log2(8)");
        assert_eq!(control & 1, 0, "left disabled");
        cap.set_enabled(&mut cfg, true).unwrap();
        assert_eq!(cfg.read_u16(0x52).unwrap() & 1, 1);
        assert_ne!(cfg.read_u16(REG_COMMAND).unwrap() & (1 << 10), 0);
        assert_eq!(cap.enabled_vectors(), 8);
    }

    #[test]
    fn program_32bit_single() {
        let (mut cfg, mut cap) = msi(0);
        let msg = X86MsiTarget::fixed(0, 0x21).compose().unwrap();
        cap.program(&mut cfg, &msg, 1).unwrap();
        assert_eq!(cfg.read_u32(0x54).unwrap(), 0xFEE0_0000);
        assert_eq!(cfg.read_u16(0x58).unwrap(), 0x21);
        let hi = MsiMessage {
            address: 0x1_FEE0_0000,
            data: 0x21,
        };
        assert_eq!(
            cap.program(&mut cfg, &hi, 1),
            Err(MsiError::AddressNeeds64Bit)
        );
    }

    #[test]
    fn program_rejects_bad_counts_and_unaligned_blocks() {
        let (mut cfg, mut cap) = msi(2 << 1); // 4 vectors
        let msg = X86MsiTarget::fixed(0, 0x44).compose().unwrap();
        assert_eq!(
            cap.program(&mut cfg, &msg, 8),
            Err(MsiError::BadVectorCount {
                requested: 8,
                supported: 4
            })
        );
        assert_eq!(
            cap.program(&mut cfg, &msg, 3),
            Err(MsiError::BadVectorCount {
                requested: 3,
                supported: 4
            })
        );
        assert_eq!(
            cap.program(&mut cfg, &msg, 0),
            Err(MsiError::BadVectorCount {
                requested: 0,
                supported: 4
            })
        );
        let odd = X86MsiTarget::fixed(0, 0x42).compose().unwrap();
        assert_eq!(
            cap.program(&mut cfg, &odd, 4),
            Err(MsiError::UnalignedVectorBlock {
                vector: 0x42,
                count: 4
            })
        );
        cap.program(&mut cfg, &odd, 2).unwrap();
    }

    #[test]
    fn per_vector_mask_and_pending() {
        let (mut cfg, cap) = msi(0x0100 | (2 << 1)); // 32-bit, masking, 4 vectors
        cap.set_vector_masked(&mut cfg, 2, true).unwrap();
        assert_eq!(cfg.read_u32(0x5C).unwrap(), 0b100);
        assert!(cap.is_vector_masked(&mut cfg, 2).unwrap());
        cap.set_vector_masked(&mut cfg, 2, false).unwrap();
        assert!(!cap.is_vector_masked(&mut cfg, 2).unwrap());
        cfg.write_u32(0x60, 0b10).unwrap();
        assert!(cap.is_vector_pending(&mut cfg, 1).unwrap());
        assert!(!cap.is_vector_pending(&mut cfg, 0).unwrap());
        assert_eq!(
            cap.set_vector_masked(&mut cfg, 4, true),
            Err(MsiError::IndexOutOfRange { index: 4, len: 4 })
        );

        let (mut cfg, cap) = msi(0);
        assert_eq!(
            cap.set_vector_masked(&mut cfg, 0, true),
            Err(MsiError::NoPerVectorMasking)
        );
        assert_eq!(
            cap.is_vector_pending(&mut cfg, 0),
            Err(MsiError::NoPerVectorMasking)
        );
    }
}
