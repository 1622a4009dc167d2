//! The IOVA allocator: which I/O virtual addresses a domain hands out.
//!
//! Three layers, as in Linux's `iova.c`:
//!
//! * the **magazines** (`magazine.rs`): small IOVAs freed lately, per size
//!   class, handed out again LIFO without a search (Linux's per-CPU
//!   rcache; here per owning thread, with a bounded depot behind);
//! * the **fast path** (`slab.rs`): allocations up to 128 KiB are rounded up
//!   to a power of two (1–32 pages, six size classes) and served from
//!   per-class slabs in O(1);
//! * the **slow path** (`free_ranges.rs`): per window, free ranges indexed by
//!   address and by length; it feeds slabs 2 MiB at a time, serves larger
//!   allocations, fixed IOVAs and reserved regions, in O(log n).
//!
//! Guarantees:
//! * a device's DMA mask and the IOMMU address width are honoured through
//!   windows (`window.rs`; a 32-bit device never gets an IOVA at or above 4 GiB);
//! * reserved regions are never handed out: IOVA page 0 (no window holds it)
//!   and the x86 MSI window `0xFEE0_0000..0xFEF0_0000`, plus any region
//!   passed to [`IovaAllocator::reserve`];
//! * no allocation count limit other than memory;
//! * every free is validated: a range that was never allocated (or a size
//!   that does not match) is an error and changes nothing.
//!
//! Alignment: an allocation of at most 128 KiB is naturally aligned to its
//! rounded size; a larger one is aligned to the largest power of two not
//! above its size, capped at 1 GiB, so that mapping physically aligned
//! memory can use 2 MiB and 1 GiB pages. [`IovaAllocator::alloc_aligned`]
//! asks for a specific alignment instead.
//!
//! Errors: `EINVAL` for malformed arguments (zero or unaligned size, a mask
//! that reaches no window, a fixed range outside the space or over a
//! reserved region, a free whose size does not match); `EEXIST` for a fixed
//! range overlapping an allocation; `ENOENT` for a free of an IOVA that is
//! not allocated; `ENOSPC` when no allowed window has room.

mod free_ranges;
mod magazine;
mod slab;
mod window;

use std::collections::BTreeMap;

use syscall::error::{EEXIST, EINVAL, ENOENT, ENOSPC, Error, Result};

use free_ranges::FreeRanges;
use magazine::{Magazine, Rack};
use slab::{CLASSES, SLAB_LIMIT, SLAB_MAX_ALLOC, SLAB_SIZE, SlabCache, SlotError, Uncached};
pub use window::WindowUsage;
use window::{
    FIRST_WINDOW, allowed_windows, pieces, preference, window_end, window_of, window_pick,
    window_start,
};

const PAGE_SHIFT: u32 = 12;
const PAGE: u64 = 1 << PAGE_SHIFT;
/// The x86 MSI address window: DMA writes there are interrupts, never memory.
pub const MSI_WINDOW: (u64, u64) = (0xFEE0_0000, 0xFEF0_0000);
/// Largest alignment chosen by default (a 1 GiB page).
const MAX_DEFAULT_ALIGN: u64 = 1 << 30;
/// Narrowest supported IOMMU address width.
pub const MIN_ADDRESS_BITS: u32 = 32;
/// Widest supported IOMMU address width.
pub const MAX_ADDRESS_BITS: u32 = 63;

/// An allocation made by the slow path.
#[derive(Clone, Copy, Debug)]
struct Direct {
    len: u64,
    /// Placed by [`IovaAllocator::alloc_at`]: freed with its exact size.
    fixed: bool,
}

/// One domain's IOVA space.
#[derive(Debug)]
pub struct IovaAllocator {
    address_bits: u32,
    /// Free ranges per window, indexed by `window - FIRST_WINDOW`.
    trees: Vec<FreeRanges>,
    free_bytes: Vec<u64>,
    usable_bytes: Vec<u64>,
    slabs: SlabCache,
    /// Freed small IOVAs waiting to be handed out again.
    rack: Rack,
    direct: BTreeMap<u64, Direct>,
    reserved: Vec<(u64, u64)>,
    live: u64,
    /// The last DMA mask asked for and its windows: almost every call uses
    /// the same mask, so the window computation is skipped.
    last_mask: (u64, u64),
}

/// The bytes an allocation of `size` occupies: a power of two up to 128
/// KiB, the size itself above. `size` must be a non-zero page multiple.
pub fn footprint(size: u64) -> u64 {
    if size <= SLAB_MAX_ALLOC {
        PAGE << size_class(size)
    } else {
        size
    }
}

