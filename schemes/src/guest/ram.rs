//! Guest RAM the IOMMU and devices may reach: locked pages of this process whose
//! physical frames come from `/proc/self/pagemap`.
//!
//! One reservation is made up front ([`GuestRam::reserve`]): 2 MiB hugepages when the
//! guest kernel has some (`/proc/sys/vm/nr_hugepages`), else ordinary pages. Either
//! way the pages are populated and locked (`MAP_POPULATE | MAP_LOCKED`), each page's
//! frame is read from pagemap, and only runs of physically consecutive frames are
//! handed to a buddy allocator over *physical* frame numbers — so every allocation is
//! physically contiguous and naturally aligned, as the Redox kernel's
//! `zeroed@wb?phys_contiguous` allocations are (kernel `src/scheme/memory.rs`).
//!
//! Hugetlb pages are never migrated or swapped. Ordinary locked pages can still be
//! moved by compaction unless `/proc/sys/vm/compact_unevictable_allowed` is 0, which
//! the guest's `/init` sets before reserving.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use buddy_system_allocator::FrameAllocator;
use syscall::error::{EINVAL, ENOMEM, Error, Result};

use crate::kernel::wait::lock;

/// Page size.
pub const PAGE: usize = 4096;
/// Size of one hugepage (x86-64 PMD).
pub const HUGEPAGE: usize = 2 << 20;
/// pagemap entry: page present.
const PAGEMAP_PRESENT: u64 = 1 << 63;
/// pagemap entry: the frame number field (bits 54:0).
const PAGEMAP_PFN: u64 = (1 << 55) - 1;

/// A run of physically consecutive frames, mapped consecutively at `host`.
struct Run {
    phys: u64,
    len: usize,
    host: *mut u8,
}

/// Locked guest memory with known physical addresses.
pub struct GuestRam {
    base: *mut u8,
    len: usize,
    hugepages: bool,
    runs: Vec<Run>,
    frames: Mutex<FrameAllocator<33>>,
}

// SAFETY: the reservation is owned; accesses go through bounds-checked host pointers.
unsafe impl Send for GuestRam {}
unsafe impl Sync for GuestRam {}

fn map_locked(len: usize, huge: bool) -> Option<*mut u8> {
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | libc::MAP_LOCKED;
    if huge {
        flags |= libc::MAP_HUGETLB;
    }
    // SAFETY: a fresh anonymous mapping, unmapped in Drop.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// Physical address of every page of `[base, base + len)`, from `/proc/self/pagemap`.
/// Needs CAP_SYS_ADMIN: without it the kernel reports frame 0, which is an error here.
pub fn physical_frames(base: *const u8, len: usize) -> io::Result<Vec<u64>> {
    let pagemap = File::open("/proc/self/pagemap")?;
    let pages = len / PAGE;
    let mut raw = vec![0u8; pages * 8];
    let first = (base as u64 / PAGE as u64) * 8;
    pagemap.read_exact_at(&mut raw, first)?;
    raw.chunks_exact(8)
        .map(|e| {
            let v = u64::from_le_bytes(e.try_into().unwrap_or_default());
            let pfn = v & PAGEMAP_PFN;
            if v & PAGEMAP_PRESENT == 0 || pfn == 0 {
                Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "pagemap gives no frame (not present, or not root)",
                ))
            } else {
                Ok(pfn * PAGE as u64)
            }
        })
        .collect()
}

impl GuestRam {
    /// Reserves `len` bytes (rounded up to 2 MiB), hugepages first.
    pub fn reserve(len: usize) -> io::Result<Self> {
        let len = len.max(1).div_ceil(HUGEPAGE) * HUGEPAGE;
        let (base, hugepages) = match map_locked(len, true) {
            Some(p) => (p, true),
            None => match map_locked(len, false) {
                Some(p) => (p, false),
                None => return Err(io::Error::last_os_error()),
            },
        };
        let mut ram = Self {
            base,
            len,
            hugepages,
            runs: Vec::new(),
            frames: Mutex::new(FrameAllocator::new()),
        };
        let frames = physical_frames(base, len)?;
        let mut start = 0;
        for i in 1..=frames.len() {
            let breaks = i == frames.len() || frames[i] != frames[i - 1] + PAGE as u64;
            if breaks {
                ram.add_run(frames[start], (i - start) * PAGE, start * PAGE);
                start = i;
            }
        }
        Ok(ram)
    }

