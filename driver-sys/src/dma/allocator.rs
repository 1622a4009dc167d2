//! `IommuDmaAllocator`: DMA memory the device may use, mapped through its IOMMU
//! domain, with a pool of persistent mappings.
//!
//! allocate = physically contiguous zeroed memory + MAP through the domain,
//! returning the IOVA the device must use; drop = back to the pool, or UNMAP and
//! release. Mapping per I/O is what makes IOMMUs slow (every MAP/UNMAP is a round
//! trip to iommud and an IOTLB invalidation), so freed buffers of the common
//! sizes (4 KiB … 256 KiB, power-of-two size classes — the memory scheme rounds
//! to those anyway) stay mapped in a bounded per-class pool and the next
//! allocation of that class reuses one with no call at all. A reused buffer is
//! zeroed again before it is handed out.
//!
//! DMA mask: a device that drives only N address bits must never see an address
//! at or above 2^N. Through an IOMMU that is the IOVA — the domain's IOVA
//! allocator honours the mask iommud was given, and this allocator refuses
//! (`ENOMEM`, logged) any IOVA beyond it as a second line of defence. Without an
//! IOMMU it is the physical address; the Redox kernel cannot allocate below a
//! limit, so such devices get contiguous memory whose translation is checked, with
//! a bounded number of retries ([`crate::memory::PhysMemory::alloc_contiguous_below`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use iommu::protocol::MapFlags;
use syscall::error::{ENOMEM, Error, Result};

use super::buffer::{DmaRegion, Zeroable};
use super::mapper::{IommuMapper, channel_mapper, domain_mapper};
use crate::memory::{PAGE_SIZE, PhysMemory};
use crate::pci::PciFunction;
use crate::quirks::QuirkFlags;

/// Pooled size classes: 4 KiB << i.
pub const SIZE_CLASSES: usize = 7;
/// Idle mapped buffers kept per size class by default.
pub const DEFAULT_POOL_PER_CLASS: usize = 64;

/// Counters.
#[derive(Debug, Default)]
pub struct DmaStats {
    /// MAP requests sent to the mapper.
    pub maps: AtomicU64,
    /// UNMAP requests sent.
    pub unmaps: AtomicU64,
    /// Allocations that needed new memory and a MAP (pool hits are not counted:
    /// the hot path stays free of shared counters).
    pub pool_misses: AtomicU64,
    /// Streaming maps through a bounce buffer.
    pub bounce_maps: AtomicU64,
    /// Bytes copied CPU → bounce buffer.
    pub bounce_to_device_bytes: AtomicU64,
    /// Bytes copied bounce buffer → CPU.
    pub bounce_to_cpu_bytes: AtomicU64,
    /// Bounce buffers in use now.
    pub bounce_in_use: AtomicU64,
    /// Most bounce buffers in use at once.
    pub bounce_high_water: AtomicU64,
}

pub(super) struct Mapped {
    region: DmaRegion,
    iova: u64,
}

pub(super) struct AllocatorInner {
    memory: PhysMemory,
    mapper: Box<dyn IommuMapper>,
    /// Highest bus address the device can drive.
    limit: u64,
    pools: [spin::Mutex<Vec<Mapped>>; SIZE_CLASSES],
    pool_limit: usize,
    pub(super) stats: DmaStats,
}

impl AllocatorInner {
    fn release(&self, m: Mapped) {
        if self.mapper.translates() {
            self.stats.unmaps.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.mapper.unmap(m.iova) {
                // The memory must not be reused while a device may still reach it.
                log::error!(
                    "dma: unmap of IOVA {:#x} failed ({e}); leaking its memory",
                    m.iova
                );
                core::mem::forget(m.region);
            }
        }
    }
}

impl Drop for AllocatorInner {
    fn drop(&mut self) {
        for pool in &self.pools {
            for m in pool.lock().drain(..) {
                self.release(m);
            }
        }
    }
}

/// Allocates DMA memory for one device.
#[derive(Clone)]
pub struct IommuDmaAllocator {
    pub(super) inner: Arc<AllocatorInner>,
}