/// Size class of a small allocation: log2 of its page count, rounded up.
#[inline]
fn size_class(size: u64) -> u8 {
    let pages = size >> PAGE_SHIFT;
    (64 - pages.saturating_sub(1).leading_zeros()) as u8
}

fn default_align(size: u64) -> u64 {
    if size <= SLAB_MAX_ALLOC {
        footprint(size)
    } else {
        (1u64 << (63 - size.leading_zeros())).min(MAX_DEFAULT_ALIGN)
    }
}

fn check_size(size: u64) -> Result<()> {
    if size == 0 || !size.is_multiple_of(PAGE) {
        Err(Error::new(EINVAL))
    } else {
        Ok(())
    }
}

impl IovaAllocator {
    /// An empty space of `address_bits` bits (32..=63; AMD-Vi uses 39 or 48)
    /// with the MSI window reserved.
    pub fn new(address_bits: u32) -> Result<Self> {
        if !(MIN_ADDRESS_BITS..=MAX_ADDRESS_BITS).contains(&address_bits) {
            return Err(Error::new(EINVAL));
        }
        let windows = (FIRST_WINDOW..address_bits).map(|k| (window_start(k), window_end(k)));
        let mut trees = Vec::new();
        let mut sizes = Vec::new();
        for (start, end) in windows {
            let mut tree = FreeRanges::default();
            tree.release(start, end);
            trees.push(tree);
            sizes.push(end - start);
        }
        let mut allocator = Self {
            address_bits,
            trees,
            free_bytes: sizes.clone(),
            usable_bytes: sizes,
            slabs: SlabCache::new(),
            rack: Rack::new(),
            direct: BTreeMap::new(),
            reserved: Vec::new(),
            live: 0,
            last_mask: (0, 0),
        };
        allocator.reserve(MSI_WINDOW.0, MSI_WINDOW.1)?;
        Ok(allocator)
    }

    /// The IOMMU address width this space was built for.
    pub fn address_bits(&self) -> u32 {
        self.address_bits
    }

    /// Live allocations (fixed ones included).
    pub fn live_allocations(&self) -> u64 {
        self.live
    }

    /// Slabs currently caching small IOVAs.
    pub fn slab_count(&self) -> usize {
        self.slabs.slab_count()
    }

    /// Freed small IOVAs waiting in magazines to be handed out again.
    pub fn magazine_cached(&self) -> usize {
        self.rack.cached()
    }

    /// Free ranges in the slow path, over all windows (a fragmentation gauge).
    pub fn free_range_count(&self) -> usize {
        self.trees.iter().map(FreeRanges::len).sum()
    }

    fn tree(&mut self, window: u32) -> Option<&mut FreeRanges> {
        self.trees
            .get_mut(window.checked_sub(FIRST_WINDOW)? as usize)
    }

    fn adjust_free(&mut self, start: u64, end: u64, allocated: bool) {
        for (w, a, b) in pieces(start, end) {
            if let Some(free) = w
                .checked_sub(FIRST_WINDOW)
                .and_then(|i| self.free_bytes.get_mut(i as usize))
            {
                *free = if allocated {
                    free.saturating_sub(b - a)
                } else {
                    free.saturating_add(b - a)
                };
            }
        }
    }

    #[inline]
    fn account_small(&mut self, iova: u64, bytes: u64, allocated: bool) {
        let i = (window_of(iova) - FIRST_WINDOW) as usize;
        if let Some(free) = self.free_bytes.get_mut(i) {
            *free = if allocated {
                *free - bytes
            } else {
                *free + bytes
            };
        }
        if allocated {
            self.live += 1;
        } else {
            self.live -= 1;
        }
    }

    fn allowed(&self, dma_mask: u64) -> Result<u64> {
        allowed_windows(dma_mask, self.address_bits).ok_or(Error::new(EINVAL))
    }

    #[inline]
    fn allowed_cached(&mut self, dma_mask: u64) -> Result<u64> {
        if self.last_mask.0 == dma_mask && self.last_mask.1 != 0 {
            return Ok(self.last_mask.1);
        }
        let allowed = self.allowed(dma_mask)?;
        self.last_mask = (dma_mask, allowed);
        Ok(allowed)
    }

