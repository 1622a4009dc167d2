//! The unit's registers on real hardware: a physmap of its MMIO page through
//! the memory scheme's `physical@uc` (uncached, as device registers must be),
//! opened relative to `/scheme/memory/scheme-root`. The kernel takes the
//! physical address from the mmap offset and refuses RAM frames (`EPERM`).

use libredox::call::{self, MmapArgs};
use libredox::flag;
use syscall::error::{EINVAL, Error, Result};

use crate::amdvi::{AmdViMmio, reg};

/// AMD-Vi registers mapped from physical address `base` (from the ACPI IVRS
/// table, via iommud's configuration).
#[derive(Debug)]
pub struct PhysmapMmio {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned; register accesses are bounds-checked.
unsafe impl Send for PhysmapMmio {}

impl PhysmapMmio {
    /// Maps [`reg::MMIO_SIZE`] bytes at `base` (4 KiB aligned). Needs root.
    pub fn map(base: u64) -> Result<Self> {
        Self::map_len(base, reg::MMIO_SIZE)
    }

    /// Maps `len` bytes (rounded up to pages) at `base` (4 KiB aligned):
    /// a VT-d unit's window, whose size its DRHD and CAP/ECAP give.
    pub fn map_len(base: u64, len: u64) -> Result<Self> {
        if !base.is_multiple_of(4096) || len == 0 || len > 1 << 20 {
            return Err(Error::new(EINVAL));
        }
        let errno = |e: libredox::error::Error| Error::new(e.errno());
        let root = crate::contiguous::open_memory_root()?;
        let fd = root
            .openat("physical@uc", flag::O_RDWR | flag::O_CLOEXEC, 0)
            .map_err(errno)?;
        let len = len.next_multiple_of(4096) as usize;
        // SAFETY: a shared mapping of device registers nobody else maps here.
        let ptr = unsafe {
            call::mmap(MmapArgs {
                addr: core::ptr::null_mut(),
                length: len,
                prot: flag::PROT_READ | flag::PROT_WRITE,
                flags: flag::MAP_SHARED,
                fd: fd.raw(),
                offset: base,
            })
        }
        .map_err(errno)?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    fn slot32(&self, offset: u64) -> Option<*mut u32> {
        let off = usize::try_from(offset).ok()?;
        (off.is_multiple_of(4) && off.checked_add(4)? <= self.len)
            // SAFETY: in bounds of the mapping, 4-byte aligned.
            .then(|| unsafe { self.ptr.add(off).cast::<u32>() })
    }

    fn slot(&self, offset: u64) -> Option<*mut u64> {
        let off = usize::try_from(offset).ok()?;
        (off.is_multiple_of(8) && off.checked_add(8)? <= self.len)
            // SAFETY: in bounds of the mapping, 8-byte aligned.
            .then(|| unsafe { self.ptr.add(off).cast::<u64>() })
    }
}

impl AmdViMmio for PhysmapMmio {
    fn read_u64(&self, offset: u64) -> u64 {
        match self.slot(offset) {
            // SAFETY: `slot` checked bounds and alignment.
            Some(p) => unsafe { p.read_volatile() },
            None => 0,
        }
    }

    fn write_u64(&mut self, offset: u64, value: u64) {
        if let Some(p) = self.slot(offset) {
            // SAFETY: `slot` checked bounds and alignment.
            unsafe { p.write_volatile(value) }
        }
    }
}

impl Drop for PhysmapMmio {
    fn drop(&mut self) {
        // SAFETY: mapped in `map` with this length.
        if let Err(e) = unsafe { call::munmap(self.ptr.cast(), self.len) } {
            log::warn!("iommud: munmap of the register page failed: {e}");
        }
    }
}

/// VT-d registers: 32-bit registers get 4-byte volatile accesses, 64-bit
/// ones 8-byte accesses (an 8-byte access to a 32-bit register aborts QEMU).
impl crate::vtd::VtdMmio for PhysmapMmio {
    fn read_u32(&self, offset: u64) -> u32 {
        match self.slot32(offset) {
            // SAFETY: `slot32` checked bounds and alignment.
            Some(p) => unsafe { p.read_volatile() },
            None => 0,
        }
    }

    fn write_u32(&mut self, offset: u64, value: u32) {
        if let Some(p) = self.slot32(offset) {
            // SAFETY: `slot32` checked bounds and alignment.
            unsafe { p.write_volatile(value) }
        }
    }

    fn read_u64(&self, offset: u64) -> u64 {
        AmdViMmio::read_u64(self, offset)
    }

    fn write_u64(&mut self, offset: u64, value: u64) {
        AmdViMmio::write_u64(self, offset, value)
    }
}