impl core::fmt::Debug for IommuDmaAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IommuDmaAllocator")
            .field("limit", &self.inner.limit)
            .field("translates", &self.inner.mapper.translates())
            .finish_non_exhaustive()
    }
}

fn class_of(len: usize) -> Option<usize> {
    let pages = len.max(1).div_ceil(PAGE_SIZE).next_power_of_two();
    let class = pages.trailing_zeros() as usize;
    (class < SIZE_CLASSES).then_some(class)
}

impl IommuDmaAllocator {
    /// An allocator for a device driving `address_bits` bits (32 for a 32-bit
    /// device, 64 for most), mapping through `mapper`.
    pub fn new(mapper: Box<dyn IommuMapper>, address_bits: u8) -> Result<Self> {
        Self::with_memory(
            PhysMemory::open()?,
            mapper,
            address_bits,
            DEFAULT_POOL_PER_CLASS,
        )
    }

    /// The allocator a driver wants for its function `pci`: a new IOMMU domain of
    /// this process (id chosen by iommud) with the function assigned by passing
    /// iommud the function's pcid channel (passthrough with a warning when there
    /// is no `iommu` scheme or the `NO_IOMMU` quirk is set), `address_bits`
    /// narrowed to 32 by the `DMA_32BIT_ONLY` quirk. [`domain`](Self::domain)
    /// tells the domain's id.
    pub fn for_function(pci: &PciFunction, quirks: QuirkFlags, address_bits: u8) -> Result<Self> {
        let mapper = channel_mapper(pci.channel_fd(), quirks.contains(QuirkFlags::NO_IOMMU))?;
        Self::new(mapper, Self::quirk_bits(quirks, address_bits))
    }

    /// The v1 way: fixed domain `domain` (`/scheme/iommu/domain/<id>`, which
    /// another process may already own: `EACCES`), the function assigned by the
    /// caller. Prefer [`for_function`](Self::for_function).
    pub fn for_domain(domain: u16, quirks: QuirkFlags, address_bits: u8) -> Result<Self> {
        let mapper = domain_mapper(domain, quirks.contains(QuirkFlags::NO_IOMMU))?;
        Self::new(mapper, Self::quirk_bits(quirks, address_bits))
    }

    fn quirk_bits(quirks: QuirkFlags, address_bits: u8) -> u8 {
        if quirks.contains(QuirkFlags::DMA_32BIT_ONLY) {
            address_bits.min(32)
        } else {
            address_bits
        }
    }

    /// The IOMMU domain the buffers are mapped in (`None`: passthrough).
    pub fn domain(&self) -> Option<u16> {
        self.inner.mapper.domain()
    }

