//! The `memory` scheme: physically contiguous zeroed memory, virtual → physical
//! translation, and physmaps (BARs, firmware tables).
//!
//! Paths, as the Redox kernel serves them:
//! * `zeroed@<type>?phys_contiguous` — each `mmap` of the fd is a new zeroed,
//!   physically contiguous allocation, released by `munmap`.
//!   `&below4g` asks for memory below 4 GiB (for 32-bit DMA without an IOMMU);
//!   the mocked kernel serves it, a kernel that does not answers `EINVAL`.
//! * `translation` — `call` with a virtual address; it is replaced by the physical one.
//! * `physical@<type>` — `mmap` with the physical address as offset.
//!
//! [`PhysMemory`] keeps those fds open, so one allocation costs one `mmap` and one
//! `call`, not three opens.

use libredox::call::{self, MmapArgs};
use libredox::{Fd, flag};
use syscall::CallFlags;
use syscall::error::{EINVAL, Error, Result};

/// Page size.
pub const PAGE_SIZE: usize = 4096;

/// Cache attribute of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryType {
    /// Write-back (RAM, DMA buffers of coherent devices).
    WriteBack,
    /// Uncacheable (device registers).
    Uncacheable,
    /// Write-combining (frame buffers).
    WriteCombining,
}

impl MemoryType {
    /// The suffix the memory scheme uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteBack => "wb",
            Self::Uncacheable => "uc",
            Self::WriteCombining => "wc",
        }
    }
}

/// Converts a libredox error into the errno type the rest of the crate uses.
pub fn errno(e: libredox::error::Error) -> Error {
    Error::new(e.errno())
}

/// `len` rounded up to whole pages (at least one).
pub fn page_round(len: usize) -> Result<usize> {
    len.max(1)
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(Error::new(EINVAL))
}

/// A mapping made by `mmap`, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory (or device registers reached only through
// volatile accesses); it has no thread affinity.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// First byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: mappings have at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn map(fd: usize, len: usize, offset: u64, shared: bool) -> Result<Self> {
        // SAFETY: a fresh mapping chosen by the kernel; nothing else refers to it.
        let ptr = unsafe {
            call::mmap(MmapArgs {
                addr: core::ptr::null_mut(),
                length: len,
                prot: flag::PROT_READ | flag::PROT_WRITE,
                flags: if shared {
                    flag::MAP_SHARED
                } else {
                    flag::MAP_PRIVATE
                },
                fd,
                offset,
            })
        }
        .map_err(errno)?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and nothing borrows it past drop.
        if let Err(e) = unsafe { call::munmap(self.ptr.cast(), self.len) } {
            log::warn!("munmap of {:#x} bytes failed: {e}", self.len);
        }
    }
}

/// Maps `len` bytes of physical address space at `phys` (page aligned) with `ty`.
pub fn physmap(phys: u64, len: usize, ty: MemoryType) -> Result<Mapping> {
    if !phys.is_multiple_of(PAGE_SIZE as u64) {
        return Err(Error::new(EINVAL));
    }
    let len = page_round(len)?;
    let fd = Fd::open(
        &format!("/scheme/memory/physical@{}", ty.as_str()),
        flag::O_RDWR | flag::O_CLOEXEC,
        0,
    )
    .map_err(errno)?;
    Mapping::map(fd.raw(), len, phys, true)
}

/// Open fds of the memory scheme used for DMA memory.
pub struct PhysMemory {
    zeroed: Fd,
    zeroed_below_4g: Option<Fd>,
    translation: Fd,
}

impl core::fmt::Debug for PhysMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PhysMemory")
            .field("zeroed", &self.zeroed.raw())
            .field("below_4g", &self.has_below_4g())
            .finish()
    }
}

impl PhysMemory {
    /// Opens the allocation and translation fds (translation needs root).
    pub fn open() -> Result<Self> {
        let zeroed = Fd::open(
            "/scheme/memory/zeroed@wb?phys_contiguous",
            flag::O_RDWR | flag::O_CLOEXEC,
            0,
        )
        .map_err(errno)?;
        // Optional: only a kernel that knows `below4g` can honour a 32-bit mask
        // without an IOMMU; without it such devices fall back to bounce buffers.
        let zeroed_below_4g = Fd::open(
            "/scheme/memory/zeroed@wb?phys_contiguous&below4g",
            flag::O_RDWR | flag::O_CLOEXEC,
            0,
        )
        .ok();
        let translation = Fd::open(
            "/scheme/memory/translation",
            flag::O_RDWR | flag::O_CLOEXEC,
            0,
        )
        .map_err(errno)?;
        Ok(Self {
            zeroed,
            zeroed_below_4g,
            translation,
        })
    }

    /// Whether allocations below 4 GiB can be asked for.
    pub fn has_below_4g(&self) -> bool {
        self.zeroed_below_4g.is_some()
    }

    /// A zeroed, physically contiguous allocation of `len` bytes (rounded to pages)
    /// and its physical address. `below_4g` without kernel support is `EINVAL`.
    pub fn alloc_contiguous(&self, len: usize, below_4g: bool) -> Result<(Mapping, u64)> {
        let len = page_round(len)?;
        let fd = if below_4g {
            self.zeroed_below_4g.as_ref().ok_or(Error::new(EINVAL))?
        } else {
            &self.zeroed
        };
        let mapping = Mapping::map(fd.raw(), len, 0, false)?;
        let phys = self.translate(mapping.as_ptr() as usize)?;
        Ok((mapping, phys))
    }

    /// The physical address behind virtual address `virt`.
    pub fn translate(&self, virt: usize) -> Result<u64> {
        let mut b = virt.to_ne_bytes();
        call::call_ro(self.translation.raw(), &mut b, CallFlags::empty(), &[]).map_err(errno)?;
        Ok(usize::from_ne_bytes(b) as u64)
    }
}