    /// Allocates `size` bytes (a non-zero multiple of 4 KiB) that a device
    /// with `dma_mask` can reach. See the module docs for rounding and
    /// alignment; the IOVA must later be freed with the same `size`.
    #[inline]
    pub fn alloc(&mut self, size: u64, dma_mask: u64) -> Result<u64> {
        let allowed = self.allowed_cached(dma_mask)?;
        if size.wrapping_sub(1) < SLAB_MAX_ALLOC && size.is_multiple_of(PAGE) {
            let class = size_class(size);
            while let Some(c) = self.rack.pop(class, allowed) {
                match self.slabs.uncache(c.slab, c.iova) {
                    Uncached::Taken => {
                        self.account_small(c.iova, PAGE << class, true);
                        return Ok(c.iova);
                    }
                    Uncached::Stale(emptied) => self.give_back_slab(emptied),
                }
            }
            if let Some(iova) = self.slabs.alloc(class, allowed) {
                self.account_small(iova, PAGE << class, true);
                return Ok(iova);
            }
            return self.alloc_small_slow(class, allowed);
        }
        check_size(size)?;
        self.alloc_direct(size, default_align(size), allowed)
    }

    /// Like [`alloc`](Self::alloc) with an explicit alignment (a power of
    /// two; anything below 4 KiB means 4 KiB).
    pub fn alloc_aligned(&mut self, size: u64, align: u64, dma_mask: u64) -> Result<u64> {
        check_size(size)?;
        if !align.is_power_of_two() && align != 0 {
            return Err(Error::new(EINVAL));
        }
        let align = align.max(PAGE);
        let footprint = footprint(size);
        if footprint <= SLAB_MAX_ALLOC && align <= footprint {
            return self.alloc(size, dma_mask);
        }
        let allowed = self.allowed(dma_mask)?;
        self.alloc_direct(footprint, align, allowed)
    }

    /// No slab with room: carve a new slab, else fall back to the tree.
    #[cold]
    fn alloc_small_slow(&mut self, class: u8, allowed: u64) -> Result<u64> {
        for w in preference(allowed) {
            if window_end(w) - window_start(w) < SLAB_SIZE || window_end(w) > SLAB_LIMIT {
                continue;
            }
            if let Some(base) = self.tree(w).and_then(|t| t.alloc(SLAB_SIZE, SLAB_SIZE)) {
                self.slabs.add(base, class, w as u8);
                if let Some(iova) = self.slabs.alloc(class, 1 << w) {
                    self.account_small(iova, PAGE << class, true);
                    return Ok(iova);
                }
            }
        }
        let size = PAGE << class;
        self.alloc_direct(size, size, allowed)
    }

    #[cold]
    fn alloc_direct(&mut self, size: u64, align: u64, allowed: u64) -> Result<u64> {
        for attempt in 0..2 {
            for w in preference(allowed) {
                if let Some(iova) = self.tree(w).and_then(|t| t.alloc(size, align)) {
                    self.direct.insert(
                        iova,
                        Direct {
                            len: size,
                            fixed: false,
                        },
                    );
                    self.adjust_free(iova, iova + size, true);
                    self.live += 1;
                    return Ok(iova);
                }
            }
            if attempt == 0 {
                // Out of room: IOVAs in magazines go back to their slabs,
                // and empty slabs kept as cache go back to the tree.
                self.drain_magazines();
                for (base, w) in self.slabs.reclaim_empty(allowed) {
                    if let Some(tree) = self.tree(u32::from(w)) {
                        tree.release(base, base + SLAB_SIZE);
                    }
                }
            }
        }
        Err(Error::new(ENOSPC))
    }

    /// Frees an allocation: `iova` and the `size` it was allocated with.
    /// `ENOENT` if nothing is allocated there, `EINVAL` if the size does not
    /// match; either way nothing changes.
    #[inline]
    pub fn free(&mut self, iova: u64, size: u64) -> Result<()> {
        check_size(size)?;
        if size <= SLAB_MAX_ALLOC {
            let class = size_class(size);
            match self.slabs.cache(iova, class) {
                Some(Ok(slab)) => {
                    self.account_small(iova, PAGE << class, false);
                    if let Some(full) = self.rack.push(class, magazine::Cached { iova, slab }) {
                        self.release_magazine(full);
                    }
                    return Ok(());
                }
                Some(Err(SlotError::Mismatch | SlotError::InUse)) => {
                    return Err(Error::new(EINVAL));
                }
                Some(Err(SlotError::NotAllocated)) => return Err(Error::new(ENOENT)),
                None => {}
            }
        }
        self.free_direct(iova, size)
    }

    /// Gives every IOVA of a magazine back to its slab.
    #[cold]
    fn release_magazine(&mut self, mut magazine: Box<Magazine>) {
        for c in magazine.drain() {
            self.release_cached(c);
        }
        self.rack.recycle(magazine);
    }