    /// Like [`IommuDmaAllocator::new`] with the memory fds and the pool size given.
    pub fn with_memory(
        memory: PhysMemory,
        mapper: Box<dyn IommuMapper>,
        address_bits: u8,
        pool_per_class: usize,
    ) -> Result<Self> {
        let limit = match address_bits {
            0 => return Err(Error::new(syscall::error::EINVAL)),
            64.. => u64::MAX,
            b => (1u64 << b) - 1,
        };
        Ok(Self {
            inner: Arc::new(AllocatorInner {
                memory,
                mapper,
                limit,
                pools: Default::default(),
                pool_limit: pool_per_class,
                stats: DmaStats::default(),
            }),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &DmaStats {
        &self.inner.stats
    }

    /// Highest bus address the device can drive.
    pub fn address_limit(&self) -> u64 {
        self.inner.limit
    }

    /// Whether an IOMMU translates the device's addresses.
    pub fn translates(&self) -> bool {
        self.inner.mapper.translates()
    }

    fn fits(&self, bus: u64, len: usize) -> bool {
        bus.checked_add(len as u64 - 1)
            .is_some_and(|last| last <= self.inner.limit)
    }

    fn map_new(&self, len: usize) -> Result<Mapped> {
        let inner = &self.inner;
        // Without translation the physical address is what the device sees.
        let region = if !inner.mapper.translates() && inner.limit < u64::MAX {
            DmaRegion::new_below(&inner.memory, len, inner.limit)?
        } else {
            DmaRegion::new(&inner.memory, len)?
        };
        inner.stats.maps.fetch_add(1, Ordering::Relaxed);
        let iova = inner.mapper.map(
            region.phys(),
            region.len() as u64,
            MapFlags::READ_WRITE,
            None,
        )?;
        let m = Mapped { region, iova };
        if !self.fits(iova, m.region.len()) {
            log::error!(
                "dma: bus address {iova:#x} is beyond the device's limit {:#x}",
                inner.limit
            );
            inner.release(m);
            return Err(Error::new(ENOMEM));
        }
        Ok(m)
    }

    pub(super) fn take(&self, len: usize, zero: bool) -> Result<DmaAllocation> {
        let class = class_of(len);
        if let Some(c) = class
            && let Some(pool) = self.inner.pools.get(c)
        {
            let hit = pool.lock().pop();
            if let Some(mut m) = hit {
                if zero {
                    m.region.as_mut_slice().fill(0);
                }
                return Ok(DmaAllocation {
                    mapped: Some(m),
                    len,
                    class,
                    owner: self.inner.clone(),
                });
            }
        }
        self.inner.stats.pool_misses.fetch_add(1, Ordering::Relaxed);
        let size = match class {
            Some(c) => PAGE_SIZE << c,
            None => len,
        };
        Ok(DmaAllocation {
            mapped: Some(self.map_new(size)?),
            len,
            class,
            owner: self.inner.clone(),
        })
    }

    /// `len` zeroed bytes of DMA memory, mapped for the device.
    pub fn allocate(&self, len: usize) -> Result<DmaAllocation> {
        if len == 0 {
            return Err(Error::new(syscall::error::EINVAL));
        }
        self.take(len, true)
    }

    /// Fills each size class's pool with `count` mapped buffers ahead of time.
    pub fn prefill(&self, len: usize, count: usize) -> Result<()> {
        let held: Vec<DmaAllocation> = (0..count)
            .map(|_| self.allocate(len))
            .collect::<Result<_>>()?;
        drop(held);
        Ok(())
    }

    /// Idle buffers in the pool of the class that serves `len`.
    pub fn pooled(&self, len: usize) -> usize {
        class_of(len)
            .and_then(|c| self.inner.pools.get(c))
            .map_or(0, |p| p.lock().len())
    }
}

/// DMA memory handed out by [`IommuDmaAllocator`]: back to the pool (or unmapped
/// and released) on drop.
pub struct DmaAllocation {
    mapped: Option<Mapped>,
    len: usize,
    class: Option<usize>,
    owner: Arc<AllocatorInner>,
}

impl core::fmt::Debug for DmaAllocation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DmaAllocation")
            .field("iova", &self.iova())
            .field("len", &self.len)
            .finish()
    }
}

impl DmaAllocation {
    fn mapped(&self) -> Option<&Mapped> {
        self.mapped.as_ref()
    }

    /// The address the device must use.
    pub fn iova(&self) -> u64 {
        self.mapped().map_or(0, |m| m.iova)
    }

    /// Physical address (what the IOMMU maps the IOVA to).
    pub fn phys(&self) -> u64 {
        self.mapped().map_or(0, |m| m.region.phys())
    }

    /// Bytes asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.mapped()
            .and_then(|m| m.region.as_slice().get(..self.len))
            .unwrap_or_default()
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        self.mapped
            .as_mut()
            .and_then(|m| m.region.as_mut_slice().get_mut(..len))
            .unwrap_or_default()
    }

    /// The memory as a `T` (if it fits).
    pub fn as_mut<T: Zeroable>(&mut self) -> Option<&mut T> {
        let m = self.mapped.as_mut()?;
        if m.region.len() < size_of::<T>() || align_of::<T>() > PAGE_SIZE {
            return None;
        }
        // SAFETY: page-aligned region large enough for T; any bytes are a valid T.
        Some(unsafe { &mut *m.region.as_ptr().cast::<T>() })
    }
}

impl Drop for DmaAllocation {
    fn drop(&mut self) {
        let Some(m) = self.mapped.take() else { return };
        if let Some(pool) = self.class.and_then(|c| self.owner.pools.get(c)) {
            let mut p = pool.lock();
            if p.len() < self.owner.pool_limit {
                p.push(m);
                return;
            }
        }
        self.owner.release(m);
    }
}
