//! Physically contiguous, zeroed memory from the Redox `memory` scheme:
//! what the AMD-Vi unit reads by DMA (device table, command ring, event log,
//! page tables).
//!
//! Both handles are opened relative to `/scheme/memory/scheme-root`, as
//! upstream drivers do (base `drivers/common/src/lib.rs`). An allocation is a
//! `MAP_PRIVATE` `mmap` of `zeroed@wb?phys_contiguous` (`@uc` off x86; the
//! kernel refuses `MAP_SHARED` on it) followed by a `call` on `translation` for
//! its physical address; it is returned with `munmap` when the
//! [`ContiguousRegion`] drops.
//! Accesses are volatile: the unit reads and writes the same memory behind
//! the compiler's back.

use libredox::call::{self, MmapArgs};
use libredox::{Fd, flag};
use syscall::CallFlags;
use syscall::error::{EINVAL, Error, Result};

/// Page size of the memory scheme.
pub const PAGE: usize = 4096;

/// The memory scheme's root, which the other handles are opened from.
pub const MEMORY_ROOT_PATH: &str = "/scheme/memory/scheme-root";

/// Contiguous memory the unit reads by DMA: write-back where the CPU snoops device
/// accesses (x86), uncacheable elsewhere (as upstream `drivers/common/src/dma.rs`).
pub const CONTIGUOUS_PATH: &str = if cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
    "zeroed@wb?phys_contiguous"
} else {
    "zeroed@uc?phys_contiguous"
};

/// Opens `/scheme/memory/scheme-root` (root only).
pub fn open_memory_root() -> Result<Fd> {
    Fd::open(MEMORY_ROOT_PATH, flag::O_RDWR | flag::O_CLOEXEC, 0).map_err(errno)
}

fn errno(e: libredox::error::Error) -> Error {
    Error::new(e.errno())
}

/// The handles of the memory scheme iommud allocates through.
pub struct ContiguousAllocator {
    zeroed: Fd,
    translation: Fd,
}

impl core::fmt::Debug for ContiguousAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ContiguousAllocator")
            .field("zeroed", &self.zeroed.raw())
            .finish_non_exhaustive()
    }
}

impl ContiguousAllocator {
    /// Opens the memory scheme's root and, from it, the zeroed-contiguous and
    /// translation handles (all root only).
    pub fn open() -> Result<Self> {
        Self::from_root(&open_memory_root()?)
    }

    /// Opens the handles relative to an already open memory root.
    pub fn from_root(root: &Fd) -> Result<Self> {
        let open = |path: &str| {
            root.openat(path, flag::O_RDWR | flag::O_CLOEXEC, 0)
                .map_err(errno)
        };
        Ok(Self {
            zeroed: open(CONTIGUOUS_PATH)?,
            translation: open("translation")?,
        })
    }

    /// `len` bytes (rounded up to pages) of zeroed, physically contiguous memory.
    pub fn alloc(&self, len: usize) -> Result<ContiguousRegion> {
        let len = len
            .max(1)
            .checked_next_multiple_of(PAGE)
            .ok_or(Error::new(EINVAL))?;
        // SAFETY: a fresh anonymous-style mapping of the memory scheme; nothing
        // else refers to the address range it returns.
        let ptr = unsafe {
            call::mmap(MmapArgs {
                addr: core::ptr::null_mut(),
                length: len,
                prot: flag::PROT_READ | flag::PROT_WRITE,
                flags: flag::MAP_PRIVATE,
                fd: self.zeroed.raw(),
                offset: 0,
            })
        }
        .map_err(errno)?;
        let mut region = ContiguousRegion {
            ptr: ptr.cast(),
            len,
            phys: 0,
        };
        let mut payload = (ptr as usize).to_ne_bytes();
        call::call_ro(
            self.translation.raw(),
            &mut payload,
            CallFlags::empty(),
            &[],
        )
        .map_err(errno)?;
        region.phys = usize::from_ne_bytes(payload) as u64;
        Ok(region)
    }
}

/// One contiguous allocation: its virtual mapping and physical address.
#[derive(Debug)]
pub struct ContiguousRegion {
    ptr: *mut u8,
    len: usize,
    phys: u64,
}

// SAFETY: the region owns its mapping; accesses are bounds-checked copies.
unsafe impl Send for ContiguousRegion {}

impl ContiguousRegion {
    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// First byte of iommud's own mapping (what `mmap_prep` hands the kernel
    /// when a client maps the region from its domain handle).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes (a page multiple).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: regions are at least a page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn in_bounds(&self, offset: usize, n: usize) -> bool {
        offset.checked_add(n).is_some_and(|end| end <= self.len)
    }

    /// Reads the little-endian u64 at byte `offset` (8-byte aligned); 0 out of bounds.
    pub fn read_u64(&self, offset: usize) -> u64 {
        if !self.in_bounds(offset, 8) || !offset.is_multiple_of(8) {
            return 0;
        }
        // SAFETY: in bounds and aligned (the mapping is page aligned).
        u64::from_le(unsafe { self.ptr.add(offset).cast::<u64>().read_volatile() })
    }

    /// Writes the u64 at byte `offset` (8-byte aligned); dropped out of bounds.
    pub fn write_u64(&self, offset: usize, value: u64) {
        if !self.in_bounds(offset, 8) || !offset.is_multiple_of(8) {
            return;
        }
        // SAFETY: in bounds and aligned.
        unsafe {
            self.ptr
                .add(offset)
                .cast::<u64>()
                .write_volatile(value.to_le())
        };
    }

    /// Copies bytes out; false (nothing copied) out of bounds.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        if !self.in_bounds(offset, out.len()) {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: in bounds.
            *b = unsafe { self.ptr.add(offset + i).read_volatile() };
        }
        true
    }

    /// Copies bytes in; false (nothing written) out of bounds.
    pub fn write(&self, offset: usize, data: &[u8]) -> bool {
        if !self.in_bounds(offset, data.len()) {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: in bounds.
            unsafe { self.ptr.add(offset + i).write_volatile(b) };
        }
        true
    }

    /// Zeroes `n` bytes at `offset` (clamped to the region).
    pub fn zero(&self, offset: usize, n: usize) {
        let end = offset.saturating_add(n).min(self.len);
        if offset < end {
            // SAFETY: [offset, end) lies inside the mapping.
            unsafe { core::ptr::write_bytes(self.ptr.add(offset), 0, end - offset) };
        }
    }
}

impl Drop for ContiguousRegion {
    fn drop(&mut self) {
        // SAFETY: mapped by `ContiguousAllocator::alloc` with this length.
        if let Err(e) = unsafe { call::munmap(self.ptr.cast(), self.len) } {
            log::warn!("iommud: munmap of {:#x} bytes failed: {e}", self.len);
        }
    }
}
