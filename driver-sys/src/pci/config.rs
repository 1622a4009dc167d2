//! Configuration-space access behind a small trait.
//!
//! Upstream `pcid` hands a driver dword-sized config reads and writes over its
//! channel, so the trait's required methods are the 32-bit ones; byte and word
//! access are provided on top (read-modify-write for writes). An implementation
//! that can do narrower writes natively should override them: a read-modify-write
//! of the dword holding the command register also writes back the status register,
//! whose error bits are write-one-to-clear.

use syscall::error::Error as SyscallError;

/// Size of the PCI Express extended configuration space of one function.
pub const PCI_CONFIG_SPACE_SIZE: usize = 4096;

/// Offset of the 16-bit command register.
pub const REG_COMMAND: u16 = 0x04;
/// Offset of the 16-bit status register.
pub const REG_STATUS: u16 = 0x06;
/// Command register bit 10: the function must not assert INTx.
///
/// Set when MSI or MSI-X is enabled so a device cannot raise both.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Why a configuration-space access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The access reaches past the end of configuration space.
    OutOfRange {
        /// Byte offset of the access.
        offset: u16,
        /// Width of the access in bytes.
        width: u8,
    },
    /// The offset is not a multiple of the access width.
    Misaligned {
        /// Byte offset of the access.
        offset: u16,
        /// Width of the access in bytes.
        width: u8,
    },
    /// The transport (the `pcid` channel, a scheme) failed with this errno.
    Io(SyscallError),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfRange { offset, width } => {
                write!(
                    f,
                    "config access of {width} bytes at {offset:#x} is out of range"
                )
            }
            Self::Misaligned { offset, width } => {
                write!(
                    f,
                    "config access of {width} bytes at {offset:#x} is misaligned"
                )
            }
            Self::Io(e) => write!(f, "config access failed: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Checks that an access of `width` bytes at `offset` is aligned and fits in a
/// 4 KiB configuration space.
pub fn check_access(offset: u16, width: u8) -> Result<(), ConfigError> {
    if !offset.is_multiple_of(u16::from(width)) {
        return Err(ConfigError::Misaligned { offset, width });
    }
    if usize::from(offset) + usize::from(width) > PCI_CONFIG_SPACE_SIZE {
        return Err(ConfigError::OutOfRange { offset, width });
    }
    Ok(())
}

/// The configuration space of one PCI function.
///
/// Every method takes `&mut self` because real implementations send a request
/// and wait for its answer on a channel.
pub trait ConfigSpace {
    /// Reads the dword at `offset` (a multiple of 4).
    fn read_u32(&mut self, offset: u16) -> Result<u32, ConfigError>;

    /// Writes the dword at `offset` (a multiple of 4).
    fn write_u32(&mut self, offset: u16, value: u32) -> Result<(), ConfigError>;

    /// Reads the word at `offset` (a multiple of 2).
    fn read_u16(&mut self, offset: u16) -> Result<u16, ConfigError> {
        check_access(offset, 2)?;
        let dword = self.read_u32(offset & !3)?;
        Ok((dword >> (u32::from(offset & 2) * 8)) as u16)
    }

    /// Reads the byte at `offset`.
    fn read_u8(&mut self, offset: u16) -> Result<u8, ConfigError> {
        check_access(offset, 1)?;
        let dword = self.read_u32(offset & !3)?;
        Ok((dword >> (u32::from(offset & 3) * 8)) as u8)
    }

    /// Writes the word at `offset` (a multiple of 2), by default as a
    /// read-modify-write of the containing dword.
    fn write_u16(&mut self, offset: u16, value: u16) -> Result<(), ConfigError> {
        check_access(offset, 2)?;
        let base = offset & !3;
        let shift = u32::from(offset & 2) * 8;
        let dword = self.read_u32(base)?;
        let merged = (dword & !(0xFFFF << shift)) | (u32::from(value) << shift);
        self.write_u32(base, merged)
    }

    /// Writes the byte at `offset`, by default as a read-modify-write of the
    /// containing dword.
    fn write_u8(&mut self, offset: u16, value: u8) -> Result<(), ConfigError> {
        check_access(offset, 1)?;
        let base = offset & !3;
        let shift = u32::from(offset & 3) * 8;
        let dword = self.read_u32(base)?;
        let merged = (dword & !(0xFF << shift)) | (u32::from(value) << shift);
        self.write_u32(base, merged)
    }
}

impl<T: ConfigSpace + ?Sized> ConfigSpace for &mut T {
    fn read_u32(&mut self, offset: u16) -> Result<u32, ConfigError> {
        (**self).read_u32(offset)
    }
    fn write_u32(&mut self, offset: u16, value: u32) -> Result<(), ConfigError> {
        (**self).write_u32(offset, value)
    }
    fn read_u16(&mut self, offset: u16) -> Result<u16, ConfigError> {
        (**self).read_u16(offset)
    }
    fn read_u8(&mut self, offset: u16) -> Result<u8, ConfigError> {
        (**self).read_u8(offset)
    }
    fn write_u16(&mut self, offset: u16, value: u16) -> Result<(), ConfigError> {
        (**self).write_u16(offset, value)
    }
    fn write_u8(&mut self, offset: u16, value: u8) -> Result<(), ConfigError> {
        (**self).write_u8(offset, value)
    }
}

/// Sets or clears the command register's INTx-disable bit.
pub fn set_intx_disabled<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    disabled: bool,
) -> Result<(), ConfigError> {
    let command = cfg.read_u16(REG_COMMAND)?;
    let new = if disabled {
        command | COMMAND_INTX_DISABLE
    } else {
        command & !COMMAND_INTX_DISABLE
    };
    if new != command {
        cfg.write_u16(REG_COMMAND, new)?;
    }
    Ok(())
}