    fn release_cached(&mut self, c: magazine::Cached) {
        let emptied = self.slabs.release(c.slab, c.iova);
        self.give_back_slab(emptied);
    }

    /// Returns a dropped slab's region (`base`, `window`) to the slow path.
    fn give_back_slab(&mut self, emptied: Option<(u64, u8)>) {
        if let Some((base, window)) = emptied
            && let Some(tree) = self.tree(u32::from(window))
        {
            tree.release(base, base + SLAB_SIZE);
        }
    }

    /// Gives every cached IOVA back to its slab (Linux's
    /// `free_cpu_cached_iovas`): before a fixed range is carved out of slab
    /// space, and when an allocation finds no room.
    #[cold]
    fn drain_magazines(&mut self) {
        for c in self.rack.drain_all() {
            self.release_cached(c);
        }
    }

    fn free_direct(&mut self, iova: u64, size: u64) -> Result<()> {
        let record = *self.direct.get(&iova).ok_or(Error::new(ENOENT))?;
        let expected = if record.fixed { size } else { footprint(size) };
        if record.len != expected {
            return Err(Error::new(EINVAL));
        }
        self.direct.remove(&iova);
        let end = iova + record.len;
        for (w, a, b) in pieces(iova, end) {
            if let Some(tree) = self.tree(w) {
                tree.release(a, b);
            }
        }
        self.adjust_free(iova, end, false);
        self.live -= 1;
        Ok(())
    }

    /// Allocates exactly `[iova, iova + size)` (a client asked for that IOVA).
    /// `EINVAL` if unaligned, empty, outside the space or over a reserved
    /// region; `EEXIST` if any of it is allocated. The range may span windows.
    pub fn alloc_at(&mut self, iova: u64, size: u64) -> Result<()> {
        if let Some(done) = self.alloc_at_small(iova, size) {
            return done;
        }
        let end = self.claim(iova, size)?;
        self.direct.insert(
            iova,
            Direct {
                len: size,
                fixed: true,
            },
        );
        self.adjust_free(iova, end, true);
        self.live += 1;
        Ok(())
    }

    /// A fixed range that is exactly one slab slot (a power of two up to
    /// 128 KiB, aligned to its size) is claimed in the slab of its 2 MiB
    /// region, which is made for it when the whole region is free: a few
    /// bit operations instead of carving the free-range trees. `None` when
    /// the range does not qualify (the slow path decides).
    fn alloc_at_small(&mut self, iova: u64, size: u64) -> Option<Result<()>> {
        if !size.is_power_of_two() || !(PAGE..=SLAB_MAX_ALLOC).contains(&size) {
            return None;
        }
        let end = iova.checked_add(size)?;
        if !iova.is_multiple_of(size) || iova < PAGE || end > 1 << self.address_bits {
            return None;
        }
        if self.reserved.iter().any(|&(a, b)| a < end && iova < b) {
            return Some(Err(Error::new(EINVAL)));
        }
        let class = size_class(size);
        let claimed = match self.slabs.claim(iova, class) {
            Some(claimed) => claimed,
            None => {
                let base = iova & !(SLAB_SIZE - 1);
                if base == 0 {
                    return None;
                }
                // A non-zero multiple of 2 MiB lies in a window of at least
                // 2 MiB, so the whole region is in that window. It must be
                // below the slab limit and wholly free.
                let window = window_of(base);
                if base + SLAB_SIZE > SLAB_LIMIT {
                    return None;
                }
                if !self.tree(window)?.carve(base, base + SLAB_SIZE) {
                    return None;
                }
                self.slabs.add(base, class, window as u8);
                self.slabs.claim(iova, class)?
            }
        };
        match claimed {
            Ok(()) => {
                self.account_small(iova, size, true);
                Some(Ok(()))
            }
            Err(SlotError::InUse) => Some(Err(Error::new(EEXIST))),
            Err(SlotError::Mismatch | SlotError::NotAllocated) => None,
        }
    }

    /// Takes `[start, end)` out of the space for good (firmware regions,
    /// other interrupt windows). Same errors as [`alloc_at`](Self::alloc_at).
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<()> {
        let size = end.checked_sub(start).ok_or(Error::new(EINVAL))?;
        self.claim(start, size)?;
        self.reserved.push((start, end));
        self.adjust_free(start, end, true);
        for (w, a, b) in pieces(start, end) {
            if let Some(usable) = w
                .checked_sub(FIRST_WINDOW)
                .and_then(|i| self.usable_bytes.get_mut(i as usize))
            {
                *usable -= b - a;
            }
        }
        Ok(())
    }