    fn add_run(&mut self, phys: u64, len: usize, offset: usize) {
        // SAFETY: offset + len lies inside the reservation.
        let host = unsafe { self.base.add(offset) };
        let first = phys as usize / PAGE;
        lock(&self.frames).add_frame(first, first + len / PAGE);
        self.runs.push(Run { phys, len, host });
    }

    /// Whether the reservation is made of hugepages.
    pub fn is_hugepages(&self) -> bool {
        self.hugepages
    }

    /// Bytes in the longest physically contiguous run.
    pub fn longest_run(&self) -> usize {
        self.runs.iter().map(|r| r.len).max().unwrap_or(0)
    }

    /// Allocates `len` bytes (rounded up to a power-of-two number of pages, aligned to
    /// that size), zeroed.
    pub fn alloc(&self, len: usize) -> Result<u64> {
        if len == 0 {
            return Err(Error::new(EINVAL));
        }
        let pages = len.div_ceil(PAGE);
        let frame = lock(&self.frames).alloc(pages).ok_or(Error::new(ENOMEM))?;
        let phys = (frame * PAGE) as u64;
        let rounded = pages.next_power_of_two() * PAGE;
        let host = self.host_ptr(phys, rounded).ok_or(Error::new(ENOMEM))?;
        // SAFETY: host_ptr checked the range lies in one run.
        unsafe { std::ptr::write_bytes(host, 0, rounded) };
        Ok(phys)
    }

    /// Returns an allocation made by [`GuestRam::alloc`].
    pub fn free(&self, phys: u64, len: usize) {
        let pages = len.div_ceil(PAGE);
        if self.host_ptr(phys, pages * PAGE).is_some() {
            lock(&self.frames).dealloc(phys as usize / PAGE, pages);
        }
    }

    /// Whether `[phys, phys + len)` overlaps the reservation.
    pub fn touches(&self, phys: u64, len: usize) -> bool {
        let end = phys.saturating_add(len as u64);
        self.runs
            .iter()
            .any(|r| phys < r.phys + r.len as u64 && r.phys < end)
    }

    /// This process's address of `len` bytes at `phys`, if they lie in one run.
    pub fn host_ptr(&self, phys: u64, len: usize) -> Option<*mut u8> {
        let end = phys.checked_add(len as u64)?;
        let run = self
            .runs
            .iter()
            .find(|r| phys >= r.phys && end <= r.phys + r.len as u64)?;
        // SAFETY: the range lies inside the run.
        Some(unsafe { run.host.add((phys - run.phys) as usize) })
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: mapped in `reserve` with this length.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs on the Linux host too (guest RAM is ordinary Linux memory), where
    /// pagemap names frames only to root with CAP_SYS_ADMIN: without that it says
    /// why and skips.
    #[test]
    fn allocations_are_physically_contiguous_aligned_and_zeroed() {
        let ram = match GuestRam::reserve(8 << 20) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("SKIPPED: no locked memory with known frames here: {e}");
                return;
            }
        };
        // Without hugepages (the host) runs are as long and wherever the kernel
        // happened to make them, and the buddy allocator hands out naturally aligned
        // blocks: ask for the largest one some run holds at its alignment (a 3-page
        // run from an odd frame holds no aligned 2-page block).
        assert!(ram.longest_run() >= PAGE);
        let len = ram
            .runs
            .iter()
            .filter_map(|r| {
                let end = r.phys + r.len as u64;
                std::iter::successors(Some(HUGEPAGE), |s| (*s > PAGE).then_some(s / 2))
                    .find(|&s| r.phys.next_multiple_of(s as u64) + s as u64 <= end)
            })
            .max()
            .expect("a run of at least one page");
        let phys = ram.alloc(len).expect("a block some run holds aligned");
        assert_eq!(phys % len as u64, 0, "naturally aligned");
        let host = ram.host_ptr(phys, len).expect("host address");
        let frames = physical_frames(host, len).expect("frames");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(*f, phys + (i * PAGE) as u64, "page {i} is where alloc said");
        }
        // SAFETY: host_ptr checked the range.
        let bytes = unsafe { std::slice::from_raw_parts(host, len) };
        assert!(bytes.iter().all(|&b| b == 0));
        assert!(ram.touches(phys + (len / 2) as u64, 1));
        ram.free(phys, len);
        assert_eq!(ram.alloc(len), Ok(phys), "freed blocks come back");
        assert_eq!(ram.alloc(0), Err(Error::new(EINVAL)));
    }
}