/// A 4 KiB configuration space held in memory, for tests and simulations.
///
/// Byte and word writes are native (no read-modify-write), like a real
/// configuration mechanism. An optional per-dword write mask models read-only
/// bits; by default everything is writable. BAR sizing is modelled by
/// [`MemoryConfigSpace::set_bar_size_mask`].
#[derive(Clone)]
pub struct MemoryConfigSpace {
    bytes: Box<[u8; PCI_CONFIG_SPACE_SIZE]>,
    /// For each BAR register, the bits a write of all-ones leaves set (the
    /// address bits the device decodes) and the read-only low flag bits.
    bar_masks: [Option<(u32, u32)>; 6],
}

impl Default for MemoryConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for MemoryConfigSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryConfigSpace").finish_non_exhaustive()
    }
}

impl MemoryConfigSpace {
    /// An all-zero configuration space.
    pub fn new() -> Self {
        Self {
            bytes: Box::new([0; PCI_CONFIG_SPACE_SIZE]),
            bar_masks: [None; 6],
        }
    }

    /// The raw bytes, for assertions in tests.
    pub fn bytes(&self) -> &[u8; PCI_CONFIG_SPACE_SIZE] {
        &self.bytes
    }

    /// Copies `data` into the space at `offset`, silently clipped at 4 KiB
    /// (a test fixture helper, not a device access).
    pub fn load(&mut self, offset: usize, data: &[u8]) {
        let end = offset.saturating_add(data.len()).min(PCI_CONFIG_SPACE_SIZE);
        if let (Some(dst), Some(src)) = (
            self.bytes.get_mut(offset..end),
            data.get(..end.saturating_sub(offset)),
        ) {
            dst.copy_from_slice(src);
        }
    }

    /// Makes the BAR register at `index` (0..6) behave like hardware when
    /// written: only the bits in `writable` take the written value; the others
    /// keep what the register holds now (the type flags and the size bits).
    pub fn set_bar_size_mask(&mut self, index: usize, writable: u32) {
        if let Some(slot) = self.bar_masks.get_mut(index) {
            let offset = 0x10 + index * 4;
            let current = self
                .bytes
                .get(offset..offset + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .unwrap_or(0);
            *slot = Some((writable, current & !writable));
        }
    }

    fn write_raw(&mut self, offset: u16, data: &[u8]) {
        let start = usize::from(offset);
        if let Some(dst) = self.bytes.get_mut(start..start + data.len()) {
            dst.copy_from_slice(data);
        }
    }

    fn read_raw<const N: usize>(&self, offset: u16) -> [u8; N] {
        let start = usize::from(offset);
        self.bytes
            .get(start..start + N)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0xFF; N])
    }
}

