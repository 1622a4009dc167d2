//! Dword access to a mapped BAR region.
//!
//! The MSI-X table and PBA live in a memory BAR. The driver maps that BAR (via
//! the `memory` scheme's physmap or the `pcid` channel) and hands the mapping to
//! this crate through [`Mmio`]; tests use [`MemoryMmio`]. Only 32-bit accesses
//! are used: the PCI spec requires MSI-X structures to accept them, and they
//! are the widest access every platform performs atomically.

use std::sync::atomic::{AtomicU32, Ordering};

/// Why an MMIO access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioError {
    /// The access reaches past the end of the mapped region.
    OutOfRange {
        /// Byte offset of the access.
        offset: usize,
    },
    /// The offset is not a multiple of 4.
    Misaligned {
        /// Byte offset of the access.
        offset: usize,
    },
}

impl core::fmt::Display for MmioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfRange { offset } => write!(f, "MMIO access at {offset:#x} is out of range"),
            Self::Misaligned { offset } => write!(f, "MMIO access at {offset:#x} is misaligned"),
        }
    }
}

impl std::error::Error for MmioError {}

/// A mapped MMIO region, accessed as little-endian dwords.
///
/// Methods take `&self`: device registers are shared state with their own
/// ordering rules, not Rust-owned memory. Implementations must perform each
/// call as exactly one volatile access of 4 bytes.
pub trait Mmio {
    /// Reads the dword at byte `offset`.
    fn read_u32(&self, offset: usize) -> Result<u32, MmioError>;
    /// Writes the dword at byte `offset`.
    fn write_u32(&self, offset: usize, value: u32) -> Result<(), MmioError>;
}

impl<T: Mmio + ?Sized> Mmio for &T {
    fn read_u32(&self, offset: usize) -> Result<u32, MmioError> {
        (**self).read_u32(offset)
    }
    fn write_u32(&self, offset: usize, value: u32) -> Result<(), MmioError> {
        (**self).write_u32(offset, value)
    }
}

impl<T: Mmio + ?Sized> Mmio for std::sync::Arc<T> {
    fn read_u32(&self, offset: usize) -> Result<u32, MmioError> {
        (**self).read_u32(offset)
    }
    fn write_u32(&self, offset: usize, value: u32) -> Result<(), MmioError> {
        (**self).write_u32(offset, value)
    }
}

/// An in-memory MMIO region for tests and simulated devices.
#[derive(Debug)]
pub struct MemoryMmio {
    words: Box<[AtomicU32]>,
}

impl MemoryMmio {
    /// A zeroed region of `len` bytes (rounded up to whole dwords).
    pub fn new(len: usize) -> Self {
        Self {
            words: (0..len.div_ceil(4)).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.words.len() * 4
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    fn word(&self, offset: usize) -> Result<&AtomicU32, MmioError> {
        if !offset.is_multiple_of(4) {
            return Err(MmioError::Misaligned { offset });
        }
        self.words
            .get(offset / 4)
            .ok_or(MmioError::OutOfRange { offset })
    }
}

impl Mmio for MemoryMmio {
    fn read_u32(&self, offset: usize) -> Result<u32, MmioError> {
        Ok(self.word(offset)?.load(Ordering::SeqCst))
    }

    fn write_u32(&self, offset: usize, value: u32) -> Result<(), MmioError> {
        self.word(offset)?.store(value, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_mmio_checks_bounds_and_alignment() {
        let m = MemoryMmio::new(10);
        assert_eq!(m.len(), 12);
        m.write_u32(8, 0xDEAD_BEEF).unwrap();
        assert_eq!(m.read_u32(8), Ok(0xDEAD_BEEF));
        assert_eq!(m.read_u32(12), Err(MmioError::OutOfRange { offset: 12 }));
        assert_eq!(m.write_u32(2, 0), Err(MmioError::Misaligned { offset: 2 }));
    }
}
