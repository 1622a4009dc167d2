//! The MMIO window as the scheme's `mmio` file uses it ([`MmioAccess`]), and the
//! Redox mapper behind it: uncached physmaps through the `memory` scheme
//! ([`PhysmapMapper`]).

use driver_sys::memory::{Mapping, MemoryRoot, MemoryType};
use syscall::error::Result;

use super::mmio_window::{MMIO_CHUNK_SIZE, MmioChunk, MmioCounters, MmioWindow, PhysMapper};

/// Bounds-checked access to the 360 MiB window (offsets from its base).
pub trait MmioAccess {
    /// Copies `out.len()` bytes from `offset`; `EINVAL` if any lies outside.
    fn read(&mut self, offset: u64, out: &mut [u8]) -> Result<()>;
    /// Copies `data` to `offset`; `EINVAL` if any byte lies outside.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// Chunks mapped now.
    fn resident(&self) -> usize;
    /// Totals so far.
    fn counters(&self) -> MmioCounters;
}

impl<P: PhysMapper> MmioAccess for MmioWindow<P> {
    fn read(&mut self, offset: u64, out: &mut [u8]) -> Result<()> {
        MmioWindow::read(self, offset, out)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        MmioWindow::write(self, offset, data)
    }
    fn resident(&self) -> usize {
        self.resident_chunks().count()
    }
    fn counters(&self) -> MmioCounters {
        MmioWindow::counters(self)
    }
}

/// Maps window chunks with `physical@uc` from the memory scheme's root (opened
/// at start, as upstream `common::init` does, so it works after `setrens`).
pub struct PhysmapMapper {
    root: MemoryRoot,
}

impl PhysmapMapper {
    /// Opens `/scheme/memory/scheme-root` (root only).
    pub fn open() -> Result<PhysmapMapper> {
        Ok(PhysmapMapper {
            root: MemoryRoot::open()?,
        })
    }
}

/// One uncached chunk; unmapped on drop.
pub struct PhysmapChunk(Mapping);

impl MmioChunk for PhysmapChunk {
    fn read(&self, offset: usize, out: &mut [u8]) {
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: the window passes offset + len ≤ MMIO_CHUNK_SIZE, the
            // mapping's length; device memory is read with volatile loads.
            *byte = unsafe { self.0.as_ptr().add(offset + i).read_volatile() };
        }
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        for (i, byte) in data.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { self.0.as_ptr().add(offset + i).write_volatile(*byte) };
        }
    }
}

impl PhysMapper for PhysmapMapper {
    type Chunk = PhysmapChunk;
    fn map(&mut self, phys: u64, len: usize) -> Result<PhysmapChunk> {
        debug_assert!(len as u64 <= MMIO_CHUNK_SIZE);
        self.root
            .physmap(phys, len, MemoryType::Uncacheable)
            .map(PhysmapChunk)
    }
}