impl ConfigSpace for MemoryConfigSpace {
    fn read_u32(&mut self, offset: u16) -> Result<u32, ConfigError> {
        check_access(offset, 4)?;
        Ok(u32::from_le_bytes(self.read_raw(offset)))
    }

    fn write_u32(&mut self, offset: u16, value: u32) -> Result<(), ConfigError> {
        check_access(offset, 4)?;
        let value = match offset {
            0x10..=0x24 => match self.bar_masks.get(usize::from((offset - 0x10) / 4)) {
                Some(Some((writable, fixed))) => (value & writable) | fixed,
                _ => value,
            },
            _ => value,
        };
        self.write_raw(offset, &value.to_le_bytes());
        Ok(())
    }

    fn read_u16(&mut self, offset: u16) -> Result<u16, ConfigError> {
        check_access(offset, 2)?;
        Ok(u16::from_le_bytes(self.read_raw(offset)))
    }

    fn read_u8(&mut self, offset: u16) -> Result<u8, ConfigError> {
        check_access(offset, 1)?;
        Ok(self.read_raw::<1>(offset)[0])
    }

    fn write_u16(&mut self, offset: u16, value: u16) -> Result<(), ConfigError> {
        check_access(offset, 2)?;
        self.write_raw(offset, &value.to_le_bytes());
        Ok(())
    }

    fn write_u8(&mut self, offset: u16, value: u8) -> Result<(), ConfigError> {
        check_access(offset, 1)?;
        self.write_raw(offset, &[value]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config space with only the required dword methods, to exercise the
    /// provided narrow accessors.
    struct DwordOnly(MemoryConfigSpace);

    impl ConfigSpace for DwordOnly {
        fn read_u32(&mut self, offset: u16) -> Result<u32, ConfigError> {
            self.0.read_u32(offset)
        }
        fn write_u32(&mut self, offset: u16, value: u32) -> Result<(), ConfigError> {
            self.0.write_u32(offset, value)
        }
    }

    #[test]
    fn narrow_accesses_through_dwords() {
        let mut cfg = DwordOnly(MemoryConfigSpace::new());
        cfg.write_u32(0x40, 0x4433_2211).unwrap();
        assert_eq!(cfg.read_u8(0x41).unwrap(), 0x22);
        assert_eq!(cfg.read_u16(0x42).unwrap(), 0x4433);
        cfg.write_u16(0x42, 0xBEEF).unwrap();
        cfg.write_u8(0x40, 0x99).unwrap();
        assert_eq!(cfg.read_u32(0x40).unwrap(), 0xBEEF_2299);
    }

    #[test]
    fn bounds_and_alignment_are_errors() {
        let mut cfg = MemoryConfigSpace::new();
        assert_eq!(
            cfg.read_u32(0x0FFE),
            Err(ConfigError::Misaligned {
                offset: 0xFFE,
                width: 4
            })
        );
        assert_eq!(
            cfg.read_u32(0x1000),
            Err(ConfigError::OutOfRange {
                offset: 0x1000,
                width: 4
            })
        );
        assert_eq!(
            cfg.write_u16(0x41, 1),
            Err(ConfigError::Misaligned {
                offset: 0x41,
                width: 2
            })
        );
        assert_eq!(cfg.read_u8(0x0FFF), Ok(0));
        assert!(cfg.read_u8(0xFFFF).is_err());
    }

    #[test]
    fn intx_disable_toggles_only_bit_10() {
        let mut cfg = MemoryConfigSpace::new();
        cfg.write_u16(REG_COMMAND, 0x0006).unwrap();
        set_intx_disabled(&mut cfg, true).unwrap();
        assert_eq!(cfg.read_u16(REG_COMMAND).unwrap(), 0x0406);
        set_intx_disabled(&mut cfg, false).unwrap();
        assert_eq!(cfg.read_u16(REG_COMMAND).unwrap(), 0x0006);
    }
}