    /// Validates and carves a fixed range out of the trees; returns its end.
    fn claim(&mut self, iova: u64, size: u64) -> Result<u64> {
        check_size(size)?;
        let end = iova.checked_add(size).ok_or(Error::new(EINVAL))?;
        if !iova.is_multiple_of(PAGE) || iova < PAGE || end > 1 << self.address_bits {
            return Err(Error::new(EINVAL));
        }
        if self.reserved.iter().any(|&(a, b)| a < end && iova < b) {
            return Err(Error::new(EINVAL));
        }
        if let Some((&start, record)) = self.direct.range(..end).next_back()
            && start + record.len > iova
        {
            return Err(Error::new(EEXIST));
        }
        let mut regions = self.slabs.regions_in(iova, end);
        if !regions.is_empty() && self.rack.cached() > 0 {
            // Slots parked in magazines look in use to the slab: put them
            // back first, so only real allocations count as overlaps.
            self.drain_magazines();
            regions = self.slabs.regions_in(iova, end);
        }
        for &region in &regions {
            if self
                .slabs
                .live_slots(region)
                .iter()
                .any(|&(a, len)| a < end && iova < a + len)
            {
                return Err(Error::new(EEXIST));
            }
        }
        // The range is free but cached in slabs: turn those slabs back into
        // tree space (their live slots become ordinary slow-path allocations).
        for region in regions {
            self.retire_slab(region);
        }
        // `pieces` is walked twice rather than collected: no allocation on
        // the fixed-IOVA map path.
        if !pieces(iova, end).all(|(w, a, b)| {
            self.trees
                .get((w - FIRST_WINDOW) as usize)
                .is_some_and(|t| t.is_free(a, b))
        }) {
            return Err(Error::new(EEXIST));
        }
        for (w, a, b) in pieces(iova, end) {
            if let Some(tree) = self.tree(w) {
                tree.carve(a, b);
            }
        }
        Ok(end)
    }

    fn retire_slab(&mut self, region: u64) {
        let live = self.slabs.live_slots(region);
        let Some((base, window)) = self.slabs.retire(region) else {
            return;
        };
        let mut cur = base;
        for (iova, len) in live {
            self.direct.insert(iova, Direct { len, fixed: false });
            if let Some(tree) = self.tree(u32::from(window)) {
                tree.release(cur, iova);
            }
            cur = iova + len;
        }
        if let Some(tree) = self.tree(u32::from(window)) {
            tree.release(cur, base + SLAB_SIZE);
        }
    }

    /// Space left per window, lowest window first.
    pub fn usage(&self) -> Vec<WindowUsage> {
        (FIRST_WINDOW..self.address_bits)
            .zip(self.free_bytes.iter().zip(&self.usable_bytes))
            .map(|(k, (&free_bytes, &usable_bytes))| WindowUsage {
                start: window_start(k),
                end: window_end(k),
                usable_bytes,
                free_bytes,
            })
            .collect()
    }

    /// Free bytes a device with `dma_mask` could still be given (0 for a
    /// mask that reaches no window).
    pub fn free_bytes(&self, dma_mask: u64) -> u64 {
        let Ok(allowed) = self.allowed(dma_mask) else {
            return 0;
        };
        (FIRST_WINDOW..self.address_bits)
            .zip(&self.free_bytes)
            .filter(|(k, _)| allowed & (1 << k) != 0)
            .map(|(_, &f)| f)
            .sum()
    }

    /// The longest free run in the slow path among the windows `dma_mask`
    /// allows (the largest allocation above 128 KiB that can succeed).
    pub fn largest_free_range(&self, dma_mask: u64) -> u64 {
        let Ok(allowed) = self.allowed(dma_mask) else {
            return 0;
        };
        preference(allowed)
            .filter_map(|w| self.trees.get((w - FIRST_WINDOW) as usize))
            .map(FreeRanges::largest)
            .max()
            .unwrap_or(0)
    }

    /// The window a device with `dma_mask` allocates from first (its start).
    pub fn preferred_window(&self, dma_mask: u64) -> Option<u64> {
        self.allowed(dma_mask)
            .ok()
            .and_then(window_pick)
            .map(window_start)
    }
}

const _: () = assert!(CLASSES == 6 && SLAB_MAX_ALLOC == 128 * 1024);

#[cfg(test)]
mod tests;
