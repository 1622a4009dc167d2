//! Simulated physical memory: RAM below and above 4 GiB with a buddy allocator for
//! physically contiguous, power-of-two-rounded allocations like the Redox kernel's,
//! plus address ranges that are *not* RAM — a device window where BARs live and an
//! optional firmware-reserved range — which the `memory` scheme's `physical@` may map.
//!
//! Host memory backs each range in one piece, so every simulated physical address
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
/// Where the device window (BARs) starts: inside the PCI hole below 4 GiB.
pub const MMIO_BASE: u64 = 0xC000_0000;
/// Size of the device window.
pub const MMIO_SIZE: usize = 64 << 20;
/// Highest end of low RAM: it stops where the device window begins.
const LOW_LIMIT: u64 = MMIO_BASE;

/// Which RAM the kernel's frame allocator hands out first. Redox does not promise
/// an order (its buddy allocator serves whichever area has a free block), so either
/// is a machine a driver may meet; tests pick one to make an outcome reproducible.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RamOrder {
    /// Lowest addresses first (RAM below 4 GiB is used up before RAM above it).
    #[default]
    LowFirst,
    /// RAM above 4 GiB first.
    HighFirst,
}

/// What a range of simulated physical address space is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeKind {
    /// RAM the kernel's frame allocator manages.
    Ram,
    /// Device registers (BARs).
    Mmio,
    /// Firmware-reserved memory (not handed out by the allocator).
    Reserved,
}

/// A buddy allocator and how many of its pages are handed out.
struct Frames {
    buddy: FrameAllocator<33>,
    total: usize,
    used: usize,
}

impl Frames {
    fn alloc(&mut self, pages: usize) -> Option<usize> {
        let frame = self.buddy.alloc(pages)?;
        self.used += pages.next_power_of_two();
        Some(frame)
    }

    fn dealloc(&mut self, frame: usize, pages: usize) {
        self.buddy.dealloc(frame, pages);
        self.used = self.used.saturating_sub(pages.next_power_of_two());
    }
}

struct Region {
    base: u64,
    len: usize,
    host: *mut u8,
    kind: RangeKind,
    /// Frames for RAM, and the device window's BAR space.
    frames: Mutex<Frames>,
}

// SAFETY: the host block is only reached through bounds-checked raw copies.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    fn new(base: u64, len: usize, kind: RangeKind) -> Option<Self> {
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
        let mut frames = Frames {
            buddy: FrameAllocator::<33>::new(),
            total: 0,
            used: 0,
        };
        if kind != RangeKind::Reserved {
            let first = (base as usize) / PAGE;
            frames.buddy.add_frame(first, first + len / PAGE);
            frames.total = len / PAGE;
        }
        Some(Self {
            base,
            len,
            host,
            kind,
            frames: Mutex::new(frames),
        })
    }

    fn end(&self) -> u64 {
        self.base + self.len as u64
    }

    fn contains(&self, phys: u64, len: usize) -> bool {
        phys >= self.base
            && phys
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.end())
    }

    fn overlaps(&self, phys: u64, len: usize) -> bool {
        let end = phys.saturating_add(len as u64);
        phys < self.end() && end > self.base
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length.
        unsafe { libc::munmap(self.host.cast(), self.len) };
    }
}

/// How the machine's physical address space is laid out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysLayout {
    /// Bytes of RAM below 4 GiB, from [`LOW_BASE`] (capped at the device window).
    pub low: usize,
    /// Bytes of RAM above 4 GiB, from [`HIGH_BASE`].
    pub high: usize,
    /// Which RAM the allocator serves first.
    pub order: RamOrder,
    /// A firmware-reserved range `(base, len)` outside RAM (page aligned), if any.
    pub reserved: Option<(u64, usize)>,
}

/// The machine's physical address space.
pub struct PhysArena {
    regions: Vec<Region>,
    order: RamOrder,
}

impl PhysArena {
    /// RAM of the given sizes below and above 4 GiB (rounded down to pages), served
    /// low first, and the device window.
    pub fn new(low: usize, high: usize) -> Self {
        Self::with_layout(&PhysLayout {
            low,
            high,
            ..PhysLayout::default()
        })
    }

