//! Simulated physical memory: RAM below and above 4 GiB, with a buddy allocator for
//! physically contiguous, power-of-two-rounded allocations like the Redox kernel's.
//!
//! Host memory backs each region in one piece, so every simulated physical address
//! has a host address; simulated devices (DMA, the IOMMU's table walk) use the
//! bounds-checked accessors here.

use std::sync::Mutex;

use buddy_system_allocator::FrameAllocator;
use syscall::error::{EINVAL, ENOMEM, Error, Result};

use crate::kernel::wait::lock;

/// Page size.
pub const PAGE: usize = 4096;
/// Where RAM below 4 GiB starts (the first 16 MiB are left out, as firmware would).
pub const LOW_BASE: u64 = 0x0100_0000;
/// Where RAM above 4 GiB starts.
pub const HIGH_BASE: u64 = 0x1_0000_0000;

struct Region {
    base: u64,
    len: usize,
    host: *mut u8,
    frames: Mutex<FrameAllocator<33>>,
}

// SAFETY: the host block is only reached through bounds-checked raw copies.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    fn new(base: u64, len: usize) -> Option<Self> {
        if len == 0 {
            return None;
        }
        // Anonymous memory: page-aligned, and zero pages cost nothing until touched,
        // so a machine with 512 MiB of RAM boots in microseconds.
        // SAFETY: a fresh private mapping, unmapped in Drop.
        let host = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if host == libc::MAP_FAILED {
            return None;
        }
        let host = host.cast::<u8>();
        let mut frames = FrameAllocator::<33>::new();
        let first = (base as usize) / PAGE;
        frames.add_frame(first, first + len / PAGE);
        Some(Self {
            base,
            len,
            host,
            frames: Mutex::new(frames),
        })
    }

    fn contains(&self, phys: u64, len: usize) -> bool {
        phys >= self.base
            && phys
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.base + self.len as u64)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length.
        unsafe { libc::munmap(self.host.cast(), self.len) };
    }
}

/// The machine's RAM.
pub struct PhysArena {
    regions: Vec<Region>,
}

impl PhysArena {
    /// RAM of the given sizes below and above 4 GiB (rounded down to pages).
    pub fn new(low: usize, high: usize) -> Self {
        let low = (low / PAGE * PAGE).min((4u64 << 30).saturating_sub(LOW_BASE) as usize);
        let regions = [
            Region::new(LOW_BASE, low),
            Region::new(HIGH_BASE, high / PAGE * PAGE),
        ]
        .into_iter()
        .flatten()
        .collect();
        Self { regions }
    }

    fn region(&self, phys: u64, len: usize) -> Option<&Region> {
        self.regions.iter().find(|r| r.contains(phys, len))
    }

    /// Allocates `len` bytes (rounded up to a power-of-two number of pages, aligned to
    /// that size), zeroed. Above 4 GiB unless `below_4g`.
    pub fn alloc(&self, len: usize, below_4g: bool) -> Result<u64> {
        if len == 0 {
            return Err(Error::new(EINVAL));
        }
        let pages = len.div_ceil(PAGE);
        let order: Vec<&Region> = if below_4g {
            self.regions.iter().filter(|r| r.base < HIGH_BASE).collect()
        } else {
            // High memory first, like a kernel that keeps low memory for those who need it.
            self.regions.iter().rev().collect()
        };
        for r in order {
            let frame = lock(&r.frames).alloc(pages);
            if let Some(frame) = frame {
                let phys = (frame * PAGE) as u64;
                let rounded = pages.next_power_of_two() * PAGE;
                self.fill(phys, rounded, 0);
                return Ok(phys);
            }
        }
        Err(Error::new(ENOMEM))
    }

    /// Returns an allocation made by [`PhysArena::alloc`].
    pub fn free(&self, phys: u64, len: usize) {
        let pages = len.div_ceil(PAGE);
        if let Some(r) = self.region(phys, pages * PAGE) {
            lock(&r.frames).dealloc(phys as usize / PAGE, pages);
        }
    }

    /// Host address of `len` bytes at `phys`, if they lie in RAM.
    pub fn host_ptr(&self, phys: u64, len: usize) -> Option<*mut u8> {
        let r = self.region(phys, len)?;
        // SAFETY: `contains` checked the range lies inside the host block.
        Some(unsafe { r.host.add((phys - r.base) as usize) })
    }

    /// Copies RAM into `buf`; false (and nothing copied) if outside RAM.
    pub fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        match self.host_ptr(phys, buf.len()) {
            Some(p) => {
                // SAFETY: range checked by host_ptr.
                unsafe { std::ptr::copy(p, buf.as_mut_ptr(), buf.len()) };
                true
            }
            None => false,
        }
    }

    /// Copies `buf` into RAM; false (and nothing written) if outside RAM.
    pub fn write(&self, phys: u64, buf: &[u8]) -> bool {
        match self.host_ptr(phys, buf.len()) {
            Some(p) => {
                // SAFETY: range checked by host_ptr.
                unsafe { std::ptr::copy(buf.as_ptr(), p, buf.len()) };
                true
            }
            None => false,
        }
    }

    /// Fills RAM with a byte; false if outside RAM.
    pub fn fill(&self, phys: u64, len: usize, byte: u8) -> bool {
        match self.host_ptr(phys, len) {
            Some(p) => {
                // SAFETY: range checked by host_ptr.
                unsafe { std::ptr::write_bytes(p, byte, len) };
                true
            }
            None => false,
        }
    }

    /// Reads a little-endian u64 (None outside RAM).
    pub fn read_u64(&self, phys: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(phys, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// Writes a little-endian u64; false outside RAM.
    pub fn write_u64(&self, phys: u64, v: u64) -> bool {
        self.write(phys, &v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_contiguous_aligned_zeroed_and_reusable() {
        let a = PhysArena::new(8 << 20, 8 << 20);
        let p = a.alloc(3 * PAGE, false).expect("alloc");
        assert!(p >= HIGH_BASE);
        assert_eq!(p % (4 * PAGE) as u64, 0, "rounded to 4 pages and aligned");
        assert!(a.fill(p, 4 * PAGE, 0xAA));
        a.free(p, 3 * PAGE);
        let q = a.alloc(4 * PAGE, false).expect("alloc");
        let mut buf = vec![1u8; 4 * PAGE];
        assert!(a.read(q, &mut buf));
        assert!(buf.iter().all(|&b| b == 0), "reallocated memory is zeroed");
    }

    #[test]
    fn below_4g_on_request_and_bounds() {
        let a = PhysArena::new(1 << 20, 1 << 20);
        let p = a.alloc(PAGE, true).expect("alloc");
        assert!(p < HIGH_BASE);
        assert!(
            !a.write(HIGH_BASE + (1 << 20) - 4, &[0u8; 8]),
            "straddles the end"
        );
        assert!(a.read_u64(0).is_none());
    }
}
