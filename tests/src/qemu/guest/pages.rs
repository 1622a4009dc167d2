//! Physically contiguous guest pages for the scenarios (through the `memory`
//! scheme, as a driver gets them), with data patterns and canaries.

use driver_sys::memory::{Mapping, PhysMemory};
use syscall::error::Result;

/// Bytes each scenario transfer moves (edu takes 1–4095 on QEMU 7.2).
pub const TRANSFER: usize = 512;
/// The byte canary pages are filled with.
pub const CANARY: u8 = 0xC5;

/// A distinct, recognisable pattern per `seed` (never all [`CANARY`]).
pub fn pattern(seed: u8) -> Vec<u8> {
    (0..TRANSFER)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ 0x5A)
        .collect()
}

/// Contiguous memory with a known physical address.
pub struct Pages {
    mapping: Mapping,
    phys: u64,
}

impl Pages {
    /// `len` zeroed bytes (rounded up to pages; naturally aligned in guest RAM).
    pub fn alloc(memory: &PhysMemory, len: usize) -> Result<Self> {
        let (mapping, phys) = memory.alloc_contiguous(len)?;
        Ok(Self { mapping, phys })
    }

    /// Physical address.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Bytes.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills everything with `byte`.
    pub fn fill(&self, byte: u8) {
        for i in 0..self.len() {
            // SAFETY: in bounds of the mapping; the device may read it concurrently.
            unsafe { self.mapping.as_ptr().add(i).write_volatile(byte) };
        }
    }

    /// Copies `data` in at `offset` (clamped to the mapping).
    pub fn write(&self, offset: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            if offset + i < self.len() {
                // SAFETY: in bounds (checked).
                unsafe { self.mapping.as_ptr().add(offset + i).write_volatile(b) };
            }
        }
    }

    /// Reads `len` bytes at `offset` (clamped to the mapping).
    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        (offset..(offset + len).min(self.len()))
            // SAFETY: in bounds (clamped); the device writes behind our back.
            .map(|i| unsafe { self.mapping.as_ptr().add(i).read_volatile() })
            .collect()
    }

    /// Whether every byte is still [`CANARY`].
    pub fn canary_intact(&self) -> bool {
        self.read(0, self.len()).iter().all(|&b| b == CANARY)
    }

    /// Whether `data` sits at `offset`.
    pub fn holds(&self, offset: usize, data: &[u8]) -> bool {
        self.read(offset, data.len()) == data
    }
}