    /// The address space `layout` describes. A reserved range that is unaligned or
    /// overlaps RAM or the device window is left out (logged).
    pub fn with_layout(layout: &PhysLayout) -> Self {
        let low = (layout.low / PAGE * PAGE).min((LOW_LIMIT - LOW_BASE) as usize);
        let mut regions: Vec<Region> = [
            Region::new(LOW_BASE, low, RangeKind::Ram),
            Region::new(MMIO_BASE, MMIO_SIZE, RangeKind::Mmio),
            Region::new(HIGH_BASE, layout.high / PAGE * PAGE, RangeKind::Ram),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some((base, len)) = layout.reserved {
            let aligned = base.is_multiple_of(PAGE as u64) && len.is_multiple_of(PAGE);
            if aligned && !regions.iter().any(|r| r.overlaps(base, len)) {
                regions.extend(Region::new(base, len, RangeKind::Reserved));
            } else {
                log::error!("phys: reserved range {base:#x}+{len:#x} is unusable; left out");
            }
        }
        Self {
            regions,
            order: layout.order,
        }
    }

    fn region(&self, phys: u64, len: usize) -> Option<&Region> {
        self.regions.iter().find(|r| r.contains(phys, len))
    }

    fn ram(&self) -> impl DoubleEndedIterator<Item = &Region> {
        self.regions.iter().filter(|r| r.kind == RangeKind::Ram)
    }

    /// Allocates `len` bytes of RAM (rounded up to a power-of-two number of pages,
    /// aligned to that size), zeroed. `below_4g` restricts it to RAM below 4 GiB — a
    /// host-side facility (firmware, tests): the kernel's `memory` scheme has none.
    pub fn alloc(&self, len: usize, below_4g: bool) -> Result<u64> {
        if len == 0 {
            return Err(Error::new(EINVAL));
        }
        let pages = len.div_ceil(PAGE);
        let mut ram: Vec<&Region> = self.ram().collect();
        if self.order == RamOrder::HighFirst {
            ram.reverse();
        }
        for r in ram.into_iter().filter(|r| !below_4g || r.base < HIGH_BASE) {
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

    /// Returns an allocation made by [`PhysArena::alloc`] or [`PhysArena::alloc_mmio`].
    pub fn free(&self, phys: u64, len: usize) {
        let pages = len.div_ceil(PAGE);
        if let Some(r) = self.region(phys, pages * PAGE)
            && r.kind != RangeKind::Reserved
        {
            lock(&r.frames).dealloc(phys as usize / PAGE, pages);
        }
    }

    /// Places a BAR of `len` bytes (a power of two, at least a page) in the device
    /// window, naturally aligned and zeroed.
    pub fn alloc_mmio(&self, len: usize) -> Result<u64> {
        if len < PAGE || !len.is_power_of_two() {
            return Err(Error::new(EINVAL));
        }
        let r = self
            .regions
            .iter()
            .find(|r| r.kind == RangeKind::Mmio)
            .ok_or(Error::new(ENOMEM))?;
        let frame = lock(&r.frames)
            .alloc(len / PAGE)
            .ok_or(Error::new(ENOMEM))?;
        let phys = (frame * PAGE) as u64;
        self.fill(phys, len, 0);
        Ok(phys)
    }

    /// What `[phys, phys + len)` is: `None` if it is not wholly inside one range.
    pub fn kind(&self, phys: u64, len: usize) -> Option<RangeKind> {
        self.region(phys, len).map(|r| r.kind)
    }

    /// Whether any byte of `[phys, phys + len)` is RAM the frame allocator manages.
    pub fn touches_ram(&self, phys: u64, len: usize) -> bool {
        self.ram().any(|r| r.overlaps(phys, len))
    }

    /// Free RAM bytes below 4 GiB and above it (for tests that check nothing leaked).
    pub fn free_ram(&self) -> (u64, u64) {
        let mut low = 0;
        let mut high = 0;
        for r in self.ram() {
            let f = lock(&r.frames);
            let free = (f.total.saturating_sub(f.used) * PAGE) as u64;
            if r.base < HIGH_BASE {
                low += free;
            } else {
                high += free;
            }
        }
        (low, high)
    }

    /// Host address of `len` bytes at `phys`, if they lie in one simulated range.
    pub fn host_ptr(&self, phys: u64, len: usize) -> Option<*mut u8> {
        let r = self.region(phys, len)?;
        // SAFETY: `contains` checked the range lies inside the host block.
        Some(unsafe { r.host.add((phys - r.base) as usize) })
    }

    /// Copies memory into `buf`; false (and nothing copied) outside the simulated ranges.
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

    /// Copies `buf` into memory; false (and nothing written) outside the simulated ranges.
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

    /// Fills memory with a byte; false outside the simulated ranges.
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

    /// Reads a little-endian u64 (None outside the simulated ranges).
    pub fn read_u64(&self, phys: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(phys, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// Writes a little-endian u64; false outside the simulated ranges.
    pub fn write_u64(&self, phys: u64, v: u64) -> bool {
        self.write(phys, &v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_contiguous_aligned_zeroed_and_reusable() {
        let a = PhysArena::with_layout(&PhysLayout {
            low: 8 << 20,
            high: 8 << 20,
            order: RamOrder::HighFirst,
            reserved: None,
        });
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
    fn low_first_by_default_below_4g_on_request_and_bounds() {
        let a = PhysArena::new(1 << 20, 1 << 20);
        assert!(a.alloc(PAGE, false).expect("alloc") < HIGH_BASE);
        let p = a.alloc(PAGE, true).expect("alloc");
        assert!(p < HIGH_BASE);
        assert!(
            !a.write(HIGH_BASE + (1 << 20) - 4, &[0u8; 8]),
            "straddles the end"
        );
        assert!(a.read_u64(0).is_none());
        assert_eq!(a.free_ram(), ((1 << 20) - 2 * PAGE as u64, 1 << 20));
    }

    #[test]
    fn device_window_and_reserved_range_are_not_ram() {
        let a = PhysArena::with_layout(&PhysLayout {
            low: 1 << 20,
            high: 0,
            order: RamOrder::LowFirst,
            reserved: Some((0xD000_0000, 4 * PAGE)),
        });
        let bar = a.alloc_mmio(0x4000).expect("bar");
        assert_eq!(a.kind(bar, 0x4000), Some(RangeKind::Mmio));
        assert!(!a.touches_ram(bar, 0x4000));
        assert_eq!(a.kind(0xD000_0000, PAGE), Some(RangeKind::Reserved));
        assert!(a.touches_ram(LOW_BASE, PAGE));
        assert!(a.alloc_mmio(0x3000).is_err(), "BARs are powers of two");
    }
}
