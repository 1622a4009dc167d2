//! The kernel's `memory` scheme: physically contiguous zeroed memory, virtual →
//! physical translation, and physmaps (device registers, firmware tables).
//!
//! Everything is opened relative to `/scheme/memory/scheme-root`, as upstream
//! drivers do (base `drivers/common/src/lib.rs`), so a daemon that opened the root
//! before entering the null namespace keeps allocating. Paths, as the kernel parses
//! them (`<kind>[@<type>[?<flag>,...]]`, kernel `src/scheme/memory.rs`):
//! * `zeroed@wb?phys_contiguous` (`@uc` off x86, where DMA is not snooped) — each
//!   `MAP_PRIVATE` `mmap` of the fd is a new zeroed, naturally aligned power-of-two
//!   block of frames, released by `munmap`.
//! * `translation` — `call` with a virtual address; it is replaced by the physical one.
//! * `physical@<type>` — `mmap` with the physical address as offset (never RAM).
//!
//! The kernel has no way to ask for memory below 4 GiB. A device that drives only 32
//! address bits and has no IOMMU in front of it gets memory through
//! [`PhysMemory::alloc_contiguous_below`], which checks the translation of what it
//! got and tries again a bounded number of times.
//!
//! [`PhysMemory`] keeps its fds open, so one allocation costs one `mmap` and one
//! `call`, not three opens.

use libredox::call::{self, MmapArgs};
use libredox::{Fd, flag};
use syscall::CallFlags;
use syscall::error::{EINVAL, ENOMEM, Error, Result};

/// Page size.
pub const PAGE_SIZE: usize = 4096;

/// Where the memory scheme's root handle is opened.
pub const MEMORY_ROOT_PATH: &str = "/scheme/memory/scheme-root";

/// The path of DMA memory relative to the root: write-back where the CPU snoops
/// device accesses (x86), uncacheable elsewhere — what upstream
/// `drivers/common/src/dma.rs` opens.
pub const DMA_MEMORY_PATH: &str = if cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
    "zeroed@wb?phys_contiguous"
} else {
    "zeroed@uc?phys_contiguous"
};

/// Contiguous allocations tried before [`PhysMemory::alloc_contiguous_below`] gives
/// up. Rejected blocks are held until it returns, so every try gets new frames.
pub const PLACEMENT_TRIES: usize = 16;

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

    /// Maps `len` bytes of `fd` at `offset`, read-write, shared or private.
    pub(crate) fn map(fd: usize, len: usize, offset: u64, shared: bool) -> Result<Self> {
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

/// The memory scheme's root handle: every other memory handle is opened from it.
pub struct MemoryRoot(Fd);

impl core::fmt::Debug for MemoryRoot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("MemoryRoot").field(&self.0.raw()).finish()
    }
}

impl MemoryRoot {
    /// Opens `/scheme/memory/scheme-root` (root only, like every path but plain
    /// `zeroed`).
    pub fn open() -> Result<Self> {
        Fd::open(MEMORY_ROOT_PATH, flag::O_RDWR | flag::O_CLOEXEC, 0)
            .map(Self)
            .map_err(errno)
    }

    /// Opens `path` relative to the root.
    pub fn openat(&self, path: &str) -> Result<Fd> {
        self.0
            .openat(path, flag::O_RDWR | flag::O_CLOEXEC, 0)
            .map_err(errno)
    }

    /// Maps `len` bytes of physical address space at `phys` (page aligned, not RAM)
    /// with `ty`, through `physical@<type>` (as upstream `common::physmap`: a base of
    /// 0 is `EINVAL`, the mapping is shared).
    pub fn physmap(&self, phys: u64, len: usize, ty: MemoryType) -> Result<Mapping> {
        if phys == 0 || !phys.is_multiple_of(PAGE_SIZE as u64) {
            return Err(Error::new(EINVAL));
        }
        let len = page_round(len)?;
        let fd = self.openat(&format!("physical@{}", ty.as_str()))?;
        Mapping::map(fd.raw(), len, phys, true)
    }
}

/// Open fds of the memory scheme used for DMA memory.
pub struct PhysMemory {
    zeroed: Fd,
    translation: Fd,
}

impl core::fmt::Debug for PhysMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PhysMemory")
            .field("zeroed", &self.zeroed.raw())
            .field("translation", &self.translation.raw())
            .finish()
    }
}

/// Why [`PhysMemory::alloc_contiguous_below`] found nothing: logged, and reported as
/// `ENOMEM`.
fn placement_failed(limit: u64, len: usize, tries: usize, highest: Option<u64>) -> Error {
    log::error!(
        "dma: no contiguous {len:#x}-byte block ends at or below {limit:#x} after {tries} \
         tries (last at {highest:#x?}): the Redox kernel cannot allocate below 4 GiB and \
         no IOMMU translates this device's addresses"
    );
    Error::new(ENOMEM)
}

impl PhysMemory {
    /// Opens the memory scheme's root and, from it, the DMA-memory and translation
    /// fds (needs root).
    pub fn open() -> Result<Self> {
        Self::from_root(&MemoryRoot::open()?)
    }

    /// Opens the DMA-memory and translation fds from an already open root.
    pub fn from_root(root: &MemoryRoot) -> Result<Self> {
        Ok(Self {
            zeroed: root.openat(DMA_MEMORY_PATH)?,
            translation: root.openat("translation")?,
        })
    }

    /// A zeroed, physically contiguous allocation of `len` bytes (rounded to pages;
    /// the kernel takes a power-of-two block) and its physical address.
    pub fn alloc_contiguous(&self, len: usize) -> Result<(Mapping, u64)> {
        let len = page_round(len)?;
        let mapping = Mapping::map(self.zeroed.raw(), len, 0, false)?;
        let phys = self.translate(mapping.as_ptr() as usize)?;
        Ok((mapping, phys))
    }

    /// Like [`PhysMemory::alloc_contiguous`], for a device whose bus addresses end at
    /// `limit` (inclusive) and that no IOMMU translates: checks the physical address
    /// of each block and tries again, up to [`PLACEMENT_TRIES`] times, holding the
    /// rejected blocks until done so each try gets different frames. `ENOMEM` (with
    /// the reason logged) if none fits.
    pub fn alloc_contiguous_below(&self, len: usize, limit: u64) -> Result<(Mapping, u64)> {
        let mut rejected = Vec::new();
        let mut highest = None;
        for _ in 0..PLACEMENT_TRIES {
            let (mapping, phys) = match self.alloc_contiguous(len) {
                Ok(m) => m,
                Err(e) if e.errno == ENOMEM => break,
                Err(e) => return Err(e),
            };
            let fits = phys
                .checked_add(mapping.len() as u64 - 1)
                .is_some_and(|last| last <= limit);
            if fits {
                return Ok((mapping, phys));
            }
            highest = Some(phys);
            rejected.push(mapping);
        }
        Err(placement_failed(limit, len, rejected.len(), highest))
    }

    /// The physical address behind virtual address `virt` (`ENOENT` if unmapped).
    pub fn translate(&self, virt: usize) -> Result<u64> {
        let mut b = virt.to_ne_bytes();
        call::call_ro(self.translation.raw(), &mut b, CallFlags::empty(), &[]).map_err(errno)?;
        Ok(usize::from_ne_bytes(b) as u64)
    }
}
